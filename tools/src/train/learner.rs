//! Offline: the two ways `echoic train` can learn, behind one face.
//!
//! - the CPU LSTM engine (`echoic_core::listener::lstm::Trainer`), the default on the CPU, on
//!   one thread or two;
//! - candle's autograd with `candle_nn::AdamW`: the path on a CUDA GPU, and on the CPU the
//!   reference the engine is checked against (`--candle`).
//!
//! Both take batch-major normalised sequences (an input, its target and optional error
//! weights), clip the global gradient norm and apply AdamW with the same hyper-parameters, so a
//! run on either follows the same path up to rounding. Adagrad (the original Listener's recipe)
//! runs on the engine only.

use super::{candle_device, model, TrainConfig};
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use echoic_core::listener::candle::Seq2Seq;
use echoic_core::listener::encoder::Device as ListenerDevice;
use echoic_core::listener::lstm::{
    Contrast, Example, Network, Optimiser, PeakLoss, Trainer, TrainerConfig, Workspace,
};
use echoic_core::listener::{ModelConfig, NamedTensor};

/// A network being trained, on the engine or on candle.
pub(crate) enum Learner {
    /// The CPU LSTM engine.
    Engine {
        /// Weights, optimiser and per-thread workspaces.
        trainer: Box<Trainer>,
        /// Buffers for validation reconstructions.
        workspace: Box<Workspace>,
    },
    /// candle's autograd.
    Candle(Box<CandleLearner>),
}

/// The candle side of a [`Learner`].
pub(crate) struct CandleLearner {
    /// The network reading the training variables.
    net: Seq2Seq,
    /// The same variables without gradient tracking, for validation.
    eval_net: Seq2Seq,
    /// The training variables.
    varmap: VarMap,
    /// The optimiser.
    opt: AdamW,
    /// Where it runs.
    device: Device,
    /// The network's sizes.
    cfg: ModelConfig,
    /// Global gradient-norm limit.
    clip: Option<f64>,
}

