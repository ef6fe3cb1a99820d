//! Worker to editor: the display feed the worker writes and the editor reads.
//!
//! What the editor shows, and how it gets there.
//!
//! The worker thread's [`crate::listening::Listening`] sink publishes, once per hop and only while
//! an editor is open ([`EditorLink::is_open`]), two things:
//!
//! - a [`DisplayHop`] (the cochlear frame, the embedding, its position on the model's first two
//!   principal axes, the slot values, the learning progress) through a lock-free SPSC ring; the
//!   editor drains the ring every frame and keeps its own history for the scrolling views;
//! - a [`DisplayState`] (the current dilated buffer, the listening settings, the learned sounds
//!   projected on the same axes) through a triple buffer: the editor only needs the latest one.
//!
//! Neither side ever waits for the other: the worker drops a hop when the ring is full (the editor
//! is not drawing), and the editor shows the last state it got. The audio thread is not involved
//! at all; everything here runs on the worker and the GUI thread.
//!
//! Requests go the other way, on their own queue in the same [`EditorLink`]: "forget learned sound
//! j" and "use this model from now on" (a loaded [`Listener`]); the worker serves them between
//! two hops ([`DisplayFeed::next_request`]).
//!
//! Every notice the link carries has one writer: the open count only the editor's
//! [`EditorOpen`] guards, the requests only the editor, which clears are done and which model is
//! in use only the worker's [`DisplayFeed`], the activation count and the editor's end of the
//! feed only [`EditorLink::new_feed`] (the plugin, at activation).

use crate::dilated::DilatedSpec;
use crate::frame::{Frame, MAX_BANDS};
use crate::listener::Listener;
use crate::outputs::source::MAX_LEARNED;
use crate::outputs::{OutputEngine, N_SLOTS};
use crate::worker::ListenSettings;
use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Embedding values carried per hop. The shipped model has 250; wider models show their first
/// 256 dimensions, which is more rows than the embedding strip has pixels anyway.
pub const MAX_DISPLAY_DIMS: usize = 256;

/// Steps of the dilated buffer carried to the editor; the parameters allow 16.
pub const MAX_DISPLAY_STEPS: usize = 32;

/// Hops the ring holds: 2.5 s at a 10 ms hop, so an editor that misses a few frames (a slow
/// software renderer, a window being dragged) loses nothing.
pub const HOP_RING: usize = 256;

/// Everything the editor draws about one hop. Fixed-size so that it travels through the ring by
/// copy, without allocating.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DisplayHop {
    /// The frame's sequence number, so the editor can tell how many hops it has seen.
    pub seq: u64,
    /// False when the frame was measured on non-finite input: drawn as a gap.
    pub valid: bool,
    /// Bands used in `bands`: the cochleagram redraws its frequency axis when this changes.
    pub n_bands: u16,
    /// Log energy per band, dB, lowest band first (see [`Frame::bands`]).
    pub bands: [f32; MAX_BANDS],
    /// Embedding values used in `embedding`; 0 when the listener produced none this hop
    /// (warming up, no model, settings refused), drawn as a gap in the embedding strip.
    pub dims: u16,
    /// The embedding's first `dims` values.
    pub embedding: [f32; MAX_DISPLAY_DIMS],
    /// The embedding whitened on the model's first two principal axes (z-scores against the
    /// training corpus): the map's coordinates. `None` without an embedding or without a PCA.
    pub map: Option<[f32; 2]>,
    /// The shaped slot values, 0..1: the output meters.
    pub values: [f32; N_SLOTS],
    /// Similarity to each learned sound, 0..1: shown next to the learn buttons.
    pub similarity: [f32; MAX_LEARNED],
    /// The capture in progress (target, progress 0..1), so the learn button can show it.
    pub learning: Option<(u8, f32)>,
}

impl Default for DisplayHop {
    fn default() -> Self {
        Self {
            seq: 0,
            valid: false,
            n_bands: 0,
            bands: [crate::frame::SILENCE_DB; MAX_BANDS],
            dims: 0,
            embedding: [0.0; MAX_DISPLAY_DIMS],
            map: None,
            values: [0.0; N_SLOTS],
            similarity: [0.0; MAX_LEARNED],
            learning: None,
        }
    }
}

impl DisplayHop {
    /// The used band energies. Allocation-free.
    pub fn energies(&self) -> &[f32] {
        &self.bands[..self.n_bands as usize]
    }

    /// The carried embedding values (empty when there was none). Allocation-free.
    pub fn embedding(&self) -> &[f32] {
        &self.embedding[..self.dims as usize]
    }
}

