//! Training: the audio of each training package, shuffled, decoded, resampled and (optionally)
//! capped.
//! Offline: decodes and writes files.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use echoic_core::rng::SplitMix64;

use super::packages::{decode_with_ffmpeg, extracted_dir, unzip_audio, walk};
use super::signal::{dbfs, fade, SILENCE_DBFS};
use super::{
    bar, fail, hash_str, read_index, rel_string, sanitize, write_index, write_wav_atomic,
    CorpusConfig, Failure, ManifestRow, EVALUATION_PACKAGES, TRAINING_PACKAGES,
};
use crate::audio_file::{decode_mono, has_extension, is_audio_file, resample, wav_seconds};

/// Bump when the way training files are chosen changes, so that the selection is redone (files
/// already written are kept).
const TRAIN_VERSION: u32 = 5;

/// Formats symphonia cannot decode, read through ffmpeg instead (warzone2100-music and
/// ktuberling ship Opus).
const FFMPEG_EXTENSIONS: &[&str] = &["opus"];

/// Paths left out of training: documentation, and openarena's synthetic festival voices.
fn excluded_from_training(rel: &str) -> bool {
    let lower = rel.to_ascii_lowercase();
    lower.contains("usr/share/doc/") || lower.contains("festivox")
}

pub(super) fn build_training_package(
    cfg: &CorpusConfig,
    pkg: &str,
    eval_files: &EvalFiles,
    excluded: &mut Vec<String>,
    fails: &mut Vec<Failure>,
) -> Result<Vec<ManifestRow>> {
    assert!(
        TRAINING_PACKAGES.contains(&pkg) && !EVALUATION_PACKAGES.contains(&pkg),
        "{pkg} is not a training package"
    );
    let dir = cfg.out_dir.join("train").join(pkg);
    fs::create_dir_all(&dir)?;
    let index = dir.join("files.tsv");
    let key = format!(
        "# version={TRAIN_VERSION} minutes={:?} rate={} min_seconds={} seed={}",
        cfg.max_minutes_per_package, cfg.train_rate, cfg.min_file_seconds, cfg.seed
    );
    let to_rows = |entries: Vec<(String, f64, String)>| -> Vec<ManifestRow> {
        entries
            .into_iter()
            .map(|(name, seconds, source)| ManifestRow {
                split: "train",
                group: pkg.to_string(),
                path: PathBuf::from("train").join(pkg).join(name),
                seconds,
                source,
            })
            .collect()
    };
    if let Some(entries) = read_index(&index, &key, &dir) {
        return Ok(to_rows(entries));
    }

    unzip_audio(&cfg.cache_dir, pkg)?;
    let mut files: Vec<PathBuf> = walk(&extracted_dir(&cfg.cache_dir, pkg));
    files.extend(walk(&cfg.cache_dir.join("unzipped").join(pkg)));
    let mut files: Vec<(PathBuf, String)> = files
        .into_iter()
        .filter(|p| is_audio_file(p) || has_extension(p, FFMPEG_EXTENSIONS))
        .filter_map(|p| {
            let rel = rel_string(&p, &cfg.cache_dir);
            (!excluded_from_training(&rel)).then_some((p, rel))
        })
        .collect();
    let mut rng = SplitMix64(cfg.seed ^ hash_str(pkg));
    rng.shuffle(&mut files);

    let budget = cfg
        .max_minutes_per_package
        .map_or(f64::INFINITY, |m| m * 60.0);
    let pb = bar(cfg, files.len() as u64, pkg);
    pb.set_message("files");
    let mut total = 0.0;
    let mut entries: Vec<(String, f64, String)> = Vec::new();
    for (path, rel) in &files {
        if total >= budget - cfg.min_file_seconds {
            break;
        }
        if let Some(twin) = eval_files.find_copy(path) {
            let msg = format!(
                "left out of training: {rel} is a copy of evaluation file {}",
                rel_string(&twin, &cfg.cache_dir)
            );
            if pb.is_hidden() {
                eprintln!("{msg}");
            } else {
                pb.println(&msg);
            }
            excluded.push(msg);
            continue;
        }
        let name = train_name(rel);
        let out = dir.join(&name);
        if out.is_file() {
            if let Ok(secs) = wav_seconds(&out) {
                total += secs;
                pb.inc(1);
                entries.push((name, secs, rel.clone()));
                continue;
            }
        }
        pb.inc(1);
        let decoded = if has_extension(path, FFMPEG_EXTENSIONS) {
            decode_with_ffmpeg(path, None, cfg.train_rate)
        } else {
            decode_mono(path)
                .map(|d| resample(&d.samples, d.sample_rate, cfg.train_rate))
                .map_err(anyhow::Error::from)
        };
        let mut samples = match decoded {
            Ok(samples) => samples,
            Err(e) => {
                fail(&pb, fails, path, &e);
                continue;
            }
        };
        let rate = cfg.train_rate as f64;
        if (samples.len() as f64) < cfg.min_file_seconds * rate || dbfs(&samples) < SILENCE_DBFS {
            continue;
        }
        let room = ((budget - total) * rate).min(usize::MAX as f64) as usize;
        if samples.len() > room {
            samples.truncate(room);
            fade(&mut samples, cfg.train_rate, 0.05);
        }
        if let Err(e) = write_wav_atomic(&out, &samples, cfg.train_rate) {
            fail(&pb, fails, &out, &e);
            continue;
        }
        let secs = samples.len() as f64 / rate;
        total += secs;
        entries.push((name, secs, rel.clone()));
    }
    pb.finish_with_message(format!("{:.1} min", total / 60.0));

    // Whatever an earlier run with another cap left behind is not part of this corpus.
    let keep: std::collections::HashSet<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    for f in walk(&dir) {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        if (name.ends_with(".wav") || name.ends_with(".part")) && !keep.contains(name.as_ref()) {
            let _ = fs::remove_file(&f);
        }
    }
    write_index(&index, &key, &entries)?;
    Ok(to_rows(entries))
}

