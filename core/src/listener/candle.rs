//! Runs on the worker on a GPU, and offline: the listener as candle ops.
//!
//! The listener as candle ops: the reference implementation of the whole autoencoder, the GPU
//! encoder, and the network the offline trainer differentiates. Worker or offline; never the
//! audio thread.
//!
//! Only built with the `candle` feature (which `cuda` implies). Every op allocates a tensor.
//!
//! # Speed
//! Internally sequences are time-major (`T × B × D`) so that each step's slice is contiguous. The
//! input projection of all T steps is one matmul per layer; each step then costs one fused
//! `h · recurrent_kernel` matmul for all four gates, one sigmoid over all four gates, and a handful
//! of element-wise ops. The decoder's input is the same at every step (RepeatVector), so its first
//! layer's input projection is computed once.

use super::config::{Activation, LayerShape, ModelConfig};
use super::format::{ListenerMetadata, NamedTensor};
use candle_core::{Device, Tensor};

/// A `get` for the `from_fn` constructors: the tensor called `name` in `tensors` (a decoded model
/// file), copied onto `device`. Allocates.
fn tensor_reader<'a>(
    tensors: &'a [NamedTensor],
    device: &'a Device,
) -> impl FnMut(&str) -> candle_core::Result<Tensor> + 'a {
    move |name| {
        let t = tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no tensor {name}")))?;
        Tensor::from_slice(&t.data, t.shape.as_slice(), device)
    }
}

/// Applies the cell activation to a tensor.
fn activate(act: Activation, x: &Tensor) -> candle_core::Result<Tensor> {
    match act {
        Activation::Relu => x.relu(),
        Activation::Tanh => x.tanh(),
    }
}

/// One LSTM layer's weights as candle tensors (shared with the training variables, if any).
#[derive(Clone, Debug)]
pub struct Lstm {
    /// Input projection, `D × 4H`.
    kernel: Tensor,
    /// Recurrent projection, `H × 4H`: one fused matmul per step for all four gates.
    recurrent: Tensor,
    /// Gate biases, `4H`.
    bias: Tensor,
    /// H.
    units: usize,
}

/// Where a layer's per-step input projection comes from.
pub enum Projection {
    /// Time-major `T × B × 4H`: a different input at every step.
    PerStep(Tensor),
    /// `B × 4H`: the same input at every step (the decoder's repeated embedding).
    Repeated(Tensor),
}

impl Lstm {
    /// Runs the layer over `steps` steps; returns the time-major `T × B × H` output sequence
    /// when `sequence`, else the last hidden state `B × H`.
    pub fn run(
        &self,
        projection: Projection,
        steps: usize,
        act: Activation,
        sequence: bool,
    ) -> candle_core::Result<Tensor> {
        let h_units = self.units;
        let mut h: Option<Tensor> = None;
        let mut c: Option<Tensor> = None;
        let mut outputs = Vec::with_capacity(if sequence { steps } else { 0 });
        for t in 0..steps {
            let xp = match &projection {
                Projection::PerStep(p) => p.get(t)?,
                Projection::Repeated(p) => p.clone(),
            };
            // The state starts at zero, so the first step needs no recurrent term and no f ⊙ c.
            let z = match &h {
                Some(h) => (xp + h.matmul(&self.recurrent)?)?,
                None => xp,
            };
            let gates = candle_nn::ops::sigmoid(&z)?;
            let i = gates.narrow(1, 0, h_units)?;
            let g = activate(act, &z.narrow(1, 2 * h_units, h_units)?)?;
            let o = gates.narrow(1, 3 * h_units, h_units)?;
            let ig = (i * g)?;
            let c_next = match &c {
                Some(c) => ((gates.narrow(1, h_units, h_units)? * c)? + ig)?,
                None => ig,
            };
            let h_next = (o * activate(act, &c_next)?)?;
            if sequence {
                outputs.push(h_next.clone());
            }
            h = Some(h_next);
            c = Some(c_next);
        }
        if sequence {
            Tensor::stack(&outputs, 0)
        } else {
            h.ok_or_else(|| candle_core::Error::Msg("an LSTM needs at least one step".into()))
        }
    }

    /// `x · kernel + bias` for a `N × D` matrix.
    pub fn project(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.kernel)?.broadcast_add(&self.bias)
    }

    /// The layer `shape`, reading its three tensors through `get` (already on the right device
    /// and of the right shape).
    pub fn from_fn(
        shape: &LayerShape,
        get: &mut impl FnMut(&str) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        let [(k, _), (r, _), (b, _)] = shape.tensors();
        Ok(Self {
            kernel: get(&k)?,
            recurrent: get(&r)?,
            bias: get(&b)?,
            units: shape.units,
        })
    }

    /// A copy whose weights are detached from the autograd graph (sharing storage).
    pub fn detached(&self) -> Self {
        Self {
            kernel: self.kernel.detach(),
            recurrent: self.recurrent.detach(),
            bias: self.bias.detach(),
            units: self.units,
        }
    }

    /// The three weight tensors, in file order: kernel, recurrent kernel, bias.
    pub fn tensors(&self) -> [&Tensor; 3] {
        [&self.kernel, &self.recurrent, &self.bias]
    }

    /// H, the layer's width.
    pub fn units(&self) -> usize {
        self.units
    }
}

/// The encoder stack in candle: the embedding of a batch of normalised sequences.
#[derive(Clone, Debug)]
pub struct CandleEncoder {
    /// Encoder layers, first to last; the last one's final hidden state is the embedding.
    layers: Vec<Lstm>,
    /// The cell activation of every layer.
    activation: Activation,
    /// Steps per sequence.
    steps: usize,
    /// Bands per step.
    n_bands: usize,
}

