use super::*;
use crate::pipeline::AudioFront;
use crate::ring::frame_ring;

/// Records what the worker hands to its sink.
#[derive(Default)]
struct Recorder {
    buffers: Vec<(u64, Vec<f32>, bool)>,
}

impl BufferSink for Recorder {
    fn on_buffer(&mut self, frame: &Frame, buffer: &[f32], warming_up: bool) {
        self.buffers.push((frame.seq, buffer.to_vec(), warming_up));
    }
}

fn setup(settings: ListenSettings, ring: usize) -> (AudioFront, Worker<Recorder>) {
    let (tx, rx) = frame_ring(ring);
    let cochlea = Cochlea::new(settings.cochlea_config(48_000.0)).unwrap();
    let (front, swap) = AudioFront::new(cochlea, tx);
    let status = Arc::new(WorkerStatus::default());
    (
        front,
        Worker::new(rx, swap, 48_000.0, settings, Recorder::default(), status),
    )
}

fn tone(len: usize) -> Vec<f32> {
    (0..len).map(|i| (i as f32 * 0.07).sin() * 0.3).collect()
}

#[test]
fn one_buffer_per_frame_and_warm_after_the_longest_lookback() {
    let (mut front, mut worker) = setup(ListenSettings::default(), 512);
    let audio = tone(48_000 * 2);
    front.process(&[&audio]);
    assert_eq!(worker.drain(), 200);
    let buffers = &worker.sink().buffers;
    assert_eq!(buffers.len(), 200);
    assert_eq!(buffers[0].1.len(), 8 * 100);
    assert!(buffers[126].2, "warming up until 128 frames are held");
    assert!(!buffers[127].2);
    assert!(!worker.status.warming_up.load(Ordering::Relaxed));
}

#[test]
fn a_full_ring_drops_frames_without_blocking_and_the_worker_recovers() {
    let (mut front, mut worker) = setup(ListenSettings::default(), 16);
    let audio = tone(48_000);
    front.process(&[&audio]); // 100 frames into a ring of 16
    assert_eq!(worker.drain(), 16);
    assert_eq!(worker.status.frames_dropped.load(Ordering::Relaxed), 84);
    front.process(&[&audio[..4800]]);
    assert_eq!(worker.drain(), 10);
}

#[test]
fn a_structural_change_swaps_the_filterbank_and_restarts_memory() {
    let (mut front, mut worker) = setup(ListenSettings::default(), 512);
    let audio = tone(4800);
    front.process(&[&audio]);
    worker.drain();
    worker.apply(ListenSettings {
        n_bands: 32,
        ..ListenSettings::default()
    });
    assert!(worker.status.error.lock().unwrap().is_none());
    front.process(&[&audio]);
    worker.drain();
    let last = worker.sink().buffers.last().unwrap();
    assert_eq!(last.1.len(), 8 * 32);
    assert_eq!(front.cochlea().config().n_bands, 32);

    // Out-of-range settings are fitted, not refused: 500 bands become the 128 the cochlea has.
    worker.apply(ListenSettings {
        n_bands: 500,
        ..ListenSettings::default()
    });
    assert!(worker.status.error.lock().unwrap().is_none());
    front.process(&[&audio]);
    assert_eq!(front.cochlea().config().n_bands, 128);
}

#[test]
fn no_settings_can_size_the_memory_past_its_limit() {
    use crate::dilated::{Dilation, Pooling, MAX_LOOKBACK};
    use crate::memory::EchoicMemory;
    assert!(EchoicMemory::bytes_needed(MAX_LOOKBACK, MAX_BANDS) <= MAX_MEMORY_BYTES);
    // The worst case each way, including the combination that once asked for 4^15 frames.
    for steps in [0, 1, 8, 16, 64, usize::MAX] {
        for dilation in [0, 1, 2, 4, 1000, usize::MAX] {
            for kind in [Dilation::Exponential, Dilation::Linear] {
                for n_bands in [0, 16, 128, usize::MAX] {
                    for hop_seconds in [f64::NAN, -1.0, 0.0, 0.005, 0.05, 1e9, f64::INFINITY] {
                        let asked = ListenSettings {
                            n_bands,
                            hop_seconds,
                            low_hz: if steps == 0 { f64::NAN } else { 50.0 },
                            spec: DilatedSpec {
                                steps,
                                dilation,
                                kind,
                                pooling: Pooling::Max,
                            },
                            ..ListenSettings::default()
                        };
                        let used = asked.validated();
                        assert!(used.spec.validate().is_ok(), "{asked:?}");
                        assert!(
                            used.cochlea_config(48_000.0).validate().is_ok(),
                            "{asked:?}"
                        );
                        let bytes =
                            EchoicMemory::bytes_needed(used.spec.memory_frames(), used.n_bands);
                        assert!(bytes <= MAX_MEMORY_BYTES, "{asked:?}: {bytes} bytes");
                        assert_eq!(
                            used == asked,
                            asked.describe_adjustment().is_none(),
                            "{asked:?}"
                        );
                    }
                }
            }
        }
    }
    let asked = ListenSettings {
        n_bands: 128,
        spec: DilatedSpec {
            steps: 16,
            dilation: 4,
            ..DilatedSpec::default()
        },
        ..ListenSettings::default()
    };
    assert_eq!(
        asked.describe_adjustment().unwrap(),
        "Steps 16 -> 13, Dilation 4 -> 2: the echoic memory reaches back at most 4096 frames; \
         now 4096 frames, 40.96 s"
    );
    assert_eq!(ListenSettings::default().describe_adjustment(), None);
    let asked = ListenSettings {
        n_bands: 500,
        hop_seconds: 0.001,
        ..ListenSettings::default()
    };
    assert_eq!(
        asked.describe_adjustment().unwrap(),
        "Bands 500 -> 128, Hop 1 ms -> 5 ms"
    );
}

#[test]
fn draining_stops_before_the_next_frame_once_asked() {
    use crate::dilated::{Dilation, Pooling};
    // The longest memory with max pooling, and a full ring of frames waiting.
    let settings = ListenSettings {
        n_bands: 128,
        spec: DilatedSpec {
            steps: 13,
            dilation: 2,
            kind: Dilation::Exponential,
            pooling: Pooling::Max,
        },
        ..ListenSettings::default()
    };
    let (mut front, mut worker) = setup(settings, 512);
    front.process(&[&tone(48_000 * 5)]);
    let stop = AtomicBool::new(true);
    assert_eq!(
        worker.drain_until(&stop),
        0,
        "a set stop flag takes no frame"
    );
    stop.store(false, Ordering::Relaxed);
    assert_eq!(worker.drain_until(&stop), 500);
}

#[test]
fn the_thread_parks_when_idle_and_joins_on_stop() {
    let (mut front, worker) = setup(ListenSettings::default(), 512);
    let status = worker.status.clone();
    let mut handle = WorkerHandle::spawn(worker, ListenSettings::default).unwrap();
    front.process(&[&tone(48_000)]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status.frames_received.load(Ordering::Relaxed) < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "worker never drained the ring"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop();
    handle.stop();
}
