//! On an adaptation thread and offline (`echoic adapt`): fine-tuning a listener on a session's
//! own cochlear frames.
//!
//! A listener trained on a general corpus has heard little of any one drummer's kit, singer or
//! sound library. [`adapt`] fine-tunes its whole autoencoder (encoder and decoder) on a history
//! of cochlear frames, as the worker receives them:
//!
//! 1. the history is checked: heard with the model's features, long enough
//!    ([`frames_needed`]), and not silent or constant;
//! 2. its newest tenth (by time) is held out; each part runs through an [`EchoicMemory`] and
//!    [`DilatedSpec::build`](crate::dilated::DilatedSpec::build), as on the worker, and one
//!    buffer in [`AdaptConfig::stride`] is kept and normalised as the model's file says;
//! 3. minibatches of AdamW run on the calling thread (the [`Trainer`] on one thread), with an
//!    L2-SP penalty towards the starting weights ([`Trainer::anchor`]) so that a short or
//!    one-sided history cannot pull the model far. The loss is the reconstruction error plus,
//!    by default, a contrastive loss ([`AdaptContrast`]): each minibatch holds two augmented
//!    views of each of its moments, and each view's embedding, whitened on the model's
//!    principal axes, should lie nearer its partner (a moment up to a second later in the same
//!    run of sound) than every other moment. That loss works on the axes the learned-sound
//!    similarity reads (fully whitened, where the similarity whitens them partially), so it
//!    teaches the listener to tell this history's sounds apart where the user sees it;
//!    reconstruction alone only taught it to redraw them (see [`AdaptConfig::contrast`]);
//! 4. the held-out loss (the same loss, the views neighbouring buffers without augmentation)
//!    is measured before training and after each epoch; the best epoch's
//!    weights are kept (the base's when none is better), and training stops after
//!    [`AdaptConfig::patience`] epochs without improvement; the kept weights are then blended
//!    back towards the starting ones ([`AdaptConfig::blend`]), keeping the base when the blend
//!    is no better than it;
//! 5. if asked ([`AdaptConfig::refit_axes`]), the principal axes are refitted on the history's
//!    embeddings; otherwise the base model's are kept, which the anchored weights stay near
//!    enough to use.
//!
//! The caller's `cancel` flag is read between minibatches; progress is reported after each.
//! [`saved`] stores an adapted model in a plugin session as a compact delta against its base.
//!
//! [`EchoicMemory`]: crate::memory::EchoicMemory

mod history;
pub mod saved;

#[cfg(test)]
mod tests;

pub use history::{
    dilated_buffers, frames_needed, HOLD_OUT_FRACTION, MIN_HELD_OUT_SEQUENCES, MIN_TRAIN_SEQUENCES,
    PAUSE_BELOW_PEAK_DB,
};

