//! Hostile input to the listening pipeline: bad audio, many sample rates, a starved worker.
//! (Corrupt model files are covered in the listener's own tests; hosts, state and lifecycles in
//! `tests/tests/robustness.rs`, which drives the real plugin.)

use echoic_core::cochlea::{Cochlea, CochleaConfig};
use echoic_core::frame::Frame;
use echoic_core::listener::Listener;
use echoic_core::pipeline::AudioFront;
use echoic_core::ring::frame_ring;
use echoic_core::worker::{BufferSink, ListenSettings, Worker, WorkerHandle, WorkerStatus};
use echoic_tools::audio_file::{decode_mono, resample};
use echoic_tools::offline::analyse;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn shipped_listener() -> Listener {
    Listener::load(root().join("models/echoic-default.safetensors")).unwrap()
}

fn music() -> (Vec<f32>, u32) {
    let audio = decode_mono(&root().join("tests/fixtures/music_armygeddon.wav")).unwrap();
    (audio.samples, audio.sample_rate)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(1e-12)
}

/// NaN, ±Inf, denormal tails, DC and full-scale squares: frames and embeddings stay finite, the
/// filter recovers within one hop, and only the hops that held bad samples are invalid.
#[test]
fn bad_audio_never_poisons_frames_or_embeddings() {
    let fs = 48_000.0;
    let hop = 480;
    let (music, rate) = music();
    let mut signal = resample(&music, rate, fs as u32);
    signal.truncate(fs as usize * 3);
    let bad_at = [hop * 150 + 3, hop * 200 + 479, hop * 250];
    signal[bad_at[0]] = f32::NAN;
    signal[bad_at[1]] = f32::INFINITY;
    signal[bad_at[2]] = f32::NEG_INFINITY;
    // A denormal tail, DC and a full-scale square wave.
    signal.extend(std::iter::repeat_n(1e-39f32, hop * 20));
    signal.extend(std::iter::repeat_n(0.5f32, hop * 50));
    signal.extend((0..hop * 50).map(|i| if (i / 100) % 2 == 0 { 1.0 } else { -1.0 }));

    let listener = shipped_listener();
    let settings = listener.metadata().features.to_settings();
    let analysis = analyse(&signal, fs, &settings, true).unwrap();
    let invalid: Vec<usize> = (0..analysis.len())
        .filter(|&i| !analysis.valid[i])
        .collect();
    assert_eq!(invalid, bad_at.iter().map(|s| s / hop).collect::<Vec<_>>());
    assert!(analysis.frames.iter().all(|x| x.is_finite()));
    let embeddings = listener
        .embed_batch(&analysis.buffers, analysis.len())
        .unwrap();
    assert!(embeddings.iter().all(|x| x.is_finite()));
    // One hop after each bad sample the frame is valid and carries the music's energy again.
    for &bad in &bad_at {
        let next = bad / hop + 1;
        assert!(analysis.valid[next]);
        let frame = &analysis.frames[next * 100..(next + 1) * 100];
        assert!(
            frame.iter().filter(|&&db| db > -90.0).count() > 50,
            "frame {next}: {frame:?}"
        );
    }
}

/// Ten minutes of silence, then sound: the filter state decays to exact zeros (no denormals
/// lingering) and the sound is heard at once.
#[test]
fn ten_minutes_of_silence_then_sound() {
    let fs = 22_050.0;
    let mut cochlea = Cochlea::new(CochleaConfig {
        sample_rate: fs,
        ..CochleaConfig::default()
    })
    .unwrap();
    let silence = vec![0.0f32; fs as usize];
    for _ in 0..600 {
        cochlea.process(&silence, |f| {
            assert!(f.energies().iter().all(|&e| e == -100.0))
        });
    }
    let (music, _) = music();
    let frames = cochlea.process_to_vec(&music[..fs as usize]);
    assert!(frames.iter().all(|f| f.valid));
    assert!(
        frames[1]
            .energies()
            .iter()
            .filter(|&&db| db > -90.0)
            .count()
            > 50
    );
}

