//! Runs on the worker: each dilated buffer to an embedding, the outputs and the display feed.
//!
//! What the worker does with each dilated buffer in the plugin: embed it with the listener, turn
//! the embedding and the frame into automation values, and send those to the audio thread. It
//! also keeps the [listening history](history) and runs [*Adapt*](adaptation).

pub mod adaptation;
pub mod history;

use crate::display::{AdaptAction, DisplayFeed, EditorRequest};
use crate::frame::Frame;
use crate::listener::adapt::AdaptConfig;
use crate::listener::Listener;
use crate::outputs::learned::CapturedFrames;
use crate::outputs::learned::LearnedSounds;
use crate::outputs::slot::SlotConfig;
use crate::outputs::{OutputConfig, OutputEngine, N_SLOTS};
use crate::worker::{BufferSink, ListenSettings};
use adaptation::{AdaptJob, AdaptRequest, AdaptStatus, Finished, JobPriority, ModelRoot};
use history::FrameHistory;
use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Automation values of one hop, on their way to the audio thread.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CcFrame {
    /// Sample position of the frame the values came from (see [`Frame::sample_pos`]), so that the
    /// audio thread can place the MIDI at the hop that caused it.
    pub sample_pos: u64,
    /// Shaped slot values, 0..1.
    pub values: [f32; N_SLOTS],
}

/// Hops of automation the ring holds: half a second, far more than the audio thread ever lets
/// pile up.
const CC_RING: usize = 64;

/// Creates the worker-to-audio automation ring. Allocates (once).
pub fn cc_ring() -> (HeapProd<CcFrame>, CcReceiver) {
    let (tx, rx) = HeapRb::new(CC_RING).split();
    (tx, CcReceiver { consumer: rx })
}

/// The audio thread's end of the automation ring.
pub struct CcReceiver {
    /// Where the values arrive.
    consumer: HeapCons<CcFrame>,
}

impl CcReceiver {
    /// The oldest waiting values, if any. Real-time safe.
    #[inline]
    pub fn recv(&mut self) -> Option<CcFrame> {
        self.consumer.try_pop()
    }
}

/// What the listener side publishes for the editor. Written only by [`Listening`], on the
/// worker (and at activation, before the worker starts); each notice has its own field, so that
/// one cannot clear another.
#[derive(Default)]
pub struct ListenerStatus {
    /// Duration of the last inference, µs (f32 bits).
    inference_us_bits: AtomicU32,
    /// The model is not in use; see `not_in_use`.
    refused: AtomicBool,
    /// Why the model is not in use (none could be loaded, it cannot serve the current listening
    /// settings, or inference failed), for the user. Rewritten whenever the settings change.
    not_in_use: Mutex<Option<String>>,
    /// Why the model in use has no principal axes to offer (the axis outputs and the map stay at
    /// the middle), for the user. Rewritten only when a model is installed.
    axes_unusable: Mutex<Option<String>>,
    /// Adaptation's progress and outcome.
    pub adaptation: AdaptStatus,
}

impl ListenerStatus {
    /// Duration of the last inference in µs. Allocation-free.
    pub fn inference_us(&self) -> f32 {
        f32::from_bits(self.inference_us_bits.load(Ordering::Relaxed))
    }

    /// Whether the model is not in use. Allocation-free.
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Why the model is not in use; `None` when it is, or while the worker is writing.
    /// Allocates the copy.
    pub fn not_in_use(&self) -> Option<String> {
        self.not_in_use.try_lock().ok()?.clone()
    }

    /// Why the model's principal axes cannot be used; `None` when they can, or while the worker
    /// is writing. Allocates the copy.
    pub fn axes_unusable(&self) -> Option<String> {
        self.axes_unusable.try_lock().ok()?.clone()
    }

    /// Records why the model is not in use (`None`: it is).
    fn set_not_in_use(&self, why: Option<String>) {
        self.refused.store(why.is_some(), Ordering::Relaxed);
        *self.not_in_use.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }

