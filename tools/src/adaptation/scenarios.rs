//! Offline: `echoic adapt-eval`, whether adapting helps where it was adapted (issue 15's first
//! target).
//!
//! Two scenarios, each with its own material:
//! - **drum types**: the hydrogen-drumkits kits, alternately assigned to adaptation and to
//!   measurement; one-shots labelled kick, snare, hi-hat, cymbal or tom from their file names
//!   ([`drum_label`]); the source of a clip is its kit;
//! - **languages**: the asterisk prompts in English, Spanish, French, Italian and Russian; the
//!   prompts adapted on and the prompts measured on are disjoint by name (`digits/1`, …), which
//!   is a clip's source.
//!
//! Each scenario adapts the model on about [`ScenarioConfig::history_seconds`] of its adaptation
//! material played one piece after another, then measures the learned-sound ROC-AUC
//! ([`learned_sound_auc`], through the plugin's `LearnedSounds`) on the measurement clips four
//! ways: the base model; the base weights with the principal axes refitted on the history; the
//! adapted weights with the base's axes; the adapted weights with the refitted axes. Each clip is
//! preceded by the dilated buffer's span of silence, so that its hops are usable from its onset.
//!
//! The general figures (`echoic eval`'s [`evaluate`]) of the base and of each adapted model (with
//! the axes [`AdaptConfig::refit_axes`] asks for) check that adapting did not cost hearing
//! elsewhere: on the whole evaluation set, and on the rest of it (issue 15's measure), without
//! the clips of the packages the scenario adapted on (the set's drums class comes from
//! hydrogen-drumkits, its speech class from the asterisk prompts). Each scenario adapts
//! [`ScenarioConfig::runs`] times with consecutive seeds, since one run's figures move with its
//! seed.

use super::{adapt_model, listen};
use crate::audio_file::decode_mono_at;
use crate::corpus::packages::decode_with_ffmpeg;
use crate::evaluation::auc::{learned_sound_auc, similarity_rows, LabelledClips, LearnedSoundAuc};
use crate::evaluation::{evaluate, evaluate_without, EvalReport};
use crate::train::model::Autoencoder;
use anyhow::{ensure, Context, Result};
use echoic_core::listener::adapt::{AdaptConfig, AdaptReport, Adapted};
use echoic_core::listener::encoder::Device;
use echoic_core::listener::Listener;
use echoic_core::rng::SplitMix64;
use echoic_core::worker::ListenSettings;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The five drum types, in label order.
pub const DRUM_TYPES: [&str; 5] = ["kick", "snare", "hi-hat", "cymbal", "tom"];

/// The asterisk prompt languages, in label order.
pub const LANGUAGES: [&str; 5] = ["en", "es", "fr", "it", "ru"];

/// Silence between the pieces of an adaptation history: a gap as between takes.
const GAP_SECONDS: f64 = 0.25;

/// What `echoic adapt-eval` measures and how.
#[derive(Clone, Debug)]
pub struct ScenarioConfig {
    /// The extracted Debian packages (`data/extracted`).
    pub data: PathBuf,
    /// The labelled evaluation folder for the general figures; `None` skips them.
    pub eval_dir: Option<PathBuf>,
    /// Seconds of adaptation history per scenario.
    pub history_seconds: f64,
    /// Most measurement clips per class.
    pub clips_per_class: usize,
    /// Most seconds of a measurement clip, and of one piece of history.
    pub clip_seconds: f64,
    /// Rate the audio is decoded at, Hz: the training corpus' rate.
    pub rate: u32,
    /// Seed of the material's shuffles.
    pub seed: u64,
    /// How to adapt.
    pub adapt: AdaptConfig,
    /// Adaptation runs per scenario, with the seeds `adapt.seed`, `adapt.seed + 1`, …: one
    /// run's figures move with its seed by about ±0.01, so several runs' mean is the measure.
    pub runs: usize,
}

