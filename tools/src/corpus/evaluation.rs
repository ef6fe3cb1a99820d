//! Evaluation: the labelled clips of each class (speech, music, animals here; drums and
//! instruments in their own modules), balanced and published. Offline: decodes, runs external
//! tools and writes files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use echoic_core::rng::SplitMix64;
use indicatif::ProgressBar;

use super::drums::drum_clips;
use super::instruments::instrument_clips;
use super::packages::{decode_with_ffmpeg, extracted_dir, require_tool, walk};
use super::signal::{dbfs, fade, normalize, trim_silence};
use super::{
    bar, fail, hash_str, read_index, rel_string, sanitize, write_index, write_wav_atomic,
    CorpusConfig, Failure, ManifestRow, EVALUATION_PACKAGES,
};
use crate::audio_file::{decode_mono, has_extension, is_audio_file, resample};

/// Bump when the way evaluation clips are made changes, so that cached clips are rebuilt.
const EVAL_VERSION: u32 = 5;

/// One evaluation clip before it is written.
pub(super) struct Clip {
    pub(super) name: String,
    pub(super) samples: Vec<f32>,
    pub(super) source: String,
}

/// Builds (or reuses) every clip of one class under `cache/evalclips/CLASS/`, up to the cap,
/// ordered so that any prefix spreads over the sources.
pub(super) fn build_eval_class(
    cfg: &CorpusConfig,
    class: &str,
    ready: &[&str],
    fails: &mut Vec<Failure>,
) -> Result<Vec<ManifestRow>> {
    let dir = cfg.cache_dir.join("evalclips").join(class);
    fs::create_dir_all(&dir)?;
    let index = dir.join("clips.tsv");
    let key = format!(
        "# version={EVAL_VERSION} cap={} rate={} clip={}-{} min={} rms={} seed={}",
        cfg.clips_per_class,
        cfg.train_rate,
        cfg.min_clip_seconds,
        cfg.max_clip_seconds,
        cfg.min_file_seconds,
        cfg.eval_rms_dbfs,
        cfg.seed
    );
    let to_rows = |entries: Vec<(String, f64, String)>| -> Vec<ManifestRow> {
        entries
            .into_iter()
            .map(|(name, seconds, source)| ManifestRow {
                split: "eval",
                group: class.to_string(),
                path: PathBuf::from(name),
                seconds,
                source,
            })
            .collect()
    };
    if let Some(entries) = read_index(&index, &key, &dir) {
        return Ok(to_rows(entries));
    }
    let need = |pkgs: &[&str]| -> Result<()> {
        for p in pkgs {
            assert!(
                EVALUATION_PACKAGES.contains(p),
                "{p} is not an evaluation package"
            );
            if !ready.contains(p) {
                bail!("package {p} is not available");
            }
        }
        Ok(())
    };
    let pb = bar(cfg, cfg.clips_per_class as u64, class);
    let mut rng = SplitMix64(cfg.seed ^ hash_str(class));
    let clips = match class {
        "speech" => {
            let langs = ["en", "es", "fr", "it", "ru"];
            let pkgs: Vec<String> = langs
                .iter()
                .map(|l| format!("asterisk-core-sounds-{l}-g722"))
                .collect();
            need(&pkgs.iter().map(String::as_str).collect::<Vec<_>>())?;
            require_tool("ffmpeg")?;
            speech_clips(cfg, &pkgs, &mut rng, &pb, fails)
        }
        "music" => {
            need(&["fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid"])?;
            music_clips(cfg, &mut rng, &pb, fails)
        }
        "drums" => {
            need(&["hydrogen-drumkits"])?;
            drum_clips(cfg, &mut rng, &pb, fails)
        }
        "instrument" => {
            need(&["fluid-soundfont-gm"])?;
            require_tool("fluidsynth")?;
            instrument_clips(cfg, &mut rng, &pb, fails)?
        }
        "animal" => {
            need(&["tuxpaint-stamps-default"])?;
            animal_clips(cfg, &pb, fails)
        }
        other => bail!("unknown class {other}"),
    };

    for f in walk(&dir) {
        if has_extension(&f, &["wav", "part"]) {
            let _ = fs::remove_file(&f);
        }
    }
    let mut entries = Vec::new();
    for mut clip in clips.into_iter().take(cfg.clips_per_class) {
        normalize(&mut clip.samples, cfg.eval_rms_dbfs);
        let out = dir.join(&clip.name);
        if let Err(e) = write_wav_atomic(&out, &clip.samples, cfg.train_rate) {
            fail(&pb, fails, &out, &e);
            continue;
        }
        let secs = clip.samples.len() as f64 / cfg.train_rate as f64;
        entries.push((clip.name, secs, clip.source));
    }
    pb.finish_with_message(format!("{} clips", entries.len()));
    write_index(&index, &key, &entries)?;
    Ok(to_rows(entries))
}

