//! The two scrolling views: the cochleagram (band levels over time on a log-frequency axis) and
//! the embedding strip (latent dimensions over time).

use super::history::{History, COLUMNS};
use super::plot::{self, FreqAxis};
use super::theme;
use egui::{pos2, Align2, Color32, Rect, Stroke, Ui};

/// Left margin of a plot for its y labels.
pub const Y_LABELS: f32 = 34.0;
/// Bottom margin of a plot for its time labels.
pub const X_LABELS: f32 = 15.0;

/// Maps the history's segments (fractions of the view, 1 = now) onto screen x in `rect`.
fn screen_segments(
    history_segments: Vec<(std::ops::Range<f32>, std::ops::Range<f32>)>,
    rect: Rect,
) -> Vec<(std::ops::Range<f32>, std::ops::Range<f32>)> {
    history_segments
        .into_iter()
        .map(|(texels, f)| {
            (
                texels,
                rect.left() + f.start * rect.width()..rect.left() + f.end * rect.width(),
            )
        })
        .collect()
}

/// Time labels under a scrolling plot spanning `seconds`, one per whole second, "now" at the right.
fn time_labels(ui: &Ui, rect: Rect, seconds: f32) {
    let painter = ui.painter();
    let step = if seconds > 12.0 { 2.0 } else { 1.0 };
    let mut t = 0.0f32;
    while t <= seconds + 1e-3 {
        let x = rect.right() - t / seconds * rect.width();
        painter.line_segment(
            [pos2(x, rect.bottom()), pos2(x, rect.bottom() + 3.0)],
            Stroke::new(1.0, theme::TEXT_DIM),
        );
        let label = if t == 0.0 {
            "now".to_owned()
        } else {
            format!("−{t:.0} s")
        };
        let anchor = if t == 0.0 {
            Align2::RIGHT_TOP
        } else {
            Align2::CENTER_TOP
        };
        painter.text(
            pos2(x, rect.bottom() + 3.0),
            anchor,
            label,
            theme::small(),
            theme::TEXT_DIM,
        );
        t += step;
    }
}

/// Fills the part of a scrolling plot that has no data yet (the data covers the rest, so filling
/// all of it would draw those pixels twice).
fn empty_part(ui: &Ui, rect: Rect, fraction: f32) {
    if fraction > 0.0 {
        let empty = Rect::from_min_max(
            rect.min,
            pos2(rect.left() + fraction * rect.width(), rect.bottom()),
        );
        ui.painter().rect_filled(empty, 0.0, theme::PLOT);
    }
}

/// A vertical colour bar of the level scale to the right of `rect`.
pub fn level_bar(ui: &Ui, rect: Rect) {
    let painter = ui.painter();
    let bar = Rect::from_min_max(
        pos2(rect.right() + 6.0, rect.top()),
        pos2(rect.right() + 14.0, rect.bottom()),
    );
    // One mesh with a colour per vertex row: the GPU interpolates the gradient.
    let n = 32;
    let mut mesh = egui::Mesh::default();
    for i in 0..=n {
        let t = i as f32 / n as f32;
        let colour = theme::level_colour(theme::DB_FLOOR + (theme::DB_TOP - theme::DB_FLOOR) * t);
        let y = bar.bottom() - t * bar.height();
        mesh.colored_vertex(pos2(bar.left(), y), colour);
        mesh.colored_vertex(pos2(bar.right(), y), colour);
        if i > 0 {
            let k = 2 * i as u32;
            mesh.add_triangle(k - 2, k - 1, k);
            mesh.add_triangle(k - 1, k + 1, k);
        }
    }
    painter.add(mesh);
    for db in [
        theme::DB_TOP,
        (theme::DB_TOP + theme::DB_FLOOR) * 0.5,
        theme::DB_FLOOR,
    ] {
        let y = bar.bottom()
            - (db - theme::DB_FLOOR) / (theme::DB_TOP - theme::DB_FLOOR) * bar.height();
        painter.text(
            pos2(bar.right() + 3.0, y),
            Align2::LEFT_CENTER,
            format!("{db:.0} dB"),
            theme::small(),
            theme::TEXT_DIM,
        );
    }
}

