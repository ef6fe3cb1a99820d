//! Offline: the autoencoder for training and evaluation.
//!
//! The listener's autoencoder for training and evaluation: a model file's [`Autoencoder`] for
//! reconstructions, Keras' initialisation, and the bridge between candle's training variables and
//! the reference network (`echoic_core::listener::candle::Seq2Seq`). Offline.

use candle_core::{DType, Device, Tensor, Var};
use echoic_core::listener::candle::Seq2Seq;
use echoic_core::listener::{ListenerMetadata, ModelConfig, NamedTensor};
use echoic_core::rng::SplitMix64;

/// A model file's whole autoencoder on a candle device: reconstructions for `echoic eval`, and
/// candle's embedding as the reference the runtime encoders are tested against. Allocates.
#[derive(Debug)]
pub struct Autoencoder {
    /// Everything in the file besides the weights.
    meta: ListenerMetadata,
    /// The network.
    net: Seq2Seq,
    /// Where it runs.
    device: Device,
}

/// Sequences per candle call: bounds the memory one call takes.
const CHUNK: usize = 256;

impl Autoencoder {
    /// Loads a model file on the CPU. Validates it as the plugin's loader does.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let (meta, tensors) = echoic_core::listener::format::decode(bytes)?;
        Self::from_parts(meta, &tensors, Device::Cpu)
    }

    /// The autoencoder of `meta` and `tensors`, on `device`. Validates both.
    pub fn from_parts(
        meta: ListenerMetadata,
        tensors: &[NamedTensor],
        device: Device,
    ) -> anyhow::Result<Self> {
        meta.validate()?;
        echoic_core::listener::format::check_weights(&meta.model, tensors)?;
        let net = Seq2Seq::from_tensors(&meta, tensors, &device)?;
        Ok(Self { meta, net, device })
    }

    /// Everything in the file besides the weights.
    pub fn metadata(&self) -> &ListenerMetadata {
        &self.meta
    }

    /// Runs `f` on each chunk of normalised sequences of `buffers_db` (`n` dilated buffers in
    /// dB) as a `B × T × n_bands` tensor, concatenating what it returns.
    fn map_chunks(
        &self,
        buffers_db: &[f32],
        n: usize,
        f: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> anyhow::Result<Vec<f32>> {
        let cfg = &self.meta.model;
        let sequence = cfg.steps * cfg.n_bands;
        anyhow::ensure!(
            buffers_db.len() == n * sequence,
            "expected {} values, got {}",
            n * sequence,
            buffers_db.len()
        );
        let mut out = Vec::new();
        let mut normalised = vec![0.0; CHUNK.min(n) * sequence];
        for chunk in buffers_db.chunks(CHUNK * sequence) {
            let normalised = &mut normalised[..chunk.len()];
            self.meta.normalisation.apply(chunk, normalised);
            let x = Tensor::from_slice(
                normalised,
                (chunk.len() / sequence, cfg.steps, cfg.n_bands),
                &self.device,
            )?;
            out.extend(f(&x)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// candle's embeddings of `n` dilated buffers (dB, laid end to end): `n × latent` values.
    pub fn embed_batch(&self, buffers_db: &[f32], n: usize) -> anyhow::Result<Vec<f32>> {
        self.map_chunks(buffers_db, n, |x| self.net.encode(x))
    }

    /// Encodes and decodes `n` dilated buffers; returns the `n × steps × n_bands`
    /// reconstructions in dB (de-normalised).
    pub fn reconstruct_batch(&self, buffers_db: &[f32], n: usize) -> anyhow::Result<Vec<f32>> {
        let mut out = self.map_chunks(buffers_db, n, |x| self.net.forward(x))?;
        self.meta.normalisation.invert(&mut out);
        Ok(out)
    }
}

/// Keras' default LSTM initialisation, reproducibly: Glorot-uniform kernels, orthogonal
/// recurrent kernels, zero biases except the forget gate's, which start at 1 (`unit_forget_bias`).
/// Returns every tensor of `cfg`, in forward order.
pub fn initial_weights(cfg: &ModelConfig, seed: u64) -> Vec<NamedTensor> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::new();
    for layer in cfg.layers() {
        let (d, h) = (layer.input, layer.units);
        let [(k, ks), (r, rs), (b, bs)] = layer.tensors();
        let limit = (6.0 / (d + 4 * h) as f64).sqrt();
        let kernel = (0..d * 4 * h)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * limit) as f32)
            .collect();
        out.push(NamedTensor {
            name: k,
            shape: ks,
            data: kernel,
        });
        out.push(NamedTensor {
            name: r,
            shape: rs,
            data: orthogonal_rows(h, 4 * h, &mut rng),
        });
        let mut bias = vec![0.0f32; 4 * h];
        bias[h..2 * h].fill(1.0);
        out.push(NamedTensor {
            name: b,
            shape: bs,
            data: bias,
        });
    }
    out
}

/// A `rows × cols` (rows ≤ cols) row-major matrix with orthonormal rows, by modified
/// Gram–Schmidt on Gaussian rows.
fn orthogonal_rows(rows: usize, cols: usize, rng: &mut SplitMix64) -> Vec<f32> {
    let mut m: Vec<Vec<f64>> = (0..rows)
        .map(|_| (0..cols).map(|_| rng.normal()).collect())
        .collect();
    for i in 0..rows {
        for j in 0..i {
            let (done, rest) = m.split_at_mut(i);
            let dot: f64 = done[j].iter().zip(&rest[0]).map(|(a, b)| a * b).sum();
            for (x, q) in rest[0].iter_mut().zip(&done[j]) {
                *x -= dot * q;
            }
        }
        let norm = m[i].iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        m[i].iter_mut().for_each(|x| *x /= norm);
    }
    m.into_iter().flatten().map(|x| x as f32).collect()
}

/// Creates the training variables for `weights` on `device`, registered in `varmap` under their
/// tensor names, and the model that reads them.
pub fn trainable(
    cfg: &ModelConfig,
    weights: &[NamedTensor],
    varmap: &candle_nn::VarMap,
    device: &Device,
) -> candle_core::Result<Seq2Seq> {
    {
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned VarMap".into()))?;
        for t in weights {
            let var = Var::from_tensor(&Tensor::from_slice(&t.data, t.shape.as_slice(), device)?)?;
            data.insert(t.name.clone(), var);
        }
    }
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned VarMap".into()))?;
    Seq2Seq::from_fn(cfg, |name| {
        data.get(name)
            .map(|v| v.as_tensor().clone())
            .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))
    })
}

/// Reads a model's current weights back, in forward order.
pub fn read_weights(
    cfg: &ModelConfig,
    varmap: &candle_nn::VarMap,
) -> candle_core::Result<Vec<NamedTensor>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("poisoned VarMap".into()))?;
    cfg.tensor_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let var = data
                .get(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no variable {name}")))?;
            let data = var
                .as_tensor()
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            Ok(NamedTensor { name, shape, data })
        })
        .collect()
}
