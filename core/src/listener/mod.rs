//! The listener: an LSTM autoencoder that turns a dilated buffer (`steps × n_bands` log energies
//! in dB, oldest step first) into an embedding, trained to reconstruct its input.
//!
//! - [`model`]: the network (shapes, the cell, initialisation);
//! - [`format`]: the model file (safetensors plus JSON metadata) and its validation;
//! - [`train`]: training from folders of audio through the plugin's own pipeline;
//! - [`pca`]: the principal axes of the embeddings, stored in the file for the automation outputs.
//!
//! [`Listener`] loads a model file and runs it. Training, reconstruction and GPU inference run
//! through candle; embedding on the CPU runs a plain-Rust copy of the encoder (`native.rs`),
//! because candle's matmul is slow for one row and every candle op allocates.
//!
//! # Measured (one thread, AMD EPYC Zen 3 VM with AVX2, 2 cores shared with compilers)
//! Default 8 × 100 → 250 encoder: [`Listener::embed_into`] about 105–135 µs median;
//! [`Listener::embed_batch`] about 85–100 µs per embedding at batch 64 (candle: about 220 µs
//! per embedding, 750+ µs at batch 1). The arithmetic alone is 2.4 M multiply-adds per
//! embedding, so about 50 µs even at this core's peak FMA rate.
//!
//! # Threads
//! candle 0.11 has no API to set its CPU thread count. It reads two environment variables:
//! - `RAYON_NUM_THREADS` on *every* matmul (`candle_core::utils::get_num_threads`): above 1, gemm
//!   runs with `Parallelism::Rayon` on the global rayon pool;
//! - `CANDLE_NUM_THREADS` (falling back to `RAYON_NUM_THREADS`) *once*, when its spinning
//!   "barrier pool" for element-wise ops on ≥ 64 Ki elements is first built (`utils::barrier_pool`),
//!   which spawns that many threads minus one.
//!
//! Unset, both default to the number of physical cores, so the first large batch would start a
//! pool of spinning threads competing with the host's audio thread. [`limit_candle_threads`]
//! (called by the `echoic` tools at start and by [`train::train`]) sets both to `1` unless the
//! user already set them, before candle reads them. The plugin never calls it (the environment
//! belongs to the host); its CPU inference runs the native encoder, which starts no pool.

pub mod format;
pub mod model;
mod native;
pub mod pca;
pub mod train;

#[cfg(test)]
mod tests;

use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};

pub use format::{
    Features, ListenerMetadata, NamedTensor, Normalisation, Pca, Provenance, FORMAT_VERSION,
};
pub use model::{Activation, ModelConfig};

/// The largest model file [`Listener::load`] reads: 256 MiB, over a hundred times the shipped
/// model, and far above what the largest configuration (128 bands, wide LSTMs) needs.
pub const MAX_MODEL_BYTES: u64 = 256 << 20;

/// Why a model file cannot be used, or an inference call failed.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any listener model ([`MAX_MODEL_BYTES`]); it was not read.
    #[error("{path} is larger than {limit} bytes, too large for a listener model")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The bytes are not a safetensors file (truncated, random, or a bad header).
    #[error("not a listener model file: {0}")]
    Format(String),
    /// A safetensors file without Echoic's metadata.
    #[error(
        "the file has no Echoic metadata (no `{}` entry in `__metadata__`)",
        format::METADATA_KEY
    )]
    MissingMetadata,
    /// The metadata is not the JSON document expected.
    #[error("bad metadata: {0}")]
    Metadata(String),
    /// A format version this build does not read (older unknown, or from a newer Echoic).
    #[error("model format version {found} is not supported; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A tensor the model needs is not in the file.
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    /// The file holds a tensor the model does not have (or holds one twice).
    #[error("unexpected tensor `{0}`")]
    UnexpectedTensor(String),
    /// A tensor is not F32.
    #[error("tensor `{name}` is {dtype}; only F32 is read")]
    Dtype {
        /// The tensor.
        name: String,
        /// Its stored type.
        dtype: String,
    },
    /// A tensor's shape disagrees with the model configuration.
    #[error("tensor `{name}` has shape {found:?}; the model needs {expected:?}")]
    Shape {
        /// The tensor.
        name: String,
        /// Shape the configuration implies.
        expected: Vec<usize>,
        /// Shape stored.
        found: Vec<usize>,
    },
    /// Weights or metadata arrays hold NaN or infinity.
    #[error("`{0}` holds NaN or infinite values")]
    NonFinite(String),
    /// Metadata fields disagree with each other or are out of range.
    #[error("inconsistent metadata: {0}")]
    Inconsistent(String),
    /// An inference call got a slice of the wrong length.
    #[error("expected {expected} values, got {found}")]
    Input {
        /// Values expected.
        expected: usize,
        /// Values passed.
        found: usize,
    },
    /// candle failed while running the model.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Pins candle's CPU work to the calling thread (see the module documentation): sets
