//! The automation outputs' per-hop paths do not allocate once built: checked with a counting
//! global allocator (its own test binary, so that no other test shares the allocator).

use echoic_core::frame::Frame;
use echoic_core::outputs::{
    CcEmitter, OutputConfig, OutputEngine, Pca, SlotConfig, Source, N_SLOTS,
};
use std::time::Instant;

mod common;

use common::allocations;

#[test]
fn on_hop_and_cc_updates_do_not_allocate() {
    let config = OutputConfig::default(); // 100 bands, 10 ms hop, 250-dimensional embedding
    let dim = config.embedding_dim;
    let mut engine = OutputEngine::new(config);
    let pca = Pca {
        mean: vec![0.1; dim],
        axes: (0..8)
            .map(|k| {
                (0..dim)
                    .map(|j| if j % 8 == k { 0.125 } else { 0.0 })
                    .collect()
            })
            .collect(),
        explained_variance: vec![1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
    };
    engine.set_pca(Some(pca)).unwrap();
    let mut slots = SlotConfig::defaults();
    let sources = [
        Source::Axis(0),
        Source::Similarity(0),
        Source::Novelty,
        Source::Periodicity,
        Source::Period,
        Source::Loudness,
        Source::Axis(7),
        Source::Similarity(3),
    ];
    for (slot, source) in slots.iter_mut().zip(sources) {
        slot.source = source;
        slot.enabled = true;
    }
    slots[5].cc.fourteen_bit = true;
    let mut emitters = [CcEmitter::new(); N_SLOTS];
    let mut frame = Frame::silent(100);
    let mut embedding = vec![0.0f32; dim];
    let mut messages = 0usize;
    let mut hop =
        |engine: &mut OutputEngine, t: u64, embedding: &mut Vec<f32>, frame: &mut Frame| {
            frame.seq = t;
            for (b, v) in frame.bands[..100].iter_mut().enumerate() {
                *v = if t % 50 < 3 {
                    -20.0 - b as f32 * 0.1
                } else {
                    -60.0 + ((t * 7 + b as u64) % 11) as f32
                };
            }
            for (j, e) in embedding.iter_mut().enumerate() {
                *e = ((t as f32 * 0.05 + j as f32).sin() * 0.5).max(0.0);
            }
            let values = engine.on_hop(frame, Some(embedding), &slots);
            for ((emitter, value), slot) in emitters.iter_mut().zip(values).zip(&slots) {
                emitter.update(value, &slot.cc, |_, _, _| messages += 1);
            }
        };
    // Learn a sound (the capture's buffers are allocated when it starts), and warm up.
    engine.start_learning(0, 0.5);
    for t in 0..300 {
        hop(&mut engine, t, &mut embedding, &mut frame);
    }
    assert!(engine.take_learned_changed());
    engine.start_learning(1, 100.0); // in progress during the measurement
    let before = allocations();
    let start = Instant::now();
    let hops = 1000;
    for t in 300..300 + hops {
        hop(&mut engine, t, &mut embedding, &mut frame);
    }
    let elapsed = start.elapsed();
    let after = allocations();
    assert_eq!(after - before, 0, "allocations during {hops} hops");
    assert!(messages > 0);
    println!(
        "on_hop + 8 CC updates: {:.1} µs per hop (100 bands, 250 dims)",
        elapsed.as_secs_f64() * 1e6 / hops as f64
    );
}