use super::augment::Augmentation;
use super::encoder::Device;
use super::format::{AdaptedFrom, ListenerMetadata, NamedTensor};
use super::lstm::{
    Contrast, Example, Geometry, Network, SameKind, Trainer, TrainerConfig, Workspace,
};
use super::{Listener, ListenerError};
use crate::pca::{self, MAX_AXES};
use crate::rng::SplitMix64;
use crate::worker::ListenSettings;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How to adapt. The defaults were chosen with `echoic adapt-eval` (the shipped model, three
/// minutes of drum one-shots or of speech in five languages): see the tools' `adaptation`
/// module.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptConfig {
    /// AdamW learning rate: 3e-3, three times training's. At 1e-4 the weights hardly moved
    /// within the epochs the time budget allows; the held-out stop keeps the larger step from
    /// overshooting.
    pub learning_rate: f64,
    /// `λ` of the L2-SP penalty `λ/2·‖w − w₀‖²` towards the starting weights: how hard the
    /// weights are held near the base model whatever the history teaches. It is weighed against
    /// a reconstruction error of about 3e-3 to 7e-3 (normalised units²), so it is small: at
    /// 1e-4 the held-out loss still fell by 7 % (drums) and 21 % (speech), while from 1e-2 up
    /// the weights were held so tightly that adaptation stopped after an epoch having changed
    /// almost nothing.
    pub anchor: f64,
    /// Sequences per minibatch: training's batch halved, for more steps on a short history.
    pub batch_size: usize,
    /// Most epochs (passes over the training sequences): on three minutes of history an epoch
    /// takes about 1 s on one core (about 3 s with the contrast's two views per moment), so
    /// twelve stay within the minute the plugin allows; the held-out stop ended the measured
    /// runs after 4 to 10.
    pub max_epochs: usize,
    /// Stop after this many epochs without a lower held-out loss.
    pub patience: usize,
    /// Keep one buffer in `stride`: neighbours 10 ms apart overlap almost entirely, so taking
    /// them all costs time and teaches nothing more (training's own stride).
    pub stride: usize,
    /// Refit the principal axes (the Axis outputs, and the whitening of the learned-sound
    /// similarity) on the history's embeddings. Off by default: `echoic adapt-eval` found that
    /// axes fitted on three minutes of one kind of sound whiten away what tells its sounds
    /// apart (learned-sound ROC-AUC 0.03 to 0.09 lower on the adapted material, 0.12 to 0.13
    /// lower on the general evaluation set), while the base's axes lost nothing measurable.
    pub refit_axes: bool,
    /// Seed of the minibatch shuffles: with the history, it reproduces a run.
    pub seed: u64,
    /// Share of the change from the starting weights that is kept, 0..=1: the adapted weights
    /// are `w₀ + blend·(w − w₀)`, with `w` the best epoch's (weight-space interpolation, as
    /// WiSE-FT does for fine-tuned models), and the held-out loss reported is theirs. Less of
    /// the change costs less of what the listener heard before. Measured with `echoic
    /// adapt-eval` over this seed, 1 and 2, at 1 / 0.7 / 0.5: the drum AUC gain averaged
    /// +0.057 / +0.057 / +0.046, the languages gain +0.191 / +0.163 / +0.123, and the whole
    /// general set's 5-NN between sources (0.791 before) 0.759 / 0.766 / 0.769 after adapting
    /// on languages. 0.7 keeps the drum gain whole for a third less of that loss. At 0.7 over
    /// six seeds (this one and the next two, 0 to 2): drums +0.059, languages +0.171 (with the
    /// similarity's earlier full whitening; +0.060 and +0.162 with its partial whitening); on
    /// the rest of the general set, without the adapted packages' clips, the 5-NN between
    /// sources moved from 0.783 to 0.776 (drums) and from 0.809 to 0.792 (languages).
    pub blend: f32,
    /// A contrastive loss beside reconstruction, in the whitened geometry of the learned-sound
    /// similarity's axes ([`AdaptContrast::default`]); `None` fine-tunes on reconstruction
    /// alone, as does a model without principal axes. Measured with `echoic adapt-eval` (three
    /// minutes of drum one-shots or of prompts in five languages, learned-sound ROC-AUC on
    /// other kits or prompts, with the similarity's earlier full whitening) over this seed, 1
    /// and 2, keeping the whole change: reconstruction alone changed the AUC by −0.004 (drums)
    /// and +0.001 (languages); the contrast raised it by +0.071, +0.035, +0.065 (drums) and
    /// +0.226, +0.187, +0.159 (languages). The general set's 5-NN between sources (0.791
    /// before) read 0.788, 0.779, 0.794 after adapting on drums and 0.753, 0.762, 0.762 after
    /// adapting on languages. With the default
    /// [`blend`](Self::blend) of 0.7: +0.065, +0.041, +0.066 (drums), +0.190, +0.165, +0.134
    /// (languages); 5-NN 0.791, 0.776, 0.794 and 0.771, 0.765, 0.762.
    ///
    /// How far a moment's partner may lie decides what one sound is, and the editor test
    /// decided it: with partners at most 100 ms apart the loss pushed even one piece of music's
    /// moments apart, and a learned piece of music read 0.04 on that music after adapting
    /// (0.96 before); with partners up to 0.5 s apart, 0.52; up to 1 s apart within one run of
    /// sound ([`AdaptContrast::reach`]), 0.69, with speech at 0.09. Without the pause bound a
    /// 1 s reach pairs one drum hit with the next and gained nothing on drums (+0.001). Tried
    /// and not kept (seeds 0–2): weight 0.02–0.03, temperature 0.3, a batch of 64, an anchor
    /// of 1e-3, at most four epochs.
    pub contrast: Option<AdaptContrast>,
}

