//! Writes the seed corpora of the fuzz targets into `<dir>/<target>/`:
//! - `model_loader`: two small valid model files (with and without principal axes);
//! - `state_loader`: states saved by the real plugin — as it starts, with every parameter moved
//!   to the top of its range, and with a learned sound, a chosen model file and an editor size.
//!
//! It also writes `<dir>/state_loader.dict`, a libFuzzer dictionary of the state's vocabulary
//! (value kinds, parameter ids, field keys, edge numbers), so that mutations such as "an enum
//! stored as an index past its end" are a few steps away rather than hundreds.
//!
//! Usage: `fuzz-seeds <dir>` (`cargo xtask fuzz` runs it). Seeds are written fresh each time,
//! from the code under test, so that they never go stale after a format change.

use anyhow::{bail, Context, Result};
use echoic_core::outputs::learned::LearnedSounds;
use echoic_fuzz::{in_process_entry, tiny_model};
use echoic_host_tests::{state_bytes, state_document, EchoicHost};
use std::path::{Path, PathBuf};

fn main() -> Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        bail!("usage: fuzz-seeds <dir>");
    };
    write(
        &dir.join("model_loader"),
        &[
            ("tiny.safetensors", tiny_model(false)),
            ("tiny-pca.safetensors", tiny_model(true)),
        ],
    )?;

    // Inactive, so that parameter changes are applied at once (`params.flush`).
    let mut host = EchoicHost::from_entry(&in_process_entry())?;
    let default = host.save_state()?;
    for param in host.params()? {
        host.set_param(param.id, param.max)?;
    }
    let maxed = host.save_state()?;

    let mut document =
        state_document(&default).context("the plugin's state is a length and JSON")?;
    let mut learned = LearnedSounds::new(0.01);
    learned.set_embedding_dim(6);
    learned.start_learning(1, 0.03);
    for hop in 0..3 {
        learned.observe(&[0.1, -0.2, 0.3, hop as f32, 0.0, 1.0]);
    }
    let fields = &mut document["fields"];
    fields["learned-sounds"] = String::from_utf8(learned.to_json())?.into();
    fields["model-path"] = serde_json::to_string(&Some("/nonexistent/model.safetensors"))?.into();
    fields["editor-size"] = serde_json::to_string(&[900, 640])?.into();
    let persisted = state_bytes(&document);

    let mut words: Vec<String> = [
        "{\"i32\":",
        "{\"f32\":",
        "{\"bool\":",
        "{\"string\":",
        "\"params\":",
        "\"fields\":",
        "\"version\":",
    ]
    .map(String::from)
    .to_vec();
    words.extend(
        document["params"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(id, _)| format!("\"{id}\"")),
    );
    words.extend(
        document["fields"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(key, _)| format!("\"{key}\"")),
    );
    words.extend(
        [
            "-1",
            "99",
            "100000",
            "2147483647",
            "-2147483648",
            "1e39",
            "-0.0",
            "null",
            "true",
            "[]",
            "{}",
        ]
        .map(String::from),
    );
    let dict: String = words
        .iter()
        .map(|w| {
            format!(
                "{}\n",
                serde_json::to_string(w).expect("a string serialises")
            )
        })
        .collect();
    std::fs::write(dir.join("state_loader.dict"), dict).context("writing the state dictionary")?;

    write(
        &dir.join("state_loader"),
        &[
            ("default.state", default),
            ("maxed.state", maxed),
            ("persisted.state", persisted),
        ],
    )?;
    Ok(())
}

/// Writes each `(name, bytes)` into `dir`, creating it.
fn write(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("seeds in {}", dir.display());
    Ok(())
}
