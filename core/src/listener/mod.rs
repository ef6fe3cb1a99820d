//! Runs on the worker (and offline): the listener runtime, model file to embeddings.
//!
//! The listener's runtime: loads a model file and turns each dilated buffer (`steps × n_bands`
//! log energies in dB, oldest step first) into an embedding. Runs on the worker (and in the
//! offline tools); never on the audio thread.
//!
//! - [`adapt`]: fine-tuning a listener on a session's own cochlear frames;
//! - [`config`]: the network's sizes, stored in every file;
//! - [`format`](mod@format): the model file (safetensors plus JSON metadata) and its validation;
//! - [`encoder`]: the one encoder chosen at load, the CPU LSTM engine or candle on CUDA;
//! - [`lstm`]: the CPU LSTM engine, inference (batch 1 for the worker, batches offline) and
//!   training;
//! - `candle` (feature `candle`): the LSTM layers as candle ops, for the GPU encoder and for
//!   the offline trainer (`echoic-tools`), which adds the decoder.
//!
//! [`Listener`] keeps only what inference needs: the metadata and the encoder's weights. The
//! decoder's weights are validated at load and dropped.
//!
//! # Measured
//! `cargo bench -p echoic-core --bench lstm`, one thread of a shared 2-core AMD EPYC (Zen 4,
//! AVX-512), the default 8 × 100 → 250 encoder: [`Listener::embed_into`] about 115–130 µs per
//! embedding; batches of 64 about 55 µs per embedding. `cargo xtask bench --torch` sets these
//! against PyTorch in the same run.
//!
//! # Example
//! ```
//! use echoic_core::listener::{Listener, DEFAULT_MODEL};
//! let mut listener = Listener::from_bytes(DEFAULT_MODEL).unwrap(); // allocates: not real-time
//! let buffer_db = vec![-60.0; listener.sequence_len()]; // one dilated buffer, in dB
//! let mut embedding = vec![0.0; listener.latent_dim()];
//! listener.embed_into(&buffer_db, &mut embedding).unwrap(); // allocation-free
//! assert!(embedding.iter().all(|v| v.is_finite()));
//! println!("{} runs inference", listener.device_name());
//! ```

pub mod adapt;
pub mod augment;
#[cfg(feature = "candle")]
pub mod candle;
pub mod config;
pub mod encoder;
pub mod format;
pub mod lstm;

#[cfg(test)]
mod tests;

use encoder::{Device, Encoder};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use config::{Activation, ModelConfig};
pub use format::{
    AdaptedFrom, Features, Level, ListenerMetadata, NamedTensor, Normalisation, Provenance,
    FORMAT_VERSION,
};