impl Learner {
    /// Starts from `weights` as `cfg` asks: candle on a GPU or when the reference is asked
    /// for, the engine otherwise. Allocates.
    pub(crate) fn new(
        model: &ModelConfig,
        weights: &[NamedTensor],
        cfg: &TrainConfig,
    ) -> Result<Self> {
        if cfg.device == ListenerDevice::Cpu && !cfg.candle_reference {
            let net = Network::new(model, weights)?;
            let config = TrainerConfig {
                optimiser: cfg.optimiser,
                learning_rate: cfg.learning_rate,
                weight_decay: cfg.weight_decay,
                clip_grad_norm: cfg.clip_grad_norm,
                threads: cfg.threads,
                ..TrainerConfig::default()
            };
            let workspace = Box::new(Workspace::new(&net, model::CHUNK));
            let trainer = Box::new(Trainer::new(net, config, cfg.batch_size));
            return Ok(Learner::Engine { trainer, workspace });
        }
        if cfg.optimiser != Optimiser::AdamW
            || cfg.objective.contrast().is_some()
            || cfg.objective.peak_loss_weight > 0.0
        {
            bail!(
                "Adagrad, the contrastive loss and the peak loss run on the CPU LSTM engine \
                 only; drop --candle and --device cuda"
            );
        }
        let device = candle_device(cfg.device)?;
        let varmap = VarMap::new();
        let net = model::trainable(model, weights, &varmap, &device)?;
        let opt = AdamW::new(
            varmap.all_vars(),
            ParamsAdamW {
                lr: cfg.learning_rate,
                weight_decay: cfg.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        Ok(Learner::Candle(Box::new(CandleLearner {
            eval_net: net.detached(),
            net,
            varmap,
            opt,
            device,
            cfg: model.clone(),
            clip: cfg.clip_grad_norm,
        })))
    }

    /// What trains, for the log.
    pub(crate) fn describe(&self) -> String {
        match self {
            Learner::Engine { trainer, .. } => format!(
                "LSTM engine on the CPU ({}), {} thread{}",
                echoic_core::listener::lstm::instruction_set(),
                trainer.threads(),
                if trainer.threads() == 1 { "" } else { "s" }
            ),
            Learner::Candle(c) => format!("candle on {:?}", c.device),
        }
    }

    /// One step on `b` batch-major normalised sequences (input, target and error weights);
    /// returns the loss before the update.
    pub(crate) fn step(&mut self, example: Example, b: usize) -> Result<f64> {
        match self {
            Learner::Engine { trainer, .. } => Ok(trainer.step_on(example, b)),
            Learner::Candle(c) => c.step(example, b),
        }
    }

    /// The current reconstructions of `b` normalised sequences, batch-major.
    pub(crate) fn reconstruct(&mut self, x: &[f32], b: usize) -> Result<Vec<f32>> {
        let mut out = vec![0.0; x.len()];
        match self {
            Learner::Engine { trainer, workspace } => {
                workspace.reconstruct(trainer.network(), x, b, &mut out);
            }
            Learner::Candle(c) => {
                let x = c.tensor(x, b)?;
                out.copy_from_slice(&c.eval_net.forward(&x)?.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        Ok(out)
    }

    /// The current embeddings of `b` normalised sequences, batch-major (`b × latent`).
    pub(crate) fn embed(&mut self, x: &[f32], b: usize) -> Vec<f32> {
        match self {
            Learner::Engine { trainer, workspace } => {
                let mut out = vec![0.0; b * trainer.network().config().latent_dim()];
                workspace.encode(trainer.network(), x, b, &mut out);
                out
            }
            // The contrast, the only reader, is refused on candle (see `new`).
            Learner::Candle(_) => unreachable!("embeddings are read on the engine only"),
        }
    }

    /// The loss a run with an engine-only objective is validated on, summed over `b` clean
    /// normalised sequences: their squared reconstruction errors plus, in squared-error units
    /// (see `Workspace::loss_for`), the peak loss when set and the contrastive loss when given
    /// (the sequences then come in pairs, 0 with 1, 2 with 3, …), with same-kind negatives
    /// cancelled when `kinds` gives each sequence's kind. Engine only.
    pub(crate) fn clean_loss(
        &mut self,
        x: &[f32],
        b: usize,
        contrast: Option<Contrast>,
        kinds: Option<&[Option<u8>]>,
    ) -> f64 {
        match self {
            Learner::Engine { trainer, workspace } => {
                let example = Example {
                    contrast,
                    kinds,
                    ..Example::plain(x)
                };
                workspace.loss_for(trainer.network(), example, b, b)
            }
            Learner::Candle(_) => unreachable!("these objectives run on the engine only"),
        }
    }

    /// Sets the peak-band cross-entropy the steps and [`clean_loss`](Self::clean_loss) add
    /// (see `Trainer::set_peak_loss`). Engine only (refused on candle in `new`).
    pub(crate) fn set_peak_loss(&mut self, peak_loss: &PeakLoss) {
        if let Learner::Engine { trainer, workspace } = self {
            trainer.set_peak_loss(Some(peak_loss));
            workspace.set_peak_loss(Some(peak_loss.clone()));
        }
    }

    /// Sets the rows the whitened contrast measures with (see `Trainer::set_whitening`).
    pub(crate) fn set_whitening(&mut self, rows: &[f32]) {
        if let Learner::Engine { trainer, workspace } = self {
            trainer.set_whitening(rows);
            workspace.set_whitening(rows.to_vec());
        }
    }

    /// The current weights, named as in a model file.
    pub(crate) fn weights(&self) -> Result<Vec<NamedTensor>> {
        Ok(match self {
            Learner::Engine { trainer, .. } => trainer.network().tensors(),
            Learner::Candle(c) => model::read_weights(&c.cfg, &c.varmap)?,
        })
    }
}

impl CandleLearner {
    /// `b` batch-major sequences as a `b × T × n_bands` tensor.
    fn tensor(&self, x: &[f32], b: usize) -> candle_core::Result<Tensor> {
        Tensor::from_slice(x, (b, self.cfg.steps, self.cfg.n_bands), &self.device)
    }

    /// Forward, backward, clipping and AdamW through candle.
    fn step(&mut self, example: Example, b: usize) -> Result<f64> {
        let x = self.tensor(example.input, b)?;
        let target = self.tensor(example.target, b)?;
        let mut errors = (self.net.forward(&x)? - &target)?.sqr()?;
        if let Some(weights) = example.weights {
            errors = (errors * self.tensor(weights, b)?)?;
        }
        let loss = errors.mean_all()?;
        let mut grads = loss.backward()?;
        if let Some(limit) = self.clip {
            clip_gradients(&mut grads, &self.varmap, limit)?;
        }
        self.opt.step(&grads)?;
        Ok(f64::from(loss.to_scalar::<f32>()?))
    }
}

/// Scales all gradients down together when their global L2 norm exceeds `limit`.
fn clip_gradients(
    grads: &mut candle_core::backprop::GradStore,
    varmap: &VarMap,
    limit: f64,
) -> candle_core::Result<()> {
    let vars = varmap.all_vars();
    let mut total = 0.0f64;
    for var in &vars {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = total.sqrt();
    if norm > limit && norm.is_finite() {
        let factor = limit / norm;
        for var in &vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                grads.insert(var.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(())
}
