//! The editor's test probe: with `ECHOIC_EDITOR_PROBE=<file>` in the environment, the editor
//! writes its frame timings, where its panels and buttons are, what is learned and what the
//! status says, as JSON to that file twice a second. The window tests use it to click buttons
//! and to crop screenshots; it is inert otherwise.

use super::EchoicEditor;
use echoic_core::display::ModelSource;
use egui::Rect;
use std::path::PathBuf;
use std::time::Instant;

/// Environment variable naming the file the editor writes its probe to.
pub const PROBE_ENV: &str = "ECHOIC_EDITOR_PROBE";

/// Where the probe goes and when it was last written.
pub struct Probe {
    /// The file named by [`PROBE_ENV`].
    path: PathBuf,
    /// When the probe was last written: at most twice a second, so probing costs the editor
    /// next to nothing.
    written: Option<Instant>,
}

impl Probe {
    /// The probe the environment asks for, if any.
    pub fn from_env() -> Option<Self> {
        std::env::var_os(PROBE_ENV)
            .filter(|p| !p.is_empty())
            .map(|path| Self {
                path: PathBuf::from(path),
                written: None,
            })
    }

    /// Whether it is time to write again; if so, counts this as a write.
    pub fn due(&mut self) -> bool {
        if self
            .written
            .is_some_and(|t| t.elapsed().as_secs_f32() < 0.5)
        {
            return false;
        }
        self.written = Some(Instant::now());
        true
    }

    /// Writes `probe` to the file, atomically (a reader never sees half of it).
    pub fn write(&self, probe: &serde_json::Value) {
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, probe.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

/// What the probe says about `editor` this frame; `screen` in logical points. Allocates.
pub fn json(editor: &EchoicEditor, pixels_per_point: f32, screen: Rect) -> serde_json::Value {
    let px = |r: Rect| {
        [
            r.left() * pixels_per_point,
            r.top() * pixels_per_point,
            r.right() * pixels_per_point,
            r.bottom() * pixels_per_point,
        ]
    };
    let mut rects = serde_json::Map::new();
    for (name, rect) in &editor.rects {
        rects.insert((*name).to_owned(), serde_json::json!(px(*rect)));
    }
    rects.insert(
        "learn".to_owned(),
        serde_json::json!(editor
            .learn
            .rects
            .iter()
            .map(|(l, _)| px(*l))
            .collect::<Vec<_>>()),
    );
    rects.insert(
        "clear".to_owned(),
        serde_json::json!(editor
            .learn
            .rects
            .iter()
            .map(|(_, c)| px(*c))
            .collect::<Vec<_>>()),
    );
    let models: Vec<serde_json::Value> = editor
        .model_rects
        .iter()
        .map(|(name, r)| serde_json::json!([name, px(*r)]))
        .collect();
    let source = match &editor.model.source {
        ModelSource::BuiltIn => None,
        ModelSource::File(path) => Some(path.clone()),
    };
    let learned = &editor.history.state.learned;
    serde_json::json!({
        "stats": editor.stats.summary(),
        "hops": editor.history.hops,
        "screen": px(screen),
        "pixels_per_point": pixels_per_point,
        "rects": rects,
        "learned": learned.iter().map(|m| m.learned).collect::<Vec<_>>(),
        "learned_on_map": learned.iter().map(|m| m.map).collect::<Vec<_>>(),
        "model": editor.model.name,
        "model_file": source,
        "model_note": editor.model.note,
        "model_error": editor.chooser.error,
        "model_list": models,
        "refused": editor.shared.listener.refused(),
        "banner": editor.banner_texts,
        "state_notes": editor
            .params
            .state_notes
            .try_lock()
            .map(|n| n.0.clone())
            .unwrap_or_default(),
    })
}
