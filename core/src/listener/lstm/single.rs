//! Runs on the worker: the encoder for one sequence at a time, allocation-free.
//!
//! The worker embeds one dilated buffer per hop, so its path is batch 1: the input projections
//! of all steps first (each a [`matvec`] against the packed kernel, while it sits in cache),
//! then the recurrence, one [`matvec`] against the packed recurrent kernel per step. The whole
//! loop is compiled once per instruction set ([`Isa::run`]) and the set is chosen at
//! construction, so the kernels and the cell arithmetic inline into one specialised body.

use super::cell::{self, MulAdd};
use super::isa::{Isa, Specialised};
use super::matvec::{matvec, Panels};
use super::network::Network;
use crate::listener::config::Activation;

/// One encoder layer laid out for [`matvec`].
#[derive(Clone, Debug)]
struct PackedLayer {
    /// Units H.
    units: usize,
    /// Input projection, `D × 4H`, packed.
    kernel: Panels,
    /// Recurrent projection, `H × 4H`, packed.
    recurrent: Panels,
    /// `4H`.
    bias: Vec<f32>,
}

/// The encoder of a [`Network`] for one sequence at a time, with its own buffers.
#[derive(Clone, Debug)]
pub(crate) struct SingleEncoder {
    /// Encoder layers, first to last.
    layers: Vec<PackedLayer>,
    /// Steps per sequence.
    steps: usize,
    /// Cell activation.
    activation: Activation,
    /// The instruction set the loop runs with, chosen at construction.
    isa: Isa,
    /// Input projections of every step, `T × 4H` of the current layer.
    projections: Vec<f32>,
    /// The current layer's input sequence, `T × D`.
    input: Vec<f32>,
    /// The current layer's output sequence, `T × H`.
    output: Vec<f32>,
    /// Hidden state, `H`.
    h: Vec<f32>,
    /// Cell state, `H`.
    c: Vec<f32>,
}

impl SingleEncoder {
    /// Packs the encoder layers of `net` and allocates the buffers. Allocates.
    pub(crate) fn new(net: &Network) -> Self {
        let cfg = net.config();
        let layers: Vec<PackedLayer> = (0..cfg.encoder.len())
            .map(|i| {
                let l = net.layer(i);
                PackedLayer {
                    units: l.units,
                    kernel: Panels::new(l.kernel, l.input, 4 * l.units),
                    recurrent: Panels::new(l.recurrent, l.units, 4 * l.units),
                    bias: l.bias.to_vec(),
                }
            })
            .collect();
        let widest = cfg.encoder.iter().copied().chain([cfg.n_bands]).max();
        let widest = widest.unwrap_or(0);
        let widest_units = cfg.encoder.iter().copied().max().unwrap_or(0);
        Self {
            layers,
            steps: cfg.steps,
            activation: cfg.activation,
            isa: Isa::detect(),
            projections: vec![0.0; cfg.steps * 4 * widest_units],
            input: vec![0.0; cfg.steps * widest],
            output: vec![0.0; cfg.steps * widest],
            h: vec![0.0; widest_units],
            c: vec![0.0; widest_units],
        }
    }

    /// Encodes one normalised sequence (`T × n_bands`, oldest step first) into `out` (the last
    /// layer's units). Allocation-free and lock-free. The caller checks the lengths.
    pub(crate) fn encode(&mut self, x: &[f32], out: &mut [f32]) {
        let (isa, activation) = (self.isa, self.activation);
        let job = Encode {
            encoder: self,
            x,
            out,
        };
        // SAFETY: `isa` came from `Isa::detect`.
        unsafe { isa.run(activation, job) };
    }

    /// The encoder's loop (see the module documentation).
    #[inline(always)]
    fn run<M: MulAdd, const RELU: bool>(&mut self, isa: Isa, x: &[f32], out: &mut [f32]) {
        let steps = self.steps;
        let first = self.layers.first().map_or(0, |l| l.kernel_depth());
        self.input[..steps * first].copy_from_slice(&x[..steps * first]);
        let last = self.layers.len().saturating_sub(1);
        for (li, layer) in self.layers.iter().enumerate() {
            let (d, h, g4) = (layer.kernel_depth(), layer.units, 4 * layer.units);
            let projections = &mut self.projections[..steps * g4];
            for (t, p) in projections.chunks_exact_mut(g4).enumerate() {
                p.fill(0.0);
                // SAFETY: `isa` is the set this function was compiled for (see `encode`).
                unsafe { matvec(isa, &self.input[t * d..(t + 1) * d], &layer.kernel, p) };
            }
            let (hs, cs) = (&mut self.h[..h], &mut self.c[..h]);
            hs.fill(0.0);
            cs.fill(0.0);
            for t in 0..steps {
                let z = &mut projections[t * g4..(t + 1) * g4];
                // The state starts at zero: no recurrent term on the first step.
                if t > 0 {
                    // SAFETY: as above.
                    unsafe { matvec(isa, hs, &layer.recurrent, z) };
                }
                cell::step::<M, RELU>(z, &layer.bias, hs, cs);
                if li != last {
                    self.output[t * h..(t + 1) * h].copy_from_slice(hs);
                }
            }
            if li == last {
                out[..h].copy_from_slice(hs);
            } else {
                std::mem::swap(&mut self.input, &mut self.output);
            }
        }
    }
}

/// One [`SingleEncoder::encode`]: a job for [`Isa::run`].
struct Encode<'a> {
    /// The encoder and its buffers.
    encoder: &'a mut SingleEncoder,
    /// The normalised sequence.
    x: &'a [f32],
    /// Where the embedding goes.
    out: &'a mut [f32],
}

impl Specialised for Encode<'_> {
    #[inline(always)]
    fn run<M: MulAdd, const RELU: bool>(self, isa: Isa) {
        self.encoder.run::<M, RELU>(isa, self.x, self.out);
    }
}

impl PackedLayer {
    /// Input size D.
    fn kernel_depth(&self) -> usize {
        self.kernel.depth()
    }
}