    /// Records why the principal axes cannot be used (`None`: they can).
    fn set_axes_unusable(&self, why: Option<String>) {
        *self.axes_unusable.lock().unwrap_or_else(|e| e.into_inner()) = why;
    }
}

/// Requests from the plugin's parameters and editor, read once per hop.
pub struct Controls {
    /// The eight slots' settings.
    pub slots: [SlotConfig; N_SLOTS],
    /// Per learn target: the learn trigger is held (a capture starts on its rising edge).
    pub learn: [bool; crate::outputs::source::MAX_LEARNED],
    /// Seconds a capture lasts.
    pub learn_seconds: f32,
    /// The *Adapt* trigger is held (an adaptation starts on its rising edge).
    pub adapt: bool,
    /// Minutes of listening history to keep (clamped to
    /// 1..=[`MAX_HISTORY_MINUTES`](history::MAX_HISTORY_MINUTES)).
    pub history_minutes: u32,
}

impl Default for Controls {
    /// The slots' defaults, no trigger held, the default capture and history lengths.
    /// Allocation-free.
    fn default() -> Self {
        Self {
            slots: SlotConfig::defaults(),
            learn: [false; crate::outputs::source::MAX_LEARNED],
            learn_seconds: crate::outputs::learned::DEFAULT_LEARN_SECONDS,
            adapt: false,
            history_minutes: history::DEFAULT_HISTORY_MINUTES,
        }
    }
}

/// The plugin's [`BufferSink`]: listener, outputs and the automation ring.
pub struct Listening<C: FnMut() -> Controls + Send> {
    /// The model; `None` when it cannot serve the current settings.
    listener: Option<Listener>,
    /// The model, kept while refused so that a return to compatible settings re-enables it.
    parked: Option<Listener>,
    /// The embedding of the current hop.
    embedding: Vec<f32>,
    /// Features, learned sounds and slot shaping.
    outputs: OutputEngine,
    /// Where the slot values go.
    cc: HeapProd<CcFrame>,
    /// Reads the plugin's controls.
    controls: C,
    /// Learn triggers seen on the previous hop, for edge detection.
    learn_held: [bool; crate::outputs::source::MAX_LEARNED],
    /// The learned sounds as saved in the plugin state; written when they change.
    saved_learned: Arc<Mutex<LearnedSounds>>,
    /// Published for the editor.
    status: Arc<ListenerStatus>,
    /// The settings in force, for the editor's display and for re-checking a model installed
    /// while listening.
    settings: ListenSettings,
    /// The editor's feed and requests (clear a learned sound, use another model); `None`
    /// without an editor (tests, command-line tools).
    display: Option<DisplayFeed>,
    /// The last minutes of valid frames: what *Adapt* learns from and captures keep.
    history: FrameHistory,
    /// The History length `history` is sized for, minutes: a change of hop resizes the ring
    /// once, straight to these minutes at the new hop.
    history_minutes: u32,
    /// Per learn target, [`FrameHistory::pushed`] at its capture's first hop.
    capture_start: [u64; crate::outputs::source::MAX_LEARNED],
    /// The *Adapt* trigger seen on the previous hop, for edge detection.
    adapt_held: bool,
    /// How adaptation runs.
    adapt_config: AdaptConfig,
    /// How the adaptation thread is scheduled.
    job_priority: JobPriority,
    /// The model the session chose: saved deltas are against it, *Revert* returns to it.
    /// `None` without a model.
    root: Option<ModelRoot>,
    /// The adaptation or revert running, if any.
    job: Option<AdaptJob>,
    /// A finished job's result waiting for a capture in progress to end: a capture's mean must
    /// come from one listener.
    waiting: Option<Finished>,
    /// The adapted listener as the saved state keeps it (`None`: the chosen model is in use);
    /// written when a swap happens.
    saved_adapted: Arc<Mutex<Option<String>>>,
}

