//! [`EchoicHost`]: one plugin instance driven the way a DAW drives it.

use crate::bundle::{load_default_entry, PLUGIN_ID};
use crate::error::HostError;
use crate::handlers::{
    as_audio_thread, EchoicHostHandlers, HostMainThread, HostShared, LogRecord, MainThreadNotices,
    PluginExtensions,
};
use clack_extensions::audio_ports::AudioPortInfoBuffer;
use clack_extensions::audio_ports_config::AudioPortsConfigBuffer;
use clack_extensions::gui::PluginGui;
use clack_extensions::note_ports::NotePortInfoBuffer;
use clack_extensions::params::{ParamInfoBuffer, ParamInfoFlags};
use clack_host::events::event_types::ParamValueEvent;
use clack_host::events::spaces::CoreEventSpace;
use clack_host::prelude::*;
use std::ffi::CString;
use std::io::Cursor;
use std::sync::atomic::Ordering;

/// How this host fills the plugin's output buffers before each `process`.
///
/// Why: the output buffers are separate from the input buffers (not in place), so a plugin that
/// forgot to write its output would leave this value behind instead of, by luck, the input.
pub const OUTPUT_POISON: f32 = -12_345.0;

/// Upper bound on `on_main_thread` calls per [`EchoicHost::pump_main_thread`], so a plugin that
/// requests a callback from inside its callback cannot hang the host.
const MAX_CALLBACKS_PER_PUMP: usize = 64;

/// The audio setup of one activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AudioConfig {
    /// Sample rate in Hz.
    pub sample_rate: f64,
    /// Largest block the host will pass to `process` (`max_frames_count`); smaller blocks, down to
    /// one frame, are allowed (`min_frames_count` is 1).
    pub max_block_size: u32,
    /// Channels of the main input and of the main output (1 = mono, 2 = stereo); the host picks
    /// the audio port configuration with this many channels in and out.
    pub channels: usize,
}

impl AudioConfig {
    /// Shorthand for a configuration.
    pub fn new(sample_rate: f64, max_block_size: u32, channels: usize) -> Self {
        Self {
            sample_rate,
            max_block_size,
            channels,
        }
    }
}

/// A parameter as the plugin describes it through `clap.params`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    /// Stable CLAP parameter id (nice-plug derives it from a hash of the `#[id]` string).
    pub id: u32,
    /// Display name ("Bands", "Hop", ...).
    pub name: String,
    /// Module path (nice-plug's parameter group), "" at top level.
    pub module: String,
    /// Minimum CLAP value. nice-plug reports every parameter as `0..=step_count` (or `0..=1` for
    /// continuous ones), not in its real unit: use [`min_text`](Self::min_text) for the real value.
    pub min: f64,
    /// Maximum CLAP value (see [`min`](Self::min)).
    pub max: f64,
    /// Default CLAP value (see [`min`](Self::min)).
    pub default: f64,
    /// `CLAP_PARAM_IS_STEPPED`: integer/enum parameters.
    pub stepped: bool,
    /// `CLAP_PARAM_IS_AUTOMATABLE`.
    pub automatable: bool,
    /// The plugin's text for [`min`](Self::min), with unit (e.g. "5.0 ms"): the real range.
    pub min_text: Option<String>,
    /// The plugin's text for [`max`](Self::max).
    pub max_text: Option<String>,
    /// The plugin's text for [`default`](Self::default).
    pub default_text: Option<String>,
}

/// One audio port configuration the plugin offers (`clap.audio-ports-config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Id to pass to `select`.
    pub id: u32,
    /// Display name ("Stereo", "Mono", ...).
    pub name: String,
    /// Channels of the main input port, if there is one.
    pub main_input_channels: Option<u32>,
    /// Channels of the main output port, if there is one.
    pub main_output_channels: Option<u32>,
}

/// A MIDI 1.0 message the plugin emitted (`CLAP_EVENT_MIDI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MidiMessage {
    /// Position in samples. From [`EchoicHost::process_signal`]: index into that signal. From
    /// [`EchoicHost::take_midi`]: frames since the activation started.
    pub sample: u64,
    /// The plugin's note port index.
    pub port: u16,
    /// Status byte and two data bytes (a CC is `[0xB0 | channel, controller, value]`).
    pub data: [u8; 3],
}

