//! The model chooser's back end: finding `.safetensors` files without typing a path (hosts on
//! Linux may not pass keyboard input to a plugin window), and loading one off the audio thread.
//!
//! A model is loaded on a short-lived thread started by the editor, so a large file never stalls
//! the window. A good model is handed to the worker through the [`EditorLink`] (the worker
//! installs it between two hops) and its path is saved in the plugin state; a bad one leaves the
//! model in use untouched and shows why.

use echoic_core::display::{EditorLink, ModelInfo, ModelSource};
use echoic_core::listener::Listener;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::time::Instant;

/// Environment variable naming more folders to look in (separated by `:`), e.g. for tests.
pub const MODELS_DIR_ENV: &str = "ECHOIC_MODELS_DIR";

/// One file the chooser offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    /// Where it is.
    pub path: PathBuf,
    /// What the list shows: the file name without the extension.
    pub label: String,
}

/// The folders searched, in order: `$XDG_DATA_HOME/echoic/models` (by default
/// `~/.local/share/echoic/models`), the folder holding the plugin (next to `Echoic.clap`, next to
/// the `Echoic.vst3` bundle, or next to the standalone binary), and `$ECHOIC_MODELS_DIR`.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    if let Some(data_home) = data_home {
        dirs.push(data_home.join("echoic").join("models"));
    }
    if let Some(library) = own_library_path() {
        if let Some(dir) = library.parent() {
            dirs.push(dir.to_path_buf());
        }
        // Inside a VST3 bundle (Echoic.vst3/Contents/x86_64-linux/Echoic.so): next to the bundle.
        if let Some(bundle) = library
            .ancestors()
            .find(|a| a.extension().is_some_and(|e| e == "vst3"))
        {
            if let Some(dir) = bundle.parent() {
                dirs.push(dir.to_path_buf());
            }
        }
    }
    if let Some(extra) = std::env::var_os(MODELS_DIR_ENV) {
        dirs.extend(std::env::split_paths(&extra).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.dedup();
    dirs
}

/// The `.safetensors` files in `dirs`, sorted by name within each folder.
pub fn scan(dirs: &[PathBuf]) -> Vec<ModelEntry> {
    let mut entries = Vec::new();
    for dir in dirs {
        let Ok(read) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<ModelEntry> = read
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
            })
            .map(|path| ModelEntry {
                label: path
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into_owned()),
                path,
            })
            .collect();
        found.sort_by(|a, b| a.label.cmp(&b.label));
        for entry in found {
            if !entries.iter().any(|e: &ModelEntry| e.path == entry.path) {
                entries.push(entry);
            }
        }
    }
    entries
}

/// The file the running code was loaded from (the plugin library or the standalone binary),
/// found through `/proc/self/maps` by the address of this very function.
#[cfg(target_os = "linux")]
fn own_library_path() -> Option<PathBuf> {
    let address = own_library_path as *const () as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let (start, end) = (
            usize::from_str_radix(start, 16).ok()?,
            usize::from_str_radix(end, 16).ok()?,
        );
        if !(start..end).contains(&address) {
            return None;
        }
        let path = fields.nth(4)?;
        path.starts_with('/').then(|| PathBuf::from(path))
    })
}

/// Elsewhere, the executable's path (right for the standalone).
#[cfg(not(target_os = "linux"))]
fn own_library_path() -> Option<PathBuf> {
    std::env::current_exe().ok()
}

/// A load in progress.
struct Loading {
    /// What is being loaded (`None`: the built-in model).
    path: Option<PathBuf>,
    /// The loading thread's answer.
    result: Receiver<Result<Listener, String>>,
}

/// What a finished load asks the editor to do.
pub enum LoadOutcome {
    /// The model is handed to the worker; save `path` in the state (`None`: built-in) and, if
    /// the parameters do not match the model, adopt the model's listening settings.
    Loaded {
        /// The chosen file, or `None` for the built-in model.
        path: Option<String>,
        /// The listening settings the model was trained with.
        settings: echoic_core::worker::ListenSettings,
    },
}

