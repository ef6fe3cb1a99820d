//! Training: the audio of each training package, shuffled, decoded, resampled and (optionally)
//! capped.
//! Offline: decodes and writes files.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use echoic_core::rng::SplitMix64;
use indicatif::ProgressBar;

use super::near_copies::References;
use super::packages::{decode_with_ffmpeg, extracted_dir, unzip_audio, walk};
use super::signal::{dbfs, fade, SILENCE_DBFS};
use super::soundfonts::{drum_hits_dir, render_soundfonts, rendered_dir};
use super::{
    bar, fail, hash_str, read_index, rel_string, sanitize, write_index, write_wav_atomic,
    CopyReport, CorpusConfig, Failure, ManifestRow, EVALUATION_PACKAGES,
};
use crate::audio_file::{decode_mono, has_extension, is_audio_file, resample, wav_seconds};

/// Bump when the way training files are chosen changes, so that the selection is redone (files
/// already written are reused, from [`FIRST_VERSION_NAMING_CUTS`] on). 7: near copies of the
/// evaluation's sources are left out.
const TRAIN_VERSION: u32 = 7;

/// The first [`TRAIN_VERSION`] that writes a file cut to fit a cap under its [`cut_name`] and
/// gives files whose names meet a [`distinct_name`]. An older version may have cut a file without
/// saying so, or written two sources to one name, so its files are decoded again.
const FIRST_VERSION_NAMING_CUTS: u32 = 6;

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
    copies: &mut CopyReport,
    fails: &mut Vec<Failure>,
) -> Result<Vec<ManifestRow>> {
    assert!(
        cfg.training_packages().contains(&pkg) && !EVALUATION_PACKAGES.contains(&pkg),
        "{pkg} is not a training package"
    );
    let dir = cfg.out_dir.join("train").join(pkg);
    fs::create_dir_all(&dir)?;
    let index = dir.join("files.tsv");
    let key = format!(
        "# version={TRAIN_VERSION} minutes={:?} rate={} min_seconds={} seed={} references={:016x}{}",
        cfg.max_minutes_per_package,
        cfg.train_rate,
        cfg.min_file_seconds,
        cfg.seed,
        eval_files.near.key(),
        if cfg.with_drum_hits { " drum_hits=1" } else { "" }
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
    render_soundfonts(cfg, pkg)?;
    let mut files: Vec<PathBuf> = walk(&extracted_dir(&cfg.cache_dir, pkg));
    files.extend(walk(&cfg.cache_dir.join("unzipped").join(pkg)));
    files.extend(walk(&rendered_dir(&cfg.cache_dir, pkg)));
    if cfg.with_drum_hits {
        files.extend(walk(&drum_hits_dir(&cfg.cache_dir, pkg)));
    }
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
    let reuse_written = written_naming_cuts(&index);
    let mut total = 0.0;
    let mut entries: Vec<(String, f64, String)> = Vec::new();
    let mut taken = HashSet::new();
    for (path, rel) in &files {
        if total >= budget - cfg.min_file_seconds {
            break;
        }
        if let Some(twin) = eval_files.find_copy(path) {
            leave_out(
                &pb,
                copies,
                format!(
                    "left out of training: {rel} is a copy of evaluation file {}",
                    rel_string(&twin, &cfg.cache_dir)
                ),
            );
            continue;
        }
        let name = distinct_name(rel, &mut taken);
        let reusable = reuse_written
            .then(|| reusable_seconds(&dir.join(&name), cfg.train_rate))
            .flatten()
            .filter(|secs| total + secs <= budget);
        if let Some(secs) = reusable {
            if eval_files.near.any_of_length(secs) {
                let written = match decode_mono(&dir.join(&name)) {
                    Ok(written) => written.samples,
                    Err(e) => {
                        fail(&pb, fails, &dir.join(&name), &e);
                        continue;
                    }
                };
                if let Some(msg) = copies.near_copy(rel, eval_files.near.closest(&written)) {
                    leave_out(&pb, copies, msg);
                    continue;
                }
            }
            total += secs;
            pb.inc(1);
            entries.push((name, secs, rel.clone()));
            continue;
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
        if let Some(msg) = copies.near_copy(rel, eval_files.near.closest(&samples)) {
            leave_out(&pb, copies, msg);
            continue;
        }
        let room = ((budget - total) * rate).min(usize::MAX as f64) as usize;
        let name = if samples.len() > room {
            samples.truncate(room);
            fade(&mut samples, cfg.train_rate, 0.05);
            cut_name(&name)
        } else {
            name
        };
        let out = dir.join(&name);
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

/// Records a training candidate left out as a copy, and prints why above the progress bar.
fn leave_out(pb: &ProgressBar, copies: &mut CopyReport, msg: String) {
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(&msg);
    }
    copies.left_out.push(msg);
}

/// The evaluation's files a training file must not copy.
pub(super) struct EvalFiles {
    /// Every audio file of the evaluation packages, by size, so that a training package that
    /// ships a byte-identical copy of one (megaglest-data has tuxpaint's white cow) cannot leak
    /// it into training.
    by_size: HashMap<u64, Vec<PathBuf>>,
    /// The recordings the evaluation clips were cut from, so that a re-encoded copy of one
    /// cannot leak either.
    near: References,
}

impl EvalFiles {
    /// Indexes the evaluation packages' files under `cache` by size, beside the `near`
    /// references. Reads the folders.
    pub(super) fn index(cache: &Path, near: References) -> Self {
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
        Self { by_size, near }
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

/// Whether the package folder whose index is `index` was last indexed by a version that names
/// cut files apart, so that a file under a whole name is whole. Reads the index's first line.
fn written_naming_cuts(index: &Path) -> bool {
    let Ok(text) = fs::read_to_string(index) else {
        return false;
    };
    text.lines()
        .next()
        .and_then(|key| {
            key.strip_prefix("# version=")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .is_some_and(|version: u32| version >= FIRST_VERSION_NAMING_CUTS)
}

/// The seconds of a training file written whole by an earlier run at this corpus's rate, so that
/// it need not be decoded again; `None` when there is none. Only whole files are reused: a file
/// cut to fit a package's cap is written under its [`cut_name`], so that a later run with a
/// larger cap, or none, decodes all of it again. Reads the file's header.
fn reusable_seconds(path: &Path, rate: u32) -> Option<f64> {
    let spec = hound::WavReader::open(path).ok()?.spec();
    (spec.sample_rate == rate && spec.channels == 1)
        .then(|| wav_seconds(path).ok())
        .flatten()
}

/// The output name of a training file cut short to fit its package's cap: `name` with
/// `.cut.wav` for `.wav`, so that it is never mistaken for the whole file.
fn cut_name(name: &str) -> String {
    format!("{}.cut.wav", name.strip_suffix(".wav").unwrap_or(name))
}

/// The [`train_name`] of `rel`, or, when another file of the package already took it
/// (`grow.ogg` beside `grow.wav`, or `a b.wav` beside `a_b.wav`), that name with the source's
/// extension kept (`grow.ogg.wav`), then numbered (`a_b.wav.2.wav`), so that no file
/// overwrites another. Records the name returned in `taken`.
fn distinct_name(rel: &str, taken: &mut HashSet<String>) -> String {
    let name = train_name(rel);
    let stem = name.strip_suffix(".wav").unwrap_or(&name);
    let extension = sanitize(
        &Path::new(rel)
            .extension()
            .unwrap_or_default()
            .to_string_lossy(),
    );
    let name = std::iter::once(name.clone())
        .chain(std::iter::once(format!("{stem}.{extension}.wav")))
        .chain((2..).map(|n| format!("{stem}.{extension}.{n}.wav")))
        .find(|candidate| !taken.contains(candidate))
        .expect("the numbered names never run out");
    taken.insert(name.clone());
    name
}

/// The output name of a training file: its path in the package with `/` turned into `__`.
fn train_name(rel: &str) -> String {
    let rel = rel
        .strip_prefix("extracted/")
        .or_else(|| rel.strip_prefix("unzipped/"))
        // rendered/vN/PKG/...: drop the version too.
        .or_else(|| {
            let r = rel.strip_prefix("rendered/")?;
            r.split_once('/').map(|(_, r)| r)
        })
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
        assert_eq!(
            train_name("rendered/v1/timgm6mb-soundfont/TimGM6mb/groove_03.wav"),
            "TimGM6mb__groove_03.wav"
        );
        assert!(excluded_from_training(
            "unzipped/openarena-data/mp-pak0.pk3/sound/voices/festivoxmale/boom.ogg"
        ));
    }

    /// An empty folder for a test's corpus and cache, named for `what`, and the default
    /// configuration writing there, quietly.
    fn scratch(what: &str) -> (PathBuf, CorpusConfig) {
        let root =
            std::env::temp_dir().join(format!("echoic-corpus-{what}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let cfg = CorpusConfig {
            out_dir: root.join("corpus"),
            cache_dir: root.join("cache"),
            progress: false,
            ..CorpusConfig::default()
        };
        (root, cfg)
    }

    #[test]
    fn a_near_copy_of_an_evaluation_recording_is_left_out_whether_decoded_or_reused() {
        use crate::corpus::near_copies::tests::recording;
        let (root, cfg) = scratch("near");
        let pkg = "lmms-common";
        let rate = cfg.train_rate;
        // The evaluation's recording, at 44.1 kHz; the package ships it at the training rate,
        // 6 dB down, beside a recording of its own of the same length.
        let reference = "extracted/tuxpaint-stamps-default/cow.wav";
        let cow = recording(3, 2.5, 44_100);
        fs::create_dir_all(cfg.cache_dir.join(reference).parent().unwrap()).unwrap();
        crate::audio_file::write_wav_mono(&cfg.cache_dir.join(reference), &cow, 44_100).unwrap();
        let sounds = extracted_dir(&cfg.cache_dir, pkg).join("usr/share/lmms/samples");
        fs::create_dir_all(&sounds).unwrap();
        let copy: Vec<f32> = resample(&cow, 44_100, rate)
            .iter()
            .map(|x| x * 0.5)
            .collect();
        crate::audio_file::write_wav_mono(&sounds.join("moo.wav"), &copy, rate).unwrap();
        let own = recording(4, 2.5, rate);
        crate::audio_file::write_wav_mono(&sounds.join("own.wav"), &own, rate).unwrap();

        let build = |references: References| {
            let (mut copies, mut fails) = (CopyReport::default(), Vec::new());
            let eval_files = EvalFiles::index(&cfg.cache_dir, references);
            let rows =
                build_training_package(&cfg, pkg, &eval_files, &mut copies, &mut fails).unwrap();
            assert!(fails.is_empty());
            let sources: Vec<String> = rows.into_iter().map(|r| r.source).collect();
            (sources, copies)
        };
        let references = || {
            let (references, failures) =
                References::decode(&cfg.cache_dir, &[reference.to_string()], rate);
            assert!(failures.is_empty());
            references
        };
        let own_rel = rel_string(&sounds.join("own.wav"), &cfg.cache_dir);
        let moo_rel = rel_string(&sounds.join("moo.wav"), &cfg.cache_dir);

        // Decoded: the copy is left out by name, and the other file is the closest kept.
        let (sources, copies) = build(references());
        assert_eq!(sources, std::slice::from_ref(&own_rel));
        assert_eq!(copies.left_out.len(), 1);
        assert!(copies.left_out[0].contains(&moo_rel) && copies.left_out[0].contains(reference));
        let (closest, pair) = copies.closest_kept.unwrap();
        assert!(closest < 0.5 && pair.contains(&own_rel), "{closest} {pair}");

        // Without references both are taken; with them again, the copy already written is
        // read back, checked and left out.
        assert_eq!(build(References::default()).0.len(), 2);
        let (sources, copies) = build(references());
        assert_eq!(sources, [own_rel]);
        assert_eq!(copies.left_out.len(), 1);
        fs::remove_dir_all(&root).unwrap();
    }

    /// Builds `pkg` as `cfg` says but with the given cap; returns the total seconds listed and
    /// the names of the files in the package's folder, sorted.
    fn build(cfg: &CorpusConfig, pkg: &str, cap_minutes: Option<f64>) -> (f64, Vec<String>) {
        let cfg = CorpusConfig {
            max_minutes_per_package: cap_minutes,
            ..cfg.clone()
        };
        let (mut copies, mut fails) = (CopyReport::default(), Vec::new());
        let eval_files = EvalFiles::index(&cfg.cache_dir, References::default());
        let rows = build_training_package(&cfg, pkg, &eval_files, &mut copies, &mut fails).unwrap();
        assert!(fails.is_empty() && copies.left_out.is_empty());
        let mut names: Vec<String> = walk(&cfg.out_dir.join("train").join(pkg))
            .iter()
            .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
            .filter(|n| n.ends_with(".wav"))
            .collect();
        names.sort();
        (rows.iter().map(|r| r.seconds).sum(), names)
    }

    #[test]
    fn files_whose_names_meet_are_all_kept() {
        let mut taken = HashSet::new();
        let dir = "extracted/supertux-data/usr/share/games/supertux2/sounds";
        for (source, name) in [
            ("grow.wav", "grow.wav"),
            ("grow.ogg", "grow.ogg.wav"),
            ("a b.wav", "a_b.wav"),
            ("a_b.wav", "a_b.wav.wav"),
            ("a+b.wav", "a_b.wav.2.wav"),
        ] {
            let rel = format!("{dir}/{source}");
            assert_eq!(
                distinct_name(&rel, &mut taken),
                format!("games__supertux2__sounds__{name}")
            );
        }
    }

    #[test]
    fn a_file_cut_by_one_cap_is_decoded_whole_when_the_cap_is_lifted() {
        let (root, cfg) = scratch("cap");
        let pkg = "lmms-common";
        let sounds = extracted_dir(&cfg.cache_dir, pkg).join("usr/share/lmms/samples");
        fs::create_dir_all(&sounds).unwrap();
        let rate = cfg.train_rate;
        for (name, hz) in [("a.wav", 220.0), ("b.wav", 330.0)] {
            let tone: Vec<f32> = (0..10 * rate)
                .map(|i| 0.3 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin())
                .collect();
            crate::audio_file::write_wav_mono(&sounds.join(name), &tone, rate).unwrap();
        }

        // A folder an older version wrote may hold a file cut short under its whole name.
        let dir = cfg.out_dir.join("train").join(pkg);
        fs::create_dir_all(&dir).unwrap();
        let silent_start = vec![0.0; 5 * rate as usize];
        crate::audio_file::write_wav_mono(&dir.join("lmms__samples__a.wav"), &silent_start, rate)
            .unwrap();
        let old_key = "# version=5 minutes=Some(0.25) rate=22050 min_seconds=0.5 seed=966684";
        fs::write(dir.join("files.tsv"), format!("{old_key}\n")).unwrap();
        let (healed, _) = build(&cfg, pkg, None);
        assert!((healed - 20.0).abs() < 0.01, "{healed}");

        // A 15 s cap takes one file whole and the first 5 s of the other.
        let (capped, names) = build(&cfg, pkg, Some(0.25));
        assert!((capped - 15.0).abs() < 0.01, "{capped}");
        assert_eq!(names.iter().filter(|n| n.ends_with(".cut.wav")).count(), 1);

        // Without the cap both files are whole again: the cut one is decoded anew, not reused.
        let (whole, names) = build(&cfg, pkg, None);
        assert!((whole - 20.0).abs() < 0.01, "{whole}");
        assert_eq!(names.len(), 2);
        assert!(names.iter().all(|n| !n.ends_with(".cut.wav")), "{names:?}");

        // A rebuild at another rate decodes again rather than reusing files at the old one.
        let (resampled, names) = build(
            &CorpusConfig {
                train_rate: 16_000,
                ..cfg.clone()
            },
            pkg,
            None,
        );
        assert!((resampled - 20.0).abs() < 0.01, "{resampled}");
        for name in names {
            let path = cfg.out_dir.join("train").join(pkg).join(name);
            assert_eq!(
                hound::WavReader::open(path).unwrap().spec().sample_rate,
                16_000
            );
        }
        fs::remove_dir_all(&root).unwrap();
    }
}