impl<C: FnMut() -> Controls + Send> Listening<C> {
    /// Sets up the listener side for `settings`. Without a model (`listener` says why there is
    /// none) only the model-free sources (loudness, periodicity) move. Allocates.
    pub fn new(
        listener: Result<Listener, String>,
        settings: &ListenSettings,
        cc: HeapProd<CcFrame>,
        mut controls: C,
        saved_learned: Arc<Mutex<LearnedSounds>>,
        status: Arc<ListenerStatus>,
    ) -> Self {
        let latent = listener
            .as_ref()
            .map_or(crate::outputs::DEFAULT_EMBEDDING_DIM, Listener::latent_dim);
        let mut outputs = OutputEngine::new(OutputConfig::from_settings(settings, latent));
        let pca = listener.as_ref().ok().and_then(pca_of);
        status.set_axes_unusable(axes_problem(outputs.set_pca(pca)));
        let listener = match listener {
            Ok(listener) => Some(listener),
            Err(why) => {
                status.set_not_in_use(Some(why));
                None
            }
        };
        let learned = saved_learned
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        outputs.set_learned(learned);
        let root = listener.as_ref().map(ModelRoot::of);
        // The history is sized here, at activation, for the length the controls ask for now.
        let minutes = controls().history_minutes;
        let mut listening = Self {
            listener: None,
            parked: listener,
            embedding: vec![0.0; latent],
            outputs,
            cc,
            controls,
            learn_held: [false; crate::outputs::source::MAX_LEARNED],
            saved_learned,
            status,
            settings: *settings,
            display: None,
            history: FrameHistory::new(
                FrameHistory::frames_for(minutes, settings.hop_seconds),
                settings.n_bands,
            ),
            history_minutes: minutes,
            capture_start: [0; crate::outputs::source::MAX_LEARNED],
            adapt_held: false,
            adapt_config: AdaptConfig::default(),
            job_priority: JobPriority::default(),
            root,
            job: None,
            waiting: None,
            saved_adapted: Arc::default(),
        };
        listening.settings_changed(settings);
        listening
    }

    /// Sets what adaptation keeps and starts from: `root` is the model the session chose when
    /// the listener given to [`new`](Self::new) is an adapted one restored from the saved state
    /// (`None`: that listener is the chosen model itself), and `saved` is the saved state's
    /// field for the adapted listener. Allocation-free.
    pub fn with_adaptation(
        mut self,
        root: Option<ModelRoot>,
        saved: Arc<Mutex<Option<String>>>,
    ) -> Self {
        self.status.adaptation.set_adapted(root.is_some());
        if let Some(root) = root {
            self.root = Some(root);
        }
        self.saved_adapted = saved;
        self
    }

    /// Sets how adaptation runs and how its thread is scheduled (tests use a quicker one, at
    /// normal priority). Allocation-free.
    pub fn with_adapt_config(mut self, config: AdaptConfig, priority: JobPriority) -> Self {
        self.adapt_config = config;
        self.job_priority = priority;
        self
    }

    /// Connects the editor: display data is published through `feed` while an editor is open,
    /// and the editor's requests are served every hop. Allocation-free.
    pub fn with_display(mut self, feed: DisplayFeed) -> Self {
        self.display = Some(feed);
        self
    }

    /// Replaces the model (one the editor loaded), on the worker thread: the outputs are rebuilt
    /// for its embedding size and principal axes, the learned sounds are kept, and the model is
    /// checked against the settings in force like at start-up. Allocates.
    pub fn install_listener(&mut self, listener: Listener) {
        let latent = listener.latent_dim();
        if latent != self.embedding.len() {
            let learned = self.outputs.learned().clone();
            self.outputs = OutputEngine::new(OutputConfig::from_settings(&self.settings, latent));
            self.outputs.set_learned(learned);
            self.embedding = vec![0.0; latent];
        } else {
            self.outputs.reset();
        }
        let pca = pca_of(&listener);
        self.status
            .set_axes_unusable(axes_problem(self.outputs.set_pca(pca)));
        // A new choice of model: adaptation starts over from it.
        self.job = None;
        self.waiting = None;
        self.status.adaptation.set_running(false, false);
        self.status.adaptation.set_adapted(false);
        self.root = Some(ModelRoot::of(&listener));
        *self.saved_adapted.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.listener = None;
        self.parked = Some(listener);
        let settings = self.settings;
        self.settings_changed(&settings);
    }

