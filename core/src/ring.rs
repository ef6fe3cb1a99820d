//! Audio thread to worker: the lock-free frame ring (the sender on the audio thread, the receiver on the worker).
//!
//! The lock-free single-producer, single-consumer ring that carries frames from the audio thread
//! to the worker. A full ring drops the new frame and counts it: the audio thread never waits.

use crate::frame::Frame;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Creates a ring holding up to `capacity` frames (at least 1). Allocates (once); both ends are
/// then allocation-free.
///
/// The [`FrameSender`] goes to the audio thread, the [`FrameReceiver`] to the worker:
///
/// ```
/// use echoic_core::frame::Frame;
/// use echoic_core::ring::frame_ring;
///
/// // Off the audio thread: allocate the ring once.
/// let (mut sender, mut receiver) = frame_ring(64);
///
/// // The audio thread sends a frame per hop: no allocation, lock or wait.
/// let audio = std::thread::spawn(move || {
///     for seq in 0..3 {
///         let mut frame = Frame::silent(4);
///         frame.seq = seq;
///         frame.bands[0] = -20.0;
///         assert!(sender.send(&frame));
///     }
/// });
/// audio.join().unwrap();
///
/// // The worker receives them in order, as they were sent.
/// assert_eq!(receiver.pending(), 3);
/// for seq in 0..3 {
///     let frame = receiver.recv().unwrap();
///     assert_eq!((frame.seq, frame.bands[0]), (seq, -20.0));
/// }
/// assert!(receiver.recv().is_none());
/// assert_eq!(receiver.dropped(), 0);
/// ```
pub fn frame_ring(capacity: usize) -> (FrameSender, FrameReceiver) {
    let (producer, consumer) = HeapRb::<Frame>::new(capacity.max(1)).split();
    let dropped = Arc::new(AtomicU64::new(0));
    (
        FrameSender {
            producer,
            dropped: dropped.clone(),
        },
        FrameReceiver { consumer, dropped },
    )
}

/// The audio thread's end.
pub struct FrameSender {
    /// Where frames go.
    producer: HeapProd<Frame>,
    /// Frames refused because the ring was full; shared with the receiver, which reports it.
    dropped: Arc<AtomicU64>,
}

impl FrameSender {
    /// Sends a copy of `frame`, or drops and counts it when the ring is full. Returns whether it
    /// was sent. Real-time safe: no allocation, lock, system call or wait.
    ///
    /// ```
    /// use echoic_core::frame::Frame;
    /// use echoic_core::ring::frame_ring;
    ///
    /// let (mut sender, mut receiver) = frame_ring(2);
    /// let frame = Frame::silent(4);
    /// assert!(sender.send(&frame));
    /// assert!(sender.send(&frame));
    /// // Full: the third frame is dropped, not waited for, and the receiver hears of it.
    /// assert!(!sender.send(&frame));
    /// assert_eq!(receiver.dropped(), 1);
    /// assert_eq!(receiver.recv(), Some(frame));
    /// ```
    #[inline]
    pub fn send(&mut self, frame: &Frame) -> bool {
        let sent = self.producer.try_push(*frame).is_ok();
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

/// The worker's end.
pub struct FrameReceiver {
    /// Where frames come from.
    consumer: HeapCons<Frame>,
    /// See [`FrameSender::dropped`].
    dropped: Arc<AtomicU64>,
}

impl FrameReceiver {
    /// The oldest frame not yet received, if any. Allocation-free.
    #[inline]
    pub fn recv(&mut self) -> Option<Frame> {
        self.consumer.try_pop()
    }

    /// Frames waiting to be received. Allocation-free.
    pub fn pending(&self) -> usize {
        self.consumer.occupied_len()
    }

    /// Frames dropped so far because the ring was full. Allocation-free.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_ring_drops_and_counts_without_blocking() {
        let (mut tx, mut rx) = frame_ring(4);
        let mut frame = Frame::silent(10);
        for seq in 0..10 {
            frame.seq = seq;
            assert_eq!(tx.send(&frame), seq < 4);
        }
        assert_eq!(rx.dropped(), 6);
        assert_eq!(rx.pending(), 4);
        let received: Vec<u64> = std::iter::from_fn(|| rx.recv()).map(|f| f.seq).collect();
        assert_eq!(received, vec![0, 1, 2, 3]);
        // Space again: sending works once the consumer has caught up.
        assert!(tx.send(&frame));
    }
}
