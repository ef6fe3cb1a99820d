//! Adaptation on small synthetic models and histories.

use super::*;
use crate::dilated::DilatedSpec;
use crate::frame::SILENCE_DB;
use crate::listener::config::{Activation, ModelConfig};
use crate::listener::format::{Features, Level, Normalisation, Provenance};
use std::collections::BTreeMap;

/// A small model (8 bands, 4 steps looking back 8 frames) with random weights and a
/// normalisation mapping −100..0 dB to 0..1.
fn small_model(seed: u64) -> (ListenerMetadata, Vec<NamedTensor>, ListenSettings) {
    let settings = ListenSettings {
        n_bands: 8,
        spec: DilatedSpec {
            steps: 4,
            ..DilatedSpec::default()
        },
        ..ListenSettings::default()
    };
    let model = ModelConfig {
        n_bands: 8,
        steps: 4,
        encoder: vec![12, 10],
        decoder: vec![12],
        activation: Activation::Tanh,
    };
    let mut rng = SplitMix64(seed);
    let tensors = model
        .tensor_shapes()
        .into_iter()
        .map(|(name, shape)| {
            let scale = if shape.len() == 1 {
                0.1
            } else {
                1.0 / (shape[0] as f64).sqrt()
            };
            let data = (0..shape.iter().product())
                .map(|_| (rng.normal() * scale) as f32)
                .collect();
            NamedTensor { name, shape, data }
        })
        .collect();
    let meta = ListenerMetadata {
        format_version: 1,
        name: "small".into(),
        features: Features::from_settings(&settings),
        model,
        normalisation: Normalisation {
            offset: vec![-100.0; 8],
            scale: vec![0.01; 8],
            level: Level::Absolute,
        },
        pca: None,
        provenance: Provenance::default(),
        metrics: BTreeMap::new(),
    };
    (meta, tensors, settings)
}

/// `frames` frames of 8 bands alternating between two spectral shapes every 7 frames, with a
/// little noise: a session of two sounds.
fn two_sounds(frames: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    (0..frames)
        .flat_map(|f| (0..8).map(move |b| (f, b)))
        .map(|(f, b)| {
            let shape = if (f / 7) % 2 == 0 { b } else { 7 - b };
            -80.0 + 8.0 * shape as f32 + rng.normal() as f32
        })
        .collect()
}

/// Runs [`adapt`] without cancelling or listening to progress.
fn run(
    (meta, tensors, settings): &(ListenerMetadata, Vec<NamedTensor>, ListenSettings),
    history: &[f32],
    cfg: &AdaptConfig,
) -> Result<Adapted, AdaptError> {
    adapt(
        meta,
        tensors,
        history,
        settings,
        cfg,
        &AtomicBool::new(false),
        |_| {},
    )
}

/// A quick recipe for the small model, keeping the whole change so that the tests see what
/// training did (the blend has its own test).
fn quick() -> AdaptConfig {
    AdaptConfig {
        learning_rate: 3e-3,
        anchor: 0.0,
        batch_size: 16,
        max_epochs: 6,
        patience: 6,
        stride: 1,
        blend: 1.0,
        ..AdaptConfig::default()
    }
}

