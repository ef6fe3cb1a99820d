//! Echoic's parameters. The `#[id]`s are part of the saved state and of host automation lanes, so
//! they never change once released.

use crate::saved_state::StateNotes;
use crate::slot_params::SlotParams;
use echoic_core::dilated::{DilatedSpec, Dilation, Pooling};
use echoic_core::listening::history::{DEFAULT_HISTORY_MINUTES, MAX_HISTORY_MINUTES};
use echoic_core::listening::Controls;
use echoic_core::outputs::learned::LearnedSounds;
use echoic_core::outputs::source::MAX_LEARNED;
use echoic_core::worker::ListenSettings;
use nice_plug::prelude::*;
use std::sync::{Arc, Mutex};

/// The user-facing parameters of one Echoic instance.
#[derive(Params)]
pub struct EchoicParams {
    /// Number of gammatone bands. Structural: it sizes the filterbank and the model input, so
    /// it is not automatable and a change re-initialises the pipeline off the audio thread.
    #[id = "bands"]
    pub bands: IntParam,

    /// Centre frequency of the lowest band. Low enough to catch the fundamental of a bass voice.
    #[id = "low-hz"]
    pub low_hz: FloatParam,

    /// Centre frequency of the highest band. Fixed rather than tied to the host's sample rate, so
    /// that the same sound gives the same frames at 44.1, 48 or 96 kHz.
    #[id = "high-hz"]
    pub high_hz: FloatParam,

    /// Time between two energy frames. Structural, like `bands`.
    #[id = "hop-ms"]
    pub hop_ms: FloatParam,

    /// Steps T of the dilated buffer: how many frames the listener sees at once. Structural.
    #[id = "steps"]
    pub steps: IntParam,

    /// Growth of the look-back from one step to the next. Changing it only changes which frames
    /// are read from memory, so it may change while listening.
    #[id = "dilation"]
    pub dilation: IntParam,

    /// Exponential look-back (1, 2, 4, …) as the original Listener, or linear (1, 3, 5, …).
    #[id = "dilation-kind"]
    pub dilation_kind: EnumParam<DilationKind>,

    /// How a step summarises the frames it covers.
    #[id = "pooling"]
    pub pooling: EnumParam<PoolingMode>,

    /// Learn triggers: turning one on starts capturing the mean embedding of the next
    /// `learn_seconds` as learned sound j. Parameters, so that a host or automation can trigger
    /// learning as well as the editor's buttons.
    #[nested(array, group = "Learn")]
    pub learn: [LearnParams; MAX_LEARNED],

    /// How long a capture lasts.
    #[id = "learn-seconds"]
    pub learn_seconds: FloatParam,

    /// *Adapt*: turning it on fine-tunes the listener on the listening history, in the
    /// background. A parameter so that a host can automate it; the editor's Adapt button
    /// presses it.
    #[id = "adapt"]
    pub adapt: BoolParam,

    /// Minutes of listening history kept for *Adapt*. It sizes a buffer (2.4 MB a minute at
    /// the default bands and hop), so it is not automatable.
    #[id = "history-minutes"]
    pub history_minutes: IntParam,

    /// The eight automation outputs.
    #[nested(array, group = "Outputs")]
    pub slots: [SlotParams; echoic_core::outputs::N_SLOTS],

    /// The learned sounds, saved with the session. The worker writes it when a capture finishes;
    /// the audio thread never touches it.
    #[persist = "learned-sounds"]
    pub learned: Arc<Mutex<LearnedSounds>>,

    /// The listener model file chosen in the editor; `None` for the built-in model. Saved so that
    /// a session reopens with the model it was made with; a file that has gone missing falls back
    /// to the built-in model (the editor says so).
    #[persist = "model-path"]
    pub model_path: Arc<Mutex<Option<String>>>,

    /// The adapted listener in use, as a delta against the chosen model
    /// (`listener::adapt::saved`); `None` when the chosen model itself is in use. Saved so that
    /// a session reopens with what *Adapt* learned. The worker writes it at each swap.
    #[persist = "adapted-listener"]
    pub adapted: Arc<Mutex<Option<String>>>,

    /// The editor window's logical size, `[width, height]`. Saved here because the editor's own
    /// state (`EguiEditorState`) is not serialisable; the editor opens at this size and writes
    /// it back whenever the window is resized.
    #[persist = "editor-size"]
    pub editor_size: Arc<Mutex<[u32; 2]>>,

    /// What was repaired in the last state loaded (see `saved_state`), for the editor to show.
    /// A persisted field only because a state load can reach this instance no other way; it is
    /// always saved empty.
    #[persist = "state-notes"]
    pub state_notes: Arc<Mutex<StateNotes>>,
}

/// One learn trigger.
#[derive(Params)]
pub struct LearnParams {
    /// Rising edge starts a capture.
    #[id = "learn"]
    pub learn: BoolParam,
}