/// A parameter change at a sample offset inside one block: a CLAP param value event in that
/// block's input event list, as a DAW sends automation (or a knob turned during playback).
///
/// Why: [`EchoicHost::set_param`] only reaches the plugin at a block's first sample; changes in
/// the middle of a block take another path through the plugin's event handling.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimedParam {
    /// Offset into the block in samples; below the block's length.
    pub offset: u32,
    /// CLAP parameter id ([`ParamInfo::id`]).
    pub id: u32,
    /// CLAP value (the scale of [`ParamInfo::min`]).
    pub value: f64,
}

/// The result of [`EchoicHost::process_signal`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessedSignal {
    /// Output audio, planar, as long as the input.
    pub audio: Vec<Vec<f32>>,
    /// MIDI the plugin emitted, in emission order, timed relative to the start of the signal.
    pub midi: Vec<MidiMessage>,
    /// Number of `process` calls made.
    pub blocks: usize,
}

/// Everything that exists only while the plugin is active.
struct ActiveSession {
    /// The activation's setup.
    config: AudioConfig,
    /// The plugin's audio processor; started at activation, stopped at deactivation.
    processor: PluginAudioProcessor<EchoicHostHandlers>,
    /// Host-owned input channel buffers (`max_block_size` each), so callers' slices need not
    /// outlive a call and the plugin never sees caller memory.
    inputs: Vec<Vec<f32>>,
    /// Host-owned output channel buffers, separate from `inputs` (not in place).
    outputs: Vec<Vec<f32>>,
    /// clack's scratch for the input `clap_audio_buffer` array, allocated once per activation.
    input_ports: AudioPorts,
    /// Same for the outputs.
    output_ports: AudioPorts,
    /// Receives the plugin's output events during one `process`; preallocated and cleared per
    /// block (it lives host-side, so growing it is no allocation in the plugin).
    output_events: EventBuffer,
    /// Parameter changes from [`EchoicHost::set_param`] waiting for the next block, where they
    /// are delivered at its first sample, as a DAW delivers automation.
    pending_params: EventBuffer,
    /// Frames processed since activation: the `steady_time` passed to the plugin and the time
    /// base of collected MIDI.
    frames_processed: u64,
    /// MIDI collected since activation (or since the last `take_midi`).
    midi: Vec<MidiMessage>,
    /// Output events other than MIDI 1.0 (parameter gestures, notes, ...), counted so that tests
    /// can notice them without the host having to decode each kind.
    other_events: u64,
}

/// One Echoic plugin instance in a minimal, real CLAP host.
///
/// All methods must run on the thread that created the host (CLAP's main thread); the type is
/// not `Send`. Audio calls run on the same thread, marked as the audio thread for the plugin's
/// thread checks. The host services the plugin's `request_callback` (by calling its
/// `on_main_thread`) before and after every call into the plugin; a long-running embedder (an
/// editor window loop) calls [`pump_main_thread`](Self::pump_main_thread) itself.
pub struct EchoicHost {
    /// Audio state while active. Declared before `instance` so that it drops first.
    session: Option<ActiveSession>,
    /// The plugin's extension vtables, copied once after `init`.
    extensions: PluginExtensions,
    /// How many times `on_main_thread` was called: lets tests see that callbacks are serviced.
    main_thread_callbacks: u64,
    /// The instance itself; owns the handlers and keeps the entry (the library) alive.
    instance: PluginInstance<EchoicHostHandlers>,
}

impl EchoicHost {
    /// Loads the default bundle (see [`crate::bundle`]) and instantiates Echoic.
    ///
    /// # Panics
    ///
    /// If the bundle does not exist ("run `cargo xtask bundle echoic` first").
    ///
    /// # Errors
    ///
    /// [`HostError::Load`] or [`HostError::Instantiate`].
    pub fn new() -> Result<Self, HostError> {
        Self::from_entry(&load_default_entry()?)
    }