/// The Euclidean distance between two models' weights.
fn distance(a: &[NamedTensor], b: &[NamedTensor]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.data.iter().zip(&y.data))
        .map(|(&x, &y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

#[test]
fn adapting_lowers_the_held_out_loss_and_marks_the_model() {
    let model = small_model(1);
    let history = two_sounds(600, 2);
    let cfg = AdaptConfig {
        refit_axes: true,
        ..quick()
    };
    let adapted = run(&model, &history, &cfg).unwrap();
    let report = &adapted.report;
    assert!(
        report.held_out_after < 0.8 * report.held_out_before,
        "{report:?}"
    );
    assert!(report.best_epoch >= 1 && report.epochs <= 6, "{report:?}");
    assert_eq!(
        report.train_sequences + report.held_out_sequences,
        600 - 2 * 7
    );
    assert!((report.history_seconds - 6.0).abs() < 1e-9);
    // The result is a whole model the loader accepts, with axes fitted on the history.
    let listener = adapted.listener(Device::Cpu).unwrap();
    assert_eq!(listener.metadata().name, "small (adapted)");
    assert!(adapted.metadata.pca.is_some());
    let from = adapted.metadata.provenance.adapted_from.as_ref().unwrap();
    assert_eq!(
        (from.name.as_str(), from.best_epoch),
        ("small", report.best_epoch)
    );
    let bytes = crate::listener::format::encode(&adapted.metadata, &adapted.tensors).unwrap();
    assert!(Listener::from_bytes(&bytes).is_ok());
    assert!(distance(&adapted.tensors, &model.1) > 0.0);
    // Without the refit the base's axes (none here) are kept, and the weights are the same.
    let kept = run(&model, &history, &quick()).unwrap();
    assert!(kept.metadata.pca.is_none());
    assert_eq!(distance(&kept.tensors, &adapted.tensors), 0.0);
}

#[test]
fn a_larger_anchor_keeps_the_weights_nearer_the_start() {
    let model = small_model(3);
    let history = two_sounds(600, 4);
    let moved = |anchor| {
        let cfg = AdaptConfig { anchor, ..quick() };
        let adapted = run(&model, &history, &cfg).unwrap();
        (distance(&adapted.tensors, &model.1), adapted.report)
    };
    let (free, free_report) = moved(0.0);
    let (held, held_report) = moved(30.0);
    assert!(free > 0.0 && free_report.best_epoch > 0, "{free_report:?}");
    assert!(held < 0.5 * free, "{held} vs {free} ({held_report:?})");
}

#[test]
fn blend_keeps_that_share_of_the_change() {
    let model = small_model(3);
    let history = two_sounds(600, 4);
    let blended = |blend| run(&model, &history, &AdaptConfig { blend, ..quick() }).unwrap();
    let (whole, part, none) = (blended(1.0), blended(0.3), blended(0.0));
    assert!(whole.report.best_epoch > 0, "{:?}", whole.report);
    // Every weight of the partial blend lies 30 % of the way from the base to the whole
    // adaptation's (the same seed trains the same steps).
    for ((p, w), w0) in part.tensors.iter().zip(&whole.tensors).zip(&model.1) {
        for ((&p, &w), &w0) in p.data.iter().zip(&w.data).zip(&w0.data) {
            assert!((p - (w0 + 0.3 * (w - w0))).abs() <= 1e-6, "{p} {w} {w0}");
        }
    }
    // The held-out loss is the blend's own: between the base's and the whole adaptation's.
    let r = &part.report;
    assert!(r.held_out_after < r.held_out_before, "{r:?}");
    assert!(r.held_out_after > whole.report.held_out_after, "{r:?}");
    // Nothing kept is the base itself.
    assert_eq!(distance(&none.tensors, &model.1), 0.0);
    assert_eq!(none.report.best_epoch, 0);
    assert_eq!(none.report.held_out_after, none.report.held_out_before);
}

#[test]
fn silent_constant_short_and_mismatched_histories_are_refused() {
    let model = small_model(5);
    let cfg = quick();
    let silent = vec![SILENCE_DB; 600 * 8];
    assert!(matches!(
        run(&model, &silent, &cfg),
        Err(AdaptError::NothingToLearn)
    ));
    let constant: Vec<f32> = (0..600 * 8).map(|i| -50.0 + (i % 8) as f32).collect();
    assert!(matches!(
        run(&model, &constant, &cfg),
        Err(AdaptError::NothingToLearn)
    ));
    let needed = frames_needed(&model.2.spec, cfg.stride);
    let short = two_sounds(needed - 1, 6);
    let error = run(&model, &short, &cfg).unwrap_err();
    assert!(matches!(error, AdaptError::TooShort { .. }), "{error}");
    assert!(error.to_string().contains("too short"), "{error}");
    assert!(run(&model, &two_sounds(needed, 6), &cfg).is_ok());
    // Other bands, other steps, or values that are not whole frames.
    let (meta, tensors, settings) = &model;
    let history = two_sounds(600, 7);
    let wider = ListenSettings {
        n_bands: 10,
        ..*settings
    };
    let longer = ListenSettings {
        spec: DilatedSpec {
            steps: 5,
            ..settings.spec
        },
        ..*settings
    };
    let never = AtomicBool::new(false);
    for (settings, values) in [
        (&wider, &history[..]),
        (&longer, &history[..]),
        (settings, &history[..history.len() - 3]),
    ] {
        let error = adapt(meta, tensors, values, settings, &cfg, &never, |_| {}).unwrap_err();
        assert!(matches!(error, AdaptError::Mismatch { .. }), "{error}");
    }
}

#[test]
fn cancelling_stops_at_the_next_minibatch() {
    let (meta, tensors, settings) = small_model(8);
    let history = two_sounds(600, 9);
    let cancel = AtomicBool::new(false);
    let mut calls = Vec::new();
    let result = adapt(
        &meta,
        &tensors,
        &history,
        &settings,
        &quick(),
        &cancel,
        |p| {
            calls.push(p);
            cancel.store(true, Ordering::Relaxed);
        },
    );
    assert!(matches!(result, Err(AdaptError::Cancelled)));
    assert_eq!(calls.len(), 1, "no minibatch after the cancel");
    assert_eq!(calls[0].epoch, 1);
    assert!(calls[0].fraction > 0.0 && calls[0].fraction < 0.1);
    // Set beforehand, nothing is trained.
    let mut called = false;
    let result = adapt(
        &meta,
        &tensors,
        &history,
        &settings,
        &quick(),
        &cancel,
        |_| called = true,
    );
    assert!(matches!(result, Err(AdaptError::Cancelled)) && !called);
}

/// `frames` frames of sounds held for 30 frames each, every one a random spectrum (±10 dB about
/// a rising one), with 4 dB of noise in every band of every frame: what a moment is, and what
/// only changes from frame to frame.
fn held_sounds(frames: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed);
    let mut shape = [0.0f32; 8];
    let mut db = Vec::with_capacity(frames * 8);
    for f in 0..frames {
        if f % 30 == 0 {
            shape.iter_mut().enumerate().for_each(|(b, v)| {
                *v = -60.0 + 3.0 * b as f32 + 20.0 * (rng.next_f64() as f32 - 0.5);
            });
        }
        db.extend(shape.iter().map(|v| v + 4.0 * rng.normal() as f32));
    }
    db
}

/// The whitened embeddings (`k` each) of every dilated buffer of `db`, heard by the model.
fn whitened(meta: &ListenerMetadata, tensors: &[NamedTensor], db: &[f32]) -> (Vec<f32>, usize) {
    let spec = meta.features.spec;
    let sequence = spec.steps * 8;
    let buffers = meta
        .normalisation
        .applied(&history::sequences(db, 8, &spec, 1), sequence);
    let net = Network::new(&meta.model, tensors).unwrap();
    let latent = meta.model.latent_dim();
    let pca = meta.pca.as_ref().unwrap();
    let k = pca.n_axes();
    let mut w = [0.0; MAX_AXES];
    let embeddings = embed(&net, &buffers, 64);
    let out = embeddings
        .chunks_exact(latent)
        .flat_map(|e| {
            pca.whiten(e, &mut w);
            w[..k].to_vec()
        })
        .collect();
    (out, k)
}

/// How near the model's whitened embeddings put moments 20 ms apart, against moments chosen
/// at random from `db`: the ratio of the mean squared distances. What the contrast asks of
/// a history is that this be small: a moment's neighbour is its partner, every other moment a
/// rival.
fn neighbour_ratio(meta: &ListenerMetadata, tensors: &[NamedTensor], db: &[f32]) -> f64 {
    let (w, k) = whitened(meta, tensors, db);
    let n = w.len() / k;
    let d2 = |i: usize, j: usize| -> f64 {
        w[i * k..][..k]
            .iter()
            .zip(&w[j * k..][..k])
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum()
    };
    let mut rng = SplitMix64(99);
    let (mut near, mut far) = (0.0, 0.0);
    for i in 0..n - 2 {
        near += d2(i, i + 2);
        far += d2(i, rng.below(n));
    }
    near / far
}

#[test]
fn the_contrast_draws_a_moments_views_together_in_the_similaritys_distance() {
    let (mut meta, tensors, settings) = small_model(11);
    // Principal axes from a broad "corpus" of random spectra, as a shipped model has them.
    let corpus: Vec<f32> = {
        let mut rng = SplitMix64(12);
        (0..2000 * 8)
            .map(|_| -90.0 + 80.0 * rng.next_f64() as f32)
            .collect()
    };
    let spec = meta.features.spec;
    let buffers = meta
        .normalisation
        .applied(&history::sequences(&corpus, 8, &spec, 1), spec.steps * 8);
    let net = Network::new(&meta.model, &tensors).unwrap();
    meta.pca = Some(pca::fit(&embed(&net, &buffers, 64), meta.model.latent_dim(), 4).unwrap());

    let history = held_sounds(1200, 13);
    let model = (meta, tensors, settings);
    let cfg = AdaptConfig {
        max_epochs: 10,
        patience: 10,
        contrast: Some(AdaptContrast::default()),
        ..quick()
    };
    let contrasted = run(&model, &history, &cfg).unwrap();
    let redrawn = run(
        &model,
        &history,
        &AdaptConfig {
            contrast: None,
            ..cfg
        },
    )
    .unwrap();
    let before = neighbour_ratio(&model.0, &model.1, &history);
    let after = neighbour_ratio(&contrasted.metadata, &contrasted.tensors, &history);
    let reconstruction_only = neighbour_ratio(&redrawn.metadata, &redrawn.tensors, &history);
    assert!(contrasted.report.best_epoch > 0, "{:?}", contrasted.report);
    // The base's axes are kept: the contrast worked in them.
    assert_eq!(contrasted.metadata.pca, model.0.pca);
    assert!(
        after < 0.85 * before.min(reconstruction_only),
        "neighbour/random distance: base {before:.3}, contrast {after:.3}, reconstruction \
         only {reconstruction_only:.3}"
    );
}
