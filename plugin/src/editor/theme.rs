//! The editor's look: one dark palette, the colour maps and the text styles, set up once when a
//! window opens so that every panel draws with the same few colours.

use egui::{Color32, CornerRadius, FontFamily, FontId, Stroke, TextStyle, Visuals};

/// Window background: the darkest colour, so the panels stand out as cards.
pub const BACKGROUND: Color32 = Color32::from_rgb(0x0f, 0x11, 0x16);
/// Panel (card) fill.
pub const PANEL: Color32 = Color32::from_rgb(0x17, 0x1a, 0x21);
/// Plot area fill inside a panel: slightly darker than the card, like a screen.
pub const PLOT: Color32 = Color32::from_rgb(0x0b, 0x0d, 0x11);
/// Panel borders and grid lines.
pub const GRID: Color32 = Color32::from_rgb(0x2a, 0x2f, 0x3a);
/// Main text.
pub const TEXT: Color32 = Color32::from_rgb(0xd8, 0xdc, 0xe4);
/// Secondary text: axis labels, units.
pub const TEXT_DIM: Color32 = Color32::from_rgb(0x8a, 0x92, 0xa3);
/// The accent: live values (meters, the map's present position).
pub const ACCENT: Color32 = Color32::from_rgb(0x4f, 0xd1, 0xc5);
/// Good state (listening, learned).
pub const GOOD: Color32 = Color32::from_rgb(0x7b, 0xd8, 0x8f);
/// Warning state (warming up, a note about the model).
pub const WARN: Color32 = Color32::from_rgb(0xf2, 0xb3, 0x4b);
/// Error state (settings refused, model failed).
pub const ERROR: Color32 = Color32::from_rgb(0xf2, 0x5f, 0x5c);

/// One colour per learned sound, used for its marker on the map, its row in the learn panel and
/// its similarity meter, so that the user can match them at a glance. Chosen to stay apart from
/// each other and from the accent on a dark background.
pub const LEARNED: [Color32; 4] = [
    Color32::from_rgb(0xff, 0xb0, 0x3b), // amber
    Color32::from_rgb(0xff, 0x5c, 0xa8), // pink
    Color32::from_rgb(0x8f, 0x7c, 0xff), // violet
    Color32::from_rgb(0xa6, 0xe2, 0x2e), // lime
];

/// Corner radius of panels and buttons.
pub const RADIUS: u8 = 6;

/// The level range of the cochleagram and echoic memory colour scale, dB (10·log10 of band
/// power): below the floor is black, above the top is full brightness. Mastered music peaks
/// around −10 dB per band, quiet rooms sit near the floor.
pub const DB_FLOOR: f32 = -90.0;
/// See [`DB_FLOOR`].
pub const DB_TOP: f32 = -10.0;

/// Sets the dark theme, the text sizes and the fonts. Called when a window opens.
pub fn apply(ctx: &egui::Context) {
    // egui's own fonts (Ubuntu Light for text, Hack for numbers, emoji fallbacks), compiled in
    // through egui's `default_fonts` feature: nothing is read from the system, so every host
    // renders the same glyphs.
    ctx.set_fonts(egui::FontDefinitions::default());
    let mut visuals = Visuals::dark();
    // The window is cleared to BACKGROUND (see `apply_clear_colour`); a filled central panel
    // would paint the whole window a second time.
    visuals.panel_fill = Color32::TRANSPARENT;
    visuals.window_fill = PANEL;
    visuals.extreme_bg_color = PLOT;
    visuals.faint_bg_color = PANEL;
    visuals.override_text_color = Some(TEXT);
    visuals.selection.bg_fill = ACCENT.gamma_multiply(0.45);
    visuals.selection.stroke = Stroke::new(1.0, ACCENT);
    visuals.hyperlink_color = ACCENT;
    let radius = CornerRadius::same(RADIUS);
    let widgets = &mut visuals.widgets;
    widgets.noninteractive.bg_stroke = Stroke::new(1.0, GRID);
    widgets.noninteractive.fg_stroke = Stroke::new(1.0, TEXT_DIM);
    widgets.inactive.weak_bg_fill = Color32::from_rgb(0x23, 0x28, 0x32);
    widgets.inactive.bg_fill = Color32::from_rgb(0x23, 0x28, 0x32);
    widgets.inactive.fg_stroke = Stroke::new(1.0, TEXT);
    widgets.hovered.weak_bg_fill = Color32::from_rgb(0x2e, 0x35, 0x42);
    widgets.hovered.bg_fill = Color32::from_rgb(0x2e, 0x35, 0x42);
    widgets.hovered.bg_stroke = Stroke::new(1.0, ACCENT.gamma_multiply(0.6));
    widgets.active.weak_bg_fill = ACCENT.gamma_multiply(0.35);
    widgets.active.bg_fill = ACCENT.gamma_multiply(0.35);
    for w in [
        &mut widgets.inactive,
        &mut widgets.hovered,
        &mut widgets.active,
        &mut widgets.open,
    ] {
        w.corner_radius = radius;
    }
    ctx.set_visuals(visuals);
    ctx.all_styles_mut(|style| {
        style.text_styles = [
            (
                TextStyle::Small,
                FontId::new(11.0, FontFamily::Proportional),
            ),
            (TextStyle::Body, FontId::new(13.0, FontFamily::Proportional)),
            (
                TextStyle::Button,
                FontId::new(13.0, FontFamily::Proportional),
            ),
            (
                TextStyle::Heading,
                FontId::new(18.0, FontFamily::Proportional),
            ),
            (
                TextStyle::Monospace,
                FontId::new(12.0, FontFamily::Monospace),
            ),
        ]
        .into();
        style.spacing.item_spacing = egui::vec2(6.0, 4.0);
        style.spacing.button_padding = egui::vec2(8.0, 3.0);
        style.spacing.interact_size.y = 20.0;
        // Animations cost frames on a software renderer and add nothing to a meter.
        style.animation_time = 0.0;
    });
}