    /// Instantiates Echoic from an already loaded entry.
    ///
    /// # Errors
    ///
    /// [`HostError::Instantiate`] if the entry has no `org.echoic.echoic` or it fails to init.
    pub fn from_entry(entry: &PluginEntry) -> Result<Self, HostError> {
        let host_info = HostInfo::new(
            "Echoic test host",
            "Echoic developers",
            "https://echoic.invalid",
            env!("CARGO_PKG_VERSION"),
        )
        .map_err(|e| HostError::Instantiate(format!("host info: {e}")))?;
        let instance = PluginInstance::<EchoicHostHandlers>::new(
            |_| HostShared::new(),
            |shared| HostMainThread::new(shared),
            entry,
            PLUGIN_ID,
            &host_info,
        )
        .map_err(|e| HostError::Instantiate(format!("{}: {e}", PLUGIN_ID.to_string_lossy())))?;
        let extensions = instance.access_shared_handler(|shared| shared.extensions());
        let mut host = Self {
            session: None,
            extensions,
            main_thread_callbacks: 0,
            instance,
        };
        host.pump_main_thread();
        Ok(host)
    }

    // ----- main thread ---------------------------------------------------------------------

    /// Calls the plugin's `on_main_thread` while it has requested a callback; returns how many
    /// calls were made. Safe to call at any time on the main thread.
    pub fn pump_main_thread(&mut self) -> usize {
        let mut calls = 0;
        while calls < MAX_CALLBACKS_PER_PUMP
            && self
                .instance
                .access_shared_handler(|s| s.callback_requested.swap(false, Ordering::AcqRel))
        {
            self.instance.call_on_main_thread_callback();
            calls += 1;
        }
        self.main_thread_callbacks += calls as u64;
        calls
    }

    /// Total `on_main_thread` calls made so far.
    pub fn main_thread_callbacks(&self) -> u64 {
        self.main_thread_callbacks
    }

    /// The plugin's extensions (e.g. [`PluginExtensions::gui`] for embedding the editor).
    pub fn extensions(&self) -> PluginExtensions {
        self.extensions
    }

    /// The plugin's gui extension, if it has an editor.
    pub fn gui(&self) -> Option<PluginGui> {
        self.extensions.gui
    }

    /// The underlying clack instance, for calls this wrapper does not cover (e.g.
    /// `plugin_handle()` to pass to [`PluginGui`] methods). Call
    /// [`pump_main_thread`](Self::pump_main_thread) afterwards.
    pub fn instance_mut(&mut self) -> &mut PluginInstance<EchoicHostHandlers> {
        &mut self.instance
    }

    /// Runs `f` on the shared host state (log, gui requests, request flags).
    pub fn with_shared<R>(&self, f: impl FnOnce(&HostShared) -> R) -> R {
        self.instance.access_shared_handler(f)
    }