/// [`Dilation`] as a parameter.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DilationKind {
    /// Step j ends dilation^j frames back.
    #[id = "exponential"]
    Exponential,
    /// Step j ends 1 + j·dilation frames back.
    #[id = "linear"]
    Linear,
}

/// [`Pooling`] as a parameter.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingMode {
    /// The frame at the step's look-back.
    #[id = "pick"]
    Pick,
    /// The mean of the covered frames.
    #[id = "mean"]
    Mean,
    /// The per-band maximum of the covered frames.
    #[id = "max"]
    Max,
}

impl EchoicParams {
    /// What the worker reads every hop: slot settings and learn triggers. Allocation-free;
    /// callable from any thread.
    pub fn controls(&self) -> Controls {
        Controls {
            slots: std::array::from_fn(|i| self.slots[i].config()),
            learn: std::array::from_fn(|j| self.learn[j].learn.value()),
            learn_seconds: self.learn_seconds.value(),
            adapt: self.adapt.value(),
            history_minutes: self.history_minutes.value().max(1) as u32,
        }
    }

    /// The listening settings in force: the [requested](Self::requested_settings) ones fitted to
    /// what the pipeline can serve ([`ListenSettings::validated`]). Every consumer — activation,
    /// the worker, the editor — reads these. Allocation-free; callable from any thread.
    pub fn listen_settings(&self) -> ListenSettings {
        self.requested_settings().validated()
    }

    /// The listening settings exactly as the parameters ask for them, possibly beyond what the
    /// pipeline serves (Steps 16 with Dilation 4, say); for telling the user what was adjusted.
    /// Allocation-free; callable from any thread.
    pub fn requested_settings(&self) -> ListenSettings {
        ListenValues {
            bands: self.bands.value(),
            low_hz: self.low_hz.value(),
            high_hz: self.high_hz.value(),
            hop_ms: self.hop_ms.value(),
            steps: self.steps.value(),
            dilation: self.dilation.value(),
            kind: self.dilation_kind.value(),
            pooling: self.pooling.value(),
        }
        .settings()
    }

    /// Sets the listening parameters to `settings` (a model's) through the host, as a user's
    /// gesture: the other direction of [`Self::requested_settings`].
    pub fn adopt_settings(&self, setter: &ParamSetter, settings: &ListenSettings) {
        fn set<P: Param>(setter: &ParamSetter, param: &P, value: P::Plain) {
            setter.begin_set_parameter(param);
            setter.set_parameter(param, value);
            setter.end_set_parameter(param);
        }
        let v = ListenValues::of(settings);
        set(setter, &self.bands, v.bands);
        set(setter, &self.low_hz, v.low_hz);
        set(setter, &self.high_hz, v.high_hz);
        set(setter, &self.hop_ms, v.hop_ms);
        set(setter, &self.steps, v.steps);
        set(setter, &self.dilation, v.dilation);
        set(setter, &self.dilation_kind, v.kind);
        set(setter, &self.pooling, v.pooling);
    }
}

/// The listening parameters' plain values: the one place where [`ListenSettings`] and the
/// parameters' units and enums meet, so that reading the settings and setting the parameters to
/// a model's cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListenValues {
    /// `bands`: the number of bands.
    pub bands: i32,
    /// `low-hz`, Hz.
    pub low_hz: f32,
    /// `high-hz`, Hz.
    pub high_hz: f32,
    /// `hop-ms`: the hop in milliseconds (the settings count seconds).
    pub hop_ms: f32,
    /// `steps`.
    pub steps: i32,
    /// `dilation`.
    pub dilation: i32,
    /// `dilation-kind`.
    pub kind: DilationKind,
    /// `pooling`.
    pub pooling: PoolingMode,
}

impl ListenValues {
    /// The parameter values that ask for `settings`. Allocation-free.
    pub fn of(settings: &ListenSettings) -> Self {
        Self {
            bands: settings.n_bands as i32,
            low_hz: settings.low_hz as f32,
            high_hz: settings.high_hz as f32,
            hop_ms: (settings.hop_seconds * 1000.0) as f32,
            steps: settings.spec.steps as i32,
            dilation: settings.spec.dilation as i32,
            kind: match settings.spec.kind {
                Dilation::Exponential => DilationKind::Exponential,
                Dilation::Linear => DilationKind::Linear,
            },
            pooling: match settings.spec.pooling {
                Pooling::Pick => PoolingMode::Pick,
                Pooling::Mean => PoolingMode::Mean,
                Pooling::Max => PoolingMode::Max,
            },
        }
    }