/// Font for axis labels and small print.
pub fn small() -> FontId {
    FontId::new(11.0, FontFamily::Proportional)
}

/// Font for numbers that change (values, times), monospaced so they do not jitter.
pub fn mono() -> FontId {
    FontId::new(12.0, FontFamily::Monospace)
}

/// Font for panel titles.
pub fn title() -> FontId {
    FontId::new(12.5, FontFamily::Proportional)
}

/// Interpolates a colour map given as evenly spaced stops, at `t` in 0..1 (clamped).
fn ramp(stops: &[[u8; 3]], t: f32) -> Color32 {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (stops.len() - 1) as f32;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f32;
    let (a, b) = (stops[i], stops[i + 1]);
    let mix = |a: u8, b: u8| (a as f32 + (b as f32 - a as f32) * f).round() as u8;
    Color32::from_rgb(mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2]))
}

/// "Inferno" (perceptually uniform, black → purple → orange → pale yellow): the level of sound,
/// used by the cochleagram and the echoic memory so that the same level has the same colour in
/// both.
const INFERNO: [[u8; 3]; 9] = [
    [0, 0, 4],
    [31, 12, 72],
    [85, 15, 109],
    [136, 34, 106],
    [186, 54, 85],
    [227, 89, 51],
    [249, 140, 10],
    [249, 201, 50],
    [252, 255, 164],
];

/// "Viridis" (perceptually uniform, blue → green → yellow): the embedding, a different kind of
/// quantity, so it gets a different map.
const VIRIDIS: [[u8; 3]; 9] = [
    [68, 1, 84],
    [71, 44, 122],
    [59, 81, 139],
    [44, 113, 142],
    [33, 144, 141],
    [39, 173, 129],
    [92, 200, 99],
    [170, 220, 50],
    [253, 231, 37],
];

/// Colour of a band level in dB on the fixed [`DB_FLOOR`]..[`DB_TOP`] scale.
pub fn level_colour(db: f32) -> Color32 {
    ramp(&INFERNO, (db - DB_FLOOR) / (DB_TOP - DB_FLOOR))
}

/// Colour of a normalised embedding value, 0..1.
pub fn embedding_colour(t: f32) -> Color32 {
    ramp(&VIRIDIS, t)
}

/// A precomputed table of [`level_colour`], so the per-hop texture updates cost a lookup per band.
pub struct LevelLut {
    /// 256 colours from [`DB_FLOOR`] to [`DB_TOP`].
    colours: [Color32; 256],
}

impl Default for LevelLut {
    fn default() -> Self {
        Self {
            colours: std::array::from_fn(|i| ramp(&INFERNO, i as f32 / 255.0)),
        }
    }
}

impl LevelLut {
    /// The colour of `db`.
    pub fn get(&self, db: f32) -> Color32 {
        let t = (db - DB_FLOOR) / (DB_TOP - DB_FLOOR);
        let i = if t.is_nan() {
            0.0
        } else {
            (t * 255.0).round().clamp(0.0, 255.0)
        };
        self.colours[i as usize]
    }
}
