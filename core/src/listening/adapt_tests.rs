//! *Adapt*, *Cancel* and *Revert* through the real pipeline: audio into the cochlea, frames
//! through the worker into [`Listening`] with the shipped model.

use super::adaptation::{self, AdaptJob, Finished, JobPriority, STOP_WAIT};
use super::*;
use crate::cochlea::Cochlea;
use crate::listener::adapt::saved;
use crate::outputs::slot::smoothing_coefficient;
use crate::pipeline::AudioFront;
use crate::ring::frame_ring;
use crate::worker::{Worker, WorkerStatus};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const RATE: f64 = 48_000.0;

/// What a test holds of one instance.
struct Rig {
    front: AudioFront,
    worker: Worker<Listening<Box<dyn FnMut() -> Controls + Send>>>,
    cc: CcReceiver,
    status: Arc<ListenerStatus>,
    saved: Arc<Mutex<Option<String>>>,
    learned: Arc<Mutex<LearnedSounds>>,
    adapt: Arc<AtomicBool>,
    learn: Arc<AtomicBool>,
    /// Every hop's slot values so far.
    values: Vec<[f32; crate::outputs::N_SLOTS]>,
    /// Samples played so far, for the test signal's phase.
    played: usize,
}

fn shipped() -> Listener {
    Listener::from_bytes(crate::listener::DEFAULT_MODEL).unwrap()
}

/// A quick adaptation: two epochs, so that a test takes seconds. On reconstruction alone:
/// [`Signal::Mix`] repeats exactly every 2.5 s, so each moment recurs in other cycles among its
/// negatives and the contrast has nothing to teach it. These tests are about the job; the
/// contrast is tested in `listener::adapt` and, on real recordings, by the editor test.
fn quick() -> AdaptConfig {
    AdaptConfig {
        max_epochs: 2,
        contrast: None,
        ..AdaptConfig::default()
    }
}

fn rig(config: AdaptConfig) -> Rig {
    let listener = shipped();
    let settings = listener.metadata().features.to_settings();
    let (tx, rx) = frame_ring(512);
    let cochlea = Cochlea::new(settings.cochlea_config(RATE)).unwrap();
    let (front, swap) = AudioFront::new(cochlea, tx);
    let (cc_tx, cc) = cc_ring();
    let status = Arc::new(ListenerStatus::default());
    let (saved, learned) = (Arc::default(), Arc::default());
    let (adapt, learn) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (a, l) = (adapt.clone(), learn.clone());
    let controls: Box<dyn FnMut() -> Controls + Send> = Box::new(move || {
        let mut controls = Controls {
            adapt: a.load(Ordering::Relaxed),
            ..Controls::default()
        };
        controls.learn[0] = l.load(Ordering::Relaxed);
        controls
    });
    let listening = Listening::new(
        Ok(listener),
        &settings,
        cc_tx,
        controls,
        Arc::clone(&learned),
        status.clone(),
    )
    .with_adaptation(None, Arc::clone(&saved))
    .with_adapt_config(config, JobPriority::Normal);
    let worker = Worker::new(
        rx,
        swap,
        RATE,
        settings,
        listening,
        Arc::new(WorkerStatus::default()),
    );
    Rig {
        front,
        worker,
        cc,
        status,
        saved,
        learned,
        adapt,
        learn,
        values: Vec::new(),
        played: 0,
    }
}

/// What a test plays.
#[derive(Clone, Copy, PartialEq)]
enum Signal {
    /// A signal that changes every half second: harmonic tones at several pitches and noise
    /// bursts, so that the history has sounds to tell apart.
    Mix,
    /// Digital silence.
    Silence,
    /// One steady 440 Hz sine.
    Sine,
}

