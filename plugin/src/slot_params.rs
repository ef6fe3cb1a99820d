//! Parameters of one automation output slot. The eight slots are nested as an array in
//! [`crate::params::EchoicParams`], so their ids are `slot-…_1` to `slot-…_8`.

use echoic_core::outputs::cc::CcConfig;
use echoic_core::outputs::slot::SlotConfig;
use echoic_core::outputs::source::{Source, SAVED_SOURCES};
use nice_plug::prelude::*;
use std::sync::Arc;

/// One slot: what it follows, how that is shaped, and where it is sent.
#[derive(Params)]
pub struct SlotParams {
    /// Whether the slot sends MIDI at all.
    #[id = "slot-on"]
    pub enabled: BoolParam,
    /// What the slot follows, as its saved integer ([`Source::saved_index`]): sessions and
    /// automation lanes hold that integer, which keeps its meaning as sources are added.
    #[id = "slot-source"]
    pub source: IntParam,
    /// Source value mapped to the bottom of the output range, in percent of the source's range.
    #[id = "slot-in-low"]
    pub in_low: FloatParam,
    /// Source value mapped to the top of the output range.
    #[id = "slot-in-high"]
    pub in_high: FloatParam,
    /// Turns the response upside down.
    #[id = "slot-invert"]
    pub invert: BoolParam,
    /// Lowest value sent, in percent of the CC range.
    #[id = "slot-out-low"]
    pub out_low: FloatParam,
    /// Highest value sent.
    #[id = "slot-out-high"]
    pub out_high: FloatParam,
    /// Smoothing time constant while the value rises.
    #[id = "slot-rise"]
    pub rise_ms: FloatParam,
    /// Smoothing time constant while the value falls.
    #[id = "slot-fall"]
    pub fall_ms: FloatParam,
    /// Controller number (the MSB in 14-bit mode).
    #[id = "slot-cc"]
    pub cc: IntParam,
    /// Sends an MSB/LSB pair (CC n and n+32) for 14-bit resolution.
    #[id = "slot-14bit"]
    pub fourteen_bit: BoolParam,
    /// MIDI channel, 1 to 16.
    #[id = "slot-channel"]
    pub channel: IntParam,
}

fn percent(name: &str, default: f32) -> FloatParam {
    FloatParam::new(
        name,
        default,
        FloatRange::Linear {
            min: 0.0,
            max: 100.0,
        },
    )
    .with_unit(" %")
    .with_step_size(0.1)
}

fn smoothing(name: &str, default: f32) -> FloatParam {
    FloatParam::new(
        name,
        default,
        FloatRange::Skewed {
            min: 1.0,
            max: 5_000.0,
            factor: FloatRange::skew_factor(-2.0),
        },
    )
    .with_unit(" ms")
    .with_step_size(0.1)
}

/// The source saved as the `slot-source` value `value`. Allocation-free.
fn source_of(value: i32) -> Option<Source> {
    Source::from_saved_index(usize::try_from(value).ok()?)
}

impl SlotParams {
    /// The parameters of slot `index` (0-based), defaulting to [`SlotConfig::default_for`].
    pub fn new(index: usize) -> Self {
        let d = SlotConfig::default_for(index);
        Self {
            enabled: BoolParam::new("On", d.enabled),
            source: IntParam::new(
                "Source",
                d.source.saved_index().unwrap_or(0) as i32,
                IntRange::Linear {
                    min: 0,
                    max: SAVED_SOURCES.len() as i32 - 1,
                },
            )
            .with_value_to_string(Arc::new(|i| {
                source_of(i).map_or("?", Source::name).to_owned()
            }))
            .with_string_to_value(Arc::new(|s| {
                (0..SAVED_SOURCES.len() as i32).find(|&i| {
                    source_of(i).is_some_and(|src| src.name().eq_ignore_ascii_case(s.trim()))
                })
            })),
            in_low: percent("In low", d.in_low * 100.0),
            in_high: percent("In high", d.in_high * 100.0),
            invert: BoolParam::new("Invert", d.invert),
            out_low: percent("Out low", d.out_low * 100.0),
            out_high: percent("Out high", d.out_high * 100.0),
            rise_ms: smoothing("Rise", d.rise_ms),
            fall_ms: smoothing("Fall", d.fall_ms),
            cc: IntParam::new("CC", d.cc.cc as i32, IntRange::Linear { min: 0, max: 119 }),
            fourteen_bit: BoolParam::new("14-bit", d.cc.fourteen_bit),
            channel: IntParam::new(
                "Channel",
                d.cc.channel as i32 + 1,
                IntRange::Linear { min: 1, max: 16 },
            ),
        }
    }

    /// What the slot follows. Allocation-free; callable from any thread.
    pub fn source(&self) -> Source {
        source_of(self.source.value()).unwrap_or(Source::Novelty)
    }

    /// Where the slot sends. Allocation-free; callable from any thread.
    pub fn cc_config(&self) -> CcConfig {
        CcConfig {
            channel: (self.channel.value() - 1).clamp(0, 15) as u8,
            cc: self.cc.value().clamp(0, 119) as u8,
            fourteen_bit: self.fourteen_bit.value(),
        }
    }

    /// The slot's full configuration. Allocation-free; callable from any thread.
    pub fn config(&self) -> SlotConfig {
        SlotConfig {
            enabled: self.enabled.value(),
            source: self.source(),
            in_low: self.in_low.value() / 100.0,
            in_high: self.in_high.value() / 100.0,
            invert: self.invert.value(),
            out_low: self.out_low.value() / 100.0,
            out_high: self.out_high.value() / 100.0,
            rise_ms: self.rise_ms.value(),
            fall_ms: self.fall_ms.value(),
            cc: self.cc_config(),
        }
    }
}
