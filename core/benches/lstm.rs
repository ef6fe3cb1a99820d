//! The LSTM engine's speed at the shapes that matter, written where `cargo xtask bench --torch`
//! compares it with PyTorch on the same weights and inputs (`torch_lstm.py`, beside this file).
//!
//! `cargo bench -p echoic-core --bench lstm -- [--out DIR] [--only NAME]` times, on the shipped model's
//! weights with tanh cells (what `nn.LSTM` computes):
//! - `infer-b1`: the worker's path, [`Listener::embed_into`], one sequence at a time;
//! - `infer-b64`: [`Workspace::encode`] on 64 sequences, per embedding;
//! - `train-b64`: one [`Trainer::step`] on 64 sequences (forward, backward, clipping, AdamW);
//! - `train-b64-2threads`: the same step split over two threads.
//!
//! It prints the medians and writes `DIR/weights.safetensors` (the weights, `input_b1` and
//! `input_b64`, normalised) and `DIR/echoic.json` (configuration and seconds) for the peer.

use echoic_core::listener::encoder::Device;
use echoic_core::listener::lstm::{Network, Trainer, TrainerConfig, Workspace};
use echoic_core::listener::{format, Activation, Listener, DEFAULT_MODEL};
use echoic_core::rng::SplitMix64;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Sequences per batch in the batched figures.
const BATCH: usize = 64;

/// The median time of `f` over about `budget`, after a warm-up, in seconds per call.
fn median_seconds(budget: Duration, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < budget / 5 {
        f();
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let mut out_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-lstm");
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out_dir = PathBuf::from(args.next().expect("--out needs a folder")),
            "--only" => only = Some(args.next().expect("--only needs a name")),
            _ => {} // cargo's `--bench`
        }
    }
    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let (mut meta, tensors) = format::decode(DEFAULT_MODEL).expect("the shipped model loads");
    meta.model.activation = Activation::Tanh;
    let cfg = meta.model.clone();
    let sequence = cfg.steps * cfg.n_bands;

    // Inputs in dB for the listener, and the same normalised for the engine and the peer.
    let mut rng = SplitMix64(0xbe7c);
    let buffers_db: Vec<f32> = (0..BATCH * sequence)
        .map(|_| (-70.0 + 60.0 * rng.next_f64()) as f32)
        .collect();
    let mut normalised = vec![0.0; buffers_db.len()];
    meta.normalisation
        .apply(&buffers_db, &mut normalised, sequence);

    let mut listener =
        Listener::from_parts(meta.clone(), &tensors, Device::Cpu).expect("listener builds");
    let net = Network::new(&cfg, &tensors).expect("network builds");
    let budget = Duration::from_secs(2);
    let mut seconds = Vec::new();

    let mut embedding = vec![0.0; cfg.latent_dim()];
    let mut next = 0;
    if wanted("infer-b1") {
        seconds.push((
            "infer-b1",
            median_seconds(budget, || {
                let b = &buffers_db[(next % BATCH) * sequence..][..sequence];
                next += 1;
                listener.embed_into(black_box(b), &mut embedding).unwrap();
            }),
        ));
    }

    let mut workspace = Workspace::new(&net, BATCH);
    let mut embeddings = vec![0.0; BATCH * cfg.latent_dim()];
    workspace.encode(&net, &normalised, BATCH, &mut embeddings);
    if wanted("infer-b64") {
        let batch_seconds = median_seconds(budget, || {
            workspace.encode(&net, black_box(&normalised), BATCH, &mut embeddings);
        });
        seconds.push(("infer-b64", batch_seconds / BATCH as f64));
    }

    for (name, threads) in [("train-b64", 1), ("train-b64-2threads", 2)] {
        if !wanted(name) {
            continue;
        }
        let config = TrainerConfig {
            threads,
            ..TrainerConfig::default()
        };
        let mut trainer = Trainer::new(net.clone(), config, BATCH);
        seconds.push((
            name,
            median_seconds(budget, || {
                black_box(trainer.step(black_box(&normalised), BATCH));
            }),
        ));
    }

    println!(
        "LSTM engine ({}), {} × {} → {:?} → {:?}, tanh, one thread unless said:",
        echoic_core::listener::lstm::instruction_set(),
        cfg.steps,
        cfg.n_bands,
        cfg.encoder,
        cfg.decoder
    );
    for (name, s) in &seconds {
        let unit = if name.starts_with("infer") {
            "per embedding"
        } else {
            "per step of 64"
        };
        println!("  {name:20} {:9.1} µs {unit}", s * 1e6);
    }

    // What the peer needs: weights and inputs, configuration and figures.
    std::fs::create_dir_all(&out_dir).expect("bench output folder");
    let mut named: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.data.clone()))
        .collect();
    named.push((
        "input_b64".into(),
        vec![BATCH, cfg.steps, cfg.n_bands],
        normalised.clone(),
    ));
    named.push((
        "input_b1".into(),
        vec![1, cfg.steps, cfg.n_bands],
        normalised[..sequence].to_vec(),
    ));
    let bytes: Vec<Vec<u8>> = named
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = named
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .expect("tensor view");
            (name.clone(), view)
        })
        .collect();
    let file = safetensors::serialize(views, None::<HashMap<String, String>>).expect("serialise");
    std::fs::write(out_dir.join("weights.safetensors"), file).expect("write weights");
    let trainer = TrainerConfig::default();
    let doc = serde_json::json!({
        "config": cfg,
        "batch": BATCH,
        "learning_rate": trainer.learning_rate,
        "weight_decay": trainer.weight_decay,
        "clip_grad_norm": trainer.clip_grad_norm,
        "instruction_set": echoic_core::listener::lstm::instruction_set(),
        "seconds": seconds.iter().map(|(n, s)| (n.to_string(), *s)).collect::<HashMap<_, _>>(),
        "embedding_b64_first_row": &embeddings[..cfg.latent_dim()],
    });
    std::fs::write(
        out_dir.join("echoic.json"),
        serde_json::to_string_pretty(&doc).expect("json"),
    )
    .expect("write echoic.json");
    println!("  wrote {}", out_dir.display());
}
