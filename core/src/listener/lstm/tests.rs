//! The engine against itself and against the definition: batch 1 against batches, two threads
//! against one, and the backward pass against finite differences. (The golden tests in
//! `listener::tests` check the forward pass against numpy; `echoic-tools`' training tests check
//! the gradients against candle's autograd.)

use super::*;
use crate::listener::config::{Activation, ModelConfig};
use crate::listener::format::{Level, NamedTensor, Normalisation};
use crate::rng::SplitMix64;

/// A small network with Gaussian weights of scale `1/√rows` and random biases.
fn random_network(cfg: &ModelConfig, seed: u64) -> Network {
    let mut rng = SplitMix64(seed);
    let tensors: Vec<NamedTensor> = cfg
        .tensor_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let scale = 1.0 / (shape[0] as f64).sqrt();
            let scale = if shape.len() == 1 { 0.3 } else { scale };
            let data = (0..shape.iter().product())
                .map(|_| (rng.normal() * scale) as f32)
                .collect();
            NamedTensor { name, shape, data }
        })
        .collect();
    Network::new(cfg, &tensors).unwrap()
}

/// `b` sequences of values in 0..1, as normalised input is.
fn random_batch(cfg: &ModelConfig, b: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    (0..b * cfg.steps * cfg.n_bands)
        .map(|_| rng.next_f64() as f32)
        .collect()
}

/// A model of the default shape but narrower, with the given activation.
fn small(activation: Activation) -> ModelConfig {
    ModelConfig {
        n_bands: 20,
        steps: 6,
        encoder: vec![9, 17],
        decoder: vec![11],
        activation,
    }
}

/// `max |a − b| / max |b|`: the error relative to the values' scale.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, &v| m.max(f64::from(v).abs()));
    let err = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (&x, &y)| m.max(f64::from(x - y).abs()));
    err / scale.max(f64::MIN_POSITIVE)
}

#[test]
fn batch_one_and_batches_encode_alike() {
    for activation in [Activation::Relu, Activation::Tanh] {
        let cfg = small(activation);
        let net = random_network(&cfg, 1);
        let encoder = Network::encoder(&cfg, &net.tensors()).unwrap();
        let mut single = SingleEncoder::new(&encoder);
        let n = 7;
        let x = random_batch(&cfg, n, 2);
        let latent = cfg.latent_dim();
        // A workspace for 2 grows to 7.
        let mut workspace = Workspace::new(&net, 2);
        let mut batched = vec![0.0; n * latent];
        workspace.encode(&net, &x, n, &mut batched);
        let sequence = cfg.steps * cfg.n_bands;
        for s in 0..n {
            let mut one = vec![0.0; latent];
            single.encode(&x[s * sequence..(s + 1) * sequence], &mut one);
            let err = relative_error(&one, &batched[s * latent..(s + 1) * latent]);
            assert!(err < 1e-5, "{activation:?} sequence {s}: {err}");
        }
        assert!(batched.iter().any(|&v| v != 0.0));
    }
}

/// A model small enough for central differences over every weight.
fn tiny_config() -> ModelConfig {
    ModelConfig {
        n_bands: 3,
        steps: 4,
        encoder: vec![4, 3],
        decoder: vec![2],
        activation: Activation::Tanh,
    }
}

/// The relative error of `workspace`'s gradient for the batch `x` of `b` sequences against
/// central differences of the mean loss it returns, parameter by parameter.
fn error_against_central_differences(
    net: &mut Network,
    workspace: &mut Workspace,
    x: &[f32],
    b: usize,
) -> f64 {
    workspace.gradients(net, x, b, b);
    let analytic = workspace.grads().to_vec();
    let cfg = net.config().clone();
    let count = (b * cfg.steps * cfg.n_bands) as f64;
    let mut numeric = vec![0.0f32; analytic.len()];
    let eps = 1e-2f32;
    for (i, slot) in numeric.iter_mut().enumerate() {
        let original = net.params()[i];
        net.params_mut()[i] = original + eps;
        let up = workspace.gradients(net, x, b, b) / count;
        net.params_mut()[i] = original - eps;
        let down = workspace.gradients(net, x, b, b) / count;
        net.params_mut()[i] = original;
        *slot = ((up - down) / (2.0 * f64::from(eps))) as f32;
    }
    relative_error(&analytic, &numeric)
}

