//! The one error type of the test host.

use std::fmt;

/// Everything that can go wrong between this host and the plugin.
///
/// Each variant says which step failed, so that a failing test names the CLAP call that refused
/// rather than a generic "plugin error".
#[derive(Debug)]
pub enum HostError {
    /// The bundle's entry point could not be loaded or initialised.
    Load(String),
    /// The entry has no plugin with the requested id, or `create_plugin`/`init` failed.
    Instantiate(String),
    /// The plugin lacks an extension this operation needs (the name is the CLAP extension id).
    MissingExtension(&'static str),
    /// No audio port configuration of the plugin has the requested channel count.
    UnsupportedChannels(usize),
    /// The plugin accepted the port configuration but its audio ports say otherwise.
    PortMismatch(String),
    /// `activate` was called on an active plugin, or an audio call on an inactive one.
    WrongState(&'static str),
    /// The plugin's `activate` failed.
    Activate(String),
    /// The caller's buffers do not fit the activation (channel count, block length).
    InvalidBuffers(String),
    /// The plugin's `process` returned `CLAP_PROCESS_ERROR` or could not start processing.
    Process(String),
    /// `state.save` returned false.
    StateSave,
    /// `state.load` returned false: the plugin rejected the bytes.
    StateLoad,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(why) => write!(f, "could not load the CLAP bundle: {why}"),
            Self::Instantiate(why) => write!(f, "could not instantiate the plugin: {why}"),
            Self::MissingExtension(id) => write!(f, "the plugin does not provide {id}"),
            Self::UnsupportedChannels(n) => {
                write!(
                    f,
                    "the plugin has no audio port configuration with {n} in / {n} out"
                )
            }
            Self::PortMismatch(why) => write!(f, "audio ports disagree with the selection: {why}"),
            Self::WrongState(why) => write!(f, "wrong plugin state: {why}"),
            Self::Activate(why) => write!(f, "activation failed: {why}"),
            Self::InvalidBuffers(why) => write!(f, "invalid buffers: {why}"),
            Self::Process(why) => write!(f, "processing failed: {why}"),
            Self::StateSave => write!(f, "the plugin failed to save its state"),
            Self::StateLoad => write!(f, "the plugin rejected the state"),
        }
    }
}

impl std::error::Error for HostError {}