/// A learned sound as the map shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LearnedMarker {
    /// Whether something is learned in this target.
    pub learned: bool,
    /// Its mean embedding whitened on the first two principal axes; `None` without a PCA or
    /// when it was learned under a model of another embedding size.
    pub map: Option<[f32; 2]>,
}

/// The latest state of the listener, which the editor draws as a whole rather than as history.
#[derive(Clone, Debug, PartialEq)]
pub struct DisplayState {
    /// Sequence number of the hop this state belongs to; 0 before the first one.
    pub seq: u64,
    /// The listening settings in force: the frequency axis (bands, range) and the dilation
    /// layout of [`DisplayState::buffer`].
    pub settings: ListenSettings,
    /// The memory does not reach back as far as the oldest step yet.
    pub warming_up: bool,
    /// Steps carried in `buffer` (at most [`MAX_DISPLAY_STEPS`]; the newest ones if cut).
    pub steps: usize,
    /// Bands per step in `buffer`.
    pub n_bands: usize,
    /// The dilated buffer, `steps × n_bands` dB, oldest step first, in the first
    /// `steps · n_bands` entries. Sized for the largest buffer up front so that publishing
    /// never allocates.
    pub buffer: Vec<f32>,
    /// The learned sounds, projected like the live embedding.
    pub learned: [LearnedMarker; MAX_LEARNED],
    /// Whether the model has principal axes (otherwise the map has nothing to show).
    pub has_pca: bool,
}

impl Default for DisplayState {
    fn default() -> Self {
        Self {
            seq: 0,
            settings: ListenSettings::default(),
            warming_up: true,
            steps: 0,
            n_bands: 0,
            buffer: vec![crate::frame::SILENCE_DB; MAX_DISPLAY_STEPS * MAX_BANDS],
            learned: [LearnedMarker::default(); MAX_LEARNED],
            has_pca: false,
        }
    }
}

impl DisplayState {
    /// The carried part of the dilated buffer. Allocation-free.
    pub fn buffer(&self) -> &[f32] {
        &self.buffer[..self.steps * self.n_bands]
    }

    /// The dilation layout of the carried steps. Allocation-free.
    pub fn spec(&self) -> DilatedSpec {
        self.settings.spec
    }

    /// The step index (in [`DilatedSpec`] terms: 0 = newest) of carried row `row` (0 = oldest).
    /// Allocation-free.
    pub fn step_of_row(&self, row: usize) -> usize {
        self.steps - 1 - row
    }
}

/// Where the listener model in use came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ModelSource {
    /// The model compiled into the plugin.
    #[default]
    BuiltIn,
    /// A `.safetensors` file the user chose.
    File(String),
}

/// What the editor's status shows about the model in use.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelInfo {
    /// The model's name from its metadata; empty when no model is loaded.
    pub name: String,
    /// Where inference runs: `"cpu"`, `"cuda:0"`, ...
    pub device: String,
    /// Where it came from.
    pub source: ModelSource,
    /// Size of its embedding.
    pub latent_dim: usize,
    /// Whether it has principal axes (the map and the axis outputs need them).
    pub has_pca: bool,
    /// Something the user should know about how it was chosen, e.g. that the saved model file
    /// is gone and the built-in one is used instead.
    pub note: Option<String>,
}

impl ModelInfo {
    /// Describes `listener`, loaded from `source`. Allocates.
    pub fn of(listener: &Listener, source: ModelSource) -> Self {
        Self {
            name: listener.metadata().name.clone(),
            device: listener.device_name(),
            source,
            latent_dim: listener.latent_dim(),
            has_pca: listener.metadata().pca.is_some(),
            note: None,
        }
    }
}

/// What the editor asks of adaptation besides starting it (the *Adapt* parameter does that, so
/// that a host can automate it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptAction {
    /// Stop the adaptation in progress; keep the listener in use.
    Cancel,
    /// Return to the model the session chose.
    Revert,
}

/// What the editor asks the worker to do.
pub enum EditorRequest {
    /// Forget learned sound `target`.
    ClearLearned(usize),
    /// Use this model from now on.
    UseModel {
        /// The loaded model (boxed: it is large, and a clear should not carry its size).
        listener: Box<Listener>,
        /// What the status shows once it is in use.
        info: ModelInfo,
    },
    /// Cancel or revert adaptation.
    Adaptation(AdaptAction),
}

/// A request on the queue, with the activation it was made in.
struct Stamped {
    /// [`EditorLink::activation`] when the editor sent it: a model offered before the current
    /// activation is superseded by the one the plugin loaded at activation.
    activation: u64,
    /// The request.
    request: EditorRequest,
}

