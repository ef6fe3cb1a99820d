//! Runs on the audio thread: the audio front (downmix, cochlea, frame ring) and the cochlea swap.
//!
//! The audio thread's half of the pipeline: downmix, cochlea, and the ring to the worker, plus
//! the hand-over through which the worker replaces the cochlea when its structure changes.

use crate::cochlea::Cochlea;
use crate::frame::Frame;
use crate::ring::FrameSender;
use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

/// Samples downmixed at a time; bounds the scratch buffer, not the block size.
const DOWNMIX_CHUNK: usize = 256;

/// Runs on the audio thread. Everything in it is allocated up front.
///
/// Built off the audio thread around a [`Cochlea`] and the sending end of a
/// [`frame_ring`](crate::ring::frame_ring); then [`process`](Self::process) takes each block
/// the host delivers, without allocating, and the worker receives the frames.
///
/// ```
/// use echoic_core::cochlea::{Cochlea, CochleaConfig};
/// use echoic_core::pipeline::AudioFront;
/// use echoic_core::ring::frame_ring;
///
/// // Off the audio thread (allocates, once).
/// let config = CochleaConfig::default(); // 48 kHz, 10 ms (480-sample) hops
/// let (sender, mut receiver) = frame_ring(64);
/// let (mut front, _swap) = AudioFront::new(Cochlea::new(config)?, sender);
///
/// // On the audio thread: one call per host block, stereo here (allocation-free).
/// let left = [0.25f32; 512];
/// let right = [-0.25f32; 512];
/// for _ in 0..10 {
///     front.process(&[&left, &right]);
/// }
/// assert_eq!(front.position(), 5_120);
///
/// // On the worker: the frames of every completed hop, stamped on the front's timeline.
/// let mut hops = 0;
/// while let Some(frame) = receiver.recv() {
///     hops += 1;
///     assert_eq!(frame.sample_pos, hops * 480);
///     assert_eq!(frame.n_bands as usize, config.n_bands);
/// }
/// assert_eq!(hops, 10); // 5120 samples hold ten whole hops
/// # Ok::<(), echoic_core::cochlea::ConfigError>(())
/// ```
pub struct AudioFront {
    /// The filterbank in use.
    cochlea: Box<Cochlea>,
    /// Where frames go.
    sender: FrameSender,
    /// Replacement filterbanks built by the worker.
    incoming: HeapCons<Box<Cochlea>>,
    /// Retired filterbanks, returned so that the worker frees them, not the audio thread.
    retired: HeapProd<Box<Cochlea>>,
    /// Mono downmix of the current chunk.
    mono: [f32; DOWNMIX_CHUNK],
    /// Samples fed to this front since it was built: the timeline frames are stamped on. Unlike
    /// the cochlea's own count it never goes back — not on `reset`, not when a replacement
    /// cochlea takes over — so positions derived from it (automation timing) stay in order.
    position: u64,
}

/// The worker's side of the filterbank hand-over.
pub struct CochleaSwap {
    /// Sends replacement filterbanks to the audio thread.
    outgoing: HeapProd<Box<Cochlea>>,
    /// Receives the retired ones back.
    returned: HeapCons<Box<Cochlea>>,
    /// A replacement was sent and its predecessor has not come back yet.
    in_flight: bool,
}

impl AudioFront {
    /// Builds the audio-thread half around a filterbank, and the worker's end of the hand-over.
    /// Allocates (once).
    pub fn new(cochlea: Cochlea, sender: FrameSender) -> (Self, CochleaSwap) {
        let (outgoing, incoming) = HeapRb::new(1).split();
        let (retired, returned) = HeapRb::new(1).split();
        (
            Self {
                cochlea: Box::new(cochlea),
                sender,
                incoming,
                retired,
                mono: [0.0; DOWNMIX_CHUNK],
                position: 0,
            },
            CochleaSwap {
                outgoing,
                returned,
                in_flight: false,
            },
        )
    }

    /// The filterbank in use. Allocation-free.
    pub fn cochlea(&self) -> &Cochlea {
        &self.cochlea
    }

    /// Samples fed so far: the position of the next sample on the timeline that frames'
    /// [`sample_pos`](crate::frame::Frame::sample_pos) are stamped on. Never decreases.
    /// Allocation-free.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Feeds one block of audio, `channels` being equally long slices, to the filterbank and
    /// sends the finished frames, stamped with their position on this front's timeline (see
    /// [`position`](Self::position)). Takes over a replacement filterbank first if the worker
    /// sent one. The audio itself is not touched.
    ///
    /// Real-time safe: no allocation, lock, system call or wait; work bounded by the block size.
    pub fn process(&mut self, channels: &[&[f32]]) {
        self.take_replacement();
        let Some(first) = channels.first() else {
            return;
        };
        let len = first.len();
        let scale = 1.0 / channels.len() as f32;
        let mut start = 0;
        while start < len {
            let end = (start + DOWNMIX_CHUNK).min(len);
            let mono = &mut self.mono[..end - start];
            mono.copy_from_slice(&first[start..end]);
            for channel in &channels[1..] {
                for (m, x) in mono.iter_mut().zip(&channel[start..end]) {
                    *m += x;
                }
            }
            if channels.len() > 1 {
                mono.iter_mut().for_each(|m| *m *= scale);
            }
            let sender = &mut self.sender;
            // The cochlea counts from its own last reset; both clocks advance together.
            let shift = self.position - self.cochlea.samples_processed();
            self.cochlea.process(mono, |frame| {
                sender.send(&Frame {
                    sample_pos: frame.sample_pos + shift,
                    ..*frame
                });
            });
            self.position += (end - start) as u64;
            start = end;
        }
    }

