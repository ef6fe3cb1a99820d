//! Finding the bundled `Echoic.clap` and loading its entry point.

use crate::error::HostError;
use clack_host::prelude::PluginEntry;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The CLAP id the plugin exports (`ClapPlugin::CLAP_ID` in `plugin/src/lib.rs`).
pub const PLUGIN_ID: &CStr = c"org.echoic.echoic";

/// Environment variable that overrides where the bundles are looked for.
pub const BUNDLE_DIR_ENV: &str = "ECHOIC_BUNDLE_DIR";

/// File name of the CLAP bundle that `cargo xtask bundle echoic` writes (a single `.so` on Linux).
pub const CLAP_BUNDLE_NAME: &str = "Echoic.clap";

/// The folder holding the bundles: `$ECHOIC_BUNDLE_DIR` if set, else `<workspace>/target/bundled`.
///
/// The workspace root is the parent of this crate's manifest folder, fixed at compile time, so the
/// tests find the bundle whatever the current directory is.
pub fn bundle_dir() -> PathBuf {
    match std::env::var_os(BUNDLE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join("target").join("bundled"),
    }
}

/// The workspace root: the parent of `tests/`.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Path of `Echoic.clap`.
///
/// # Panics
///
/// If the file does not exist, with a message saying how to build it.
pub fn clap_bundle_path() -> PathBuf {
    let path = bundle_dir().join(CLAP_BUNDLE_NAME);
    assert!(
        path.is_file(),
        "the CLAP bundle {} does not exist (looked in ${BUNDLE_DIR_ENV} or <workspace>/target/bundled): \
         run `cargo xtask bundle echoic` first",
        path.display()
    );
    path
}

/// Entries loaded so far, by path. Never emptied, so a bundle is never unloaded while the test
/// process runs.
///
/// Why: unloading a Rust `cdylib` that has registered thread-local destructors (nice-plug, egui)
/// can crash at thread exit; a real host keeps its plugin libraries loaded as well.
static ENTRIES: OnceLock<Mutex<Vec<(PathBuf, PluginEntry)>>> = OnceLock::new();

/// Loads (once per process) and returns the entry point of the CLAP bundle at `path`.
///
/// # Errors
///
/// [`HostError::Load`] if the library cannot be opened or its `clap_entry.init` fails.
pub fn load_entry(path: &Path) -> Result<PluginEntry, HostError> {
    let entries = ENTRIES.get_or_init(|| Mutex::new(Vec::new()));
    let mut entries = entries
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, entry)) = entries.iter().find(|(p, _)| p == path) {
        return Ok(entry.clone());
    }
    // SAFETY: loading a foreign library runs its initialisers; this is the very thing under test,
    // and the library is our own plugin built from this workspace.
    let entry = unsafe { PluginEntry::load(path) }
        .map_err(|e| HostError::Load(format!("{}: {e}", path.display())))?;
    entries.push((path.to_path_buf(), entry.clone()));
    Ok(entry)
}

/// Loads the default bundle ([`clap_bundle_path`]).
///
/// # Panics
///
/// If the bundle is missing (see [`clap_bundle_path`]).
///
/// # Errors
///
/// As [`load_entry`].
pub fn load_default_entry() -> Result<PluginEntry, HostError> {
    load_entry(&clap_bundle_path())
}

/// The ids of every plugin the entry's plugin factory lists.
pub fn plugin_ids(entry: &PluginEntry) -> Vec<String> {
    entry
        .get_plugin_factory()
        .map(|factory| {
            factory
                .plugin_descriptors()
                .filter_map(|d| d.id().map(|id| id.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}
