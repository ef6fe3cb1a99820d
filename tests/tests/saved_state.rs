//! A session saved by an earlier build must load with the same meaning in this one.
//!
//! `tests/fixtures/state_main_2834842.json` is the state document (the JSON inside nice-plug's
//! length-prefixed frame, byte for byte) that the build at commit 2834842 saved through this
//! host after: learning sound 2 from the first seconds of `music_armygeddon.wav` at the default
//! settings, setting every parameter below to the text in [`SAVED`], and loading the result with
//! `editor-size` changed to `[1000,700]`. Nothing in it may change meaning: a saved integer, enum
//! id or field that reads differently here would silently re-point a user's session and its
//! automation lanes.
//!
//! Needs the bundle: `cargo xtask bundle echoic` (or `ECHOIC_BUNDLE_DIR`).

use echoic_host_tests::{state_document, state_frame, EchoicHost};

/// The fixture: the state document saved by the build at 2834842.
const FIXTURE: &[u8] = include_bytes!("../fixtures/state_main_2834842.json");

/// Every parameter of that build as `(group, name, text)`: what the host shows for it after
/// loading the fixture. The slot sources spell out the saved integers' meaning.
const SAVED: &[(&str, &str, &str)] = &[
    ("", "Bands", "64"),
    ("", "Lowest band", "80 Hz"),
    ("", "Highest band", "12000 Hz"),
    ("", "Hop", "20.0 ms"),
    ("", "Steps", "12"),
    ("", "Dilation", "3×"),
    ("", "Dilation spacing", "Linear"),
    ("", "Pooling", "Max"),
    ("", "Learn length", "1.5 s"),
    ("Learn 1", "Learn sound 1", "Off"),
    ("Learn 2", "Learn sound 2", "Off"),
    ("Learn 3", "Learn sound 3", "Off"),
    ("Learn 4", "Learn sound 4", "Off"),
    // Added after 2834842: an old session loads them at their defaults.
    ("", "Adapt", "Off"),
    ("", "History", "3 min"),
];

/// Parameters added after 2834842, as a state saves them at their defaults: saving an old
/// session again adds exactly these.
const ADDED_PARAMS: &[(&str, &str)] = &[
    ("adapt", r#"{"bool":false}"#),
    ("history-minutes", r#"{"i32":3}"#),
];

/// Persisted fields added after 2834842, as saved at their defaults.
const ADDED_FIELDS: &[(&str, &str)] = &[("adapted-listener", r#""null""#)];

/// What each slot was set to: source, then on, invert and 14-bit; the numeric settings follow
/// from the slot number (see [`slot_texts`]).
const SLOTS: [(&str, bool, bool, bool); 8] = [
    ("Novelty", false, true, true),
    ("Period", true, false, false),
    ("Loudness", false, true, false),
    ("Similarity 2", true, false, true),
    ("Axis 3", false, true, false),
    ("Periodicity", true, false, false),
    ("Similarity 4", false, true, true),
    ("Axis 8", true, false, false),
];

/// The `(name, text)` of every parameter of slot `i` (0-based) as saved.
fn slot_texts(i: usize) -> Vec<(&'static str, String)> {
    let (source, on, invert, fourteen_bit) = SLOTS[i];
    let switch = |b: bool| if b { "On" } else { "Off" }.to_owned();
    vec![
        ("On", switch(on)),
        ("Source", source.to_owned()),
        ("In low", format!("{}.0 %", 10 + i)),
        ("In high", format!("{}.0 %", 90 - i)),
        ("Invert", switch(invert)),
        ("Out low", format!("{}.0 %", 5 + i)),
        ("Out high", format!("{}.0 %", 80 + i)),
        ("Rise", format!("{}.0 ms", 20 * (i + 1))),
        ("Fall", format!("{}.0 ms", 300 + 10 * i)),
        ("CC", format!("{}", 40 + i)),
        ("14-bit", switch(fourteen_bit)),
        ("Channel", format!("{}", i + 2)),
    ]
}

#[test]
fn a_state_saved_by_an_earlier_build_loads_with_the_same_meaning() {
    let mut host = EchoicHost::new().expect("instantiate Echoic");
    host.load_state(&state_frame(FIXTURE))
        .expect("the plugin loads the fixture");

    let mut expected: Vec<(String, String, String)> = SAVED
        .iter()
        .map(|(g, n, t)| (g.to_string(), n.to_string(), t.to_string()))
        .collect();
    for i in 0..SLOTS.len() {
        for (name, text) in slot_texts(i) {
            expected.push((format!("Outputs {}", i + 1), name.to_owned(), text));
        }
    }
    let params = host.params().unwrap();
    assert_eq!(
        params.len(),
        expected.len(),
        "a parameter was added or removed: extend the expectations (new parameters must not \
         change the meaning of the old ones)"
    );
    for (group, name, text) in &expected {
        let param = params
            .iter()
            .find(|p| &p.module == group && &p.name == name)
            .unwrap_or_else(|| panic!("no parameter {group}/{name}"));
        let value = host.param_value(param.id).unwrap();
        assert_eq!(
            host.param_value_to_text(param.id, value).as_deref(),
            Some(text.as_str()),
            "{group}/{name}"
        );
    }

    // Saving again gives the same parameters and fields: the learned sound, the editor size and
    // every enum id and number come back as they were.
    let saved = state_document(&host.save_state().unwrap()).unwrap();
    let mut fixture: serde_json::Value = serde_json::from_slice(FIXTURE).unwrap();
    for (section, added) in [("params", ADDED_PARAMS), ("fields", ADDED_FIELDS)] {
        for (key, value) in added {
            fixture[section][*key] = serde_json::from_str(value).unwrap();
        }
    }
    assert_eq!(saved["params"], fixture["params"]);
    assert_eq!(saved["fields"], fixture["fields"]);
    let learned = fixture["fields"]["learned-sounds"].as_str().unwrap();
    assert!(
        learned.contains("\"name\":\"Sound 2\""),
        "the fixture holds a learned sound"
    );
}
