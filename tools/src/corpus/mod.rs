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
//!   openarena's `.pk3`);
//! - `midi/vN/`: the MIDI phrases generated for the instrument class and their fluidsynth renders;
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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::audio_file::{
    decode_mono, has_extension, is_audio_file, resample, wav_seconds, write_wav_mono,
};

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
];

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

/// Bump when the way training files are chosen changes, so that the selection is redone (files
/// already written are kept).
const TRAIN_VERSION: u32 = 3;
/// Bump when the way evaluation clips are made changes, so that cached clips are rebuilt.
const EVAL_VERSION: u32 = 4;
/// Bump when the generated MIDI phrases change, so that they are rendered again.
const MIDI_VERSION: u32 = 2;
/// Zip archives that hold game audio.
const ZIP_EXTENSIONS: &[&str] = &["wz", "pk3", "zip"];
/// Files whose RMS is below this are treated as silent and skipped.
const SILENCE_DBFS: f64 = -60.0;

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
    /// Cap on the training audio taken from one package, in minutes, so that no single package
    /// dominates the corpus.
    pub max_minutes_per_package: f64,
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
}

impl Default for CorpusConfig {
    fn default() -> Self {
        Self {
            out_dir: PathBuf::from("data/corpus"),
            cache_dir: PathBuf::from("data"),
            train_rate: 22050,
            max_minutes_per_package: 30.0,
            clips_per_class: 120,
            balance_classes: true,
            min_clip_seconds: 2.0,
            max_clip_seconds: 5.0,
            min_file_seconds: 0.5,
            eval_rms_dbfs: -20.0,
            seed: 0x000E_C01C,
            progress: true,
        }
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
    /// Training candidates left out because they are byte-identical copies of evaluation files
    /// (found when a package's selection is made, so empty on a run that reuses it).
    pub excluded_copies: Vec<String>,
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
        for msg in &self.excluded_copies {
            writeln!(f, "{msg}")?;
        }
        writeln!(f, "failures: {}", self.failures.len())?;
        for fail in &self.failures {
            writeln!(f, "  {}: {}", fail.file.display(), fail.error)?;
        }
        write!(f, "manifest: {}", self.manifest.display())
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
    check_disjoint(TRAINING_PACKAGES, EVALUATION_PACKAGES)?;
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
    let all: Vec<&str> = TRAINING_PACKAGES
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

    // 2. Training corpus, package by package.
    let mut manifest_rows: Vec<ManifestRow> = Vec::new();
    let eval_files = EvalFiles::index(&cfg.cache_dir);
    for pkg in TRAINING_PACKAGES.iter().filter(|p| ready.contains(p)) {
        match build_training_package(
            cfg,
            pkg,
            &eval_files,
            &mut report.excluded_copies,
            &mut fails,
        ) {
            Ok(rows) => {
                let secs: f64 = rows.iter().map(|r| r.seconds).sum();
                report.train_minutes.insert(pkg.to_string(), secs / 60.0);
                report.train_files.insert(pkg.to_string(), rows.len());
                manifest_rows.extend(rows);
            }
            Err(e) => fail(&ProgressBar::hidden(), &mut fails, Path::new(pkg), &e),
        }
    }

    // 3. Evaluation clips, class by class, then balanced.
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
    for (class, rows) in &per_class {
        let kept: Vec<&ManifestRow> = rows.iter().take(keep).collect();
        publish_eval_class(cfg, class, &kept)?;
        report.eval_clips.insert(class.to_string(), kept.len());
        for r in kept {
            manifest_rows.push(ManifestRow {
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
// Packages

/// Downloads `pkg` into `cache/debs` unless a `.deb` of it is there, and extracts it into
/// `cache/extracted/pkg` unless that exists.
fn fetch_package(cache: &Path, pkg: &str) -> Result<()> {
    let debs = cache.join("debs");
    fs::create_dir_all(&debs)?;
    let deb = match find_deb(&debs, pkg)? {
        Some(deb) => deb,
        None => {
            run(Command::new("apt-get")
                .arg("download")
                .arg(pkg)
                .current_dir(&debs))
            .with_context(|| format!("apt-get download {pkg}"))?;
            find_deb(&debs, pkg)?.with_context(|| format!("apt-get download {pkg} left no .deb"))?
        }
    };
    let dest = extracted_dir(cache, pkg);
    if dest.is_dir() {
        return Ok(());
    }
    let tmp = part_path(&dest);
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))
        .with_context(|| format!("dpkg-deb -x {}", deb.display()))?;
    fs::rename(&tmp, &dest)?;
    Ok(())
}

fn find_deb(dir: &Path, pkg: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{pkg}_");
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn extracted_dir(cache: &Path, pkg: &str) -> PathBuf {
    cache.join("extracted").join(pkg)
}

/// Fails early, with one message, when an external tool a class needs is missing.
fn require_tool(name: &str) -> Result<()> {
    Command::new(name)
        .arg("--version")
        .output()
        .map(|_| ())
        .with_context(|| format!("{name} is needed but cannot be run; install it"))
}

fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Every regular file under `dir`, sorted; symbolic links are not followed, so that a file is
/// never counted twice.
fn walk(dir: &Path) -> Vec<PathBuf> {
    fn rec(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                rec(&entry.path(), out);
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    let mut out = Vec::new();
    rec(dir, &mut out);
    out.sort();
    out
}

/// Paths left out of training: documentation, and openarena's synthetic festival voices.
fn excluded_from_training(rel: &str) -> bool {
    let lower = rel.to_ascii_lowercase();
    lower.contains("usr/share/doc/") || lower.contains("festivox")
}

/// Extracts the audio members of every zip archive in the package into
/// `cache/unzipped/pkg/ARCHIVE/`, unless that exists.
fn unzip_audio(cache: &Path, pkg: &str) -> Result<()> {
    for archive in walk(&extracted_dir(cache, pkg)) {
        if !has_extension(&archive, ZIP_EXTENSIONS) {
            continue;
        }
        let name = archive.file_name().expect("a file has a name");
        let dest = cache.join("unzipped").join(pkg).join(name);
        if dest.is_dir() {
            continue;
        }
        let tmp = part_path(&dest);
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let file = fs::File::open(&archive)
            .with_context(|| format!("cannot open {}", archive.display()))?;
        let mut zip = zip::ZipArchive::new(file)
            .with_context(|| format!("cannot read zip {}", archive.display()))?;
        for i in 0..zip.len() {
            let mut member = zip
                .by_index(i)
                .with_context(|| format!("{}: member {i}", archive.display()))?;
            if !member.is_file() {
                continue;
            }
            // `enclosed_name` refuses absolute paths and `..`.
            let Some(rel) = member.enclosed_name() else {
                continue;
            };
            if !is_audio_file(&rel) {
                continue;
            }
            let out = tmp.join(&rel);
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut f = fs::File::create(&out)?;
            std::io::copy(&mut member, &mut f)
                .with_context(|| format!("{}: {}", archive.display(), rel.display()))?;
        }
        fs::rename(&tmp, &dest)?;
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// Training

fn build_training_package(
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
        "# version={TRAIN_VERSION} minutes={} rate={} min_seconds={} seed={}",
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
        .filter(|p| is_audio_file(p))
        .filter_map(|p| {
            let rel = rel_string(&p, &cfg.cache_dir);
            (!excluded_from_training(&rel)).then_some((p, rel))
        })
        .collect();
    let mut rng = Rng::new(cfg.seed ^ hash_str(pkg));
    rng.shuffle(&mut files);

    let budget = cfg.max_minutes_per_package * 60.0;
    let pb = bar(cfg, budget.round() as u64, pkg);
    pb.set_message("seconds");
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
                pb.set_position(total.min(budget) as u64);
                entries.push((name, secs, rel.clone()));
                continue;
            }
        }
        let mut samples = match decode_mono(path) {
            Ok(d) => resample(&d.samples, d.sample_rate, cfg.train_rate),
            Err(e) => {
                fail(&pb, fails, path, &e);
                continue;
            }
        };
        let rate = cfg.train_rate as f64;
        if (samples.len() as f64) < cfg.min_file_seconds * rate || dbfs(&samples) < SILENCE_DBFS {
            continue;
        }
        let room = ((budget - total) * rate) as usize;
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
        pb.set_position(total.min(budget) as u64);
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
struct EvalFiles {
    by_size: HashMap<u64, Vec<PathBuf>>,
}

impl EvalFiles {
    fn index(cache: &Path) -> Self {
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
// Evaluation

/// One evaluation clip before it is written.
struct Clip {
    name: String,
    samples: Vec<f32>,
    source: String,
}

/// Builds (or reuses) every clip of one class under `cache/evalclips/CLASS/`, up to the cap,
/// ordered so that any prefix spreads over the sources.
fn build_eval_class(
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
    let mut rng = Rng::new(cfg.seed ^ hash_str(class));
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

/// Puts the kept clips of a class into `out/eval/CLASS/` (hard links into the cache where
/// possible) and removes anything else there.
fn publish_eval_class(cfg: &CorpusConfig, class: &str, rows: &[&ManifestRow]) -> Result<()> {
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
    rng: &mut Rng,
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
    let out = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "g722", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "16000", "-"]))
    .with_context(|| format!("ffmpeg cannot decode {}", path.display()))?;
    let samples: Vec<f32> = out
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if samples.is_empty() {
        bail!("no audio in {}", path.display());
    }
    Ok(samples)
}

/// Music: Frets on Fire songs, each the mix of its stems (`song.ogg` is the band without the
/// lead guitar, `guitar.ogg` the lead guitar), cut at positions spread over the song.
fn music_clips(
    cfg: &CorpusConfig,
    rng: &mut Rng,
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
fn windows(x: &[f32], rate: u32, cfg: &CorpusConfig, n: usize, rng: &mut Rng) -> Vec<Vec<f32>> {
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
            let len = rng.range(min, max.min(seg_len) + 1);
            let start = i * seg_len + rng.range(0, seg_len - len + 1);
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

// ----------------------------------------------------------------------------------------------
// Drums: patterns sequenced from the hydrogen kits' one-shots

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

fn drum_clips(
    cfg: &CorpusConfig,
    rng: &mut Rng,
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
            let pick = pool[rng.range(0, pool.len())];
            if let Some(s) = load(pick, fails) {
                chosen.push((role, pick.clone(), s));
            }
        }
        if chosen.is_empty() {
            continue;
        }
        let bpm = 80.0 + 80.0 * rng.f64();
        let step = 60.0 / bpm / 4.0;
        let bar = 16.0 * step;
        let target =
            cfg.min_clip_seconds + (cfg.max_clip_seconds - cfg.min_clip_seconds - 0.5) * rng.f64();
        let mut bars = ((target / bar).round() as usize).max(1);
        // The pattern plus the last hit's 0.4 s tail must make a whole clip.
        while bars as f64 * bar + 0.4 < cfg.min_clip_seconds {
            bars += 1;
        }
        let steps = 16 * bars;
        let len_s = (steps as f64 * step + 0.4).min(cfg.max_clip_seconds);
        let len = (len_s * rate as f64) as usize;
        let mut mix = vec![0.0f32; len];
        let hat_every = if bpm < 110.0 && rng.f64() < 0.5 { 1 } else { 2 };
        let kick_extra: Vec<usize> = [3usize, 6, 7, 10, 11, 14]
            .into_iter()
            .filter(|_| rng.f64() < 0.3)
            .collect();
        let other_steps: Vec<usize> = (0..steps).filter(|_| rng.f64() < 0.06).collect();
        for s in 0..steps {
            let pos = s % 16;
            for (role, _, sample) in &chosen {
                let (hit, gain) = match role {
                    DrumRole::Kick => (pos == 0 || pos == 8 || kick_extra.contains(&pos), 0.9),
                    DrumRole::Snare => (
                        pos == 4 || pos == 12 || (pos % 2 == 1 && rng.f64() < 0.05),
                        0.8,
                    ),
                    DrumRole::Hat => (pos % hat_every == 0 && rng.f64() < 0.92, 0.5),
                    DrumRole::Other => (other_steps.contains(&s), 0.6),
                };
                if !hit {
                    continue;
                }
                let velocity = gain * (0.7 + 0.3 * rng.f64()) as f32;
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

// ----------------------------------------------------------------------------------------------
// Instruments: single-instrument phrases for General MIDI programs, rendered by fluidsynth

/// General MIDI program names, 0-based.
#[rustfmt::skip]
const GM_NAMES: [&str; 128] = [
    "acoustic_grand_piano", "bright_acoustic_piano", "electric_grand_piano", "honky_tonk_piano",
    "electric_piano_1", "electric_piano_2", "harpsichord", "clavinet", "celesta", "glockenspiel",
    "music_box", "vibraphone", "marimba", "xylophone", "tubular_bells", "dulcimer", "drawbar_organ",
    "percussive_organ", "rock_organ", "church_organ", "reed_organ", "accordion", "harmonica",
    "tango_accordion", "nylon_guitar", "steel_guitar", "jazz_guitar", "clean_electric_guitar",
    "muted_electric_guitar", "overdriven_guitar", "distortion_guitar", "guitar_harmonics",
    "acoustic_bass", "fingered_bass", "picked_bass", "fretless_bass", "slap_bass_1", "slap_bass_2",
    "synth_bass_1", "synth_bass_2", "violin", "viola", "cello", "contrabass", "tremolo_strings",
    "pizzicato_strings", "orchestral_harp", "timpani", "string_ensemble_1", "string_ensemble_2",
    "synth_strings_1", "synth_strings_2", "choir_aahs", "voice_oohs", "synth_voice",
    "orchestra_hit", "trumpet", "trombone", "tuba", "muted_trumpet", "french_horn", "brass_section",
    "synth_brass_1", "synth_brass_2", "soprano_sax", "alto_sax", "tenor_sax", "baritone_sax",
    "oboe", "english_horn", "bassoon", "clarinet", "piccolo", "flute", "recorder", "pan_flute",
    "blown_bottle", "shakuhachi", "whistle", "ocarina", "square_lead", "sawtooth_lead",
    "calliope_lead", "chiff_lead", "charang_lead", "voice_lead", "fifths_lead", "bass_lead",
    "new_age_pad", "warm_pad", "polysynth_pad", "choir_pad", "bowed_pad", "metallic_pad",
    "halo_pad", "sweep_pad", "rain_fx", "soundtrack_fx", "crystal_fx", "atmosphere_fx",
    "brightness_fx", "goblins_fx", "echoes_fx", "sci_fi_fx", "sitar", "banjo", "shamisen", "koto",
    "kalimba", "bagpipe", "fiddle", "shanai", "tinkle_bell", "agogo", "steel_drums", "woodblock",
    "taiko_drum", "melodic_tom", "synth_drum", "reverse_cymbal", "guitar_fret_noise",
    "breath_noise", "seashore", "bird_tweet", "telephone_ring", "helicopter", "applause", "gunshot",
];

/// The programs used: every melodic GM program. Left out: the unpitched percussion
/// (agogo, woodblock, taiko, melodic tom, synth drum, reverse cymbal), which belongs with drums,
/// and the sound effects 120–127 (bird tweet, seashore, applause, ...), which would blur the
/// animal and other classes.
fn instrument_programs() -> Vec<u8> {
    (0u8..120)
        .filter(|p| !matches!(p, 113 | 115 | 116 | 117 | 118 | 119))
        .collect()
}

/// A comfortable MIDI note range for a program.
fn program_range(p: u8) -> (u8, u8) {
    match p {
        32..=39 | 43 | 58 | 87 => (28, 55), // basses, contrabass, tuba, bass lead
        40 | 110 => (55, 91),               // violin, fiddle
        41 => (48, 81),                     // viola
        42 | 70 => (36, 69),                // cello, bassoon
        47 => (41, 57),                     // timpani
        57 => (40, 72),                     // trombone
        64 | 68 | 72 | 73 | 74 | 75 => (60, 91), // soprano sax, oboe, piccolo, flutes
        67 => (36, 69),                     // baritone sax
        8..=15 | 108 | 112 => (60, 96),     // chromatic percussion, kalimba, tinkle bell
        24..=31 => (40, 76),                // guitars
        _ => (48, 84),
    }
}

/// Programs that may play two notes at once.
fn polyphonic(p: u8) -> bool {
    matches!(p, 0..=7 | 16..=21 | 24..=27 | 46 | 48..=51 | 88..=95)
}

struct Note {
    start: f64,
    dur: f64,
    key: u8,
    vel: u8,
}

/// A random phrase in a major, minor or pentatonic scale whose last note starts at `target`
/// seconds or later.
fn phrase(program: u8, target: f64, rng: &mut Rng) -> (f64, Vec<Note>) {
    const SCALES: [&[i32]; 3] = [
        &[0, 2, 4, 5, 7, 9, 11],
        &[0, 2, 3, 5, 7, 8, 10],
        &[0, 2, 4, 7, 9],
    ];
    let scale = SCALES[rng.range(0, SCALES.len())];
    let (lo, hi) = program_range(program);
    let root = lo as i32 + rng.range(0, ((hi - lo) as usize / 2).max(1)) as i32;
    let bpm = 80.0 + 60.0 * rng.f64();
    let beat = 60.0 / bpm;
    let key_of = |degree: i32| -> i32 {
        let n = scale.len() as i32;
        root + 12 * degree.div_euclid(n) + scale[degree.rem_euclid(n) as usize]
    };
    let mut notes = Vec::new();
    let mut t = 0.0;
    let mut degree = rng.range(0, scale.len()) as i32;
    // Keep adding notes until one starts at or after `target`, so that even quickly decaying
    // instruments sound for at least `target` seconds.
    loop {
        let beats = [0.5, 0.5, 1.0, 1.0, 1.5, 2.0][rng.range(0, 6)];
        let dur = beats * beat;
        let step = rng.range(0, 5) as i32 - 2;
        degree += step;
        let mut key = key_of(degree);
        if key < lo as i32 || key > hi as i32 {
            degree -= 2 * step;
            key = key_of(degree).clamp(lo as i32, hi as i32);
        }
        let vel = 70 + rng.range(0, 45) as u8;
        notes.push(Note {
            start: t,
            dur: dur * 0.9,
            key: key as u8,
            vel,
        });
        if polyphonic(program) && rng.f64() < 0.3 {
            let third = key_of(degree + 2).clamp(0, 127);
            notes.push(Note {
                start: t,
                dur: dur * 0.9,
                key: third as u8,
                vel: vel.saturating_sub(10),
            });
        }
        if t >= target {
            break;
        }
        t += dur;
    }
    (bpm, notes)
}

/// A format-0 standard MIDI file: one track on channel 1 with a program change and the notes.
fn midi_file(program: u8, bpm: f64, notes: &[Note]) -> Vec<u8> {
    const DIVISION: u16 = 480;
    let ticks = |secs: f64| -> u32 { (secs * bpm / 60.0 * DIVISION as f64).round() as u32 };
    let mut events: Vec<(u32, [u8; 3])> = Vec::new();
    for n in notes {
        events.push((ticks(n.start), [0x90, n.key, n.vel]));
        events.push((ticks(n.start + n.dur), [0x80, n.key, 64]));
    }
    // Note-offs before note-ons at the same tick.
    events.sort_by_key(|(t, e)| (*t, e[0] == 0x90));
    let mut track: Vec<u8> = Vec::new();
    let tempo = (60_000_000.0 / bpm).round() as u32;
    track.extend([0x00, 0xFF, 0x51, 0x03]);
    track.extend(&tempo.to_be_bytes()[1..]);
    track.extend([0x00, 0xC0, program]);
    let mut last = 0;
    for (t, e) in events {
        push_vlq(&mut track, t - last);
        last = t;
        track.extend(e);
    }
    track.extend([0x00, 0xFF, 0x2F, 0x00]);
    let mut out = Vec::new();
    out.extend(b"MThd");
    out.extend(6u32.to_be_bytes());
    out.extend(0u16.to_be_bytes());
    out.extend(1u16.to_be_bytes());
    out.extend(DIVISION.to_be_bytes());
    out.extend(b"MTrk");
    out.extend((track.len() as u32).to_be_bytes());
    out.extend(track);
    out
}

fn push_vlq(out: &mut Vec<u8>, mut v: u32) {
    let mut bytes = vec![(v & 0x7F) as u8];
    v >>= 7;
    while v > 0 {
        bytes.push((v & 0x7F) as u8 | 0x80);
        v >>= 7;
    }
    bytes.reverse();
    out.extend(bytes);
}

fn instrument_clips(
    cfg: &CorpusConfig,
    rng: &mut Rng,
    pb: &ProgressBar,
    fails: &mut Vec<Failure>,
) -> Result<Vec<Clip>> {
    let rate = cfg.train_rate;
    let sf2 = walk(&extracted_dir(&cfg.cache_dir, "fluid-soundfont-gm"))
        .into_iter()
        .find(|p| has_extension(p, &["sf2"]))
        .context("fluid-soundfont-gm holds no .sf2")?;
    let midi_dir = cfg.cache_dir.join("midi").join(format!("v{MIDI_VERSION}"));
    fs::create_dir_all(&midi_dir)?;
    let programs = instrument_programs();
    // Every program once in random order, then every program again, until the cap.
    let mut order: Vec<(u8, usize)> = Vec::new();
    let mut variant = 0;
    while order.len() < cfg.clips_per_class {
        let mut pass: Vec<u8> = programs.clone();
        rng.shuffle(&mut pass);
        order.extend(pass.into_iter().map(|p| (p, variant)));
        variant += 1;
    }
    order.truncate(cfg.clips_per_class);
    let mut clips = Vec::new();
    for (program, variant) in order {
        // Each phrase has its own generator so that it does not depend on the cap.
        let mut prng = Rng::new(cfg.seed ^ hash_str(&format!("gm{program}/{variant}")));
        let target = cfg.min_clip_seconds
            + 0.2
            + (cfg.max_clip_seconds - cfg.min_clip_seconds - 0.8) * prng.f64();
        let (bpm, notes) = phrase(program, target, &mut prng);
        let name = format!("gm{program:03}_{}_{variant}", GM_NAMES[program as usize]);
        let mid = midi_dir.join(format!("{name}.mid"));
        let wav = midi_dir.join(format!("{name}.wav"));
        if !wav.is_file() {
            if let Err(e) = write_atomic(&mid, &midi_file(program, bpm, &notes)) {
                fail(pb, fails, &mid, &e);
                continue;
            }
            let tmp = part_path(&wav);
            let rendered = run(Command::new("fluidsynth")
                .args(["-ni", "-q", "-g", "0.5", "-r", "44100", "-T", "wav", "-F"])
                .arg(&tmp)
                .arg(&sf2)
                .arg(&mid))
            .and_then(|_| Ok(fs::rename(&tmp, &wav)?));
            if let Err(e) = rendered {
                fail(pb, fails, &mid, &e);
                continue;
            }
        }
        let samples = match decode_mono(&wav) {
            Ok(d) => resample(&d.samples, d.sample_rate, rate),
            Err(e) => {
                fail(pb, fails, &wav, &e);
                continue;
            }
        };
        let mut samples = trim_silence(&samples, rate);
        let max = (cfg.max_clip_seconds * rate as f64) as usize;
        if samples.len() > max {
            samples.truncate(max);
            fade(&mut samples, rate, 0.1);
        }
        if (samples.len() as f64) < cfg.min_clip_seconds * rate as f64 {
            fail(
                pb,
                fails,
                &wav,
                &"the rendered phrase is shorter than a clip",
            );
            continue;
        }
        clips.push(Clip {
            name: format!("{name}.wav"),
            samples,
            source: format!(
                "{} (program {program}, {})",
                rel_string(&sf2, &cfg.cache_dir),
                rel_string(&mid, &cfg.cache_dir)
            ),
        });
        pb.inc(1);
    }
    Ok(clips)
}

// ----------------------------------------------------------------------------------------------
// Signal helpers

/// RMS level in dBFS (-inf for silence).
fn dbfs(x: &[f32]) -> f64 {
    if x.is_empty() {
        return f64::NEG_INFINITY;
    }
    let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    10.0 * ms.log10()
}

/// Removes leading and trailing stretches quieter than 50 dB below the peak (in 5 ms blocks),
/// keeping 10 ms on either side.
fn trim_silence(x: &[f32], rate: u32) -> Vec<f32> {
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak == 0.0 {
        return vec![];
    }
    let thr = peak * 10f32.powf(-50.0 / 20.0);
    let first = x.iter().position(|v| v.abs() > thr).unwrap_or(0);
    let last = x.iter().rposition(|v| v.abs() > thr).unwrap_or(x.len() - 1);
    let pad = (rate / 100) as usize;
    let start = first.saturating_sub(pad);
    let end = (last + pad + 1).min(x.len());
    x[start..end].to_vec()
}

/// Linear fade-in and fade-out of `secs` seconds (at most a quarter of the signal each).
fn fade(x: &mut [f32], rate: u32, secs: f64) {
    let n = ((secs * rate as f64) as usize).min(x.len() / 4);
    let len = x.len();
    for i in 0..n {
        let g = i as f32 / n as f32;
        x[i] *= g;
        x[len - 1 - i] *= g;
    }
}

/// Scales to `rms_dbfs`, then down so that the peak stays below -0.1 dBFS.
fn normalize(x: &mut [f32], rms_dbfs: f64) {
    let level = dbfs(x);
    if !level.is_finite() {
        return;
    }
    let mut gain = 10f64.powf((rms_dbfs - level) / 20.0) as f32;
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let limit = 10f32.powf(-0.1 / 20.0);
    if peak * gain > limit {
        gain = limit / peak;
    }
    for v in x {
        *v *= gain;
    }
}

// ----------------------------------------------------------------------------------------------
// Deterministic randomness (SplitMix64), so that a rerun makes the same corpus.

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..1.
    fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in lo..hi (hi exclusive, hi > lo).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        debug_assert!(hi > lo);
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range(0, i + 1);
            v.swap(i, j);
        }
    }
}

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
        check_disjoint(TRAINING_PACKAGES, EVALUATION_PACKAGES).unwrap();
        assert!(check_disjoint(&["a", "b"], &["b"]).is_err());
    }

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

    #[test]
    fn midi_file_is_well_formed() {
        let mut rng = Rng::new(1);
        let (bpm, notes) = phrase(0, 3.0, &mut rng);
        let m = midi_file(0, bpm, &notes);
        assert_eq!(&m[..4], b"MThd");
        assert_eq!(&m[14..18], b"MTrk");
        let len = u32::from_be_bytes([m[18], m[19], m[20], m[21]]) as usize;
        assert_eq!(m.len(), 22 + len);
        assert_eq!(&m[m.len() - 3..], &[0xFF, 0x2F, 0x00]);
        let mut v = Vec::new();
        push_vlq(&mut v, 0x0FFF_FFFF);
        assert_eq!(v, [0xFF, 0xFF, 0xFF, 0x7F]);
    }

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

    #[test]
    fn windows_stay_in_bounds() {
        let cfg = CorpusConfig::default();
        let mut rng = Rng::new(7);
        let x = vec![0.1f32; 22050 * 60];
        let w = windows(&x, 22050, &cfg, 15, &mut rng);
        assert_eq!(w.len(), 12);
        for c in &w {
            assert!(c.len() >= 2 * 22050 && c.len() <= 5 * 22050);
        }
        let pieces = split_all(&vec![0.1f32; 22050 * 7], 22050, &cfg);
        assert_eq!(pieces.len(), 2);
    }

    #[test]
    fn normalize_hits_target_without_clipping() {
        let mut x: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.1).sin() * 0.01).collect();
        normalize(&mut x, -20.0);
        assert!((dbfs(&x) + 20.0).abs() < 0.01);
        let mut spiky = vec![0.0f32; 1000];
        spiky[10] = 0.5;
        normalize(&mut spiky, -20.0);
        assert!(spiky.iter().all(|v| v.abs() <= 1.0));
    }
}
