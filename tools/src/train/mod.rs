//! Offline: `echoic train`.
//!
//! Training a listener from folders of audio, through the plugin's own pipeline
//! ([`crate::offline::analyse`]), so that the model sees exactly the buffers the plugin will
//! feed it.
//!
//! Steps: collect the audio files; split them into training and validation *by file* (so that
//! overlapping buffers of one recording never sit on both sides); analyse every file and keep
//! every `stride`-th usable dilated buffer, thinning uniformly when the total would pass
//! `max_sequences`; fit the per-band normalisation on the training buffers (after removing each
//! buffer's level when [`Level::Relative`] is asked for); train in minibatches drawn with
//! package weights ([`TrainConfig::package_balance`]), each buffer augmented on the fly (its
//! speed changed too when [`TrainConfig::speed_change`] asks, rebuilt from the kept frames) and
//! the loss shaped by the [`Objective`] (see [`augment`]), with AdamW (or Adagrad, the original
//! Listener's recipe); evaluate the validation loss after every epoch (the mean squared error
//! of clean buffers, plus the peak loss when asked for; with a contrastive objective, of clean
//! pairs of buffers plus their contrastive loss; so that the epoch kept is the one that best
//! does what was trained), keep the best epoch and stop after `patience` epochs without
//! improvement; then fit the principal axes of the training embeddings and write the model file.
//!
//! Every epoch writes a checkpoint, a whole model with its own principal axes; `resume`
//! continues from one (its weights, normalisation and epoch count; the optimiser's moments
//! start afresh) on the same files and split, which it checks: a changed corpus would be split
//! anew, and validation would hear training audio.
//!
//! Training runs on the CPU LSTM engine (`echoic_core::listener::lstm`) on one thread or two,
//! or through candle: on a CUDA GPU, or on the CPU as the reference (see the `learner` module).
//!
//! Offline code: allocates, reads and writes files. candle runs on one thread (see
//! [`limit_candle_threads`]).
//!
//! # Threads
//! candle 0.11 has no API to set its CPU thread count. It reads two environment variables:
//! - `RAYON_NUM_THREADS` on *every* matmul (`candle_core::utils::get_num_threads`): above 1, gemm
//!   runs with `Parallelism::Rayon` on the global rayon pool;
//! - `CANDLE_NUM_THREADS` (falling back to `RAYON_NUM_THREADS`) *once*, when its spinning
//!   "barrier pool" for element-wise ops on ≥ 64 Ki elements is first built (`utils::barrier_pool`),
//!   which spawns that many threads minus one.
//!
//! Unset, both default to the number of physical cores. [`limit_candle_threads`] (called by the
//! `echoic` tools at start and by [`train`]) sets both to `1` unless the user already set them,
//! before candle reads them. The plugin never calls it (the environment belongs to the host), and
//! runs no candle on the CPU.

pub mod augment;
mod batches;
mod kinds;
mod learner;
pub mod model;
mod speed;

#[cfg(test)]
mod tests;

use crate::audio_file::{decode_mono_at, is_audio_file, AUDIO_EXTENSIONS};
use crate::offline::analyse;
use anyhow::{bail, Context, Result};
pub use augment::{Augmentation, Objective};
use batches::{Balance, Batch, BatchSource, Draws, Partners, SpeedSource};
use candle_core::Device;
use echoic_core::listener::encoder::Device as ListenerDevice;
use echoic_core::listener::format;
use echoic_core::listener::lstm::{Contrast, Geometry, Optimiser, SameKind};
use echoic_core::listener::{
    Features, Level, ListenerMetadata, ModelConfig, NamedTensor, Normalisation, Provenance,
};
use echoic_core::pca;
use echoic_core::rng::SplitMix64;
use echoic_core::worker::ListenSettings;
/// Where [`train`] draws its progress (re-exported so that callers need not depend on
/// indicatif): `ProgressDrawTarget::stderr()`, or `ProgressDrawTarget::hidden()` for silence.
pub use indicatif::ProgressDrawTarget;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use learner::Learner;
use model::Autoencoder;
use speed::SpeedChange;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Audio is analysed in pieces of at most this many seconds, so that the dilated buffers of one
/// long recording (`steps × n_bands` floats per 10 ms frame) never fill the memory. Each piece
/// loses only the memory's warm-up at its start.
const SEGMENT_SECONDS: f64 = 300.0;

/// Most values per band the normalisation percentiles are computed from.
const NORMALISATION_SAMPLES: usize = 200_000;

/// Training sequences whose embeddings the whitened contrast's principal axes are refitted on
/// at the start of every epoch: enough for eight stable axes of 250 dimensions, and about a
/// second of encoding.
const WHITENING_SEQUENCES: usize = 4096;

