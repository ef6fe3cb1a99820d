//! Runs on the worker and on an adaptation thread: the plugin's *Adapt*, *Cancel* and *Revert*.
//!
//! The worker starts an [`AdaptJob`] with a copy of its [listening
//! history](super::history::FrameHistory) and goes on embedding with the listener in use. The
//! job runs [`adapt`](crate::listener::adapt::adapt) on its own thread at the lowest priority
//! the OS offers ([`lower_priority`]), on one core, then builds the new listener, embeds every
//! learned sound's [captured frames](crate::outputs::learned::CapturedFrames) with it and
//! encodes the weights for the saved state. The worker polls the job once per hop and swaps
//! the result in at that hop boundary. *Revert* is a job too: it rebuilds the model the session
//! chose and re-embeds the learned sounds the same way, off the worker.
//!
//! Dropping a job (deactivation, a new model) cancels it and waits at most [`STOP_WAIT`] for
//! its thread; a thread that has not noticed by then (starved at idle priority) is left to
//! finish on its own at its next minibatch, holding nothing the instance needs.

use crate::dilated::DilatedSpec;
use crate::listener::adapt::{self, AdaptConfig, Progress};
use crate::listener::encoder::Device;
use crate::listener::format::{ListenerMetadata, NamedTensor};
use crate::listener::Listener;
use crate::outputs::learned::{CapturedFrames, LearnedSounds};
use crate::outputs::source::MAX_LEARNED;
use crate::worker::ListenSettings;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a dropped job waits for its thread: deactivation must return within 100 ms, and
/// the worker's own stop takes up to a frame besides.
pub const STOP_WAIT: Duration = Duration::from_millis(50);

/// What the editor shows of adaptation. Written by the worker and the job, read by the editor.
#[derive(Default)]
pub struct AdaptStatus {
    /// A job (adapt or revert) is running.
    running: AtomicBool,
    /// The job running is a revert, which has no progress to show.
    reverting: AtomicBool,
    /// Share of the job's most work done, 0..1 (f32 bits).
    progress_bits: AtomicU32,
    /// The held-out loss of the model the job started from (f32 bits; 0 until measured).
    loss_before_bits: AtomicU32,
    /// The lowest held-out loss reached so far, then the kept weights' (f32 bits).
    loss_best_bits: AtomicU32,
    /// The listener in use is an adapted one: *Revert* has something to undo.
    adapted: AtomicBool,
    /// Seconds of history the worker holds (f32 bits): what *Adapt* would learn from.
    history_seconds_bits: AtomicU32,
    /// The last outcome for the user: what adaptation did, why it failed, what Revert did.
    message: Mutex<Option<String>>,
}

impl AdaptStatus {
    /// Whether a job is running. Allocation-free.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// Whether the job running is a revert (it has no progress or losses). Allocation-free.
    pub fn reverting(&self) -> bool {
        self.running() && self.reverting.load(Ordering::Relaxed)
    }

    /// The running job's progress, 0..1. Allocation-free.
    pub fn progress(&self) -> f32 {
        f32::from_bits(self.progress_bits.load(Ordering::Relaxed))
    }

    /// Held-out loss before and the best so far ([`AdaptReport::held_out_before`](crate::listener::adapt::AdaptReport::held_out_before)); 0 until
    /// measured.
    /// Allocation-free.
    pub fn losses(&self) -> (f32, f32) {
        (
            f32::from_bits(self.loss_before_bits.load(Ordering::Relaxed)),
            f32::from_bits(self.loss_best_bits.load(Ordering::Relaxed)),
        )
    }

    /// Whether the listener in use is adapted. Allocation-free.
    pub fn adapted(&self) -> bool {
        self.adapted.load(Ordering::Relaxed)
    }

    /// Seconds of listening history held. Allocation-free.
    pub fn history_seconds(&self) -> f32 {
        f32::from_bits(self.history_seconds_bits.load(Ordering::Relaxed))
    }

    /// The last outcome's text; `None` before any, or while it is being written. Allocates the
    /// copy.
    pub fn message(&self) -> Option<String> {
        self.message.try_lock().ok()?.clone()
    }

