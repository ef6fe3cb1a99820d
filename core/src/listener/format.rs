//! Read on the worker and offline: the listener's model file format.
//!
//! The listener model file: [safetensors](https://github.com/huggingface/safetensors) holding the
//! weights of the encoder and the decoder as little-endian F32 tensors, plus one `__metadata__`
//! entry, `"echoic"`, whose value is the JSON document [`ListenerMetadata`].
//!
//! # Tensors
//! For every LSTM layer (see [`ModelConfig::layers`]) with input size D and H units:
//!
//! | name | shape |
//! |---|---|
//! | `encoder.K.kernel`, `decoder.K.kernel` | `D × 4H` |
//! | `encoder.K.recurrent_kernel`, `decoder.K.recurrent_kernel` | `H × 4H` |
//! | `encoder.K.bias`, `decoder.K.bias` | `4H` |
//!
//! Columns are the gates in Keras order i, f, g, o, so Keras `LSTM.get_weights()` map one to one.
//! For the default 8 × 100 model: `encoder.0` (100 → 50), `encoder.1` (50 → 250, the embedding),
//! `decoder.0` (250 → 50), `decoder.1` (50 → 100); 451,800 parameters.
//!
//! # Metadata
//! ```json
//! {
//!   "format_version": 1,
//!   "name": "echoic-default",
//!   "features": {"n_bands": 100, "low_hz": 50.0, "high_hz": 8000.0, "hop_seconds": 0.01,
//!                "spec": {"steps": 8, "dilation": 2, "kind": "Exponential", "pooling": "Pick"}},
//!   "model": {"n_bands": 100, "steps": 8, "encoder": [50, 250], "decoder": [50],
//!             "activation": "relu"},
//!   "normalisation": {"offset": [100 floats], "scale": [100 floats], "level": "Relative"},
//!   "pca": {"mean": [250], "components": [[250] × k], "explained_variance": [k]} or null,
//!   "provenance": {"corpus": ["data/corpus/train"], "packages": {"hedgewars-data": 30.0},
//!                  "files": 812, "sample_rate": 22050, "train_sequences": 108000,
//!                  "validation_sequences": 12000, "epochs": 40, "best_epoch": 33,
//!                  "seed": 1, "created_unix": 1790000000, "seconds": 3600.0,
//!                  "git_describe": "v0.1-3-gabc1234", "echoic_version": "0.1.0"},
//!   "metrics": {"train_loss": 0.004, "validation_loss": 0.005, ...}
//! }
//! ```
//! Every provenance field has a default, so hand-made files need not invent them; `metrics` is
//! free-form. Unknown fields are ignored, so version 1 readers accept files with additions that
//! do not change the meaning of the known fields; anything else bumps [`FORMAT_VERSION`].
//!
//! Versions: 1 is the original; 2 adds `normalisation.level` = `"Relative"` ([`Level`]). A file
//! carries the oldest version that can express it, and this build reads both.

use super::config::ModelConfig;
use super::ListenerError;
use crate::dilated::DilatedSpec;
use crate::frame::SILENCE_DB;
use crate::pca::Pca;
use crate::worker::ListenSettings;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The newest file format version this build reads: version 2 added [`Level::Relative`]. A file
/// is written with the oldest version that expresses it ([`Level::format_version`]), so files
/// without the new meaning stay readable by older builds.
pub const FORMAT_VERSION: u32 = 2;
/// The oldest file format version this build reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// The `__metadata__` key holding the JSON document.
pub const METADATA_KEY: &str = "echoic";

/// The front end the model was trained on; the plugin must listen the same way for the
/// embedding to mean anything.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// Gammatone bands: the model's input width.
    pub n_bands: usize,
    /// Lowest band centre in Hz: a different range moves every band.
    pub low_hz: f64,
    /// Upper end of the ERB spacing in Hz, for the same reason.
    pub high_hz: f64,
    /// Time between frames in seconds: it sets how much time each dilated step spans.
    pub hop_seconds: f64,
    /// The dilated buffer's shape: the model's input length and what each step means.
    pub spec: DilatedSpec,
}

impl Features {
    /// The features of a listening configuration.
    pub fn from_settings(settings: &ListenSettings) -> Self {
        Self {
            n_bands: settings.n_bands,
            low_hz: settings.low_hz,
            high_hz: settings.high_hz,
            hop_seconds: settings.hop_seconds,
            spec: settings.spec,
        }
    }