/// Adaptation's contrastive loss: every minibatch is made of pairs, two views of one moment of
/// the history, and the loss ([`Contrast`] in [`Geometry::Whitened`]) asks each view's whitened
/// embedding to be nearer its partner than every other moment of the minibatch. It teaches the
/// listener what tells this history's sounds apart, on the very axes the learned-sound
/// similarity reads (which it whitens partially).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptContrast {
    /// Weight of the contrastive loss against the reconstruction error.
    pub weight: f32,
    /// Its temperature.
    pub temperature: f32,
    /// The second view is a kept buffer up to this many later (0: the same buffer), so that a
    /// sound's moments a little apart count as one sound; never past a pause in the history
    /// (a frame [`PAUSE_BELOW_PEAK_DB`] below its loudest), so
    /// that two sounds heard one after the other do not.
    pub reach: usize,
    /// How each view is changed (in dB, before normalisation).
    pub augmentation: Augmentation,
}

impl Default for AdaptContrast {
    /// Weight 0.05, temperature 0.1, the partner up to twenty kept buffers (1 s) later, each
    /// view tilted by up to ±3 dB, shifted by up to one band, and one in four given a quiet
    /// background (−30 to −15 dB) from elsewhere in the history. Level is left alone: the
    /// model's relative level already ignores it. Chosen with `echoic adapt-eval` (see
    /// [`AdaptConfig::contrast`]).
    fn default() -> Self {
        Self {
            weight: 0.05,
            temperature: 0.1,
            reach: 20,
            augmentation: Augmentation {
                tilt_db: 3.0,
                band_shift: 1,
                background_probability: 0.25,
                background_db: (-30.0, -15.0),
                ..Augmentation::none()
            },
        }
    }
}

impl Default for AdaptConfig {
    fn default() -> Self {
        Self {
            learning_rate: 3e-3,
            anchor: 1e-4,
            batch_size: 32,
            max_epochs: 12,
            patience: 3,
            stride: 5,
            refit_axes: false,
            seed: 0x000e_c01c,
            blend: 0.7,
            contrast: Some(AdaptContrast::default()),
        }
    }
}

/// Why adaptation did not produce a model.
#[derive(Debug, thiserror::Error)]
pub enum AdaptError {
    /// Too little history for enough training and held-out sequences.
    #[error(
        "{seconds:.1} s of history is too short to adapt on; at least {needed_seconds:.1} s \
         are needed"
    )]
    TooShort {
        /// Seconds of history given.
        seconds: f64,
        /// Seconds needed ([`frames_needed`]).
        needed_seconds: f64,
    },
    /// Every band of the history is constant (silence, or a held value): nothing to learn.
    #[error("the history is silent or constant: there is nothing to adapt to")]
    NothingToLearn,
    /// The history was heard with other bands, steps or timing than the model listens with.
    #[error("the history was heard with {history}, but the model listens with {model}")]
    Mismatch {
        /// What the history has.
        history: String,
        /// What the model needs.
        model: String,
    },
    /// The base model's metadata or weights are unusable.
    #[error("the base model cannot be adapted: {0}")]
    Model(#[from] ListenerError),
    /// The caller's cancel flag was set.
    #[error("adaptation was cancelled")]
    Cancelled,
}

