//! `echoic corpus`: builds the training corpus and the labelled evaluation set from Debian
//! packages.
//!
//! Offline code: everything here allocates, shells out (`apt-get`, `dpkg-deb`, `ffmpeg`,
//! `fluidsynth`) and writes files. Never call it from the audio thread.
//!
//! # Layout
//! Under the cache directory (`data/` by default):
//! - `debs/PKG_*.deb`: what `apt-get download PKG` fetched;
//! - `extracted/PKG/`: `dpkg-deb -x` of it;
//! - `unzipped/PKG/ARCHIVE/`: the audio members of the zip archives in it (warzone2100's `.wz`,
//!   openarena's `.pk3`, 0ad-data's `public.zip`);
//! - `midi/vN/`: the MIDI phrases generated for the instrument class and their fluidsynth renders;
//! - `rendered/vN/PKG/FONT/`: phrases and drum grooves played by fluidsynth through the
//!   SoundFonts a training package ships, read as that package's audio;
//! - `evalclips/CLASS/`: every evaluation clip built for a class, up to the cap, with
//!   `clips.tsv` listing them.
//!
//! Under the output directory (`data/corpus/` by default):
//! - `train/PKG/NAME.wav`: training audio, mono 16-bit at `train_rate`, with `files.tsv`;
//! - `eval/CLASS/NAME.wav`: evaluation clips, mono 16-bit at `train_rate`, 2–5 s where the
//!   source allows (animal one-shots may be as short as `min_file_seconds`), RMS-normalised;
//! - `manifest.csv`: `split,class_or_package,path,seconds,source_file`, where `path` is relative
//!   to the output directory and `source_file` to the cache directory.
//!
//! Every step skips work whose output already exists, so an interrupted run resumes, and a
//! file that fails is reported by name while the batch goes on.
//!
//! # Evaluation files stay out of training
//! No package is both a training and an evaluation package ([`check_disjoint`]). A training
//! file that is a byte-identical copy of any evaluation package's file, or a near copy (another
//! encoding, rate or level: see `near_copies`) of a recording an evaluation clip was cut from,
//! is left out, and the report says so. The evaluation clips are therefore built first.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::audio_file::write_wav_mono;

use evaluation::{build_eval_class, publish_eval_class, source_files};
use near_copies::{References, NEAR_COPY_CORRELATION};
use packages::fetch_package;
use training::{build_training_package, EvalFiles};

mod drums;
mod evaluation;
mod instruments;
mod near_copies;
pub(crate) mod packages;
mod signal;
mod soundfonts;
mod training;

pub(crate) use instruments::PHRASE_WORD;
pub(crate) use soundfonts::GROOVE_WORD;

/// Packages whose audio makes up the training corpus.
pub const TRAINING_PACKAGES: &[&str] = &[
    "hedgewars-data",
    "fillets-ng-data-cs",
    "klettres-data",
    "colobot-common-sounds",
    "megaglest-data",
    "lincity-ng-data",
    "warzone2100-data",
    "openarena-data",
    "sonic-pi-samples",
    "lmms-common",
    "wesnoth-1.16-music",
    "warzone2100-music",
    "ktuberling-data",
    "freedroidrpg-data",
    "supertux-data",
    "lugaru-data",
    "extremetuxracer-data",
];

/// Training packages of isolated instruments, drum grooves and animals: two General MIDI
/// SoundFonts, played by fluidsynth (`soundfonts`), and Scratch's sound library. Taken only
/// with [`CorpusConfig::with_instruments`] (`echoic corpus --with-instruments`), because the
/// shipped listeners were trained without them and their recipes must rebuild their corpus.
pub const INSTRUMENT_PACKAGES: &[&str] = &["scratch", "timgm6mb-soundfont", "csound-soundfont"];

/// Training packages too large to fetch unless asked for: `0ad-data` is a 1.4 GB download whose
/// `public.zip` holds 0 A.D.'s 1,800 recorded sounds (music, voices in four ancient languages,
/// about 60 animal calls, combat, work and ambience). Taken only with
/// [`CorpusConfig::with_large_packages`] (`echoic corpus --with-large-packages`), so that a
/// default build stays a small download and the shipped listeners' recipes rebuild their corpus.
pub const LARGE_PACKAGES: &[&str] = &["0ad-data"];

