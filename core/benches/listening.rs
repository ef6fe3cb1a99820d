//! `cargo bench -p echoic-core --bench listening` (or `cargo xtask bench`): speed of the
//! listening pipeline, printed as real-time factors and as ratios against peers measured in the
//! same run on the same 60 s of 48 kHz noise with 100 bands — the `cortix` crate and the Python
//! `Gammatone` package's `erb_filterbank` — because absolute times on shared machines are noise.

use echoic_core::cochlea::{Cochlea, CochleaConfig, Kernel};
use echoic_core::dilated::{DilatedSpec, Pooling};
use echoic_core::frame::Frame;
use echoic_core::memory::EchoicMemory;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const FS: f64 = 48_000.0;
const SECONDS: usize = 60;

/// Deterministic noise in [-0.5, 0.5).
fn noise(len: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// The fastest of `runs` timings of `f`: the least disturbed by the rest of the machine.
fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn config() -> CochleaConfig {
    CochleaConfig {
        sample_rate: FS,
        n_bands: 100,
        low_hz: 50.0,
        high_hz: 24_000.0,
        hop_seconds: 0.01,
    }
}

fn main() {
    let signal = noise(FS as usize * SECONDS);
    let audio = Duration::from_secs(SECONDS as u64);
    println!("Listening pipeline benchmark: {SECONDS} s of 48 kHz noise, 100 ERB bands 50 Hz-24 kHz, 10 ms hop");
    println!("CPU kernel detected: {:?}\n", Kernel::detect());

    let mut ours = Duration::MAX;
    for kernel in [Kernel::Portable, Kernel::Avx2Fma, Kernel::Avx512] {
        let Ok(mut cochlea) = Cochlea::with_kernel(config(), kernel) else {
            println!("{kernel:>9?} kernel: not supported on this CPU");
            continue;
        };
        let time = best_of(3, || {
            cochlea.reset();
            cochlea.process(black_box(&signal), |f| {
                black_box(f);
            });
        });
        println!(
            "{:>9} kernel: {:8.1} ms  real-time factor {:7.0}x",
            format!("{kernel:?}"),
            time.as_secs_f64() * 1e3,
            audio.as_secs_f64() / time.as_secs_f64()
        );
        ours = ours.min(time);
    }
    let rtf = audio.as_secs_f64() / ours.as_secs_f64();
    println!("\nEchoic filterbank (best kernel): real-time factor {rtf:.0}x");

    let mut cortix_bank = cortix::gammatone::GammatoneFilterbank::builder()
        .bands(100)
        .range(50.0, 24_000.0)
        .sample_rate(FS as f32)
        .build();
    let cortix = best_of(2, || {
        cortix_bank.reset();
        for block in signal.chunks(480) {
            cortix_bank.process(black_box(block));
        }
    });
    println!(
        "cortix 0.1 filterbank:           real-time factor {:.0}x  -> Echoic is {:.1}x faster",
        audio.as_secs_f64() / cortix.as_secs_f64(),
        cortix.as_secs_f64() / ours.as_secs_f64()
    );

    match python_erb_filterbank_seconds() {
        Ok(python) => println!(
            "Python Gammatone erb_filterbank: real-time factor {:.1}x  -> Echoic is {:.0}x faster",
            SECONDS as f64 / python,
            python / ours.as_secs_f64()
        ),
        Err(why) => println!("Python Gammatone erb_filterbank: not measured ({why})"),
    }

    // The audio thread's cost per 128-sample block at 48 kHz, as a share of the block's period.
    let mut cochlea = Cochlea::new(config()).unwrap();
    let blocks = signal.chunks_exact(128).count();
    let per_block = best_of(3, || {
        cochlea.reset();
        for block in signal.chunks_exact(128) {
            cochlea.process(black_box(block), |f| {
                black_box(f);
            });
        }
    }) / blocks as u32;
    let period = Duration::from_secs_f64(128.0 / FS);
    println!(
        "\nAudio-thread cost per 128-sample block: {:.2} us = {:.2} % of the {:.2} ms block period",
        per_block.as_secs_f64() * 1e6,
        100.0 * per_block.as_secs_f64() / period.as_secs_f64(),
        period.as_secs_f64() * 1e3
    );

    // Dilated-buffer build time per hop, for each pooling.
    let mut memory = EchoicMemory::new(128, 100);
    let mut frame = Frame::silent(100);
    for seq in 0..128 {
        frame.seq = seq;
        frame.bands[..100].fill(seq as f32);
        memory.push(&frame);
    }
    let mut out = vec![0.0f32; 8 * 100];
    for pooling in [Pooling::Pick, Pooling::Mean, Pooling::Max] {
        let spec = DilatedSpec {
            pooling,
            ..DilatedSpec::default()
        };
        let reps = 20_000;
        let time = best_of(3, || {
            for _ in 0..reps {
                black_box(spec.build(black_box(&memory), &mut out));
            }
        }) / reps;
        println!(
            "Dilated buffer build per hop ({pooling:?}): {:.2} us = {:.3} % of a 10 ms hop",
            time.as_secs_f64() * 1e6,
            100.0 * time.as_secs_f64() / 0.01
        );
    }

    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut shipped: Vec<_> = std::fs::read_dir(&models)
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect()
        })
        .unwrap_or_default();
    shipped.sort();
    if shipped.is_empty() {
        println!("\nListener: no model in {}", models.display());
    }
    for path in &shipped {
        listener_latency(path);
    }
}

