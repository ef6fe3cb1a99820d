//! Every model in `models/` is one the plugin can run as it is: it loads, listens with settings
//! the pipeline serves unadjusted (choosing it in the editor sets the parameters to them), with
//! the built-in listener's cochlea and buffer shape, carries valid principal axes for the
//! outputs and learned sounds, embeds real audio, analysed as it listens, to finite values
//! independent of gain, and is described in the model card.

use echoic_core::listener::Listener;
use echoic_tools::audio_file::decode_mono;
use echoic_tools::offline::analyse;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The `.safetensors` files in `models/`, sorted.
fn shipped_models() -> Vec<PathBuf> {
    let mut models: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    models.sort();
    models
}

#[test]
fn every_shipped_model_runs_as_the_pipeline_serves_it_and_is_in_the_card() {
    let models = shipped_models();
    let names: Vec<_> = models
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"echoic-default.safetensors".to_string()),
        "{names:?}"
    );
    let built_in = Listener::from_bytes(echoic_core::listener::DEFAULT_MODEL).unwrap();
    let card = std::fs::read_to_string(root().join("models/MODEL_CARD.md")).unwrap();
    let audio = decode_mono(&root().join("tests/fixtures/music_armygeddon.wav")).unwrap();
    let quiet_samples: Vec<f32> = audio.samples.iter().map(|s| s * 0.25).collect();
    let built_in_settings = built_in.metadata().features.to_settings();

    let mut embeddings = Vec::new();
    for (path, name) in models.iter().zip(&names) {
        let listener = Listener::load(path).unwrap();
        let meta = listener.metadata();
        assert!(
            card.contains(name),
            "the model card does not describe {name}"
        );
        let settings = meta.features.to_settings();
        assert_eq!(
            settings.validated(),
            settings,
            "{name} asks for settings the pipeline would adjust"
        );
        // Only the pooling may differ from the built-in listener's: the same cochlea, hop and
        // buffer shape, so the cost per hop and what the editor draws stay the same.
        let mut same_pooling = settings;
        same_pooling.spec.pooling = built_in_settings.spec.pooling;
        assert_eq!(
            same_pooling, built_in_settings,
            "{name} listens with another cochlea or buffer shape than the built-in listener"
        );
        let loud = analyse(&audio.samples, audio.sample_rate as f64, &settings, true).unwrap();
        let quiet = analyse(&quiet_samples, audio.sample_rate as f64, &settings, true).unwrap();
        let usable: Vec<usize> = loud.usable().collect();
        assert!(
            usable.len() > 100,
            "the fixture is long enough to listen to"
        );
        let pca = meta.pca.as_ref().expect("principal axes");
        assert!(pca.validate(listener.latent_dim()).is_ok(), "{name}");
        assert_eq!(pca.n_axes(), 8, "{name}");

        let e = listener.embed_batch(&loud.buffers, loud.len()).unwrap();
        let e_quiet = listener.embed_batch(&quiet.buffers, quiet.len()).unwrap();
        let latent = listener.latent_dim();
        let mut gain_change = 0.0f32;
        for &i in &usable {
            let (a, b) = (&e[i * latent..][..latent], &e_quiet[i * latent..][..latent]);
            assert!(a.iter().all(|v| v.is_finite()), "{name}: hop {i}");
            gain_change = a
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(gain_change, f32::max);
        }
        println!("{name}: a 12 dB gain change moves the embedding by at most {gain_change:.2e}");
        assert!(gain_change < 1e-4, "{name} moves with gain: {gain_change}");
        embeddings.push(e);
    }
    // No shipped model is a copy of another.
    for i in 0..embeddings.len() {
        for j in i + 1..embeddings.len() {
            assert_ne!(
                embeddings[i], embeddings[j],
                "{} and {}",
                names[i], names[j]
            );
        }
    }
}