/// The shipped model, built into the plugin and the tools: what a fresh instance listens with.
pub const DEFAULT_MODEL: &[u8] = include_bytes!("../../../models/echoic-default.safetensors");

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
    #[error(
        "model format version {found} is not supported; this build reads versions {} to {supported}",
        format::OLDEST_FORMAT_VERSION
    )]
    UnsupportedVersion {
        /// The file's version.
        found: u32,
        /// The newest version this build reads.
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
    /// The device asked for is not available in this build or on this machine.
    #[error("{0}")]
    Device(String),
    /// candle failed while running the model on the GPU.
    #[cfg(feature = "cuda")]
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

/// A loaded model, ready to embed dilated buffers.
pub struct Listener {
    /// Everything in the file besides the weights.
    meta: ListenerMetadata,
    /// The encoder chosen at load: it alone runs inference.
    encoder: Encoder,
    /// `steps × n_bands`: the values of one sequence.
    sequence_len: usize,
    /// Normalised input of [`embed_into`](Self::embed_into), reused across calls.
    scratch: Vec<f32>,
    /// Every weight of the model, decoder included: inference needs only the encoder, but
    /// adaptation fine-tunes both and starts from these values. Shared, so that an adaptation
    /// thread takes them without a copy.
    weights: Arc<[NamedTensor]>,
    /// The model file's [`format::model_id`]: names the base that an adapted listener's saved
    /// delta applies to.
    id: String,
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

/// Sequences normalised and encoded per step of [`Listener::embed_batch`]: bounds the memory one
/// call takes besides its output.
const CHUNK: usize = 256;

impl Listener {
    /// Loads a model file from memory onto [`Device::preferred`]. Validates everything (see
    /// [`format::decode`]); never panics. Allocates.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ListenerError> {
        Self::from_bytes_on(bytes, Device::preferred())
    }

    /// Loads a model file from memory onto `device`. Allocates.
    pub fn from_bytes_on(bytes: &[u8], device: Device) -> Result<Self, ListenerError> {
        let (meta, tensors) = format::decode(bytes)?;
        Self::build(meta, tensors, device, format::model_id(bytes))
    }

    /// Reads and loads a model file onto [`Device::preferred`]. Allocates and does file I/O.
    ///
    /// Reads at most [`MAX_MODEL_BYTES`]: a path from a saved session may name anything (a huge
    /// file, a file under `/proc` that never ends), and a larger file is refused unread.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ListenerError> {
        Self::from_bytes(&read_model_file(path.as_ref())?)
    }

    /// A listener from metadata and weights already in memory (training, adaptation, tests).
    /// Validates both; its [`id`](Self::id) is that of the file [`format::encode`] would write.
    /// Allocates (the encoded file, once, for the id).
    pub fn from_parts(
        meta: ListenerMetadata,
        tensors: &[NamedTensor],
        device: Device,
    ) -> Result<Self, ListenerError> {
        let id = format::model_id(&format::encode(&meta, tensors)?);
        Self::build(meta, tensors.to_vec(), device, id)
    }

    /// A listener from checked parts and its file's id. Allocates.
    fn build(
        meta: ListenerMetadata,
        tensors: Vec<NamedTensor>,
        device: Device,
        id: String,
    ) -> Result<Self, ListenerError> {
        meta.validate()?;
        format::check_weights(&meta.model, &tensors)?;
        let encoder = Encoder::new(&meta.model, &tensors, device)?;
        let sequence_len = meta.model.steps * meta.model.n_bands;
        Ok(Self {
            meta,
            encoder,
            sequence_len,
            scratch: vec![0.0; sequence_len],
            weights: tensors.into(),
            id,
        })
    }

    /// Every weight of the model, encoder and decoder, as its file holds them: what adaptation
    /// starts from. Allocation-free (a shared handle).
    pub fn weights(&self) -> &Arc<[NamedTensor]> {
        &self.weights
    }

    /// The model file's id ([`format::model_id`] of its bytes). Allocation-free.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where inference runs, as a [`Device`], so that a listener derived from this one (an
    /// adapted one) runs on the same. Allocation-free.
    pub fn device(&self) -> Device {
        self.encoder.device()
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

    /// Where inference runs: `"cpu"` or `"cuda:N"`: the device of the encoder chosen at load.
    pub fn device_name(&self) -> String {
        self.encoder.device().to_string()
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
    /// (`latent_dim` values). The worker's per-hop path.
    ///
    /// On the CPU encoder it runs into buffers allocated at load time: it does not allocate,
    /// lock or spawn, so its cost is steady (about 0.1–0.3 ms; keep it off the audio thread).
    /// On CUDA each call allocates device tensors. Matches [`embed_batch`](Self::embed_batch) to
    /// float rounding.
    pub fn embed_into(&mut self, buffer_db: &[f32], out: &mut [f32]) -> Result<(), ListenerError> {
        self.check_len(buffer_db.len(), 1)?;
        if out.len() != self.latent_dim() {
            return Err(ListenerError::Input {
                expected: self.latent_dim(),
                found: out.len(),
            });
        }
        self.meta
            .normalisation
            .apply(buffer_db, &mut self.scratch, self.sequence_len);
        self.encoder.encode_one(&self.scratch, out)
    }

    /// The encoder's input for `buffers_db` (whole sequences in dB): the model file's
    /// [`Normalisation`] applied, exactly as [`embed_into`](Self::embed_into) and
    /// [`embed_batch`](Self::embed_batch) do. Allocation-free.
    ///
    /// # Panics
    ///
    /// If the lengths differ or are not whole sequences.
    pub fn normalise(&self, buffers_db: &[f32], out: &mut [f32]) {
        self.meta
            .normalisation
            .apply(buffers_db, out, self.sequence_len);
    }

    /// Embeds `n` dilated buffers laid end to end in `buffers_db`; returns `n × latent_dim`
    /// values. For offline use: allocates. Matches [`embed_into`](Self::embed_into) to float
    /// rounding.
    pub fn embed_batch(&self, buffers_db: &[f32], n: usize) -> Result<Vec<f32>, ListenerError> {
        self.check_len(buffers_db.len(), n)?;
        let latent = self.latent_dim();
        let mut out = vec![0.0; n * latent];
        let mut normalised = vec![0.0; CHUNK.min(n) * self.sequence_len];
        for (chunk, dst) in buffers_db
            .chunks(CHUNK * self.sequence_len)
            .zip(out.chunks_mut(CHUNK * latent))
        {
            let normalised = &mut normalised[..chunk.len()];
            self.normalise(chunk, normalised);
            self.encoder
                .encode_batch(normalised, chunk.len() / self.sequence_len, dst)?;
        }
        Ok(out)
    }
}

/// Reads a model file, refusing one over [`MAX_MODEL_BYTES`] unread. Allocates; file I/O.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>, ListenerError> {
    use std::io::Read;
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
    Ok(bytes)
}
