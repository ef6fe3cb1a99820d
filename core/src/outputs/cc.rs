//! Runs on the audio thread: slot values to timed MIDI control changes.
//!
//! The audio-thread side of the outputs: turning a slot's 0..1 value into MIDI control changes,
//! sending only real changes.
//!
//! # When a value is sent
//! Let `v` be the value in steps of the chosen resolution (`value01 · 127`, or `· 16383` for
//! 14-bit) and `q` the last value sent. A new value `round(v)` is sent when
//! - nothing has been sent yet, or the channel, controller or resolution changed;
//! - `|v − q| ≥ 0.5 + h`: `v` moved past the rounding boundary by the hysteresis `h`
//!   ([`HYSTERESIS_7BIT`] = ¼ step, [`HYSTERESIS_14BIT`] = 4 fine steps), so noise of less than
//!   `h` around a boundary never toggles the value; or
//! - `round(v) ≠ q` on [`SETTLE_UPDATES`] consecutive updates: a value that settled inside the
//!   hysteresis band but rounds elsewhere is still sent, so no lasting change is lost. Noise
//!   straddling a boundary rarely stays on one side that long (for a fair coin, once in ~2000
//!   updates).
//!
//! At most one value (one message, or an MSB/LSB pair) per update, so at most one per hop.

/// Hysteresis of 7-bit output, in 7-bit steps beyond the rounding boundary.
pub const HYSTERESIS_7BIT: f32 = 0.25;
/// Hysteresis of 14-bit output, in 14-bit steps beyond the rounding boundary (1/32 of a 7-bit
/// step: a ramp is sent every 4.5 fine steps, about 12 bits of effective resolution, while the
/// settle rule still delivers the exact value once it holds still).
pub const HYSTERESIS_14BIT: f32 = 4.0;
/// Consecutive updates whose rounded value differs from the last sent, after which it is sent
/// even inside the hysteresis band (10 hops = 100 ms at a 10 ms hop).
pub const SETTLE_UPDATES: u8 = 10;
/// The highest controller number sent: 120..127 are channel mode messages (all notes off, ...).
pub const MAX_CC: u8 = 119;
/// The highest controller that can carry a 14-bit value: its LSB partner `cc + 32` must be a
/// controller too (MIDI 1.0 pairs 0..31 with 32..63).
pub const MAX_14BIT_CC: u8 = 31;

/// Where a slot's value is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CcConfig {
    /// MIDI channel, 0..15 on the wire (shown to the user as 1..16); larger values are clamped.
    pub channel: u8,
    /// Controller number (0..119; larger values are clamped to [`MAX_CC`]); the MSB in 14-bit
    /// mode.
    pub cc: u8,
    /// Sends 14-bit values as an MSB on `cc` and an LSB on `cc + 32`, for parameters that step
    /// audibly at 7 bits. Only for `cc` ≤ [`MAX_14BIT_CC`]; above, 7-bit is sent instead.
    pub fourteen_bit: bool,
}

impl Default for CcConfig {
    /// CC 20 on channel 1 (0 on the wire), 7-bit. Allocation-free.
    fn default() -> Self {
        Self {
            channel: 0,
            cc: super::slot::DEFAULT_FIRST_CC,
            fourteen_bit: false,
        }
    }
}

impl CcConfig {
    /// The channel actually sent, 0..15. Allocation-free.
    pub fn wire_channel(&self) -> u8 {
        self.channel.min(15)
    }

    /// The controller actually sent (the MSB in 14-bit mode). Allocation-free.
    pub fn wire_cc(&self) -> u8 {
        self.cc.min(MAX_CC)
    }

    /// Whether 14-bit values are sent: asked for, and possible on this controller.
    /// Allocation-free.
    pub fn is_fourteen_bit(&self) -> bool {
        self.fourteen_bit && self.cc <= MAX_14BIT_CC
    }

    /// The largest value at this resolution: 127 or 16383. Allocation-free.
    pub fn max_value(&self) -> u16 {
        if self.is_fourteen_bit() {
            16_383
        } else {
            127
        }
    }
}

/// What one slot last sent, and its pending change. Lives on the audio thread.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CcEmitter {
    /// The value last sent (at the resolution of `sent_with`): the reference the hysteresis is
    /// measured from.
    last: u16,
    /// The destination `last` was sent to; `None` before the first send. A changed destination
    /// sends at once, so the new target learns the current value.
    sent_with: Option<CcConfig>,
    /// How many consecutive updates have rounded to something other than `last`: the settle
    /// rule's counter.
    pending: u8,
}

impl CcEmitter {
    /// An emitter that sends on its first update. Allocation-free.
    pub const fn new() -> Self {
        Self {
            last: 0,
            sent_with: None,
            pending: 0,
        }
    }

