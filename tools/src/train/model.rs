//! Offline: the autoencoder for training and evaluation.
//!
//! The listener's autoencoder for training and evaluation: a model file's [`Autoencoder`] for
//! reconstructions (the CPU LSTM engine, or candle on a GPU), Keras' initialisation, and the
//! bridge between candle's training variables and the reference network
//! (`echoic_core::listener::candle::Seq2Seq`). Offline.

use super::candle_device;
use candle_core::{DType, Device, Tensor, Var};
use echoic_core::listener::candle::Seq2Seq;
use echoic_core::listener::encoder::Device as ListenerDevice;
use echoic_core::listener::lstm::{Network, Workspace};
use echoic_core::listener::{ListenerMetadata, ModelConfig, NamedTensor};
use echoic_core::rng::SplitMix64;

/// A model file's whole autoencoder: reconstructions for `echoic eval` and training's final
/// figures, and embeddings for the principal axes. Allocates.
#[derive(Debug)]
pub struct Autoencoder {
    /// Everything in the file besides the weights.
    meta: ListenerMetadata,
    /// The network, where it runs.
    net: Net,
}

/// Where an [`Autoencoder`] runs.
#[derive(Debug)]
enum Net {
    /// The CPU LSTM engine.
    Engine(Network),
    /// candle, on a GPU.
    Candle {
        /// The network.
        net: Seq2Seq,
        /// Its device.
        device: Device,
    },
}

/// Sequences per network call, in evaluation, validation and embedding: bounds the memory one
/// call takes.
pub(crate) const CHUNK: usize = 256;

impl Autoencoder {
    /// Loads a model file on the CPU. Validates it as the plugin's loader does.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let (meta, tensors) = echoic_core::listener::format::decode(bytes)?;
        Self::from_parts(meta, &tensors, ListenerDevice::Cpu)
    }

    /// The autoencoder of `meta` and `tensors`: the LSTM engine on the CPU, candle on a GPU.
    /// Validates both.
    pub fn from_parts(
        meta: ListenerMetadata,
        tensors: &[NamedTensor],
        device: ListenerDevice,
    ) -> anyhow::Result<Self> {
        meta.validate()?;
        echoic_core::listener::format::check_weights(&meta.model, tensors)?;
        let net = match device {
            ListenerDevice::Cpu => Net::Engine(Network::new(&meta.model, tensors)?),
            ListenerDevice::Cuda(_) => {
                let device = candle_device(device)?;
                let net = Seq2Seq::from_tensors(&meta, tensors, &device)?;
                Net::Candle { net, device }
            }
        };
        Ok(Self { meta, net })
    }

    /// Everything in the file besides the weights.
    pub fn metadata(&self) -> &ListenerMetadata {
        &self.meta
    }

    /// What runs the network: "LSTM engine on the CPU" or "candle on" the GPU.
    pub fn runner(&self) -> String {
        match &self.net {
            Net::Engine(_) => "LSTM engine on the CPU".to_string(),
            Net::Candle { device, .. } => format!("candle on {device:?}"),
        }
    }

    /// Runs the encoder (`decode` false) or the whole autoencoder on `n` normalised sequences,
    /// chunk by chunk; returns `n × latent` embeddings or `n × steps × n_bands` reconstructions.
    fn run(&self, normalised: &[f32], n: usize, decode: bool) -> anyhow::Result<Vec<f32>> {
        let cfg = &self.meta.model;
        let sequence = cfg.steps * cfg.n_bands;
        anyhow::ensure!(
            normalised.len() == n * sequence,
            "expected {} values, got {}",
            n * sequence,
            normalised.len()
        );
        let width = if decode { sequence } else { cfg.latent_dim() };
        let mut out = vec![0.0; n * width];
        let chunks = normalised
            .chunks(CHUNK * sequence)
            .zip(out.chunks_mut(CHUNK * width));
        match &self.net {
            Net::Engine(net) => {
                let mut workspace = Workspace::new(net, n.min(CHUNK));
                for (x, dst) in chunks {
                    let b = x.len() / sequence;
                    if decode {
                        workspace.reconstruct(net, x, b, dst);
                    } else {
                        workspace.encode(net, x, b, dst);
                    }
                }
            }
            Net::Candle { net, device } => {
                for (x, dst) in chunks {
                    let x = Tensor::from_slice(
                        x,
                        (x.len() / sequence, cfg.steps, cfg.n_bands),
                        device,
                    )?;
                    let y = if decode {
                        net.forward(&x)?
                    } else {
                        net.encode(&x)?
                    };
                    dst.copy_from_slice(&y.flatten_all()?.to_vec1::<f32>()?);
                }
            }
        }
        Ok(out)
    }

    /// The embeddings of `n` normalised sequences: `n × latent` values.
    pub fn embed_normalised(&self, normalised: &[f32], n: usize) -> anyhow::Result<Vec<f32>> {
        self.run(normalised, n, false)
    }

    /// The reconstructions of `n` normalised sequences, in normalised units:
    /// `n × steps × n_bands` values.
    pub fn reconstruct_normalised(&self, normalised: &[f32], n: usize) -> anyhow::Result<Vec<f32>> {
        self.run(normalised, n, true)
    }

    /// Encodes and decodes `n` dilated buffers; returns the `n × steps × n_bands`
    /// reconstructions in dB (de-normalised).
    pub fn reconstruct_batch(&self, buffers_db: &[f32], n: usize) -> anyhow::Result<Vec<f32>> {
        let sequence = self.meta.model.steps * self.meta.model.n_bands;
        let mut normalised = vec![0.0; buffers_db.len()];
        self.meta
            .normalisation
            .apply(buffers_db, &mut normalised, sequence);
        let mut out = self.reconstruct_normalised(&normalised, n)?;
        self.meta
            .normalisation
            .invert(&mut out, sequence, buffers_db);
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
