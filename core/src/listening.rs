//! What the worker does with each dilated buffer in the plugin: embed it with the listener, turn
//! the embedding and the frame into automation values, and send those to the audio thread.

use crate::display::DisplayFeed;
use crate::frame::Frame;
use crate::listener::Listener;
use crate::outputs::learned::LearnedSounds;
use crate::outputs::slot::SlotConfig;
use crate::outputs::{OutputConfig, OutputEngine, N_SLOTS};
use crate::worker::{BufferSink, ListenSettings};
use ringbuf::traits::{Consumer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
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

/// What the listener side publishes for the editor and the tests.
#[derive(Default)]
pub struct ListenerStatus {
    /// Embeddings computed.
    pub embeddings: AtomicU64,
    /// Duration of the last inference, µs (f32 bits).
    pub inference_us_bits: AtomicU32,
    /// The model cannot serve the current listening settings (or failed); see `error`.
    pub refused: AtomicBool,
    /// Why the model is not in use, for the user.
    pub error: Mutex<Option<String>>,
    /// The latest shaped slot values (f32 bits), for the editor's meters.
    pub values_bits: [AtomicU32; N_SLOTS],
}

impl ListenerStatus {
    /// Duration of the last inference in µs. Allocation-free.
    pub fn inference_us(&self) -> f32 {
        f32::from_bits(self.inference_us_bits.load(Ordering::Relaxed))
    }

    /// The latest value of slot `i`. Allocation-free.
    pub fn value(&self, slot: usize) -> f32 {
        f32::from_bits(self.values_bits[slot].load(Ordering::Relaxed))
    }

    fn set_error(&self, error: Option<String>) {
        self.refused.store(error.is_some(), Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = error;
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
    /// Sets up the listener side for `settings`; without a model only the model-free sources
    /// (loudness, periodicity) move. Allocates.
    pub fn new(
        listener: Option<Listener>,
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
        let pca = listener.as_ref().and_then(|l| l.metadata().pca.clone());
        if let Err(error) = outputs.set_pca(pca) {
            status.set_error(Some(format!(
                "the model's principal axes are unusable: {error}"
            )));
        }
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
        let pca = listener.metadata().pca.clone();
        self.listener = None;
        self.parked = Some(listener);
        let settings = self.settings;
        self.settings_changed(&settings);
        if let Err(error) = self.outputs.set_pca(pca) {
            self.status.set_error(Some(format!(
                "the model's principal axes are unusable: {error}"
            )));
        }
    }

    /// Serves the editor's requests: forget learned sounds, install a model it loaded.
    fn serve_editor_requests(&mut self) {
        let Some(feed) = &self.display else { return };
        let link = feed.link().clone();
        let clear = link.take_clear_requests();
        for target in 0..crate::outputs::source::MAX_LEARNED {
            if clear & (1 << target) != 0 {
                self.outputs.clear_learned(target);
            }
        }
        if let Some((listener, info)) = link.take_model() {
            self.install_listener(listener);
            link.set_model(info);
        }
    }

    /// The output engine, for inspection.
    pub fn outputs(&self) -> &OutputEngine {
        &self.outputs
    }
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
                self.status.set_error(None);
                self.listener = Some(model);
            }
            Some(why) => {
                self.status.set_error(Some(why));
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
                        self.status.embeddings.fetch_add(1, Ordering::Relaxed);
                        Some(self.embedding.as_slice())
                    }
                    Err(error) => {
                        self.status
                            .set_error(Some(format!("inference failed: {error}")));
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
        for (slot, value) in values.iter().enumerate() {
            self.status.values_bits[slot].store(value.to_bits(), Ordering::Relaxed);
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
