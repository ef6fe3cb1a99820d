//! The listener's network: a sequence-to-sequence LSTM autoencoder with the shapes of the original
//! Keras Listener, built from candle ops so that the cell activation can be `relu` (candle's own
//! LSTM is tanh-only) and so that candle's autograd trains it.
//!
//! # Shapes
//! Encoder: LSTM(`encoder[0]`, returning sequences) → … → LSTM(`encoder[last]`); the last hidden
//! state of the last layer is the embedding. Decoder: the embedding repeated `steps` times →
//! LSTM(`decoder[0]`) → … → LSTM(`n_bands`); the output sequence of the last layer is the
//! reconstruction, in normalised units.
//!
//! # The cell (Keras layout, one bias per gate set)
//! For an LSTM layer with input size D and H units, `kernel` is `D × 4H`, `recurrent_kernel` is
//! `H × 4H` and `bias` is `4H`, the 4H columns being the gates in the order i, f, g (cell
//! candidate, Keras' "c"), o. With `z = x·kernel + h·recurrent_kernel + bias`:
//!
//! ```text
//! i = σ(z_i)   f = σ(z_f)   o = σ(z_o)   g = act(z_g)
//! c' = f ⊙ c + i ⊙ g        h' = o ⊙ act(c')
//! ```
//!
//! where `act` is [`Activation`] (relu in the original) and the state starts at zero.
//!
//! # Speed
//! Internally sequences are time-major (`T × B × D`) so that each step's slice is contiguous. The
//! input projection of all T steps is one matmul per layer; each step then costs one fused
//! `h · recurrent_kernel` matmul for all four gates, one sigmoid over all four gates, and a handful
//! of element-wise ops. The decoder's input is the same at every step (RepeatVector), so its first
//! layer's input projection is computed once.

use super::format::NamedTensor;
use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

/// The cell activation, used both for the candidate `g` and on the cell state before the output
/// gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`: the original Listener's choice (Keras `activation="relu"`).
    #[default]
    Relu,
    /// `tanh(x)`: the standard LSTM cell.
    Tanh,
}

impl Activation {
    /// Applies the activation to a tensor.
    pub(crate) fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
        }
    }

    /// The name used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            other => Err(format!(
                "unknown activation `{other}` (expected relu or tanh)"
            )),
        }
    }
}

/// Largest number of LSTM layers on either side: bounds what a model file can ask for.
pub const MAX_LAYERS: usize = 8;
/// Largest LSTM layer (units) a model file may ask for: bounds the memory a file can make the
/// loader and inference allocate.
pub const MAX_UNITS: usize = 4096;
/// Largest `steps × 4 × units` of any layer: bounds the per-sequence working memory of
/// inference (the default model needs 8 000).
pub const MAX_STEP_GATES: usize = 1 << 22;
/// Largest number of steps a model may take: the longest sequence a [`crate::dilated::DilatedSpec`]
/// can produce is far shorter.
pub const MAX_STEPS: usize = 4096;

/// The network's sizes. Serialised into every model file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Bands per step: the input and output width, which must equal the cochlea's band count.
    pub n_bands: usize,
    /// Steps per sequence: the dilated buffer's length; the decoder repeats the embedding this
    /// many times.
    pub steps: usize,
    /// Encoder LSTM sizes, first to last; the last one is the embedding size.
    #[serde(default = "default_encoder")]
    pub encoder: Vec<usize>,
    /// Decoder LSTM sizes before the final `n_bands` layer (which is always there, so that the
    /// decoder's output has the input's shape).
    #[serde(default = "default_decoder")]
    pub decoder: Vec<usize>,
    /// The cell activation of every layer.
    #[serde(default)]
    pub activation: Activation,
}

/// The original Listener's encoder: LSTM(50) → LSTM(250).
fn default_encoder() -> Vec<usize> {
    vec![50, 250]
}

/// The original Listener's decoder before the output layer: LSTM(50).
fn default_decoder() -> Vec<usize> {
    vec![50]
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            n_bands: 100,
            steps: 8,
            encoder: default_encoder(),
            decoder: default_decoder(),
            activation: Activation::Relu,
        }
    }
}

/// One LSTM layer's place in the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerShape {
    /// Tensor-name prefix, `encoder.K` or `decoder.K`.
    pub prefix: String,
    /// Input size D.
    pub input: usize,
    /// Units H.
    pub units: usize,
}