/// The same recording at 44.1, 48 and 96 kHz gives the same embeddings, frame for frame.
#[test]
fn embeddings_do_not_depend_on_the_sample_rate() {
    let listener = shipped_listener();
    let settings = listener.metadata().features.to_settings();
    let (music, rate) = music();
    let embed = |fs: u32| {
        let audio = resample(&music, rate, fs);
        let analysis = analyse(&audio, fs as f64, &settings, true).unwrap();
        let e = listener
            .embed_batch(&analysis.buffers, analysis.len())
            .unwrap();
        (analysis, e)
    };
    let (reference, reference_e) = embed(48_000);
    let latent = listener.latent_dim();
    // Also compare embeddings centred on the training mean, so that a large shared offset cannot
    // hide differences.
    let mean = listener
        .metadata()
        .pca
        .as_ref()
        .map(|p| p.mean.clone())
        .unwrap_or(vec![0.0; latent]);
    let centred = |e: &[f32]| -> Vec<f32> { e.iter().zip(&mean).map(|(x, m)| x - m).collect() };
    for fs in [44_100, 96_000] {
        let (analysis, e) = embed(fs);
        let n = analysis.len().min(reference.len());
        let (mut worst, mut worst_centred) = (1.0f32, 1.0f32);
        for i in reference.usable().filter(|&i| i < n) {
            let (a, b) = (
                &e[i * latent..(i + 1) * latent],
                &reference_e[i * latent..(i + 1) * latent],
            );
            worst = worst.min(cosine(a, b));
            worst_centred = worst_centred.min(cosine(&centred(a), &centred(b)));
        }
        let frame_diff = analysis.frames[..n * 100]
            .iter()
            .zip(&reference.frames[..n * 100])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!(
            "{fs} Hz vs 48 kHz: worst frame cosine similarity {worst:.5} ({worst_centred:.5} centred); \
             largest band difference {frame_diff:.2} dB"
        );
        assert!(worst >= 0.99, "{fs} Hz: worst cosine {worst}");
        assert!(
            worst_centred >= 0.95,
            "{fs} Hz: worst centred cosine {worst_centred}"
        );
    }
}

/// A sink that stalls while `slow` is set, as a model that takes far too long would.
struct Stalling {
    slow: Arc<AtomicBool>,
}

impl BufferSink for Stalling {
    fn on_buffer(&mut self, _: &Frame, _: &[f32], _: bool) {
        if self.slow.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// With a worker that cannot keep up, the ring overflows and counts the drops, the audio side
/// never waits, and everything flows again once the delay stops.
#[test]
fn a_starved_worker_drops_frames_without_stalling_audio() {
    let fs = 48_000.0;
    let settings = ListenSettings::default();
    let (tx, rx) = frame_ring(64);
    let (mut front, swap) = AudioFront::new(Cochlea::new(settings.cochlea_config(fs)).unwrap(), tx);
    let slow = Arc::new(AtomicBool::new(true));
    let status = Arc::new(WorkerStatus::default());
    let worker = Worker::new(
        rx,
        swap,
        fs,
        settings,
        Stalling { slow: slow.clone() },
        status.clone(),
    );
    let mut handle = WorkerHandle::spawn(worker, move || settings).unwrap();
    let block = vec![0.1f32; 512];
    let mut slowest = Duration::ZERO;
    // 4 s of audio as fast as possible while the worker stalls.
    for _ in 0..375 {
        let start = Instant::now();
        front.process(&[&block]);
        slowest = slowest.max(start.elapsed());
    }
    let dropped = status.frames_dropped.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    let dropped = dropped.max(status.frames_dropped.load(Ordering::Relaxed));
    println!("dropped {dropped} of 400 frames; slowest block {slowest:?}");
    assert!(dropped > 200, "only {dropped} dropped");
    // The audio side never waits for the worker: a block costs the same as without one (the
    // bound is loose because this machine's cores are shared).
    assert!(
        slowest < Duration::from_millis(45),
        "the audio side waited {slowest:?}"
    );
    // Recovery: once the delay stops and the backlog is drained, nothing more is dropped.
    slow.store(false, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let dropped = status.frames_dropped.load(Ordering::Relaxed);
    let received = status.frames_received.load(Ordering::Relaxed);
    for _ in 0..94 {
        front.process(&[&block]);
        std::thread::sleep(Duration::from_millis(5));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while status.frames_received.load(Ordering::Relaxed) < received + 90 {
        assert!(Instant::now() < deadline, "the worker did not recover");
        std::thread::sleep(Duration::from_millis(10));
    }
    let dropped_after = status.frames_dropped.load(Ordering::Relaxed);
    handle.stop();
    assert_eq!(
        dropped_after, dropped,
        "still dropping after the delay stopped"
    );
}
