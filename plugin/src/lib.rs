//! Echoic: a plugin that listens the way a cochlea and echoic memory do, and turns what it hears
//! into live embeddings and MIDI CC automation. Audio passes through untouched.

use nice_plug::prelude::*;
use nice_plug_egui::EguiEditorState;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

mod editor;
pub mod params;

use params::EchoicParams;

/// State the audio thread publishes and the editor reads. Atomics only, so neither side waits.
#[derive(Default)]
pub struct EchoicShared {
    /// Sample rate of the current activation, in Hz (as f32 bits); 0 while inactive.
    sample_rate_bits: AtomicU32,
}

impl EchoicShared {
    /// One line for the editor's status bar. Allocates.
    pub fn status_line(&self) -> String {
        let sample_rate = f32::from_bits(self.sample_rate_bits.load(Ordering::Relaxed));
        if sample_rate > 0.0 {
            format!("Listening at {:.1} kHz", sample_rate / 1000.0)
        } else {
            "Inactive: waiting for the host to start audio".to_owned()
        }
    }
}

/// One plugin instance.
pub struct Echoic {
    /// Parameters shared with the host and the editor.
    params: Arc<EchoicParams>,
    /// The editor's size and open flag. Kept here so that reopening the editor keeps its size.
    editor_state: Arc<EguiEditorState>,
    /// What the editor displays.
    shared: Arc<EchoicShared>,
}

impl Default for Echoic {
    fn default() -> Self {
        let (width, height) = editor::DEFAULT_SIZE;
        Self {
            params: Arc::new(EchoicParams::default()),
            editor_state: EguiEditorState::from_size(
                nice_plug::editor::dpi::LogicalSize::new(width as f64, height as f64),
                1.0,
            ),
            shared: Arc::new(EchoicShared::default()),
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

    type Editor = nice_plug_egui::EguiEditor<editor::EchoicEditor>;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(self.editor_state.clone(), self.shared.clone())
    }

    fn activate(
        &mut self,
        _audio_io_layout: &AudioIOLayout,
        buffer_config: &BufferConfig,
        _context: &mut impl ActivateContext<Self>,
    ) -> bool {
        self.shared
            .sample_rate_bits
            .store(buffer_config.sample_rate.to_bits(), Ordering::Relaxed);
        true
    }

    fn deactivate(&mut self) {
        self.shared.sample_rate_bits.store(0, Ordering::Relaxed);
    }

    fn process(
        &mut self,
        _buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        _context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        // The buffers are processed in place: leaving them alone is a bit-exact passthrough.
        ProcessStatus::Normal
    }
}

impl ClapPlugin for Echoic {
    const CLAP_ID: &'static str = "org.echoic.echoic";
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Listens like a cochlea and turns what it hears into embeddings and MIDI CC");
    const CLAP_MANUAL_URL: Option<&'static str> = Some(Self::URL);
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] =
        &[ClapFeature::AudioEffect, ClapFeature::Analyzer, ClapFeature::Utility];
}

impl Vst3Plugin for Echoic {
    const VST3_CLASS_ID: [u8; 16] = *b"EchoicListener01";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Analyzer];
}

nice_export_clap!(Echoic);
nice_export_vst3!(Echoic);
