//! Drums: evaluation patterns sequenced from the hydrogen kits' one-shots. Offline: decodes
//! files and allocates.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use echoic_core::rng::SplitMix64;
use indicatif::ProgressBar;

use super::evaluation::Clip;
use super::packages::{extracted_dir, walk};
use super::signal::{dbfs, fade, trim_silence, SILENCE_DBFS};
use super::{fail, rel_string, sanitize, CorpusConfig, Failure};
use crate::audio_file::{decode_mono, is_audio_file, resample};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DrumRole {
    Kick,
    Snare,
    Hat,
    Other,
}

/// Guesses a one-shot's role in a kit from its file name.
fn drum_role(name: &str) -> DrumRole {
    let n = name.to_ascii_lowercase();
    let tokens: Vec<&str> = n
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|t| !t.is_empty())
        .collect();
    let token_starts = |prefixes: &[&str]| {
        tokens
            .iter()
            .any(|t| prefixes.iter().any(|p| t.starts_with(p)))
    };
    if n.contains("kick") || n.contains("bassdrum") || token_starts(&["bd"]) || n.contains("bass") {
        DrumRole::Kick
    } else if n.contains("snare")
        || n.contains("clap")
        || n.contains("slap")
        || token_starts(&["sn", "sd", "rim", "rs"])
    {
        DrumRole::Snare
    } else if n.contains("hat")
        || n.contains("ride")
        || n.contains("shaker")
        || token_starts(&["hh", "rd", "rc", "chh", "ohh", "ho"])
    {
        DrumRole::Hat
    } else {
        DrumRole::Other
    }
}

pub(super) fn drum_clips(
    cfg: &CorpusConfig,
    rng: &mut SplitMix64,
    pb: &ProgressBar,
    fails: &mut Vec<Failure>,
) -> Vec<Clip> {
    let rate = cfg.train_rate;
    let root = extracted_dir(&cfg.cache_dir, "hydrogen-drumkits");
    let mut kits: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for f in walk(&root) {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_lowercase();
        if is_audio_file(&f) && !name.contains("empty") {
            let kit = f.parent().expect("a file has a parent").to_path_buf();
            kits.entry(kit).or_default().push(f);
        }
    }
    let kits: Vec<(PathBuf, Vec<PathBuf>)> = kits.into_iter().collect();
    if kits.is_empty() {
        return vec![];
    }
    let mut cache: HashMap<PathBuf, Option<Vec<f32>>> = HashMap::new();
    let mut load = |path: &Path, fails: &mut Vec<Failure>| -> Option<Vec<f32>> {
        cache
            .entry(path.to_path_buf())
            .or_insert_with(|| match decode_mono(path) {
                Ok(d) => {
                    let s = trim_silence(&resample(&d.samples, d.sample_rate, rate), rate);
                    (!s.is_empty()).then_some(s)
                }
                Err(e) => {
                    fail(pb, fails, path, &e);
                    None
                }
            })
            .clone()
    };

    let mut clips = Vec::new();
    let mut attempts = 0;
    while clips.len() < cfg.clips_per_class && attempts < cfg.clips_per_class * 3 {
        let (kit, files) = &kits[attempts % kits.len()];
        attempts += 1;
        // One sample per role, falling back on any sample of the kit.
        let mut chosen: Vec<(DrumRole, PathBuf, Vec<f32>)> = Vec::new();
        for role in [
            DrumRole::Kick,
            DrumRole::Snare,
            DrumRole::Hat,
            DrumRole::Other,
        ] {
            let mut pool: Vec<&PathBuf> = files
                .iter()
                .filter(|f| drum_role(&f.file_name().unwrap_or_default().to_string_lossy()) == role)
                .collect();
            if pool.is_empty() {
                pool = files.iter().collect();
            }
            let pick = pool[rng.below(pool.len())];
            if let Some(s) = load(pick, fails) {
                chosen.push((role, pick.clone(), s));
            }
        }
        if chosen.is_empty() {
            continue;
        }
        let bpm = 80.0 + 80.0 * rng.next_f64();
        let step = 60.0 / bpm / 4.0;
        let bar = 16.0 * step;
        let target = cfg.min_clip_seconds
            + (cfg.max_clip_seconds - cfg.min_clip_seconds - 0.5) * rng.next_f64();
        let mut bars = ((target / bar).round() as usize).max(1);
        // The pattern plus the last hit's 0.4 s tail must make a whole clip.
        while bars as f64 * bar + 0.4 < cfg.min_clip_seconds {
            bars += 1;
        }
        let steps = 16 * bars;
        let len_s = (steps as f64 * step + 0.4).min(cfg.max_clip_seconds);
        let len = (len_s * rate as f64) as usize;
        let mut mix = vec![0.0f32; len];
        let hat_every = if bpm < 110.0 && rng.next_f64() < 0.5 {
            1
        } else {
            2
        };
        let kick_extra: Vec<usize> = [3usize, 6, 7, 10, 11, 14]
            .into_iter()
            .filter(|_| rng.next_f64() < 0.3)
            .collect();
        let other_steps: Vec<usize> = (0..steps).filter(|_| rng.next_f64() < 0.06).collect();
        for s in 0..steps {
            let pos = s % 16;
            for (role, _, sample) in &chosen {
                let (hit, gain) = match role {
                    DrumRole::Kick => (pos == 0 || pos == 8 || kick_extra.contains(&pos), 0.9),
                    DrumRole::Snare => (
                        pos == 4 || pos == 12 || (pos % 2 == 1 && rng.next_f64() < 0.05),
                        0.8,
                    ),
                    DrumRole::Hat => (pos % hat_every == 0 && rng.next_f64() < 0.92, 0.5),
                    DrumRole::Other => (other_steps.contains(&s), 0.6),
                };
                if !hit {
                    continue;
                }
                let velocity = gain * (0.7 + 0.3 * rng.next_f64()) as f32;
                let at = (s as f64 * step * rate as f64) as usize;
                for (m, v) in mix[at.min(len)..].iter_mut().zip(sample) {
                    *m += velocity * v;
                }
            }
        }
        fade(&mut mix, rate, 0.02);
        if dbfs(&mix) < SILENCE_DBFS {
            continue;
        }
        let kit_name = sanitize(&kit.file_name().unwrap_or_default().to_string_lossy());
        let used: Vec<String> = chosen
            .iter()
            .map(|(_, p, _)| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        clips.push(Clip {
            name: format!("pattern{:03}_{kit_name}.wav", clips.len()),
            samples: mix,
            source: format!("{}/{{{}}}", rel_string(kit, &cfg.cache_dir), used.join("+")),
        });
        pb.inc(1);
    }
    clips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drum_roles_follow_names() {
        assert_eq!(drum_role("BD_01.aiff"), DrumRole::Kick);
        assert_eq!(drum_role("EE_Kick_Hard_1.flac"), DrumRole::Kick);
        assert_eq!(drum_role("jsnare_02.flac"), DrumRole::Snare);
        assert_eq!(drum_role("sd_01.flac"), DrumRole::Snare);
        assert_eq!(drum_role("HiHatClosed-0.wav"), DrumRole::Hat);
        assert_eq!(drum_role("hhclosed_01.flac"), DrumRole::Hat);
        assert_eq!(drum_role("tom1_1.flac"), DrumRole::Other);
    }
}