/// Where an adaptation stands, after each minibatch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The epoch running, 1-based.
    pub epoch: usize,
    /// Share of the most work [`AdaptConfig::max_epochs`] can take that is done, 0..1.
    pub fraction: f64,
    /// The lowest held-out loss so far (see [`AdaptReport::held_out_before`]), the base's
    /// before the first epoch ends.
    pub held_out_loss: f64,
}

/// Why the epochs stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// [`AdaptConfig::patience`] epochs ran without a lower held-out loss.
    Patience,
    /// [`AdaptConfig::max_epochs`] ran.
    MaxEpochs,
}

/// What an adaptation did.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptReport {
    /// Held-out loss of the base model: the mean squared reconstruction error (normalised
    /// units²), plus the contrastive loss's weighted mean when [`AdaptConfig::contrast`] is on.
    pub held_out_before: f64,
    /// Held-out loss of the weights kept: at most `held_out_before`.
    pub held_out_after: f64,
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept; 0 when none beat the base model.
    pub best_epoch: usize,
    /// Why the epochs stopped.
    pub stop: StopReason,
    /// Sequences trained on.
    pub train_sequences: usize,
    /// Sequences held out.
    pub held_out_sequences: usize,
    /// Seconds of history (frames × hop).
    pub history_seconds: f64,
    /// Wall-clock seconds the adaptation took.
    pub seconds: f64,
}

/// An adapted model: a whole model file's contents (with the decoder, so that it can be adapted
/// again) and what adaptation did.
#[derive(Clone, Debug)]
pub struct Adapted {
    /// The base's metadata with the principal axes refitted if asked, the name marked as
    /// adapted and the
    /// provenance's [`AdaptedFrom`] filled in (all but the base file's id, which the caller
    /// knows).
    pub metadata: ListenerMetadata,
    /// Every weight, encoder and decoder, as [`format::encode`](super::format::encode) writes
    /// them.
    pub tensors: Vec<NamedTensor>,
    /// What adaptation did.
    pub report: AdaptReport,
}

impl Adapted {
    /// The adapted listener, ready to embed, on `device`. Allocates.
    pub fn listener(&self, device: Device) -> Result<Listener, ListenerError> {
        Listener::from_parts(self.metadata.clone(), &self.tensors, device)
    }
}

