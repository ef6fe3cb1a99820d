//! Runs on the worker: one slot's configuration and its shaping.
//!
//! One output slot: what it follows, how the value is shaped, and where it is sent.
//!
//! The shaping chain, applied once per hop to the source's normalised value `x` (0..1):
//! 1. in-range window: `y = clamp((x − in_low) / (in_high − in_low), 0, 1)` (a step at `in_low`
//!    when the two are equal; `in_low > in_high` inverts);
//! 2. invert: `y = 1 − y` when `invert` is set;
//! 3. out-range: `z = out_low + y · (out_high − out_low)`;
//! 4. rise/fall smoothing: a one-pole `v ← z + a · (v − z)` at the hop rate, with
//!    `a = exp(−hop / τ)` and `τ` the rise time while `z > v` and the fall time otherwise, so
//!    that a step reaches 63 % (1 − 1/e) of its height after `τ`. `τ = 0` follows at once.
//!
//! Smoothing comes last so that "rise" always means the sent value going up.

use super::cc::CcConfig;
use super::pca::MAX_AXES;
use super::source::{unit, Source, MAX_LEARNED};
use super::N_SLOTS;

/// Everything the user sets on one output slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlotConfig {
    /// Whether the slot sends MIDI: eight slots exist, a user wires up only the few they need.
    pub enabled: bool,
    /// What the slot follows.
    pub source: Source,
    /// Source value (0..1) that maps to the bottom of the output range: lets the user zoom in on
    /// the part of a source's range that their material actually uses.
    pub in_low: f32,
    /// Source value (0..1) that maps to the top of the output range.
    pub in_high: f32,
    /// Turns the value upside down (after the in-range window), e.g. "more novel → quieter".
    pub invert: bool,
    /// Output value (0..1) at the bottom of the in-range: limits how far a parameter moves.
    pub out_low: f32,
    /// Output value (0..1) at the top of the in-range.
    pub out_high: f32,
    /// Time constant in ms while the output rises: fast attack, slow release (or the reverse)
    /// is how envelope followers are tuned.
    pub rise_ms: f32,
    /// Time constant in ms while the output falls.
    pub fall_ms: f32,
    /// Where the value goes: channel, controller number, resolution.
    pub cc: CcConfig,
}

/// Default rise and fall time, ms: smooths the hop-to-hop jitter of the features (a few hops)
/// without making the automation feel late.
pub const DEFAULT_SMOOTHING_MS: f32 = 50.0;
/// The controller number of the first slot; slot `i` sends on `DEFAULT_FIRST_CC + i` (20..27,
/// controllers MIDI leaves undefined, so nothing in a synth reacts to them by default).
pub const DEFAULT_FIRST_CC: u8 = 20;
/// How many slots are on by default: the first three principal axes.
pub const DEFAULT_ENABLED_SLOTS: usize = 3;

impl SlotConfig {
    /// The defaults for slot `index` (0-based): slots 0..3 on; slot `i` follows principal axis
    /// `i` on CC `20 + i`, channel 1 (0 on the wire), 7-bit, full ranges, 50 ms smoothing.
    /// Allocation-free.
    pub fn default_for(index: usize) -> Self {
        let index = index.min(N_SLOTS - 1);
        Self {
            enabled: index < DEFAULT_ENABLED_SLOTS,
            source: Source::Axis((index % MAX_AXES) as u8),
            in_low: 0.0,
            in_high: 1.0,
            invert: false,
            out_low: 0.0,
            out_high: 1.0,
            rise_ms: DEFAULT_SMOOTHING_MS,
            fall_ms: DEFAULT_SMOOTHING_MS,
            cc: CcConfig {
                channel: 0,
                cc: DEFAULT_FIRST_CC + index as u8,
                fourteen_bit: false,
            },
        }
    }

    /// The defaults of all eight slots. Allocation-free.
    pub fn defaults() -> [SlotConfig; N_SLOTS] {
        std::array::from_fn(Self::default_for)
    }

    /// The in-range, invert and out-range steps (not the smoothing) applied to a normalised
    /// source value. Allocation-free.
    pub fn map(&self, x: f32) -> f32 {
        let x = unit(x);
        let (lo, hi) = (unit(self.in_low), unit(self.in_high));
        let y = if hi == lo {
            if x >= lo {
                1.0
            } else {
                0.0
            }
        } else {
            unit((x - lo) / (hi - lo))
        };
        let y = if self.invert { 1.0 - y } else { y };
        let (lo, hi) = (unit(self.out_low), unit(self.out_high));
        unit(lo + y * (hi - lo))
    }

    /// Whether the slot's source exists (its axis or sound index is in range). Allocation-free.
    pub fn source_is_valid(&self) -> bool {
        match self.source {
            Source::Axis(k) => (k as usize) < MAX_AXES,
            Source::Similarity(j) => (j as usize) < MAX_LEARNED,
            _ => true,
        }
    }
}

impl Default for SlotConfig {
    /// The first slot's defaults. Allocation-free.
    fn default() -> Self {
        Self::default_for(0)
    }
}

/// The one-pole coefficient `exp(−hop / τ)` for a time constant in ms; 0 (no smoothing) for
/// `τ ≤ 0` or non-finite. Allocation-free.
pub fn smoothing_coefficient(tau_ms: f32, hop_seconds: f64) -> f32 {
    if tau_ms.is_nan() || tau_ms <= 0.0 || !tau_ms.is_finite() {
        return 0.0;
    }
    (-(hop_seconds * 1000.0) / tau_ms as f64).exp() as f32
}