/// Training packages taken for their recorded animal calls, the evaluation's weakest class:
/// Widelands' birds, crickets, frog, coyote, moose, stag, wolves, boar, ducks and farm animals,
/// and Wesnoth's wolves, horses and bird ambiences (about 5 min of calls in all), with the two
/// games' music and effects. Taken only with [`CorpusConfig::with_animal_calls`] (`echoic
/// corpus --with-animal-calls`), because the shipped listeners were trained without them and
/// their recipes must rebuild their corpus. None of their calls is a copy of an evaluation
/// animal (the model card's near-copy check).
pub const ANIMAL_CALL_PACKAGES: &[&str] = &["widelands-data", "wesnoth-1.16-data"];

/// Packages the evaluation set is drawn from. Nothing from them may enter training.
pub const EVALUATION_PACKAGES: &[&str] = &[
    "asterisk-core-sounds-en-g722",
    "asterisk-core-sounds-es-g722",
    "asterisk-core-sounds-fr-g722",
    "asterisk-core-sounds-it-g722",
    "asterisk-core-sounds-ru-g722",
    "fretsonfire-songs-muldjord",
    "fretsonfire-songs-sectoid",
    "hydrogen-drumkits",
    "fluid-soundfont-gm",
    "tuxpaint-stamps-default",
];

/// The evaluation classes, in the order the manifest lists them.
pub const CLASSES: &[&str] = &["speech", "music", "drums", "instrument", "animal"];

/// What to build and where.
#[derive(Debug, Clone)]
pub struct CorpusConfig {
    /// Where `train/`, `eval/` and `manifest.csv` go; kept apart from the cache so that the
    /// corpus can be deleted and rebuilt from cached downloads.
    pub out_dir: PathBuf,
    /// Where downloads, extracted packages and intermediate renders are kept between runs, so
    /// that a rerun skips the slow steps.
    pub cache_dir: PathBuf,
    /// Sample rate of every written file in Hz; one rate for the whole corpus so the training
    /// and evaluation front ends see the same band.
    pub train_rate: u32,
    /// Cap on the training audio taken from one package, in minutes; `None` takes all of it.
    /// Training balances packages with sampling weights (`echoic train --package-balance`), so
    /// the corpus need not cut audio to stop one package dominating.
    pub max_minutes_per_package: Option<f64>,
    /// Cap on the clips made for each evaluation class.
    pub clips_per_class: usize,
    /// Trim every class to the size of the smallest one, so that accuracy is not biased
    /// towards the larger classes.
    pub balance_classes: bool,
    /// Shortest clip cut from a longer recording, in seconds.
    pub min_clip_seconds: f64,
    /// Longest evaluation clip, in seconds.
    pub max_clip_seconds: f64,
    /// Files (and one-shot clips) shorter than this, in seconds, are skipped as too short to
    /// carry a sound.
    pub min_file_seconds: f64,
    /// RMS level, in dBFS, every evaluation clip is normalised to (then lowered if its peak
    /// would clip), so that loudness tells nothing about the class.
    pub eval_rms_dbfs: f64,
    /// Seed of every random choice (file order, clip positions, phrases, patterns), so that a
    /// rerun makes the same corpus.
    pub seed: u64,
    /// Draw progress bars on the terminal.
    pub progress: bool,
    /// Add [`INSTRUMENT_PACKAGES`] to the training packages, for listeners trained on more
    /// instruments than the shipped ones heard.
    pub with_instruments: bool,
    /// Add [`LARGE_PACKAGES`] to the training packages, for listeners trained on more hours (and
    /// more animals) than a default download holds.
    pub with_large_packages: bool,
    /// Add [`ANIMAL_CALL_PACKAGES`] to the training packages, for listeners trained on more
    /// kinds of animal call than the default packages hold.
    pub with_animal_calls: bool,
    /// With [`with_instruments`](Self::with_instruments), also play each training SoundFont's
    /// drums one type at a time (kick, snare, hi-hat, cymbal, tom; 20 s each, eight per type),
    /// so that `echoic train --contrast-drum-types` has drum one-shots of each type to draw
    /// kind partners from: the other packages name only 47.
    pub with_drum_hits: bool,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        Self {
            out_dir: PathBuf::from("data/corpus"),
            cache_dir: PathBuf::from("data"),
            train_rate: 22050,
            max_minutes_per_package: None,
            clips_per_class: 120,
            balance_classes: true,
            min_clip_seconds: 2.0,
            max_clip_seconds: 5.0,
            min_file_seconds: 0.5,
            eval_rms_dbfs: -20.0,
            seed: 0x000E_C01C,
            progress: true,
            with_instruments: false,
            with_large_packages: false,
            with_animal_calls: false,
            with_drum_hits: false,
        }
    }
}

