//! Runs on the worker: each dilated buffer to an embedding, the outputs and the display feed.
//!
//! What the worker does with each dilated buffer in the plugin: embed it with the listener, turn
//! the embedding and the frame into automation values, and send those to the audio thread.

use crate::display::{DisplayFeed, EditorRequest};
use crate::frame::Frame;
use crate::listener::Listener;
use crate::outputs::learned::LearnedSounds;
use crate::outputs::slot::SlotConfig;
use crate::outputs::{OutputConfig, OutputEngine, N_SLOTS};
use crate::worker::{BufferSink, ListenSettings};
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
}

impl<C: FnMut() -> Controls + Send> Listening<C> {
    /// Sets up the listener side for `settings`. Without a model (`listener` says why there is
    /// none) only the model-free sources (loudness, periodicity) move. Allocates.
    pub fn new(
        listener: Result<Listener, String>,
        settings: &ListenSettings,
        cc: HeapProd<CcFrame>,
        controls: C,
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
        };
        listening.settings_changed(settings);
        listening
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
        self.listener = None;
        self.parked = Some(listener);
        let settings = self.settings;
        self.settings_changed(&settings);
    }

    /// Serves the editor's requests: forget learned sounds, install a model it loaded (only the
    /// newest of several waiting).
    fn serve_editor_requests(&mut self) {
        let Some(feed) = &self.display else { return };
        let mut model = None;
        while let Some(request) = feed.next_request() {
            match request {
                EditorRequest::ClearLearned(target) => {
                    self.outputs.clear_learned(target);
                    feed.clear_done(target);
                }
                EditorRequest::UseModel { listener, info } => model = Some((listener, info)),
            }
        }
        if let Some((listener, info)) = model {
            self.install_listener(*listener);
            if let Some(feed) = &self.display {
                feed.set_model(info);
            }
        }
    }

    /// The output engine, for inspection.
    pub fn outputs(&self) -> &OutputEngine {
        &self.outputs
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
            }
            *was = held;
        }
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
        if self.outputs.take_learned_changed() {
            let learned = self.outputs.learned().clone();
            *self.saved_learned.lock().unwrap_or_else(|e| e.into_inner()) = learned;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::source::MAX_LEARNED;

    /// The shipped model with the variance of its first principal axis set to 0: the metadata
    /// is still valid, the axes are not.
    fn model_with_unusable_axes() -> Listener {
        let mut bytes = include_bytes!("../../models/echoic-default.safetensors").to_vec();
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
        let controls = || Controls {
            slots: SlotConfig::defaults(),
            learn: [false; MAX_LEARNED],
            learn_seconds: 2.0,
        };
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
    fn a_missing_model_is_reported_as_not_in_use() {
        let status = Arc::new(ListenerStatus::default());
        let (cc, _cc_rx) = cc_ring();
        let settings = ListenSettings::default();
        let mut listening = Listening::new(
            Err("no model".into()),
            &settings,
            cc,
            || Controls {
                slots: SlotConfig::defaults(),
                learn: [false; MAX_LEARNED],
                learn_seconds: 2.0,
            },
            Arc::default(),
            status.clone(),
        );
        listening.settings_changed(&settings);
        assert!(status.refused());
        assert_eq!(status.not_in_use().as_deref(), Some("no model"));
        assert_eq!(status.axes_unusable(), None);
    }
}