#[test]
fn gradients_match_central_differences_on_a_tiny_model() {
    let cfg = tiny_config();
    let b = 3;
    let mut net = random_network(&cfg, 3);
    let x = random_batch(&cfg, b, 4);
    let mut workspace = Workspace::new(&net, b);
    let err = error_against_central_differences(&mut net, &mut workspace, &x, b);
    eprintln!("backward pass against central differences: {err:.2e} of the largest gradient");
    assert!(err < 5e-4, "relative error {err}");
}

/// The peak-band cross-entropy through the whole network, read in dB and in model units: the
/// workspace's gradient of `mse + weight · mean ℓ` against central differences of the loss it
/// returns.
#[test]
fn the_peak_loss_gradient_matches_central_differences_on_a_tiny_model() {
    let cfg = tiny_config();
    let b = 3;
    let mut net = random_network(&cfg, 5);
    let x = random_batch(&cfg, b, 6);
    let normalisation = Normalisation {
        offset: vec![-40.0, -55.0, -70.0],
        scale: vec![0.05, 0.1, 0.2],
        level: Level::Relative,
    };
    for units in [PeakUnits::Decibels, PeakUnits::ModelUnits] {
        let mut workspace = Workspace::new(&net, b);
        workspace.set_peak_loss(Some(PeakLoss::new(0.5, 2.0, units, &normalisation)));
        let err = error_against_central_differences(&mut net, &mut workspace, &x, b);
        eprintln!(
            "{units:?} peak loss through the network, against central differences: {err:.2e}"
        );
        assert!(err < 5e-4, "relative error {err}");
        // It joined the loss: without it the same batch costs less.
        let with_peaks = workspace.gradients(&net, &x, b, b);
        workspace.set_peak_loss(None);
        assert!(workspace.gradients(&net, &x, b, b) < with_peaks);
    }
}

#[test]
fn the_forward_only_loss_is_the_training_loss() {
    let cfg = small(Activation::Tanh);
    let net = random_network(&cfg, 21);
    let b = 6;
    let (x, target, weights) = (
        random_batch(&cfg, b, 22),
        random_batch(&cfg, b, 23),
        random_batch(&cfg, b, 24),
    );
    let mut workspace = Workspace::new(&net, b);
    let whitening = random_batch(&cfg, b, 25)[..3 * cfg.latent_dim()].to_vec();
    workspace.set_whitening(whitening);
    for (weights, contrast) in [
        (None, None),
        (
            Some(&weights[..]),
            Some(Contrast {
                weight: 0.2,
                temperature: 0.5,
                geometry: Geometry::Whitened,
                same_kind: SameKind::Cancelled,
            }),
        ),
    ] {
        let example = Example {
            input: &x,
            target: &target,
            weights,
            contrast,
            kinds: None,
        };
        let trained = workspace.gradients_for(&net, example, b, b);
        let grads = workspace.grads().to_vec();
        let measured = workspace.loss_for(&net, example, b, b);
        assert_eq!(measured, trained, "{contrast:?}");
        assert_eq!(workspace.grads(), &grads[..], "the gradient was touched");
        // And with the peak-band cross-entropy joining in.
        let normalisation = Normalisation {
            offset: vec![-50.0; cfg.n_bands],
            scale: vec![0.02; cfg.n_bands],
            level: Level::Relative,
        };
        workspace.set_peak_loss(Some(PeakLoss::new(
            0.3,
            1.0,
            PeakUnits::Decibels,
            &normalisation,
        )));
        let trained = workspace.gradients_for(&net, example, b, b);
        assert_eq!(workspace.loss_for(&net, example, b, b), trained);
        workspace.set_peak_loss(None);
    }
}

#[test]
fn two_threads_give_the_one_thread_gradient_and_step() {
    for activation in [Activation::Relu, Activation::Tanh] {
        let cfg = small(activation);
        let b = 13; // an odd batch: halves of 7 and 6
        let x = random_batch(&cfg, b, 6);
        let mut trainers = [1, 2].map(|threads| {
            let config = TrainerConfig {
                threads,
                ..TrainerConfig::default()
            };
            Trainer::new(random_network(&cfg, 5), config, b)
        });
        let (loss_one, one) = trainers[0].gradients(&x, b);
        let one = one.to_vec();
        let (loss_two, two) = trainers[1].gradients(&x, b);
        assert!(
            (loss_one - loss_two).abs() < 1e-6 * loss_one,
            "{loss_one} {loss_two}"
        );
        let err = relative_error(two, &one);
        assert!(err < 1e-5, "{activation:?}: {err}");
        for trainer in &mut trainers {
            trainer.step(&x, b);
        }
        let err = relative_error(
            trainers[1].network().params(),
            trainers[0].network().params(),
        );
        assert!(err < 1e-5, "{activation:?} after a step: {err}");
    }
}