impl CorpusConfig {
    /// The packages this build trains on: [`TRAINING_PACKAGES`], and [`INSTRUMENT_PACKAGES`],
    /// [`LARGE_PACKAGES`] and [`ANIMAL_CALL_PACKAGES`] when asked for. Allocates.
    pub fn training_packages(&self) -> Vec<&'static str> {
        TRAINING_PACKAGES
            .iter()
            .chain(self.optional_packages(true))
            .copied()
            .collect()
    }

    /// The optional packages this build takes (`asked`) or leaves out (`!asked`): the one place
    /// that pairs each optional list with the option that takes it.
    fn optional_packages(&self, asked: bool) -> impl Iterator<Item = &'static &'static str> {
        [
            (INSTRUMENT_PACKAGES, self.with_instruments),
            (LARGE_PACKAGES, self.with_large_packages),
            (ANIMAL_CALL_PACKAGES, self.with_animal_calls),
        ]
        .into_iter()
        .filter(move |&(_, taken)| taken == asked)
        .flat_map(|(packages, _)| packages.iter())
    }
}

/// A file that could not be used, and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The file (or package) that failed.
    pub file: PathBuf,
    /// The error, as text.
    pub error: String,
}

/// What a corpus build produced.
#[derive(Debug, Clone, Default)]
pub struct CorpusReport {
    /// Minutes of training audio per package.
    pub train_minutes: BTreeMap<String, f64>,
    /// Training files per package.
    pub train_files: BTreeMap<String, usize>,
    /// Evaluation clips per class, after balancing.
    pub eval_clips: BTreeMap<String, usize>,
    /// Evaluation clips per class that were available before balancing.
    pub eval_clips_available: BTreeMap<String, usize>,
    /// Files and packages that failed; the build went on without them.
    pub failures: Vec<Failure>,
    /// Training candidates left out as copies of evaluation files, and the nearest one kept
    /// (found when a package's selection is made, so empty on a run that reuses it).
    pub copies: CopyReport,
    /// The manifest that was written.
    pub manifest: PathBuf,
}

impl CorpusReport {
    /// Total training minutes. Does not allocate.
    pub fn total_train_minutes(&self) -> f64 {
        self.train_minutes.values().sum()
    }
}

impl fmt::Display for CorpusReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "training (minutes, files):")?;
        for (pkg, min) in &self.train_minutes {
            let n = self.train_files.get(pkg).copied().unwrap_or(0);
            writeln!(f, "  {pkg:<28} {min:7.1} min {n:6} files")?;
        }
        writeln!(
            f,
            "  {:<28} {:7.1} min ({:.2} h)",
            "total",
            self.total_train_minutes(),
            self.total_train_minutes() / 60.0
        )?;
        writeln!(f, "evaluation (clips kept / available):")?;
        for (class, n) in &self.eval_clips {
            let avail = self.eval_clips_available.get(class).copied().unwrap_or(0);
            writeln!(f, "  {class:<28} {n:4} / {avail}")?;
        }
        for msg in &self.copies.left_out {
            writeln!(f, "{msg}")?;
        }
        if let Some((correlation, pair)) = &self.copies.closest_kept {
            writeln!(
                f,
                "closest training file kept to an evaluation recording of its length: {pair} \
                 (spectrogram correlation {correlation:.3}; a near copy from {NEAR_COPY_CORRELATION})"
            )?;
        }
        writeln!(f, "failures: {}", self.failures.len())?;
        for fail in &self.failures {
            writeln!(f, "  {}: {}", fail.file.display(), fail.error)?;
        }
        write!(f, "manifest: {}", self.manifest.display())
    }
}

