//! The status bar (what is listening, with which model, how fast) and the banner that explains
//! anything wrong: settings the model refuses, a model that failed to load, a missing file.

use super::stats::FrameStats;
use super::theme;
use crate::EchoicShared;
use echoic_core::display::{ModelInfo, ModelSource};
use egui::{pos2, Align2, Color32, CornerRadius, FontFamily, FontId, Rect, Ui};
use nice_plug::prelude::Plugin;
use std::sync::atomic::Ordering;

/// One thing the banner reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// The text.
    pub text: String,
    /// An error (red) rather than a note (amber).
    pub error: bool,
}

/// Everything wrong right now, most important first.
pub fn notices(
    shared: &EchoicShared,
    model: &ModelInfo,
    chooser_error: Option<&str>,
    state_notes: &[String],
    settings_adjustment: Option<String>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    if let Some(adjustment) = settings_adjustment {
        out.push(Notice {
            text: format!("Listening settings adjusted: {adjustment}"),
            error: false,
        });
    }
    if let Some(e) = shared.worker.error.try_lock().ok().and_then(|e| e.clone()) {
        out.push(Notice {
            text: format!("Settings refused: {e}"),
            error: true,
        });
    }
    if let Some(e) = shared.listener.not_in_use() {
        out.push(Notice {
            text: format!("Model not in use: {e}"),
            error: true,
        });
    }
    if let Some(e) = shared.listener.axes_unusable() {
        out.push(Notice {
            text: format!("Map and axis outputs off: {e}"),
            error: true,
        });
    }
    if let Some(e) = chooser_error {
        out.push(Notice {
            text: e.to_owned(),
            error: true,
        });
    }
    if let Some(note) = &model.note {
        out.push(Notice {
            text: note.clone(),
            error: false,
        });
    }
    if let Some(first) = state_notes.first() {
        let more = match state_notes.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more)"),
        };
        out.push(Notice {
            text: format!("The loaded state was repaired: {first}{more}"),
            error: false,
        });
    }
    out
}

/// Draws a status chip: a coloured dot and a text; returns the x after it.
fn chip(ui: &Ui, x: f32, y: f32, dot: Option<Color32>, text: &str, colour: Color32) -> f32 {
    let painter = ui.painter();
    let mut x = x;
    if let Some(dot) = dot {
        painter.circle_filled(pos2(x + 4.0, y), 3.5, dot);
        x += 12.0;
    }
    let r = painter.text(
        pos2(x, y),
        Align2::LEFT_CENTER,
        text,
        theme::small(),
        colour,
    );
    r.right() + 16.0
}

/// The status bar.
pub fn header(ui: &Ui, rect: Rect, shared: &EchoicShared, model: &ModelInfo, stats: &FrameStats) {
    let painter = ui.painter();
    painter.rect_filled(rect, CornerRadius::same(theme::RADIUS), theme::PANEL);
    let y = rect.center().y;
    let title = painter.text(
        pos2(rect.left() + 12.0, y),
        Align2::LEFT_CENTER,
        "ECHOIC",
        FontId::new(19.0, FontFamily::Proportional),
        theme::ACCENT,
    );
    let mut x = title.right() + 6.0;
    x = chip(
        ui,
        x,
        y + 1.0,
        None,
        &format!("v{}", crate::Echoic::VERSION),
        theme::TEXT_DIM,
    );
    let sample_rate = f32::from_bits(shared.sample_rate_bits.load(Ordering::Relaxed));
    let worker = &shared.worker;
    if sample_rate > 0.0 {
        x = chip(
            ui,
            x,
            y,
            Some(theme::GOOD),
            &format!("listening · {:.2} kHz", sample_rate / 1000.0),
            theme::TEXT,
        );
    } else {
        x = chip(
            ui,
            x,
            y,
            Some(theme::TEXT_DIM),
            "inactive: the host is not playing audio",
            theme::TEXT_DIM,
        );
    }
    let model_text = if model.name.is_empty() {
        "no model".to_owned()
    } else {
        let source = match &model.source {
            ModelSource::BuiltIn => "built-in".to_owned(),
            ModelSource::File(path) => std::path::Path::new(path)
                .file_name()
                .map_or_else(|| path.clone(), |f| f.to_string_lossy().into_owned()),
        };
        format!(
            "model {} · {} · {} dims · {source}",
            model.name,
            model.device.to_uppercase(),
            model.latent_dim
        )
    };
    let refused = shared.listener.refused();
    x = chip(
        ui,
        x,
        y,
        Some(if refused || model.name.is_empty() {
            theme::ERROR
        } else {
            theme::ACCENT
        }),
        &model_text,
        theme::TEXT,
    );
    if sample_rate > 0.0 {
        let inference_us = shared.listener.inference_us();
        x = chip(
            ui,
            x,
            y,
            None,
            &format!("inference {:.2} ms/embedding", inference_us / 1000.0),
            theme::TEXT_DIM,
        );
        let dropped = worker.frames_dropped.load(Ordering::Relaxed);
        x = chip(
            ui,
            x,
            y,
            None,
            &format!("dropped {dropped} frames"),
            if dropped > 0 {
                theme::WARN
            } else {
                theme::TEXT_DIM
            },
        );
        if worker.warming_up.load(Ordering::Relaxed) {
            chip(ui, x, y, Some(theme::WARN), "warming up", theme::WARN);
        }
    }
    let summary = stats.summary();
    painter.text(
        pos2(rect.right() - 12.0, y),
        Align2::RIGHT_CENTER,
        format!("{:.0} fps · ui {:.1} ms", summary.fps, summary.ui_ms_mean),
        theme::mono(),
        theme::TEXT_DIM,
    );
}

/// The banner under the status bar; draws nothing when all is well.
pub fn banner(ui: &Ui, rect: Rect, notices: &[Notice]) {
    let painter = ui.painter();
    for (i, notice) in notices.iter().enumerate() {
        let line = Rect::from_min_size(
            pos2(rect.left(), rect.top() + i as f32 * 22.0),
            egui::vec2(rect.width(), 20.0),
        );
        let colour = if notice.error {
            theme::ERROR
        } else {
            theme::WARN
        };
        painter.rect_filled(line, CornerRadius::same(4), colour.gamma_multiply(0.16));
        painter.rect_filled(
            Rect::from_min_size(line.min, egui::vec2(3.0, line.height())),
            CornerRadius::same(1),
            colour,
        );
        let galley = painter.layout(
            notice.text.clone(),
            theme::small(),
            colour,
            line.width() - 20.0,
        );
        let text_pos = pos2(
            line.left() + 10.0,
            line.center().y - galley.size().y.min(14.0) * 0.5,
        );
        painter
            .with_clip_rect(line)
            .galley(text_pos, galley, colour);
    }
}