/// A second of `signal` from sample `start`.
fn second(start: usize, signal: Signal) -> Vec<f32> {
    let mut noise = crate::rng::SplitMix64(start as u64 + 1);
    (start..start + RATE as usize)
        .map(|i| {
            let t = i as f64 / RATE;
            let v = match signal {
                Signal::Silence => 0.0,
                Signal::Sine => (std::f64::consts::TAU * 440.0 * t).sin() * 0.3,
                Signal::Mix => {
                    let segment = (t * 2.0) as usize % 5;
                    let f0 = [110.0, 220.0, 330.0, 0.0, 660.0][segment];
                    match segment {
                        3 => (noise.next_f64() - 0.5) * 0.4,
                        _ => (1..6)
                            .map(|h| {
                                (std::f64::consts::TAU * f0 * h as f64 * t).sin() * 0.2 / h as f64
                            })
                            .sum(),
                    }
                }
            };
            v as f32
        })
        .collect()
}

impl Rig {
    /// Plays `seconds` of `signal` and lets the worker take every frame, a quarter of a second
    /// at a time so that the automation ring never overflows.
    fn play(&mut self, seconds: usize, signal: Signal) {
        for _ in 0..seconds {
            let audio = second(self.played, signal);
            self.played += audio.len();
            for quarter in audio.chunks(audio.len() / 4) {
                self.front.process(&[quarter]);
                self.worker.drain();
                while let Some(hop) = self.cc.recv() {
                    self.values.push(hop.values);
                }
            }
        }
    }

    /// Plays until no job runs (and its result, if any, has been swapped in), at most `limit`.
    fn play_until_settled(&mut self, limit: Duration) {
        let start = Instant::now();
        while self.worker.sink().adapting() || self.worker.sink().waiting.is_some() {
            assert!(
                start.elapsed() < limit,
                "the job did not finish within {limit:?}"
            );
            self.play(1, Signal::Mix);
        }
    }

    /// Holds *Adapt* for a second of `signal`.
    fn press_adapt(&mut self, signal: Signal) {
        self.adapt.store(true, Ordering::Relaxed);
        self.play(1, signal);
        self.adapt.store(false, Ordering::Relaxed);
    }

    fn message(&self) -> String {
        self.status.adaptation.message().unwrap_or_default()
    }

    fn sound(&self) -> LearnedSound {
        self.learned.lock().unwrap().sounds[0]
            .clone()
            .expect("sound 1 is learned")
    }
}

use crate::outputs::learned::{LearnedSound, LearnedSounds};

