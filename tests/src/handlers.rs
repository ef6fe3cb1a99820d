//! The host side of the CLAP ABI: the callbacks and host extensions the plugin can call.
//!
//! clack splits a host into three handler types by CLAP thread class: [`HostShared`]
//! (`[thread-safe]`, callable from any thread), [`HostMainThread`] (`[main-thread]`), and the
//! audio-thread handler (nothing to do here, so `()`). The handlers only *record* what the plugin
//! asked for; [`EchoicHost`](crate::EchoicHost) acts on the records from its main loop.

use clack_extensions::audio_ports::{
    AudioPortRescanFlags, HostAudioPorts, HostAudioPortsImpl, PluginAudioPorts,
};
use clack_extensions::audio_ports_config::{
    HostAudioPortsConfig, HostAudioPortsConfigImpl, PluginAudioPortsConfig,
};
use clack_extensions::gui::{GuiSize, HostGui, HostGuiImpl, PluginGui};
use clack_extensions::latency::{HostLatency, HostLatencyImpl, PluginLatency};
use clack_extensions::log::{HostLog, HostLogImpl, LogSeverity};
use clack_extensions::note_ports::{
    HostNotePorts, HostNotePortsImpl, NoteDialects, NotePortRescanFlags, PluginNotePorts,
};
use clack_extensions::params::{
    HostParams, HostParamsImplMainThread, HostParamsImplShared, ParamClearFlags, ParamRescanFlags,
    PluginParams,
};
use clack_extensions::state::{HostState, HostStateImpl, PluginState};
use clack_extensions::thread_check::{HostThreadCheck, HostThreadCheckImpl};
use clack_host::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;

/// Ties the handler types together and declares the host extensions offered to the plugin.
pub struct EchoicHostHandlers;

impl HostHandlers for EchoicHostHandlers {
    type Shared<'a> = HostShared;
    type MainThread<'a> = HostMainThread<'a>;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder
            // nice-plug's `gui.create` unwraps the host gui extension: without it, opening the
            // editor aborts the process (nice-plug wrapper/clap/wrapper.rs:2753).
            .register::<HostGui>()
            .register::<HostLog>()
            .register::<HostParams>()
            .register::<HostState>()
            .register::<HostLatency>()
            .register::<HostAudioPorts>()
            .register::<HostAudioPortsConfig>()
            .register::<HostNotePorts>()
            // Lets nice-plug tell the audio thread from the main thread even though this host
            // calls `process` on the thread that created the instance (see `HostShared`).
            .register::<HostThreadCheck>();
    }
}

/// The plugin's extensions, queried once while it initialises.
///
/// All are plain copies of pointers into the plugin, valid as long as the instance lives.
#[derive(Clone, Copy, Default)]
pub struct PluginExtensions {
    /// `clap.params`: parameter list, values, value/text conversion.
    pub params: Option<PluginParams>,
    /// `clap.state`: save and load.
    pub state: Option<PluginState>,
    /// `clap.audio-ports`: to check the ports after choosing a configuration.
    pub audio_ports: Option<PluginAudioPorts>,
    /// `clap.audio-ports-config`: how the host picks mono or stereo (nice-plug's
    /// `AUDIO_IO_LAYOUTS` are exposed as configurations, one per layout).
    pub audio_ports_config: Option<PluginAudioPortsConfig>,
    /// `clap.note-ports`: where the plugin's MIDI output comes out.
    pub note_ports: Option<PluginNotePorts>,
    /// `clap.latency`: the plugin's reported latency, in samples.
    pub latency: Option<PluginLatency>,
    /// `clap.gui`: the editor. Unused by the tests so far; kept for embedding the editor in a
    /// host window later.
    pub gui: Option<PluginGui>,
}

/// One message the plugin sent through `clap.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// How bad the plugin says it is; tests may assert that nothing at `Error` or worse was logged.
    pub severity: LogSeverity,
    /// The text, as the plugin sent it (lossily decoded from UTF-8).
    pub message: String,
}

/// What the plugin asked of the GUI host extension, recorded for a future window-embedding host.
#[derive(Default)]
pub struct GuiRequests {
    /// Last size passed to `request_resize`, packed with [`GuiSize::pack_to_u64`]; 0 when none
    /// is pending. A window host resizes its window to this and clears it.
    pub requested_size: AtomicU64,
    /// Set by `request_show`: the plugin wants its (floating) window shown.
    pub show_requested: AtomicBool,
    /// Set by `request_hide`: the plugin wants its window hidden.
    pub hide_requested: AtomicBool,
    /// Set by `closed`: the window was closed or the connection to it lost.
    pub closed: AtomicBool,
    /// `closed(was_destroyed = true)`: the host must then call `gui.destroy`.
    pub destroyed: AtomicBool,
    /// Set by `resize_hints_changed`: the host should re-query `gui.get_resize_hints`.
    pub resize_hints_changed: AtomicBool,
}

