//! Offline: `echoic adapt` and `echoic adapt-eval`.
//!
//! `echoic adapt` is the offline twin of the plugin's Adapt: the files run through the plugin's
//! pipeline ([`crate::offline::analyse`]) one after another, as if played on a track, and their
//! cochlear frames become the history that [`echoic_core::listener::adapt::adapt`] fine-tunes
//! the model on. The adapted model is written as a model file the plugin loads, its provenance
//! naming the base model and the history's length.
//!
//! `echoic adapt-eval` ([`scenarios`]) measures whether adapting helps where it was adapted.

pub mod scenarios;

use crate::audio_file::decode_mono_at;
use crate::offline::analyse;
use echoic_core::listener::adapt::{adapt, AdaptConfig, Adapted, Progress};
use echoic_core::listener::format::{self, model_id};
use echoic_core::worker::ListenSettings;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The history of `samples` (mono, at `rate`) heard with `settings`: its valid cochlear frames
/// in dB, `n_bands` each, appended to `history`. Allocates.
pub fn listen(
    samples: &[f32],
    rate: u32,
    settings: &ListenSettings,
    history: &mut Vec<f32>,
) -> anyhow::Result<()> {
    let analysis = analyse(samples, f64::from(rate), settings, false)?;
    let n = analysis.n_bands;
    for (frame, &valid) in analysis.frames.chunks_exact(n).zip(&analysis.valid) {
        if valid {
            history.extend_from_slice(frame);
        }
    }
    Ok(())
}

/// The history of `files` decoded at `rate` and played one after another; the files that could
/// not be read are returned with the reason and left out. Allocates; reads the files.
pub fn history_of_files(
    files: &[PathBuf],
    rate: u32,
    settings: &ListenSettings,
) -> (Vec<f32>, Vec<(PathBuf, String)>) {
    let mut history = Vec::new();
    let mut failures = Vec::new();
    for path in files {
        let heard = decode_mono_at(path, rate)
            .map_err(anyhow::Error::from)
            .and_then(|audio| listen(&audio.samples, rate, settings, &mut history));
        if let Err(error) = heard {
            failures.push((path.clone(), format!("{error:#}")));
        }
    }
    (history, failures)
}

/// Adapts the model file `base_bytes` on `history_db` (frames heard with the model's own
/// features) and records the base file's [`model_id`] in the provenance. `progress` is called
/// after every minibatch. Allocates.
pub fn adapt_model(
    base_bytes: &[u8],
    history_db: &[f32],
    cfg: &AdaptConfig,
    progress: impl FnMut(Progress),
) -> anyhow::Result<Adapted> {
    let (meta, tensors) = format::decode(base_bytes)?;
    let settings = meta.features.to_settings();
    let never = AtomicBool::new(false);
    let mut adapted = adapt(
        &meta, &tensors, history_db, &settings, cfg, &never, progress,
    )?;
    if let Some(from) = adapted.metadata.provenance.adapted_from.as_mut() {
        from.id = Some(model_id(base_bytes));
    }
    Ok(adapted)
}

/// Writes `adapted` as a model file at `out`, creating its folder. Allocates; writes the file.
pub fn write_model(adapted: &Adapted, out: &Path) -> anyhow::Result<()> {
    let bytes = format::encode(&adapted.metadata, &adapted.tensors)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use echoic_core::listener::{Listener, DEFAULT_MODEL};

    #[test]
    fn files_adapt_the_shipped_model_into_a_file_the_plugin_loads() {
        let dir = std::env::temp_dir().join(format!("echoic-adapt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rate = 22_050;
        // Two files of a chirp and a pulse train, 16 s in all.
        let files: Vec<PathBuf> = (0..2)
            .map(|k| {
                let samples: Vec<f32> = (0..rate * 8)
                    .map(|i| {
                        let t = i as f32 / rate as f32;
                        match k {
                            0 => 0.3 * (t * (300.0 + 200.0 * t) * std::f32::consts::TAU).sin(),
                            _ => 0.3 * f32::from(u8::from((t * 6.0).fract() < 0.05)),
                        }
                    })
                    .collect();
                let path = dir.join(format!("{k}.wav"));
                crate::audio_file::write_wav_mono(&path, &samples, rate as u32).unwrap();
                path
            })
            .collect();
        let (meta, _) = format::decode(DEFAULT_MODEL).unwrap();
        let settings = meta.features.to_settings();
        let (history, failures) = history_of_files(&files, rate as u32, &settings);
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(history.len() % settings.n_bands, 0);
        let frames = history.len() / settings.n_bands;
        assert!((1590..=1610).contains(&frames), "{frames} frames in 16 s");
        let cfg = AdaptConfig {
            max_epochs: 1,
            stride: 2,
            ..AdaptConfig::default()
        };
        let mut calls = 0;
        let adapted = adapt_model(DEFAULT_MODEL, &history, &cfg, |_| calls += 1).unwrap();
        assert!(calls > 0);
        let out = dir.join("adapted.safetensors");
        write_model(&adapted, &out).unwrap();
        let listener = Listener::load(&out).unwrap();
        let from = listener.metadata().provenance.adapted_from.clone().unwrap();
        assert_eq!(from.name, meta.name);
        assert_eq!(from.id, Some(model_id(DEFAULT_MODEL)));
        assert!((from.history_seconds - frames as f64 * 0.01).abs() < 1e-9);
        assert!(from.held_out_after <= from.held_out_before);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