/// What to train on, how, and where to write it.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Folders searched recursively for audio files (wav, flac, ogg).
    pub inputs: Vec<PathBuf>,
    /// The model file to write; checkpoints go to `<stem>.checkpoints/` beside it.
    pub out: PathBuf,
    /// The model's display name, stored in the file.
    pub name: String,
    /// How to listen: the same settings the plugin will use with this model.
    pub settings: ListenSettings,
    /// Rate the audio is decoded (resampled) to before the cochlea, Hz; the corpus tool writes
    /// 22050 Hz, and one rate keeps every file's band edges identical.
    pub sample_rate: u32,
    /// Network sizes and activation; `n_bands` and `steps` are taken from `settings`.
    pub model: ModelConfig,
    /// Most epochs to run.
    pub epochs: usize,
    /// Sequences per minibatch.
    pub batch_size: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm limit; relu LSTM cells are not bounded and can explode without it.
    pub clip_grad_norm: Option<f64>,
    /// Cap on sequences kept in memory (training and validation together): 800 floats each at
    /// the default shape, so 120k take about 400 MB.
    pub max_sequences: usize,
    /// Keep every `stride`-th usable buffer: neighbouring buffers (10 ms apart) overlap almost
    /// entirely, so taking them all adds time, not information.
    pub stride: usize,
    /// Share of the files held out for validation (at least one file when there are two or more).
    pub validation_fraction: f64,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Keep the mean of the weights of the last `average_last` epochs run instead of the best
    /// epoch's; 0 keeps the best epoch's. What the listener hears swings from one epoch to the
    /// next by as much as many recipe changes move it, and the mean of the last epochs hears
    /// more steadily (model card: "Trained past the cap"). A resumed run averages its own
    /// epochs only.
    pub average_last: usize,
    /// Seed of the initialisation, file split and shuffles.
    pub seed: u64,
    /// Write a checkpoint after every epoch.
    pub checkpoints: bool,
    /// Principal axes to store (at most 8).
    pub pca_axes: usize,
    /// Most training embeddings the principal axes are fitted on.
    pub pca_max_sequences: usize,
    /// How strongly a whitened contrast ([`Geometry::Whitened`]) whitens the principal axes it
    /// measures on, as the `strength` of [`Pca::partial_whitening`](echoic_core::pca::Pca::partial_whitening):
    /// 1 divides each axis by its deviation, as the Axis outputs and Adapt read them;
    /// [`SIMILARITY_WHITENING`](echoic_core::outputs::learned::SIMILARITY_WHITENING) (¾)
    /// measures as the learned sounds do, so that what the loss separates is what a learned
    /// sound tells apart.
    pub contrast_whitening: f32,
    /// Print per-epoch summaries on stderr even when the progress bars are not drawn (stderr
    /// not a terminal, or a hidden target), so that redirected logs keep them.
    pub log: bool,
    /// Where training runs: the CPU (the LSTM engine) or a CUDA GPU (candle).
    pub device: ListenerDevice,
    /// Threads a CPU step uses: 1, or 2 (each takes half of every batch).
    pub threads: usize,
    /// Train with candle's autograd on the CPU instead of the engine: the reference, slower.
    pub candle_reference: bool,
    /// The update rule: AdamW, or Adagrad for the original Listener's recipe (engine only).
    pub optimiser: Optimiser,
    /// How each buffer's level reaches the model: [`Level::Relative`] makes the embedding
    /// describe what sounds rather than how loud.
    pub level: Level,
    /// How strongly packages are balanced when batches are drawn: each package is drawn in
    /// proportion to its sequence count to the power `1 − package_balance` (0: as the corpus
    /// holds them, shuffled without replacement; 1: every package alike, drawn with
    /// replacement), so that a large package neither dominates nor is cut.
    pub package_balance: f64,
    /// How strongly weak kinds ([`kinds`]; files with no kind count as one more) are balanced
    /// after the packages: each kind is drawn in proportion to its share of the package-balanced
    /// draws to the power `1 − kind_balance` (0: off; 1: every kind alike), so that a kind the
    /// corpus holds little of, animal calls above all, takes part in more batches and contrasts.
    pub kind_balance: f64,
    /// On-the-fly augmentation of training buffers.
    pub augmentation: Augmentation,
    /// Largest speed change of a training buffer, as resampling makes it (0.1: played between
    /// 1/1.1 and 1.1 times as fast, log-uniformly; 0: off). The buffers are rebuilt from the
    /// analysed frames, which training then keeps: `n_bands` floats per 10 ms of audio (about
    /// 2.5 GB for 17 hours).
    pub speed_change: f64,
    /// What the loss asks for beyond plain reconstruction.
    pub objective: Objective,
    /// A checkpoint or model file to continue from: its weights, normalisation and epoch count
    /// (the optimiser's moments start afresh). It must have this run's shapes and features, and
    /// have been trained on the same files, seed and sequence counts (the same split).
    pub resume: Option<PathBuf>,
    /// A model file to fine-tune: its weights and normalisation start a new run (epochs counted
    /// from 1, no epoch to beat yet). It must have this run's shapes and features.
    pub init: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            inputs: Vec::new(),
            out: PathBuf::from("models/echoic-default.safetensors"),
            name: "echoic-default".to_string(),
            settings: ListenSettings::default(),
            sample_rate: 22_050,
            model: ModelConfig::default(),
            epochs: 40,
            batch_size: 64,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            clip_grad_norm: Some(1.0),
            max_sequences: 120_000,
            stride: 5,
            validation_fraction: 0.1,
            patience: 5,
            average_last: 0,
            seed: 0x000e_c01c,
            checkpoints: true,
            pca_axes: 8,
            pca_max_sequences: 20_000,
            contrast_whitening: 1.0,
            log: true,
            device: ListenerDevice::preferred(),
            threads: 1,
            candle_reference: false,
            optimiser: Optimiser::AdamW,
            level: Level::Absolute,
            package_balance: 0.0,
            kind_balance: 0.0,
            augmentation: Augmentation::none(),
            speed_change: 0.0,
            objective: Objective::default(),
            resume: None,
            init: None,
        }
    }
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's minibatches (normalised units², as trained).
    pub train_loss: f64,
    /// Validation loss after the epoch (the training loss when there is no validation set).
    pub validation_loss: f64,
    /// Wall-clock seconds the epoch took.
    pub seconds: f64,
}

/// What a training run did.
#[derive(Clone, Debug)]
pub struct TrainReport {
    /// The model file written.
    pub out: PathBuf,
    /// Audio files found.
    pub files: usize,
    /// Files whose buffers went to validation.
    pub validation_files: usize,
    /// Sequences trained on.
    pub train_sequences: usize,
    /// Sequences validated on.
    pub validation_sequences: usize,
    /// Every epoch run.
    pub epochs: Vec<EpochStats>,
    /// The epoch whose weights were kept, 1-based.
    pub best_epoch: usize,
    /// Its validation loss.
    pub best_validation_loss: f64,
    /// Root-mean-square validation reconstruction error of the kept weights, in dB.
    pub validation_rmse_db: f64,
    /// Files that could not be decoded or analysed, and why; training went on without them.
    pub failures: Vec<(PathBuf, String)>,
    /// Wall-clock seconds for the whole run.
    pub seconds: f64,
}

