//! Runs on the worker: the echoic memory of recent frames.
//!
//! Echoic memory: a circular buffer of the most recent frames, as the worker keeps them, with
//! running summaries that answer "the mean" and "the maximum" of any stretch of it in constant
//! time. Runs on the worker.
//!
//! # Cost
//! Everything is allocated in [`EchoicMemory::new`]; [`EchoicMemory::bytes_needed`] says how
//! much. Afterwards a frame costs `O(bands · log₂ capacity)` to store and a window query
//! `O(bands)`, whatever the window's length, so the worker's work per hop does not grow with the
//! look-back.
//!
//! ```
//! use echoic_core::frame::Frame;
//! use echoic_core::memory::EchoicMemory;
//!
//! let mut memory = EchoicMemory::new(4, 1); // allocates, once
//! for seq in 0..6 {
//!     let mut frame = Frame::silent(1);
//!     frame.seq = seq;
//!     frame.bands[0] = seq as f32;
//!     memory.push(&frame); // allocation-free
//! }
//! let mut out = [0.0];
//! memory.mean_back(0, 3, &mut out); // frames 5, 4, 3, 2
//! assert_eq!(out[0], 3.5);
//! memory.max_back(1, 3, &mut out);
//! assert_eq!(out[0], 4.0);
//! ```

use crate::frame::{Frame, MAX_BANDS};

/// Fixed-point scale of the running sums: 2²⁰ steps per dB. Sums of integers are exact, so a
/// window's mean never drifts however long the memory runs; a step of 1e-6 dB is finer than an
/// `f32`'s resolution at the energies frames carry.
const SUM_SCALE: f64 = (1u64 << 20) as f64;

/// Energies are clamped to ±this many dB before they enter the running sums, so that even a
/// window of 4096 such frames cannot overflow an `i64`.
const SUM_CLAMP_DB: f64 = 1.0e6;

/// The last `capacity` frames' band energies, newest last. Gaps from dropped frames and frames
/// spoilt by bad input are filled by holding the last good frame, so that "k frames back" always
/// means k hops back in time.
pub struct EchoicMemory {
    /// How many frames it holds when full: the longest look-back of the dilated buffer.
    capacity: usize,
    /// Bands per frame.
    n_bands: usize,
    /// `capacity × n_bands` energies, frame-major; frame number `n` lives in row `n % capacity`.
    data: Vec<f32>,
    /// `(capacity + 1) × n_bands` fixed-point prefix sums: row `n % (capacity + 1)` holds the
    /// sum of frames `0..n`, so that any window's sum is one subtraction. Wrapping arithmetic: a
    /// difference of two rows is exact even after the running total wraps.
    prefix: Vec<i64>,
    /// Sparse table for window maxima: level `k` (1-based; level 0 is `data`) holds, in row
    /// `n % capacity`, the per-band maximum of frames `n − 2^k + 1 ..= n`. `⌊log₂ capacity⌋`
    /// levels, each `capacity × n_bands`.
    maxima: Vec<Vec<f32>>,
    /// Frames stored since the last restart: the number the next frame gets.
    stored: u64,
    /// Sequence number expected next, to detect gaps.
    next_seq: Option<u64>,
    /// Configuration of the frames held; a frame of another configuration restarts the memory.
    config_id: Option<u32>,
}

