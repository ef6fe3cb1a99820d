//! Checking and completing a saved state before nice-plug applies it (`Plugin::filter_state`).
//!
//! nice-plug applies exactly what a state holds, unchecked:
//! - a parameter missing from the state keeps the value it had, so loading a preset into an
//!   instance in use mixes two sessions;
//! - a number outside a parameter's range is stored as it is (an enum index past the last variant
//!   then panics when the state is next saved; 100,000 bands is not a filterbank);
//! - a persisted field that does not parse keeps the previous session's value (its learned
//!   sounds, its model file).
//!
//! [`repair`] makes every parameter and field of the state valid before it is applied: missing →
//! the default; a number out of range → clamped into the range; a value of the wrong type, an
//! unknown enum id or a field that does not parse → the default. What a repair changed of what
//! the user saved is written to the load-only `state-notes` field ([`StateNotes`]), which the
//! editor shows. Garbage that is not a state at all never gets here: nice-plug refuses it and the
//! host is told the load failed.

use crate::params::EchoicParams;
use echoic_core::listener::adapt::saved;
use echoic_core::outputs::learned::LearnedSounds;
use nice_plug::params::internals::ParamPtr;
use nice_plug::plugin::ParamValue;
use nice_plug::prelude::{Params, PluginState};
use serde::{Deserialize, Serialize, Serializer};

/// The persisted field that carries [`StateNotes`].
pub const STATE_NOTES_KEY: &str = "state-notes";

/// Whether a persisted field's saved text can be used, and if not why.
type FieldCheck = fn(&str) -> Result<(), String>;

/// Persisted fields [`repair`] knows how to check, with the check. A test makes sure that every
/// `#[persist]` field of [`EchoicParams`] is here.
const FIELD_CHECKS: &[(&str, FieldCheck)] = &[
    ("learned-sounds", |s| {
        LearnedSounds::from_json(s.as_bytes())
            .map(drop)
            .map_err(|e| e.to_string())
    }),
    ("model-path", |s| {
        serde_json::from_str::<Option<String>>(s)
            .map(drop)
            .map_err(|e| e.to_string())
    }),
    ("adapted-listener", |s| {
        match serde_json::from_str::<Option<String>>(s).map_err(|e| e.to_string())? {
            // The errors name the field, as the note around them already does.
            Some(text) => saved::base_id_of(&text).map(drop).map_err(|e| {
                e.to_string()
                    .replacen("the saved adapted listener ", "it ", 1)
            }),
            None => Ok(()),
        }
    }),
    ("editor-size", |s| {
        serde_json::from_str::<[u32; 2]>(s)
            .map(drop)
            .map_err(|e| e.to_string())
    }),
];

/// What [`repair`] changed in the last state loaded, for the editor to show.
///
/// Load-only: always saved as an empty list, so a note belongs to the load that caused it and
/// never travels on with the session.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct StateNotes(pub Vec<String>);

impl Serialize for StateNotes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(std::iter::empty::<&str>())
    }
}

/// Makes `state` complete and valid for this build (see the module documentation) and writes
/// the notes to its `state-notes` field. Allocates; runs on the main thread during a state load.
pub fn repair(state: &mut PluginState) {
    // A scratch parameter object: its defaults, ranges and enum ids are the reference. Nothing
    // else sees it.
    let reference = EchoicParams::default();
    let mut notes = Vec::new();
    for (id, ptr, _) in reference.param_map() {
        // SAFETY: `ptr` points into `reference`, which outlives this loop and is not moved.
        let default = unsafe { default_value(ptr) };
        match state.params.get(&id) {
            None => {
                state.params.insert(id, default);
            }
            Some(saved) => {
                // SAFETY: as above.
                if let Some((value, note)) = unsafe { repaired_value(ptr, saved, default) } {
                    // SAFETY: as above.
                    let name = unsafe { ptr.name() }.to_owned();
                    notes.push(format!("{name}: {note}"));
                    state.params.insert(id, value);
                }
            }
        }
    }
    for (key, default) in reference.serialize_fields() {
        if key == STATE_NOTES_KEY {
            continue;
        }
        let check = FIELD_CHECKS
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, check)| check);
        match (state.fields.get(&key), check) {
            (None, _) => {
                state.fields.insert(key, default);
            }
            (Some(saved), Some(check)) => {
                if let Err(error) = check(saved) {
                    notes.push(format!(
                        "the saved {} could not be read ({error}); using the default",
                        key.replace('-', " ")
                    ));
                    state.fields.insert(key, default);
                }
            }
            (Some(_), None) => {}
        }
    }
    let notes = serde_json::to_string(&notes).expect("a list of strings serialises");
    state.fields.insert(STATE_NOTES_KEY.to_owned(), notes);
}