    /// Serves the editor's requests: forget learned sounds, install a model it loaded (only the
    /// newest of several waiting), cancel or revert adaptation (the last asked).
    fn serve_editor_requests(&mut self) {
        let Some(feed) = &self.display else { return };
        let (mut model, mut adaptation) = (None, None);
        while let Some(request) = feed.next_request() {
            match request {
                EditorRequest::ClearLearned(target) => {
                    self.outputs.clear_learned(target);
                    feed.clear_done(target);
                }
                EditorRequest::UseModel { listener, info } => model = Some((listener, info)),
                EditorRequest::Adaptation(action) => adaptation = Some(action),
            }
        }
        if let Some((listener, info)) = model {
            self.install_listener(*listener);
            if let Some(feed) = &self.display {
                feed.set_model(info);
            }
        }
        match adaptation {
            Some(AdaptAction::Cancel) => self.cancel_adaptation(),
            Some(AdaptAction::Revert) => self.revert(),
            None => {}
        }
    }

    /// The output engine, for inspection.
    pub fn outputs(&self) -> &OutputEngine {
        &self.outputs
    }

    /// The listening history, for inspection.
    pub fn history(&self) -> &FrameHistory {
        &self.history
    }

    /// Whether an adaptation or revert is running. Allocation-free.
    pub fn adapting(&self) -> bool {
        self.job.is_some()
    }

    /// Keeps this hop's frame in the history (valid frames only: a hop of bad audio teaches
    /// nothing), first resizing the history when the user changed its length. Allocation-free
    /// except on a resize.
    fn keep_history(&mut self, frame: &Frame, minutes: u32) {
        if minutes != self.history_minutes {
            let capacity = FrameHistory::frames_for(minutes, self.settings.hop_seconds);
            self.history = self.history.resized(capacity);
            self.history_minutes = minutes;
        }
        if frame.valid {
            self.history.push(frame.energies());
        }
        let seconds = self.history.len() as f64 * self.settings.hop_seconds;
        self.status.adaptation.set_history_seconds(seconds as f32);
    }

    /// Gives the sound whose capture just finished the frames it heard, from the history: the
    /// capture's frames and the memory's look-back before them. Allocates them.
    fn keep_capture_frames(&mut self, target: usize) {
        let captured = self
            .history
            .pushed()
            .saturating_sub(self.capture_start[target]);
        let look_back = self.settings.spec.memory_frames().saturating_sub(1) as u64;
        let values = self.history.latest((captured + look_back) as usize);
        let frames = CapturedFrames::new(self.history.n_bands(), &values);
        self.outputs.update_learned(|learned| {
            if let Some(Some(sound)) = learned.sounds.get_mut(target) {
                sound.frames = Some(frames);
            }
        });
    }

    /// Starts a job on its own thread and says so in the status. Allocates; spawns a thread.
    fn spawn_job(
        &mut self,
        what: String,
        reverting: bool,
        work: impl FnOnce(&AtomicBool) -> Result<Finished, String> + Send + 'static,
    ) {
        let status = &self.status.adaptation;
        match AdaptJob::spawn(self.job_priority, work) {
            Ok(job) => {
                self.job = Some(job);
                status.set_running(true, reverting);
                status.set_message(Some(what));
            }
            Err(error) => status.set_message(Some(format!("could not start a thread: {error}"))),
        }
    }