/// The chooser's state between frames.
pub struct ModelChooser {
    /// The folders searched.
    pub dirs: Vec<PathBuf>,
    /// The files found.
    pub entries: Vec<ModelEntry>,
    /// When the folders were last read; they are re-read every few seconds while the editor is
    /// open, so a file copied in shows up without a click.
    scanned: Option<Instant>,
    /// A load in progress.
    loading: Option<Loading>,
    /// Why the last chosen model could not be used; shown until the next choice.
    pub error: Option<String>,
}

impl Default for ModelChooser {
    fn default() -> Self {
        Self {
            dirs: search_dirs(),
            entries: Vec::new(),
            scanned: None,
            loading: None,
            error: None,
        }
    }
}

impl ModelChooser {
    /// Re-reads the folders if they were last read more than `seconds` ago.
    pub fn rescan_every(&mut self, seconds: f32) {
        if self
            .scanned
            .is_none_or(|t| t.elapsed().as_secs_f32() >= seconds)
        {
            self.rescan();
        }
    }

    /// Re-reads the folders now.
    pub fn rescan(&mut self) {
        self.entries = scan(&self.dirs);
        self.scanned = Some(Instant::now());
    }

    /// Whether a load is running, and of what (`Some(None)`: the built-in model).
    pub fn loading(&self) -> Option<Option<&Path>> {
        self.loading.as_ref().map(|l| l.path.as_deref())
    }

    /// Starts loading `path` (`None`: the built-in model) on a helper thread.
    pub fn choose(&mut self, path: Option<PathBuf>) {
        let (tx, rx) = channel();
        let thread_path = path.clone();
        let spawned = std::thread::Builder::new()
            .name("echoic-model-load".into())
            .spawn(move || {
                let result = match &thread_path {
                    Some(p) => Listener::load(p).map_err(|e| e.to_string()),
                    None => Listener::from_bytes(crate::DEFAULT_MODEL).map_err(|e| e.to_string()),
                };
                let _ = tx.send(result);
            });
        match spawned {
            Ok(_) => {
                self.error = None;
                self.loading = Some(Loading { path, result: rx });
            }
            Err(e) => self.error = Some(format!("could not start loading: {e}")),
        }
    }

    /// Checks on a load in progress: a good model goes to the worker through `link`, a bad one
    /// leaves an error.
    pub fn poll(&mut self, link: &EditorLink) -> Option<LoadOutcome> {
        let loading = self.loading.as_ref()?;
        let result = match loading.result.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Disconnected) => Err("the loading thread stopped".to_owned()),
        };
        let loading = self.loading.take()?;
        let shown = loading.path.as_ref().map_or_else(
            || "the built-in model".to_owned(),
            |p| p.display().to_string(),
        );
        match result {
            Ok(listener) => {
                let path = loading.path.map(|p| p.to_string_lossy().into_owned());
                let source = path.clone().map_or(ModelSource::BuiltIn, ModelSource::File);
                let info = ModelInfo::of(&listener, source);
                let settings = listener.metadata().features.to_settings();
                link.offer_model(listener, info);
                Some(LoadOutcome::Loaded { path, settings })
            }
            Err(error) => {
                self.error = Some(format!(
                    "{shown} cannot be used: {error}. The previous model stays in use."
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_safetensors_files_and_our_own_library() {
        let dir = std::env::temp_dir().join(format!("echoic-models-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("b.safetensors"), b"x").unwrap();
        std::fs::write(dir.join("a.SafeTensors"), b"x").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();
        let found = scan(&[dir.clone(), dir.join("missing")]);
        assert_eq!(
            found.iter().map(|e| e.label.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        #[cfg(target_os = "linux")]
        assert!(own_library_path().is_some_and(|p| p.is_file()));
    }
}