/// `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` to `1` unless they are already set. Runs once
/// per process; later calls do nothing.
///
/// It changes the process environment, so it also limits any other rayon user in the process
/// whose global pool is not built yet. Programs call it first thing (the `echoic` tools and
/// [`train`](train::train) do); a plugin must not, since the environment is the host's: on the
/// CPU the plugin's inference runs the native encoder, which starts no thread pool. Setting the
/// environment while another thread reads it through C `getenv` is a race, so call it before
/// starting threads that might.
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

/// The device a listener runs on by default: the first CUDA GPU when the `cuda` feature is on
/// and one is present, else the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(device) = Device::cuda_if_available(0) {
            return device;
        }
    }
    Device::Cpu
}

/// A loaded model, ready to embed dilated buffers.
pub struct Listener {
    /// Everything in the file besides the weights.
    meta: ListenerMetadata,
    /// The network, on `device`.
    model: model::Seq2Seq,
    /// Where the weights live and inference runs.
    device: Device,
    /// The encoder again, in plain Rust on the CPU, for [`embed_into`](Self::embed_into).
    native: native::NativeEncoder,
    /// The native encoder's buffers for [`embed_into`](Self::embed_into), allocated at load.
    native_scratch: native::Scratch,
    /// `steps × n_bands`: the values of one sequence.
    sequence_len: usize,
    /// Normalised input of [`embed_into`](Self::embed_into), reused across calls.
    scratch: Vec<f32>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("name", &self.meta.name)
            .field("model", &self.meta.model)
            .field("device", &self.device_name())
            .finish_non_exhaustive()
    }
}

/// Sequences per candle call in the batch functions: bounds the memory one call takes.
const CHUNK: usize = 256;

