//! The editor's memory of what the worker published: the scrolling images (cochleagram and
//! embedding strip) as ring-buffer textures updated one column per hop, the map's trail, and the
//! latest hop and state.

use super::theme::{self, LevelLut};
use echoic_core::display::{DisplayHop, DisplayReceiver, DisplayState, MAX_DISPLAY_DIMS};
use echoic_core::frame::MAX_BANDS;
use egui::{Color32, ColorImage, TextureHandle, TextureOptions};
use std::collections::VecDeque;

/// Columns (hops) the scrolling views keep: 6.4 s at the default 10 ms hop.
pub const COLUMNS: usize = 640;

/// Hops of trail the map draws: 3 s at the default hop.
pub const TRAIL: usize = 300;

/// Steps × bands of the echoic memory texture: the largest dilated buffer carried.
const MEMORY_TEX: [usize; 2] = [echoic_core::display::MAX_DISPLAY_STEPS, MAX_BANDS];

/// A texture used as a ring of columns: each new column overwrites the oldest.
pub struct ColumnRing {
    /// The GPU texture, `COLUMNS` wide; created on first use (needs the egui context).
    texture: Option<TextureHandle>,
    /// Rows of the texture.
    rows: usize,
    /// Next column to write.
    next: usize,
    /// Columns written so far, up to `COLUMNS`: the views leave the unwritten part empty.
    filled: usize,
    /// Columns written this frame, uploaded together at the end of the frame as one partial
    /// update (two when the ring wraps), not one upload per hop.
    pending: Vec<Color32>,
    /// Ring index of the first pending column.
    pending_start: usize,
    /// Number of pending columns.
    pending_count: usize,
    /// The texture's debug name.
    name: &'static str,
}

impl ColumnRing {
    /// A ring of `rows`-tall columns.
    pub fn new(name: &'static str, rows: usize) -> Self {
        Self {
            texture: None,
            rows,
            next: 0,
            filled: 0,
            pending: Vec::new(),
            pending_start: 0,
            pending_count: 0,
            name,
        }
    }

    /// Queues one column (`rows` colours, row 0 = band or dimension 0).
    pub fn push(&mut self, column: impl IntoIterator<Item = Color32>) {
        if self.pending_count == 0 {
            self.pending_start = self.next;
        }
        if self.pending_count == COLUMNS {
            // More hops than columns arrived in one frame: keep the newest.
            self.pending.drain(..self.rows);
            self.pending_start = (self.pending_start + 1) % COLUMNS;
            self.pending_count -= 1;
        }
        let before = self.pending.len();
        self.pending.extend(column.into_iter().take(self.rows));
        self.pending.resize(before + self.rows, Color32::BLACK);
        self.pending_count += 1;
        self.next = (self.next + 1) % COLUMNS;
        self.filled = (self.filled + 1).min(COLUMNS);
    }

    /// Uploads the pending columns and returns the texture.
    pub fn texture(&mut self, ctx: &egui::Context) -> &TextureHandle {
        let rows = self.rows;
        let texture = self.texture.get_or_insert_with(|| {
            ctx.load_texture(
                self.name,
                ColorImage::filled([COLUMNS, rows], Color32::BLACK),
                TextureOptions::NEAREST,
            )
        });
        if self.pending_count > 0 {
            // Pending columns are stored column-major; the texture wants rows of pixels.
            let mut start = self.pending_start;
            let mut done = 0;
            while done < self.pending_count {
                let run = (self.pending_count - done).min(COLUMNS - start);
                let mut pixels = vec![Color32::BLACK; run * rows];
                for c in 0..run {
                    let column = &self.pending[(done + c) * rows..(done + c + 1) * rows];
                    for (r, &colour) in column.iter().enumerate() {
                        pixels[r * run + c] = colour;
                    }
                }
                texture.set_partial(
                    [start, 0],
                    ColorImage::new([run, rows], pixels),
                    TextureOptions::NEAREST,
                );
                done += run;
                start = (start + run) % COLUMNS;
            }
            self.pending.clear();
            self.pending_count = 0;
        }
        texture
    }

    /// The share of the view (from the left) not written yet: drawn as an empty plot.
    pub fn empty_fraction(&self) -> f32 {
        (COLUMNS - self.filled) as f32 / COLUMNS as f32
    }

    /// The texture's size in texels.
    pub fn size(&self) -> [usize; 2] {
        [COLUMNS, self.rows]
    }

    /// The texel column ranges to draw, oldest first, and the share of the view each takes from
    /// the right edge: `(texels, fraction_start..fraction_end)` with 1.0 = the right edge (now).
    pub fn segments(&self) -> Vec<(std::ops::Range<f32>, std::ops::Range<f32>)> {
        let n = COLUMNS as f32;
        let newest_end = self.next as f32;
        let empty = (COLUMNS - self.filled) as f32 / n;
        if self.filled < COLUMNS {
            // Not wrapped yet: columns 0..next, drawn at the right end.
            vec![(0.0..newest_end, empty..1.0)]
        } else {
            let older = (n - newest_end) / n;
            vec![(newest_end..n, 0.0..older), (0.0..newest_end, older..1.0)]
        }
    }

    /// Forgets everything (a new band layout, a new model).
    pub fn clear(&mut self) {
        self.next = 0;
        self.filled = 0;
        self.pending.clear();
        self.pending_count = 0;
        if let Some(texture) = &mut self.texture {
            texture.set(
                ColorImage::filled([COLUMNS, self.rows], Color32::BLACK),
                TextureOptions::NEAREST,
            );
        }
    }
}