    /// *Adapt*: fine-tunes the listener in use on the history, on an adaptation thread. Says
    /// why not when it cannot start. Allocates the history's copy.
    fn start_adaptation(&mut self) {
        let status = &self.status.adaptation;
        if self.job.is_some() {
            status.set_message(Some("Already adapting: cancel first to start over".into()));
            return;
        }
        let (Some(listener), Some(root)) = (&self.listener, &self.root) else {
            let why = self
                .status
                .not_in_use()
                .unwrap_or_else(|| "no model is loaded".into());
            status.set_message(Some(format!("Nothing to adapt: {why}")));
            return;
        };
        let seconds = self.history.len() as f64 * self.settings.hop_seconds;
        let request = AdaptRequest {
            base_meta: listener.metadata().clone(),
            base_weights: listener.weights().clone(),
            base_id: listener.id().to_owned(),
            root: root.clone(),
            history: self.history.latest(self.history.len()),
            settings: self.settings,
            config: self.adapt_config,
            learned: self.outputs.learned().clone(),
        };
        let shared = self.status.clone();
        self.spawn_job(
            format!("Adapting on {seconds:.0} s of history..."),
            false,
            move |cancel| adaptation::run_adaptation(request, &shared.adaptation, cancel),
        );
    }

    /// *Revert*: back to the model the session chose, on the adaptation thread (the learned
    /// sounds are embedded again there). Cancels an adaptation in progress. Allocates.
    pub fn revert(&mut self) {
        self.cancel_adaptation();
        let status = &self.status.adaptation;
        let Some(root) = self.root.clone().filter(|_| status.adapted()) else {
            status.set_message(Some(
                "Nothing to revert: the listener in use is the chosen model".into(),
            ));
            return;
        };
        let learned = self.outputs.learned().clone();
        let spec = self.settings.spec;
        self.spawn_job(
            format!("Reverting to \"{}\"...", root.meta.name),
            true,
            move |_| adaptation::run_revert(&root, &learned, &spec),
        );
    }

    /// *Cancel*: stops the job (waiting at most [`adaptation::STOP_WAIT`]); the listener in use
    /// stays. Allocation-free.
    pub fn cancel_adaptation(&mut self) {
        if self.job.take().is_some() || self.waiting.take().is_some() {
            let status = &self.status.adaptation;
            status.set_running(false, false);
            status.set_message(Some("Cancelled: the listener in use is unchanged".into()));
        }
    }

    /// Takes a finished job's result, and swaps it in at this hop boundary unless a capture is
    /// running (then at the first hop after it). Allocates only on the swap.
    fn poll_job(&mut self) {
        if let Some(outcome) = self.job.as_mut().and_then(AdaptJob::take) {
            self.job = None;
            self.status.adaptation.set_running(false, false);
            match outcome {
                Ok(finished) => self.waiting = Some(finished),
                Err(why) => self.status.adaptation.set_message(Some(why)),
            }
        }
        if self.outputs.learned().learning().is_none() {
            if let Some(finished) = self.waiting.take() {
                self.swap(finished);
            }
        }
    }

    /// Puts a job's listener in use, keeping the outputs' smoothing so that no CC jumps further
    /// than its slot allows (the novelty statistics restart: they belong to the old embedding
    /// space); the learned sounds take their means under the new listener. Allocates.
    fn swap(&mut self, finished: Finished) {
        let Finished {
            listener,
            relearned,
            mut stale,
            saved,
            message,
        } = finished;
        self.status
            .set_axes_unusable(axes_problem(self.outputs.set_pca(pca_of(&listener))));
        let spec = self.settings.spec;
        self.outputs.update_learned(|learned| {
            for (target, sound) in learned.sounds.iter_mut().enumerate() {
                let Some(sound) = sound else { continue };
                let ready = relearned
                    .iter()
                    .find(|r| r.target == target && r.learned_unix == sound.learned_unix);
                let mean = match ready {
                    Some(r) => Some(r.mean.clone()),
                    // Learned while the job ran: embedded here, once.
                    None => sound
                        .frames
                        .as_ref()
                        .and_then(|f| adaptation::reembed(&listener, f, &spec)),
                };
                match mean {
                    Some(mean) => sound.mean = mean,
                    None if !stale.contains(&sound.name) => stale.push(sound.name.clone()),
                    None => {}
                }
            }
        });
        let status = &self.status.adaptation;
        status.set_adapted(saved.is_some());
        *self.saved_adapted.lock().unwrap_or_else(|e| e.into_inner()) = saved;
        let note = if stale.is_empty() {
            message
        } else {
            format!(
                "{message}. {} kept no frames to hear again: learn again to follow the new \
                 listener",
                stale.join(", ")
            )
        };
        status.set_message(Some(note));
        if let Some(feed) = &self.display {
            let mut info = feed.model_info();
            info.name = listener.metadata().name.clone();
            feed.set_model(info);
        }
        self.listener = None;
        self.parked = Some(listener);
        let settings = self.settings;
        self.settings_changed(&settings);
    }
}