/// One audio file to train on.
struct TrainingFile {
    /// Where it is.
    path: PathBuf,
    /// The package it belongs to (the first folder level under its input folder, or the input
    /// folder's name), which balanced draws and package partners group by.
    package: String,
    /// Its weak kind, read from its path under the input folder (see [`kinds`]), which kind
    /// partners group by.
    kind: Option<u8>,
}

/// Every audio file under `inputs`, sorted. Allocates and reads folders.
fn collect_files(inputs: &[PathBuf]) -> Result<Vec<TrainingFile>> {
    let mut out = Vec::new();
    for root in inputs {
        if !root.is_dir() {
            bail!("{} is not a folder", root.display());
        }
        let root_name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| root.display().to_string());
        let mut stack = vec![root.clone()];
        let mut files = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if is_audio_file(&path) {
                    files.push(path);
                }
            }
        }
        files.sort();
        for path in files {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let mut parts = rel.components();
            let package = match (parts.next(), parts.next()) {
                (Some(first), Some(_)) => first.as_os_str().to_string_lossy().into_owned(),
                _ => root_name.clone(),
            };
            let kind = kinds::kind_of(&format!("{root_name}/{}", rel.to_string_lossy()));
            out.push(TrainingFile {
                path,
                package,
                kind,
            });
        }
    }
    Ok(out)
}

/// Dilated buffers gathered from many files, with uniform thinning under a cap.
struct Collected {
    /// `len × seq_len` values, dB until normalised.
    data: Vec<f32>,
    /// Per sequence, whether it belongs to a validation file.
    validation: Vec<bool>,
    /// Per sequence, the index of its package (for balanced draws).
    package: Vec<u32>,
    /// Per sequence, the index of its file (for contrastive partners from one recording).
    file: Vec<u32>,
    /// Every analysed frame in dB (`n_bands` values each), kept only when speeds are changed:
    /// the buffers a changed speed gives are rebuilt from them.
    frames: Vec<f32>,
    /// Per sequence, the index in `frames` of its newest frame.
    newest: Vec<usize>,
    /// Per sequence, the index in `frames` of its analysed piece's first frame, which a
    /// rebuilt buffer repeats rather than reading another piece.
    piece_start: Vec<usize>,
    /// Whether `frames` is kept.
    keep_frames: bool,
    /// Values per sequence.
    seq_len: usize,
    /// Current stride over all usable buffers seen.
    stride: usize,
    /// Usable buffers seen so far.
    seen: usize,
    /// Cap on the sequences kept.
    cap: usize,
}

impl Collected {
    /// An empty store of sequences of `seq_len` values, keeping every `stride`-th usable buffer
    /// and thinning past `cap` sequences; with `keep_frames`, the analysed frames too.
    /// Allocation-free until offered buffers.
    fn new(seq_len: usize, (stride, cap): (usize, usize), keep_frames: bool) -> Self {
        Self {
            data: Vec::new(),
            validation: Vec::new(),
            package: Vec::new(),
            file: Vec::new(),
            frames: Vec::new(),
            newest: Vec::new(),
            piece_start: Vec::new(),
            keep_frames,
            seq_len,
            stride,
            seen: 0,
            cap,
        }
    }

    /// Sequences kept.
    fn len(&self) -> usize {
        self.validation.len()
    }

    /// Adds one analysed piece's frames (`n_bands` values each) when they are kept, and returns
    /// the index its first frame has among them.
    fn add_piece(&mut self, frames: &[f32], n_bands: usize) -> usize {
        let start = self.frames.len() / n_bands;
        if self.keep_frames {
            self.frames.extend_from_slice(frames);
        }
        start
    }

    /// Counts a usable buffer and keeps it when it falls on the stride. `newest` is the index of
    /// its newest frame in the piece that starts at frame `piece_start`.
    fn offer(
        &mut self,
        buffer: &[f32],
        validation: bool,
        (package, file): (u32, u32),
        (piece_start, newest): (usize, usize),
    ) {
        if self.seen.is_multiple_of(self.stride) {
            self.data.extend_from_slice(buffer);
            self.validation.push(validation);
            self.package.push(package);
            self.file.push(file);
            self.newest.push(piece_start + newest);
            self.piece_start.push(piece_start);
            if self.len() > self.cap {
                self.thin();
            }
        }
        self.seen += 1;
    }

    /// Keeps every other sequence and doubles the stride: what was kept stays a uniform sample
    /// of everything seen.
    fn thin(&mut self) {
        let n = self.len();
        let s = self.seq_len;
        let mut w = 0;
        for r in (0..n).step_by(2) {
            if r != w {
                self.data.copy_within(r * s..(r + 1) * s, w * s);
                self.validation[w] = self.validation[r];
                self.package[w] = self.package[r];
                self.file[w] = self.file[r];
                self.newest[w] = self.newest[r];
                self.piece_start[w] = self.piece_start[r];
            }
            w += 1;
        }
        self.data.truncate(w * s);
        self.validation.truncate(w);
        self.package.truncate(w);
        self.file.truncate(w);
        self.newest.truncate(w);
        self.piece_start.truncate(w);
        self.stride *= 2;
    }
}

/// Fits the per-band normalisation on the training sequences: with each buffer's level removed
/// as `level` asks, the 1st..99th percentile of each band maps to 0..1 (a range under 1 dB is
/// widened to 1 dB so that a constant band does not blow up).
fn fit_normalisation(
    data: &[f32],
    train: &[usize],
    seq_len: usize,
    n_bands: usize,
    level: Level,
) -> Normalisation {
    let steps = seq_len / n_bands;
    let rows = train.len() * steps;
    let every = rows.div_ceil(NORMALISATION_SAMPLES).max(1);
    let mut per_band: Vec<Vec<f32>> = vec![Vec::with_capacity(rows / every + 1); n_bands];
    // The level removal alone: the same `apply` inference runs, with an identity band map.
    let level_only = Normalisation {
        offset: vec![0.0; n_bands],
        scale: vec![1.0; n_bands],
        level,
    };
    let mut relative = vec![0.0; seq_len];
    let mut current = usize::MAX;
    for r in (0..rows).step_by(every) {
        let seq = train[r / steps];
        if seq != current {
            level_only.apply(&data[seq * seq_len..][..seq_len], &mut relative, seq_len);
            current = seq;
        }
        let start = (r % steps) * n_bands;
        for (b, v) in relative[start..start + n_bands].iter().enumerate() {
            per_band[b].push(*v);
        }
    }
    let mut offset = Vec::with_capacity(n_bands);
    let mut scale = Vec::with_capacity(n_bands);
    for values in &mut per_band {
        let (lo, hi) = if values.is_empty() {
            (-100.0, 0.0)
        } else {
            (percentile(values, 0.01), percentile(values, 0.99))
        };
        offset.push(lo);
        scale.push(1.0 / (hi - lo).max(1.0));
    }
    Normalisation {
        offset,
        scale,
        level,
    }
}

