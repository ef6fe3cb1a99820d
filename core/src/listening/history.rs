//! Runs on the worker: the listening history, the last minutes of cochlear frames that *Adapt*
//! fine-tunes the listener on and that learned sounds keep their captures from.

/// Minutes of history kept unless the user asks otherwise.
pub const DEFAULT_HISTORY_MINUTES: u32 = 3;

/// The most minutes of history an instance keeps: bounds its memory (see
/// [`FrameHistory::bytes_for`]) whatever a parameter or a state says.
pub const MAX_HISTORY_MINUTES: u32 = 10;

/// A ring of the last frames' band energies (dB), allocated once for a fixed number of frames
/// and bands; pushing never allocates. Frames are kept in arrival order; the oldest is
/// overwritten when the ring is full.
///
/// ```
/// use echoic_core::listening::history::FrameHistory;
/// let mut history = FrameHistory::new(3, 2);
/// for i in 0..5 {
///     history.push(&[i as f32, -(i as f32)]);
/// }
/// // The three newest frames, oldest first.
/// assert_eq!(history.latest(3), vec![2.0, -2.0, 3.0, -3.0, 4.0, -4.0]);
/// assert_eq!(history.latest(1), vec![4.0, -4.0]);
/// ```
#[derive(Clone, Debug)]
pub struct FrameHistory {
    /// Bands per frame: the layout every pushed frame must have.
    n_bands: usize,
    /// Frames the ring holds.
    capacity: usize,
    /// `capacity × n_bands` values; frame `k` of the ring at `k × n_bands`.
    values: Vec<f32>,
    /// Ring index the next frame is written to.
    next: usize,
    /// Frames held, at most `capacity`.
    len: usize,
    /// Frames pushed since creation, [`clear`](Self::clear) included: marks where a capture
    /// began, whatever the ring has overwritten since.
    pushed: u64,
}

impl FrameHistory {
    /// An empty history of `capacity` frames of `n_bands` bands. Allocates
    /// [`bytes_for`](Self::bytes_for)`(capacity, n_bands)`.
    pub fn new(capacity: usize, n_bands: usize) -> Self {
        Self {
            n_bands,
            capacity,
            values: vec![0.0; capacity * n_bands],
            next: 0,
            len: 0,
            pushed: 0,
        }
    }

    /// Frames needed for `minutes` (clamped to 1..=[`MAX_HISTORY_MINUTES`]) of hops of
    /// `hop_seconds`. Allocation-free.
    pub fn frames_for(minutes: u32, hop_seconds: f64) -> usize {
        let minutes = minutes.clamp(1, MAX_HISTORY_MINUTES);
        (f64::from(minutes) * 60.0 / hop_seconds).ceil() as usize
    }

    /// Bytes a history of `capacity` frames of `n_bands` takes: 4 per value. At Echoic's
    /// default 100 bands and 10 ms hop, 2.4 MB per minute (7.2 MB for the default three
    /// minutes, 24 MB for ten). Allocation-free.
    pub fn bytes_for(capacity: usize, n_bands: usize) -> usize {
        capacity * n_bands * std::mem::size_of::<f32>()
    }

    /// Bands per frame. Allocation-free.
    pub fn n_bands(&self) -> usize {
        self.n_bands
    }

    /// Frames the ring can hold. Allocation-free.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames held. Allocation-free.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame is held. Allocation-free.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Frames pushed since creation, whatever has been overwritten or cleared. Allocation-free.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Forgets every frame (the listening layout changed). Allocation-free.
    pub fn clear(&mut self) {
        self.next = 0;
        self.len = 0;
    }

    /// Appends one frame's energies, overwriting the oldest when full. A frame of another
    /// length than [`n_bands`](Self::n_bands) is ignored. Allocation-free.
    pub fn push(&mut self, energies: &[f32]) {
        if energies.len() != self.n_bands || self.capacity == 0 {
            return;
        }
        let at = self.next * self.n_bands;
        self.values[at..at + self.n_bands].copy_from_slice(energies);
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
        self.pushed += 1;
    }

    /// Writes the newest `frames` frames (fewer if fewer are held), oldest first, into `out`,
    /// replacing its contents. Allocates only when `out`'s capacity is too small; the real-time
    /// twin of [`latest`](Self::latest).
    pub fn latest_into(&self, frames: usize, out: &mut Vec<f32>) {
        out.clear();
        let frames = frames.min(self.len);
        let first = (self.next + self.capacity - frames) % self.capacity.max(1);
        let (n, head) = (self.n_bands, first * self.n_bands);
        if first + frames <= self.capacity {
            out.extend_from_slice(&self.values[head..head + frames * n]);
        } else {
            let wrapped = first + frames - self.capacity;
            out.extend_from_slice(&self.values[head..]);
            out.extend_from_slice(&self.values[..wrapped * n]);
        }
    }

    /// The newest `frames` frames, oldest first. Allocates them.
    pub fn latest(&self, frames: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(frames.min(self.len) * self.n_bands);
        self.latest_into(frames, &mut out);
        out
    }

    /// A history of `capacity` frames holding the newest frames of this one that fit, with the
    /// same count of frames pushed. Allocates the new ring.
    pub fn resized(&self, capacity: usize) -> Self {
        let mut resized = Self::new(capacity, self.n_bands);
        for frame in self.latest(capacity).chunks_exact(self.n_bands.max(1)) {
            resized.push(frame);
        }
        resized.pushed = self.pushed;
        resized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_frames_in_order_across_the_wrap() {
        let mut history = FrameHistory::new(4, 3);
        assert!(history.is_empty());
        assert_eq!(history.latest(4), Vec::<f32>::new());
        let frame = |i: usize| [i as f32, 10.0 + i as f32, 20.0 + i as f32];
        for i in 0..11 {
            history.push(&frame(i));
            let held = (i + 1).min(4);
            assert_eq!(history.len(), held);
            for want in 0..=5 {
                let got = history.latest(want);
                let n = want.min(held);
                let expected: Vec<f32> = (i + 1 - n..=i).flat_map(frame).collect();
                assert_eq!(got, expected, "after {i}, newest {want}");
            }
        }
        history.push(&[1.0, 2.0]); // the wrong layout is ignored
        assert_eq!(history.latest(1), frame(10).to_vec());
        assert_eq!(history.pushed(), 11);
        // Shrinking keeps the newest frames, growing keeps them all; the count goes on.
        let shrunk = history.resized(2);
        assert_eq!(
            shrunk.latest(9),
            (9..=10).flat_map(frame).collect::<Vec<_>>()
        );
        let grown = history.resized(9);
        assert_eq!(
            grown.latest(9),
            (7..=10).flat_map(frame).collect::<Vec<_>>()
        );
        assert_eq!((shrunk.pushed(), grown.pushed()), (11, 11));
        history.clear();
        assert!(history.is_empty());
        assert_eq!(history.latest(2), Vec::<f32>::new());
    }

    #[test]
    fn sizes_follow_minutes_and_stay_bounded() {
        assert_eq!(FrameHistory::frames_for(3, 0.010), 18_000);
        assert_eq!(FrameHistory::frames_for(0, 0.010), 6_000);
        assert_eq!(FrameHistory::frames_for(99, 0.010), 60_000);
        assert_eq!(FrameHistory::bytes_for(6_000, 100), 2_400_000);
    }
}
