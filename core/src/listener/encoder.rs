//! Runs on the worker (and offline): the one encoder chosen at load.
//!
//! The one encoder a [`Listener`](super::Listener) runs, chosen at load: the fast CPU path, or,
//! in a build with the `cuda` feature and a GPU present, candle on CUDA. Worker and offline.

use super::config::ModelConfig;
use super::format::NamedTensor;
use super::lstm::{Network, SingleEncoder, Workspace};
use super::ListenerError;

/// Where inference runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The plain-Rust encoder with its SIMD kernels: no thread pool, no allocation per call.
    Cpu,
    /// candle on the CUDA GPU with this ordinal (builds with the `cuda` feature only).
    Cuda(usize),
}

impl Device {
    /// The device a listener runs on unless told otherwise: the first CUDA GPU in a build with
    /// the `cuda` feature when one is present, else the CPU. Probes the driver once per call;
    /// allocates.
    pub fn preferred() -> Self {
        #[cfg(feature = "cuda")]
        {
            if matches!(
                candle_core::Device::cuda_if_available(0),
                Ok(candle_core::Device::Cuda(_))
            ) {
                return Device::Cuda(0);
            }
        }
        Device::Cpu
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(ordinal) => write!(f, "cuda:{ordinal}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;

    /// `cpu`, `cuda` (GPU 0) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{s}` (expected cpu, cuda or cuda:N)")),
        }
    }
}

/// Sequences per batched CPU call: large enough for the matrix products to run at speed, small
/// enough that the workspace stays in cache.
const BATCH: usize = 64;

/// The encoder's weights, on the device that runs them.
pub(crate) enum Encoder {
    /// The plain-Rust encoder.
    Cpu {
        /// The encoder's weights, for batches.
        net: Network,
        /// The same weights packed for one sequence at a time, with its buffers: allocated at
        /// load, so that [`Encoder::encode_one`] allocates nothing.
        one: Box<SingleEncoder>,
    },
    /// candle on a CUDA GPU.
    #[cfg(feature = "cuda")]
    Cuda {
        /// The weights, on the GPU.
        candle: super::candle::CandleEncoder,
        /// That GPU.
        device: candle_core::Device,
        /// Its ordinal, for [`Encoder::device`].
        ordinal: usize,
    },
}

impl Encoder {
    /// The encoder of `cfg` on `device`, from the model's (already checked) weights; the
    /// decoder's tensors are not kept. Allocates.
    pub(crate) fn new(
        cfg: &ModelConfig,
        tensors: &[NamedTensor],
        device: Device,
    ) -> Result<Self, ListenerError> {
        match device {
            Device::Cpu => {
                let net = Network::encoder(cfg, tensors)?;
                let one = Box::new(SingleEncoder::new(&net));
                Ok(Encoder::Cpu { net, one })
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(ordinal) => {
                let device = candle_core::Device::new_cuda(ordinal)?;
                let candle = super::candle::CandleEncoder::from_tensors(cfg, tensors, &device)?;
                Ok(Encoder::Cuda {
                    candle,
                    device,
                    ordinal,
                })
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => Err(ListenerError::Device(format!(
                "{device} was asked for, but this build has no CUDA support (build with the \
                 `cuda` feature)"
            ))),
        }
    }

    /// The device that runs inference.
    pub(crate) fn device(&self) -> Device {
        match self {
            Encoder::Cpu { .. } => Device::Cpu,
            #[cfg(feature = "cuda")]
            Encoder::Cuda { ordinal, .. } => Device::Cuda(*ordinal),
        }
    }

    /// Encodes one normalised sequence into `out`. Allocation-free on the CPU.
    pub(crate) fn encode_one(
        &mut self,
        normalised: &[f32],
        out: &mut [f32],
    ) -> Result<(), ListenerError> {
        match self {
            Encoder::Cpu { one, .. } => {
                one.encode(normalised, out);
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Encoder::Cuda { .. } => self.encode_batch(normalised, 1, out),
        }
    }

    /// Encodes `n` normalised sequences laid end to end into `out` (`n × latent`). Allocates.
    pub(crate) fn encode_batch(
        &self,
        normalised: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<(), ListenerError> {
        match self {
            Encoder::Cpu { net, .. } => {
                let latent = out.len() / n.max(1);
                let sequence = normalised.len() / n.max(1);
                let mut workspace = Workspace::new(net, n.min(BATCH));
                for (block, dst) in normalised
                    .chunks(BATCH * sequence)
                    .zip(out.chunks_mut(BATCH * latent))
                {
                    workspace.encode(net, block, block.len() / sequence, dst);
                }
                Ok(())
            }
            #[cfg(feature = "cuda")]
            Encoder::Cuda { candle, device, .. } => {
                out.copy_from_slice(&candle.encode_slice(normalised, n, device)?);
                Ok(())
            }
        }
    }
}