/// The `q` quantile (0..1) of `values` by nearest rank; reorders `values`. `values` must not be
/// empty.
fn percentile(values: &mut [f32], q: f64) -> f32 {
    let idx = ((values.len() - 1) as f64 * q).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(idx, |a, b| a.total_cmp(b));
    *v
}

/// Pins candle's CPU work to the calling thread (see the module documentation): sets
/// `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` to `1` unless they are already set. Runs once
/// per process; later calls do nothing.
///
/// It changes the process environment, so it also limits any other rayon user in the process
/// whose global pool is not built yet. Setting the environment while another thread reads it
/// through C `getenv` is a race, so call it before starting threads that might.
pub fn limit_candle_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                std::env::set_var(var, "1");
            }
        }
    });
}

/// The candle device for a listener device. Allocates (a CUDA context).
pub fn candle_device(device: ListenerDevice) -> Result<Device> {
    Ok(match device {
        ListenerDevice::Cpu => Device::Cpu,
        ListenerDevice::Cuda(ordinal) => Device::new_cuda(ordinal)
            .with_context(|| format!("{device} is not usable in this build or on this machine"))?,
    })
}

/// Copies the sequences `idx` of `data` (`seq_len` values each) into `buf`, batch-major.
fn gather(data: &[f32], idx: &[usize], seq_len: usize, buf: &mut Vec<f32>) {
    buf.clear();
    for &i in idx {
        buf.extend_from_slice(&data[i * seq_len..(i + 1) * seq_len]);
    }
}

/// Mean squared error over `idx` of the reconstructions `reconstruct(x, n)` gives for `n`
/// batch-major normalised sequences, in normalised units, and per-band sums of squared errors
/// (for the dB figure).
fn evaluate(
    mut reconstruct: impl FnMut(&[f32], usize) -> Result<Vec<f32>>,
    data: &[f32],
    idx: &[usize],
    cfg: &ModelConfig,
) -> Result<(f64, Vec<f64>)> {
    let seq_len = cfg.steps * cfg.n_bands;
    let mut buf = Vec::new();
    let mut per_band = vec![0.0f64; cfg.n_bands];
    for chunk in idx.chunks(model::CHUNK) {
        gather(data, chunk, seq_len, &mut buf);
        let y = reconstruct(&buf, chunk.len())?;
        for (k, (&y, &x)) in y.iter().zip(&buf).enumerate() {
            let e = f64::from(y - x);
            per_band[k % cfg.n_bands] += e * e;
        }
    }
    let total: f64 = per_band.iter().sum();
    let count = (idx.len() * seq_len).max(1) as f64;
    Ok((total / count, per_band))
}

/// The validation loss of a run with an engine-only objective: the normalised sequences `idx`
/// in batches of `batch` sequences, clean, as [`Learner::clean_loss`] measures them, per value.
/// With a contrast, `idx` holds pairs (each sequence followed by its partner), and `kinds`,
/// when given, their kinds (one per `idx`) for cancelling same-kind negatives. Allocates.
fn engine_validation_loss(
    learner: &mut Learner,
    data: &[f32],
    (idx, kinds): (&[usize], Option<&[Option<u8>]>),
    batch: usize,
    cfg: &ModelConfig,
    contrast: Option<Contrast>,
) -> f64 {
    let seq_len = cfg.steps * cfg.n_bands;
    let mut buf = Vec::new();
    let mut sum = 0.0;
    let chunk_len = batch.max(2) / 2 * 2;
    for (k, chunk) in idx.chunks(chunk_len).enumerate() {
        gather(data, chunk, seq_len, &mut buf);
        let chunk_kinds = kinds.map(|all| &all[k * chunk_len..][..chunk.len()]);
        sum += learner.clean_loss(&buf, chunk.len(), contrast, chunk_kinds);
    }
    sum / (idx.len() * seq_len).max(1) as f64
}

/// The principal axes (at most `axes`) of the embeddings `embed` gives of up to `max` of the
/// normalised sequences `idx` of `data`, evenly spaced, [`model::CHUNK`] at a time; `None`
/// when they do not vary. Fits both the whitened contrast's axes and the model file's.
/// Allocates.
fn principal_axes(
    data: &[f32],
    idx: &[usize],
    max: usize,
    cfg: &ModelConfig,
    axes: usize,
    mut embed: impl FnMut(&[f32], usize) -> Result<Vec<f32>>,
) -> Result<Option<pca::Pca>> {
    let seq_len = cfg.steps * cfg.n_bands;
    let every = idx.len().div_ceil(max).max(1);
    let sample: Vec<usize> = idx.iter().copied().step_by(every).collect();
    let mut embeddings = Vec::with_capacity(sample.len() * cfg.latent_dim());
    let mut buf = Vec::new();
    for chunk in sample.chunks(model::CHUNK) {
        gather(data, chunk, seq_len, &mut buf);
        embeddings.extend(embed(&buf, chunk.len())?);
    }
    Ok(pca::fit(&embeddings, cfg.latent_dim(), axes))
}

