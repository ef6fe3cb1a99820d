//! Data for any thread: the listener network's sizes.
//!
//! The listener network's sizes: the model configuration stored in every file, its layers and
//! their tensors. Pure data, shared by the runtime encoders and the offline trainer.
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
