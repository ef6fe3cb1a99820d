//! The model files shipped in `models/`: each one the editor's chooser may list must load,
//! carry the name it is shipped under, listen (finite embeddings, quiet and loud input told
//! apart) and be described by the model card. No other test reads the models beside the
//! built-in one.

use echoic_core::listener::Listener;
use std::path::Path;

#[test]
fn every_shipped_model_loads_listens_and_is_in_the_card() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let card = std::fs::read_to_string(dir.join("MODEL_CARD.md")).expect("the model card");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("the models folder") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
            continue;
        }
        let mut listener =
            Listener::load(&path).unwrap_or_else(|e| panic!("{} loads: {e}", path.display()));
        let name = listener.metadata().name.clone();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(
            name,
            stem,
            "{} is shipped under its own name",
            path.display()
        );
        assert!(
            card.contains(&format!("`{name}`")),
            "the model card describes `{name}`"
        );
        let mut quiet = vec![0.0; listener.latent_dim()];
        let mut tone = vec![0.0; listener.latent_dim()];
        let (n, bands) = (listener.sequence_len(), listener.metadata().model.n_bands);
        listener.embed_into(&vec![-90.0; n], &mut quiet).unwrap();
        let peaked: Vec<f32> = (0..n)
            .map(|i| if i % bands == bands / 5 { -10.0 } else { -70.0 })
            .collect();
        listener.embed_into(&peaked, &mut tone).unwrap();
        assert!(
            quiet.iter().chain(&tone).all(|v| v.is_finite()),
            "{name} embeds finitely"
        );
        assert_ne!(quiet, tone, "{name} tells a near-silence from a tone");
        names.push(name);
    }
    names.sort();
    println!("shipped models: {names:?}");
    assert!(
        names.iter().any(|n| n == "echoic-default"),
        "the built-in model is shipped as a file too: {names:?}"
    );
}