/// The element-wise mean of sets of the same tensors (one set per epoch). Allocates.
fn mean_weights(sets: &VecDeque<Vec<NamedTensor>>) -> Vec<NamedTensor> {
    let n = sets.len() as f32;
    let mut mean = sets[0].clone();
    for (i, tensor) in mean.iter_mut().enumerate() {
        for (k, value) in tensor.data.iter_mut().enumerate() {
            *value = sets.iter().map(|set| set[i].data[k]).sum::<f32>() / n;
        }
    }
    mean
}

/// The principal axes a model file or checkpoint carries: those of up to
/// [`TrainConfig::pca_max_sequences`] training embeddings `embed` gives of `data`, at most
/// [`TrainConfig::pca_axes`]. Allocates.
fn model_file_axes(
    data: &[f32],
    train_idx: &[usize],
    cfg: &TrainConfig,
    model_cfg: &ModelConfig,
    embed: impl FnMut(&[f32], usize) -> Result<Vec<f32>>,
) -> Result<Option<pca::Pca>> {
    principal_axes(
        data,
        train_idx,
        cfg.pca_max_sequences.max(2),
        model_cfg,
        cfg.pca_axes,
        embed,
    )
}

/// `git describe --always --dirty` in the current directory, if git and a repository are there.
fn git_describe() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A bar style from a template (the templates here are valid; the fallback is for safety).
fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Where checkpoints of a run writing `out` go: `<stem>.checkpoints/` beside it.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    out.with_file_name(format!("{stem}.checkpoints"))
}

/// Reads the checkpoint (or model file) at `path` to resume from, checking that it has this
/// run's network, features and level mode. Allocates; reads the file.
fn resume_from(
    path: &Path,
    model_cfg: &ModelConfig,
    settings: &ListenSettings,
    level: Level,
) -> Result<(ListenerMetadata, Vec<NamedTensor>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (meta, tensors) = format::decode(&bytes)
        .with_context(|| format!("{} is not a model file", path.display()))?;
    if meta.model != *model_cfg
        || meta.features != Features::from_settings(settings)
        || meta.normalisation.level != level
    {
        bail!(
            "{} was trained with other shapes, features or level mode than this run asks for",
            path.display()
        );
    }
    Ok((meta, tensors))
}