/// The audio files of the evaluation packages, by size, so that a training package that ships
/// a byte-identical copy of one (megaglest-data has tuxpaint's white cow) cannot leak it into
/// training.
pub(super) struct EvalFiles {
    by_size: HashMap<u64, Vec<PathBuf>>,
}

impl EvalFiles {
    pub(super) fn index(cache: &Path) -> Self {
        let mut by_size: HashMap<u64, Vec<PathBuf>> = HashMap::new();
        for pkg in EVALUATION_PACKAGES {
            for f in walk(&extracted_dir(cache, pkg)) {
                if is_audio_file(&f) || has_extension(&f, &["g722"]) {
                    if let Ok(m) = fs::metadata(&f) {
                        by_size.entry(m.len()).or_default().push(f);
                    }
                }
            }
        }
        Self { by_size }
    }

    /// An evaluation file with the same bytes as `path`, if there is one.
    fn find_copy(&self, path: &Path) -> Option<PathBuf> {
        let size = fs::metadata(path).ok()?.len();
        let candidates = self.by_size.get(&size)?;
        let bytes = fs::read(path).ok()?;
        candidates
            .iter()
            .find(|c| fs::read(c).is_ok_and(|b| b == bytes))
            .cloned()
    }
}

/// The output name of a training file: its path in the package with `/` turned into `__`.
fn train_name(rel: &str) -> String {
    let rel = rel
        .strip_prefix("extracted/")
        .or_else(|| rel.strip_prefix("unzipped/"))
        .unwrap_or(rel);
    // Drop the package name and the usual usr/share prefix.
    let rel = rel.split_once('/').map_or(rel, |(_, r)| r);
    let rel = rel.strip_prefix("usr/share/").unwrap_or(rel);
    let stem = match rel.rfind('.') {
        Some(i) if !rel[i..].contains('/') => &rel[..i],
        _ => rel,
    };
    format!("{}.wav", sanitize(&stem.replace('/', "__")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_names_are_flat_and_safe() {
        assert_eq!(
            train_name("extracted/hedgewars-data/usr/share/games/hedgewars/Data/Music/x y.ogg"),
            "games__hedgewars__Data__Music__x_y.wav"
        );
        assert_eq!(
            train_name("unzipped/warzone2100-data/base.wz/audio/sfx/a.ogg"),
            "base.wz__audio__sfx__a.wav"
        );
        assert!(excluded_from_training(
            "unzipped/openarena-data/mp-pak0.pk3/sound/voices/festivoxmale/boom.ogg"
        ));
    }
}
