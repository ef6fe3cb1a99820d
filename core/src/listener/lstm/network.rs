//! Any thread: the autoencoder's weights as one flat parameter vector.
//!
//! Every tensor of the model lies end to end in [`ModelConfig::tensor_shapes`] order (for each
//! layer: `kernel` `D × 4H`, `recurrent_kernel` `H × 4H`, `bias` `4H`, row-major, gates i, f, g,
//! o). One vector makes the optimiser, the gradient norm and the two-thread gradient sum single
//! loops, and the gradients share the layout.

use super::super::config::{Activation, LayerShape, ModelConfig};
use super::super::format::NamedTensor;
use super::super::ListenerError;

/// An LSTM stack's weights: the whole autoencoder, or only its encoder (the runtime's choice).
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Sizes and activation.
    cfg: ModelConfig,
    /// The layers held, in forward order: the encoder's, then (unless encoder-only) the
    /// decoder's.
    shapes: Vec<LayerShape>,
    /// Every layer's kernel, recurrent kernel and bias, end to end.
    params: Vec<f32>,
}

/// One layer's weights, borrowed from a parameter (or gradient) vector.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layer<'a> {
    /// Input size D.
    pub(crate) input: usize,
    /// Units H.
    pub(crate) units: usize,
    /// `D × 4H`.
    pub(crate) kernel: &'a [f32],
    /// `H × 4H`.
    pub(crate) recurrent: &'a [f32],
    /// `4H`.
    pub(crate) bias: &'a [f32],
}

/// One layer's gradients, borrowed mutably from a gradient vector.
#[derive(Debug)]
pub(crate) struct LayerMut<'a> {
    /// `D × 4H`.
    pub(crate) kernel: &'a mut [f32],
    /// `H × 4H`.
    pub(crate) recurrent: &'a mut [f32],
    /// `4H`.
    pub(crate) bias: &'a mut [f32],
}

impl Network {
    /// The whole autoencoder of `cfg` from its tensors (as a model file holds them). Allocates:
    /// the weights are copied.
    ///
    /// # Errors
    /// A tensor missing or of the wrong size, or a configuration that does not validate.
    pub fn new(cfg: &ModelConfig, tensors: &[NamedTensor]) -> Result<Self, ListenerError> {
        Self::with_layers(cfg, cfg.layers(), tensors)
    }

    /// Only the encoder of `cfg`: what inference needs. Allocates: the weights are copied.
    ///
    /// # Errors
    /// As [`new`](Self::new), for the encoder's tensors.
    pub fn encoder(cfg: &ModelConfig, tensors: &[NamedTensor]) -> Result<Self, ListenerError> {
        let shapes = cfg.layers().into_iter().take(cfg.encoder.len()).collect();
        Self::with_layers(cfg, shapes, tensors)
    }

    /// The network holding `shapes`, read from `tensors`.
    fn with_layers(
        cfg: &ModelConfig,
        shapes: Vec<LayerShape>,
        tensors: &[NamedTensor],
    ) -> Result<Self, ListenerError> {
        cfg.validate().map_err(ListenerError::Inconsistent)?;
        let mut params = Vec::with_capacity(shapes.iter().map(|s| s.parameter_count()).sum());
        for shape in &shapes {
            for (name, dims) in shape.tensors() {
                let tensor = tensors
                    .iter()
                    .find(|t| t.name == name)
                    .ok_or_else(|| ListenerError::MissingTensor(name.clone()))?;
                let want: usize = dims.iter().product();
                if tensor.data.len() != want {
                    return Err(ListenerError::Shape {
                        name,
                        expected: dims,
                        found: vec![tensor.data.len()],
                    });
                }
                params.extend_from_slice(&tensor.data);
            }
        }
        Ok(Self {
            cfg: cfg.clone(),
            shapes,
            params,
        })
    }

    /// Sizes and activation.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The cell activation.
    pub(crate) fn activation(&self) -> Activation {
        self.cfg.activation
    }

    /// Whether the decoder is held (training needs it).
    pub fn has_decoder(&self) -> bool {
        self.shapes.len() > self.cfg.encoder.len()
    }

    /// Layers held.
    pub(crate) fn layer_count(&self) -> usize {
        self.shapes.len()
    }

    /// Every weight, end to end (see the module documentation).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// Every weight, to update in place.
    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The held tensors, named as in a model file, in forward order. Allocates.
    pub fn tensors(&self) -> Vec<NamedTensor> {
        let mut values = self.params.as_slice();
        let mut out = Vec::with_capacity(3 * self.shapes.len());
        for shape in &self.shapes {
            for (name, dims) in shape.tensors() {
                let (data, rest) = values.split_at(dims.iter().product());
                values = rest;
                out.push(NamedTensor {
                    name,
                    shape: dims,
                    data: data.to_vec(),
                });
            }
        }
        out
    }

    /// Offset of layer `index`'s kernel in the parameter vector.
    fn offset(&self, index: usize) -> usize {
        self.shapes[..index]
            .iter()
            .map(LayerShape::parameter_count)
            .sum()
    }

    /// Layer `index`'s weights.
    pub(crate) fn layer(&self, index: usize) -> Layer<'_> {
        let shape = &self.shapes[index];
        let (d, h) = (shape.input, shape.units);
        let rest = &self.params[self.offset(index)..];
        let (kernel, rest) = rest.split_at(d * 4 * h);
        let (recurrent, rest) = rest.split_at(h * 4 * h);
        Layer {
            input: d,
            units: h,
            kernel,
            recurrent,
            bias: &rest[..4 * h],
        }
    }

    /// Layer `index`'s part of a gradient vector laid out like the parameters.
    pub(crate) fn layer_mut<'g>(&self, grads: &'g mut [f32], index: usize) -> LayerMut<'g> {
        let shape = &self.shapes[index];
        let (d, h) = (shape.input, shape.units);
        let rest = &mut grads[self.offset(index)..];
        let (kernel, rest) = rest.split_at_mut(d * 4 * h);
        let (recurrent, rest) = rest.split_at_mut(h * 4 * h);
        LayerMut {
            kernel,
            recurrent,
            bias: &mut rest[..4 * h],
        }
    }
}