impl Listener {
    /// Loads a model file from memory onto [`default_device`]. Validates everything (see
    /// [`format::decode`]); never panics. Allocates.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ListenerError> {
        Self::from_bytes_on(bytes, default_device())
    }

    /// Loads a model file from memory onto `device`. Allocates.
    pub fn from_bytes_on(bytes: &[u8], device: Device) -> Result<Self, ListenerError> {
        let (meta, tensors) = format::decode(bytes)?;
        Self::from_parts(meta, &tensors, device)
    }

    /// Reads and loads a model file onto [`default_device`]. Allocates and does file I/O.
    ///
    /// Reads at most [`MAX_MODEL_BYTES`]: a path from a saved session may name anything (a huge
    /// file, a file under `/proc` that never ends), and a larger file is refused unread.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ListenerError> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| ListenerError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_MODEL_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_MODEL_BYTES {
            return Err(ListenerError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_MODEL_BYTES,
            });
        }
        Self::from_bytes(&bytes)
    }

    /// A listener from metadata and weights already in memory (training, tests). Validates both.
    pub fn from_parts(
        meta: ListenerMetadata,
        tensors: &[NamedTensor],
        device: Device,
    ) -> Result<Self, ListenerError> {
        meta.validate()?;
        let shapes = meta.model.tensor_shapes();
        for (name, shape) in &shapes {
            let t = tensors
                .iter()
                .find(|t| &t.name == name)
                .ok_or_else(|| ListenerError::MissingTensor(name.clone()))?;
            let count: usize = t.shape.iter().product();
            if &t.shape != shape || t.data.len() != count {
                return Err(ListenerError::Shape {
                    name: name.clone(),
                    expected: shape.clone(),
                    found: t.shape.clone(),
                });
            }
            if !t.data.iter().all(|v| v.is_finite()) {
                return Err(ListenerError::NonFinite(name.clone()));
            }
        }
        if let Some(extra) = tensors
            .iter()
            .find(|t| !shapes.iter().any(|(n, _)| n == &t.name))
        {
            return Err(ListenerError::UnexpectedTensor(extra.name.clone()));
        }
        let model = model::Seq2Seq::from_fn(&meta.model, |name| {
            let t = tensors
                .iter()
                .find(|t| t.name == name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))?;
            Tensor::from_slice(&t.data, t.shape.as_slice(), &device)
        })?;
        let find = |name: &str| {
            tensors
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.data.clone())
                .unwrap_or_default()
        };
        let encoder_layers = meta
            .model
            .layers()
            .into_iter()
            .filter(|l| l.prefix.starts_with("encoder"))
            .map(|l| {
                let [(k, _), (r, _), (b, _)] = l.tensors();
                ((l.input, l.units), [find(&k), find(&r), find(&b)])
            })
            .collect();
        let native =
            native::NativeEncoder::new(encoder_layers, meta.model.steps, meta.model.activation);
        let sequence_len = meta.model.steps * meta.model.n_bands;
        let native_scratch = native.scratch(1);
        Ok(Self {
            meta,
            model,
            device,
            native,
            native_scratch,
            sequence_len,
            scratch: vec![0.0; sequence_len],
        })
    }

    /// The model file for this listener (metadata and current weights). Allocates.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ListenerError> {
        format::encode(&self.meta, &self.weights()?)
    }

    /// The weights, as stored in a file. Allocates.
    pub fn weights(&self) -> Result<Vec<NamedTensor>, ListenerError> {
        let mut out = Vec::new();
        let shapes = self.meta.model.tensor_shapes();
        for ((name, shape), tensor) in shapes.into_iter().zip(self.model.tensors()) {
            let data = tensor
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            out.push(NamedTensor { name, shape, data });
        }
        Ok(out)
    }

    /// Size of the embedding.
    pub fn latent_dim(&self) -> usize {
        self.meta.model.latent_dim()
    }

    /// Values in one input sequence: `steps × n_bands`.
    pub fn sequence_len(&self) -> usize {
        self.sequence_len
    }

    /// Everything in the model file besides the weights.
    pub fn metadata(&self) -> &ListenerMetadata {
        &self.meta
    }

    /// Where inference runs: `"cpu"` or `"cuda:N"`.
    pub fn device_name(&self) -> String {
        match self.device.location() {
            candle_core::DeviceLocation::Cpu => "cpu".to_string(),
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
        }
    }

    /// Normalises `buffers_db` (whole sequences, dB) into `out`.
    fn normalise(&self, buffers_db: &[f32], out: &mut [f32]) {
        let n_bands = self.meta.model.n_bands;
        let (offset, scale) = (
            &self.meta.normalisation.offset,
            &self.meta.normalisation.scale,
        );
        for (src, dst) in buffers_db
            .chunks_exact(n_bands)
            .zip(out.chunks_exact_mut(n_bands))
        {
            for b in 0..n_bands {
                dst[b] = (src[b] - offset[b]) * scale[b];
            }
        }
    }

    /// Refuses a slice that is not `n` whole sequences.
    fn check_len(&self, values: usize, n: usize) -> Result<(), ListenerError> {
        let expected = n.saturating_mul(self.sequence_len);
        if values == expected {
            Ok(())
        } else {
            Err(ListenerError::Input {
                expected,
                found: values,
            })
        }
    }

    /// Embeds one dilated buffer (`steps × n_bands` dB, oldest step first) into `out`
    /// (`latent_dim` values). The worker's per-frame path.
    ///
    /// Runs the encoder in plain Rust on the CPU whatever the device (candle's matmul is slow
    /// for a single row, see `native.rs`), into buffers allocated at load time: it does not
    /// allocate, lock or spawn, so its cost is steady. Still, keep it off the audio thread
    /// (about 0.1–0.3 ms). Matches [`embed_batch`](Self::embed_batch) to float rounding.
    pub fn embed_into(&mut self, buffer_db: &[f32], out: &mut [f32]) -> Result<(), ListenerError> {
        self.check_len(buffer_db.len(), 1)?;
        if out.len() != self.latent_dim() {
            return Err(ListenerError::Input {
                expected: self.latent_dim(),
                found: out.len(),
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        self.normalise(buffer_db, &mut scratch);
        self.native
            .encode(&mut self.native_scratch, &scratch, 1, out);
        self.scratch = scratch;
        Ok(())
    }

    /// The candle encoder on `n` normalised sequences, on the listener's device.
    fn encode_normalised(&self, normalised: &[f32], n: usize) -> Result<Tensor, ListenerError> {
        let cfg = self.model.config();
        let x = Tensor::from_slice(normalised, (n, cfg.steps, cfg.n_bands), &self.device)?;
        Ok(self.model.encode(&x)?)
    }

    /// Embeds `n` dilated buffers laid end to end in `buffers_db`; returns `n × latent_dim`
    /// values. For offline use: allocates.
    ///
    /// On the CPU it runs the plain-Rust encoder (see [`embed_into`](Self::embed_into)) on blocks
    /// of 8 sequences, 2–3× faster than candle's; on a GPU it runs candle.
    pub fn embed_batch(&self, buffers_db: &[f32], n: usize) -> Result<Vec<f32>, ListenerError> {
        self.check_len(buffers_db.len(), n)?;
        if self.device.is_cpu() {
            let latent = self.latent_dim();
            let mut out = vec![0.0; n * latent];
            let mut scratch = self.native.scratch(native::BLOCK);
            let mut normalised = vec![0.0; native::BLOCK * self.sequence_len];
            for (chunk, dst) in buffers_db
                .chunks(native::BLOCK * self.sequence_len)
                .zip(out.chunks_mut(native::BLOCK * latent))
            {
                let m = chunk.len() / self.sequence_len;
                self.normalise(chunk, &mut normalised[..chunk.len()]);
                self.native
                    .encode(&mut scratch, &normalised[..chunk.len()], m, dst);
            }
            return Ok(out);
        }
        self.embed_batch_candle(buffers_db, n)
    }

    /// [`embed_batch`](Self::embed_batch) through candle on the listener's device, whatever it
    /// is. Allocates.
    pub fn embed_batch_candle(
        &self,
        buffers_db: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, ListenerError> {
        self.check_len(buffers_db.len(), n)?;
        let mut out = Vec::with_capacity(n * self.latent_dim());
        let mut normalised = vec![0.0; CHUNK.min(n) * self.sequence_len];
        for chunk in buffers_db.chunks(CHUNK * self.sequence_len) {
            let m = chunk.len() / self.sequence_len;
            let norm = &mut normalised[..chunk.len()];
            self.normalise(chunk, norm);
            out.extend(
                self.encode_normalised(norm, m)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        }
        Ok(out)
    }

    /// Encodes and decodes `n` dilated buffers; returns the `n × steps × n_bands`
    /// reconstructions in dB (de-normalised), for evaluation. Allocates.
    pub fn reconstruct_batch(
        &self,
        buffers_db: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, ListenerError> {
        self.check_len(buffers_db.len(), n)?;
        let n_bands = self.meta.model.n_bands;
        let (offset, scale) = (
            &self.meta.normalisation.offset,
            &self.meta.normalisation.scale,
        );
        let mut out = Vec::with_capacity(buffers_db.len());
        let mut normalised = vec![0.0; CHUNK.min(n) * self.sequence_len];
        for chunk in buffers_db.chunks(CHUNK * self.sequence_len) {
            let m = chunk.len() / self.sequence_len;
            let norm = &mut normalised[..chunk.len()];
            self.normalise(chunk, norm);
            let z = self.encode_normalised(norm, m)?;
            let recon = self.model.decode(&z)?.flatten_all()?.to_vec1::<f32>()?;
            for row in recon.chunks_exact(n_bands) {
                out.extend(
                    row.iter()
                        .enumerate()
                        .map(|(b, v)| v / scale[b] + offset[b]),
                );
            }
        }
        Ok(out)
    }

    /// Projects an embedding onto the stored principal axes: writes up to `out.len()` axis
    /// values, each mapped so that the training set's 1st..99th percentile is 0..1 (not clamped),
    /// and returns how many were written (0 when the file has no PCA). Allocation-free.
    pub fn project_pca(&self, embedding: &[f32], out: &mut [f32]) -> Result<usize, ListenerError> {
        if embedding.len() != self.latent_dim() {
            return Err(ListenerError::Input {
                expected: self.latent_dim(),
                found: embedding.len(),
            });
        }
        let Some(pca) = &self.meta.pca else {
            return Ok(0);
        };
        let k = pca.components.len().min(out.len());
        for (a, o) in out.iter_mut().take(k).enumerate() {
            let p: f32 = pca.components[a]
                .iter()
                .zip(embedding.iter().zip(&pca.mean))
                .map(|(c, (e, m))| c * (e - m))
                .sum();
            let (lo, hi) = (pca.projection_low[a], pca.projection_high[a]);
            *o = if hi > lo { (p - lo) / (hi - lo) } else { 0.5 };
        }
        Ok(k)
    }
}