    /// The listening configuration that produces these features.
    pub fn to_settings(&self) -> ListenSettings {
        ListenSettings {
            n_bands: self.n_bands,
            low_hz: self.low_hz,
            high_hz: self.high_hz,
            hop_seconds: self.hop_seconds,
            spec: self.spec,
        }
    }
}

/// Per-band affine map from dB to the model's units: `z = (x_dB − offset[b]) · scale[b]`,
/// fitted so that the training set's 1st..99th percentile of each band maps to 0..1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Per band, the dB value mapped to 0 (the 1st percentile): removes the band's level.
    pub offset: Vec<f32>,
    /// Per band, the reciprocal of the 1st..99th percentile range: equalises the bands' spreads
    /// so that the loss weighs them alike.
    pub scale: Vec<f32>,
    /// Whether each buffer's overall level is removed first, so that the embedding describes
    /// what sounds rather than how loud (the plugin's Loudness source carries the level).
    /// Absent in version 1 files, which are [`Level::Absolute`].
    #[serde(default)]
    pub level: Level,
}

/// How a dilated buffer's overall level reaches the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    /// The dB values as they are: a gain change moves every input (format version 1).
    #[default]
    Absolute,
    /// The buffer's level ([`buffer_level_db`]), but no less than [`QUIETEST_LEVEL_DB`], is
    /// subtracted from every value, so that a gain change leaves the model's input unchanged
    /// (until the quietest bands reach the cochlea's own floor) and silence stays quieter than
    /// anything audible rather than becoming a flat spectrum at its own level. The map is
    /// continuous and [`Normalisation::invert`] undoes it exactly. Needs format version 2.
    Relative,
}

impl Level {
    /// The oldest model-file format version that can express this level mode.
    pub fn format_version(self) -> u32 {
        match self {
            Level::Absolute => 1,
            Level::Relative => 2,
        }
    }
}

/// The quietest level [`Level::Relative`] removes, in dB: 40 dB above the cochlea's floor
/// ([`SILENCE_DB`]). A buffer quieter than this is treated as if at this level, so digital
/// silence reaches the model 40 dB below a buffer at this level, the quietest thing it hears,
/// and never as a flat spectrum at 0 dB relative, which is what loud noise looks like. Gain
/// invariance holds for buffers above it.
pub const QUIETEST_LEVEL_DB: f32 = -60.0;

/// A buffer's level: its mean power over every band and step, in dB
/// (`10·log10(mean(10^(x/10)))`), so loud moments dominate and silent bands at the cochlea's
/// floor barely count. Allocation-free.
///
/// ```
/// use echoic_core::listener::format::buffer_level_db;
/// assert!((buffer_level_db(&[-20.0, -20.0]) + 20.0).abs() < 1e-4);
/// // A gain change moves the level by the same amount.
/// assert!((buffer_level_db(&[-10.0, -40.0]) - buffer_level_db(&[-16.0, -46.0]) - 6.0).abs() < 1e-4);
/// ```
pub fn buffer_level_db(buffer_db: &[f32]) -> f32 {
    if buffer_db.is_empty() {
        return 0.0;
    }
    // Relative to the loudest value, so that the powers never overflow or vanish.
    let top = buffer_db.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mean: f32 = buffer_db
        .iter()
        .map(|&x| 10f32.powf((x - top) * 0.1))
        .sum::<f32>()
        / buffer_db.len() as f32;
    top + 10.0 * mean.log10()
}

impl Normalisation {
    /// The level removed from `buffer_db` before the per-band map: [`buffer_level_db`], but no
    /// less than [`QUIETEST_LEVEL_DB`], under [`Level::Relative`]; 0 under [`Level::Absolute`].
    /// Allocation-free.
    pub fn level_of(&self, buffer_db: &[f32]) -> f32 {
        match self.level {
            Level::Absolute => 0.0,
            Level::Relative => buffer_level_db(buffer_db).max(QUIETEST_LEVEL_DB),
        }
    }