impl GuiRequests {
    /// Takes the pending resize request, if any.
    pub fn take_requested_size(&self) -> Option<GuiSize> {
        match self.requested_size.swap(0, Ordering::AcqRel) {
            0 => None,
            packed => Some(GuiSize::unpack_from_u64(packed)),
        }
    }
}

thread_local! {
    /// True while this thread is inside the plugin's `process` (or another audio-thread call).
    ///
    /// Why: this host runs the audio calls on the thread that created the instance. Without this
    /// flag, nice-plug would believe `process` runs on the main thread and execute main-thread
    /// tasks inline, inside `process`, where allocating aborts (`assert_process_allocs`).
    static IN_AUDIO_CALL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with this thread marked as the audio thread, restoring the previous mark afterwards
/// (also on unwind).
pub(crate) fn as_audio_thread<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the previous mark when dropped, so a panic cannot leave the thread marked.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_AUDIO_CALL.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(IN_AUDIO_CALL.with(|flag| flag.replace(true)));
    f()
}

/// Host state that any thread may touch (`[thread-safe]` callbacks land here).
pub struct HostShared {
    /// The plugin's extensions, set once during `init`.
    pub plugin_extensions: OnceLock<PluginExtensions>,
    /// The plugin called `request_callback`: the main loop must call `on_main_thread`. nice-plug
    /// parks GUI/param/state tasks until that happens.
    pub callback_requested: AtomicBool,
    /// The plugin called `request_restart` (deactivate + reactivate wanted).
    pub restart_requested: AtomicBool,
    /// The plugin called `request_process` (it wants to be activated/processed).
    pub process_requested: AtomicBool,
    /// `params.request_flush`: the plugin has parameter output to deliver while not processing.
    pub params_flush_requested: AtomicBool,
    /// The thread that created the instance: CLAP's main thread for this host.
    pub main_thread: ThreadId,
    /// Everything logged through `clap.log`, for tests to inspect.
    pub log: Mutex<Vec<LogRecord>>,
    /// Requests made through the host gui extension.
    pub gui: GuiRequests,
}

impl HostShared {
    /// Creates the shared state; must be called on the thread that will act as main thread.
    pub fn new() -> Self {
        Self {
            plugin_extensions: OnceLock::new(),
            callback_requested: AtomicBool::new(false),
            restart_requested: AtomicBool::new(false),
            process_requested: AtomicBool::new(false),
            params_flush_requested: AtomicBool::new(false),
            main_thread: std::thread::current().id(),
            log: Mutex::new(Vec::new()),
            gui: GuiRequests::default(),
        }
    }

    /// The plugin's extensions (all `None` before `init` finished).
    pub fn extensions(&self) -> PluginExtensions {
        self.plugin_extensions.get().copied().unwrap_or_default()
    }
}

impl Default for HostShared {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> SharedHandler<'a> for HostShared {
    fn initializing(&self, instance: InitializingPluginHandle<'a>) {
        let _ = self.plugin_extensions.set(PluginExtensions {
            params: instance.get_extension(),
            state: instance.get_extension(),
            audio_ports: instance.get_extension(),
            audio_ports_config: instance.get_extension(),
            note_ports: instance.get_extension(),
            latency: instance.get_extension(),
            gui: instance.get_extension(),
        });
    }

    fn request_restart(&self) {
        self.restart_requested.store(true, Ordering::Release);
    }

    fn request_process(&self) {
        self.process_requested.store(true, Ordering::Release);
    }

    fn request_callback(&self) {
        self.callback_requested.store(true, Ordering::Release);
    }
}

impl HostLogImpl for HostShared {
    fn log(&self, severity: LogSeverity, message: &str) {
        eprintln!("[echoic {severity}] {message}");
        let mut log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.push(LogRecord {
            severity,
            message: message.to_owned(),
        });
    }
}

impl HostThreadCheckImpl for HostShared {
    fn is_main_thread(&self) -> bool {
        !IN_AUDIO_CALL.with(Cell::get) && std::thread::current().id() == self.main_thread
    }

    fn is_audio_thread(&self) -> bool {
        IN_AUDIO_CALL.with(Cell::get)
    }
}

