//! The LSTM engine's allocations, counted with a counting global allocator (its own test
//! binary, so that no other test shares the allocator): the worker's batch-1 path allocates
//! nothing, and a training step allocates nothing of the engine's own once its buffers are
//! sized (the `gemm` crate allocates packing scratch, at most two blocks, inside its products).

use echoic_core::listener::lstm::{Network, Trainer, TrainerConfig, Workspace};
use echoic_core::listener::{format, Listener, DEFAULT_MODEL};

mod common;

use common::allocations;

#[test]
fn the_workers_batch_one_path_allocates_nothing() {
    let mut listener = Listener::from_bytes(DEFAULT_MODEL).unwrap();
    let buffer: Vec<f32> = (0..listener.sequence_len())
        .map(|i| -80.0 + (i % 37) as f32)
        .collect();
    let mut embedding = vec![0.0; listener.latent_dim()];
    listener.embed_into(&buffer, &mut embedding).unwrap();
    let before = allocations();
    for _ in 0..20 {
        listener.embed_into(&buffer, &mut embedding).unwrap();
    }
    assert_eq!(allocations(), before);
    assert!(embedding.iter().any(|&v| v != 0.0));
}

#[test]
fn a_training_step_allocates_only_inside_the_products() {
    let (meta, tensors) = format::decode(DEFAULT_MODEL).unwrap();
    let cfg = &meta.model;
    let net = Network::new(cfg, &tensors).unwrap();
    let b = 16;
    let x: Vec<f32> = (0..b * cfg.steps * cfg.n_bands)
        .map(|i| (i % 11) as f32 / 11.0)
        .collect();
    let mut trainer = Trainer::new(net.clone(), TrainerConfig::default(), b);
    trainer.step(&x, b);
    let counts: Vec<usize> = (0..3)
        .map(|_| {
            let before = allocations();
            trainer.step(&x, b);
            allocations() - before
        })
        .collect();
    // Products per step: per layer, the input projection and T − 1 recurrent products forward;
    // T − 1 recurrent products, dR, dW and the input's gradient backward.
    let layers = cfg.encoder.len() + cfg.decoder.len() + 1;
    let products = layers * (2 * cfg.steps + 2);
    // `gemm` takes at most two blocks of packing scratch per product; the engine takes none.
    eprintln!("allocations per training step: {counts:?} ({products} products)");
    assert!(counts.iter().all(|&c| c <= 2 * products), "{counts:?}");
    assert!(counts.windows(2).all(|w| w[0] == w[1]), "{counts:?}");

    // Batched inference likewise: its buffers are sized by the first call.
    let mut workspace = Workspace::new(&net, b);
    let mut out = vec![0.0; b * cfg.latent_dim()];
    workspace.encode(&net, &x, b, &mut out);
    let before = allocations();
    workspace.encode(&net, &x, b, &mut out);
    let encode = allocations() - before;
    let encoder_products = cfg.encoder.len() * cfg.steps;
    eprintln!("allocations per encode: {encode} ({encoder_products} products)");
    assert!(encode <= 2 * encoder_products, "{encode}");
}
