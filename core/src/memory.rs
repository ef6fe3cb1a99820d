//! Echoic memory: a circular buffer of the most recent frames, as the worker keeps them.

use crate::frame::Frame;

/// The last `capacity` frames' band energies, newest last. Gaps from dropped frames and frames
/// spoilt by bad input are filled by holding the last good frame, so that "k frames back" always
/// means k hops back in time.
pub struct EchoicMemory {
    /// How many frames it holds when full: the longest look-back of the dilated buffer.
    capacity: usize,
    /// Bands per frame.
    n_bands: usize,
    /// `capacity × n_bands` energies, frame-major, used as a ring.
    data: Vec<f32>,
    /// Slot the next frame goes into.
    head: usize,
    /// Frames held, up to `capacity`.
    len: usize,
    /// Sequence number expected next, to detect gaps.
    next_seq: Option<u64>,
    /// Configuration of the frames held; a frame of another configuration restarts the memory.
    config_id: Option<u32>,
}

impl EchoicMemory {
    /// An empty memory. Allocates (once).
    pub fn new(capacity: usize, n_bands: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            n_bands,
            data: vec![0.0; capacity * n_bands],
            head: 0,
            len: 0,
            next_seq: None,
            config_id: None,
        }
    }

    /// Frames held when full.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bands per frame.
    pub fn n_bands(&self) -> usize {
        self.n_bands
    }

    /// Frames held now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame has arrived since the last restart.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the memory is not yet full, so that look-backs repeat its oldest frame.
    pub fn is_warming_up(&self) -> bool {
        self.len < self.capacity
    }

    /// Forgets every frame. Allocation-free.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.next_seq = None;
        self.config_id = None;
    }

    /// Takes in a frame from the cochlea. A frame whose band count differs from the memory's is
    /// ignored and `false` returned. A change of configuration, or a sequence restart (the
    /// cochlea was reset), clears the memory first. Missing sequence numbers and invalid frames
    /// hold the previous frame. Allocation-free.
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
            // Hold the last frame over dropped ones, at most a whole memory's worth.
            let missing = (frame.seq - expected).min(self.capacity as u64);
            for _ in 0..missing {
                self.hold_last();
            }
        }
        self.next_seq = Some(frame.seq + 1);
        if frame.valid {
            self.write(frame.energies());
        } else if !self.is_empty() {
            self.hold_last();
        }
        true
    }

    /// The energies of the frame `back` hops before the newest (0 = newest). While warming up,
    /// look-backs past the oldest frame return the oldest. `None` while empty. Allocation-free.
    pub fn frame_back(&self, back: usize) -> Option<&[f32]> {
        if self.len == 0 {
            return None;
        }
        let back = back.min(self.len - 1);
        let slot = (self.head + self.capacity - 1 - back) % self.capacity;
        Some(&self.data[slot * self.n_bands..(slot + 1) * self.n_bands])
    }

    fn hold_last(&mut self) {
        if self.len == 0 {
            return;
        }
        let last = (self.head + self.capacity - 1) % self.capacity;
        let (src, dst) = (last * self.n_bands, self.head * self.n_bands);
        self.data.copy_within(src..src + self.n_bands, dst);
        self.advance();
    }

    fn write(&mut self, energies: &[f32]) {
        let dst = self.head * self.n_bands;
        self.data[dst..dst + self.n_bands].copy_from_slice(energies);
        self.advance();
    }

    fn advance(&mut self) {
        self.head = (self.head + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }
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
        assert!(!memory.push(&Frame::silent(5)));
    }
}