/// The default of the parameter behind `ptr`, as a state stores it.
///
/// # Safety
///
/// `ptr` must point to a live parameter.
unsafe fn default_value(ptr: ParamPtr) -> ParamValue {
    match ptr {
        ParamPtr::FloatParam(_) => ParamValue::F32(ptr.default_plain_value()),
        ParamPtr::IntParam(_) => ParamValue::I32(ptr.default_plain_value().round() as i32),
        ParamPtr::BoolParam(_) => ParamValue::Bool(ptr.default_plain_value() > 0.5),
        ParamPtr::EnumParam(p) => {
            let index = ptr.default_plain_value().round() as i32;
            match (*p).unmodulated_plain_id() {
                // The reference object still holds its defaults: its current id is the default's.
                Some(id) => ParamValue::String(id.to_owned()),
                None => ParamValue::I32(index),
            }
        }
    }
}

/// `None` if `saved` is a valid value of the parameter behind `ptr`; otherwise the value to use
/// instead (clamped into range, or `default`) and why.
///
/// # Safety
///
/// `ptr` must point to a live parameter that nothing else uses (an enum's id check may set it).
unsafe fn repaired_value(
    ptr: ParamPtr,
    saved: &ParamValue,
    default: ParamValue,
) -> Option<(ParamValue, String)> {
    let (low, high) = (ptr.preview_plain(0.0), ptr.preview_plain(1.0));
    match (ptr, saved) {
        (ParamPtr::FloatParam(_), ParamValue::F32(v)) if !v.is_finite() => {
            Some((default, format!("{v} is not a number; using the default")))
        }
        (ParamPtr::FloatParam(_), ParamValue::F32(v)) => {
            let clamped = v.clamp(low, high);
            (clamped != *v).then(|| {
                (
                    ParamValue::F32(clamped),
                    format!("{v} is outside {low}..{high}; using {clamped}"),
                )
            })
        }
        (ParamPtr::IntParam(_), ParamValue::I32(v)) => {
            let (low, high) = (low.round() as i32, high.round() as i32);
            let clamped = (*v).clamp(low, high);
            (clamped != *v).then(|| {
                (
                    ParamValue::I32(clamped),
                    format!("{v} is outside {low}..{high}; using {clamped}"),
                )
            })
        }
        (ParamPtr::BoolParam(_), ParamValue::Bool(_)) => None,
        (ParamPtr::EnumParam(p), ParamValue::I32(index)) => {
            (usize::try_from(*index).map_or(true, |i| i >= (*p).len())).then(|| {
                (
                    default,
                    format!("option {index} does not exist; using the default"),
                )
            })
        }
        (ParamPtr::EnumParam(p), ParamValue::String(id)) => (!(*p).set_from_id(id)).then(|| {
            (
                default,
                format!("option \"{id}\" does not exist; using the default"),
            )
        }),
        (_, saved) => Some((
            default,
            format!("{saved:?} is the wrong kind of value; using the default"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state as the plugin saves it with its defaults.
    fn default_state() -> PluginState {
        let params = EchoicParams::default();
        let mut state = PluginState {
            version: String::new(),
            params: Default::default(),
            fields: params.serialize_fields(),
        };
        for (id, ptr, _) in params.param_map() {
            // SAFETY: `params` is alive.
            state.params.insert(id, unsafe { default_value(ptr) });
        }
        state
    }

    fn json(value: &ParamValue) -> serde_json::Value {
        serde_json::to_value(value).unwrap()
    }

    fn notes(state: &PluginState) -> Vec<String> {
        serde_json::from_str(&state.fields[STATE_NOTES_KEY]).unwrap()
    }

    #[test]
    fn every_persisted_field_has_a_check() {
        for key in EchoicParams::default().serialize_fields().keys() {
            assert!(
                key == STATE_NOTES_KEY || FIELD_CHECKS.iter().any(|(k, _)| k == key),
                "no check for the persisted field {key}"
            );
        }
    }

    #[test]
    fn a_valid_state_is_left_as_it_is_with_no_notes() {
        let mut state = default_state();
        let before = serde_json::to_value(&state).unwrap();
        repair(&mut state);
        assert!(notes(&state).is_empty());
        assert_eq!(serde_json::to_value(&state).unwrap(), before);
    }

    #[test]
    fn missing_parameters_and_fields_get_their_defaults_silently() {
        let full = default_state();
        let mut state = PluginState {
            version: String::new(),
            params: Default::default(),
            fields: Default::default(),
        };
        repair(&mut state);
        assert!(notes(&state).is_empty(), "{:?}", notes(&state));
        assert_eq!(state.params.len(), full.params.len());
        for (id, value) in &full.params {
            assert_eq!(json(&state.params[id]), json(value), "{id}");
        }
        for (key, value) in &full.fields {
            assert_eq!(&state.fields[key], value, "{key}");
        }
    }

    #[test]
    fn out_of_range_wrong_and_unreadable_values_are_repaired_with_a_note_each() {
        let mut state = default_state();
        state
            .params
            .insert("bands".into(), ParamValue::I32(100_000));
        state.params.insert("hop-ms".into(), ParamValue::F32(-3.0));
        state
            .params
            .insert("learn-seconds".into(), ParamValue::F32(f32::INFINITY));
        state.params.insert(
            "dilation-kind".into(),
            ParamValue::String("sideways".into()),
        );
        state.params.insert("pooling".into(), ParamValue::I32(99));
        state.params.insert("steps".into(), ParamValue::Bool(true));
        state
            .params
            .insert("no-such-param".into(), ParamValue::I32(1));
        state.fields.insert(
            "learned-sounds".into(),
            "{\"version\": 1, \"sounds\": 7}".into(),
        );
        state.fields.insert("model-path".into(), "not json".into());
        state.fields.insert("editor-size".into(), "[-1, 2]".into());
        repair(&mut state);
        let defaults = default_state();
        assert_eq!(
            json(&state.params["bands"]),
            serde_json::json!({"i32": 128})
        );
        assert_eq!(
            json(&state.params["hop-ms"]),
            serde_json::json!({"f32": 5.0})
        );
        for id in ["learn-seconds", "dilation-kind", "pooling", "steps"] {
            assert_eq!(json(&state.params[id]), json(&defaults.params[id]), "{id}");
        }
        for key in ["learned-sounds", "model-path", "editor-size"] {
            assert_eq!(state.fields[key], defaults.fields[key], "{key}");
        }
        let notes = notes(&state);
        assert_eq!(notes.len(), 9, "{notes:#?}");
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("Bands: 100000 is outside 16..128")),
            "{notes:#?}"
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("saved model path could not be read")),
            "{notes:#?}"
        );
        // Unknown parameters are left for nice-plug to ignore.
        assert!(state.params.contains_key("no-such-param"));
    }

    #[test]
    fn notes_are_load_only() {
        let params = EchoicParams::default();
        let mut fields = params.serialize_fields();
        assert_eq!(fields[STATE_NOTES_KEY], "[]");
        fields.insert(STATE_NOTES_KEY.into(), "[\"a note\"]".into());
        params.deserialize_fields(&fields);
        assert_eq!(params.state_notes.lock().unwrap().0, ["a note"]);
        assert_eq!(params.serialize_fields()[STATE_NOTES_KEY], "[]");
    }
}