/// The principal axes of `listener`'s metadata, if it has any. Allocates.
fn pca_of(listener: &Listener) -> Option<crate::pca::Pca> {
    listener.metadata().pca.clone()
}

/// What the user is told about a refused PCA ([`OutputEngine::set_pca`]'s answer). Allocates.
fn axes_problem(installed: Result<(), crate::outputs::PcaError>) -> Option<String> {
    installed
        .err()
        .map(|error| format!("the model's principal axes are unusable: {error}"))
}

/// Why a model cannot serve some listening settings, or `None` if it can.
pub fn incompatibility(listener: &Listener, settings: &ListenSettings) -> Option<String> {
    let wanted = listener.metadata().features.to_settings();
    if wanted == *settings {
        return None;
    }
    Some(format!(
        "the model \"{}\" listens with {} bands from {} to {} Hz, a {} ms hop and {} steps \
         (dilation {} {:?}, {:?}), but the parameters ask for {} bands from {} to {} Hz, a {} ms hop \
         and {} steps (dilation {} {:?}, {:?})",
        listener.metadata().name,
        wanted.n_bands,
        wanted.low_hz,
        wanted.high_hz,
        wanted.hop_seconds * 1e3,
        wanted.spec.steps,
        wanted.spec.dilation,
        wanted.spec.kind,
        wanted.spec.pooling,
        settings.n_bands,
        settings.low_hz,
        settings.high_hz,
        settings.hop_seconds * 1e3,
        settings.spec.steps,
        settings.spec.dilation,
        settings.spec.kind,
        settings.spec.pooling,
    ))
}

impl<C: FnMut() -> Controls + Send> BufferSink for Listening<C> {
    fn settings_changed(&mut self, settings: &ListenSettings) {
        if *settings != self.settings {
            // Frames heard with another layout mean something else to a listener; the ring is
            // sized for the same minutes at the new hop.
            let capacity = FrameHistory::frames_for(self.history_minutes, settings.hop_seconds);
            self.history = FrameHistory::new(capacity, settings.n_bands);
        }
        self.settings = *settings;
        let model = self.listener.take().or_else(|| self.parked.take());
        let Some(model) = model else { return };
        match incompatibility(&model, settings) {
            None => {
                self.status.set_not_in_use(None);
                self.listener = Some(model);
            }
            Some(why) => {
                self.status.set_not_in_use(Some(why));
                self.parked = Some(model);
            }
        }
    }

    fn on_buffer(&mut self, frame: &Frame, buffer: &[f32], warming_up: bool) {
        self.serve_editor_requests();
        let controls = (self.controls)();
        for (target, (&held, was)) in controls.learn.iter().zip(&mut self.learn_held).enumerate() {
            if held && !*was {
                self.outputs.start_learning(target, controls.learn_seconds);
                self.capture_start[target] = self.history.pushed();
            }
            *was = held;
        }
        self.keep_history(frame, controls.history_minutes);
        if controls.adapt && !self.adapt_held {
            self.start_adaptation();
        }
        self.adapt_held = controls.adapt;
        self.poll_job();
        let embedding = match &mut self.listener {
            Some(listener) if frame.valid && !warming_up => {
                let start = Instant::now();
                match listener.embed_into(buffer, &mut self.embedding) {
                    Ok(()) => {
                        let us = start.elapsed().as_secs_f32() * 1e6;
                        self.status
                            .inference_us_bits
                            .store(us.to_bits(), Ordering::Relaxed);
                        Some(self.embedding.as_slice())
                    }
                    Err(error) => {
                        self.status
                            .set_not_in_use(Some(format!("inference failed: {error}")));
                        None
                    }
                }
            }
            _ => None,
        };
        let values = self.outputs.on_hop(frame, embedding, &controls.slots);
        // Display work only while an editor is open: a closed editor costs one atomic load.
        if let Some(feed) = self.display.as_mut().filter(|f| f.wanted()) {
            feed.publish(
                frame,
                embedding,
                &self.outputs,
                &values,
                buffer,
                warming_up,
                &self.settings,
            );
        }
        // A full ring means the audio thread is not running; dropping stale values is right.
        let _ = self.cc.try_push(CcFrame {
            sample_pos: frame.sample_pos,
            values,
        });
        if let Some(target) = self.outputs.take_finished_capture() {
            self.keep_capture_frames(target);
        }
        if self.outputs.take_learned_changed() {
            let learned = self.outputs.learned().clone();
            *self.saved_learned.lock().unwrap_or_else(|e| e.into_inner()) = learned;
        }
    }
}

