//! Drawing helpers shared by the panels: the panel card, the log-frequency axis of the band
//! displays, and band images drawn with non-uniform rows and columns.

use super::theme;
use echoic_core::erb::erb_space;
use egui::{
    pos2, Align2, Color32, CornerRadius, Mesh, Pos2, Rect, Stroke, StrokeKind, TextureId, Ui,
};

/// Height of a panel's title row.
pub const TITLE_HEIGHT: f32 = 20.0;

/// Draws a panel card with its title (left) and a note such as a unit (right), and returns the
/// rect left for the content.
///
/// Cards are outlined, not filled: on a software renderer every full-window layer of fill costs
/// milliseconds per frame, and the window's clear colour already is the background.
pub fn panel(ui: &Ui, rect: Rect, title: &str, note: &str) -> Rect {
    let painter = ui.painter();
    painter.rect_stroke(
        rect,
        CornerRadius::same(theme::RADIUS),
        Stroke::new(1.0, theme::GRID),
        StrokeKind::Inside,
    );
    let title_pos = pos2(rect.left() + 10.0, rect.top() + 5.0);
    painter.text(
        title_pos,
        Align2::LEFT_TOP,
        title.to_uppercase(),
        theme::title(),
        theme::TEXT,
    );
    if !note.is_empty() {
        painter.text(
            pos2(rect.right() - 10.0, rect.top() + 6.0),
            Align2::RIGHT_TOP,
            note,
            theme::small(),
            theme::TEXT_DIM,
        );
    }
    Rect::from_min_max(
        pos2(rect.left() + 8.0, rect.top() + TITLE_HEIGHT + 6.0),
        pos2(rect.right() - 8.0, rect.bottom() - 8.0),
    )
}

/// Where the bands of a filterbank lie on a logarithmic frequency axis.
#[derive(Clone, Debug, PartialEq)]
pub struct FreqAxis {
    /// The settings the axis was computed for (bands, low and high Hz), to know when to redo it.
    key: (usize, u64, u64),
    /// Band edges in Hz, `n + 1` of them: each band spans the geometric middles to its
    /// neighbours, so the rows tile the axis without gaps.
    edges: Vec<f32>,
}

impl FreqAxis {
    /// The axis for `n` ERB-spaced bands from `low` to `high` Hz (see `Cochlea::centres`).
    pub fn new(n: usize, low: f64, high: f64) -> Self {
        let centres = erb_space(low, high, n.max(1));
        let mut edges = Vec::with_capacity(centres.len() + 1);
        if centres.len() == 1 {
            edges.extend([centres[0] / 1.1, centres[0] * 1.1]);
        } else {
            edges.push(centres[0] * (centres[0] / centres[1]).sqrt());
            edges.extend(centres.windows(2).map(|w| (w[0] * w[1]).sqrt()));
            let last = centres.len() - 1;
            edges.push(centres[last] * (centres[last] / centres[last - 1]).sqrt());
        }
        Self {
            key: (n, low.to_bits(), high.to_bits()),
            edges: edges.into_iter().map(|e| e as f32).collect(),
        }
    }

    /// Whether this axis was made for these settings.
    pub fn matches(&self, n: usize, low: f64, high: f64) -> bool {
        self.key == (n, low.to_bits(), high.to_bits())
    }

    /// Number of bands.
    pub fn bands(&self) -> usize {
        self.edges.len() - 1
    }

    /// Screen y of frequency `hz` in `rect` (low frequencies at the bottom).
    pub fn y(&self, rect: Rect, hz: f32) -> f32 {
        let lo = self.edges[0].ln();
        let hi = self.edges[self.edges.len() - 1].ln();
        let t = (hz.max(1.0).ln() - lo) / (hi - lo);
        rect.bottom() - t * rect.height()
    }

    /// Screen rows (top, bottom) of band `b` in `rect`.
    pub fn band_rows(&self, rect: Rect, b: usize) -> (f32, f32) {
        (self.y(rect, self.edges[b + 1]), self.y(rect, self.edges[b]))
    }

    /// Draws the Hz labels and tick lines of the axis to the left of `rect`, and faint grid lines
    /// across it.
    pub fn draw_labels(&self, ui: &Ui, rect: Rect) {
        let painter = ui.painter();
        let (lo, hi) = (self.edges[0], self.edges[self.edges.len() - 1]);
        for &(hz, label) in &[
            (50.0, "50"),
            (100.0, "100"),
            (200.0, "200"),
            (500.0, "500"),
            (1_000.0, "1k"),
            (2_000.0, "2k"),
            (5_000.0, "5k"),
            (10_000.0, "10k"),
            (20_000.0, "20k"),
        ] {
            if hz < lo || hz > hi {
                continue;
            }
            let y = self.y(rect, hz);
            painter.line_segment(
                [pos2(rect.left() - 4.0, y), pos2(rect.left(), y)],
                Stroke::new(1.0, theme::TEXT_DIM),
            );
            painter.line_segment(
                [pos2(rect.left(), y), pos2(rect.right(), y)],
                Stroke::new(1.0, Color32::from_white_alpha(14)),
            );
            painter.text(
                pos2(rect.left() - 6.0, y),
                Align2::RIGHT_CENTER,
                label,
                theme::small(),
                theme::TEXT_DIM,
            );
        }
        painter.text(
            pos2(rect.left() - 6.0, rect.top() - 2.0),
            Align2::RIGHT_BOTTOM,
            "Hz",
            theme::small(),
            theme::TEXT_DIM,
        );
    }
}

/// Draws a band image: texture rows are bands (row b = band b, `tex_rows` rows in all), and the
/// texture columns `columns` (left to right, texel index ranges in a `tex_cols`-wide texture) are
/// drawn into the screen x ranges `xs`. Rows are placed on `axis`, so ERB-spaced bands land on a
/// log-frequency axis.
pub fn band_image(
    ui: &Ui,
    rect: Rect,
    texture: TextureId,
    tex_size: [usize; 2],
    axis: &FreqAxis,
    segments: &[(std::ops::Range<f32>, std::ops::Range<f32>)],
) {
    let mut mesh = Mesh::with_texture(texture);
    let (cols, rows) = (tex_size[0] as f32, tex_size[1] as f32);
    for b in 0..axis.bands() {
        let (top, bottom) = axis.band_rows(rect, b);
        let v0 = b as f32 / rows;
        let v1 = (b + 1) as f32 / rows;
        for (texels, xs) in segments {
            if texels.end <= texels.start || xs.end <= xs.start {
                continue;
            }
            let screen = Rect::from_min_max(pos2(xs.start, top), pos2(xs.end, bottom));
            // Texture row b is band b; its quad spans the band's rows on the log axis.
            let uv = Rect::from_min_max(pos2(texels.start / cols, v0), pos2(texels.end / cols, v1));
            mesh.add_rect_with_uv(screen, uv, Color32::WHITE);
        }
    }
    ui.painter().with_clip_rect(rect).add(mesh);
}

/// A point in `rect` from coordinates in `-range..range` on both axes (y up).
pub fn map_point(rect: Rect, range: f32, p: [f32; 2]) -> Pos2 {
    let c = rect.center();
    let s = rect.width().min(rect.height()) * 0.5 / range;
    pos2(c.x + p[0] * s, c.y - p[1] * s)
}