/// Training candidates the guards against evaluation files left out, and how near the rest came.
#[derive(Debug, Clone, Default)]
pub struct CopyReport {
    /// One line per file left out, naming the evaluation file it copies.
    pub left_out: Vec<String>,
    /// The highest spectrogram correlation of a kept training file with an evaluation
    /// recording of its length, and the pair, so that a user can see how far under
    /// [`NEAR_COPY_CORRELATION`] the corpus's closest pair lies.
    pub closest_kept: Option<(f64, String)>,
}

impl CopyReport {
    /// Given the training file `rel`'s `closest` evaluation recording of its length, the line
    /// to leave it out with when it is a near copy; otherwise `None`, after remembering the
    /// pair if it is the closest kept so far. Allocates.
    fn near_copy(&mut self, rel: &str, closest: Option<near_copies::Closest>) -> Option<String> {
        let closest = closest?;
        if closest.correlation >= NEAR_COPY_CORRELATION {
            return Some(format!(
                "left out of training: {rel} is a near copy of evaluation file {} \
                 (spectrogram correlation {:.3})",
                closest.reference, closest.correlation
            ));
        }
        if self
            .closest_kept
            .as_ref()
            .is_none_or(|(c, _)| closest.correlation > *c)
        {
            self.closest_kept = Some((
                closest.correlation,
                format!("{rel} and {}", closest.reference),
            ));
        }
        None
    }
}

/// Checks that no package is both a training and an evaluation package.
///
/// Allocates: the error message, if any.
pub fn check_disjoint(training: &[&str], evaluation: &[&str]) -> Result<()> {
    for p in training {
        if evaluation.contains(p) {
            bail!("package {p} is listed for both training and evaluation");
        }
    }
    Ok(())
}