/// A kind that every sequence shares leaves each anchor only its partner in the softmax, so
/// the contrast costs nothing and moves nothing, in both threads' shares; unknown kinds leave
/// every negative in, and the step differs. Made positives, evenly or with a share of the
/// target, unknown kinds change nothing, and a shared kind pulls (its softmax holds every other
/// sequence, all of them targets); with no share it is only more negatives.
#[test]
fn a_kind_shared_by_the_batch_cancels_every_negative_in_both_shares() {
    let cfg = small(Activation::Tanh);
    let b = 12;
    let x = random_batch(&cfg, b, 8);
    let contrast = Contrast {
        weight: 0.5,
        temperature: 0.2,
        geometry: Geometry::Cosine,
        same_kind: SameKind::Cancelled,
    };
    let step = |kinds: Option<&[Option<u8>]>, contrast: Option<Contrast>| {
        let config = TrainerConfig {
            threads: 2,
            ..TrainerConfig::default()
        };
        let mut trainer = Trainer::new(random_network(&cfg, 5), config, b);
        let example = Example {
            contrast,
            kinds,
            ..Example::plain(&x)
        };
        let loss = trainer.step_on(example, b);
        (loss, trainer.network().params().to_vec())
    };
    let plain = step(None, None);
    let one_kind = [Some(3); 12];
    assert_eq!(step(Some(&one_kind), Some(contrast)), plain);
    let unknown = [None; 12];
    let (loss, params) = step(Some(&unknown), Some(contrast));
    assert!(loss > plain.0, "{loss} vs {}", plain.0);
    assert!(relative_error(&params, &plain.1) > 1e-4);
    let positive = Contrast {
        same_kind: SameKind::Positive,
        ..contrast
    };
    let every_other_a_negative = (loss, params);
    assert_eq!(step(Some(&unknown), Some(positive)), every_other_a_negative);
    let (pulled, pulled_params) = step(Some(&one_kind), Some(positive));
    assert!(pulled > plain.0, "{pulled} vs {}", plain.0);
    assert!(relative_error(&pulled_params, &plain.1) > 1e-4);
    let pulled_by = |share| Contrast {
        same_kind: SameKind::Pulled(share),
        ..contrast
    };
    assert_eq!(
        step(Some(&unknown), Some(pulled_by(0.3))),
        every_other_a_negative
    );
    // With no share of the target, a shared kind is only more negatives.
    assert_eq!(
        step(Some(&one_kind), Some(pulled_by(0.0))),
        every_other_a_negative
    );
    let (share, share_params) = step(Some(&one_kind), Some(pulled_by(0.3)));
    assert!(share > plain.0, "{share} vs {}", plain.0);
    assert!(relative_error(&share_params, &every_other_a_negative.1) > 1e-4);
    assert!(relative_error(&share_params, &pulled_params) > 1e-4);
}