    /// Forgets all filter state, as after construction; the timeline goes on. Real-time safe:
    /// allocation-free.
    pub fn reset(&mut self) {
        self.cochlea.reset();
    }

    fn take_replacement(&mut self) {
        if let Some(replacement) = self.incoming.try_pop() {
            let retired = std::mem::replace(&mut self.cochlea, replacement);
            // The worker sends one replacement at a time and only after the previous one came
            // back, so this slot is always free and the box is never freed here.
            if let Err(retired) = self.retired.try_push(retired) {
                std::mem::forget(retired);
            }
        }
    }
}

impl CochleaSwap {
    /// Offers a replacement filterbank to the audio thread; it takes over at its next block.
    /// Returns the filterbank back if the previous replacement is still in flight. Allocation-free
    /// (the filterbank was boxed by the caller); frees retired filterbanks.
    ///
    /// ```
    /// use echoic_core::cochlea::{Cochlea, CochleaConfig};
    /// use echoic_core::pipeline::AudioFront;
    /// use echoic_core::ring::frame_ring;
    ///
    /// let config = CochleaConfig::default();
    /// let (sender, mut receiver) = frame_ring(64);
    /// let (mut front, mut swap) = AudioFront::new(Cochlea::new(config)?, sender);
    ///
    /// // The worker builds the new filterbank (allocates) and offers it.
    /// let wider = CochleaConfig { n_bands: 64, ..config };
    /// assert!(swap.offer(Box::new(Cochlea::new(wider)?)).is_ok());
    /// assert!(swap.is_pending());
    ///
    /// // The audio thread takes it over at its next block, without allocating or freeing.
    /// front.process(&[&[0.0; 480]]);
    /// assert_eq!(front.cochlea().config().n_bands, 64);
    /// assert_eq!(receiver.recv().unwrap().n_bands, 64);
    ///
    /// // The retired filterbank went back to the worker, which frees it here.
    /// assert!(!swap.is_pending());
    /// # Ok::<(), echoic_core::cochlea::ConfigError>(())
    /// ```
    pub fn offer(&mut self, cochlea: Box<Cochlea>) -> Result<(), Box<Cochlea>> {
        self.collect_retired();
        if self.in_flight {
            return Err(cochlea);
        }
        self.outgoing.try_push(cochlea)?;
        self.in_flight = true;
        Ok(())
    }

    /// Whether a replacement has been sent and the audio thread has not yet swapped it in.
    /// Allocation-free; frees retired filterbanks.
    pub fn is_pending(&mut self) -> bool {
        self.collect_retired();
        self.in_flight
    }

    fn collect_retired(&mut self) {
        if self.returned.try_pop().is_some() {
            self.in_flight = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cochlea::CochleaConfig;
    use crate::ring::frame_ring;

    #[test]
    fn stereo_is_downmixed_and_replacements_take_over_at_the_next_block() {
        let config = CochleaConfig::default();
        let (tx, mut rx) = frame_ring(64);
        let (mut front, mut swap) = AudioFront::new(Cochlea::new(config).unwrap(), tx);
        let left: Vec<f32> = (0..4800).map(|i| (i as f32 * 0.05).sin()).collect();
        let right: Vec<f32> = left.iter().map(|x| -0.5 * x).collect();
        front.process(&[&left, &right]);
        let mono: Vec<f32> = left
            .iter()
            .zip(&right)
            .map(|(l, r)| (l + r) * 0.5)
            .collect();
        let expected = Cochlea::new(config).unwrap().process_to_vec(&mono);
        let received: Vec<_> = std::iter::from_fn(|| rx.recv()).collect();
        assert_eq!(received, expected);

        let wider = CochleaConfig {
            n_bands: 64,
            ..config
        };
        assert!(swap.offer(Box::new(Cochlea::new(wider).unwrap())).is_ok());
        assert!(
            swap.offer(Box::new(Cochlea::new(wider).unwrap())).is_err(),
            "one at a time"
        );
        front.process(&[&left, &right]);
        assert_eq!(front.cochlea().config().n_bands, 64);
        assert!(!swap.is_pending());
        assert_eq!(rx.recv().unwrap().n_bands, 64);
    }

    #[test]
    fn frame_positions_never_go_back_across_resets_and_swaps() {
        let config = CochleaConfig::default();
        let (tx, mut rx) = frame_ring(512);
        let (mut front, mut swap) = AudioFront::new(Cochlea::new(config).unwrap(), tx);
        let audio = vec![0.1f32; 1000];
        front.process(&[&audio]);
        front.reset();
        front.process(&[&audio]);
        assert!(swap
            .offer(Box::new(
                Cochlea::new(CochleaConfig {
                    n_bands: 32,
                    ..config
                })
                .unwrap()
            ))
            .is_ok());
        front.process(&[&audio]);
        assert_eq!(front.position(), 3000);
        let positions: Vec<u64> = std::iter::from_fn(|| rx.recv())
            .map(|f| f.sample_pos)
            .collect();
        // 480-sample hops: two in the first 1000 samples, then the clock restarts from each reset
        // or swap, on the same never-decreasing timeline.
        assert_eq!(positions, vec![480, 960, 1480, 1960, 2480, 2960]);
    }
}