    /// Maps whole buffers of dB values (`buffer_len` values each, whole frames of `n_bands`,
    /// laid end to end) from `db` into `out`: the level removed ([`level_of`](Self::level_of)),
    /// then the per-band map. The one place training, evaluation and inference turn dB into the
    /// model's units. Allocation-free.
    ///
    /// # Panics
    ///
    /// If `db` and `out` differ in length, or are not whole buffers of whole frames.
    ///
    /// ```
    /// use echoic_core::listener::{Level, Normalisation};
    /// let norm = Normalisation { offset: vec![-80.0, -60.0], scale: vec![0.1, 0.05], level: Level::Absolute };
    /// let mut out = [0.0; 4];
    /// norm.apply(&[-70.0, -60.0, -80.0, -40.0], &mut out, 4);
    /// assert_eq!(out, [1.0, 0.0, 0.0, 1.0]);
    /// ```
    pub fn apply(&self, db: &[f32], out: &mut [f32], buffer_len: usize) {
        let n_bands = self.offset.len();
        assert!(
            db.len() == out.len()
                && buffer_len.is_multiple_of(n_bands)
                && db.len().is_multiple_of(buffer_len),
            "normalising {} values into {} as buffers of {buffer_len} with {n_bands} bands",
            db.len(),
            out.len()
        );
        for (buffer, buffer_out) in db
            .chunks_exact(buffer_len)
            .zip(out.chunks_exact_mut(buffer_len))
        {
            let level = self.level_of(buffer);
            for (src, dst) in buffer
                .chunks_exact(n_bands)
                .zip(buffer_out.chunks_exact_mut(n_bands))
            {
                for (((d, &x), &o), &s) in
                    dst.iter_mut().zip(src).zip(&self.offset).zip(&self.scale)
                {
                    *d = (x - level - o) * s;
                }
            }
        }
    }

    /// [`apply`](Self::apply) into a new vector: the convenience form for offline work
    /// (training, evaluation). Allocates; `apply` is its real-time twin.
    ///
    /// ```
    /// use echoic_core::listener::{Level, Normalisation};
    /// let norm = Normalisation { offset: vec![-80.0, -60.0], scale: vec![0.1, 0.05], level: Level::Absolute };
    /// assert_eq!(norm.applied(&[-70.0, -60.0], 2), [1.0, 0.0]);
    /// ```
    pub fn applied(&self, db: &[f32], buffer_len: usize) -> Vec<f32> {
        let mut out = vec![0.0; db.len()];
        self.apply(db, &mut out, buffer_len);
        out
    }

    /// The inverse of [`apply`](Self::apply), in place, for reconstructions: model units back
    /// to dB, each buffer (`buffer_len` values) at the level of the input buffer it reconstructs
    /// (`inputs_db`, laid out like `values`), and never below the cochlea's floor
    /// ([`SILENCE_DB`]), which no input goes below either. Allocation-free.
    ///
    /// # Panics
    ///
    /// If `values` and `inputs_db` differ in length, or are not whole buffers.
    pub fn invert(&self, values: &mut [f32], buffer_len: usize, inputs_db: &[f32]) {
        assert!(
            values.len() == inputs_db.len() && values.len().is_multiple_of(buffer_len),
            "inverting {} values against {} inputs as buffers of {buffer_len}",
            values.len(),
            inputs_db.len()
        );
        for (buffer, input) in values
            .chunks_exact_mut(buffer_len)
            .zip(inputs_db.chunks_exact(buffer_len))
        {
            let level = self.level_of(input);
            for frame in buffer.chunks_exact_mut(self.offset.len()) {
                for ((v, &o), &s) in frame.iter_mut().zip(&self.offset).zip(&self.scale) {
                    *v = (*v / s + o + level).max(SILENCE_DB);
                }
            }
        }
    }
}

/// Where a model came from, so that a file can be traced to its data and code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Provenance {
    /// The input folders the training audio was collected from.
    pub corpus: Vec<String>,
    /// Minutes of audio per package (the first folder level under each input folder), to see
    /// what the model has heard.
    pub packages: BTreeMap<String, f64>,
    /// Audio files used (training and validation).
    pub files: usize,
    /// Rate the audio was decoded at before the cochlea, Hz.
    pub sample_rate: u32,
    /// Sequences trained on.
    pub train_sequences: usize,
    /// Sequences held out for validation (from files disjoint from the training files).
    pub validation_sequences: usize,
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept (lowest validation loss), 1-based.
    pub best_epoch: usize,
    /// Seed of the initialisation, split and shuffles: with the data, it reproduces the run.
    pub seed: u64,
    /// When training finished, Unix seconds.
    pub created_unix: u64,
    /// Wall-clock training time, seconds.
    pub seconds: f64,
    /// `git describe --always --dirty` of the working tree, when available.
    pub git_describe: Option<String>,
    /// The echoic-core version that trained the model.
    pub echoic_version: String,
    /// The model this one was fine-tuned from on a session's audio
    /// ([`adapt`](crate::listener::adapt)); `None` for a model trained from scratch, whose
    /// fields above then describe its own training. An adapted model keeps its base's fields.
    pub adapted_from: Option<AdaptedFrom>,
}