/// How far the embedding strip's colour range reaches on each side, in RMS widths of a hop's
/// values: a listener's embedding holds a few dimensions near saturation and most near zero, so
/// a range set by the largest value greys out the rest (the listener of issue 14 puts its RMS at
/// a fifth of its peak).
const EMBEDDING_RANGE_RMS: f32 = 3.0;

/// Everything the panels draw, kept between frames.
pub struct History {
    /// The cochleagram: one column of band levels per hop.
    pub cochleagram: ColumnRing,
    /// The embedding strip: one column of embedding values per hop.
    pub embedding: ColumnRing,
    /// The echoic memory image, redrawn whenever a new state arrives.
    memory_texture: Option<TextureHandle>,
    /// The map's recent positions, oldest first; `None` marks hops without a position (gaps).
    pub trail: VecDeque<Option<[f32; 2]>>,
    /// The newest hop.
    pub latest: DisplayHop,
    /// The newest state.
    pub state: DisplayState,
    /// Hops received since the editor opened.
    pub hops: u64,
    /// Hops received in the current frame.
    pub hops_this_frame: usize,
    /// Band count of the columns in the cochleagram, to restart it when the layout changes.
    n_bands: usize,
    /// Embedding size of the columns in the strip, for the same reason.
    dims: usize,
    /// Colour table of the level scale.
    lut: LevelLut,
    /// Running scale of the embedding values (a slowly decaying maximum of
    /// [`EMBEDDING_RANGE_RMS`] times a hop's RMS), so the strip uses its whole colour range
    /// whatever the model's output range, and a few saturated dimensions do not grey out the
    /// rest. Values beyond it take the end colours.
    embedding_scale: f32,
    /// Whether the embedding has had negative values: then the strip maps −scale..scale, else
    /// 0..scale.
    embedding_signed: bool,
}

impl Default for History {
    fn default() -> Self {
        Self {
            cochleagram: ColumnRing::new("echoic-cochleagram", MAX_BANDS),
            embedding: ColumnRing::new("echoic-embedding", MAX_DISPLAY_DIMS),
            memory_texture: None,
            trail: VecDeque::with_capacity(TRAIL + 1),
            latest: DisplayHop::default(),
            state: DisplayState::default(),
            hops: 0,
            hops_this_frame: 0,
            n_bands: 0,
            dims: 0,
            lut: LevelLut::default(),
            embedding_scale: 0.0,
            embedding_signed: false,
        }
    }
}

impl History {
    /// Takes everything the worker published since the last frame.
    pub fn drain(&mut self, receiver: &mut DisplayReceiver) -> bool {
        self.hops_this_frame = 0;
        while let Some(hop) = receiver.pop() {
            self.push(&hop);
            self.latest = hop;
            self.hops += 1;
            self.hops_this_frame += 1;
        }
        let (state, changed) = receiver.state();
        if changed {
            self.state.clone_from(state);
        }
        changed || self.hops_this_frame > 0
    }

    /// Adds one hop to the scrolling views.
    fn push(&mut self, hop: &DisplayHop) {
        let n_bands = hop.n_bands as usize;
        if n_bands != self.n_bands {
            self.n_bands = n_bands;
            self.cochleagram.clear();
        }
        let lut = &self.lut;
        if hop.valid {
            self.cochleagram
                .push(hop.energies().iter().map(|&db| lut.get(db)));
        } else {
            self.cochleagram.push(std::iter::empty());
        }

        let e = hop.embedding();
        if !e.is_empty() && e.len() != self.dims {
            self.dims = e.len();
            self.embedding.clear();
            self.embedding_scale = 0.0;
            self.embedding_signed = false;
        }
        if e.is_empty() {
            self.embedding.push(std::iter::empty());
        } else {
            let rms = (e.iter().map(|v| v * v).sum::<f32>() / e.len() as f32).sqrt();
            self.embedding_scale = (self.embedding_scale * 0.998)
                .max(EMBEDDING_RANGE_RMS * rms)
                .max(1e-6);
            self.embedding_signed |= e.iter().any(|&v| v < -0.05 * self.embedding_scale);
            let (scale, signed) = (self.embedding_scale, self.embedding_signed);
            self.embedding.push(e.iter().map(|&v| {
                let t = if signed {
                    0.5 + 0.5 * v / scale
                } else {
                    v / scale
                };
                theme::embedding_colour(t)
            }));
        }

        if self.trail.len() == TRAIL {
            self.trail.pop_front();
        }
        self.trail.push_back(hop.map);
    }

    /// The embedding size shown in the strip (0 before the first embedding).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Uploads the echoic memory image of the newest state and returns its texture and size.
    pub fn memory_texture(
        &mut self,
        ctx: &egui::Context,
        changed: bool,
    ) -> (&TextureHandle, [usize; 2]) {
        let state = &self.state;
        let lut = &self.lut;
        let image = || {
            let [w, h] = MEMORY_TEX;
            let mut pixels = vec![Color32::BLACK; w * h];
            for row in 0..state.steps {
                let step = &state.buffer()[row * state.n_bands..(row + 1) * state.n_bands];
                for (b, &db) in step.iter().enumerate() {
                    pixels[b * w + row] = lut.get(db);
                }
            }
            ColorImage::new([w, h], pixels)
        };
        if let Some(texture) = &mut self.memory_texture {
            if changed {
                texture.set(image(), TextureOptions::NEAREST);
            }
        } else {
            self.memory_texture =
                Some(ctx.load_texture("echoic-memory", image(), TextureOptions::NEAREST));
        }
        (self.memory_texture.as_ref().expect("just set"), MEMORY_TEX)
    }
}