impl Default for ScenarioConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::from("data/extracted"),
            eval_dir: Some(PathBuf::from("data/corpus/eval")),
            history_seconds: 180.0,
            clips_per_class: 40,
            clip_seconds: 2.0,
            rate: 22_050,
            seed: 15,
            adapt: AdaptConfig::default(),
            runs: 3,
        }
    }
}

/// One measurement clip: mono audio at the scenario's rate, its class and its source.
struct Clip {
    /// The audio, at most [`ScenarioConfig::clip_seconds`].
    samples: Vec<f32>,
    /// Index into the scenario's classes.
    label: usize,
    /// What recording it comes from (a kit, a prompt name).
    source: String,
}

/// A scenario's material.
struct Material {
    /// The scenario's name.
    name: &'static str,
    /// Class names, in label order.
    classes: Vec<String>,
    /// The adaptation pieces, in the order they are played.
    history: Vec<Vec<f32>>,
    /// The measurement clips.
    clips: Vec<Clip>,
    /// The Debian packages the material comes from: the general figures of "the rest of the
    /// evaluation set" leave their clips out.
    packages: Vec<String>,
}

/// One scenario's results.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// The scenario's name.
    pub name: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Clips measured.
    pub clips: usize,
    /// Seconds of history adapted on.
    pub history_seconds: f64,
    /// The base model.
    pub before: LearnedSoundAuc,
    /// Base weights, principal axes refitted on the history.
    pub axes_only: LearnedSoundAuc,
    /// The Debian packages the scenario's material comes from.
    pub packages: Vec<String>,
    /// The general figures of the base model on the rest of the evaluation set (without the
    /// clips of `packages`), when asked for.
    pub rest_before: Option<EvalReport>,
    /// Which of the axes the adaptation asked for ([`AdaptConfig::refit_axes`]): the model the
    /// general figures measure.
    pub refit_axes: bool,
    /// Each adaptation run, in seed order.
    pub runs: Vec<AdaptationRun>,
}

/// One adaptation run of a scenario.
#[derive(Clone, Debug)]
pub struct AdaptationRun {
    /// Its seed ([`AdaptConfig::seed`]).
    pub seed: u64,
    /// Adapted weights with the base model's principal axes.
    pub base_axes: LearnedSoundAuc,
    /// Adapted weights with the axes refitted on the history.
    pub refitted_axes: LearnedSoundAuc,
    /// What adaptation did (its `seconds` is the wall time of the adaptation alone).
    pub report: AdaptReport,
    /// The general figures of the adapted model on the whole evaluation set, when asked for.
    pub general: Option<EvalReport>,
    /// Its general figures on the rest of the evaluation set (see
    /// [`ScenarioResult::rest_before`]), when asked for.
    pub rest: Option<EvalReport>,
}

impl AdaptationRun {
    /// The learned-sound AUC of the model the adaptation asked for (`refit_axes`).
    pub fn chosen(&self, refit_axes: bool) -> &LearnedSoundAuc {
        if refit_axes {
            &self.refitted_axes
        } else {
            &self.base_axes
        }
    }
}

/// Everything `echoic adapt-eval` measured.
#[derive(Clone, Debug)]
pub struct AdaptEvaluation {
    /// The scenarios, drums first.
    pub scenarios: Vec<ScenarioResult>,
    /// The general figures of the base model, when asked for.
    pub general_before: Option<EvalReport>,
}

/// The drum type of a one-shot from the words of its file name (letters only, lower-cased), as
/// an index into [`DRUM_TYPES`]: a word holding `crash`, `ride`, `cymbal`, `china` or `splash`,
/// or `rd`, `cra`, is a cymbal; one holding `hh` or `hat` a hi-hat; `kick…`, `bd` or `bass…` a
/// kick; `…snare…`, `sn` or `sd` a snare; `…tom…` or `tm` a tom (checked in that order). `None`
/// for anything else (claps, cowbells, percussion). Allocates the words.
pub fn drum_label(file_name: &str) -> Option<usize> {
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    let lower = stem.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    let any = |test: &dyn Fn(&str) -> bool| words.iter().any(|w| test(w));
    let cymbal = ["crash", "ride", "cymbal", "china", "splash"];
    if any(&|w| cymbal.iter().any(|c| w.contains(c)) || w == "rd" || w == "cra") {
        Some(3)
    } else if any(&|w| w.contains("hh") || w.contains("hat")) {
        Some(2)
    } else if any(&|w| w.contains("kick") || w == "bd" || w.starts_with("bass")) {
        Some(0)
    } else if any(&|w| w.contains("snare") || w == "sn" || w == "sd") {
        Some(1)
    } else if any(&|w| w.contains("tom") || w == "tm") {
        Some(4)
    } else {
        None
    }
}

