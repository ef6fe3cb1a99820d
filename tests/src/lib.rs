//! A small but real CLAP host for testing the bundled Echoic plugin.
//!
//! It loads `Echoic.clap` through its `clap_entry` (as a DAW does, see [`bundle`]), instantiates
//! `org.echoic.echoic`, and drives it through [`EchoicHost`]: parameters, state, audio port
//! configuration (mono or stereo), activation at any sample rate and block size, processing of
//! f32 audio with collection of the plugin's MIDI output, deactivation.
//!
//! Two host duties matter for nice-plug plugins in particular, and are handled here:
//! - the host `clap.gui` extension is provided ([`handlers::EchoicHostHandlers`]), because
//!   nice-plug's `gui.create` unwraps it;
//! - `request_callback` is serviced: the host calls the plugin's `on_main_thread` before and
//!   after every call into it ([`EchoicHost::pump_main_thread`]).
//!
//! The bundle is built with nice-plug's `assert_process_allocs`: an allocation inside the
//! plugin's `process` aborts the whole test process ("memory allocation of N bytes failed").
//! Allocations on the host side of the call (this crate) are not affected, since the plugin
//! library has its own allocator.
//!
//! [`signal::test_signal`] provides deterministic test audio.

#![warn(missing_docs)]

pub mod bundle;
pub mod error;
pub mod gui;
pub mod handlers;
pub mod host;
pub mod signal;
pub mod state;

pub use bundle::{bundle_dir, clap_bundle_path, load_default_entry, load_entry, PLUGIN_ID};
pub use error::HostError;
pub use handlers::{LogRecord, MainThreadNotices, PluginExtensions};
pub use host::{
    AudioConfig, EchoicHost, MidiMessage, ParamInfo, PortConfig, ProcessedSignal, TimedParam,
    OUTPUT_POISON,
};
pub use signal::{passed_through, recording, resampled, test_signal};
pub use state::{state_bytes, state_document, state_frame, with_model_path};

/// Re-exported so that users (e.g. a future editor-embedding host) name the same versions.
pub use clack_extensions;
/// Re-exported for the same reason as [`clack_extensions`].
pub use clack_host;