/// Trains a listener as described in the module documentation and writes it to `cfg.out`.
/// Progress bars (analysis, then one per epoch with the running loss) and per-epoch summaries
/// go to `progress`; pass [`ProgressDrawTarget::hidden`] for silence.
pub fn train(cfg: &TrainConfig, progress: ProgressDrawTarget) -> Result<TrainReport> {
    limit_candle_threads();
    let started = Instant::now();
    let settings = cfg.settings;
    settings.spec.validate().context("dilated buffer spec")?;
    let model_cfg = ModelConfig {
        n_bands: settings.n_bands,
        steps: settings.spec.steps,
        ..cfg.model.clone()
    };
    model_cfg
        .validate()
        .map_err(anyhow::Error::msg)
        .context("model configuration")?;
    if cfg.batch_size == 0 || cfg.epochs == 0 || cfg.stride == 0 || cfg.max_sequences < 2 {
        bail!("batch size, epochs and stride must be positive and max_sequences at least 2");
    }
    let seq_len = model_cfg.steps * model_cfg.n_bands;
    let multi = MultiProgress::with_draw_target(progress);
    let say = |msg: String| {
        if !multi.is_hidden() {
            let _ = multi.println(msg);
        } else if cfg.log {
            eprintln!("{msg}");
        }
    };

    // Files, split by file.
    let files = collect_files(&cfg.inputs)?;
    if files.is_empty() {
        bail!(
            "no audio files ({}) under {:?}",
            AUDIO_EXTENSIONS.join(", "),
            cfg.inputs
        );
    }
    let mut order: Vec<usize> = (0..files.len()).collect();
    let mut rng = SplitMix64(cfg.seed);
    rng.shuffle(&mut order);
    let n_val = if files.len() >= 2 && cfg.validation_fraction > 0.0 {
        ((files.len() as f64 * cfg.validation_fraction).round() as usize).clamp(1, files.len() - 1)
    } else {
        0
    };
    let mut is_val = vec![false; files.len()];
    order.iter().take(n_val).for_each(|&i| is_val[i] = true);

    // Analysis.
    let bar = multi.add(ProgressBar::new(files.len() as u64));
    bar.set_style(bar_style(
        "analysing {bar:40} {pos}/{len} files [{elapsed_precise}<{eta_precise}] {msg}",
    ));
    let mut store = Collected::new(
        seq_len,
        (cfg.stride, cfg.max_sequences),
        cfg.speed_change > 0.0,
    );
    let mut failures = Vec::new();
    let mut packages: BTreeMap<String, f64> = BTreeMap::new();
    let package_names: Vec<&String> = {
        let mut names: Vec<&String> = files.iter().map(|f| &f.package).collect();
        names.sort();
        names.dedup();
        names
    };
    let segment = (SEGMENT_SECONDS * cfg.sample_rate as f64) as usize;
    for (i, TrainingFile { path, package, .. }) in files.iter().enumerate() {
        bar.set_message(package.clone());
        let package_id = package_names.binary_search(&package).unwrap_or(0) as u32;
        match decode_mono_at(path, cfg.sample_rate) {
            Ok(audio) => {
                let rate = audio.sample_rate as f64;
                *packages.entry(package.clone()).or_default() += audio.seconds() / 60.0;
                for piece in audio.samples.chunks(segment.max(1)) {
                    match analyse(piece, rate, &settings, true) {
                        Ok(analysis) => {
                            let start = store.add_piece(&analysis.frames, analysis.n_bands);
                            for f in analysis.usable() {
                                store.offer(
                                    analysis.buffer(f),
                                    is_val[i],
                                    (package_id, i as u32),
                                    (start, f),
                                );
                            }
                        }
                        Err(e) => {
                            failures.push((path.clone(), e.to_string()));
                            break;
                        }
                    }
                }
            }
            Err(e) => failures.push((path.clone(), e.to_string())),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (path, e) in &failures {
        say(format!("skipped {}: {e}", path.display()));
    }
    let train_idx: Vec<usize> = (0..store.len()).filter(|&i| !store.validation[i]).collect();
    let val_idx: Vec<usize> = (0..store.len()).filter(|&i| store.validation[i]).collect();
    if train_idx.is_empty() {
        bail!(
            "no usable training buffers: the files are shorter than the memory ({} frames)",
            settings.spec.memory_frames()
        );
    }
    say(format!(
        "{} files ({} for validation), {} training and {} validation sequences (stride {})",
        files.len(),
        n_val,
        train_idx.len(),
        val_idx.len(),
        store.stride
    ));

    // Where to start: a checkpoint's weights and normalisation, or fresh ones.
    let start_from = match (&cfg.resume, &cfg.init) {
        (Some(_), Some(_)) => bail!("resume a run or fine-tune a model, not both"),
        (Some(path), None) | (None, Some(path)) => {
            Some(resume_from(path, &model_cfg, &settings, cfg.level)?)
        }
        (None, None) => None,
    };
    let mut best: Option<(usize, f64, Vec<NamedTensor>)> = None;
    let (normalisation, weights, first_epoch) = match start_from {
        Some((meta, tensors)) if cfg.init.is_some() => {
            say(format!(
                "fine-tuning {} ({})",
                cfg.init.as_deref().unwrap_or(Path::new("")).display(),
                meta.name
            ));
            (meta.normalisation, tensors, 1)
        }
        Some((meta, tensors)) => {
            let resume = cfg.resume.as_deref().unwrap_or(Path::new(""));
            let then = &meta.provenance;
            let split = (files.len(), cfg.seed, train_idx.len(), val_idx.len());
            if (
                then.files,
                then.seed,
                then.train_sequences,
                then.validation_sequences,
            ) != split
            {
                bail!(
                    "{} was trained on another corpus or split ({} files, seed {}, {} + {} \
                     sequences) than this run finds ({} files, seed {}, {} + {}): the files are \
                     split anew, so resuming would validate on audio it trained on. Resume on \
                     the same corpus and settings, or fine-tune with --init",
                    resume.display(),
                    then.files,
                    then.seed,
                    then.train_sequences,
                    then.validation_sequences,
                    split.0,
                    split.1,
                    split.2,
                    split.3,
                );
            }
            say(format!(
                "resuming from {} after epoch {}",
                resume.display(),
                meta.provenance.epochs
            ));
            // The checkpoint's own epoch stays the one to beat.
            if let Some(loss) = meta.metrics.get("validation_loss").and_then(|v| v.as_f64()) {
                best = Some((meta.provenance.epochs, loss, tensors.clone()));
            }
            (meta.normalisation, tensors, meta.provenance.epochs + 1)
        }
        None => (
            fit_normalisation(
                &store.data,
                &train_idx,
                seq_len,
                model_cfg.n_bands,
                cfg.level,
            ),
            model::initial_weights(&model_cfg, cfg.seed ^ 0x5eed),
            1,
        ),
    };
    let data = normalisation.applied(&store.data, seq_len);
    let file_kind: Vec<Option<u8>> = files.iter().map(|f| f.kind).collect();
    let sequence_kind: Vec<Option<u8>> =
        store.file.iter().map(|&f| file_kind[f as usize]).collect();
    // What kind partners and same-kind moments group by: the weak kinds, or drum types.
    let contrast_kind: Vec<Option<u8>> = files
        .iter()
        .map(|f| kinds::contrast_kind(f.kind, &f.path, cfg.objective.contrast_drum_types))
        .collect();
    let draws = Draws::new(
        &store.package,
        &sequence_kind,
        &train_idx,
        Balance {
            package: cfg.package_balance,
            kind: cfg.kind_balance,
        },
    );
    say(format!(
        "draws by kind: {}",
        kinds::shares(|kind| draws.share(|i| sequence_kind[i] == kind))
    ));
    // A contrastive partner's reach in kept sequences, which lie `store.stride` frames apart.
    let kept_spacing_seconds = settings.hop_seconds * store.stride as f64;
    let reach =
        (f64::from(cfg.objective.contrast_reach_seconds) / kept_spacing_seconds).round() as usize;
    let package_share = f64::from(cfg.objective.contrast_package_share);
    let kind_share = f64::from(cfg.objective.contrast_kind_share);
    let partners = Partners::new(
        (&store.file, reach),
        (&store.package, package_share),
        (&contrast_kind, kind_share),
        &train_idx,
    );
    // A contrastive run validates on fixed pairs of clean validation buffers.
    let mut validation_pairs = Vec::new();
    // Their kinds, when the contrast cancels same-kind negatives.
    let mut validation_kinds = Vec::new();
    // A whitened contrast measures on principal axes refitted at the start of every epoch.
    let whitened_contrast = cfg
        .objective
        .contrast()
        .is_some_and(|c| c.geometry == Geometry::Whitened);
    if cfg.objective.contrast().is_some() {
        let mut pair_rng = SplitMix64(cfg.seed ^ 0x9a1f);
        let among = Partners::new(
            (&store.file, reach),
            (&store.package, package_share),
            (&contrast_kind, kind_share),
            &val_idx,
        );
        validation_pairs.extend(
            val_idx
                .iter()
                .flat_map(|&i| [i, among.draw(i, &mut pair_rng)]),
        );
        if cfg.objective.reads_kinds() {
            validation_kinds.extend(validation_pairs.iter().map(|&i| among.kind(i)));
        }
        say(format!(
            "contrastive partners: {}{}{}{}",
            if reach == 0 {
                "two views of the same moment".to_string()
            } else {
                format!(
                    "another moment of the same file, up to {reach} kept buffers ({:.1} s) away",
                    reach as f64 * kept_spacing_seconds
                )
            },
            if package_share > 0.0 {
                format!(
                    ", or any moment of the same package ({:.0} %)",
                    package_share * 100.0
                )
            } else {
                String::new()
            },
            if kind_share > 0.0 {
                format!(
                    ", or a moment of another file of the same kind ({:.0} %; {}{})",
                    kind_share * 100.0,
                    kinds::summary(&file_kind),
                    if cfg.objective.contrast_drum_types {
                        format!(
                            "; drum types as kinds: {}",
                            kinds::drum_type_summary(&contrast_kind)
                        )
                    } else {
                        String::new()
                    }
                )
            } else {
                String::new()
            },
            match cfg.objective.contrast_same_kind {
                _ if !cfg.objective.reads_kinds() => String::new(),
                Some(SameKind::Positive) => {
                    "; moments of an anchor's kind are its positives".to_string()
                }
                Some(SameKind::Pulled(share)) => format!(
                    "; moments of an anchor's kind are its positives, with {:.0} % of its target",
                    share * 100.0
                ),
                _ => "; moments of an anchor's kind are not its negatives".to_string(),
            }
        ));
        if whitened_contrast {
            say(format!(
                "contrast measured on the principal axes, refitted every epoch, whitened at \
                 strength {}",
                cfg.contrast_whitening
            ));
        }
    }

    let speed_change =
        (cfg.speed_change > 0.0).then(|| SpeedChange::new(cfg.speed_change, &settings));
    if speed_change.is_some() {
        say(format!(
            "speed changes up to {:.0} %, rebuilt from {} analysed frames ({:.1} GB)",
            cfg.speed_change * 100.0,
            store.frames.len() / model_cfg.n_bands,
            (store.frames.len() * std::mem::size_of::<f32>()) as f64 / 1e9
        ));
    }

    // Model and optimiser.
    let mut learner = Learner::new(&model_cfg, &weights, cfg)?;
    say(format!("training with {}", learner.describe()));
    let peak_loss = cfg.objective.peak_loss(&normalisation);
    if let Some(peak_loss) = &peak_loss {
        learner.set_peak_loss(peak_loss);
        say(format!(
            "peak-band cross-entropy: weight {}, temperature {} dB, read in {:?}",
            peak_loss.weight, cfg.objective.peak_temperature_db, cfg.objective.peak_units
        ));
    }

    let mut meta = ListenerMetadata {
        format_version: cfg.level.format_version(),
        name: cfg.name.clone(),
        features: Features::from_settings(&settings),
        model: model_cfg.clone(),
        normalisation: normalisation.clone(),
        pca: None,
        provenance: Provenance {
            corpus: cfg.inputs.iter().map(|p| p.display().to_string()).collect(),
            packages,
            files: files.len(),
            sample_rate: cfg.sample_rate,
            train_sequences: train_idx.len(),
            validation_sequences: val_idx.len(),
            seed: cfg.seed,
            git_describe: git_describe(),
            echoic_version: env!("CARGO_PKG_VERSION").to_string(),
            ..Provenance::default()
        },
        metrics: BTreeMap::new(),
    };
    let ckpt_dir = checkpoint_dir(&cfg.out);
    if cfg.checkpoints {
        std::fs::create_dir_all(&ckpt_dir)
            .with_context(|| format!("creating {}", ckpt_dir.display()))?;
    }
    if let Some(parent) = cfg.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }

    // Epochs.
    let mut shuffled = train_idx.clone();
    let mut batch = Batch::default();
    let mut augment_rng = SplitMix64(cfg.seed ^ 0xa0_9e47);
    let mut epochs = Vec::new();
    // The weights of the last `cfg.average_last` epochs, oldest first.
    let mut last_epochs: VecDeque<Vec<NamedTensor>> = VecDeque::new();
    // Contrasting views fills each batch with two views of half as many moments.
    let moments_per_batch = if cfg.objective.contrast().is_some() {
        (cfg.batch_size / 2).max(1)
    } else {
        cfg.batch_size
    };
    let n_batches = train_idx.len().div_ceil(moments_per_batch);
    if first_epoch > cfg.epochs {
        bail!(
            "the checkpoint already ran {} epochs; ask for more with --epochs",
            first_epoch - 1
        );
    }
    for epoch in first_epoch..=cfg.epochs {
        let t0 = Instant::now();
        if whitened_contrast {
            let axes = principal_axes(
                &data,
                &train_idx,
                WHITENING_SEQUENCES,
                &model_cfg,
                cfg.pca_axes,
                |x, n| Ok(learner.embed(x, n)),
            )?
            .context("the whitened contrast needs principal axes of the embeddings")?;
            learner.set_whitening(&axes.partial_whitening(cfg.contrast_whitening));
        }
        draws.epoch(&mut rng, &mut shuffled);
        let bar = multi.add(ProgressBar::new(n_batches as u64));
        bar.set_style(bar_style(
            "epoch {prefix} {bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] loss {msg}",
        ));
        bar.set_prefix(format!("{epoch}/{}", cfg.epochs));
        let (mut sum, mut count) = (0.0f64, 0usize);
        for (b, idx) in shuffled.chunks(moments_per_batch).enumerate() {
            let (example, sequences) = batch.prepare(
                BatchSource {
                    normalised: &data,
                    db: &store.data,
                    train: &train_idx,
                    partners: &partners,
                    normalisation: &normalisation,
                    n_bands: model_cfg.n_bands,
                    seq_len,
                    speed: speed_change.as_ref().map(|change| SpeedSource {
                        change,
                        frames: &store.frames,
                        newest: &store.newest,
                        piece_start: &store.piece_start,
                    }),
                },
                idx,
                cfg,
                &mut augment_rng,
            );
            let value = learner.step(example, sequences)?;
            if !value.is_finite() {
                bar.finish_and_clear();
                bail!("training diverged (loss {value}) in epoch {epoch}; lower the learning rate");
            }
            sum += value * idx.len() as f64;
            count += idx.len();
            if b % 8 == 0 {
                bar.set_message(format!("{:.5}", sum / count as f64));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_loss = sum / count.max(1) as f64;
        let validation_loss = if val_idx.is_empty() {
            train_loss
        } else if let Some(contrast) = cfg.objective.contrast() {
            engine_validation_loss(
                &mut learner,
                &data,
                (
                    &validation_pairs,
                    cfg.objective.reads_kinds().then_some(&validation_kinds[..]),
                ),
                moments_per_batch * 2,
                &model_cfg,
                Some(contrast),
            )
        } else if peak_loss.is_some() {
            engine_validation_loss(
                &mut learner,
                &data,
                (&val_idx, None),
                moments_per_batch,
                &model_cfg,
                None,
            )
        } else {
            evaluate(
                |x, n| learner.reconstruct(x, n),
                &data,
                &val_idx,
                &model_cfg,
            )?
            .0
        };
        let stats = EpochStats {
            epoch,
            train_loss,
            validation_loss,
            seconds: t0.elapsed().as_secs_f64(),
        };
        let improved = best.as_ref().is_none_or(|(_, l, _)| validation_loss < *l);
        say(format!(
            "epoch {epoch}: train {train_loss:.5}, validation {validation_loss:.5}{} ({:.1} s)",
            if improved { " *" } else { "" },
            stats.seconds
        ));
        epochs.push(stats);
        // This epoch's weights, read once for the best epoch, the average and the checkpoint.
        let weights = learner.weights()?;
        if improved {
            best = Some((epoch, validation_loss, weights.clone()));
        }
        if cfg.average_last > 0 {
            if last_epochs.len() == cfg.average_last {
                last_epochs.pop_front();
            }
            last_epochs.push_back(weights.clone());
        }
        if cfg.checkpoints {
            meta.provenance.epochs = epoch;
            meta.metrics = BTreeMap::from([
                ("epoch".to_string(), epoch.into()),
                ("train_loss".to_string(), train_loss.into()),
                ("validation_loss".to_string(), validation_loss.into()),
            ]);
            // Axes of this epoch's embeddings, fitted as the model file's are, so that every
            // checkpoint is a whole model: `echoic eval` measures its learned sounds and axes
            // (a run's hearing can be followed epoch by epoch), and the editor can run it.
            meta.pca = model_file_axes(&data, &train_idx, cfg, &model_cfg, |x, n| {
                Ok(learner.embed(x, n))
            })?;
            let path = ckpt_dir.join(format!("epoch-{epoch:03}.safetensors"));
            std::fs::write(&path, format::encode(&meta, &weights)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let best_epoch = best.as_ref().map_or(epoch, |b| b.0);
        if epoch - best_epoch >= cfg.patience.max(1) {
            say(format!(
                "no improvement for {} epochs; stopping",
                epoch - best_epoch
            ));
            break;
        }
    }
    let Some((best_epoch, best_loss, best_weights)) = best else {
        bail!("no epoch ran")
    };

    // The kept weights (the best epoch's, or the mean of the last epochs'): validation error
    // in dB, principal axes of the training embeddings.
    let averaged = last_epochs.len();
    let tensors = if averaged > 0 {
        mean_weights(&last_epochs)
    } else {
        best_weights
    };
    let final_net = Autoencoder::from_parts(meta.clone(), &tensors, cfg.device)?;
    let eval_idx = if val_idx.is_empty() {
        &train_idx
    } else {
        &val_idx
    };
    let (_, per_band) = evaluate(
        |x, n| final_net.reconstruct_normalised(x, n),
        &data,
        eval_idx,
        &model_cfg,
    )?;
    let per_band_count = (eval_idx.len() * model_cfg.steps) as f64;
    let mse_db: f64 = per_band
        .iter()
        .zip(&meta.normalisation.scale)
        .map(|(s, &scale)| s / per_band_count / (scale as f64).powi(2))
        .sum::<f64>()
        / model_cfg.n_bands as f64;
    let validation_rmse_db = mse_db.sqrt();

    meta.pca = model_file_axes(&data, &train_idx, cfg, &model_cfg, |x, n| {
        final_net.embed_normalised(x, n)
    })?;

    let last = epochs.last().cloned();
    // Counted from the start of training, resumed or not.
    meta.provenance.epochs = epochs.last().map_or(first_epoch - 1, |e| e.epoch);
    meta.provenance.best_epoch = best_epoch;
    meta.provenance.created_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    meta.provenance.seconds = started.elapsed().as_secs_f64();
    let best_train = epochs
        .iter()
        .find(|e| e.epoch == best_epoch)
        .map_or(f64::NAN, |e| e.train_loss);
    meta.metrics = BTreeMap::from([
        ("train_loss".to_string(), best_train.into()),
        ("validation_rmse_db".to_string(), validation_rmse_db.into()),
        (
            "validation_is_training_set".to_string(),
            val_idx.is_empty().into(),
        ),
        (
            "last_epoch_train_loss".to_string(),
            last.as_ref().map_or(f64::NAN, |e| e.train_loss).into(),
        ),
        ("parameters".to_string(), model_cfg.parameter_count().into()),
    ]);
    // The validation loss is the kept weights' only when they are one epoch's; a run resumed
    // from averaged weights then has no loss to beat but its own epochs'.
    if averaged > 0 {
        meta.metrics
            .insert("averaged_epochs".to_string(), averaged.into());
    } else {
        meta.metrics
            .insert("validation_loss".to_string(), best_loss.into());
    }
    let bytes = format::encode(&meta, &tensors)?;
    std::fs::write(&cfg.out, bytes).with_context(|| format!("writing {}", cfg.out.display()))?;
    let kept = if averaged > 0 {
        format!("mean of the last {averaged} epochs; best epoch {best_epoch}")
    } else {
        format!("epoch {best_epoch}")
    };
    say(format!(
        "wrote {} ({kept}, validation loss {best_loss:.5}, {validation_rmse_db:.2} dB RMS)",
        cfg.out.display()
    ));
    Ok(TrainReport {
        out: cfg.out.clone(),
        files: files.len(),
        validation_files: n_val,
        train_sequences: train_idx.len(),
        validation_sequences: val_idx.len(),
        epochs,
        best_epoch,
        best_validation_loss: best_loss,
        validation_rmse_db,
        failures,
        seconds: started.elapsed().as_secs_f64(),
    })
}