/// Adagrad's first step is `lr·g / √(0.1 + g²)` (Keras' accumulator start), no weight decay.
#[test]
fn adagrad_takes_the_keras_first_step() {
    let cfg = small(Activation::Tanh);
    let b = 4;
    let x = random_batch(&cfg, b, 3);
    let start = random_network(&cfg, 2);
    let config = TrainerConfig {
        optimiser: Optimiser::Adagrad,
        learning_rate: 1e-2,
        clip_grad_norm: None,
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::new(start.clone(), config, b);
    let grads = trainer.gradients(&x, b).1.to_vec();
    trainer.step(&x, b);
    let want: Vec<f32> = start
        .params()
        .iter()
        .zip(&grads)
        .map(|(p, g)| p - 1e-2 * g / ((ADAGRAD_INITIAL_ACCUMULATOR + g * g).sqrt() + 1e-8))
        .collect();
    let err = relative_error(trainer.network().params(), &want);
    assert!(err < 1e-6, "{err}");
    assert!(grads.iter().any(|&g| g.abs() > 1e-4));
}

#[test]
fn adamw_moves_by_the_learning_rate_and_steps_lower_the_loss() {
    let cfg = small(Activation::Relu);
    let b = 8;
    let x = random_batch(&cfg, b, 8);
    let start = random_network(&cfg, 7);
    let config = TrainerConfig {
        learning_rate: 1e-2,
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::new(start.clone(), config, b);
    let first = trainer.step(&x, b);
    // AdamW's first step moves every parameter with a gradient by about the learning rate.
    let moved = trainer
        .network()
        .params()
        .iter()
        .zip(start.params())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(moved > 5e-3 && moved < 1.5e-2, "largest move {moved}");
    let mut last = first;
    for _ in 0..30 {
        last = trainer.step(&x, b);
    }
    assert!(last < 0.7 * first, "loss {first} → {last}");
}

#[test]
fn the_network_round_trips_its_tensors() {
    let cfg = small(Activation::Tanh);
    let net = random_network(&cfg, 9);
    let again = Network::new(&cfg, &net.tensors()).unwrap();
    assert_eq!(again, net);
    let encoder = Network::encoder(&cfg, &net.tensors()).unwrap();
    assert!(!encoder.has_decoder() && net.has_decoder());
    assert_eq!(encoder.params(), &net.params()[..encoder.params().len()]);
    let mut missing = net.tensors();
    missing.retain(|t| t.name != "decoder.0.bias");
    assert!(Network::new(&cfg, &missing).is_err());
    assert!(Network::encoder(&cfg, &missing).is_ok());
}

/// The anchor's penalty `λ/2·‖w − w₀‖²` joins the loss, and its gradient `λ·(w − w₀)` the
/// gradient: the whole loss against central differences, on one thread and two.
#[test]
fn the_anchor_penalty_and_its_gradient_match_central_differences() {
    let cfg = tiny_config();
    let b = 3;
    let strength = 0.7;
    let net = random_network(&cfg, 11);
    // An anchor well away from the weights, so that the penalty's gradient is not small.
    let anchor: Vec<f32> = random_network(&cfg, 12).params().to_vec();
    let x = random_batch(&cfg, b, 13);
    let anchored = |net: Network, threads: usize| {
        let config = TrainerConfig {
            threads,
            ..TrainerConfig::default()
        };
        let mut trainer = Trainer::new(net, config, b);
        trainer.anchor(anchor.clone(), strength);
        trainer
    };
    let mut plain = Trainer::new(net.clone(), TrainerConfig::default(), b);
    let (plain_loss, plain_grads) = plain.gradients(&x, b);
    let plain_grads = plain_grads.to_vec();
    for threads in [1, 2] {
        let mut trainer = anchored(net.clone(), threads);
        let (loss, grads) = trainer.gradients(&x, b);
        let analytic = grads.to_vec();
        // The penalty itself, computed here from its definition.
        let penalty: f64 = net
            .params()
            .iter()
            .zip(&anchor)
            .map(|(&w, &a)| 0.5 * strength * f64::from(w - a).powi(2))
            .sum();
        assert!(
            (loss - plain_loss - penalty).abs() < 1e-6 * penalty,
            "{loss} {plain_loss} {penalty}"
        );
        let difference: Vec<f32> = analytic
            .iter()
            .zip(&plain_grads)
            .map(|(a, p)| a - p)
            .collect();
        let want: Vec<f32> = net
            .params()
            .iter()
            .zip(&anchor)
            .map(|(&w, &a)| strength as f32 * (w - a))
            .collect();
        assert!(relative_error(&difference, &want) < 1e-5);
        // The whole anchored loss against central differences.
        let eps = 1e-2f32;
        let numeric: Vec<f32> = (0..analytic.len())
            .map(|i| {
                let at = |delta: f32| {
                    let mut moved = net.clone();
                    moved.params_mut()[i] += delta;
                    anchored(moved, threads).gradients(&x, b).0
                };
                ((at(eps) - at(-eps)) / (2.0 * f64::from(eps))) as f32
            })
            .collect();
        let err = relative_error(&analytic, &numeric);
        assert!(err < 5e-4, "{threads} threads: relative error {err}");
    }
    // A strength of 0 removes the penalty.
    let mut off = Trainer::new(net.clone(), TrainerConfig::default(), b);
    off.anchor(anchor.clone(), 0.0);
    assert_eq!(off.gradients(&x, b).0, plain_loss);
}
