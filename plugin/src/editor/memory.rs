//! The echoic memory panel: the dilated buffer the listener sees right now, `steps × bands`,
//! drawn so that the dilation shows: each step is as wide as the stretch of time it covers, so
//! the newest steps are thin slivers at the right and the oldest spread over most of the width.

use super::history::History;
use super::plot::{self, FreqAxis};
use super::scroll::{X_LABELS, Y_LABELS};
use super::theme;
use egui::{pos2, Align2, Color32, Rect, Stroke, Ui};

/// The panel; returns the plot rect.
pub fn show(ui: &Ui, rect: Rect, history: &mut History, axis: &FreqAxis, changed: bool) -> Rect {
    let state = &history.state;
    let spec = state.spec();
    let steps = state.steps;
    let hop = state.settings.hop_seconds as f32;
    // Widths: the frames each carried row covers (row 0 = oldest step).
    let widths: Vec<usize> = (0..steps)
        .map(|row| {
            let (first, last) = spec.covered(state.step_of_row(row));
            last + 1 - first
        })
        .collect();
    let total: usize = widths.iter().sum();
    let note = if steps == 0 {
        "waiting for the first buffer".to_owned()
    } else {
        format!("{steps} steps · dilation {}×", spec.dilation)
    };
    let content = plot::panel(ui, rect, "Echoic memory", &note);
    let plot_rect = Rect::from_min_max(
        pos2(content.left() + Y_LABELS, content.top() + 4.0),
        pos2(content.right() - 6.0, content.bottom() - X_LABELS),
    );
    if steps == 0 || total == 0 || state.n_bands != axis.bands() {
        ui.painter().rect_filled(plot_rect, 0.0, theme::PLOT);
        return plot_rect;
    }
    let warming_up = state.warming_up;
    let (texture, size) = history.memory_texture(ui.ctx(), changed);
    let texture = texture.id();
    let mut x = plot_rect.left();
    let mut segments = Vec::with_capacity(steps);
    let mut edges = Vec::with_capacity(steps + 1);
    edges.push(x);
    for (row, &w) in widths.iter().enumerate() {
        let x1 = x + w as f32 / total as f32 * plot_rect.width();
        segments.push((row as f32..row as f32 + 1.0, x..x1));
        edges.push(x1);
        x = x1;
    }
    plot::band_image(ui, plot_rect, texture, size, axis, &segments);
    let painter = ui.painter();
    // Step boundaries, and the look-back of each boundary under the axis where there is room.
    let mut last_label_x = f32::NEG_INFINITY;
    for (i, &ex) in edges.iter().enumerate() {
        painter.line_segment(
            [pos2(ex, plot_rect.top()), pos2(ex, plot_rect.bottom())],
            Stroke::new(1.0, Color32::from_black_alpha(160)),
        );
        let frames_back: usize = widths[i.min(steps)..].iter().sum();
        let label = if frames_back == 0 {
            "now".to_owned()
        } else {
            format!("−{:.2} s", frames_back as f32 * hop)
        };
        let anchor = if i == 0 {
            Align2::LEFT_TOP
        } else if frames_back == 0 {
            Align2::RIGHT_TOP
        } else {
            Align2::CENTER_TOP
        };
        let far_enough = ex - last_label_x > 46.0 || frames_back == 0;
        if far_enough && (frames_back == 0 || plot_rect.right() - ex > 52.0) {
            painter.line_segment(
                [
                    pos2(ex, plot_rect.bottom()),
                    pos2(ex, plot_rect.bottom() + 3.0),
                ],
                Stroke::new(1.0, theme::TEXT_DIM),
            );
            painter.text(
                pos2(ex, plot_rect.bottom() + 3.0),
                anchor,
                label,
                theme::small(),
                theme::TEXT_DIM,
            );
            last_label_x = ex;
        }
    }
    if warming_up {
        painter.text(
            pos2(plot_rect.right() - 4.0, plot_rect.top() + 3.0),
            Align2::RIGHT_TOP,
            "warming up",
            theme::small(),
            theme::WARN,
        );
    }
    axis.draw_labels(ui, plot_rect);
    plot_rect
}