    /// Records the outcome for the user. Allocation-free (moves the text).
    pub(super) fn set_message(&self, text: Option<String>) {
        *self.message.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    /// Marks a job started (saying whether it is a revert) or ended; a start clears the progress
    /// and losses. Allocation-free.
    pub(super) fn set_running(&self, running: bool, reverting: bool) {
        self.reverting
            .store(running && reverting, Ordering::Relaxed);
        if running {
            self.progress_bits.store(0, Ordering::Relaxed);
            self.loss_before_bits.store(0, Ordering::Relaxed);
            self.loss_best_bits.store(0, Ordering::Relaxed);
        }
        self.running.store(running, Ordering::Relaxed);
    }

    /// Whether the listener in use is adapted. Allocation-free.
    pub(super) fn set_adapted(&self, adapted: bool) {
        self.adapted.store(adapted, Ordering::Relaxed);
    }

    /// Seconds of history held. Allocation-free.
    pub(super) fn set_history_seconds(&self, seconds: f32) {
        self.history_seconds_bits
            .store(seconds.to_bits(), Ordering::Relaxed);
    }

    /// Records an adaptation's progress. Allocation-free.
    fn report(&self, progress: &Progress) {
        let loss = progress.held_out_loss as f32;
        if self.loss_before_bits.load(Ordering::Relaxed) == 0 {
            self.loss_before_bits
                .store(loss.to_bits(), Ordering::Relaxed);
        }
        self.loss_best_bits.store(loss.to_bits(), Ordering::Relaxed);
        self.progress_bits
            .store((progress.fraction as f32).to_bits(), Ordering::Relaxed);
    }
}

/// The model a session chose (the built-in one or a file), which adapted listeners are saved
/// against and *Revert* returns to.
#[derive(Clone, Debug)]
pub struct ModelRoot {
    /// Its metadata.
    pub meta: ListenerMetadata,
    /// Its weights, encoder and decoder.
    pub weights: Arc<[NamedTensor]>,
    /// Its file's id.
    pub id: String,
    /// Where it runs, so that listeners derived from it run there too.
    pub device: Device,
}

impl ModelRoot {
    /// The root of `listener`. Allocates a copy of its metadata (the weights are shared).
    pub fn of(listener: &Listener) -> Self {
        Self {
            meta: listener.metadata().clone(),
            weights: listener.weights().clone(),
            id: listener.id().to_owned(),
            device: listener.device(),
        }
    }

    /// A listener with the root's own weights. Allocates.
    pub fn listener(&self) -> Result<Listener, String> {
        Listener::from_parts(self.meta.clone(), &self.weights, self.device)
            .map_err(|e| e.to_string())
    }
}

/// A learned sound embedded again by a new listener.
#[derive(Clone, Debug, PartialEq)]
pub struct Relearned {
    /// Its learn target.
    pub target: usize,
    /// When the sound embedded was learned ([`LearnedSound::learned_unix`]): a sound learned
    /// again while the job ran is not overwritten with a mean of the old frames.
    ///
    /// [`LearnedSound::learned_unix`]: crate::outputs::learned::LearnedSound::learned_unix
    pub learned_unix: u64,
    /// Its mean embedding under the new listener.
    pub mean: Vec<f32>,
}

/// What a finished job hands the worker.
pub struct Finished {
    /// The listener to use from the next hop.
    pub listener: Listener,
    /// The learned sounds' means under it.
    pub relearned: Vec<Relearned>,
    /// Learned sounds that kept no frames and so could not follow (their names).
    pub stale: Vec<String>,
    /// The adapted weights as the saved state keeps them; `None` after a revert.
    pub saved: Option<String>,
    /// What to tell the user.
    pub message: String,
}

/// How a job's thread is scheduled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JobPriority {
    /// The lowest the OS offers ([`lower_priority`]): the plugin's, so that fine-tuning takes
    /// only time no other thread of the machine wants.
    #[default]
    Lowest,
    /// The caller's own: for tests and tools that keep every core busy on purpose, where a
    /// lowest-priority thread could wait for minutes.
    Normal,
}

