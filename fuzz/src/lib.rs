//! What the fuzz targets and their seed writer share: the plugin instantiated in-process through
//! its real CLAP entry, and a small valid model file.
//!
//! Targets (run with `cargo xtask fuzz`, or `cargo fuzz run <target>` from the workspace root):
//! - `model_loader`: any bytes as a model file ([`Listener::from_bytes`]); a file that loads
//!   must also embed without panicking.
//! - `state_loader`: any bytes as saved plugin state, through the plugin's `clap.state.load`
//!   while it is active; the plugin must keep passing audio bit for bit, save its state, and a
//!   state it saved must load again.

use echoic_core::dilated::DilatedSpec;
use echoic_core::listener::{
    format, Activation, Features, Level, ListenerMetadata, ModelConfig, NamedTensor, Normalisation,
    Provenance, FORMAT_VERSION,
};
use echoic_core::pca::Pca;
use echoic_core::worker::ListenSettings;
use echoic_host_tests::clack_host::entry::EntryDescriptor;
use echoic_host_tests::clack_host::prelude::PluginEntry;
use echoic_host_tests::{AudioConfig, EchoicHost};

/// Sample rate the state target runs the plugin at.
pub const SAMPLE_RATE: f64 = 48_000.0;

/// Frames per block the state target processes after each load.
pub const BLOCK: usize = 64;

/// The plugin's CLAP entry, from the `echoic` library linked into this binary (not a bundle
/// loaded from disk), so that the fuzzer's coverage instrumentation reaches the plugin's code.
///
/// Allocates once (clack caches the entry); the plugin's `init` runs on first use.
pub fn in_process_entry() -> PluginEntry {
    // SAFETY: `clap_entry` is a `clap_plugin_entry` from the `clap-sys` crate that nice-plug
    // links, which has the layout of clack's `EntryDescriptor` (the same C struct); it lives for
    // the whole process, as the `'static` borrow requires.
    let descriptor: &'static EntryDescriptor =
        unsafe { &*(std::ptr::addr_of!(echoic::clap_entry).cast::<EntryDescriptor>()) };
    // SAFETY: the descriptor is a valid CLAP entry (see above); the path is only informative.
    unsafe { PluginEntry::load_from_raw(descriptor, c"/proc/self/exe") }
        .expect("the plugin's own CLAP entry initialises")
}

/// An Echoic instance in the test host, active in stereo at [`SAMPLE_RATE`] with blocks of up
/// to [`BLOCK`] frames.
///
/// # Panics
///
/// If the plugin cannot be instantiated or activated: the fuzz target cannot run then.
pub fn active_host() -> EchoicHost {
    let mut host = EchoicHost::from_entry(&in_process_entry()).expect("Echoic instantiates");
    host.activate(AudioConfig::new(SAMPLE_RATE, BLOCK as u32, 2))
        .expect("Echoic activates");
    host
}

/// A deterministic stereo block: a chord plus a little DC, different in each channel, so that a
/// passthrough that swaps, zeroes or scales the channels is caught.
pub fn test_block() -> [Vec<f32>; 2] {
    let sample = |i: usize, f: f32, dc: f32| {
        let t = i as f32 / SAMPLE_RATE as f32;
        0.3 * (std::f32::consts::TAU * f * t).sin()
            + 0.1 * (std::f32::consts::TAU * 1.5 * f * t).sin()
            + dc
    };
    [
        (0..BLOCK).map(|i| sample(i, 220.0, 0.01)).collect(),
        (0..BLOCK).map(|i| sample(i, 330.0, -0.02)).collect(),
    ]
}

/// A small, valid model file: 6 bands, 3 steps, encoder 4→5, decoder 3, deterministic weights,
/// with or without principal axes. Seeds the model loader's corpus: a fuzzer starting from a
/// file the loader accepts reaches the checks past the header.
///
/// Allocates.
pub fn tiny_model(with_pca: bool) -> Vec<u8> {
    let cfg = ModelConfig {
        n_bands: 6,
        steps: 3,
        encoder: vec![4, 5],
        decoder: vec![3],
        activation: Activation::Tanh,
    };
    let tensors: Vec<NamedTensor> = cfg
        .tensor_shapes()
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let count: usize = shape.iter().product();
            let data = (0..count)
                .map(|i| (((i * 7 + k * 13) % 17) as f32 - 8.0) / 16.0)
                .collect();
            NamedTensor { name, shape, data }
        })
        .collect();
    let settings = ListenSettings {
        n_bands: cfg.n_bands,
        spec: DilatedSpec {
            steps: cfg.steps,
            ..Default::default()
        },
        ..ListenSettings::default()
    };
    let latent = cfg.latent_dim();
    let pca = with_pca.then(|| Pca {
        mean: vec![0.1; latent],
        axes: vec![
            (0..latent)
                .map(|i| if i == 0 { 1.0 } else { 0.0 })
                .collect(),
            (0..latent)
                .map(|i| if i == 1 { 1.0 } else { 0.0 })
                .collect(),
        ],
        explained_variance: vec![0.5, 0.25],
    });
    let meta = ListenerMetadata {
        format_version: FORMAT_VERSION,
        name: "fuzz-seed".into(),
        features: Features::from_settings(&settings),
        normalisation: Normalisation {
            offset: (0..cfg.n_bands).map(|b| -80.0 + b as f32).collect(),
            scale: vec![1.0 / 60.0; cfg.n_bands],
            // The newest format's level mode, so that the fuzzers reach its code too.
            level: Level::Relative,
        },
        model: cfg,
        pca,
        provenance: Provenance::default(),
        metrics: Default::default(),
    };
    format::encode(&meta, &tensors).expect("the seed model is valid")
}
