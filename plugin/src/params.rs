//! Echoic's parameters. The `#[id]`s are part of the saved state and of host automation lanes, so
//! they never change once released.

use nice_plug::prelude::*;

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
}

impl Default for EchoicParams {
    fn default() -> Self {
        Self {
            bands: IntParam::new("Bands", 100, IntRange::Linear { min: 16, max: 128 })
                .non_automatable(),
            low_hz: FloatParam::new(
                "Lowest band",
                50.0,
                FloatRange::Skewed { min: 20.0, max: 500.0, factor: FloatRange::skew_factor(-1.0) },
            )
            .with_unit(" Hz")
            .with_step_size(1.0)
            .non_automatable(),
            high_hz: FloatParam::new(
                "Highest band",
                16_000.0,
                FloatRange::Skewed {
                    min: 2_000.0,
                    max: 20_000.0,
                    factor: FloatRange::skew_factor(-1.0),
                },
            )
            .with_unit(" Hz")
            .with_step_size(10.0)
            .non_automatable(),
            hop_ms: FloatParam::new("Hop", 10.0, FloatRange::Linear { min: 5.0, max: 50.0 })
                .with_unit(" ms")
                .with_step_size(0.5)
                .non_automatable(),
        }
    }
}