/// The running state of one slot's shaping: the smoothed value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SlotShaper {
    /// The smoothed output: what the one-pole remembers between hops.
    value: f32,
    /// False until the first hop, which jumps straight to its target so that the outputs do not
    /// glide up from 0 whenever processing starts.
    started: bool,
}

impl SlotShaper {
    /// A shaper that jumps to its first target. Allocation-free.
    pub const fn new() -> Self {
        Self {
            value: 0.0,
            started: false,
        }
    }

    /// Sets the smoothed value, as if it had settled there. Allocation-free.
    pub fn set(&mut self, value: f32) {
        self.value = unit(value);
        self.started = true;
    }

    /// Forgets the state: the next hop jumps to its target. Allocation-free.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The current smoothed value, 0..1. Allocation-free.
    pub fn value(&self) -> f32 {
        self.value
    }

    /// Advances one hop of `hop_seconds` towards the shaped `source01` and returns the new
    /// value, 0..1. Allocation-free.
    pub fn step(&mut self, source01: f32, config: &SlotConfig, hop_seconds: f64) -> f32 {
        let target = config.map(source01);
        if !self.started {
            self.set(target);
            return self.value;
        }
        let tau = if target > self.value {
            config.rise_ms
        } else {
            config.fall_ms
        };
        let a = smoothing_coefficient(tau, hop_seconds);
        self.value = unit(target + a * (self.value - target));
        self.value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOP: f64 = 0.010;

    #[test]
    fn defaults_match_the_issue() {
        let slots = SlotConfig::defaults();
        for (i, s) in slots.iter().enumerate() {
            assert_eq!(s.enabled, i < 3, "slot {i}");
            assert_eq!(s.source, Source::Axis(i as u8));
            assert_eq!(s.cc.cc, 20 + i as u8);
            assert_eq!(s.cc.channel, 0, "channel 1 on the wire is 0");
            assert!(!s.cc.fourteen_bit);
        }
    }

    #[test]
    fn ranges_and_invert_map_as_documented() {
        let mut c = SlotConfig {
            in_low: 0.2,
            in_high: 0.6,
            ..SlotConfig::default()
        };
        assert_eq!(c.map(0.1), 0.0);
        assert!((c.map(0.4) - 0.5).abs() < 1e-6);
        assert_eq!(c.map(0.9), 1.0);
        c.invert = true;
        assert!((c.map(0.3) - 0.75).abs() < 1e-6);
        c.out_low = 0.5;
        c.out_high = 0.7;
        assert!((c.map(0.3) - 0.65).abs() < 1e-6);
        assert!((c.map(0.0) - 0.7).abs() < 1e-6);
        let step = SlotConfig {
            in_low: 0.5,
            in_high: 0.5,
            ..SlotConfig::default()
        };
        assert_eq!(step.map(0.49), 0.0);
        assert_eq!(step.map(0.5), 1.0);
        assert_eq!(SlotConfig::default().map(f32::NAN), 0.0);
    }

    /// Hops until a step response first reaches 1 − 1/e of its height.
    fn hops_to_63_percent(config: &SlotConfig, from: f32, to: f32) -> usize {
        let mut s = SlotShaper::new();
        s.step(from, config, HOP);
        let goal = from + (to - from) * (1.0 - (-1.0f32).exp());
        (1..10_000)
            .find(|_| {
                let v = s.step(to, config, HOP);
                if to > from {
                    v >= goal - 1e-5
                } else {
                    v <= goal + 1e-5
                }
            })
            .unwrap()
    }

    #[test]
    fn smoothing_reaches_63_percent_after_tau() {
        let c = SlotConfig {
            rise_ms: 100.0,
            fall_ms: 400.0,
            ..SlotConfig::default()
        };
        // 100 ms = 10 hops of 10 ms; 400 ms = 40 hops.
        assert_eq!(hops_to_63_percent(&c, 0.0, 1.0), 10);
        assert_eq!(hops_to_63_percent(&c, 1.0, 0.0), 40);
        // The measured value after exactly τ.
        let mut s = SlotShaper::new();
        s.step(0.0, &c, HOP);
        let v = (0..10).map(|_| s.step(1.0, &c, HOP)).last().unwrap();
        assert!((v - 0.632_120_6).abs() < 1e-4, "{v}");
        // A different hop keeps the time constant in seconds.
        let mut s = SlotShaper::new();
        s.step(0.0, &c, 0.005);
        let v = (0..20).map(|_| s.step(1.0, &c, 0.005)).last().unwrap();
        assert!((v - 0.632_120_6).abs() < 1e-4, "{v}");
        // Zero time constant follows at once.
        let instant = SlotConfig {
            rise_ms: 0.0,
            fall_ms: 0.0,
            ..SlotConfig::default()
        };
        let mut s = SlotShaper::new();
        s.step(0.0, &instant, HOP);
        assert_eq!(s.step(0.8, &instant, HOP), 0.8);
        assert_eq!(s.step(0.1, &instant, HOP), 0.1);
    }

    #[test]
    fn first_hop_jumps_to_the_target() {
        let mut s = SlotShaper::new();
        assert_eq!(s.step(0.7, &SlotConfig::default(), HOP), 0.7);
        s.reset();
        assert_eq!(s.step(0.2, &SlotConfig::default(), HOP), 0.2);
    }
}