/// The files an evaluation clip's `source` names, relative to the cache directory, in the
/// forms the clip builders write: one file (speech, animals), a song's stems joined by `+`
/// (music), or a kit folder and the one-shots a pattern used, `kit/{a.wav+b.wav}` (drums). An
/// instrument's source names its SoundFont and phrase, not a recording, so it names no file.
/// Allocates.
pub(super) fn source_files(source: &str) -> Vec<String> {
    let (folder, names) = match source.strip_suffix('}').and_then(|s| s.split_once("/{")) {
        Some((kit, names)) => (Some(kit), names),
        None => (None, source),
    };
    names
        .split('+')
        .map(|name| folder.map_or_else(|| name.to_string(), |kit| format!("{kit}/{name}")))
        .filter(|file| {
            let path = Path::new(file);
            is_audio_file(path) || has_extension(path, &["g722"])
        })
        .collect()
}

/// Puts the kept clips of a class into `out/eval/CLASS/` (hard links into the cache where
/// possible) and removes anything else there.
pub(super) fn publish_eval_class(
    cfg: &CorpusConfig,
    class: &str,
    rows: &[&ManifestRow],
) -> Result<()> {
    let src_dir = cfg.cache_dir.join("evalclips").join(class);
    let dst_dir = cfg.out_dir.join("eval").join(class);
    fs::create_dir_all(&dst_dir)?;
    let keep: std::collections::HashSet<String> = rows
        .iter()
        .map(|r| r.path.to_string_lossy().into_owned())
        .collect();
    for f in walk(&dst_dir) {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !keep.contains(&name) {
            fs::remove_file(&f)?;
        }
    }
    for r in rows {
        let src = src_dir.join(&r.path);
        let dst = dst_dir.join(&r.path);
        let same = match (fs::metadata(&src), fs::metadata(&dst)) {
            (Ok(a), Ok(b)) => a.len() == b.len() && a.modified().ok() == b.modified().ok(),
            _ => false,
        };
        if same {
            continue;
        }
        let _ = fs::remove_file(&dst);
        if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// Takes the first clip of every source, then the second of every source, and so on.
fn round_robin(mut groups: Vec<Vec<Clip>>) -> Vec<Clip> {
    let mut out = Vec::new();
    for g in &mut groups {
        g.reverse();
    }
    loop {
        let mut any = false;
        for g in &mut groups {
            if let Some(c) = g.pop() {
                out.push(c);
                any = true;
            }
        }
        if !any {
            return out;
        }
    }
}

/// Speech: asterisk's G.722 prompts in five languages, one clip per prompt of at least
/// `min_clip_seconds`.
fn speech_clips(
    cfg: &CorpusConfig,
    pkgs: &[String],
    rng: &mut SplitMix64,
    pb: &ProgressBar,
    fails: &mut Vec<Failure>,
) -> Vec<Clip> {
    let quota = cfg.clips_per_class.div_ceil(pkgs.len());
    let rate = cfg.train_rate;
    let mut groups = Vec::new();
    for pkg in pkgs {
        let lang = pkg
            .trim_start_matches("asterisk-core-sounds-")
            .trim_end_matches("-g722");
        let mut files: Vec<PathBuf> = walk(&extracted_dir(&cfg.cache_dir, pkg))
            .into_iter()
            .filter(|p| has_extension(p, &["g722"]))
            .collect();
        rng.shuffle(&mut files);
        let mut clips = Vec::new();
        for path in files {
            if clips.len() >= quota {
                break;
            }
            let samples = match decode_g722(&path) {
                Ok(s) => resample(&s, 16000, rate),
                Err(e) => {
                    fail(pb, fails, &path, &e);
                    continue;
                }
            };
            let samples = trim_silence(&samples, rate);
            let Some(clip) = windows(&samples, rate, cfg, 1, rng).into_iter().next() else {
                continue;
            };
            if (clip.len() as f64) < cfg.min_clip_seconds * rate as f64 {
                continue;
            }
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let parent = path
                .parent()
                .and_then(|p| p.file_name())
                .unwrap_or_default()
                .to_string_lossy();
            clips.push(Clip {
                name: format!("{lang}_{}_{}.wav", sanitize(&parent), sanitize(&stem)),
                samples: clip,
                source: rel_string(&path, &cfg.cache_dir),
            });
            pb.inc(1);
        }
        groups.push(clips);
    }
    round_robin(groups)
}

/// Raw G.722 to 16 kHz samples through ffmpeg.
fn decode_g722(path: &Path) -> Result<Vec<f32>> {
    decode_with_ffmpeg(path, Some("g722"), 16_000)
}

/// Music: Frets on Fire songs, each the mix of its stems (`song.ogg` is the band without the
/// lead guitar, `guitar.ogg` the lead guitar), cut at positions spread over the song.
fn music_clips(
    cfg: &CorpusConfig,
    rng: &mut SplitMix64,
    pb: &ProgressBar,
    fails: &mut Vec<Failure>,
) -> Vec<Clip> {
    let rate = cfg.train_rate;
    let mut songs: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for pkg in ["fretsonfire-songs-muldjord", "fretsonfire-songs-sectoid"] {
        for f in walk(&extracted_dir(&cfg.cache_dir, pkg)) {
            if has_extension(&f, &["ogg"]) {
                let dir = f.parent().expect("a file has a parent").to_path_buf();
                songs.entry(dir).or_default().push(f);
            }
        }
    }
    let quota = cfg.clips_per_class.div_ceil(songs.len().max(1));
    let mut groups = Vec::new();
    for (dir, stems) in &songs {
        let mut mix: Vec<f32> = Vec::new();
        for stem in stems {
            match decode_mono(stem) {
                Ok(d) => {
                    let s = resample(&d.samples, d.sample_rate, rate);
                    if mix.len() < s.len() {
                        mix.resize(s.len(), 0.0);
                    }
                    for (m, v) in mix.iter_mut().zip(&s) {
                        *m += v;
                    }
                }
                Err(e) => fail(pb, fails, stem, &e),
            }
        }
        if mix.is_empty() {
            continue;
        }
        // Skip intros and outros.
        let edge = (5 * rate) as usize;
        let body = if mix.len() > 4 * edge {
            &mix[edge..mix.len() - edge]
        } else {
            &mix[..]
        };
        let song = sanitize(&dir.file_name().unwrap_or_default().to_string_lossy());
        let stems_rel: Vec<String> = stems
            .iter()
            .map(|s| rel_string(s, &cfg.cache_dir))
            .collect();
        let clips: Vec<Clip> = windows(body, rate, cfg, quota, rng)
            .into_iter()
            .filter(|w| dbfs(w) > -45.0)
            .enumerate()
            .map(|(i, w)| Clip {
                name: format!("{song}_{i:02}.wav"),
                samples: w,
                source: stems_rel.join("+"),
            })
            .collect();
        pb.inc(clips.len() as u64);
        groups.push(clips);
    }
    round_robin(groups)
}

/// Cuts up to `n` windows of `min_clip_seconds..max_clip_seconds` from `x`: a signal no longer
/// than the longest clip is returned whole; a longer one is split into `min(n, len / max)`
/// equal segments and one window of random length is taken at a random place in each.
fn windows(
    x: &[f32],
    rate: u32,
    cfg: &CorpusConfig,
    n: usize,
    rng: &mut SplitMix64,
) -> Vec<Vec<f32>> {
    let rate_f = rate as f64;
    let max = (cfg.max_clip_seconds * rate_f) as usize;
    let min = (cfg.min_clip_seconds * rate_f) as usize;
    if x.len() <= max {
        return if x.is_empty() {
            vec![]
        } else {
            vec![x.to_vec()]
        };
    }
    let segments = n.min(x.len() / max).max(1);
    let seg_len = x.len() / segments;
    (0..segments)
        .map(|i| {
            let len = min + rng.below(max.min(seg_len) + 1 - min);
            let start = i * seg_len + rng.below(seg_len - len + 1);
            let mut w = x[start..start + len].to_vec();
            fade(&mut w, rate, 0.01);
            w
        })
        .collect()
}

/// Splits `x` into `ceil(len / max)` equal contiguous pieces (each between half the longest
/// clip and the longest clip), using all of a short recording.
fn split_all(x: &[f32], rate: u32, cfg: &CorpusConfig) -> Vec<Vec<f32>> {
    let max = (cfg.max_clip_seconds * rate as f64) as usize;
    if x.len() <= max {
        return vec![x.to_vec()];
    }
    let n = x.len().div_ceil(max);
    let len = x.len() / n;
    (0..n)
        .map(|i| {
            let mut w = x[i * len..(i + 1) * len].to_vec();
            fade(&mut w, rate, 0.01);
            w
        })
        .collect()
}

/// Animals: tuxpaint's animal stamp sounds (not the spoken `_desc` descriptions), long ones
/// split into pieces.
fn animal_clips(cfg: &CorpusConfig, pb: &ProgressBar, fails: &mut Vec<Failure>) -> Vec<Clip> {
    let rate = cfg.train_rate;
    let root = extracted_dir(&cfg.cache_dir, "tuxpaint-stamps-default");
    let files: Vec<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| is_audio_file(p))
        .filter(|p| {
            let rel = rel_string(p, &root);
            rel.contains("/stamps/animals/")
                && !p
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .contains("_desc")
        })
        .collect();
    let mut groups = Vec::new();
    for path in files {
        let samples = match decode_mono(&path) {
            Ok(d) => resample(&d.samples, d.sample_rate, rate),
            Err(e) => {
                fail(pb, fails, &path, &e);
                continue;
            }
        };
        let samples = trim_silence(&samples, rate);
        if (samples.len() as f64) < cfg.min_file_seconds * rate as f64 {
            continue;
        }
        let stem = sanitize(&path.file_stem().unwrap_or_default().to_string_lossy());
        let source = rel_string(&path, &cfg.cache_dir);
        let clips: Vec<Clip> = split_all(&samples, rate, cfg)
            .into_iter()
            .enumerate()
            .map(|(i, w)| Clip {
                name: format!("{stem}_{i}.wav"),
                samples: w,
                source: source.clone(),
            })
            .collect();
        pb.inc(clips.len() as u64);
        groups.push(clips);
    }
    round_robin(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_files_name_each_recording_a_clip_was_cut_from() {
        assert_eq!(
            source_files("extracted/tuxpaint/animals/frog.ogg"),
            ["extracted/tuxpaint/animals/frog.ogg"]
        );
        assert_eq!(
            source_files("extracted/fof/songs/a/guitar.ogg+extracted/fof/songs/a/song.ogg"),
            [
                "extracted/fof/songs/a/guitar.ogg",
                "extracted/fof/songs/a/song.ogg"
            ]
        );
        assert_eq!(
            source_files("extracted/hydrogen/drumkits/Kit/{hat.wav+snare 2.wav+hat.wav}"),
            [
                "extracted/hydrogen/drumkits/Kit/hat.wav",
                "extracted/hydrogen/drumkits/Kit/snare 2.wav",
                "extracted/hydrogen/drumkits/Kit/hat.wav"
            ]
        );
        assert_eq!(
            source_files("extracted/asterisk-en/sounds/en/vm-opts.g722"),
            ["extracted/asterisk-en/sounds/en/vm-opts.g722"]
        );
        assert!(source_files(
            "extracted/fluid/sf2/FluidR3_GM.sf2 (program 64, midi/v3/gm064_soprano_sax_0.mid)"
        )
        .is_empty());
    }

    #[test]
    fn windows_stay_in_bounds() {
        let cfg = CorpusConfig::default();
        let mut rng = SplitMix64(7);
        let x = vec![0.1f32; 22050 * 60];
        let w = windows(&x, 22050, &cfg, 15, &mut rng);
        assert_eq!(w.len(), 12);
        for c in &w {
            assert!(c.len() >= 2 * 22050 && c.len() <= 5 * 22050);
        }
        let pieces = split_all(&vec![0.1f32; 22050 * 7], 22050, &cfg);
        assert_eq!(pieces.len(), 2);
    }
}