    /// The settings these values ask for. Allocation-free.
    pub fn settings(self) -> ListenSettings {
        ListenSettings {
            n_bands: self.bands.max(0) as usize,
            low_hz: self.low_hz as f64,
            high_hz: self.high_hz as f64,
            hop_seconds: self.hop_ms as f64 / 1000.0,
            spec: DilatedSpec {
                steps: self.steps.max(0) as usize,
                dilation: self.dilation.max(0) as usize,
                kind: match self.kind {
                    DilationKind::Exponential => Dilation::Exponential,
                    DilationKind::Linear => Dilation::Linear,
                },
                pooling: match self.pooling {
                    PoolingMode::Pick => Pooling::Pick,
                    PoolingMode::Mean => Pooling::Mean,
                    PoolingMode::Max => Pooling::Max,
                },
            },
        }
    }
}

impl Default for EchoicParams {
    fn default() -> Self {
        Self {
            bands: IntParam::new("Bands", 100, IntRange::Linear { min: 16, max: 128 })
                .non_automatable(),
            low_hz: FloatParam::new(
                "Lowest band",
                50.0,
                FloatRange::Skewed {
                    min: 20.0,
                    max: 500.0,
                    factor: FloatRange::skew_factor(-1.0),
                },
            )
            .with_unit(" Hz")
            .with_step_size(1.0)
            .non_automatable(),
            high_hz: FloatParam::new(
                "Highest band",
                8_000.0,
                FloatRange::Skewed {
                    min: 2_000.0,
                    max: 20_000.0,
                    factor: FloatRange::skew_factor(-1.0),
                },
            )
            .with_unit(" Hz")
            .with_step_size(10.0)
            .non_automatable(),
            hop_ms: FloatParam::new(
                "Hop",
                10.0,
                FloatRange::Linear {
                    min: 5.0,
                    max: 50.0,
                },
            )
            .with_unit(" ms")
            .with_step_size(0.5)
            .non_automatable(),
            steps: IntParam::new("Steps", 8, IntRange::Linear { min: 2, max: 16 })
                .non_automatable(),
            dilation: IntParam::new("Dilation", 2, IntRange::Linear { min: 1, max: 4 })
                .with_unit("×"),
            dilation_kind: EnumParam::new("Dilation spacing", DilationKind::Exponential),
            pooling: EnumParam::new("Pooling", PoolingMode::Pick),
            learn: std::array::from_fn(|j| LearnParams {
                learn: BoolParam::new(format!("Learn sound {}", j + 1), false),
            }),
            learn_seconds: FloatParam::new(
                "Learn length",
                2.0,
                FloatRange::Linear {
                    min: 0.5,
                    max: 10.0,
                },
            )
            .with_unit(" s")
            .with_step_size(0.1),
            adapt: BoolParam::new("Adapt", false),
            history_minutes: IntParam::new(
                "History",
                DEFAULT_HISTORY_MINUTES as i32,
                IntRange::Linear {
                    min: 1,
                    max: MAX_HISTORY_MINUTES as i32,
                },
            )
            .with_unit(" min")
            .non_automatable(),
            slots: std::array::from_fn(SlotParams::new),
            learned: Arc::new(Mutex::new(LearnedSounds::default())),
            model_path: Arc::new(Mutex::new(None)),
            adapted: Arc::new(Mutex::new(None)),
            editor_size: Arc::new(Mutex::new(crate::editor::DEFAULT_SIZE)),
            state_notes: Arc::new(Mutex::new(StateNotes::default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The enum parameters are saved by these ids: spelled out so that renaming or reordering a
    /// variant cannot silently change what a saved session means.
    #[test]
    fn enum_ids_are_pinned() {
        assert_eq!(DilationKind::ids(), Some(&["exponential", "linear"][..]));
        assert_eq!(DilationKind::from_index(0), DilationKind::Exponential);
        assert_eq!(DilationKind::from_index(1), DilationKind::Linear);
        assert_eq!(PoolingMode::ids(), Some(&["pick", "mean", "max"][..]));
        assert_eq!(PoolingMode::from_index(0), PoolingMode::Pick);
        assert_eq!(PoolingMode::from_index(1), PoolingMode::Mean);
        assert_eq!(PoolingMode::from_index(2), PoolingMode::Max);
    }

    /// Reading the settings and adopting a model's go through one mapping: settings that the
    /// parameters can hold come back unchanged, whatever the enums.
    #[test]
    fn listen_values_round_trip_the_settings() {
        let params = EchoicParams::default();
        assert_eq!(params.requested_settings(), ListenSettings::default());
        for (kind, pooling) in [
            (Dilation::Exponential, Pooling::Pick),
            (Dilation::Linear, Pooling::Mean),
            (Dilation::Linear, Pooling::Max),
        ] {
            let settings = ListenSettings {
                n_bands: 64,
                low_hz: 80.0,
                high_hz: 12_000.0,
                hop_seconds: 0.02,
                spec: DilatedSpec {
                    steps: 12,
                    dilation: 3,
                    kind,
                    pooling,
                },
            };
            assert_eq!(ListenValues::of(&settings).settings(), settings);
        }
    }
}
