//! Hostile hosts and bad input against the real bundle: bad audio through the host, lifecycles,
//! many instances at once, corrupt state.

use echoic_host_tests::{
    passed_through, state_bytes, state_document, test_signal, AudioConfig, EchoicHost,
};
use std::sync::Mutex;
use std::time::Instant;

/// The tests here count the process's threads, so they must not run beside each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The plugin's own threads alive now: those whose name starts with `echoic-` (the worker, the
/// trainer's helper, the editor's model loader). Counting only these keeps the test harness's
/// threads, which start and end around each test, out of the figure.
fn plugin_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("echoic-"))
        .count()
}

/// The plugin's thread count once it has settled at `expected`, or after two seconds. A joined
/// thread can stay listed in `/proc` for a moment after `join` returns.
fn plugin_threads_settled_at(expected: usize) -> usize {
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let now = plugin_threads();
        if now == expected || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn resident_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Audio passes through bit-exactly around NaN, ±Inf, denormal and full-scale samples; the
/// non-finite samples pass through too. The one change the plugin makes: a subnormal sample
/// leaves as a zero of its sign.
#[test]
fn bad_audio_passes_through_without_harm() {
    let _serial = serial();
    let mut host = EchoicHost::new().unwrap();
    host.activate(AudioConfig::new(48_000.0, 512, 2)).unwrap();
    let mut signal = test_signal(48_000.0, 1.0, 2);
    for (i, bad) in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-40,
        -1e-41,
        1.0,
        -1.0,
    ]
    .into_iter()
    .enumerate()
    {
        signal[i % 2][1000 + 6007 * i] = bad;
    }
    let out = host.process_signal(&signal, &[512]).unwrap();
    for (channel, (a, b)) in signal.iter().zip(&out.audio).enumerate() {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(
                passed_through(*x).to_bits(),
                y.to_bits(),
                "channel {channel} sample {i}"
            );
        }
    }
    // And it keeps working on clean audio afterwards.
    let clean = test_signal(48_000.0, 0.5, 2);
    assert_eq!(host.process_signal(&clean, &[256]).unwrap().audio, clean);
}

/// 1,000 cycles of activate, process, reset and deactivate at changing rates leak no thread and
/// no memory.
#[test]
fn a_thousand_lifecycles_leak_no_threads_and_no_memory() {
    let _serial = serial();
    let mut host = EchoicHost::new().unwrap();
    let rates = [44_100.0, 48_000.0, 96_000.0, 22_050.0, 8_000.0, 192_000.0];
    let signals: Vec<_> = rates.iter().map(|&r| test_signal(r, 0.02, 2)).collect();
    let mut cycle = |i: usize| {
        let r = i % rates.len();
        host.activate(AudioConfig::new(rates[r], 1024, 2)).unwrap();
        host.process_signal(&signals[r], &[256]).unwrap();
        host.reset();
        host.process_signal(&signals[r], &[1024]).unwrap();
        host.deactivate();
    };
    for i in 0..50 {
        cycle(i); // warm up allocator pools and lazy statics
    }
    let (threads_before, rss_before) = (plugin_threads(), resident_kib());
    let start = Instant::now();
    for i in 0..1000 {
        cycle(i);
    }
    let (threads_after, rss_after) = (plugin_threads_settled_at(threads_before), resident_kib());
    println!(
        "1000 cycles in {:.1} s: threads {threads_before} -> {threads_after}, RSS {rss_before} -> {rss_after} KiB",
        start.elapsed().as_secs_f64()
    );
    assert_eq!(threads_after, threads_before, "threads leaked");
    assert!(
        rss_after < rss_before + 8 * 1024,
        "memory grew from {rss_before} to {rss_after} KiB"
    );
}

/// Eight instances in one process, each with its own worker, processing concurrently on eight
/// threads: each passes its own audio through untouched and no instance sees another's.
#[test]
fn eight_instances_process_concurrently_and_independently() {
    let _serial = serial();
    // One activation first, so that threads the plugin framework starts once per process (and
    // keeps) exist before counting.
    {
        let mut host = EchoicHost::new().unwrap();
        host.activate(AudioConfig::new(48_000.0, 1024, 1)).unwrap();
        host.process_signal(&test_signal(48_000.0, 0.1, 1), &[256])
            .unwrap();
        host.deactivate();
    }
    let before = plugin_threads_settled_at(0);
    let all_active = std::sync::Arc::new(std::sync::Barrier::new(8));
    let workers: Vec<_> = (0..8)
        .map(|k| {
            let all_active = all_active.clone();
            std::thread::spawn(move || {
                let mut host = EchoicHost::new().unwrap();
                let rate = [44_100.0, 48_000.0][k % 2];
                host.activate(AudioConfig::new(rate, 1024, 1)).unwrap();
                all_active.wait();
                // Every instance gets a different signal.
                let mut signal = test_signal(rate, 2.0, 1);
                signal[0]
                    .iter_mut()
                    .for_each(|x| *x *= 0.1 + 0.1 * k as f32);
                let out = host.process_signal(&signal, &[128 + 64 * k]).unwrap();
                assert_eq!(out.audio, signal, "instance {k}");
                let during = plugin_threads();
                all_active.wait();
                host.deactivate();
                during
            })
        })
        .collect();
    let during: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    // While all eight were active: eight worker threads.
    assert!(
        during.iter().all(|&n| n >= before + 8),
        "before {before}, during {during:?}"
    );
    assert_eq!(
        plugin_threads_settled_at(before),
        before,
        "threads left behind"
    );
}