/// A job running on its own thread. Dropping it cancels it (see the module documentation).
pub struct AdaptJob {
    /// Asks the job to stop at its next minibatch.
    cancel: Arc<AtomicBool>,
    /// The job's outcome once it ends: the result, or why there is none.
    outcome: Arc<Mutex<Option<Result<Finished, String>>>>,
    /// The thread; taken when joined or left to finish.
    thread: Option<JoinHandle<()>>,
}

impl AdaptJob {
    /// Runs `work` on a new thread named `echoic-adapt` at `priority`. `work` reads the cancel
    /// flag it is given. Allocates; spawns a thread.
    pub fn spawn(
        priority: JobPriority,
        work: impl FnOnce(&AtomicBool) -> Result<Finished, String> + Send + 'static,
    ) -> std::io::Result<Self> {
        let cancel = Arc::new(AtomicBool::new(false));
        let outcome = Arc::new(Mutex::new(None));
        let (thread_cancel, thread_outcome) = (cancel.clone(), outcome.clone());
        let thread = std::thread::Builder::new()
            .name("echoic-adapt".into())
            .spawn(move || {
                if priority == JobPriority::Lowest {
                    lower_priority();
                }
                let result = work(&thread_cancel);
                *thread_outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            })?;
        Ok(Self {
            cancel,
            outcome,
            thread: Some(thread),
        })
    }

    /// Asks the job to stop; [`take`](Self::take) then reports it cancelled. Allocation-free.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// The outcome, once the job has ended; `None` while it runs. Never waits for the job.
    /// Allocation-free.
    pub fn take(&mut self) -> Option<Result<Finished, String>> {
        let outcome = self.outcome.try_lock().ok()?.take()?;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join(); // it has stored its outcome: it is ending
        }
        Some(outcome)
    }
}

impl Drop for AdaptJob {
    fn drop(&mut self) {
        self.cancel();
        let Some(thread) = self.thread.take() else {
            return;
        };
        let start = Instant::now();
        while !thread.is_finished() && start.elapsed() < STOP_WAIT {
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
        // Otherwise it is left to end at its next check of the cancel flag.
    }
}

/// Lowers the calling thread to the lowest scheduling priority available: `SCHED_IDLE` on
/// Linux, which runs only when no other thread of the machine wants the core, and the
/// background quality of service on macOS. Elsewhere it does nothing. A failure is ignored:
/// the thread then runs at normal priority, still on one core. Allocation-free.
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler with pid 0 changes only the calling thread; the parameter is a
    // valid, initialised struct.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
    #[cfg(target_os = "macos")]
    // SAFETY: sets the calling thread's own quality-of-service class.
    unsafe {
        libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_BACKGROUND, 0);
    }
}

/// The mean embedding `listener` gives the buffers of `frames` (built as the worker builds
/// them, one per captured hop), or `None` when the frames do not suit it (another band count,
/// too few for one buffer) or inference fails. Allocates.
pub fn reembed(
    listener: &Listener,
    frames: &CapturedFrames,
    spec: &DilatedSpec,
) -> Option<Vec<f32>> {
    if frames.n_bands != listener.metadata().features.n_bands {
        return None;
    }
    let buffers = adapt::dilated_buffers(&frames.values, frames.n_bands, spec);
    let sequence = spec.steps * frames.n_bands;
    let n = buffers.len() / sequence;
    if n == 0 {
        return None;
    }
    let embeddings = listener.embed_batch(&buffers, n).ok()?;
    let latent = listener.latent_dim();
    let mut mean = vec![0.0f64; latent];
    for e in embeddings.chunks_exact(latent) {
        for (m, &v) in mean.iter_mut().zip(e) {
            *m += f64::from(v);
        }
    }
    Some(mean.iter().map(|m| (m / n as f64) as f32).collect())
}

