//! What the editor shows, and how it gets there.
//!
//! The worker thread's [`crate::listening::Listening`] sink publishes, once per hop and only while
//! an editor is open ([`EditorLink::open`]), two things:
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
//! Requests go the other way through the same [`EditorLink`]: "forget learned sound j" (an atomic
//! flag per target, read every hop) and "use this model from now on" (a loaded
//! [`Listener`] handed over in a slot the worker polls with `try_lock`).

use crate::dilated::DilatedSpec;
use crate::frame::{Frame, MAX_BANDS};
use crate::listener::Listener;
use crate::outputs::source::MAX_LEARNED;
use crate::outputs::{OutputEngine, N_SLOTS};
use crate::worker::ListenSettings;
use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// A model the editor loaded, waiting for the worker to take it.
struct ModelSwap {
    /// The loaded model.
    listener: Listener,
    /// What the status shows once it is in use.
    info: ModelInfo,
}

/// What the editor, the plugin and the worker share for the whole life of a plugin instance.
/// The audio thread never touches it.
#[derive(Default)]
pub struct EditorLink {
    /// An editor window is open: the worker publishes display data only while it is, so a closed
    /// editor costs nothing. Set when the window is created, cleared when it is destroyed.
    pub open: AtomicBool,
    /// Per learn target: the editor asked to forget the learned sound. The worker clears the flag
    /// when it has done so (within one hop).
    clear: [AtomicBool; MAX_LEARNED],
    /// Set when `swap` holds a model, so the worker's per-hop check is one atomic load.
    swap_pending: AtomicBool,
    /// A model loaded by the editor, for the worker to install. A lock, but the worker only ever
    /// `try_lock`s it and the editor holds it for a pointer swap.
    swap: Mutex<Option<ModelSwap>>,
    /// The model in use, for the status display. Written when a model is installed, read by the
    /// editor.
    model: Mutex<ModelInfo>,
    /// Counts model installations, so the editor knows when to re-read `model`.
    model_generation: AtomicU64,
    /// The editor's end of the current activation's feed; replaced at every activation.
    receiver: Mutex<Option<DisplayReceiver>>,
}

impl EditorLink {
    /// A link with no editor open and no model. Allocation-free apart from the `Arc`.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether an editor is open. Allocation-free.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Asks the worker to forget learned sound `target`. Allocation-free.
    pub fn request_clear(&self, target: usize) {
        if let Some(flag) = self.clear.get(target) {
            flag.store(true, Ordering::Release);
        }
    }

    /// Whether a clear of `target` is still waiting for the worker. Allocation-free.
    pub fn clear_pending(&self, target: usize) -> bool {
        self.clear
            .get(target)
            .is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// Takes the clear requests (worker side): bit j set asks to forget sound j. Allocation-free.
    pub fn take_clear_requests(&self) -> u32 {
        let mut bits = 0;
        for (j, flag) in self.clear.iter().enumerate() {
            if flag.load(Ordering::Acquire) && flag.swap(false, Ordering::AcqRel) {
                bits |= 1 << j;
            }
        }
        bits
    }

    /// Hands a loaded model to the worker, replacing one not taken yet. Takes the lock briefly.
    pub fn offer_model(&self, listener: Listener, info: ModelInfo) {
        *self.swap.lock().unwrap_or_else(|e| e.into_inner()) = Some(ModelSwap { listener, info });
        self.swap_pending.store(true, Ordering::Release);
    }

    /// Takes an offered model (worker side). Never blocks: returns `None` if the editor holds the
    /// slot right now, and the model is taken on a later hop.
    pub fn take_model(&self) -> Option<(Listener, ModelInfo)> {
        if !self.swap_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut slot = self.swap.try_lock().ok()?;
        let swap = slot.take()?;
        self.swap_pending.store(false, Ordering::Release);
        Some((swap.listener, swap.info))
    }

    /// Drops a model offered but not taken (at activation, when the plugin loads the chosen
    /// model itself). Takes the lock briefly.
    pub fn discard_offered_model(&self) {
        self.swap_pending.store(false, Ordering::Release);
        let stale = self.swap.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(stale);
    }

    /// Records the model in use. Takes the lock briefly; allocates nothing itself.
    pub fn set_model(&self, info: ModelInfo) {
        *self.model.lock().unwrap_or_else(|e| e.into_inner()) = info;
        self.model_generation.fetch_add(1, Ordering::AcqRel);
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
    /// editor's end is kept here (see [`EditorLink::with_receiver`]). Allocates the ring and the
    /// three state buffers.
    pub fn new_feed(self: &Arc<Self>) -> DisplayFeed {
        let (hops_tx, hops_rx) = HeapRb::new(HOP_RING).split();
        let (state_tx, state_rx) = triple_buffer::triple_buffer(&DisplayState::default());
        *self.receiver.lock().unwrap_or_else(|e| e.into_inner()) = Some(DisplayReceiver {
            hops: hops_rx,
            state: state_rx,
        });
        DisplayFeed {
            link: self.clone(),
            hops: hops_tx,
            state: state_tx,
            hops_dropped: 0,
        }
    }

    /// Runs `f` on the editor's end of the feed, if there is one and nobody else holds it.
    /// Called by the editor on its thread; never blocks.
    pub fn with_receiver<R>(&self, f: impl FnOnce(&mut DisplayReceiver) -> R) -> Option<R> {
        let mut slot = self.receiver.try_lock().ok()?;
        slot.as_mut().map(f)
    }
}

/// The worker's end of the display feed.
pub struct DisplayFeed {
    /// Requests and the open flag.
    link: Arc<EditorLink>,
    /// Per-hop records.
    hops: HeapProd<DisplayHop>,
    /// The latest state.
    state: triple_buffer::Input<DisplayState>,
    /// Hops dropped because the ring was full (the editor stopped draining it).
    hops_dropped: u64,
}

impl DisplayFeed {
    /// The shared link. Allocation-free.
    pub fn link(&self) -> &Arc<EditorLink> {
        &self.link
    }

    /// Whether anything should be published: an editor is open. Allocation-free.
    pub fn wanted(&self) -> bool {
        self.link.is_open()
    }

    /// Hops dropped so far because the editor did not keep up. Allocation-free.
    pub fn hops_dropped(&self) -> u64 {
        self.hops_dropped
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
        if self.hops.try_push(hop).is_err() {
            self.hops_dropped += 1;
        }

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

    /// Hops waiting. Allocation-free.
    pub fn waiting(&self) -> usize {
        self.hops.occupied_len()
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
        link.open.store(true, Ordering::Release);
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
    }

    #[test]
    fn requests_reach_the_worker_once() {
        let link = EditorLink::new();
        link.request_clear(2);
        assert!(link.clear_pending(2));
        assert_eq!(link.take_clear_requests(), 0b100);
        assert_eq!(link.take_clear_requests(), 0);
        assert!(link.take_model().is_none());
    }
}