/// What the editor, the plugin and the worker share for the whole life of a plugin instance.
/// The audio thread never touches it. Each field has one writer (see the module documentation).
pub struct EditorLink {
    /// Editor windows open: the worker publishes display data only while one is, so a closed
    /// editor costs nothing. Counted by [`EditorOpen`] guards only.
    windows: AtomicUsize,
    /// The editor's end of the request queue.
    requests: Sender<Stamped>,
    /// The worker's end of the request queue; the instance's one worker `try_lock`s it between
    /// hops. It outlives activations, so a clear asked for while inactive is served at the next.
    pending: Mutex<Receiver<Stamped>>,
    /// Per learn target: clears the editor asked for. Written by the editor only.
    clears_asked: [AtomicU64; MAX_LEARNED],
    /// Per learn target: clears the worker did. Written by the worker only; a clear is pending
    /// while this is behind `clears_asked`.
    clears_done: [AtomicU64; MAX_LEARNED],
    /// Counts activations ([`EditorLink::new_feed`]), to stamp the requests with.
    activation: AtomicU64,
    /// The model in use, for the status display. Written by the worker's end of the feed only
    /// ([`DisplayFeed::set_model`]), read by the editor.
    model: Mutex<ModelInfo>,
    /// Counts model installations, so the editor knows when to re-read `model`.
    model_generation: AtomicU64,
    /// The editor's end of the current activation's feed; replaced at every activation.
    receiver: Mutex<Option<DisplayReceiver>>,
}

/// An open editor window, for as long as it lives: the worker publishes display data while one
/// exists. The only way [`EditorLink`]'s open count changes.
pub struct EditorOpen {
    /// The link whose count this guard holds up.
    link: Arc<EditorLink>,
}