/// What an adapted model was fine-tuned from, so that it can be traced to its base and to how
/// much audio changed it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct AdaptedFrom {
    /// The base model's name.
    pub name: String,
    /// The base model file's [`model_id`], when its bytes were at hand: tells two bases of the
    /// same name apart.
    pub id: Option<String>,
    /// Seconds of history (cochlear frames) adapted on, held-out part included.
    pub history_seconds: f64,
    /// Held-out reconstruction loss of the base model on the history (normalised units²).
    pub held_out_before: f64,
    /// The same for the adapted weights.
    pub held_out_after: f64,
    /// Epochs run; the weights kept are those of the best held-out epoch (0: the base's).
    pub epochs: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
}

/// An identifier of a model file's bytes, `fnv1a64:` and 16 hex digits (FNV-1a, 64 bits): to
/// name the base an adapted model came from. Not a cryptographic hash. Allocates the text.
///
/// ```
/// use echoic_core::listener::format::model_id;
/// assert_eq!(model_id(b""), "fnv1a64:cbf29ce484222325");
/// assert_ne!(model_id(b"a"), model_id(b"b"));
/// ```
pub fn model_id(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("fnv1a64:{hash:016x}")
}

/// Everything in a model file besides the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListenerMetadata {
    /// File format version, [`FORMAT_VERSION`]; a reader refuses versions it does not know.
    pub format_version: u32,
    /// A human-readable model name, shown in the plugin.
    pub name: String,
    /// The listening front end the model expects.
    pub features: Features,
    /// The network's sizes; must agree with `features` and with the tensors.
    pub model: ModelConfig,
    /// Maps dB to model units and back.
    pub normalisation: Normalisation,
    /// Principal axes of the training embeddings; `None` in checkpoints. Parsed, not judged:
    /// the outputs check them ([`Pca::validate`]) and say so when they cannot use them.
    pub pca: Option<Pca>,
    /// Where the model came from.
    #[serde(default)]
    pub provenance: Provenance,
    /// Free-form evaluation numbers (losses, ...).
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
}

/// A weight tensor as stored: name, shape and row-major values.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor {
    /// The tensor's name (see the module documentation).
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub data: Vec<f32>,
}

/// An [`ListenerError::Inconsistent`] with `msg`.
fn inconsistent(msg: impl Into<String>) -> ListenerError {
    ListenerError::Inconsistent(msg.into())
}

/// Refuses NaN and infinities in `values`, naming them `name`.
fn check_finite(name: &str, values: &[f32]) -> Result<(), ListenerError> {
    if values.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(ListenerError::NonFinite(name.to_string()))
    }
}

