//! Echoic: a plugin that listens the way a cochlea and echoic memory do, and turns what it hears
//! into live embeddings and MIDI CC automation. Audio passes through untouched.

use echoic_core::cochlea::Cochlea;
use echoic_core::denormals::flush_subnormals;
use echoic_core::display::{EditorLink, ModelInfo, ModelSource};
use echoic_core::listener::{adapt, Listener};
use echoic_core::listening::adaptation::ModelRoot;
use echoic_core::listening::{cc_ring, CcReceiver, ListenerStatus, Listening};
use echoic_core::outputs::cc::{BlockTiming, CcEmitter};
use echoic_core::outputs::N_SLOTS;
use echoic_core::pipeline::AudioFront;
use echoic_core::ring::frame_ring;
use echoic_core::worker::{Worker, WorkerHandle, WorkerStatus};
use nice_plug::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

mod editor;
pub mod params;
mod saved_state;
mod slot_params;

/// The listener model shipped with Echoic, compiled in so that an installed bundle needs no
/// other file. See `models/MODEL_CARD.md`.
pub use echoic_core::listener::DEFAULT_MODEL;

use params::EchoicParams;

/// Frames the ring holds: 5 s of 10 ms hops, so a worker stalled for seconds loses nothing.
const RING_FRAMES: usize = 512;

/// State the audio side and the worker publish and the editor reads. The audio thread only
/// touches atomics here, so it never waits for the editor.
pub struct EchoicShared {
    /// Sample rate of the current activation, in Hz (as f32 bits); 0 while inactive.
    sample_rate_bits: AtomicU32,
    /// The worker's counters; one for the instance's whole life, cleared at each activation.
    worker: Arc<WorkerStatus>,
    /// The listener's status: model errors, inference time, slot values.
    listener: Arc<ListenerStatus>,
    /// The editor's display feed, its requests to the worker and the model in use.
    link: Arc<EditorLink>,
}

impl Default for EchoicShared {
    fn default() -> Self {
        Self {
            sample_rate_bits: AtomicU32::new(0),
            worker: Arc::default(),
            listener: Arc::default(),
            link: EditorLink::new(),
        }
    }
}

/// One plugin instance.
pub struct Echoic {
    /// Parameters shared with the host and the editor.
    params: Arc<EchoicParams>,
    /// What the editor displays.
    shared: Arc<EchoicShared>,
    /// The audio-thread half of the pipeline; `None` while inactive.
    front: Option<AudioFront>,
    /// The worker thread of the current activation; joined on deactivate and drop.
    worker: Option<WorkerHandle>,
    /// Automation values from the worker; `None` while inactive.
    cc_values: Option<CcReceiver>,
    /// Per slot, what was last sent, for hysteresis.
    emitters: [CcEmitter; N_SLOTS],
}

impl Default for Echoic {
    fn default() -> Self {
        Self {
            params: Arc::new(EchoicParams::default()),
            shared: Arc::new(EchoicShared::default()),
            front: None,
            worker: None,
            cc_values: None,
            emitters: [CcEmitter::new(); N_SLOTS],
        }
    }
}

impl Plugin for Echoic {
    const NAME: &'static str = "Echoic";
    const VENDOR: &'static str = "Echoic";
    const URL: &'static str = env!("CARGO_PKG_HOMEPAGE");
    const EMAIL: &'static str = "echoic@example.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];

    const MIDI_OUTPUT: MidiConfig = MidiConfig::MidiCCs;

    type Editor = editor::EchoicEditorShell;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    /// Every state is checked and completed before nice-plug applies it: see `saved_state`.
    fn filter_state(state: &mut PluginState) {
        saved_state::repair(state);
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        Some(editor::EchoicEditorShell::new(
            self.params.clone(),
            self.shared.clone(),
        ))
    }

    fn activate(
        &mut self,
        _audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        // Hosts may activate repeatedly: the previous worker is always stopped first, so an
        // instance never runs more than one.
        self.stop_worker();
        let sample_rate = buffer_config.sample_rate as f64;
        let settings = self.params.listen_settings();
        let cochlea = match Cochlea::new(settings.cochlea_config(sample_rate)) {
            Ok(cochlea) => cochlea,
            Err(error) => {
                nice_log!("Echoic cannot listen with these settings: {error}");
                return false;
            }
        };
        let (sender, receiver) = frame_ring(RING_FRAMES);
        let (front, swap) = AudioFront::new(cochlea, sender);
        let status = self.shared.worker.clone();
        status.clear();
        let (listener, root, model) = self.load_model();
        let feed = self.shared.link.new_feed();
        feed.set_model(model);
        let (cc_tx, cc_rx) = cc_ring();
        let controls_params = self.params.clone();
        let sink = Listening::new(
            listener,
            &settings,
            cc_tx,
            move || controls_params.controls(),
            self.params.learned.clone(),
            self.shared.listener.clone(),
        )
        .with_adaptation(root, self.params.adapted.clone())
        .with_display(feed);
        let worker = Worker::new(receiver, swap, sample_rate, settings, sink, status);
        let params = self.params.clone();
        match WorkerHandle::spawn(worker, move || params.listen_settings()) {
            Ok(handle) => self.worker = Some(handle),
            Err(error) => {
                nice_log!("Echoic could not start its worker thread: {error}");
                return false;
            }
        }
        self.front = Some(front);
        self.cc_values = Some(cc_rx);
        self.emitters = [CcEmitter::new(); N_SLOTS];
        self.shared
            .sample_rate_bits
            .store(buffer_config.sample_rate.to_bits(), Ordering::Relaxed);
        true
    }