/// Builds the training corpus and the evaluation set described in the module documentation.
///
/// Allocates, runs external tools and writes files. Per-file failures are collected in the
/// report; an error is returned only when the build as a whole cannot go on (a directory that
/// cannot be created, the manifest that cannot be written, the package lists overlapping).
pub fn build_corpus(cfg: &CorpusConfig) -> Result<CorpusReport> {
    let training_packages = cfg.training_packages();
    check_disjoint(&training_packages, EVALUATION_PACKAGES)?;
    let train_dir = cfg.out_dir.join("train");
    let eval_dir = cfg.out_dir.join("eval");
    assert!(
        !train_dir.starts_with(&eval_dir) && !eval_dir.starts_with(&train_dir),
        "training and evaluation output directories must be separate"
    );
    for dir in [&train_dir, &eval_dir, &cfg.cache_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if cfg.min_clip_seconds > cfg.max_clip_seconds || cfg.min_file_seconds <= 0.0 {
        bail!("clip lengths are inconsistent: {cfg:?}");
    }

    let mut report = CorpusReport::default();
    let mut fails = Vec::new();

    // 1. Download and extract every package.
    let all: Vec<&str> = training_packages
        .iter()
        .chain(EVALUATION_PACKAGES)
        .copied()
        .collect();
    let pb = bar(cfg, all.len() as u64, "packages");
    let mut ready = Vec::new();
    for pkg in &all {
        pb.set_message(pkg.to_string());
        match fetch_package(&cfg.cache_dir, pkg) {
            Ok(()) => ready.push(*pkg),
            Err(e) => fail(&pb, &mut fails, Path::new(pkg), &e),
        }
        pb.inc(1);
    }
    pb.finish_with_message("downloaded and extracted");

    // 2. Evaluation clips, class by class, then balanced, first so that training can be
    // checked against the recordings they were cut from.
    let mut per_class: Vec<(&str, Vec<ManifestRow>)> = Vec::new();
    for class in CLASSES {
        match build_eval_class(cfg, class, &ready, &mut fails) {
            Ok(rows) => {
                report
                    .eval_clips_available
                    .insert(class.to_string(), rows.len());
                per_class.push((class, rows));
            }
            Err(e) => {
                fail(&ProgressBar::hidden(), &mut fails, Path::new(class), &e);
                report.eval_clips_available.insert(class.to_string(), 0);
            }
        }
    }
    let keep = if cfg.balance_classes {
        per_class.iter().map(|(_, r)| r.len()).min().unwrap_or(0)
    } else {
        usize::MAX
    };
    let mut eval_rows: Vec<ManifestRow> = Vec::new();
    for (class, rows) in &per_class {
        let kept: Vec<&ManifestRow> = rows.iter().take(keep).collect();
        publish_eval_class(cfg, class, &kept)?;
        report.eval_clips.insert(class.to_string(), kept.len());
        for r in kept {
            eval_rows.push(ManifestRow {
                split: "eval",
                group: class.to_string(),
                path: PathBuf::from("eval").join(class).join(&r.path),
                seconds: r.seconds,
                source: r.source.clone(),
            });
        }
    }
    for (class, n) in &report.eval_clips {
        if *n < 60 {
            eprintln!("warning: class {class} has only {n} clips (fewer than 60)");
        }
    }

    // 3. Training corpus, package by package, after taking out the optional packages an
    // earlier build with them left, since `echoic train` reads every folder of `train/`.
    for pkg in cfg.optional_packages(false) {
        let dir = train_dir.join(pkg);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    let mut sources: Vec<String> = eval_rows
        .iter()
        .flat_map(|r| source_files(&r.source))
        .collect();
    sources.sort();
    sources.dedup();
    let (references, unreadable) = References::decode(&cfg.cache_dir, &sources, cfg.train_rate);
    for (file, e) in unreadable {
        fail(&ProgressBar::hidden(), &mut fails, &file, &e);
    }
    let eval_files = EvalFiles::index(&cfg.cache_dir, references);
    let mut manifest_rows: Vec<ManifestRow> = Vec::new();
    for pkg in training_packages.iter().filter(|p| ready.contains(p)) {
        match build_training_package(cfg, pkg, &eval_files, &mut report.copies, &mut fails) {
            Ok(rows) => {
                let secs: f64 = rows.iter().map(|r| r.seconds).sum();
                report.train_minutes.insert(pkg.to_string(), secs / 60.0);
                report.train_files.insert(pkg.to_string(), rows.len());
                manifest_rows.extend(rows);
            }
            Err(e) => fail(&ProgressBar::hidden(), &mut fails, Path::new(pkg), &e),
        }
    }

    manifest_rows.extend(eval_rows);

    // 4. Manifest.
    let manifest = cfg.out_dir.join("manifest.csv");
    write_manifest(&manifest, &manifest_rows)?;
    report.manifest = manifest;
    report.failures = fails;
    Ok(report)
}

/// One line of the manifest.
#[derive(Debug, Clone)]
struct ManifestRow {
    split: &'static str,
    group: String,
    /// For training rows, relative to the output directory; for evaluation rows while they
    /// are built, the file name only.
    path: PathBuf,
    seconds: f64,
    /// Relative to the cache directory.
    source: String,
}

fn write_manifest(path: &Path, rows: &[ManifestRow]) -> Result<()> {
    let mut s = String::from("split,class_or_package,path,seconds,source_file\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{:.3},{}\n",
            r.split,
            csv_field(&r.group),
            csv_field(&r.path.to_string_lossy()),
            r.seconds,
            csv_field(&r.source)
        ));
    }
    write_atomic(path, s.as_bytes())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = part_path(path);
    fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Writes a wav through a `.part` file, so that an interrupted run never leaves a truncated
/// file under the final name.
fn write_wav_atomic(path: &Path, samples: &[f32], rate: u32) -> Result<()> {
    let tmp = part_path(path);
    write_wav_mono(&tmp, samples, rate)?;
    fs::rename(&tmp, path).with_context(|| format!("cannot rename to {}", path.display()))
}

fn bar(cfg: &CorpusConfig, len: u64, prefix: &str) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>22} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} {msg}",
        )
        .expect("the template is valid")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