impl Drop for EditorOpen {
    fn drop(&mut self) {
        self.link.windows.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EditorLink {
    /// A link with no editor open and no model. Allocates the link and the request queue.
    pub fn new() -> Arc<Self> {
        let (requests, pending) = channel();
        Arc::new(Self {
            windows: AtomicUsize::new(0),
            requests,
            pending: Mutex::new(pending),
            clears_asked: Default::default(),
            clears_done: Default::default(),
            activation: AtomicU64::new(0),
            model: Mutex::new(ModelInfo::default()),
            model_generation: AtomicU64::new(0),
            receiver: Mutex::new(None),
        })
    }

    /// Marks an editor window open until the returned guard is dropped. Allocation-free.
    pub fn editor_opened(self: &Arc<Self>) -> EditorOpen {
        self.windows.fetch_add(1, Ordering::AcqRel);
        EditorOpen { link: self.clone() }
    }

    /// Whether an editor is open. Allocation-free.
    pub fn is_open(&self) -> bool {
        self.windows.load(Ordering::Acquire) > 0
    }

    /// Queues a request (editor side).
    fn send(&self, request: EditorRequest) {
        let activation = self.activation.load(Ordering::Acquire);
        // The receiver lives as long as `self`: sending cannot fail.
        let _ = self.requests.send(Stamped {
            activation,
            request,
        });
    }

    /// Asks the worker to cancel or revert adaptation. Allocates the queue entry.
    pub fn request_adaptation(&self, action: AdaptAction) {
        self.send(EditorRequest::Adaptation(action));
    }

    /// Asks the worker to forget learned sound `target`. Allocates the queue entry.
    pub fn request_clear(&self, target: usize) {
        if let Some(asked) = self.clears_asked.get(target) {
            asked.fetch_add(1, Ordering::AcqRel);
            self.send(EditorRequest::ClearLearned(target));
        }
    }

    /// Whether a clear of `target` is still waiting for the worker. Allocation-free.
    pub fn clear_pending(&self, target: usize) -> bool {
        match (self.clears_asked.get(target), self.clears_done.get(target)) {
            (Some(asked), Some(done)) => {
                done.load(Ordering::Acquire) < asked.load(Ordering::Acquire)
            }
            _ => false,
        }
    }

    /// Hands a loaded model to the worker. Allocates the queue entry.
    pub fn offer_model(&self, listener: Listener, info: ModelInfo) {
        self.send(EditorRequest::UseModel {
            listener: Box::new(listener),
            info,
        });
    }

    /// The model in use. Allocates the copy.
    pub fn model(&self) -> ModelInfo {
        self.model.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes whenever a model is installed. Allocation-free.
    pub fn model_generation(&self) -> u64 {
        self.model_generation.load(Ordering::Acquire)
    }

    /// Creates the feed for a new activation: the worker's [`DisplayFeed`] is returned, the
    /// editor's end is kept here (see [`EditorLink::with_receiver`]); models offered before are
    /// superseded. Allocates the ring and the three state buffers.
    pub fn new_feed(self: &Arc<Self>) -> DisplayFeed {
        let activation = self.activation.fetch_add(1, Ordering::AcqRel) + 1;
        let (hops_tx, hops_rx) = HeapRb::new(HOP_RING).split();
        let (state_tx, state_rx) = triple_buffer::triple_buffer(&DisplayState::default());
        *self.receiver.lock().unwrap_or_else(|e| e.into_inner()) = Some(DisplayReceiver {
            hops: hops_rx,
            state: state_rx,
        });
        DisplayFeed {
            link: self.clone(),
            activation,
            hops: hops_tx,
            state: state_tx,
        }
    }

    /// Runs `f` on the editor's end of the feed, if there is one and nobody else holds it.
    /// Called by the editor on its thread; never blocks.
    pub fn with_receiver<R>(&self, f: impl FnOnce(&mut DisplayReceiver) -> R) -> Option<R> {
        let mut slot = self.receiver.try_lock().ok()?;
        slot.as_mut().map(f)
    }
}

/// The worker's end of the display feed, and its side of the link: it serves the requests and
/// says which model is in use.
pub struct DisplayFeed {
    /// The open count, the requests and the model in use.
    link: Arc<EditorLink>,
    /// The activation this feed belongs to: older model offers are dropped.
    activation: u64,
    /// Per-hop records.
    hops: HeapProd<DisplayHop>,
    /// The latest state.
    state: triple_buffer::Input<DisplayState>,
}

impl DisplayFeed {
    /// Whether anything should be published: an editor is open. Allocation-free.
    pub fn wanted(&self) -> bool {
        self.link.is_open()
    }

    /// The oldest request waiting, if any; models offered before this activation are dropped
    /// (the plugin loaded the chosen one at activation). Never blocks: `None` while another
    /// thread holds the queue. Frees what it drops.
    pub fn next_request(&self) -> Option<EditorRequest> {
        let pending = self.link.pending.try_lock().ok()?;
        loop {
            let Stamped {
                activation,
                request,
            } = pending.try_recv().ok()?;
            match request {
                EditorRequest::UseModel { .. } if activation < self.activation => continue,
                request => return Some(request),
            }
        }
    }

    /// Records that the clear of `target` asked for is done. Allocation-free.
    pub fn clear_done(&self, target: usize) {
        if let Some(done) = self.link.clears_done.get(target) {
            done.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The model in use as last recorded. Allocates the copy.
    pub fn model_info(&self) -> ModelInfo {
        self.link.model()
    }

    /// Records the model in use, for the editor's status. Takes the lock briefly; frees the
    /// previous record.
    pub fn set_model(&self, info: ModelInfo) {
        *self.link.model.lock().unwrap_or_else(|e| e.into_inner()) = info;
        self.link.model_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Publishes one hop: the frame and embedding into the ring, the dilated buffer and the
    /// learned sounds into the state. Call only when [`DisplayFeed::wanted`]. Allocation-free.
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &mut self,
        frame: &Frame,
        embedding: Option<&[f32]>,
        outputs: &OutputEngine,
        values: &[f32; N_SLOTS],
        buffer: &[f32],
        warming_up: bool,
        settings: &ListenSettings,
    ) {
        let features = outputs.features();
        let pca = outputs.pca();
        let mut hop = DisplayHop {
            seq: frame.seq,
            valid: frame.valid,
            n_bands: frame.n_bands,
            bands: frame.bands,
            values: *values,
            similarity: features.similarity,
            learning: outputs.learned().learning().map(|(t, p)| (t as u8, p)),
            ..DisplayHop::default()
        };
        if let Some(e) = embedding {
            let dims = e.len().min(MAX_DISPLAY_DIMS);
            hop.embedding[..dims].copy_from_slice(&e[..dims]);
            hop.dims = dims as u16;
            if pca.is_some_and(|p| p.dim() == e.len() && p.n_axes() >= 2) {
                hop.map = Some([features.axes[0], features.axes[1]]);
            }
        }
        // A full ring means the editor stopped draining it: the hop is dropped.
        let _ = self.hops.try_push(hop);

        let state = self.state.input_buffer_mut();
        state.seq = frame.seq;
        state.settings = *settings;
        state.warming_up = warming_up;
        let n_bands = settings.n_bands.min(MAX_BANDS);
        let steps_total = if n_bands == 0 {
            0
        } else {
            buffer.len() / settings.n_bands
        };
        let steps = steps_total.min(MAX_DISPLAY_STEPS);
        let skip = (steps_total - steps) * settings.n_bands;
        state.steps = steps;
        state.n_bands = n_bands;
        for (row, src) in buffer[skip..]
            .chunks_exact(settings.n_bands.max(1))
            .take(steps)
            .enumerate()
        {
            state.buffer[row * n_bands..(row + 1) * n_bands].copy_from_slice(&src[..n_bands]);
        }
        state.has_pca = pca.is_some_and(|p| p.n_axes() >= 2);
        let mut whitened = [0.0f32; crate::outputs::MAX_AXES];
        for (marker, sound) in state.learned.iter_mut().zip(&outputs.learned().sounds) {
            *marker = match sound {
                None => LearnedMarker::default(),
                Some(sound) => {
                    let map = pca
                        .filter(|p| p.dim() == sound.mean.len() && p.n_axes() >= 2)
                        .map(|p| {
                            p.whiten(&sound.mean, &mut whitened);
                            [whitened[0], whitened[1]]
                        });
                    LearnedMarker { learned: true, map }
                }
            };
        }
        self.state.publish();
    }
}

/// The editor's end of the display feed.
pub struct DisplayReceiver {
    /// Per-hop records, oldest first.
    hops: HeapCons<DisplayHop>,
    /// The latest state.
    state: triple_buffer::Output<DisplayState>,
}

impl DisplayReceiver {
    /// Takes the oldest waiting hop. Allocation-free.
    pub fn pop(&mut self) -> Option<DisplayHop> {
        self.hops.try_pop()
    }

    /// The newest published state, and whether it changed since the last call. Allocation-free.
    pub fn state(&mut self) -> (&DisplayState, bool) {
        let changed = self.state.update();
        (self.state.output_buffer(), changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::{OutputConfig, Pca};

    fn engine(dim: usize) -> OutputEngine {
        let mut engine = OutputEngine::new(OutputConfig {
            embedding_dim: dim,
            ..OutputConfig::default()
        });
        engine
            .set_pca(Some(Pca {
                mean: vec![0.0; dim],
                axes: (0..2)
                    .map(|i| (0..dim).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
                    .collect(),
                explained_variance: vec![4.0, 1.0],
            }))
            .unwrap();
        engine
    }

    #[test]
    fn hops_and_state_reach_the_editor_only_while_it_is_open() {
        let link = EditorLink::new();
        let mut feed = link.new_feed();
        let settings = ListenSettings {
            n_bands: 4,
            ..ListenSettings::default()
        };
        let mut outputs = engine(8);
        let mut frame = Frame::silent(4);
        frame.bands[..4].copy_from_slice(&[-10.0, -20.0, -30.0, -40.0]);
        let embedding = [2.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let values = outputs.on_hop(
            &frame,
            Some(&embedding),
            &crate::outputs::SlotConfig::defaults(),
        );
        let buffer: Vec<f32> = (0..8 * 4).map(|v| v as f32).collect();
        assert!(!feed.wanted());
        let open = link.editor_opened();
        assert!(feed.wanted());
        frame.seq = 7;
        feed.publish(
            &frame,
            Some(&embedding),
            &outputs,
            &values,
            &buffer,
            false,
            &settings,
        );
        let hop = link.with_receiver(|r| r.pop()).flatten().unwrap();
        assert_eq!(hop.seq, 7);
        assert_eq!(hop.energies(), &[-10.0, -20.0, -30.0, -40.0]);
        assert_eq!(hop.embedding(), &embedding);
        assert_eq!(hop.map, Some([1.0, -3.0]));
        let (state, changed) = link
            .with_receiver(|r| {
                let (s, c) = r.state();
                (s.clone(), c)
            })
            .unwrap();
        assert!(changed);
        assert_eq!((state.steps, state.n_bands), (8, 4));
        assert_eq!(state.buffer(), buffer.as_slice());
        assert!(state.has_pca);
        assert!(!state.learned[0].learned);
        drop(open);
        assert!(!feed.wanted());
    }

    #[test]
    fn requests_reach_the_worker_once() {
        let link = EditorLink::new();
        link.request_clear(2);
        link.request_clear(9);
        assert!(link.clear_pending(2));
        let feed = link.new_feed();
        assert!(matches!(
            feed.next_request(),
            Some(EditorRequest::ClearLearned(2))
        ));
        assert!(feed.next_request().is_none());
        assert!(link.clear_pending(2));
        feed.clear_done(2);
        assert!(!link.clear_pending(2));
        assert!(!link.clear_pending(9));
    }
}