impl LayerShape {
    /// The layer's three tensors: name and shape.
    pub fn tensors(&self) -> [(String, Vec<usize>); 3] {
        [
            (
                format!("{}.kernel", self.prefix),
                vec![self.input, 4 * self.units],
            ),
            (
                format!("{}.recurrent_kernel", self.prefix),
                vec![self.units, 4 * self.units],
            ),
            (format!("{}.bias", self.prefix), vec![4 * self.units]),
        ]
    }

    /// Parameters in this layer: `4H(D + H + 1)`.
    pub fn parameter_count(&self) -> usize {
        4 * self.units * (self.input + self.units + 1)
    }
}

impl ModelConfig {
    /// The default network for a given input shape.
    pub fn for_input(n_bands: usize, steps: usize) -> Self {
        Self {
            n_bands,
            steps,
            ..Self::default()
        }
    }

    /// The embedding size: the last encoder layer's units (0 if the encoder is empty, which
    /// [`validate`](Self::validate) refuses).
    pub fn latent_dim(&self) -> usize {
        self.encoder.last().copied().unwrap_or(0)
    }

    /// Checks that the sizes are usable and within the loader's limits. Allocates only the
    /// error message.
    pub fn validate(&self) -> Result<(), String> {
        if self.n_bands == 0 || self.n_bands > crate::frame::MAX_BANDS {
            return Err(format!(
                "n_bands {} is outside 1..={}",
                self.n_bands,
                crate::frame::MAX_BANDS
            ));
        }
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(format!("steps {} is outside 1..={MAX_STEPS}", self.steps));
        }
        if self.encoder.is_empty() || self.encoder.len() > MAX_LAYERS {
            return Err(format!(
                "{} encoder layers; 1..={MAX_LAYERS} are allowed",
                self.encoder.len()
            ));
        }
        if self.decoder.len() >= MAX_LAYERS {
            return Err(format!(
                "{} decoder layers before the output layer; at most {} are allowed",
                self.decoder.len(),
                MAX_LAYERS - 1
            ));
        }
        if let Some(&u) = self
            .encoder
            .iter()
            .chain(&self.decoder)
            .find(|&&u| u == 0 || u > MAX_UNITS)
        {
            return Err(format!("a layer of {u} units; 1..={MAX_UNITS} are allowed"));
        }
        // Inference buffers grow with steps × gates; a small file must not make the loader
        // allocate gigabytes.
        let widest = self
            .encoder
            .iter()
            .chain(&self.decoder)
            .chain([&self.n_bands])
            .max()
            .copied()
            .unwrap_or(0);
        if self.steps * 4 * widest > MAX_STEP_GATES {
            return Err(format!(
                "{} steps of a {widest}-unit layer exceed the limit of {MAX_STEP_GATES} step-gates",
                self.steps
            ));
        }
        Ok(())
    }

    /// Every LSTM layer, encoder first, in the order the forward pass runs them.
    pub fn layers(&self) -> Vec<LayerShape> {
        let mut layers = Vec::with_capacity(self.encoder.len() + self.decoder.len() + 1);
        let mut input = self.n_bands;
        for (k, &units) in self.encoder.iter().enumerate() {
            layers.push(LayerShape {
                prefix: format!("encoder.{k}"),
                input,
                units,
            });
            input = units;
        }
        for (k, &units) in self
            .decoder
            .iter()
            .chain(std::iter::once(&self.n_bands))
            .enumerate()
        {
            layers.push(LayerShape {
                prefix: format!("decoder.{k}"),
                input,
                units,
            });
            input = units;
        }
        layers
    }

    /// Every tensor the model file holds: name and shape, in forward order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.layers().iter().flat_map(|l| l.tensors()).collect()
    }

    /// Trainable parameters (encoder and decoder).
    pub fn parameter_count(&self) -> usize {
        self.layers().iter().map(LayerShape::parameter_count).sum()
    }
}