/// The cochleagram panel; returns the plot rect (for the test probe).
pub fn cochleagram(
    ui: &Ui,
    rect: Rect,
    history: &mut History,
    axis: &FreqAxis,
    hop_seconds: f32,
) -> Rect {
    let seconds = COLUMNS as f32 * hop_seconds;
    let note = format!("{} ERB-spaced bands · last {seconds:.1} s", axis.bands());
    let content = plot::panel(ui, rect, "Cochleagram", &note);
    let plot_rect = Rect::from_min_max(
        pos2(content.left() + Y_LABELS, content.top() + 4.0),
        pos2(content.right() - 58.0, content.bottom() - X_LABELS),
    );
    empty_part(ui, plot_rect, history.cochleagram.empty_fraction());
    let texture = history.cochleagram.texture(ui.ctx()).id();
    let segments = screen_segments(history.cochleagram.segments(), plot_rect);
    plot::band_image(
        ui,
        plot_rect,
        texture,
        history.cochleagram.size(),
        axis,
        &segments,
    );
    axis.draw_labels(ui, plot_rect);
    time_labels(ui, plot_rect, seconds);
    level_bar(ui, plot_rect);
    plot_rect
}

/// The embedding strip panel; returns the plot rect.
pub fn embedding(ui: &Ui, rect: Rect, history: &mut History, hop_seconds: f32) -> Rect {
    let seconds = COLUMNS as f32 * hop_seconds;
    let dims = history.dims();
    let note = if dims == 0 {
        "no embedding yet".to_owned()
    } else {
        format!("{dims} latent dims · colour = value")
    };
    let content = plot::panel(ui, rect, "Embedding", &note);
    let plot_rect = Rect::from_min_max(
        pos2(content.left() + Y_LABELS, content.top() + 4.0),
        pos2(content.right() - 4.0, content.bottom() - X_LABELS),
    );
    let painter = ui.painter();
    empty_part(
        ui,
        plot_rect,
        if dims > 0 {
            history.embedding.empty_fraction()
        } else {
            1.0
        },
    );
    if dims > 0 {
        let [cols, rows] = history.embedding.size();
        let texture = history.embedding.texture(ui.ctx()).id();
        let v1 = dims as f32 / rows as f32;
        for (texels, xs) in screen_segments(history.embedding.segments(), plot_rect) {
            if xs.end <= xs.start {
                continue;
            }
            let screen = Rect::from_min_max(
                pos2(xs.start, plot_rect.top()),
                pos2(xs.end, plot_rect.bottom()),
            );
            let uv = Rect::from_min_max(
                pos2(texels.start / cols as f32, 0.0),
                pos2(texels.end / cols as f32, v1),
            );
            painter.image(texture, screen, uv, Color32::WHITE);
        }
        for (d, anchor) in [(1, Align2::RIGHT_TOP), (dims, Align2::RIGHT_BOTTOM)] {
            let y = if d == 1 {
                plot_rect.top()
            } else {
                plot_rect.bottom()
            };
            painter.text(
                pos2(plot_rect.left() - 6.0, y),
                anchor,
                format!("{d}"),
                theme::small(),
                theme::TEXT_DIM,
            );
        }
        painter.text(
            pos2(plot_rect.left() - 6.0, plot_rect.center().y),
            Align2::RIGHT_CENTER,
            "dim",
            theme::small(),
            theme::TEXT_DIM,
        );
    } else {
        painter.text(
            plot_rect.center(),
            Align2::CENTER_CENTER,
            "waiting for the listener…",
            theme::small(),
            theme::TEXT_DIM,
        );
    }
    time_labels(ui, plot_rect, seconds);
    plot_rect
}