/// Fine-tunes the model of `meta` and `tensors` (encoder and decoder) on `history_db`: cochlear
/// frames in dB, `settings.n_bands` per frame, oldest first, heard with `settings` (see the
/// module documentation). Runs on the calling thread, one core; reads `cancel` between
/// minibatches and calls `progress` after each. Allocates: the sequences (`steps × n_bands`
/// floats per kept buffer, twice while normalising), a trainer and copies of the weights.
pub fn adapt(
    meta: &ListenerMetadata,
    tensors: &[NamedTensor],
    history_db: &[f32],
    settings: &ListenSettings,
    cfg: &AdaptConfig,
    cancel: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> Result<Adapted, AdaptError> {
    let start = Instant::now();
    meta.validate()?;
    history::check_features(meta, settings, history_db.len())?;
    let n_bands = meta.features.n_bands;
    let spec = meta.features.spec;
    let stride = cfg.stride.max(1);
    let frames = history_db.len() / n_bands;
    let history_seconds = frames as f64 * settings.hop_seconds;
    let split = history::split(frames) * n_bands;
    let sequence = spec.steps * n_bands;
    let buffers_db = |frames_db: &[f32]| history::sequences(frames_db, n_bands, &spec, stride);
    let (train_db, held_db) = (
        buffers_db(&history_db[..split]),
        buffers_db(&history_db[split..]),
    );
    let normalised = |db: &[f32]| meta.normalisation.applied(db, sequence);
    let (train, held) = (normalised(&train_db), normalised(&held_db));
    let (n_train, n_held) = (train.len() / sequence, held.len() / sequence);
    if n_train < MIN_TRAIN_SEQUENCES || n_held < MIN_HELD_OUT_SEQUENCES {
        return Err(AdaptError::TooShort {
            seconds: history_seconds,
            needed_seconds: frames_needed(&spec, stride) as f64 * settings.hop_seconds,
        });
    }
    if !history::varies(history_db, n_bands) {
        return Err(AdaptError::NothingToLearn);
    }

    let net = Network::new(&meta.model, tensors)?;
    // The contrast needs the whitened axes it measures in; a model without them adapts on
    // reconstruction alone.
    let latent = meta.model.latent_dim();
    // The views are made from the dB buffers, which only the contrast keeps.
    let contrast = cfg.contrast.and_then(|c| {
        let pca = meta.pca.as_ref().filter(|p| p.validate(latent).is_ok())?;
        let runs = history::sound_runs(&history_db[..split], n_bands, &spec, stride);
        // Fully whitened, as the Axis outputs read the axes.
        Some((c, pca.partial_whitening(1.0), train_db, runs))
    });
    let batch = match contrast {
        // Whole pairs.
        Some(_) => (cfg.batch_size.max(4) / 2 * 2).min(n_train / 2 * 2),
        None => cfg.batch_size.clamp(1, n_train),
    };
    let mut eval = Workspace::new(&net, batch);
    let base = net.params().to_vec();
    let trainer_cfg = TrainerConfig {
        learning_rate: cfg.learning_rate,
        weight_decay: 0.0, // the anchor, not a pull towards zero, regularises here
        threads: 1,
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::new(net, trainer_cfg, batch);
    trainer.anchor(base.clone(), cfg.anchor);
    let loss_contrast = contrast.as_ref().map(|(c, rows, ..)| {
        trainer.set_whitening(rows);
        eval.set_whitening(rows.clone());
        Contrast {
            weight: c.weight,
            temperature: c.temperature,
            geometry: Geometry::Whitened,
            same_kind: SameKind::Cancelled,
        }
    });
    drop(held_db);
    let held_out = |net: &Network, eval: &mut Workspace| {
        held_out_loss(net, eval, &held, batch, loss_contrast, cancel)
    };
    let before = held_out(trainer.network(), &mut eval)?;

    let mut best = (before, 0, base.clone());
    let mut order: Vec<usize> = (0..n_train).collect();
    let mut rng = SplitMix64(cfg.seed);
    let mut inputs = vec![0.0; batch * sequence];
    let mut view = vec![0.0; sequence];
    // Moments per minibatch: two views each when contrasting.
    let moments = if contrast.is_some() { batch / 2 } else { batch };
    let batches = n_train.div_ceil(moments);
    let total = (cfg.max_epochs * batches).max(1) as f64;
    let (mut epoch, mut stop) = (0, StopReason::MaxEpochs);
    while epoch < cfg.max_epochs {
        epoch += 1;
        rng.shuffle(&mut order);
        for (k, chosen) in order.chunks(moments).enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return Err(AdaptError::Cancelled);
            }
            let b = match &contrast {
                Some((c, _, train_db, runs)) => {
                    for (pair, &s) in inputs.chunks_exact_mut(2 * sequence).zip(chosen) {
                        let partner = (s + rng.below(c.reach + 1)).min(runs[s]);
                        for (dst, from) in pair.chunks_exact_mut(sequence).zip([s, partner]) {
                            view.copy_from_slice(&train_db[from * sequence..][..sequence]);
                            c.augmentation.apply(&mut view, n_bands, &mut rng, |rng| {
                                &train_db[rng.below(n_train) * sequence..][..sequence]
                            });
                            meta.normalisation.apply(&view, dst, sequence);
                        }
                    }
                    2 * chosen.len()
                }
                None => {
                    for (dst, &s) in inputs.chunks_exact_mut(sequence).zip(chosen) {
                        dst.copy_from_slice(&train[s * sequence..(s + 1) * sequence]);
                    }
                    chosen.len()
                }
            };
            let example = Example {
                contrast: loss_contrast,
                ..Example::plain(&inputs[..b * sequence])
            };
            trainer.step_on(example, b);
            progress(Progress {
                epoch,
                fraction: ((epoch - 1) * batches + k + 1) as f64 / total,
                held_out_loss: best.0,
            });
        }
        let loss = held_out(trainer.network(), &mut eval)?;
        if loss < best.0 {
            best = (loss, epoch, trainer.network().params().to_vec());
        } else if epoch - best.1 >= cfg.patience {
            stop = StopReason::Patience;
            break;
        }
    }

    let (mut after, mut best_epoch, weights) = best;
    let mut net = trainer.into_network();
    let blend = cfg.blend.clamp(0.0, 1.0);
    for ((w, &adapted), &w0) in net.params_mut().iter_mut().zip(&weights).zip(&base) {
        *w = w0 + blend * (adapted - w0);
    }
    if best_epoch > 0 && blend < 1.0 {
        after = held_out(&net, &mut eval)?;
        if after >= before {
            net.params_mut().copy_from_slice(&base);
            (after, best_epoch) = (before, 0);
        }
    }
    let mut metadata = meta.clone();
    if cfg.refit_axes {
        let axes = meta.pca.as_ref().map_or(MAX_AXES, |p| p.n_axes());
        let all: Vec<f32> = train.iter().chain(&held).copied().collect();
        let embeddings = embed(&net, &all, batch);
        if let Some(fitted) = pca::fit(&embeddings, meta.model.latent_dim(), axes) {
            metadata.pca = Some(fitted);
        }
    }
    const MARK: &str = " (adapted)";
    if !metadata.name.ends_with(MARK) {
        metadata.name.push_str(MARK);
    }
    metadata.provenance.adapted_from = Some(AdaptedFrom {
        name: meta.name.clone(),
        id: None,
        history_seconds,
        held_out_before: before,
        held_out_after: after,
        epochs: epoch,
        best_epoch,
    });
    Ok(Adapted {
        metadata,
        tensors: net.tensors(),
        report: AdaptReport {
            held_out_before: before,
            held_out_after: after,
            epochs: epoch,
            best_epoch,
            stop,
            train_sequences: n_train,
            held_out_sequences: n_held,
            history_seconds,
            seconds: start.elapsed().as_secs_f64(),
        },
    })
}

