//! Runs on the worker, offline and on training threads: the CPU LSTM engine.
//!
//! The listener's network (stacked LSTMs, the encoder's last state, the decoder's repeated
//! embedding; see [`super::config`]) in plain Rust, for inference and training:
//!
//! - [`Network`]: every weight in one flat vector, laid out as the model file's tensors;
//! - `single`: the worker's batch-1 encoder, a SIMD matrix-vector kernel (`matvec`, AVX-512,
//!   AVX2+FMA or portable, chosen at run time) on weights packed at load; allocation-free;
//! - [`Workspace`]: batched forward and backward passes through time on the `gemm` crate's
//!   matrix products (`product`), with the input projections of all steps in one product and
//!   every buffer sized once per batch shape;
//! - [`Trainer`]: minibatch AdamW on the reconstruction error, with candle's clipping and update,
//!   on one thread or two.
//!
//! candle's autograd is the reference the engine's gradients are tested against (the `candle`
//! feature's `listener::candle`), and the CUDA path.
//!
//! # Example
//! ```
//! use echoic_core::listener::lstm::{Network, Trainer, TrainerConfig, Workspace};
//! use echoic_core::listener::{format, ListenerMetadata, DEFAULT_MODEL};
//!
//! let (meta, tensors) = format::decode(DEFAULT_MODEL).unwrap();
//! let net = Network::new(&meta.model, &tensors).unwrap(); // allocates
//! let sequence = meta.model.steps * meta.model.n_bands;
//! // Four normalised sequences, batch-major.
//! let batch: Vec<f32> = (0..4 * sequence).map(|i| (i % 7) as f32 / 7.0).collect();
//!
//! let mut workspace = Workspace::new(&net, 4); // allocates, once per batch shape
//! let mut embeddings = vec![0.0; 4 * meta.model.latent_dim()];
//! workspace.encode(&net, &batch, 4, &mut embeddings);
//!
//! let mut trainer = Trainer::new(net, TrainerConfig::default(), 4);
//! let before = trainer.step(&batch, 4); // allocation-free from here on (`gemm` aside)
//! let mut after = before;
//! for _ in 0..20 {
//!     after = trainer.step(&batch, 4);
//! }
//! assert!(after < before);
//! ```

mod batch;
mod cell;
mod isa;
mod matvec;
mod network;
mod peak;
mod product;
mod single;
mod trainer;

#[cfg(test)]
mod tests;

pub use batch::{Contrast, Example, Geometry, SameKind, Workspace};
pub use network::Network;
pub use peak::{PeakLoss, PeakUnits};
pub(crate) use single::SingleEncoder;
pub use trainer::{Optimiser, Trainer, TrainerConfig, ADAGRAD_INITIAL_ACCUMULATOR, MAX_THREADS};

/// The instruction set the engine's own kernels run with on this CPU: "avx512", "avx2+fma" or
/// "portable".
pub fn instruction_set() -> &'static str {
    isa::Isa::detect().name()
}