impl CandleEncoder {
    /// The encoder of `cfg`, reading each tensor through `get`. Allocates.
    pub fn from_fn(
        cfg: &ModelConfig,
        mut get: impl FnMut(&str) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        let layers = cfg
            .layers()
            .iter()
            .filter(|l| l.prefix.starts_with("encoder"))
            .map(|l| Lstm::from_fn(l, &mut get))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            layers,
            activation: cfg.activation,
            steps: cfg.steps,
            n_bands: cfg.n_bands,
        })
    }

    /// The encoder of a decoded model file (`cfg` and its `tensors`), on `device`. Allocates.
    pub fn from_tensors(
        cfg: &ModelConfig,
        tensors: &[NamedTensor],
        device: &Device,
    ) -> candle_core::Result<Self> {
        Self::from_fn(cfg, tensor_reader(tensors, device))
    }

    /// The layers, first to last.
    pub fn layers(&self) -> &[Lstm] {
        &self.layers
    }

    /// A copy whose weights are detached from the autograd graph (sharing storage).
    pub fn detached(&self) -> Self {
        Self {
            layers: self.layers.iter().map(Lstm::detached).collect(),
            ..self.clone()
        }
    }

    /// Encodes normalised batch-major `B × T × n_bands` input into `B × latent`.
    pub fn encode(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        // Time-major from here on, so that each step's rows are contiguous.
        let mut seq = x.transpose(0, 1)?.contiguous()?;
        let last = self.layers.len() - 1;
        for (k, layer) in self.layers.iter().enumerate() {
            let d = seq.dim(2)?;
            let p = layer
                .project(&seq.reshape((t * b, d))?)?
                .reshape((t, b, 4 * layer.units))?;
            seq = layer.run(Projection::PerStep(p), t, self.activation, k != last)?;
        }
        Ok(seq)
    }

    /// Encodes `n` normalised sequences laid end to end in `normalised`, on `device`; returns
    /// `n × latent` values. Allocates.
    pub fn encode_slice(
        &self,
        normalised: &[f32],
        n: usize,
        device: &Device,
    ) -> candle_core::Result<Vec<f32>> {
        let x = Tensor::from_slice(normalised, (n, self.steps, self.n_bands), device)?;
        self.encode(&x)?.flatten_all()?.to_vec1::<f32>()
    }
}

/// The whole autoencoder: the encoder plus the decoder, the reference the CPU encoder is tested
/// against and the network the offline trainer differentiates.
#[derive(Clone, Debug)]
pub struct Seq2Seq {
    /// Sizes and activation.
    cfg: ModelConfig,
    /// Encoder layers, first to last: the same code the runtime runs on a GPU.
    encoder: CandleEncoder,
    /// Decoder layers, the last one being `n_bands` wide.
    decoder: Vec<Lstm>,
}

impl Seq2Seq {
    /// Builds the model from named tensors (see [`ModelConfig::tensor_shapes`]); `get` returns
    /// the tensor for a name, already on the right device and of the right shape.
    pub fn from_fn(
        cfg: &ModelConfig,
        mut get: impl FnMut(&str) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        let encoder = CandleEncoder::from_fn(cfg, &mut get)?;
        let decoder = cfg
            .layers()
            .iter()
            .filter(|l| l.prefix.starts_with("decoder"))
            .map(|l| Lstm::from_fn(l, &mut get))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            decoder,
        })
    }

    /// The model stored in `meta` and `tensors` (a decoded model file), on `device`. Allocates.
    pub fn from_tensors(
        meta: &ListenerMetadata,
        tensors: &[NamedTensor],
        device: &Device,
    ) -> candle_core::Result<Self> {
        Self::from_fn(&meta.model, tensor_reader(tensors, device))
    }

    /// A copy whose weights are detached from the autograd graph (sharing storage), for
    /// evaluation during training without building a graph.
    pub fn detached(&self) -> Self {
        Self {
            cfg: self.cfg.clone(),
            encoder: self.encoder.detached(),
            decoder: self.decoder.iter().map(Lstm::detached).collect(),
        }
    }

    /// Every weight tensor in forward order, matching [`ModelConfig::tensor_shapes`].
    pub fn tensors(&self) -> Vec<&Tensor> {
        self.encoder
            .layers()
            .iter()
            .chain(&self.decoder)
            .flat_map(Lstm::tensors)
            .collect()
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Encodes normalised batch-major `B × T × n_bands` input into `B × latent`.
    pub fn encode(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.encoder.encode(x)
    }

    /// Decodes `B × latent` embeddings into the batch-major `B × T × n_bands` reconstruction, in
    /// normalised units.
    pub fn decode(&self, z: &Tensor) -> candle_core::Result<Tensor> {
        let t = self.cfg.steps;
        let mut seq: Option<Tensor> = None;
        for layer in &self.decoder {
            let projection = match &seq {
                None => Projection::Repeated(layer.project(z)?),
                Some(s) => {
                    let (t, b, d) = s.dims3()?;
                    Projection::PerStep(layer.project(&s.reshape((t * b, d))?)?.reshape((
                        t,
                        b,
                        4 * layer.units(),
                    ))?)
                }
            };
            seq = Some(layer.run(projection, t, self.cfg.activation, true)?);
        }
        let seq = seq.ok_or_else(|| candle_core::Error::Msg("the decoder has no layers".into()))?;
        seq.transpose(0, 1)?.contiguous()
    }

    /// Encodes then decodes: the autoencoder's reconstruction of `x`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.decode(&self.encode(x)?)
    }
}