/// The held-out loss of `net` over the normalised sequences `x`, `batch` at a time: the mean
/// squared reconstruction error, plus `contrast`'s loss when there is one (neighbouring
/// sequences paired as two views), from forward passes alone; `Cancelled` once `cancel` is
/// set. Allocation-free once `workspace` holds `batch` sequences.
fn held_out_loss(
    net: &Network,
    workspace: &mut Workspace,
    x: &[f32],
    batch: usize,
    contrast: Option<Contrast>,
    cancel: &AtomicBool,
) -> Result<f64, AdaptError> {
    let sequence = net.config().steps * net.config().n_bands;
    let mut sse = 0.0f64;
    for chunk in x.chunks(batch * sequence) {
        if cancel.load(Ordering::Relaxed) {
            return Err(AdaptError::Cancelled);
        }
        let b = chunk.len() / sequence;
        let example = Example {
            contrast,
            ..Example::plain(chunk)
        };
        sse += workspace.loss_for(net, example, b, b);
    }
    Ok(sse / x.len() as f64)
}

/// The embeddings of the normalised sequences `x`, `batch` at a time. Allocates them.
fn embed(net: &Network, x: &[f32], batch: usize) -> Vec<f32> {
    let cfg = net.config();
    let (sequence, latent) = (cfg.steps * cfg.n_bands, cfg.latent_dim());
    let mut out = vec![0.0; x.len() / sequence * latent];
    let mut workspace = Workspace::new(net, batch);
    for (chunk, dst) in x
        .chunks(batch * sequence)
        .zip(out.chunks_mut(batch * latent))
    {
        workspace.encode(net, chunk, chunk.len() / sequence, dst);
    }
    out
}
