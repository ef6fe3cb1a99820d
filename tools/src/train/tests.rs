//! A training smoke run on synthetic audio.

use super::*;
use crate::audio_file::write_wav_mono;
use echoic_core::dilated::DilatedSpec;
use echoic_core::listener::{Activation, Listener};

/// Writes a few seconds of synthetic audio per file into `dir/pkg/`.
fn synth_corpus(dir: &std::path::Path) {
    let rate = 16_000u32;
    let mut rng = SplitMix64(5);
    for (k, pkg) in ["tones", "noise", "chirps", "tones"].iter().enumerate() {
        let folder = dir.join(pkg);
        std::fs::create_dir_all(&folder).unwrap();
        let n = (rate as f64 * 2.5) as usize;
        let samples: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let v = match k {
                    1 => rng.normal() * 0.1 * (1.0 + (t * 3.0).sin()),
                    2 => (std::f64::consts::TAU * (200.0 + 800.0 * t) * t).sin() * 0.3,
                    _ => {
                        (std::f64::consts::TAU * 440.0 * (k + 1) as f64 * t).sin()
                            * 0.3
                            * ((t * 2.0).floor() % 2.0)
                    }
                };
                v as f32
            })
            .collect();
        write_wav_mono(&folder.join(format!("clip{k}.wav")), &samples, rate).unwrap();
    }
}

#[test]
fn training_smoke_run_lowers_the_loss_and_writes_a_loadable_file() {
    let dir = std::env::temp_dir().join(format!("echoic-train-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    synth_corpus(&dir.join("corpus"));
    let settings = ListenSettings {
        n_bands: 16,
        spec: DilatedSpec {
            steps: 5,
            ..Default::default()
        },
        ..ListenSettings::default()
    };
    let cfg = TrainConfig {
        inputs: vec![dir.join("corpus")],
        out: dir.join("models/smoke.safetensors"),
        name: "smoke".into(),
        settings,
        sample_rate: 16_000,
        model: ModelConfig {
            encoder: vec![12, 8],
            decoder: vec![12],
            activation: Activation::Relu,
            ..ModelConfig::default()
        },
        epochs: 2,
        batch_size: 16,
        learning_rate: 1e-2,
        stride: 2,
        validation_fraction: 0.25,
        patience: 5,
        log: false,
        ..TrainConfig::default()
    };
    let report = train(&cfg, indicatif::ProgressDrawTarget::hidden()).unwrap();
    assert_eq!(report.files, 4);
    assert_eq!(report.validation_files, 1);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        report.train_sequences > 100 && report.validation_sequences > 10,
        "{report:?}"
    );
    assert_eq!(report.epochs.len(), 2);
    let (e1, e2) = (&report.epochs[0], &report.epochs[1]);
    assert!(e2.train_loss < e1.train_loss, "{report:?}");
    assert!(e1.train_loss.is_finite() && e2.validation_loss.is_finite());

    let listener = Listener::load(&cfg.out).unwrap();
    let meta = listener.metadata();
    assert_eq!(meta.name, "smoke");
    assert_eq!(meta.model.n_bands, 16);
    assert_eq!(meta.features.spec.steps, 5);
    assert_eq!(meta.provenance.train_sequences, report.train_sequences);
    assert_eq!(meta.provenance.packages.len(), 3);
    assert_eq!(meta.provenance.best_epoch, report.best_epoch);
    assert!(meta.metrics.contains_key("validation_rmse_db"));
    let pca = meta.pca.as_ref().unwrap();
    // At most the 8 asked for: a unit that never fires adds no axis.
    assert!((1..=8).contains(&pca.axes.len()), "{pca:?}");
    assert_eq!(pca.validate(listener.latent_dim()), Ok(()));
    assert_eq!(listener.latent_dim(), 8);
    assert!(checkpoint_dir(&cfg.out)
        .join("epoch-002.safetensors")
        .exists());
    assert!(Listener::load(checkpoint_dir(&cfg.out).join("epoch-001.safetensors")).is_ok());
    // The written normalisation maps the training range near 0..1.
    assert!(meta
        .normalisation
        .scale
        .iter()
        .all(|&s| s > 0.0 && s <= 1.0));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Training, evaluation and inference feed the model the same values for the same recording,
/// bit for bit: all three go through `Normalisation::apply`, and this catches one that drifts.
#[test]
fn training_evaluation_and_inference_normalise_alike() {
    let listener = Listener::from_bytes(echoic_core::listener::DEFAULT_MODEL).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let audio =
        crate::audio_file::decode_mono(&root.join("tests/fixtures/speech_june.wav")).unwrap();
    let settings = listener.metadata().features.to_settings();
    let analysis =
        crate::offline::analyse(&audio.samples, audio.sample_rate as f64, &settings, true).unwrap();
    assert!(analysis.len() > 10);
    let buffers = &analysis.buffers;
    let normalisation = &listener.metadata().normalisation;
    let training = model_input(normalisation, buffers);
    let evaluation = crate::evaluation::model_units(normalisation, buffers);
    let mut inference = vec![f32::NAN; buffers.len()];
    listener.normalise(buffers, &mut inference);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&training), bits(&inference));
    assert_eq!(bits(&evaluation), bits(&inference));
    // Not a vacuous match: the values are the model's units, not the dB input.
    assert!(inference.iter().zip(buffers).any(|(n, d)| n != d));
}