/// Listener inference per embedding on one thread: batch 1 (the worker's path) and batched (the
/// offline tools'), with the shipped model at `path`.
fn listener_latency(path: &Path) {
    use echoic_core::listener::Listener;
    let mut listener = match Listener::load(path) {
        Ok(listener) => listener,
        Err(error) => {
            println!("\nListener {}: {error}", path.display());
            return;
        }
    };
    let len = listener.sequence_len();
    let buffers: Vec<f32> = noise(len * 256).iter().map(|x| -60.0 + 80.0 * x).collect();
    let mut out = vec![0.0f32; listener.latent_dim()];
    let reps = 400;
    let single = best_of(3, || {
        for i in 0..reps {
            let b = &buffers[(i % 256) * len..(i % 256 + 1) * len];
            listener.embed_into(black_box(b), &mut out).unwrap();
        }
    }) / reps as u32;
    println!(
        "\nListener {:?}, {} -> {} dims, one thread:",
        listener.metadata().name,
        len,
        listener.latent_dim()
    );
    println!(
        "  batch 1 (worker, embed_into):        {:7.1} us per embedding",
        single.as_secs_f64() * 1e6
    );
    // The reference: the same encoder as candle ops (with `--features candle`).
    #[cfg(feature = "candle")]
    let candle_embed = {
        let bytes = std::fs::read(path).unwrap();
        let (meta, tensors) = echoic_core::listener::format::decode(&bytes).unwrap();
        let device = candle_core::Device::Cpu;
        let encoder = echoic_core::listener::candle::CandleEncoder::from_tensors(
            &meta.model,
            &tensors,
            &device,
        )
        .unwrap();
        move |buffers_db: &[f32], n: usize| {
            let mut normalised = vec![0.0; buffers_db.len()];
            let sequence = meta.model.steps * meta.model.n_bands;
            meta.normalisation
                .apply(buffers_db, &mut normalised, sequence);
            encoder.encode_slice(&normalised, n, &device).unwrap()
        }
    };
    #[cfg(feature = "candle")]
    {
        let candle_single = best_of(3, || {
            for i in 0..reps / 4 {
                let b = &buffers[(i % 256) * len..(i % 256 + 1) * len];
                black_box(candle_embed(black_box(b), 1));
            }
        }) / (reps / 4) as u32;
        println!(
            "  batch 1 through candle ops:           {:7.1} us per embedding",
            candle_single.as_secs_f64() * 1e6
        );
    }
    for batch in [64usize, 256] {
        let batched = best_of(3, || {
            black_box(
                listener
                    .embed_batch(black_box(&buffers[..batch * len]), batch)
                    .unwrap(),
            );
        }) / batch as u32;
        println!(
            "  batch {batch:3} (offline, embed_batch):    {:7.1} us per embedding",
            batched.as_secs_f64() * 1e6,
        );
        #[cfg(feature = "candle")]
        {
            let candle = best_of(3, || {
                black_box(candle_embed(black_box(&buffers[..batch * len]), batch));
            }) / batch as u32;
            println!(
                "            through candle ops:           {:7.1} us per embedding",
                candle.as_secs_f64() * 1e6
            );
        }
    }
}

/// Times the Python `Gammatone` package's `erb_filterbank` on the same noise, through the
/// project's venv, in seconds.
fn python_erb_filterbank_seconds() -> Result<f64, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        return Err("no .venv: run .ci/setup-debian".into());
    }
    let output = Command::new(python)
        .arg(root.join("tests/reference/bench_erb_filterbank.py"))
        .arg(SECONDS.to_string())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))
}