impl EchoicMemory {
    /// An empty memory of `capacity` frames (at least 1) of `n_bands` bands. Allocates
    /// [`bytes_needed`](Self::bytes_needed), once.
    pub fn new(capacity: usize, n_bands: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            n_bands,
            data: vec![0.0; capacity * n_bands],
            prefix: vec![0; (capacity + 1) * n_bands],
            maxima: (0..max_levels(capacity))
                .map(|_| vec![0.0; capacity * n_bands])
                .collect(),
            stored: 0,
            next_seq: None,
            config_id: None,
        }
    }

    /// The bytes [`new`](Self::new) allocates for this capacity and band count: frames, running
    /// sums and the maxima table. Allocation-free.
    pub fn bytes_needed(capacity: usize, n_bands: usize) -> usize {
        let capacity = capacity.max(1);
        let frames = capacity * n_bands * size_of::<f32>();
        let sums = (capacity + 1) * n_bands * size_of::<i64>();
        frames + sums + max_levels(capacity) * frames
    }

    /// Frames held when full. Allocation-free.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bands per frame. Allocation-free.
    pub fn n_bands(&self) -> usize {
        self.n_bands
    }

    /// Frames held now. Allocation-free.
    pub fn len(&self) -> usize {
        self.stored.min(self.capacity as u64) as usize
    }

    /// Whether no frame has arrived since the last restart. Allocation-free.
    pub fn is_empty(&self) -> bool {
        self.stored == 0
    }

    /// Whether the memory is not yet full, so that look-backs repeat its oldest frame.
    /// Allocation-free.
    pub fn is_warming_up(&self) -> bool {
        self.len() < self.capacity
    }

    /// Forgets every frame. Allocation-free.
    pub fn clear(&mut self) {
        self.stored = 0;
        self.next_seq = None;
        self.config_id = None;
        self.prefix[..self.n_bands].fill(0);
    }

    /// Takes in a frame from the cochlea. A frame whose band count differs from the memory's is
    /// ignored and `false` returned. A change of configuration, or a sequence restart (the
    /// cochlea was reset), clears the memory first. Missing sequence numbers and invalid frames
    /// hold the previous frame (at most a whole memory's worth). Allocation-free.
    ///
    /// ```
    /// use echoic_core::frame::Frame;
    /// use echoic_core::memory::EchoicMemory;
    ///
    /// let mut memory = EchoicMemory::new(8, 2); // allocates, once
    /// let mut frame = Frame::silent(2);
    /// for (seq, db) in [(0, -40.0), (1, -30.0), (3, -20.0)] {
    ///     frame.seq = seq;
    ///     frame.bands[..2].fill(db);
    ///     assert!(memory.push(&frame)); // allocation-free
    /// }
    /// // The newest frame is the last pushed; frame 2 never arrived, so frame 1 is held in its
    /// // place and "k frames back" still means k hops back.
    /// assert_eq!(memory.frame_back(0), Some(frame.energies()));
    /// assert_eq!(memory.frame_back(1), Some(&[-30.0, -30.0][..]));
    /// assert_eq!(memory.len(), 4);
    /// // A frame with another band count is refused.
    /// assert!(!memory.push(&Frame::silent(3)));
    /// ```
    pub fn push(&mut self, frame: &Frame) -> bool {
        if frame.n_bands as usize != self.n_bands {
            return false;
        }
        let restarted = self.config_id != Some(frame.config_id)
            || self.next_seq.is_some_and(|expected| frame.seq < expected);
        if restarted {
            self.clear();
            self.config_id = Some(frame.config_id);
        }
        if let Some(expected) = self.next_seq {
            let missing = (frame.seq - expected).min(self.capacity as u64);
            for _ in 0..missing {
                self.hold_last();
            }
        }
        self.next_seq = Some(frame.seq + 1);
        if frame.valid {
            self.store(frame.energies());
        } else {
            self.hold_last();
        }
        true
    }

    /// The energies of the frame `back` hops before the newest (0 = newest). While warming up,
    /// look-backs past the oldest frame return the oldest. `None` while empty. Allocation-free.
    pub fn frame_back(&self, back: usize) -> Option<&[f32]> {
        if self.is_empty() {
            return None;
        }
        let number = self.stored - 1 - (back.min(self.len() - 1) as u64);
        Some(self.row(number))
    }

    /// Writes the per-band mean of the frames `first ..= last` hops back (0 = newest) into
    /// `out`; look-backs past the oldest frame count as the oldest frame, as in
    /// [`frame_back`](Self::frame_back). Returns `false`, leaving `out` alone, while empty.
    /// Constant time in the window's length; allocation-free.
    ///
    /// # Panics
    /// If `first > last` or `out.len() != n_bands`.
    pub fn mean_back(&self, first: usize, last: usize, out: &mut [f32]) -> bool {
        let Some((from, to, oldest)) = self.window(first, last, out.len()) else {
            return false;
        };
        if to < oldest as i64 {
            out.copy_from_slice(self.row(oldest));
            return true;
        }
        let count = (to - from + 1) as f64;
        let held_from = from.max(oldest as i64);
        let repeats = held_from - from;
        let (end, start) = (
            self.prefix_row(to as u64 + 1),
            self.prefix_row(held_from as u64),
        );
        for (band, o) in out.iter_mut().enumerate() {
            let held = end[band].wrapping_sub(start[band]);
            let before = repeats.wrapping_mul(quantise(self.row(oldest)[band]));
            *o = (held.wrapping_add(before) as f64 / SUM_SCALE / count) as f32;
        }
        true
    }

    /// Writes the per-band maximum of the frames `first ..= last` hops back (0 = newest) into
    /// `out`, with look-backs past the oldest frame counting as the oldest, as
    /// [`mean_back`](Self::mean_back). Returns `false`, leaving `out` alone, while empty.
    /// Constant time in the window's length (two table reads per band); allocation-free.
    ///
    /// # Panics
    /// If `first > last` or `out.len() != n_bands`.
    pub fn max_back(&self, first: usize, last: usize, out: &mut [f32]) -> bool {
        let Some((from, to, oldest)) = self.window(first, last, out.len()) else {
            return false;
        };
        let from = from.max(oldest as i64);
        if to < from {
            out.copy_from_slice(self.row(oldest));
            return true;
        }
        let (from, to) = (from as u64, to as u64);
        let level = (to - from + 1).ilog2() as usize;
        let (a, b) = (
            self.max_row(level, to),
            self.max_row(level, from + (1 << level) - 1),
        );
        for ((o, x), y) in out.iter_mut().zip(a).zip(b) {
            *o = x.max(*y);
        }
        true
    }

    /// The window `first ..= last` hops back as frame numbers `(from, to)`, which may lie before
    /// the oldest frame held (even below zero), and the oldest frame's number; `None` while
    /// empty.
    fn window(&self, first: usize, last: usize, out_len: usize) -> Option<(i64, i64, u64)> {
        assert!(first <= last, "window {first}..={last} runs backwards");
        assert_eq!(out_len, self.n_bands, "one value per band");
        if self.is_empty() {
            return None;
        }
        // Look-backs beyond 2^40 hops (350 years of 10 ms hops) are all "the oldest frame".
        let number = |back: usize| (self.stored - 1) as i64 - back.min(1 << 40) as i64;
        Some((number(last), number(first), self.stored - self.len() as u64))
    }

    /// Frame number `n`'s energies. `n` must be held.
    fn row(&self, n: u64) -> &[f32] {
        let slot = (n % self.capacity as u64) as usize;
        &self.data[slot * self.n_bands..(slot + 1) * self.n_bands]
    }

    /// The prefix sums of frames `0..n`. `n` must lie within the last `capacity + 1` positions.
    fn prefix_row(&self, n: u64) -> &[i64] {
        let slot = (n % (self.capacity as u64 + 1)) as usize;
        &self.prefix[slot * self.n_bands..(slot + 1) * self.n_bands]
    }

    /// The maxima table at `level` (0 = the frames themselves) for frame number `n`.
    fn max_row(&self, level: usize, n: u64) -> &[f32] {
        if level == 0 {
            return self.row(n);
        }
        let slot = (n % self.capacity as u64) as usize;
        &self.maxima[level - 1][slot * self.n_bands..(slot + 1) * self.n_bands]
    }

    /// Stores a copy of the newest frame again (nothing while empty).
    fn hold_last(&mut self) {
        if self.is_empty() {
            return;
        }
        let mut last = [0.0; MAX_BANDS];
        last[..self.n_bands].copy_from_slice(self.row(self.stored - 1));
        self.store(&last[..self.n_bands]);
    }

    /// Appends a frame and brings the running sums and the maxima table up to date:
    /// `O(bands · log₂ capacity)`.
    fn store(&mut self, energies: &[f32]) {
        let (n, bands) = (self.stored, self.n_bands);
        let slot = (n % self.capacity as u64) as usize;
        self.data[slot * bands..(slot + 1) * bands].copy_from_slice(energies);

        let prefix_slots = self.capacity as u64 + 1;
        let (this, next) = (
            (n % prefix_slots) as usize,
            ((n + 1) % prefix_slots) as usize,
        );
        for (band, &x) in energies.iter().enumerate() {
            self.prefix[next * bands + band] =
                self.prefix[this * bands + band].wrapping_add(quantise(x));
        }

        for level in 1..=self.maxima.len() {
            // Level k covers 2^k frames: its own half and the half 2^(k-1) frames earlier, when
            // that half exists (frames before the first count as absent, not as zero).
            let half = 1u64 << (level - 1);
            let earlier = (n >= half).then(|| ((n - half) % self.capacity as u64) as usize);
            let (lower, upper) = self.maxima.split_at_mut(level - 1);
            let below: &[f32] = if level == 1 {
                &self.data
            } else {
                &lower[level - 2]
            };
            let row = &mut upper[0][slot * bands..(slot + 1) * bands];
            row.copy_from_slice(&below[slot * bands..(slot + 1) * bands]);
            if let Some(earlier) = earlier {
                for (m, &e) in row
                    .iter_mut()
                    .zip(&below[earlier * bands..(earlier + 1) * bands])
                {
                    *m = m.max(e);
                }
            }
        }
        self.stored += 1;
    }
}