/// Every learned sound of `learned` embedded again by `listener`, and the names of those that
/// kept no usable frames. Allocates.
pub fn reembed_all(
    listener: &Listener,
    learned: &LearnedSounds,
    spec: &DilatedSpec,
) -> (Vec<Relearned>, Vec<String>) {
    let (mut relearned, mut stale) = (Vec::new(), Vec::new());
    for (target, sound) in learned.sounds.iter().enumerate().take(MAX_LEARNED) {
        let Some(sound) = sound else { continue };
        match sound
            .frames
            .as_ref()
            .and_then(|frames| reembed(listener, frames, spec))
        {
            Some(mean) => relearned.push(Relearned {
                target,
                learned_unix: sound.learned_unix,
                mean,
            }),
            None => stale.push(sound.name.clone()),
        }
    }
    (relearned, stale)
}

/// What an adaptation job needs, taken on the worker when *Adapt* is pressed.
pub struct AdaptRequest {
    /// The model in use: the one fine-tuned.
    pub base_meta: ListenerMetadata,
    /// Its weights.
    pub base_weights: Arc<[NamedTensor]>,
    /// Its file's id, recorded in the adapted model's provenance.
    pub base_id: String,
    /// The model the session chose, which the saved delta is taken against.
    pub root: ModelRoot,
    /// The history's frames (dB, oldest first).
    pub history: Vec<f32>,
    /// The settings it was heard with.
    pub settings: ListenSettings,
    /// How to adapt.
    pub config: AdaptConfig,
    /// The learned sounds when the job started, to embed again.
    pub learned: LearnedSounds,
}

/// The adaptation job's work (see the module documentation): fine-tune, build, re-embed,
/// encode for saving. When no epoch beat the listener in use on the held-out part, nothing is
/// swapped: the outcome is then the message saying so (as an `Err`, like every outcome that
/// leaves the listener as it is). Allocates; runs for seconds to a minute.
pub fn run_adaptation(
    request: AdaptRequest,
    status: &AdaptStatus,
    cancel: &AtomicBool,
) -> Result<Finished, String> {
    let mut adapted = adapt::adapt(
        &request.base_meta,
        &request.base_weights,
        &request.history,
        &request.settings,
        &request.config,
        cancel,
        |progress| status.report(&progress),
    )
    .map_err(|e| e.to_string())?;
    let r = &adapted.report;
    if r.best_epoch == 0 {
        return Err(format!(
            "No change: on {:.0} s of history no epoch beat the listener in use on the held-out \
             part (loss {:.5}), so it stays as it is ({} epochs, {:.1} s)",
            r.history_seconds, r.held_out_before, r.epochs, r.seconds
        ));
    }
    if let Some(from) = &mut adapted.metadata.provenance.adapted_from {
        from.id = Some(request.base_id.clone());
    }
    let listener = adapted
        .listener(request.root.device)
        .map_err(|e| format!("the adapted listener could not be built: {e}"))?;
    let (relearned, stale) = reembed_all(&listener, &request.learned, &request.settings.spec);
    let saved = adapt::saved::encode(
        &request.root.id,
        &request.root.weights,
        &adapted.metadata,
        &adapted.tensors,
    )
    .map_err(|e| format!("the adapted listener could not be encoded for saving: {e}"))?;
    let r = &adapted.report;
    let message = format!(
        "Adapted on {:.0} s of history: held-out loss {:.5} -> {:.5} ({:+.0} %), epoch {} of \
         {}, {:.1} s",
        r.history_seconds,
        r.held_out_before,
        r.held_out_after,
        100.0 * (r.held_out_after / r.held_out_before - 1.0),
        r.best_epoch,
        r.epochs,
        r.seconds
    );
    Ok(Finished {
        listener,
        relearned,
        stale,
        saved: Some(saved),
        message,
    })
}

/// The revert job's work: the session's chosen model again, with the learned sounds embedded by
/// it. Allocates.
pub fn run_revert(
    root: &ModelRoot,
    learned: &LearnedSounds,
    spec: &DilatedSpec,
) -> Result<Finished, String> {
    let listener = root.listener()?;
    let (relearned, stale) = reembed_all(&listener, learned, spec);
    Ok(Finished {
        message: format!("Reverted to \"{}\"", root.meta.name),
        listener,
        relearned,
        stale,
        saved: None,
    })
}