/// One LSTM layer's weights as candle tensors (shared with the training variables, if any).
#[derive(Clone, Debug)]
pub(crate) struct Lstm {
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
enum Projection {
    /// Time-major `T × B × 4H`: a different input at every step.
    PerStep(Tensor),
    /// `B × 4H`: the same input at every step (the decoder's repeated embedding).
    Repeated(Tensor),
}

impl Lstm {
    /// Runs the layer over `steps` steps; returns the time-major `T × B × H` output sequence
    /// when `sequence`, else the last hidden state `B × H`.
    fn run(
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
            let g = act.apply(&z.narrow(1, 2 * h_units, h_units)?)?;
            let o = gates.narrow(1, 3 * h_units, h_units)?;
            let ig = (i * g)?;
            let c_next = match &c {
                Some(c) => ((gates.narrow(1, h_units, h_units)? * c)? + ig)?,
                None => ig,
            };
            let h_next = (o * act.apply(&c_next)?)?;
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
    fn project(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.kernel)?.broadcast_add(&self.bias)
    }
}

/// The autoencoder: weights plus configuration.
#[derive(Clone, Debug)]
pub(crate) struct Seq2Seq {
    /// Sizes and activation.
    cfg: ModelConfig,
    /// Encoder layers, first to last.
    encoder: Vec<Lstm>,
    /// Decoder layers, the last one being `n_bands` wide.
    decoder: Vec<Lstm>,
}

impl Seq2Seq {
    /// Builds the model from named tensors (see [`ModelConfig::tensor_shapes`]); `get` returns
    /// the tensor for a name, already on the right device and of the right shape.
    pub(crate) fn from_fn(
        cfg: &ModelConfig,
        mut get: impl FnMut(&str) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Self> {
        let mut encoder = Vec::new();
        let mut decoder = Vec::new();
        for layer in cfg.layers() {
            let [(k, _), (r, _), (b, _)] = layer.tensors();
            let lstm = Lstm {
                kernel: get(&k)?,
                recurrent: get(&r)?,
                bias: get(&b)?,
                units: layer.units,
            };
            if layer.prefix.starts_with("encoder") {
                encoder.push(lstm);
            } else {
                decoder.push(lstm);
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            encoder,
            decoder,
        })
    }

    /// A copy whose weights are detached from the autograd graph (sharing storage), for
    /// evaluation during training without building a graph.
    pub(crate) fn detached(&self) -> Self {
        let detach = |l: &Lstm| Lstm {
            kernel: l.kernel.detach(),
            recurrent: l.recurrent.detach(),
            bias: l.bias.detach(),
            units: l.units,
        };
        Self {
            cfg: self.cfg.clone(),
            encoder: self.encoder.iter().map(detach).collect(),
            decoder: self.decoder.iter().map(detach).collect(),
        }
    }

    /// Every weight tensor in forward order, matching [`ModelConfig::tensor_shapes`].
    pub(crate) fn tensors(&self) -> Vec<&Tensor> {
        self.encoder
            .iter()
            .chain(&self.decoder)
            .flat_map(|l| [&l.kernel, &l.recurrent, &l.bias])
            .collect()
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Encodes normalised batch-major `B × T × n_bands` input into `B × latent`.
    pub(crate) fn encode(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        // Time-major from here on, so that each step's rows are contiguous.
        let mut seq = x.transpose(0, 1)?.contiguous()?;
        let last = self.encoder.len() - 1;
        for (k, layer) in self.encoder.iter().enumerate() {
            let d = seq.dim(2)?;
            let p = layer
                .project(&seq.reshape((t * b, d))?)?
                .reshape((t, b, 4 * layer.units))?;
            seq = layer.run(Projection::PerStep(p), t, self.cfg.activation, k != last)?;
        }
        Ok(seq)
    }

    /// Decodes `B × latent` embeddings into the batch-major `B × T × n_bands` reconstruction, in
    /// normalised units.
    pub(crate) fn decode(&self, z: &Tensor) -> candle_core::Result<Tensor> {
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
                        4 * layer.units,
                    ))?)
                }
            };
            seq = Some(layer.run(projection, t, self.cfg.activation, true)?);
        }
        let seq = seq.ok_or_else(|| candle_core::Error::Msg("the decoder has no layers".into()))?;
        seq.transpose(0, 1)?.contiguous()
    }

    /// Encodes then decodes: the autoencoder's reconstruction of `x`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.decode(&self.encode(x)?)
    }
}

/// A small deterministic generator (SplitMix64) for weight initialisation and shuffling, so that
/// training runs are reproducible without a dependency.
#[derive(Clone, Debug)]
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal (Box–Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(f64::MIN_POSITIVE);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub(crate) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Keras' default LSTM initialisation, reproducibly: Glorot-uniform kernels, orthogonal
/// recurrent kernels, zero biases except the forget gate's, which start at 1 (`unit_forget_bias`).
/// Returns every tensor of `cfg`, in forward order.
pub(crate) fn initial_weights(cfg: &ModelConfig, seed: u64) -> Vec<NamedTensor> {
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
pub(crate) fn trainable(
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
pub(crate) fn read_weights(
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