    /// Forgets what was sent: the next update sends (after a transport restart or a state
    /// load, say). Allocation-free.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// The last value sent (0..127 or 0..16383), `None` before the first. Allocation-free.
    pub fn last_sent(&self) -> Option<u16> {
        self.sent_with.map(|_| self.last)
    }

    /// Offers this hop's value (0..1; NaN is ignored) and calls `send(channel, cc, value7)` for
    /// every message to send: none, one (7-bit), or an MSB/LSB pair (14-bit, MSB first, as MIDI
    /// 1.0 requires, both always sent so that receivers that reset the LSB on an MSB stay
    /// correct). Returns whether anything was sent. Real-time safe: no allocation, lock or
    /// system call.
    pub fn update(
        &mut self,
        value01: f32,
        cfg: &CcConfig,
        mut send: impl FnMut(u8, u8, u8),
    ) -> bool {
        if value01.is_nan() {
            return false;
        }
        let max = cfg.max_value();
        let v = value01.clamp(0.0, 1.0) * max as f32;
        let rounded = (v.round() as u16).min(max);
        let hysteresis = if cfg.is_fourteen_bit() {
            HYSTERESIS_14BIT
        } else {
            HYSTERESIS_7BIT
        };
        let fire = if self.sent_with != Some(*cfg) {
            true
        } else if rounded == self.last {
            self.pending = 0;
            false
        } else if (v - self.last as f32).abs() >= 0.5 + hysteresis {
            true
        } else {
            self.pending = self.pending.saturating_add(1);
            self.pending >= SETTLE_UPDATES
        };
        if !fire {
            return false;
        }
        let (channel, cc) = (cfg.wire_channel(), cfg.wire_cc());
        if cfg.is_fourteen_bit() {
            send(channel, cc, (rounded >> 7) as u8);
            send(channel, cc + 32, (rounded & 0x7f) as u8);
        } else {
            send(channel, cc, rounded as u8);
        }
        self.last = rounded;
        self.sent_with = Some(*cfg);
        self.pending = 0;
        true
    }
}

/// Places one audio block's events: each at its offset inside the block, and never before the
/// event placed just before it, so that a block's events leave in time order, as CLAP and VST3
/// require, whatever positions they carry. Lives on the audio thread, one per block.
///
/// ```
/// use echoic_core::outputs::cc::BlockTiming;
///
/// let mut timing = BlockTiming::new(900, 256); // the block holds samples 900..1156
/// assert_eq!(timing.place(1_000), 100);
/// assert_eq!(timing.place(800), 100, "late: as early as the order allows");
/// assert_eq!(timing.place(5_000), 255, "beyond the block: its last sample");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct BlockTiming {
    /// Absolute position of the block's first sample.
    start: u64,
    /// Samples in the block.
    len: u32,
    /// Offset of the last event placed: no later event goes before it.
    last: u32,
}

impl BlockTiming {
    /// Timing for a block of `len` samples starting at absolute sample `start`. Allocation-free.
    pub fn new(start: u64, len: u32) -> Self {
        Self {
            start,
            len,
            last: 0,
        }
    }