fn fail(pb: &ProgressBar, fails: &mut Vec<Failure>, file: &Path, err: &dyn fmt::Display) {
    let msg = format!("failed: {}: {err:#}", file.display());
    if pb.is_hidden() {
        eprintln!("{msg}");
    } else {
        pb.println(msg);
    }
    fails.push(Failure {
        file: file.to_path_buf(),
        error: format!("{err:#}"),
    });
}

// ----------------------------------------------------------------------------------------------
// Names and the cache's indexes, shared by the training and evaluation steps

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn rel_string(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Reads a `files.tsv` / `clips.tsv` index if its first line is `key` and every file it lists
/// is in `dir`.
fn read_index(index: &Path, key: &str, dir: &Path) -> Option<Vec<(String, f64, String)>> {
    let text = fs::read_to_string(index).ok()?;
    let mut lines = text.lines();
    if lines.next()? != key {
        return None;
    }
    let mut entries = Vec::new();
    for line in lines {
        let mut parts = line.splitn(3, '\t');
        let name = parts.next()?.to_string();
        let secs: f64 = parts.next()?.parse().ok()?;
        let source = parts.next()?.to_string();
        if !dir.join(&name).is_file() {
            return None;
        }
        entries.push((name, secs, source));
    }
    Some(entries)
}

fn write_index(index: &Path, key: &str, entries: &[(String, f64, String)]) -> Result<()> {
    let mut s = String::new();
    s.push_str(key);
    s.push('\n');
    for (name, secs, source) in entries {
        s.push_str(&format!("{name}\t{secs}\t{source}\n"));
    }
    write_atomic(index, s.as_bytes())
}

// ----------------------------------------------------------------------------------------------
// Seeding: every random draw comes from `echoic_core::rng::SplitMix64`, seeded from the
// configured seed and a stable hash, so that a rerun makes the same corpus.

/// FNV-1a, a stable hash for seeding (std's hasher may change between releases).
fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_lists_are_disjoint() {
        let lists = [
            TRAINING_PACKAGES,
            INSTRUMENT_PACKAGES,
            LARGE_PACKAGES,
            ANIMAL_CALL_PACKAGES,
            EVALUATION_PACKAGES,
        ];
        for (i, a) in lists.iter().enumerate() {
            for b in &lists[i + 1..] {
                check_disjoint(a, b).unwrap();
            }
        }
        assert!(check_disjoint(&["a", "b"], &["b"]).is_err());
    }

    #[test]
    fn optional_packages_join_the_training_packages_only_when_asked_for() {
        let with = |with_instruments, with_large_packages, with_animal_calls| {
            CorpusConfig {
                with_instruments,
                with_large_packages,
                with_animal_calls,
                ..CorpusConfig::default()
            }
            .training_packages()
        };
        assert_eq!(with(false, false, false), TRAINING_PACKAGES);
        let large = with(false, true, false);
        assert!(large.contains(&"0ad-data") && !large.contains(&"scratch"));
        let calls = with(false, false, true);
        assert!(calls.contains(&"widelands-data") && !calls.contains(&"0ad-data"));
        let all = with(true, true, true);
        let optional =
            INSTRUMENT_PACKAGES.len() + LARGE_PACKAGES.len() + ANIMAL_CALL_PACKAGES.len();
        assert_eq!(all.len(), TRAINING_PACKAGES.len() + optional);
        assert!(all.contains(&"0ad-data") && all.contains(&"scratch"));
        assert!(all.contains(&"wesnoth-1.16-data"));
        // What an earlier build may have left in `train/` and this one removes.
        let only_large = CorpusConfig {
            with_large_packages: true,
            ..CorpusConfig::default()
        };
        let left_out: Vec<_> = only_large.optional_packages(false).copied().collect();
        assert_eq!(
            left_out,
            [INSTRUMENT_PACKAGES, ANIMAL_CALL_PACKAGES].concat()
        );
    }
}