#[test]
fn adapt_swaps_in_a_model_that_keeps_learned_sounds_and_ccs_smooth_and_revert_undoes_it() {
    let mut rig = rig(quick());
    rig.play(4, Signal::Mix);
    rig.learn.store(true, Ordering::Relaxed);
    rig.play(3, Signal::Mix); // a 2 s capture
    rig.learn.store(false, Ordering::Relaxed);
    rig.play(18, Signal::Mix);
    let before = rig.sound();
    let frames = before.frames.clone().expect("the capture kept its frames");
    let memory = rig.worker.sink().settings.spec.memory_frames();
    assert_eq!(frames.n_bands, 100);
    assert_eq!(
        frames.frames(),
        200 + memory - 1,
        "2 s of hops and the look-back"
    );

    let hops_before = rig.values.len();
    rig.press_adapt(Signal::Mix);
    assert!(rig.status.adaptation.running(), "{}", rig.message());
    assert!(!rig.status.adaptation.reverting());
    rig.play_until_settled(Duration::from_secs(300));
    let message = rig.message();
    assert!(message.starts_with("Adapted on"), "{message}");
    assert!(rig.status.adaptation.adapted());
    let (loss_before, loss_best) = rig.status.adaptation.losses();
    assert!(
        loss_before > 0.0 && loss_best <= loss_before,
        "{loss_before} {loss_best}"
    );

    // The saved form rebuilds the adapted model against the base.
    let base = shipped();
    let text = rig
        .saved
        .lock()
        .unwrap()
        .clone()
        .expect("the adapted model is saved");
    let (meta, tensors) = saved::decode(&text, base.id(), base.weights()).unwrap();
    assert!(meta.name.ends_with("(adapted)"), "{}", meta.name);
    let adapted = Listener::from_parts(meta, &tensors, base.device()).unwrap();

    // The learned sound now means its frames under the adapted listener.
    let after = rig.sound();
    let expected =
        adaptation::reembed(&adapted, &frames, &rig.worker.sink().settings.spec).unwrap();
    let distance = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt()
    };
    let norm = after.mean.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(
        distance(&after.mean, &expected) < 1e-3 * norm,
        "re-embedded mean off by {}",
        distance(&after.mean, &expected)
    );
    assert!(
        distance(&after.mean, &before.mean) > 1e-4 * norm,
        "the mean moved"
    );

    // No slot ever moved further in one hop than its smoothing allows, swap included.
    let hop = rig.worker.sink().settings.hop_seconds;
    let bound = 1.0 - smoothing_coefficient(crate::outputs::slot::DEFAULT_SMOOTHING_MS, hop);
    for (k, pair) in rig.values[hops_before..].windows(2).enumerate() {
        for (slot, (now, next)) in pair[0].iter().zip(&pair[1]).take(3).enumerate() {
            let step = (next - now).abs();
            assert!(
                step <= bound + 1e-6,
                "hop {k}, slot {slot}: {step} > {bound}"
            );
        }
    }

    // Revert: the chosen model again, and the sound's mean under it.
    rig.worker.sink_mut().revert();
    assert!(
        rig.status.adaptation.reverting(),
        "the job running is the revert"
    );
    rig.play_until_settled(Duration::from_secs(60));
    assert!(!rig.status.adaptation.reverting());
    assert!(rig.message().starts_with("Reverted"), "{}", rig.message());
    assert!(!rig.status.adaptation.adapted());
    assert_eq!(*rig.saved.lock().unwrap(), None);
    let reverted = rig.sound();
    let expected = adaptation::reembed(&base, &frames, &rig.worker.sink().settings.spec).unwrap();
    assert!(distance(&reverted.mean, &expected) < 1e-5 * norm);
    // Heard again from f16 frames, the sound is where the live capture put it.
    assert!(
        distance(&reverted.mean, &before.mean) < 0.05 * norm,
        "{} vs {norm}",
        distance(&reverted.mean, &before.mean)
    );
}

#[test]
fn adapting_on_silence_a_sine_or_too_little_history_is_harmless() {
    let mut rig = rig(quick());
    rig.play(2, Signal::Mix);
    rig.press_adapt(Signal::Mix);
    rig.play_until_settled(Duration::from_secs(30));
    assert!(rig.message().contains("too short"), "{}", rig.message());
    assert!(!rig.status.adaptation.adapted());

    let mut rig = self::rig(quick());
    rig.play(20, Signal::Silence);
    rig.press_adapt(Signal::Silence);
    rig.play_until_settled(Duration::from_secs(30));
    assert!(
        rig.message().contains("silent or constant"),
        "{}",
        rig.message()
    );
    assert!(!rig.status.adaptation.adapted());
    assert_eq!(*rig.saved.lock().unwrap(), None);

    // Revert with nothing adapted says so.
    rig.worker.sink_mut().revert();
    assert!(
        rig.message().starts_with("Nothing to revert"),
        "{}",
        rig.message()
    );

    // One steady sine: whatever adaptation makes of it, a message and a listener that still
    // embeds, never a crash.
    let mut rig = self::rig(quick());
    rig.play(20, Signal::Sine);
    rig.press_adapt(Signal::Sine);
    rig.play_until_settled(Duration::from_secs(60));
    let message = rig.message();
    assert!(
        message.starts_with("Adapted on") || message.starts_with("No change"),
        "{message}"
    );
    let hops = rig.values.len();
    rig.play(1, Signal::Mix);
    assert!(!rig.status.refused(), "{:?}", rig.status.not_in_use());
    assert_eq!(
        rig.values.len(),
        hops + 100,
        "every hop still reaches the outputs"
    );
}