/// Levels of the maxima table beyond the frames themselves: enough for a window of `capacity`.
fn max_levels(capacity: usize) -> usize {
    capacity.max(1).ilog2() as usize
}

/// An energy in the running sums' fixed point.
fn quantise(db: f32) -> i64 {
    (f64::from(db).clamp(-SUM_CLAMP_DB, SUM_CLAMP_DB) * SUM_SCALE).round() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, value: f32) -> Frame {
        let mut frame = Frame::silent(3);
        frame.seq = seq;
        frame.bands[..3].fill(value);
        frame
    }

    #[test]
    fn keeps_the_most_recent_frames_in_order() {
        let mut memory = EchoicMemory::new(4, 3);
        assert!(memory.frame_back(0).is_none());
        for seq in 0..6 {
            memory.push(&frame(seq, seq as f32));
        }
        assert!(!memory.is_warming_up());
        let back: Vec<f32> = (0..4).map(|k| memory.frame_back(k).unwrap()[0]).collect();
        assert_eq!(back, vec![5.0, 4.0, 3.0, 2.0]);
        // Past the capacity, the oldest frame answers.
        assert_eq!(memory.frame_back(10).unwrap()[0], 2.0);
    }

    #[test]
    fn gaps_and_invalid_frames_hold_the_last_good_frame() {
        let mut memory = EchoicMemory::new(8, 3);
        memory.push(&frame(0, 0.0));
        memory.push(&frame(1, 1.0));
        memory.push(&frame(4, 4.0)); // frames 2 and 3 were dropped
        let mut bad = frame(5, f32::NAN);
        bad.valid = false;
        memory.push(&bad);
        let back: Vec<f32> = (0..6).map(|k| memory.frame_back(k).unwrap()[0]).collect();
        assert_eq!(back, vec![4.0, 4.0, 1.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn a_reset_or_new_configuration_restarts_the_memory() {
        let mut memory = EchoicMemory::new(8, 3);
        for seq in 0..5 {
            memory.push(&frame(seq, 1.0));
        }
        memory.push(&frame(0, 2.0));
        assert_eq!(memory.len(), 1);
        let mut other = frame(1, 3.0);
        other.config_id = 7;
        memory.push(&other);
        assert_eq!(memory.len(), 1);
        assert_eq!(memory.frame_back(0).unwrap()[0], 3.0);
        let mut out = [0.0; 3];
        assert!(memory.mean_back(0, 5, &mut out));
        assert_eq!(
            out, [3.0; 3],
            "a restart forgets the sums of the frames before it"
        );
        assert!(!memory.push(&Frame::silent(5)));
    }

    /// The mean and maximum of look-backs `first..=last` computed the slow way, from
    /// `frame_back`: the definition the running summaries must reproduce.
    fn by_definition(memory: &EchoicMemory, first: usize, last: usize) -> (Vec<f32>, Vec<f32>) {
        let frames: Vec<&[f32]> = (first..=last)
            .map(|b| memory.frame_back(b).unwrap())
            .collect();
        let bands = memory.n_bands();
        let mean = (0..bands)
            .map(|k| {
                (frames.iter().map(|f| f64::from(f[k])).sum::<f64>() / frames.len() as f64) as f32
            })
            .collect();
        let max = (0..bands)
            .map(|k| frames.iter().map(|f| f[k]).fold(f32::MIN, f32::max))
            .collect();
        (mean, max)
    }

    #[test]
    fn window_summaries_match_their_definition_through_warm_up_gaps_and_wrap_around() {
        let mut seed = 0x5eed_u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u32
        };
        for capacity in [1, 2, 5, 16, 37] {
            let mut memory = EchoicMemory::new(capacity, 3);
            let mut seq = 0;
            for hop in 0..(4 * capacity + 9) {
                let mut f = Frame::silent(3);
                f.seq = seq;
                f.valid = next() % 7 != 0;
                for band in 0..3 {
                    f.bands[band] = (next() % 20_000) as f32 / 100.0 - 100.0;
                }
                memory.push(&f);
                seq += 1 + u64::from(next() % 5 == 0); // a dropped frame now and then
                if memory.is_empty() {
                    continue; // only invalid frames so far: nothing to hold
                }
                let mut mean = [0.0; 3];
                let mut max = [0.0; 3];
                for first in 0..capacity + 2 {
                    for last in first..capacity + 3 {
                        let (want_mean, want_max) = by_definition(&memory, first, last);
                        assert!(memory.mean_back(first, last, &mut mean));
                        assert!(memory.max_back(first, last, &mut max));
                        assert_eq!(
                            max.to_vec(),
                            want_max,
                            "max, capacity {capacity}, hop {hop}, {first}..={last}"
                        );
                        for (got, want) in mean.iter().zip(&want_mean) {
                            assert!((got - want).abs() < 1e-4, "mean {got} vs {want}, capacity {capacity}, hop {hop}, {first}..={last}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn memory_cost_is_what_bytes_needed_says() {
        let memory = EchoicMemory::new(4096, 128);
        let held = memory.data.len() * 4
            + memory.prefix.len() * 8
            + memory.maxima.iter().map(|l| l.len() * 4).sum::<usize>();
        assert_eq!(held, EchoicMemory::bytes_needed(4096, 128));
        assert_eq!(memory.maxima.len(), 12);
    }
}