    fn reset(&mut self) {
        if let Some(front) = &mut self.front {
            front.reset();
        }
    }

    fn deactivate(&mut self) {
        self.stop_worker();
        self.front = None;
        self.cc_values = None;
        self.shared.sample_rate_bits.store(0, Ordering::Relaxed);
    }

    fn process(
        &mut self,
        buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // The buffers are processed in place: only subnormal samples are changed (to zero), so
        // every other sample passes bit for bit.
        for channel in buffer.as_slice() {
            flush_subnormals(channel);
        }
        let Some(front) = &mut self.front else {
            return ProcessStatus::Normal;
        };
        let mut timing = BlockTiming::new(front.position(), buffer.samples() as u32);
        let channels = buffer.as_slice_immutable();
        match channels {
            [mono] => front.process(&[mono]),
            [left, right, ..] => front.process(&[left, right]),
            [] => {}
        }
        if let Some(cc_values) = &mut self.cc_values {
            while let Some(hop) = cc_values.recv() {
                let offset = timing.place(hop.sample_pos);
                for (slot, emitter) in self.emitters.iter_mut().enumerate() {
                    let params = &self.params.slots[slot];
                    if !params.enabled.value() {
                        continue;
                    }
                    emitter.update(
                        hop.values[slot],
                        &params.cc_config(),
                        |channel, cc, value| {
                            let _ = context.try_send_event(NoteEvent::MidiCC {
                                timing: offset,
                                channel,
                                cc,
                                value: value as f32 / 127.0,
                            });
                        },
                    );
                }
            }
        }
        ProcessStatus::Normal
    }
}

impl Echoic {
    /// The listener to use at activation: the adapted one saved with the session, rebuilt
    /// against the chosen model ([`Self::load_chosen_model`]), with that model as its root; or
    /// the chosen model itself when nothing was adapted or the saved adaptation cannot be
    /// rebuilt (the status says why; the saved text is kept, so that the base's return brings it
    /// back). Runs at activation, on the main thread: file I/O and allocation are fine here.
    fn load_model(&self) -> (Result<Listener, String>, Option<ModelRoot>, ModelInfo) {
        let (chosen, mut info) = self.load_chosen_model();
        let saved = self
            .params
            .adapted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let (Ok(base), Some(text)) = (&chosen, saved) else {
            return (chosen, None, info);
        };
        let restored = adapt::saved::decode(&text, base.id(), base.weights())
            .map_err(|e| e.to_string())
            .and_then(|(meta, tensors)| {
                Listener::from_parts(meta, &tensors, base.device()).map_err(|e| e.to_string())
            });
        match restored {
            Ok(adapted) => {
                let root = ModelRoot::of(base);
                let info = ModelInfo {
                    note: info.note.take(),
                    ..ModelInfo::of(&adapted, info.source.clone())
                };
                (Ok(adapted), Some(root), info)
            }
            Err(why) => {
                let note = format!(
                    "the adapted listener saved with this session could not be restored ({why}); \
                     using \"{}\" as it is",
                    base.metadata().name
                );
                info.note = Some(match info.note.take() {
                    Some(earlier) => format!("{earlier}; {note}"),
                    None => note,
                });
                (chosen, None, info)
            }
        }
    }

    /// Loads the model the editor chose (saved in the state), or the built-in one when none was
    /// chosen or the file is gone or broken: the model (or why there is none) and what the
    /// editor's status says about it. File I/O; allocates.
    fn load_chosen_model(&self) -> (Result<Listener, String>, ModelInfo) {
        let chosen = self
            .params
            .model_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut note = None;
        if let Some(path) = chosen {
            if !std::path::Path::new(&path).is_file() {
                note = Some(format!(
                    "the chosen model {path} is gone; using the built-in model"
                ));
            } else {
                match Listener::load(&path) {
                    Ok(listener) => {
                        let info = ModelInfo::of(&listener, ModelSource::File(path));
                        return (Ok(listener), info);
                    }
                    Err(error) => {
                        note = Some(format!("the chosen model {path} failed to load ({error}); using the built-in model"));
                    }
                }
            }
        }
        match Listener::from_bytes(DEFAULT_MODEL) {
            Ok(listener) => {
                let info = ModelInfo {
                    note,
                    ..ModelInfo::of(&listener, ModelSource::BuiltIn)
                };
                (Ok(listener), info)
            }
            Err(error) => {
                let why = format!("the built-in model failed to load: {error}");
                let info = ModelInfo {
                    note: Some(why.clone()),
                    ..ModelInfo::default()
                };
                (Err(why), info)
            }
        }
    }

    fn stop_worker(&mut self) {
        if let Some(mut worker) = self.worker.take() {
            worker.stop();
        }
    }
}

impl ClapPlugin for Echoic {
    const CLAP_ID: &'static str = "org.echoic.echoic";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Listens like a cochlea and turns what it hears into embeddings and MIDI CC");
    const CLAP_MANUAL_URL: Option<&'static str> = Some(Self::URL);
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Analyzer,
        ClapFeature::Utility,
    ];
}

impl Vst3Plugin for Echoic {
    const VST3_CLASS_ID: [u8; 16] = *b"EchoicListener01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Analyzer];
}

nice_export_clap!(Echoic);
nice_export_vst3!(Echoic);