#[test]
fn cancel_and_drop_return_promptly_and_keep_the_listener() {
    let slow = AdaptConfig {
        max_epochs: 50,
        patience: 50,
        ..AdaptConfig::default()
    };
    let mut rig = rig(slow);
    rig.play(20, Signal::Mix);
    rig.press_adapt(Signal::Mix);
    rig.play(1, Signal::Mix);
    assert!(rig.worker.sink().adapting());
    let start = Instant::now();
    rig.worker.sink_mut().cancel_adaptation();
    assert!(start.elapsed() < STOP_WAIT + Duration::from_millis(50));
    assert!(rig.message().starts_with("Cancelled"), "{}", rig.message());
    assert!(!rig.status.adaptation.running());
    assert!(!rig.status.adaptation.adapted());

    // Dropping the instance mid-adaptation (deactivation) returns well within 100 ms.
    rig.press_adapt(Signal::Mix);
    rig.play(1, Signal::Mix);
    assert!(rig.worker.sink().adapting());
    let start = Instant::now();
    drop(rig);
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_new_hop_sizes_the_history_for_the_same_minutes() {
    let mut rig = rig(quick());
    rig.play(1, Signal::Mix);
    let settings = rig.worker.sink().settings;
    let minutes = Controls::default().history_minutes;
    let capacity = |hop| FrameHistory::frames_for(minutes, hop);
    assert_eq!(
        rig.worker.sink().history().capacity(),
        capacity(settings.hop_seconds)
    );
    let slower = ListenSettings {
        hop_seconds: 2.0 * settings.hop_seconds,
        ..settings
    };
    rig.worker.apply(slower);
    assert_eq!(
        rig.worker.sink().history().capacity(),
        capacity(slower.hop_seconds),
        "the ring holds {minutes} minutes at the new hop"
    );
}

#[test]
fn changing_the_bands_while_adapting_is_harmless() {
    let mut rig = rig(quick());
    rig.play(20, Signal::Mix);
    rig.press_adapt(Signal::Mix);
    let settings = rig.worker.sink().settings;
    let fewer = ListenSettings {
        n_bands: 64,
        ..settings
    };
    rig.worker.apply(fewer);
    rig.play(2, Signal::Mix);
    assert!(
        rig.worker.sink().history().len() <= 200,
        "the history restarted"
    );
    rig.play_until_settled(Duration::from_secs(300));
    // The adapted model cannot serve 64 bands: it waits, refused, like any model would.
    assert!(rig.status.refused());
    rig.worker.apply(settings);
    rig.play(1, Signal::Mix);
    assert!(!rig.status.refused(), "{:?}", rig.status.not_in_use());
}

#[test]
fn the_job_runs_at_the_lowest_priority() {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut job = AdaptJob::spawn(
        JobPriority::Lowest,
        move |_cancel: &AtomicBool| -> Result<Finished, String> {
            #[cfg(target_os = "linux")]
            // SAFETY: reads the calling thread's own policy.
            let policy = unsafe { libc::sched_getscheduler(0) };
            #[cfg(not(target_os = "linux"))]
            let policy = 0;
            tx.send(policy).unwrap();
            Err("done".into())
        },
    )
    .unwrap();
    let policy = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    #[cfg(target_os = "linux")]
    assert_eq!(policy, libc::SCHED_IDLE);
    let _ = policy;
    let start = Instant::now();
    loop {
        if let Some(outcome) = job.take() {
            assert_eq!(outcome.err().as_deref(), Some("done"));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_adaptation_that_learns_nothing_swaps_nothing() {
    // A learning rate of 0: no epoch can beat the listener in use on the held-out part.
    let mut rig = rig(AdaptConfig {
        learning_rate: 0.0,
        max_epochs: 1,
        ..AdaptConfig::default()
    });
    rig.play(20, Signal::Mix);
    rig.press_adapt(Signal::Mix);
    rig.play_until_settled(Duration::from_secs(60));
    assert!(rig.message().starts_with("No change"), "{}", rig.message());
    assert!(!rig.status.adaptation.adapted());
    assert_eq!(*rig.saved.lock().unwrap(), None);
}