impl HostParamsImplShared for HostShared {
    fn request_flush(&self) {
        self.params_flush_requested.store(true, Ordering::Release);
    }
}

impl HostGuiImpl for HostShared {
    fn resize_hints_changed(&self) {
        self.gui.resize_hints_changed.store(true, Ordering::Release);
    }

    fn request_resize(&self, new_size: GuiSize) -> Result<(), HostError> {
        // Accepted: a window host applies it from its main loop (take_requested_size).
        self.gui
            .requested_size
            .store(new_size.pack_to_u64(), Ordering::Release);
        Ok(())
    }

    fn request_show(&self) -> Result<(), HostError> {
        self.gui.show_requested.store(true, Ordering::Release);
        Ok(())
    }

    fn request_hide(&self) -> Result<(), HostError> {
        self.gui.hide_requested.store(true, Ordering::Release);
        Ok(())
    }

    fn closed(&self, was_destroyed: bool) {
        self.gui.closed.store(true, Ordering::Release);
        if was_destroyed {
            self.gui.destroyed.store(true, Ordering::Release);
        }
    }
}

/// What the plugin told the host on the main thread since the last [`MainThreadNotices::take`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MainThreadNotices {
    /// `state.mark_dirty`: the plugin's state changed since the last save or load.
    pub state_dirty: bool,
    /// `latency.changed`: the host must re-read the latency (CLAP allows it only in `activate`).
    pub latency_changed: bool,
    /// Union of the `params.rescan` flags received (values, info, text, all).
    pub params_rescan: u32,
    /// Number of `params.clear` calls (a parameter's automation/modulation was invalidated).
    pub params_cleared: u32,
    /// Union of the `audio_ports.rescan` flags received.
    pub audio_ports_rescan: u32,
    /// `audio_ports_config.rescan`: the list of configurations changed.
    pub audio_ports_config_rescan: bool,
    /// Union of the `note_ports.rescan` flags received.
    pub note_ports_rescan: u32,
}

/// Host state that only the main thread touches (`[main-thread]` callbacks land here).
pub struct HostMainThread<'a> {
    /// The shared half, for callbacks that need both.
    pub shared: &'a HostShared,
    /// Notices recorded since last taken. A `Cell` because clack hands out `&self` only.
    pub notices: Cell<MainThreadNotices>,
}

impl<'a> HostMainThread<'a> {
    /// Creates the main-thread half over its shared half.
    pub fn new(shared: &'a HostShared) -> Self {
        Self {
            shared,
            notices: Cell::new(MainThreadNotices::default()),
        }
    }

    /// Updates the notices with `f`.
    fn note(&self, f: impl FnOnce(&mut MainThreadNotices)) {
        let mut notices = self.notices.get();
        f(&mut notices);
        self.notices.set(notices);
    }
}

impl<'a> MainThreadHandler<'a> for HostMainThread<'a> {}

impl HostStateImpl for HostMainThread<'_> {
    fn mark_dirty(&self) {
        self.note(|n| n.state_dirty = true);
    }
}

impl HostLatencyImpl for HostMainThread<'_> {
    fn changed(&self) {
        self.note(|n| n.latency_changed = true);
    }
}

impl HostParamsImplMainThread for HostMainThread<'_> {
    fn rescan(&self, flags: ParamRescanFlags) {
        self.note(|n| n.params_rescan |= flags.bits());
    }

    fn clear(&self, _param_id: ClapId, _flags: ParamClearFlags) {
        self.note(|n| n.params_cleared += 1);
    }
}

impl HostAudioPortsImpl for HostMainThread<'_> {
    fn is_rescan_flag_supported(&self, _flag: AudioPortRescanFlags) -> bool {
        // The host re-reads the ports at every activation, so any rescan is fine.
        true
    }

    fn rescan(&self, flags: AudioPortRescanFlags) {
        self.note(|n| n.audio_ports_rescan |= flags.bits());
    }
}

impl HostAudioPortsConfigImpl for HostMainThread<'_> {
    fn rescan(&self) {
        self.note(|n| n.audio_ports_config_rescan = true);
    }
}

impl HostNotePortsImpl for HostMainThread<'_> {
    fn supported_dialects(&self) -> NoteDialects {
        // The plugin's output is read as MIDI 1.0 (CC); CLAP note events are accepted too.
        NoteDialects::CLAP | NoteDialects::MIDI
    }

    fn rescan(&self, flags: NotePortRescanFlags) {
        self.note(|n| n.note_ports_rescan |= flags.bits());
    }
}