impl ListenerMetadata {
    /// Checks every field and their agreement with each other. Allocates only on error.
    pub fn validate(&self) -> Result<(), ListenerError> {
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&self.format_version) {
            return Err(ListenerError::UnsupportedVersion {
                found: self.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if self.format_version < self.normalisation.level.format_version() {
            return Err(inconsistent(format!(
                "format version {} cannot hold level mode {:?}",
                self.format_version, self.normalisation.level
            )));
        }
        self.model.validate().map_err(inconsistent)?;
        let f = &self.features;
        if f.n_bands != self.model.n_bands {
            return Err(inconsistent(format!(
                "features have {} bands but the model takes {}",
                f.n_bands, self.model.n_bands
            )));
        }
        if f.spec.steps != self.model.steps {
            return Err(inconsistent(format!(
                "the dilated buffer has {} steps but the model takes {}",
                f.spec.steps, self.model.steps
            )));
        }
        f.spec.validate().map_err(|e| inconsistent(e.to_string()))?;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(f.low_hz) || !positive(f.high_hz) || f.low_hz >= f.high_hz {
            return Err(inconsistent(format!(
                "band range {} Hz to {} Hz",
                f.low_hz, f.high_hz
            )));
        }
        if !positive(f.hop_seconds) {
            return Err(inconsistent(format!("hop of {} s", f.hop_seconds)));
        }
        let n = &self.normalisation;
        if n.offset.len() != f.n_bands || n.scale.len() != f.n_bands {
            return Err(inconsistent(format!(
                "normalisation has {} offsets and {} scales for {} bands",
                n.offset.len(),
                n.scale.len(),
                f.n_bands
            )));
        }
        check_finite("normalisation.offset", &n.offset)?;
        check_finite("normalisation.scale", &n.scale)?;
        if n.scale.iter().any(|&s| s == 0.0 || !(1.0 / s).is_finite()) {
            return Err(inconsistent(
                "a normalisation scale is zero or too small to invert",
            ));
        }
        Ok(())
    }
}

/// Serialises metadata and weights into a model file. Validates the metadata and that the
/// tensors are exactly the ones the model needs.
pub fn encode(meta: &ListenerMetadata, tensors: &[NamedTensor]) -> Result<Vec<u8>, ListenerError> {
    meta.validate()?;
    check_weights(&meta.model, tensors)?;
    let json = serde_json::to_string(meta).map_err(|e| ListenerError::Metadata(e.to_string()))?;
    let bytes: Vec<(String, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, (name, b))| {
            safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| ListenerError::Format(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([(METADATA_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| ListenerError::Format(e.to_string()))
}

/// Checks that `tensors` are exactly the weights of `cfg`: every tensor once, each with its shape,
/// as many values as the shape holds, and all of them finite. The one check of weights in memory,
/// for the loader, the encoder and the trainer. Allocates only on error.
pub fn check_weights(cfg: &ModelConfig, tensors: &[NamedTensor]) -> Result<(), ListenerError> {
    check_tensors(
        cfg,
        tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice())),
    )?;
    for t in tensors {
        let count: usize = t.shape.iter().product();
        if t.data.len() != count {
            return Err(ListenerError::Shape {
                name: t.name.clone(),
                expected: t.shape.clone(),
                found: vec![t.data.len()],
            });
        }
        check_finite(&t.name, &t.data)?;
    }
    Ok(())
}

/// Checks that the stored `(name, shape)` pairs are exactly the model's, before reading any data.
fn check_tensors<'a>(
    cfg: &ModelConfig,
    tensors: impl Iterator<Item = (&'a str, &'a [usize])> + Clone,
) -> Result<(), ListenerError> {
    let expected = cfg.tensor_shapes();
    for (name, shape) in &expected {
        let found = tensors.clone().find(|(n, _)| n == name);
        match found {
            None => return Err(ListenerError::MissingTensor(name.clone())),
            Some((_, s)) if s != shape.as_slice() => {
                return Err(ListenerError::Shape {
                    name: name.clone(),
                    expected: shape.clone(),
                    found: s.to_vec(),
                })
            }
            Some(_) => {}
        }
    }
    let known: HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut seen = HashSet::new();
    for (name, _) in tensors {
        if !known.contains(name) || !seen.insert(name) {
            return Err(ListenerError::UnexpectedTensor(name.to_string()));
        }
    }
    Ok(())
}

/// Just the version, read before the rest so that a future file gets a version error rather
/// than a confusing schema error.
#[derive(Deserialize)]
struct VersionOnly {
    /// The only field every version must keep, under this name.
    format_version: u32,
}

/// Parses and validates a model file: metadata and weights, in forward order. Never panics.
pub fn decode(bytes: &[u8]) -> Result<(ListenerMetadata, Vec<NamedTensor>), ListenerError> {
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| ListenerError::Format(e.to_string()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or(ListenerError::MissingMetadata)?;
    let version: VersionOnly = serde_json::from_str(json)
        .map_err(|e| ListenerError::Metadata(format!("format_version: {e}")))?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version.format_version) {
        return Err(ListenerError::UnsupportedVersion {
            found: version.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let meta: ListenerMetadata =
        serde_json::from_str(json).map_err(|e| ListenerError::Metadata(e.to_string()))?;
    meta.validate()?;

    let st = SafeTensors::deserialize(bytes).map_err(|e| ListenerError::Format(e.to_string()))?;
    let stored: Vec<(String, Vec<usize>)> = st
        .iter()
        .map(|(name, view)| (name.to_string(), view.shape().to_vec()))
        .collect();
    check_tensors(
        &meta.model,
        stored.iter().map(|(n, s)| (n.as_str(), s.as_slice())),
    )?;
    let mut tensors = Vec::new();
    for (name, shape) in meta.model.tensor_shapes() {
        let view = st
            .tensor(&name)
            .map_err(|_| ListenerError::MissingTensor(name.clone()))?;
        if view.dtype() != Dtype::F32 {
            return Err(ListenerError::Dtype {
                name,
                dtype: format!("{:?}", view.dtype()),
            });
        }
        let raw = view.data();
        let count: usize = shape.iter().product();
        if raw.len() != count * 4 {
            return Err(ListenerError::Format(format!(
                "tensor `{name}` holds {} bytes, expected {}",
                raw.len(),
                count * 4
            )));
        }
        let data: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        check_finite(&name, &data)?;
        tensors.push(NamedTensor { name, shape, data });
    }
    Ok((meta, tensors))
}