/// At most `seconds` of `samples` at `rate`. Allocates.
fn head(mut samples: Vec<f32>, rate: u32, seconds: f64) -> Vec<f32> {
    samples.truncate((seconds * f64::from(rate)) as usize);
    samples
}

/// Files with one of `extensions` under `dir`, sorted. Allocates; reads directories.
fn files_under(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if crate::audio_file::has_extension(&path, extensions) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The drum scenario's material (module documentation). Allocates; decodes files.
fn drums(cfg: &ScenarioConfig) -> Result<Material> {
    let root = cfg
        .data
        .join("hydrogen-drumkits/usr/share/hydrogen/data/drumkits");
    let mut kits: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    kits.sort();
    let extensions = ["wav", "flac", "aif", "aiff"];
    let decode = |path: &Path| decode_mono_at(path, cfg.rate).map(|a| a.samples);
    let mut history = Vec::new();
    let mut per_class: Vec<Vec<(String, PathBuf)>> = vec![Vec::new(); DRUM_TYPES.len()];
    for (k, kit) in kits.iter().enumerate() {
        let name = kit.file_name().unwrap_or_default().to_string_lossy();
        for path in files_under(kit, &extensions)? {
            if k % 2 == 0 {
                if let Ok(samples) = decode(&path) {
                    history.push(head(samples, cfg.rate, cfg.clip_seconds));
                }
            } else if let Some(label) = drum_label(&path.file_name().unwrap().to_string_lossy()) {
                per_class[label].push((name.to_string(), path));
            }
        }
    }
    let mut clips = Vec::new();
    for (label, candidates) in per_class.iter().enumerate() {
        for (kit, path) in round_robin(candidates, cfg.clips_per_class) {
            if let Ok(samples) = decode(path) {
                clips.push(Clip {
                    samples: head(samples, cfg.rate, cfg.clip_seconds),
                    label,
                    source: kit.clone(),
                });
            }
        }
    }
    SplitMix64(cfg.seed).shuffle(&mut history);
    Ok(Material {
        name: "drum types",
        classes: DRUM_TYPES.iter().map(|s| s.to_string()).collect(),
        history,
        clips,
        packages: vec!["hydrogen-drumkits".to_string()],
    })
}

/// Up to `n` of `(source, item)` pairs taken from each source in turn, so that the sources
/// share the places evenly. Allocates.
fn round_robin<T>(items: &[(String, T)], n: usize) -> Vec<&(String, T)> {
    let sources: BTreeSet<&str> = items.iter().map(|(s, _)| s.as_str()).collect();
    let mut queues: Vec<Vec<&(String, T)>> = sources
        .iter()
        .map(|s| items.iter().filter(|(t, _)| t == s).rev().collect())
        .collect();
    let mut out = Vec::new();
    while out.len() < n && queues.iter().any(|q| !q.is_empty()) {
        for queue in &mut queues {
            if let Some(item) = queue.pop() {
                if out.len() < n {
                    out.push(item);
                }
            }
        }
    }
    out
}

/// The language scenario's material (module documentation). Allocates; decodes through ffmpeg.
fn languages(cfg: &ScenarioConfig) -> Result<Material> {
    // Every language's prompts by name: the path under its voice's folder
    // (`sounds/en_US_f_Allison/digits/1.g722` is `digits/1.g722`).
    let mut prompts: Vec<std::collections::BTreeMap<String, PathBuf>> = Vec::new();
    for language in LANGUAGES {
        let dir = cfg.data.join(format!(
            "asterisk-core-sounds-{language}-g722/usr/share/asterisk/sounds"
        ));
        let files = files_under(&dir, &["g722"])?;
        ensure!(!files.is_empty(), "no prompts under {}", dir.display());
        let key = |p: &Path| {
            let inside = p.strip_prefix(&dir).unwrap_or(p).components().skip(1);
            inside.collect::<PathBuf>().display().to_string()
        };
        prompts.push(files.into_iter().map(|p| (key(&p), p)).collect());
    }
    let mut names: Vec<&String> = prompts.iter().flat_map(|p| p.keys()).collect();
    names.sort();
    names.dedup();
    SplitMix64(cfg.seed).shuffle(&mut names);
    let decode = |path: &Path| -> Result<Vec<f32>> {
        Ok(head(
            decode_with_ffmpeg(path, Some("g722"), cfg.rate)?,
            cfg.rate,
            cfg.clip_seconds,
        ))
    };
    // Adaptation: prompts in name order until each language has its share of the history.
    let share = cfg.history_seconds / LANGUAGES.len() as f64;
    let mut heard = [0.0f64; LANGUAGES.len()];
    let mut history = Vec::new();
    let mut next = 0;
    while next < names.len() && heard.iter().any(|&s| s < share) {
        for (l, language) in prompts.iter().enumerate() {
            if let (true, Some(path)) = (heard[l] < share, language.get(names[next])) {
                let samples = decode(path)?;
                heard[l] += samples.len() as f64 / f64::from(cfg.rate) + GAP_SECONDS;
                history.push(samples);
            }
        }
        next += 1;
    }
    // Measurement: the following prompts, none of them adapted on in any language.
    let mut clips = Vec::new();
    let mut counts = [0usize; LANGUAGES.len()];
    for name in &names[next..] {
        for (l, language) in prompts.iter().enumerate() {
            if let (true, Some(path)) = (counts[l] < cfg.clips_per_class, language.get(*name)) {
                clips.push(Clip {
                    samples: decode(path)?,
                    label: l,
                    source: (*name).clone(),
                });
                counts[l] += 1;
            }
        }
    }
    SplitMix64(cfg.seed ^ 1).shuffle(&mut history);
    Ok(Material {
        name: "languages",
        classes: LANGUAGES.iter().map(|s| s.to_string()).collect(),
        history,
        clips,
        packages: LANGUAGES
            .iter()
            .map(|l| format!("asterisk-core-sounds-{l}-g722"))
            .collect(),
    })
}

/// The history of `pieces` played one after another with a short gap, cycled until `seconds`
/// of it are heard (a scenario with less material repeats it), as cochlear frames. Allocates.
fn history_of(
    pieces: &[Vec<f32>],
    seconds: f64,
    rate: u32,
    settings: &ListenSettings,
) -> Result<Vec<f32>> {
    ensure!(!pieces.is_empty(), "no adaptation material");
    let target = (seconds * f64::from(rate)) as usize;
    let gap = vec![0.0; (GAP_SECONDS * f64::from(rate)) as usize];
    let mut stream = Vec::with_capacity(target);
    for piece in pieces.iter().cycle() {
        if stream.len() >= target {
            break;
        }
        stream.extend_from_slice(piece);
        stream.extend_from_slice(&gap);
    }
    stream.truncate(target);
    let mut history = Vec::new();
    listen(&stream, rate, settings, &mut history)?;
    Ok(history)
}

/// Each clip's usable dilated buffers (dB), each clip preceded by the buffer's span of
/// silence so that its hops are usable from its onset. Allocates.
fn clip_buffers(clips: &[Clip], rate: u32, settings: &ListenSettings) -> Result<Vec<Vec<f32>>> {
    let pad = (settings.spec.span_seconds(settings.hop_seconds) * f64::from(rate)) as usize;
    clips
        .iter()
        .map(|clip| {
            let mut samples = vec![0.0; pad];
            samples.extend_from_slice(&clip.samples);
            let analysis = crate::offline::analyse(&samples, f64::from(rate), settings, true)?;
            Ok(analysis
                .usable()
                .flat_map(|i| analysis.buffer(i).iter().copied())
                .collect())
        })
        .collect()
}

/// The learned-sound AUC of `listener` over the clips (their `buffers`), compared on the
/// listener's principal axes as the plugin's similarity compares. Allocates.
fn measure(
    listener: &Listener,
    buffers: &[Vec<f32>],
    clips: &[Clip],
    n_classes: usize,
) -> Result<LearnedSoundAuc> {
    let pca = listener
        .metadata()
        .pca
        .as_ref()
        .filter(|p| p.validate(listener.latent_dim()).is_ok())
        .context("the model has no usable principal axes")?;
    let latent = listener.latent_dim();
    let mut hops: Vec<Range<usize>> = Vec::new();
    let mut mapped = Vec::new();
    for clip in buffers {
        let n = clip.len() / listener.sequence_len();
        let embedded = listener.embed_batch(clip, n)?;
        let first = hops.last().map_or(0, |r| r.end);
        hops.push(first..first + n);
        mapped.extend(similarity_rows(&embedded, latent, pca));
    }
    let labels: Vec<usize> = clips.iter().map(|c| c.label).collect();
    let keys: Vec<&str> = clips.iter().map(|c| c.source.as_str()).collect();
    let distinct: Vec<&str> = keys
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let sources: Vec<usize> = keys
        .iter()
        .map(|k| distinct.binary_search(k).unwrap_or(0))
        .collect();
    let hop_seconds = listener.metadata().features.hop_seconds;
    Ok(learned_sound_auc(
        &mapped,
        pca.n_axes(),
        &LabelledClips {
            hops: &hops,
            labels: &labels,
            sources: &sources,
            n_classes,
        },
        hop_seconds,
    ))
}

/// The general figures of a model's parts on the evaluation folder, and on its clips from none
/// of `left_out`. Allocates; reads clips.
fn general(adapted: &Adapted, dir: &Path, left_out: &[&str]) -> Result<[EvalReport; 2]> {
    let listener = adapted.listener(Device::Cpu)?;
    let autoencoder =
        Autoencoder::from_parts(adapted.metadata.clone(), &adapted.tensors, Device::Cpu)?;
    Ok([
        evaluate(&listener, &autoencoder, dir, |_| {})?,
        evaluate_without(&listener, &autoencoder, dir, left_out, |_| {})?,
    ])
}

/// Runs both scenarios on the model file `base_bytes` (module documentation), saying what it
/// does through `say`. Allocates; decodes files; runs ffmpeg.
pub fn evaluate_adaptation(
    base_bytes: &[u8],
    cfg: &ScenarioConfig,
    mut say: impl FnMut(String),
) -> Result<AdaptEvaluation> {
    let base = Listener::from_bytes_on(base_bytes, Device::Cpu)?;
    let settings = base.metadata().features.to_settings();
    let general_before = match &cfg.eval_dir {
        Some(dir) => {
            say(format!(
                "general figures of the base model on {}",
                dir.display()
            ));
            let autoencoder = Autoencoder::from_bytes(base_bytes)?;
            Some(evaluate(&base, &autoencoder, dir, |_| {})?)
        }
        None => None,
    };
    let mut scenarios = Vec::new();
    for scenario in [drums as fn(&ScenarioConfig) -> Result<Material>, languages] {
        let material = scenario(cfg)?;
        say(format!(
            "{}: {} adaptation pieces, {} measurement clips",
            material.name,
            material.history.len(),
            material.clips.len()
        ));
        let left_out: Vec<&str> = material.packages.iter().map(String::as_str).collect();
        let rest_before = match &cfg.eval_dir {
            Some(dir) => {
                let autoencoder = Autoencoder::from_bytes(base_bytes)?;
                Some(evaluate_without(
                    &base,
                    &autoencoder,
                    dir,
                    &left_out,
                    |_| {},
                )?)
            }
            None => None,
        };
        let history = history_of(&material.history, cfg.history_seconds, cfg.rate, &settings)?;
        let buffers = clip_buffers(&material.clips, cfg.rate, &settings)?;
        let n_classes = material.classes.len();
        let before = measure(&base, &buffers, &material.clips, n_classes)?;
        let axes = AdaptConfig {
            max_epochs: 0,
            refit_axes: true,
            ..cfg.adapt
        };
        let axes_only = adapt_model(base_bytes, &history, &axes, |_| {})?;
        let axes_only = measure(
            &axes_only.listener(Device::Cpu)?,
            &buffers,
            &material.clips,
            n_classes,
        )?;
        let mut runs = Vec::new();
        for seed in (0..cfg.runs.max(1) as u64).map(|k| cfg.adapt.seed.wrapping_add(k)) {
            say(format!(
                "{}: adapting on {} frames, seed {seed}",
                material.name,
                history.len() / settings.n_bands
            ));
            // One run with the axes refitted; the same weights with the base's axes are
            // exactly what a run without the refit returns.
            let refit = AdaptConfig {
                refit_axes: true,
                seed,
                ..cfg.adapt
            };
            let refitted = adapt_model(base_bytes, &history, &refit, |_| {})?;
            let mut kept = refitted.clone();
            kept.metadata.pca = base.metadata().pca.clone();
            let adapted = if cfg.adapt.refit_axes {
                &refitted
            } else {
                &kept
            };
            let [base_axes, refitted_axes] = [&kept, &refitted].map(|model| {
                let listener = model.listener(Device::Cpu)?;
                measure(&listener, &buffers, &material.clips, n_classes)
            });
            let [general, rest] = match &cfg.eval_dir {
                Some(dir) => {
                    say(format!(
                        "{}: general figures of the adapted model",
                        material.name
                    ));
                    general(adapted, dir, &left_out)?.map(Some)
                }
                None => [None, None],
            };
            runs.push(AdaptationRun {
                seed,
                base_axes: base_axes?,
                refitted_axes: refitted_axes?,
                report: adapted.report.clone(),
                general,
                rest,
            });
        }
        scenarios.push(ScenarioResult {
            name: material.name.to_string(),
            classes: material.classes,
            clips: material.clips.len(),
            history_seconds: runs[0].report.history_seconds,
            before,
            axes_only,
            packages: material.packages,
            rest_before,
            refit_axes: cfg.adapt.refit_axes,
            runs,
        });
    }
    Ok(AdaptEvaluation {
        scenarios,
        general_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drum_types_come_from_file_names() {
        let cases = [
            ("BD_01.aiff", Some(0)),
            ("Kick-Softest.wav", Some(0)),
            ("bass drum 2.flac", Some(0)),
            (
                "25671__walter-odington__garage-city-snare-snappy.wav",
                Some(1),
            ),
            ("SN_03.aiff", Some(1)),
            ("HH2_05.aiff", Some(2)),
            ("116973__cbeeching__hat-light.wav", Some(2)),
            ("124101__connersaw8__crash.wav", Some(3)),
            ("Ride_Bell.wav", Some(3)),
            ("RD_05.aiff", Some(3)),
            ("cra_Rock_a.flac", Some(3)),
            ("hhopen_03.flac", Some(2)),
            ("Hard_CHH_02.flac", Some(2)),
            ("TM2_08.aiff", Some(4)),
            ("PearlTomFloor-Softest.wav", Some(4)),
            ("101450__menegass__tomh.wav", Some(4)),
            ("CB2_01.aiff", None),
            ("156272__dayvonjersen__fxshake5.wav", None),
        ];
        for (name, label) in cases {
            assert_eq!(drum_label(name), label, "{name}");
        }
    }

    #[test]
    fn round_robin_shares_places_between_sources() {
        let items: Vec<(String, usize)> = [("a", 1), ("a", 2), ("a", 3), ("b", 4)]
            .iter()
            .map(|(s, i)| (s.to_string(), *i))
            .collect();
        let picked: Vec<usize> = round_robin(&items, 3).iter().map(|p| p.1).collect();
        assert_eq!(picked, [1, 4, 2]);
    }
}