/// Random bytes, huge length fields and fields from a future version: the state is refused or
/// the unknown parts ignored, the plugin keeps its state and keeps working, and nothing aborts.
#[test]
fn corrupt_state_is_refused_without_harm() {
    let _serial = serial();
    let mut host = EchoicHost::new().unwrap();
    let good = host.save_state().unwrap();
    let text = String::from_utf8_lossy(&good).into_owned();
    let mut attempts: Vec<Vec<u8>> = Vec::new();
    let mut seed = 0x1234_5678u64;
    for len in [0usize, 1, 7, 8, 64, 4096] {
        attempts.push(
            (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect(),
        );
    }
    // A huge length prefix (nih-plug #279 aborted the process on exactly this).
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(&good);
    attempts.push(huge);
    if good.len() >= 8 {
        let mut huge_inner = good.clone();
        huge_inner[..8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        attempts.push(huge_inner);
    }
    // Truncated.
    attempts.push(good[..good.len() / 2].to_vec());
    for bytes in &attempts {
        let _ = host.load_state(bytes);
        assert_eq!(
            host.save_state().unwrap(),
            good,
            "a refused state must leave the old one"
        );
    }
    // A future version of the learned sounds, and an unknown field: accepted or refused, never a
    // crash, and the plugin still works.
    if let Some(at) = text.find("\"learned-sounds\"") {
        let future = text[..at].to_owned()
            + "\"future-field\":{\"x\":1},\"learned-sounds\":\"{\\\"version\\\":99}\""
            + &text[text[at..].find(',').map_or(text.len(), |i| at + i)..];
        let _ = host.load_state(future.as_bytes());
    }
    host.activate(AudioConfig::new(48_000.0, 256, 2)).unwrap();
    let signal = test_signal(48_000.0, 0.2, 2);
    assert_eq!(host.process_signal(&signal, &[256]).unwrap().audio, signal);
}

/// A state that parses but is partial, out of range or holds unreadable fields is completed
/// with defaults and clamped into range, so that nothing of the previous session leaks into the
/// loaded one and nothing out of range reaches the filterbank (nice-plug alone would keep the
/// old values, store 100,000 bands, and panic on the next save of an enum index past the end).
#[test]
fn partial_and_out_of_range_states_are_completed_with_defaults() {
    let _serial = serial();
    let mut host = EchoicHost::new().unwrap();
    let defaults = state_document(&host.save_state().unwrap()).unwrap();

    // A session with its own settings and model file.
    let mut session = defaults.clone();
    session["params"]["bands"] = serde_json::json!({"i32": 64});
    session["params"]["pooling"] = serde_json::json!({"string": "max"});
    session["fields"]["model-path"] = serde_json::json!("\"/somewhere/model.safetensors\"");
    host.load_state(&state_bytes(&session)).unwrap();
    assert_eq!(
        state_document(&host.save_state().unwrap()).unwrap(),
        session
    );

    // An empty state: every parameter and field back to its default, not the session's.
    let empty = serde_json::json!({"version": "", "params": {}, "fields": {}});
    host.load_state(&state_bytes(&empty))
        .expect("an empty state is a valid state");
    assert_eq!(
        state_document(&host.save_state().unwrap()).unwrap(),
        defaults,
        "an empty state must mean the defaults"
    );

    // Out of range, wrong types and unreadable fields: repaired, and the repaired state saves.
    host.load_state(&state_bytes(&session)).unwrap();
    let mut broken = session.clone();
    broken["params"]["bands"] = serde_json::json!({"i32": 100_000});
    broken["params"]["pooling"] = serde_json::json!({"i32": 99});
    broken["params"]["dilation"] = serde_json::json!({"bool": true});
    broken["fields"]["model-path"] = serde_json::json!("{{{ not json");
    broken["fields"]["learned-sounds"] =
        serde_json::json!("{\"version\": 1, \"sounds\": \"none\"}");
    host.load_state(&state_bytes(&broken))
        .expect("a repairable state loads");
    let loaded = state_document(&host.save_state().expect("a repaired state saves")).unwrap();
    println!("repaired: {}", loaded["params"]);
    assert_eq!(
        loaded["params"]["bands"],
        serde_json::json!({"i32": 128}),
        "bands clamped into range"
    );
    for id in ["pooling", "dilation"] {
        assert_eq!(
            loaded["params"][id], defaults["params"][id],
            "{id} back to its default"
        );
    }
    for key in ["model-path", "learned-sounds"] {
        assert_eq!(
            loaded["fields"][key], defaults["fields"][key],
            "{key} back to its default, not the session's"
        );
    }

    // And the plugin listens with the repaired settings.
    host.activate(AudioConfig::new(48_000.0, 256, 2)).unwrap();
    let signal = test_signal(48_000.0, 0.2, 2);
    assert_eq!(host.process_signal(&signal, &[256]).unwrap().audio, signal);
}