    /// The offset for an event at absolute sample `event_pos`: its place in the block; the
    /// previous event's offset when that is later (an event from a past block — the worker
    /// answered late — is sent as early as the order allows); the last sample for a position
    /// beyond the block. Always `< len` (0 for an empty block) and never less than the previous
    /// call's. Allocation-free.
    pub fn place(&mut self, event_pos: u64) -> u32 {
        let offset = event_pos
            .saturating_sub(self.start)
            .min(u64::from(self.len.saturating_sub(1))) as u32;
        self.last = self.last.max(offset);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic uniform noise source in −1..1.
    fn noise(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn run(values: impl IntoIterator<Item = f32>, cfg: &CcConfig) -> Vec<(u8, u8, u8)> {
        let mut emitter = CcEmitter::new();
        let mut sent = Vec::new();
        for v in values {
            emitter.update(v, cfg, |ch, cc, val| sent.push((ch, cc, val)));
        }
        sent
    }

    #[test]
    fn noise_around_a_step_boundary_does_not_flood() {
        let cfg = CcConfig::default();
        let mut seed = 1;
        // Centred on the boundary between 63 and 64, ±0.2 steps of noise, 10 s of hops.
        let values: Vec<f32> = (0..1000)
            .map(|_| (63.5 + 0.2 * noise(&mut seed)) / 127.0)
            .collect();
        let naive = values
            .windows(2)
            .filter(|w| (w[0] * 127.0).round() != (w[1] * 127.0).round())
            .count();
        let sent = run(values.iter().copied(), &cfg);
        assert!(
            naive > 300,
            "the test input must toggle the rounded value often: {naive}"
        );
        assert!(
            sent.len() <= 5,
            "{} messages for 1000 noisy hops",
            sent.len()
        );
        // A slow drift across several boundaries with noise: one message per step crossed, or
        // close to it, rather than one per toggle.
        let values: Vec<f32> = (0..2000)
            .map(|i| (60.0 + i as f32 * 0.002 + 0.2 * noise(&mut seed)) / 127.0)
            .collect();
        let sent = run(values.iter().copied(), &cfg);
        let distinct = 64 - 60 + 1;
        assert!(
            sent.len() <= distinct + 3,
            "{} messages for a drift over {distinct} values",
            sent.len()
        );
        assert!(
            sent.windows(2).all(|w| w[1].2 > w[0].2),
            "a drift sent back and forth: {sent:?}"
        );
    }

    #[test]
    fn every_real_change_is_sent() {
        let cfg = CcConfig {
            channel: 3,
            cc: 21,
            fourteen_bit: false,
        };
        let mut emitter = CcEmitter::new();
        let mut sent = Vec::new();
        for target in [0u8, 1, 2, 10, 127, 126, 64, 65, 64, 0] {
            for _ in 0..3 {
                emitter.update(target as f32 / 127.0, &cfg, |ch, cc, v| {
                    sent.push((ch, cc, v))
                });
            }
        }
        let values: Vec<u8> = sent.iter().map(|m| m.2).collect();
        assert_eq!(values, vec![0, 1, 2, 10, 127, 126, 64, 65, 64, 0]);
        assert!(sent.iter().all(|m| m.0 == 3 && m.1 == 21));
        // A value that settles inside the hysteresis band is sent once it holds.
        let mut emitter = CcEmitter::new();
        let mut last = None;
        emitter.update(100.0 / 127.0, &cfg, |_, _, v| last = Some(v));
        let mut count = 0;
        for _ in 0..20 {
            if emitter.update(100.6 / 127.0, &cfg, |_, _, v| last = Some(v)) {
                count += 1;
            }
        }
        assert_eq!((count, last), (1, Some(101)));
        assert_eq!(emitter.last_sent(), Some(101));
    }

    #[test]
    fn fourteen_bit_sends_msb_then_lsb() {
        let cfg = CcConfig {
            channel: 0,
            cc: 7,
            fourteen_bit: true,
        };
        let sent = run([0.5, 0.5, 1.0, 0.0], &cfg);
        let half = (0.5f32 * 16383.0).round() as u16; // 8192
        assert_eq!(
            sent,
            vec![
                (0, 7, (half >> 7) as u8),
                (0, 39, (half & 127) as u8),
                (0, 7, 127),
                (0, 39, 127),
                (0, 7, 0),
                (0, 39, 0)
            ]
        );
        // Fine steps are resolved: 20 fine steps is a fraction of a 7-bit step.
        let sent = run([0.5, 0.5 + 20.0 / 16383.0], &cfg);
        assert_eq!(sent.len(), 4);
        assert_eq!(sent[3].2, ((half + 20) & 127) as u8);
        // A controller without an LSB partner falls back to 7-bit.
        let high = CcConfig {
            channel: 0,
            cc: 40,
            fourteen_bit: true,
        };
        assert_eq!(run([1.0], &high), vec![(0, 40, 127)]);
    }

    #[test]
    fn changed_destination_resends_and_reset_resends() {
        let mut emitter = CcEmitter::new();
        let a = CcConfig::default();
        let b = CcConfig { cc: 30, ..a };
        let mut n = 0;
        assert!(emitter.update(0.5, &a, |_, _, _| n += 1));
        assert!(!emitter.update(0.5, &a, |_, _, _| n += 1));
        assert!(emitter.update(0.5, &b, |_, _, _| n += 1));
        emitter.reset();
        assert!(emitter.update(0.5, &b, |_, _, _| n += 1));
        assert!(!emitter.update(f32::NAN, &b, |_, _, _| n += 1));
        assert_eq!(n, 3);
        // Out-of-range channel and controller are clamped onto the wire.
        let wild = CcConfig {
            channel: 20,
            cc: 127,
            fourteen_bit: false,
        };
        assert_eq!((wild.wire_channel(), wild.wire_cc()), (15, MAX_CC));
    }

    #[test]
    fn a_blocks_events_are_placed_in_order_inside_it() {
        let mut timing = BlockTiming::new(900, 256);
        let placed: Vec<u32> = [1_000, 950, 800, 1_100, 5_000, 1_000, 0]
            .map(|p| timing.place(p))
            .to_vec();
        assert_eq!(placed, vec![100, 100, 100, 200, 255, 255, 255]);
        let mut empty = BlockTiming::new(900, 0);
        assert_eq!((empty.place(5_000), empty.place(0)), (0, 0));
        let mut single = BlockTiming::new(0, 1);
        assert_eq!((single.place(u64::MAX), single.place(0)), (0, 0));
    }
}