#[cfg(test)]
mod adapt_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped model with the variance of its first principal axis set to 0: the metadata
    /// is still valid, the axes are not.
    fn model_with_unusable_axes() -> Listener {
        let mut bytes = crate::listener::DEFAULT_MODEL.to_vec();
        let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
        let key = r#"\"explained_variance\":["#;
        let start = header
            .find(key)
            .expect("the shipped model has principal axes")
            + key.len();
        let len = header[start..].find(',').unwrap();
        // A same-length edit keeps the header's length and the tensors' offsets right.
        let zero = format!("{:0<len$}", "0.");
        bytes[8 + start..8 + start + len].copy_from_slice(zero.as_bytes());
        Listener::from_bytes(&bytes).expect("the metadata is still valid")
    }

    #[test]
    fn unusable_axes_stay_reported_whatever_the_settings_do() {
        let listener = model_with_unusable_axes();
        let settings = listener.metadata().features.to_settings();
        let status = Arc::new(ListenerStatus::default());
        let (cc, _cc_rx) = cc_ring();
        let controls = Controls::default;
        let mut listening = Listening::new(
            Ok(listener),
            &settings,
            cc,
            controls,
            Arc::default(),
            status.clone(),
        );
        let why = status.axes_unusable().expect("the axes are reported");
        assert!(why.contains("principal axes are unusable"), "{why}");
        assert!(!status.refused(), "the model itself is in use");
        // Settings the model cannot serve, then its own again: the refusal comes and goes, the
        // axes stay reported.
        listening.settings_changed(&ListenSettings {
            n_bands: settings.n_bands / 2,
            ..settings
        });
        assert!(status.refused());
        assert!(status.not_in_use().is_some());
        assert_eq!(status.axes_unusable().as_deref(), Some(why.as_str()));
        listening.settings_changed(&settings);
        assert!(!status.refused());
        assert_eq!(status.not_in_use(), None);
        assert_eq!(status.axes_unusable(), Some(why));
    }

    #[test]
    fn the_history_is_sized_at_construction_for_the_minutes_asked() {
        let (cc, _cc_rx) = cc_ring();
        let listening = Listening::new(
            Err("no model".into()),
            &ListenSettings::default(),
            cc,
            || Controls {
                history_minutes: 5,
                ..Controls::default()
            },
            Arc::default(),
            Arc::default(),
        );
        // 5 minutes of 10 ms hops, before any hop has run.
        assert_eq!(listening.history().capacity(), 30_000);
    }

    #[test]
    fn a_missing_model_is_reported_as_not_in_use() {
        let status = Arc::new(ListenerStatus::default());
        let (cc, _cc_rx) = cc_ring();
        let settings = ListenSettings::default();
        let mut listening = Listening::new(
            Err("no model".into()),
            &settings,
            cc,
            Controls::default,
            Arc::default(),
            status.clone(),
        );
        listening.settings_changed(&settings);
        assert!(status.refused());
        assert_eq!(status.not_in_use().as_deref(), Some("no model"));
        assert_eq!(status.axes_unusable(), None);
    }
}