    /// Everything the plugin has logged through `clap.log` so far.
    pub fn log(&self) -> Vec<LogRecord> {
        self.with_shared(|s| s.log.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Takes (and resets) what the plugin reported through main-thread host extensions.
    pub fn take_notices(&self) -> MainThreadNotices {
        self.instance.access_handler(|h| h.notices.take())
    }

    /// Whether the plugin asked for a restart since the last call (and clears the request).
    pub fn take_restart_request(&self) -> bool {
        self.with_shared(|s| s.restart_requested.swap(false, Ordering::AcqRel))
    }

    // ----- parameters ----------------------------------------------------------------------

    /// Lists the parameters (id, name, CLAP range, texts of the range ends).
    ///
    /// # Errors
    ///
    /// [`HostError::MissingExtension`] without `clap.params`.
    pub fn params(&mut self) -> Result<Vec<ParamInfo>, HostError> {
        let params = self
            .extensions
            .params
            .ok_or(HostError::MissingExtension("clap.params"))?;
        let handle = self.instance.plugin_handle();
        let count = params.count(&handle);
        let mut list = Vec::with_capacity(count as usize);
        let mut buffer = ParamInfoBuffer::new();
        // Only indices below `count`: nice-plug checks `index > count` and would index out of
        // bounds (a panic across FFI, i.e. an abort) for `index == count`.
        for index in 0..count {
            let Some(info) = params.get_info(&handle, index, &mut buffer) else {
                continue;
            };
            list.push(ParamInfo {
                id: info.id.get(),
                name: String::from_utf8_lossy(info.name).into_owned(),
                module: String::from_utf8_lossy(info.module).into_owned(),
                min: info.min_value,
                max: info.max_value,
                default: info.default_value,
                stepped: info.flags.contains(ParamInfoFlags::IS_STEPPED),
                automatable: info.flags.contains(ParamInfoFlags::IS_AUTOMATABLE),
                min_text: None,
                max_text: None,
                default_text: None,
            });
        }
        for param in &mut list {
            param.min_text = self.param_value_to_text(param.id, param.min);
            param.max_text = self.param_value_to_text(param.id, param.max);
            param.default_text = self.param_value_to_text(param.id, param.default);
        }
        self.pump_main_thread();
        Ok(list)
    }

    /// The parameter with this display name.
    ///
    /// # Errors
    ///
    /// As [`params`](Self::params).
    pub fn param_by_name(&mut self, name: &str) -> Result<Option<ParamInfo>, HostError> {
        Ok(self.params()?.into_iter().find(|p| p.name == name))
    }

    /// Current CLAP value of a parameter (same scale as [`ParamInfo::min`]).
    pub fn param_value(&mut self, id: u32) -> Option<f64> {
        let params = self.extensions.params?;
        let value = params.get_value(&self.instance.plugin_handle(), ClapId::new(id));
        self.pump_main_thread();
        value
    }

    /// The plugin's text for a CLAP value of a parameter, with unit.
    pub fn param_value_to_text(&mut self, id: u32, value: f64) -> Option<String> {
        let params = self.extensions.params?;
        let mut buffer = [0u8; 256];
        let text = params
            .value_to_text(
                &self.instance.plugin_handle(),
                ClapId::new(id),
                value,
                &mut buffer,
            )
            .ok()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        self.pump_main_thread();
        text
    }

    /// Sets a parameter to a CLAP value (the scale of [`ParamInfo::min`]; see
    /// [`param_text_to_value`](Self::param_text_to_value) to convert from real units), as host
    /// automation does.
    ///
    /// Inactive: delivered at once through `params.flush`. Active: queued and delivered at the
    /// first sample of the next [`process_block`](Self::process_block).
    ///
    /// # Errors
    ///
    /// [`HostError::MissingExtension`] without `clap.params`.
    pub fn set_param(&mut self, id: u32, value: f64) -> Result<(), HostError> {
        let params = self
            .extensions
            .params
            .ok_or(HostError::MissingExtension("clap.params"))?;
        let event = ParamValueEvent::new(0, ClapId::new(id), Pckn::match_all(), value);
        if let Some(session) = self.session.as_mut() {
            session.pending_params.push(&event);
            return Ok(());
        }
        let mut input = EventBuffer::with_capacity(1);
        input.push(&event);
        let mut output = EventBuffer::new();
        let mut handle = self
            .instance
            .inactive_plugin_handle()
            .ok_or(HostError::WrongState("flush while active"))?;
        params.flush(&mut handle, &input.as_input(), &mut output.as_output());
        self.pump_main_thread();
        Ok(())
    }

    /// Parses text into a CLAP value of a parameter.
    pub fn param_text_to_value(&mut self, id: u32, text: &str) -> Option<f64> {
        let params = self.extensions.params?;
        let text = CString::new(text).ok()?;
        let value = params.text_to_value(&self.instance.plugin_handle(), ClapId::new(id), &text);
        self.pump_main_thread();
        value
    }

    // ----- state ---------------------------------------------------------------------------

    /// Saves the plugin's state (`clap.state.save`) to bytes.
    ///
    /// # Errors
    ///
    /// [`HostError::MissingExtension`] or [`HostError::StateSave`].
    pub fn save_state(&mut self) -> Result<Vec<u8>, HostError> {
        let state = self
            .extensions
            .state
            .ok_or(HostError::MissingExtension("clap.state"))?;
        let mut bytes = Vec::new();
        let result = state.save(&self.instance.plugin_handle(), &mut bytes);
        self.pump_main_thread();
        result.map_err(|_| HostError::StateSave)?;
        Ok(bytes)
    }

    /// Loads state bytes (`clap.state.load`).
    ///
    /// # Errors
    ///
    /// [`HostError::MissingExtension`], or [`HostError::StateLoad`] if the plugin rejects them.
    pub fn load_state(&mut self, bytes: &[u8]) -> Result<(), HostError> {
        let state = self
            .extensions
            .state
            .ok_or(HostError::MissingExtension("clap.state"))?;
        let mut reader = Cursor::new(bytes);
        let result = state.load(&self.instance.plugin_handle(), &mut reader);
        self.pump_main_thread();
        result.map_err(|_| HostError::StateLoad)
    }

    // ----- ports ---------------------------------------------------------------------------

    /// The audio port configurations the plugin offers.
    ///
    /// # Errors
    ///
    /// [`HostError::MissingExtension`] without `clap.audio-ports-config`.
    pub fn port_configs(&mut self) -> Result<Vec<PortConfig>, HostError> {
        let ext = self
            .extensions
            .audio_ports_config
            .ok_or(HostError::MissingExtension("clap.audio-ports-config"))?;
        let handle = self.instance.plugin_handle();
        let mut buffer = AudioPortsConfigBuffer::new();
        let configs = (0..ext.count(&handle))
            .filter_map(|index| {
                let config = ext.get(&handle, index, &mut buffer)?;
                Some(PortConfig {
                    id: config.id.get(),
                    name: String::from_utf8_lossy(config.name).into_owned(),
                    main_input_channels: config.main_input.map(|p| p.channel_count),
                    main_output_channels: config.main_output.map(|p| p.channel_count),
                })
            })
            .collect();
        self.pump_main_thread();
        Ok(configs)
    }

    /// Channel counts of the current audio ports, `(inputs, outputs)`, one entry per port.
    ///
    /// # Errors
    ///
    /// [`HostError::MissingExtension`] without `clap.audio-ports`.
    pub fn audio_port_channels(&mut self) -> Result<(Vec<u32>, Vec<u32>), HostError> {
        let ext = self
            .extensions
            .audio_ports
            .ok_or(HostError::MissingExtension("clap.audio-ports"))?;
        let handle = self.instance.plugin_handle();
        let mut buffer = AudioPortInfoBuffer::new();
        let mut channels = |is_input| {
            (0..ext.count(&handle, is_input))
                .filter_map(|i| {
                    ext.get(&handle, i, is_input, &mut buffer)
                        .map(|p| p.channel_count)
                })
                .collect::<Vec<_>>()
        };
        let result = (channels(true), channels(false));
        self.pump_main_thread();
        Ok(result)
    }

    /// Number of `(input, output)` note ports (the plugin's MIDI output is output port 0).
    pub fn note_port_counts(&mut self) -> (u32, u32) {
        let Some(ext) = self.extensions.note_ports else {
            return (0, 0);
        };
        let handle = self.instance.plugin_handle();
        let mut buffer = NotePortInfoBuffer::new();
        let mut count = |is_input| {
            // Count the ports that actually describe themselves.
            (0..ext.count(&handle, is_input))
                .filter(|&i| ext.get(&handle, i, is_input, &mut buffer).is_some())
                .count() as u32
        };
        let result = (count(true), count(false));
        self.pump_main_thread();
        result
    }

    /// The latency the plugin reports, in samples (0 without `clap.latency`).
    pub fn latency(&mut self) -> u32 {
        let Some(ext) = self.extensions.latency else {
            return 0;
        };
        let latency = ext.get(&self.instance.plugin_handle());
        self.pump_main_thread();
        latency
    }

    /// Selects the audio port configuration with `channels` in and `channels` out, then checks
    /// the audio ports agree. The plugin must be inactive.
    fn select_channels(&mut self, channels: usize) -> Result<(), HostError> {
        let wanted =
            u32::try_from(channels).map_err(|_| HostError::UnsupportedChannels(channels))?;
        let config = self
            .port_configs()?
            .into_iter()
            .find(|c| {
                c.main_input_channels == Some(wanted) && c.main_output_channels == Some(wanted)
            })
            .ok_or(HostError::UnsupportedChannels(channels))?;
        let ext = self
            .extensions
            .audio_ports_config
            .ok_or(HostError::MissingExtension("clap.audio-ports-config"))?;
        ext.select(&self.instance.plugin_handle(), ClapId::new(config.id))
            .map_err(|_| HostError::PortMismatch(format!("select({}) refused", config.id)))?;
        let (inputs, outputs) = self.audio_port_channels()?;
        if inputs.first() != Some(&wanted) || outputs.first() != Some(&wanted) {
            return Err(HostError::PortMismatch(format!(
                "selected {:?} for {channels} channels, ports are in {inputs:?} out {outputs:?}",
                config.name
            )));
        }
        Ok(())
    }

    // ----- activation ----------------------------------------------------------------------

    /// Whether the plugin is active.
    pub fn is_active(&self) -> bool {
        self.session.is_some()
    }

    /// The current activation's setup.
    pub fn config(&self) -> Option<AudioConfig> {
        self.session.as_ref().map(|s| s.config)
    }

    /// Chooses the port configuration for `config.channels`, activates the plugin and starts
    /// processing.
    ///
    /// # Errors
    ///
    /// [`HostError::WrongState`] if already active, [`HostError::UnsupportedChannels`],
    /// [`HostError::PortMismatch`], [`HostError::Activate`] or [`HostError::Process`].
    pub fn activate(&mut self, config: AudioConfig) -> Result<(), HostError> {
        if self.session.is_some() {
            return Err(HostError::WrongState("activate while active"));
        }
        if config.max_block_size == 0 || config.sample_rate.is_nan() || config.sample_rate <= 0.0 {
            return Err(HostError::Activate(format!(
                "invalid configuration {config:?}"
            )));
        }
        self.pump_main_thread();
        self.select_channels(config.channels)?;
        let stopped = self
            .instance
            .activate(
                |_, _| (),
                PluginAudioConfiguration {
                    sample_rate: config.sample_rate,
                    min_frames_count: 1,
                    max_frames_count: config.max_block_size,
                },
            )
            .map_err(|e| HostError::Activate(format!("{config:?}: {e}")))?;
        let block = config.max_block_size as usize;
        let mut session = ActiveSession {
            config,
            processor: stopped.into(),
            inputs: vec![vec![0.0; block]; config.channels],
            outputs: vec![vec![OUTPUT_POISON; block]; config.channels],
            input_ports: AudioPorts::with_capacity(config.channels, 1),
            output_ports: AudioPorts::with_capacity(config.channels, 1),
            output_events: EventBuffer::with_capacity(1024),
            pending_params: EventBuffer::with_capacity(64),
            frames_processed: 0,
            midi: Vec::new(),
            other_events: 0,
        };
        // `start_processing` is an audio-thread call.
        let started = as_audio_thread(|| session.processor.start_processing().map(|_| ()));
        self.session = Some(session);
        self.pump_main_thread();
        if let Err(e) = started {
            self.deactivate();
            return Err(HostError::Process(format!("start_processing: {e}")));
        }
        Ok(())
    }

    /// Stops processing and deactivates the plugin; nothing happens if it is inactive.
    pub fn deactivate(&mut self) {
        let Some(mut session) = self.session.take() else {
            return;
        };
        self.pump_main_thread();
        // `stop_processing` is an audio-thread call, `deactivate` a main-thread one.
        as_audio_thread(|| {
            session.processor.ensure_processing_stopped();
        });
        let stopped = session.processor.into_stopped();
        self.instance.deactivate(stopped);
        self.pump_main_thread();
    }

    /// Asks the plugin to clear its processing state (CLAP `reset`, an audio-thread call), as a
    /// host does after a transport jump. Does nothing while inactive.
    pub fn reset(&mut self) {
        self.pump_main_thread();
        if let Some(session) = self.session.as_mut() {
            as_audio_thread(|| session.processor.reset());
        }
        self.pump_main_thread();
    }

    // ----- audio ---------------------------------------------------------------------------

    /// Processes one block: `input[channel]` in, `output[channel]` out, all of one length between
    /// 1 and `max_block_size`, channel counts equal to the activation's.
    ///
    /// MIDI the plugin emits is collected (see [`take_midi`](Self::take_midi)).
    ///
    /// # Errors
    ///
    /// [`HostError::WrongState`] if inactive, [`HostError::InvalidBuffers`], or
    /// [`HostError::Process`] if the plugin returns `CLAP_PROCESS_ERROR`.
    pub fn process_block(
        &mut self,
        input: &[&[f32]],
        output: &mut [&mut [f32]],
    ) -> Result<ProcessStatus, HostError> {
        self.process_block_with_params(input, output, &[])
    }

    /// As [`process_block`](Self::process_block), with parameter changes at sample offsets
    /// inside the block. The input event list holds the changes queued by
    /// [`set_param`](Self::set_param) (at offset 0), then `params`, so it is in time order.
    ///
    /// # Errors
    ///
    /// As [`process_block`](Self::process_block); [`HostError::InvalidBuffers`] as well if an
    /// offset is not below the block's length or the offsets are not in non-decreasing order.
    pub fn process_block_with_params(
        &mut self,
        input: &[&[f32]],
        output: &mut [&mut [f32]],
        params: &[TimedParam],
    ) -> Result<ProcessStatus, HostError> {
        self.pump_main_thread();
        let session = self
            .session
            .as_mut()
            .ok_or(HostError::WrongState("process while inactive"))?;
        let channels = session.config.channels;
        let frames = input.first().map_or(0, |c| c.len());
        if input.len() != channels || output.len() != channels {
            return Err(HostError::InvalidBuffers(format!(
                "{} input and {} output channels for a {channels}-channel activation",
                input.len(),
                output.len()
            )));
        }
        if input.iter().any(|c| c.len() != frames) || output.iter().any(|c| c.len() != frames) {
            return Err(HostError::InvalidBuffers(
                "channels of different lengths".into(),
            ));
        }
        if frames == 0 || frames > session.config.max_block_size as usize {
            return Err(HostError::InvalidBuffers(format!(
                "block of {frames} frames, allowed 1..={}",
                session.config.max_block_size
            )));
        }

        if params.iter().any(|p| p.offset as usize >= frames)
            || params.windows(2).any(|w| w[1].offset < w[0].offset)
        {
            return Err(HostError::InvalidBuffers(format!(
                "parameter offsets {:?} must be in order and below the block's {frames} frames",
                params.iter().map(|p| p.offset).collect::<Vec<_>>()
            )));
        }
        for p in params {
            session.pending_params.push(&ParamValueEvent::new(
                p.offset,
                ClapId::new(p.id),
                Pckn::match_all(),
                p.value,
            ));
        }

        for (host, caller) in session.inputs.iter_mut().zip(input) {
            host[..frames].copy_from_slice(caller);
        }
        for host in &mut session.outputs {
            host[..frames].fill(OUTPUT_POISON);
        }
        session.output_events.clear();

        let ActiveSession {
            processor,
            inputs,
            outputs,
            input_ports,
            output_ports,
            output_events,
            pending_params,
            frames_processed,
            ..
        } = session;
        let status = {
            let input_audio = input_ports.with_input_buffers([AudioPortBuffer {
                latency: 0,
                channels: AudioPortBufferType::f32_input_only(
                    inputs
                        .iter_mut()
                        .map(|c| InputChannel::variable(&mut c[..frames])),
                ),
            }]);
            let mut output_audio = output_ports.with_output_buffers([AudioPortBuffer {
                latency: 0,
                channels: AudioPortBufferType::f32_output_only(
                    outputs.iter_mut().map(|c| &mut c[..frames]),
                ),
            }]);
            let mut events_out = output_events.as_output();
            as_audio_thread(|| {
                let started = processor
                    .ensure_processing_started()
                    .map_err(|e| HostError::Process(format!("start_processing: {e}")))?;
                started
                    .process(
                        &input_audio,
                        &mut output_audio,
                        &pending_params.as_input(),
                        &mut events_out,
                        Some(*frames_processed),
                        None,
                    )
                    .map_err(|e| HostError::Process(e.to_string()))
            })
        };

        session.pending_params.clear();
        session.other_events += collect_midi(
            &session.output_events,
            session.frames_processed,
            &mut session.midi,
        );
        for (caller, host) in output.iter_mut().zip(&session.outputs) {
            caller.copy_from_slice(&host[..frames]);
        }
        session.frames_processed += frames as u64;
        self.pump_main_thread();
        status
    }

    /// Processes a whole planar signal in blocks whose sizes cycle through `block_sizes`
    /// (e.g. `&[64]`, or `&[1, 7, 512, 33]` for varying blocks; the last block is cut short),
    /// and returns the output and the MIDI emitted meanwhile, timed from the signal's start.
    ///
    /// # Errors
    ///
    /// [`HostError::InvalidBuffers`] for an empty or oversized block size or a channel count that
    /// does not match; otherwise as [`process_block`](Self::process_block).
    pub fn process_signal(
        &mut self,
        input: &[Vec<f32>],
        block_sizes: &[usize],
    ) -> Result<ProcessedSignal, HostError> {
        let config = self
            .config()
            .ok_or(HostError::WrongState("process while inactive"))?;
        if block_sizes.is_empty()
            || block_sizes
                .iter()
                .any(|&b| b == 0 || b > config.max_block_size as usize)
        {
            return Err(HostError::InvalidBuffers(format!(
                "block sizes {block_sizes:?} must be within 1..={}",
                config.max_block_size
            )));
        }
        if input.len() != config.channels {
            return Err(HostError::InvalidBuffers(format!(
                "{} channels for a {}-channel activation",
                input.len(),
                config.channels
            )));
        }
        let frames = input.first().map_or(0, Vec::len);
        if input.iter().any(|c| c.len() != frames) {
            return Err(HostError::InvalidBuffers(
                "channels of different lengths".into(),
            ));
        }

        let (start, midi_start) = {
            let session = self
                .session
                .as_ref()
                .ok_or(HostError::WrongState("inactive"))?;
            (session.frames_processed, session.midi.len())
        };
        let mut audio = vec![vec![0.0f32; frames]; config.channels];
        let mut position = 0;
        let mut blocks = 0;
        for &size in block_sizes.iter().cycle() {
            if position >= frames {
                break;
            }
            let end = (position + size).min(frames);
            let block_in: Vec<&[f32]> = input.iter().map(|c| &c[position..end]).collect();
            let mut block_out: Vec<&mut [f32]> =
                audio.iter_mut().map(|c| &mut c[position..end]).collect();
            self.process_block(&block_in, &mut block_out)?;
            position = end;
            blocks += 1;
        }

        let session = self
            .session
            .as_mut()
            .ok_or(HostError::WrongState("inactive"))?;
        let midi = session
            .midi
            .drain(midi_start..)
            .map(|m| MidiMessage {
                sample: m.sample - start,
                ..m
            })
            .collect();
        Ok(ProcessedSignal {
            audio,
            midi,
            blocks,
        })
    }

    /// Takes the MIDI collected by [`process_block`](Self::process_block) since activation or the
    /// last take, timed in frames since activation.
    pub fn take_midi(&mut self) -> Vec<MidiMessage> {
        self.session
            .as_mut()
            .map(|s| std::mem::take(&mut s.midi))
            .unwrap_or_default()
    }

    /// The times (sample offsets into the block) of the events the plugin emitted in the last
    /// `process` call, in the order of its raw output event list; empty while inactive.
    ///
    /// Why: a host may rely on each block's output events being in time order and inside the
    /// block; [`take_midi`](Self::take_midi) has already made the times absolute.
    pub fn last_output_event_times(&self) -> Vec<u32> {
        self.session.as_ref().map_or_else(Vec::new, |s| {
            s.output_events.iter().map(|e| e.header().time()).collect()
        })
    }

    /// Number of non-MIDI output events the plugin has emitted in this activation.
    pub fn other_output_events(&self) -> u64 {
        self.session.as_ref().map_or(0, |s| s.other_events)
    }

    /// Frames processed since activation (0 while inactive).
    pub fn frames_processed(&self) -> u64 {
        self.session.as_ref().map_or(0, |s| s.frames_processed)
    }
}

/// Appends the MIDI 1.0 events of one block's output to `midi`, timed `base` + event time, and
/// returns how many other events there were.
fn collect_midi(events: &EventBuffer, base: u64, midi: &mut Vec<MidiMessage>) -> u64 {
    let mut others = 0;
    for event in events {
        match event.as_core_event() {
            Some(CoreEventSpace::Midi(message)) => midi.push(MidiMessage {
                sample: base + u64::from(event.header().time()),
                port: message.port_index(),
                data: message.data(),
            }),
            _ => others += 1,
        }
    }
    others
}

impl Drop for EchoicHost {
    fn drop(&mut self) {
        // Deactivate before the instance is destroyed, as CLAP requires; clack would otherwise
        // leak the instance rather than destroy an active one.
        self.deactivate();
        self.pump_main_thread();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clack_host::events::event_types::MidiEvent;

    #[test]
    fn collects_midi_with_run_timing_and_counts_the_rest() {
        let mut events = EventBuffer::new();
        events.push(&MidiEvent::new(5, 0, [0xB0, 20, 64]));
        events.push(&ParamValueEvent::new(
            7,
            ClapId::new(1),
            Pckn::match_all(),
            0.5,
        ));
        events.push(&MidiEvent::new(9, 0, [0xB3, 21, 127]));
        let mut midi = vec![MidiMessage {
            sample: 1,
            port: 0,
            data: [0xB0, 1, 1],
        }];
        let others = collect_midi(&events, 1_000, &mut midi);
        assert_eq!(others, 1);
        assert_eq!(
            midi[1..],
            [
                MidiMessage {
                    sample: 1_005,
                    port: 0,
                    data: [0xB0, 20, 64]
                },
                MidiMessage {
                    sample: 1_009,
                    port: 0,
                    data: [0xB3, 21, 127]
                },
            ]
        );
    }
}
