//! Offline: `echoic embed --png`'s picture.
//!
//! The picture `echoic embed --png` draws: the cochleagram above the embedding, both over time.

use crate::offline::Analysis;
use echoic_core::listener::Listener;
use plotters::prelude::*;
use std::path::Path;

/// Pixels per frame column and per band/dimension row.
const CELL: u32 = 2;

/// Draws `analysis`'s cochleagram (low bands at the bottom) and, beneath it, the listener's
/// embedding of every frame (each dimension standardised over the file), as heat maps on a shared
/// time axis. Allocates; writes a PNG.
pub fn draw(path: &Path, listener: &Listener, analysis: &Analysis) -> anyhow::Result<()> {
    let frames = analysis.len().max(1);
    let n_bands = analysis.n_bands;
    let embedding = if analysis.buffers.is_empty() {
        Vec::new()
    } else {
        listener.embed_batch(&analysis.buffers, analysis.len())?
    };
    let latent = listener.latent_dim();
    let gap = 8;
    let height = (n_bands as u32 + latent as u32) * CELL + gap;
    let width = (frames as u32 * CELL).clamp(64, 16_000);
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&BLACK)?;
    let x_of = |frame: usize| (frame as u32 * width / frames as u32) as i32;

    for (frame, energies) in analysis.frames.chunks_exact(n_bands).enumerate() {
        for (band, &db) in energies.iter().enumerate() {
            let y = ((n_bands - 1 - band) as u32 * CELL) as i32;
            let level = ((db + 90.0) / 90.0).clamp(0.0, 1.0);
            root.draw(&Rectangle::new(
                [(x_of(frame), y), (x_of(frame + 1), y + CELL as i32)],
                heat(level).filled(),
            ))?;
        }
    }

    if !embedding.is_empty() {
        let top = (n_bands as u32 * CELL + gap) as i32;
        for dim in 0..latent {
            let column = embedding.iter().skip(dim).step_by(latent);
            let (sum, square, n) = column
                .clone()
                .fold((0.0f32, 0.0f32, 0.0f32), |(s, q, n), &v| {
                    (s + v, q + v * v, n + 1.0)
                });
            let mean = sum / n;
            let std = (square / n - mean * mean).max(1e-12).sqrt();
            for (frame, &v) in column.enumerate() {
                let y = top + (dim as u32 * CELL) as i32;
                let level = (0.5 + (v - mean) / std / 6.0).clamp(0.0, 1.0);
                root.draw(&Rectangle::new(
                    [(x_of(frame), y), (x_of(frame + 1), y + CELL as i32)],
                    heat(level).filled(),
                ))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// A perceptually ordered dark-to-bright colour map (black, purple, orange, pale yellow).
fn heat(level: f32) -> RGBColor {
    const STOPS: [(f32, [f32; 3]); 4] = [
        (0.0, [0.0, 0.0, 0.02]),
        (0.35, [0.45, 0.1, 0.5]),
        (0.7, [0.95, 0.45, 0.1]),
        (1.0, [1.0, 0.98, 0.75]),
    ];
    let (mut lo, mut hi) = (STOPS[0], STOPS[3]);
    for pair in STOPS.windows(2) {
        if level >= pair[0].0 && level <= pair[1].0 {
            (lo, hi) = (pair[0], pair[1]);
        }
    }
    let t = ((level - lo.0) / (hi.0 - lo.0).max(1e-6)).clamp(0.0, 1.0);
    let channel = |c: usize| ((lo.1[c] + t * (hi.1[c] - lo.1[c])) * 255.0) as u8;
    RGBColor(channel(0), channel(1), channel(2))
}
