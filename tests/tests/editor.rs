//! The editor in real windows, under Xvfb with Mesa's software renderer when no display is set.
//!
//! - The CLAP editor embedded in the test host's X11 window while real recordings play through
//!   the plugin in real time: the panels must show live data, and the cochleagram and the map
//!   must differ between music and speech. Resizing must reach the saved state.
//! - *Adapt* from the embedded editor: a click on its button fine-tunes the listener on what
//!   played, with progress shown; the learned sound keeps telling its sound from another after
//!   the swap, and Revert undoes it.
//! - The standalone application: a click on a learn button (a synthetic X event) must put the
//!   learned sound's marker on the map, and a click on clear must take it away again.
//!
//! Screenshots are kept in `target/editor-screenshots/` for a person to look at. Frame timings
//! (from the editor's probe) and the audio thread's cost with the editor closed and open are
//! printed.

use echoic_host_tests::gui::{
    centre, screenshot_dir, EmbeddedEditor, Probe, Screenshot, XServer, X11,
};
use echoic_host_tests::{
    recording, state_document, with_model_path, AudioConfig, EchoicHost, MidiMessage,
};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window tests share one process-wide `DISPLAY` and probe variable: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const BLOCK: usize = 256;

/// The colour of the present position and its trail on the map (`theme::ACCENT` in the plugin).
const ACCENT: [u8; 3] = [0x4f, 0xd1, 0xc5];

/// The colour of learned sound 1 on the map (`theme::LEARNED[0]` in the plugin).
const SOUND_1: [u8; 3] = [0xff, 0xb0, 0x3b];

/// Plays `signal` in real time through the plugin, keeping the editor serviced between blocks,
/// and checks that every block passes through bit for bit. Returns the mean time the plugin's
/// `process` took per block, in µs.
fn play(host: &mut EchoicHost, editor: Option<&mut EmbeddedEditor>, signal: &[f32]) -> f64 {
    let rate = host.config().unwrap().sample_rate;
    let start = Instant::now();
    let mut editor = editor;
    let mut out = vec![0.0f32; BLOCK];
    let mut busy = Duration::ZERO;
    let mut blocks = 0;
    for (i, block) in signal.chunks(BLOCK).enumerate() {
        let t = Instant::now();
        host.process_block(&[block], &mut [&mut out[..block.len()]])
            .unwrap();
        busy += t.elapsed();
        assert!(
            out[..block.len()] == *block,
            "the audio did not pass through untouched in block {i}"
        );
        blocks += 1;
        if let Some(editor) = editor.as_deref_mut() {
            editor.pump(host);
        }
        let due = Duration::from_secs_f64(((i + 1) * BLOCK) as f64 / rate);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    busy.as_secs_f64() * 1e6 / blocks.max(1) as f64
}

/// Sets the process environment for the in-process editor (its window system reads `DISPLAY`,
/// its probe `ECHOIC_EDITOR_PROBE`) and restores it when dropped, so that the next test still
/// sees whether the environment had a display of its own.
struct EnvGuard(
    /// Each variable set, with the value it had before (`None`: unset).
    Vec<(&'static str, Option<std::ffi::OsString>)>,
);

impl EnvGuard {
    fn set(vars: &[(&'static str, &std::ffi::OsStr)]) -> Self {
        let saved = vars
            .iter()
            .map(|(k, _)| (*k, std::env::var_os(k)))
            .collect();
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        Self(saved)
    }
}

impl Drop for EnvGuard {
    fn drop(&mut self) {
        for (k, v) in &self.0 {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

/// The regions of a screenshot the assertions look at.
fn region(shot: &Screenshot, probe: &Probe, name: &str) -> Screenshot {
    shot.crop(
        probe
            .rect(name)
            .unwrap_or_else(|| panic!("the probe has no {name} rect: {probe:?}")),
    )
}

#[test]
fn embedded_editor_shows_music_and_speech_live() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = XServer::start().expect("an X server");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let probe_path = dir.join("probe-clap.json");
    let _ = std::fs::remove_file(&probe_path);
    let _env = EnvGuard::set(&[
        ("DISPLAY", server.display().as_ref()),
        ("ECHOIC_EDITOR_PROBE", probe_path.as_os_str()),
    ]);

    let (music, rate) = recording("music_armygeddon.wav");
    let (speech, _) = recording("speech_june.wav");
    // Declared before the host so that, should an assertion fail, the host (and with it the
    // plugin's window) goes first, then the test's X connection, then the X server.
    let mut embedded: Option<EmbeddedEditor> = None;
    let mut host = EchoicHost::new().unwrap();
    host.activate(AudioConfig::new(rate, BLOCK as u32, 1))
        .unwrap();

    // The audio thread's cost without an editor, as a reference.
    let closed_us = play(&mut host, None, &music[..(2.0 * rate) as usize]);

    let editor = embedded.insert(
        EmbeddedEditor::open(&mut host, server.display()).expect("the editor opens embedded"),
    );
    println!(
        "editor embedded at {}×{}",
        editor.size.width, editor.size.height
    );
    Probe::wait(&probe_path, Duration::from_secs(20), |p| {
        p.stat("frames") > 0.0
    })
    .expect("the editor draws");

    // Learn the music from the editor: a click on sound 1's learn button, 1.5 s into the music
    // (once the echoic memory is full of it); the capture takes the next 2 s.
    let split = (1.5 * rate) as usize;
    let mut music_us = play(&mut host, Some(&mut *editor), &music[..split]);
    let probe = Probe::read(&probe_path).unwrap();
    let (x, y) = centre(probe.learn_button(0).unwrap());
    editor.x11.click(editor.parent, x, y).unwrap();
    music_us = (music_us + play(&mut host, Some(&mut *editor), &music[split..])) * 0.5;
    let music_shot = editor.screenshot().unwrap();
    let music_probe = Probe::read(&probe_path).unwrap();
    assert!(
        music_probe.learned(0),
        "clicking learn in the embedded editor learned nothing: {music_probe:?}"
    );
    music_shot.save_png(&dir.join("clap-music.png")).unwrap();

    let speech_us = play(&mut host, Some(&mut *editor), &speech);
    let speech_shot = editor.screenshot().unwrap();
    let speech_probe = Probe::read(&probe_path).unwrap();
    speech_shot.save_png(&dir.join("clap-speech.png")).unwrap();
    // The learned music is on the map, away from where the speech is.
    let marker = region(&speech_shot, &speech_probe, "map").count_near(SOUND_1, 24);
    println!(
        "sound 1 (the music) marker: {marker} pixels, at {} on the map",
        speech_probe.0["learned_on_map"][0]
    );
    assert!(
        marker > 100,
        "no marker for the learned music on the map ({marker} pixels)"
    );

    println!(
        "editor frames: {:.1} fps, ui() mean {:.2} ms (p95 {:.2}, max {:.2}), frame interval mean {:.1} ms (p95 {:.1}); \
         {} frames, {} hops",
        speech_probe.stat("fps"),
        speech_probe.stat("ui_ms_mean"),
        speech_probe.stat("ui_ms_p95"),
        speech_probe.stat("ui_ms_max"),
        speech_probe.stat("interval_ms_mean"),
        speech_probe.stat("interval_ms_p95"),
        speech_probe.stat("frames"),
        speech_probe.hops(),
    );
    println!("plugin process() per {BLOCK}-sample block: {closed_us:.1} µs with the editor closed, {music_us:.1} / {speech_us:.1} µs open");

    // Every data panel shows something, on both sounds.
    for (name, shot, probe) in [
        ("music", &music_shot, &music_probe),
        ("speech", &speech_shot, &speech_probe),
    ] {
        for panel in ["cochleagram", "memory", "embedding"] {
            let r = region(shot, probe, panel);
            let (spread, colours) = (r.brightness_spread(), r.distinct_colours());
            println!("{name} {panel}: brightness spread {spread:.1}, {colours} colours");
            assert!(
                spread > 8.0 && colours > 40,
                "the {panel} is blank on {name} ({spread:.1}, {colours} colours)"
            );
        }
        let map = region(shot, probe, "map");
        let accent = map.count_near(ACCENT, 40);
        assert!(
            accent > 20,
            "no present position or trail on the map on {name} ({accent} accent pixels)"
        );
    }
    // And what they show depends on the sound: the cochleagram as a whole, and where the map
    // draws the present and its trail.
    let coch_diff = region(&music_shot, &music_probe, "cochleagram").mean_abs_diff(&region(
        &speech_shot,
        &speech_probe,
        "cochleagram",
    ));
    println!("cochleagram: mean difference music vs speech {coch_diff:.1} (of 255)");
    assert!(
        coch_diff > 10.0,
        "the cochleagram looks the same for music and speech ({coch_diff:.1})"
    );
    let map_music = region(&music_shot, &music_probe, "map");
    let map_speech = region(&speech_shot, &speech_probe, "map");
    let map_diff = map_music.mean_abs_diff(&map_speech);
    let (a, b) = (
        map_music.centroid_near(ACCENT, 40).unwrap(),
        map_speech.centroid_near(ACCENT, 40).unwrap(),
    );
    let moved = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    println!("map: mean difference {map_diff:.1}, the trail's centre moved {moved:.0} px ({a:?} → {b:?})");
    assert!(
        map_diff > 0.5 && moved > 15.0,
        "the map shows the same place for music and speech"
    );
    assert!(
        speech_probe.stat("frames") > 30.0,
        "the editor hardly drew: {speech_probe:?}"
    );

    // Resizing the window is saved with the plugin state.
    editor.set_size(&mut host, 1120, 760).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saved = String::new();
    while Instant::now() < deadline {
        editor.pump(&mut host);
        std::thread::sleep(Duration::from_millis(100));
        saved = String::from_utf8_lossy(&host.save_state().unwrap()).into_owned();
        if saved.contains("1120") && saved.contains("760") {
            break;
        }
    }
    assert!(
        saved.contains("editor-size") && saved.contains("1120") && saved.contains("760"),
        "the new size is not in the state: {saved}"
    );
    let resized = Probe::wait(&probe_path, Duration::from_secs(10), |p| {
        p.0["screen"][2].as_f64() == Some(1120.0)
    })
    .unwrap();
    editor
        .screenshot()
        .unwrap()
        .save_png(&dir.join("clap-resized.png"))
        .unwrap();
    println!("resized editor probe screen: {}", resized.0["screen"]);

    if let Some(editor) = embedded.take() {
        editor.close(&mut host);
    }
    host.deactivate();
    drop(host);
    println!("screenshots in {}", dir.display());
}

/// Starts the bundled standalone with the dummy back end on `server`, its editor writing probe
/// JSON to `probe_path` and its stderr to `<screenshot dir>/<log_name>-stderr.log`.
fn start_standalone(
    server: &XServer,
    probe_path: &Path,
    log_name: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> std::process::Child {
    let standalone = echoic_host_tests::bundle_dir().join("Echoic");
    assert!(
        standalone.is_file(),
        "{} is missing: run `cargo xtask bundle echoic` first",
        standalone.display()
    );
    let _ = std::fs::remove_file(probe_path);
    let log = screenshot_dir().join(format!("{log_name}-stderr.log"));
    std::process::Command::new(&standalone)
        .args(["-b", "dummy"])
        .env("DISPLAY", server.display())
        .env("ECHOIC_EDITOR_PROBE", probe_path)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("the standalone starts")
}

/// Closes the standalone's window as a user does and waits (up to 20 s) for it to exit cleanly.
fn close_standalone(x11: &X11, window: u32, app: &mut std::process::Child) {
    x11.request_close(window).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = app.try_wait().unwrap() {
            assert!(status.success(), "the standalone exited with {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the standalone did not exit after its window was closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// After a standalone test body (`result`): kills the standalone if it still runs and, if the
/// body failed, prints its stderr (from [`start_standalone`]'s `log_name`) and fails the same way.
fn finish_standalone(
    mut app: std::process::Child,
    result: std::thread::Result<()>,
    log_name: &str,
) {
    if app.try_wait().ok().flatten().is_none() {
        let _ = app.kill();
        let _ = app.wait();
    }
    if let Err(panic) = result {
        let log = screenshot_dir().join(format!("{log_name}-stderr.log"));
        eprintln!(
            "standalone stderr:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn standalone_learn_button_puts_a_marker_on_the_map() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = XServer::start().expect("an X server");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let probe_path = dir.join("probe-standalone.json");
    let mut app = start_standalone(&server, &probe_path, "standalone", &[]);
    let x11 = X11::connect(server.display()).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let window = x11
            .wait_for_window("Echoic", Duration::from_secs(30))
            .expect("the standalone's window");
        // Wait until the listener runs (the memory has filled, embeddings flow).
        let probe = Probe::wait(&probe_path, Duration::from_secs(30), |p| p.hops() > 200).unwrap();
        assert!(!probe.learned(0), "nothing is learned at start");
        let map = probe.rect("map").unwrap();
        let before = x11.screenshot(window).unwrap();
        before
            .save_png(&dir.join("standalone-before-learn.png"))
            .unwrap();
        let amber_before = before.crop(map).count_near(SOUND_1, 24);

        let (x, y) = centre(probe.learn_button(0).unwrap());
        x11.click(window, x, y).unwrap();
        // The capture lasts `learn_seconds` (2 s) once it starts.
        let learned = Probe::wait(&probe_path, Duration::from_secs(15), |p| p.learned(0))
            .expect("sound 1 gets learned");
        std::thread::sleep(Duration::from_millis(500));
        let after = x11.screenshot(window).unwrap();
        after.save_png(&dir.join("standalone-learned.png")).unwrap();
        let amber_after = after.crop(map).count_near(SOUND_1, 24);
        println!("map pixels in sound 1's colour: {amber_before} before learning, {amber_after} after; on the map at {}", learned.0["learned_on_map"][0]);
        assert!(
            learned.0["learned_on_map"][0].is_array(),
            "the learned sound has no map position"
        );
        assert!(
            amber_after > amber_before + 100,
            "no marker for sound 1 appeared ({amber_before} → {amber_after})"
        );

        let (x, y) = centre(learned.clear_button(0).unwrap());
        x11.click(window, x, y).unwrap();
        Probe::wait(&probe_path, Duration::from_secs(10), |p| !p.learned(0))
            .expect("sound 1 is cleared");
        std::thread::sleep(Duration::from_millis(500));
        let cleared = x11.screenshot(window).unwrap();
        let amber_cleared = cleared.crop(map).count_near(SOUND_1, 24);
        println!("after clearing: {amber_cleared}");
        assert!(
            amber_cleared + 100 < amber_after,
            "the marker stayed after clearing"
        );
        let stats = Probe::read(&probe_path).unwrap();
        println!(
            "standalone editor: {:.1} fps, ui() mean {:.2} ms, frame interval mean {:.1} ms",
            stats.stat("fps"),
            stats.stat("ui_ms_mean"),
            stats.stat("interval_ms_mean")
        );

        close_standalone(&x11, window, &mut app);
    }));
    finish_standalone(app, result, "standalone");
}

/// A model file for the chooser tests: a copy of the shipped model under another name.
fn model_dir(name: &str) -> std::path::PathBuf {
    let dir = screenshot_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = echoic_host_tests::bundle::workspace_root()
        .join("models")
        .join("echoic-default.safetensors");
    std::fs::copy(&shipped, dir.join("copy-of-default.safetensors")).unwrap();
    std::fs::write(dir.join("broken.safetensors"), b"this is not a model").unwrap();
    dir
}

/// The JSON document of a saved state.
fn state_json(state: &[u8]) -> serde_json::Value {
    state_document(state).expect("the state is a length and JSON")
}

#[test]
fn saved_model_path_is_used_and_a_missing_file_falls_back_to_the_built_in_model() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = XServer::start().expect("an X server");
    let dir = model_dir("models-saved-path");
    let probe_path = screenshot_dir().join("probe-clap-model.json");
    let _ = std::fs::remove_file(&probe_path);
    let _env = EnvGuard::set(&[
        ("DISPLAY", server.display().as_ref()),
        ("ECHOIC_EDITOR_PROBE", probe_path.as_os_str()),
    ]);
    let mut embedded: Option<EmbeddedEditor> = None;
    let mut host = EchoicHost::new().unwrap();
    let state = host.save_state().unwrap();
    let good = dir
        .join("copy-of-default.safetensors")
        .display()
        .to_string();

    // A saved model file that exists is loaded at activation.
    host.load_state(&with_model_path(&state, &good)).unwrap();
    host.activate(AudioConfig::new(48_000.0, BLOCK as u32, 1))
        .unwrap();
    let editor = embedded
        .insert(EmbeddedEditor::open(&mut host, server.display()).expect("the editor opens"));
    let probe = Probe::wait(&probe_path, Duration::from_secs(20), |p| {
        p.0["model_file"].is_string()
    })
    .expect("the saved file is in use");
    assert_eq!(probe.0["model_file"].as_str(), Some(good.as_str()));
    assert!(probe.0["model_note"].is_null(), "{probe:?}");
    editor.pump(&mut host);

    // One that has gone: the built-in model, and a note saying so.
    host.deactivate();
    host.load_state(&with_model_path(&state, "/nonexistent/gone.safetensors"))
        .unwrap();
    host.activate(AudioConfig::new(48_000.0, BLOCK as u32, 1))
        .unwrap();
    let probe = Probe::wait(&probe_path, Duration::from_secs(20), |p| {
        p.0["model_note"].is_string()
    })
    .expect("a note about the missing file");
    println!("note: {}", probe.0["model_note"]);
    assert!(
        probe.0["model_file"].is_null(),
        "the built-in model is in use"
    );
    assert_eq!(probe.0["model"].as_str(), Some("echoic-default"));
    assert!(probe.0["model_note"].as_str().unwrap().contains("gone"));
    let silence = vec![0.0f32; 48_000];
    play(&mut host, embedded.as_mut(), &silence);
    embedded
        .as_ref()
        .unwrap()
        .screenshot()
        .unwrap()
        .save_png(&screenshot_dir().join("clap-model-gone.png"))
        .unwrap();
    // The path stays saved: when the file comes back, the session finds it again.
    let saved = state_json(&host.save_state().unwrap());
    assert!(
        saved["fields"]["model-path"]
            .as_str()
            .unwrap()
            .contains("gone.safetensors"),
        "{saved}"
    );

    if let Some(editor) = embedded.take() {
        editor.close(&mut host);
    }
    host.deactivate();
}

#[test]
fn standalone_model_chooser_refuses_a_broken_file_and_loads_a_good_one() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = XServer::start().expect("an X server");
    let dir = screenshot_dir();
    let models = model_dir("models-chooser");
    let probe_path = dir.join("probe-standalone-models.json");
    let mut app = start_standalone(
        &server,
        &probe_path,
        "standalone-models",
        &[("ECHOIC_MODELS_DIR", models.as_os_str())],
    );
    let x11 = X11::connect(server.display()).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let window = x11
            .wait_for_window("Echoic", Duration::from_secs(30))
            .expect("the standalone's window");
        let probe = Probe::wait(&probe_path, Duration::from_secs(30), |p| {
            p.hops() > 50 && p.model_entry("broken").is_some()
        })
        .expect("the chooser lists the files");
        assert!(
            probe.0["model_file"].is_null(),
            "the built-in model at start"
        );

        let (x, y) = centre(probe.model_entry("broken").unwrap());
        x11.click(window, x, y).unwrap();
        let refused = Probe::wait(&probe_path, Duration::from_secs(15), |p| {
            p.0["model_error"].is_string()
        })
        .expect("an error for the broken file");
        println!("error shown: {}", refused.0["model_error"]);
        assert!(
            refused.0["model_file"].is_null(),
            "the previous (built-in) model stays in use"
        );
        assert_eq!(refused.0["model"].as_str(), Some("echoic-default"));
        std::thread::sleep(Duration::from_millis(300));
        x11.screenshot(window)
            .unwrap()
            .save_png(&dir.join("standalone-broken-model.png"))
            .unwrap();

        let (x, y) = centre(refused.model_entry("copy-of-default").unwrap());
        x11.click(window, x, y).unwrap();
        let loaded = Probe::wait(&probe_path, Duration::from_secs(15), |p| {
            p.0["model_file"].is_string()
        })
        .expect("the good file is loaded");
        assert!(loaded.0["model_file"]
            .as_str()
            .unwrap()
            .ends_with("copy-of-default.safetensors"));
        assert!(loaded.0["model_error"].is_null(), "{loaded:?}");
        // The worker installed it and it listens with these settings.
        let listening = Probe::wait(&probe_path, Duration::from_secs(10), |p| {
            p.0["refused"] == false && p.hops() > loaded.hops() + 100
        })
        .unwrap();
        println!(
            "model in use: {} from {}",
            listening.0["model"], listening.0["model_file"]
        );
        x11.screenshot(window)
            .unwrap()
            .save_png(&dir.join("standalone-chosen-model.png"))
            .unwrap();

        close_standalone(&x11, window, &mut app);
    }));
    finish_standalone(app, result, "standalone-models");
}

/// Damaged copies of the shipped model, one per kind of damage the loader must refuse, and a
/// word the error shown for each must contain. Each damage keeps the rest of the file intact, so
/// that only the check under test can catch it. The names sort first in the chooser's list, so
/// that an error banner above it cannot push them out of the window.
fn damaged_models(dir: &Path) -> Vec<(String, &'static str)> {
    let shipped = std::fs::read(
        echoic_host_tests::bundle::workspace_root()
            .join("models")
            .join("echoic-default.safetensors"),
    )
    .unwrap();
    let header_len = u64::from_le_bytes(shipped[..8].try_into().unwrap()) as usize;
    let shipped_version = echoic_core::listener::Listener::from_bytes(&shipped)
        .unwrap()
        .metadata()
        .format_version;
    let edit_header = |from: &str, to: &str| {
        assert_eq!(
            from.len(),
            to.len(),
            "a same-length edit keeps the header's length field right"
        );
        let header = std::str::from_utf8(&shipped[8..8 + header_len]).unwrap();
        assert!(
            header.contains(from),
            "the shipped model's header has no {from}"
        );
        let mut bytes = shipped.clone();
        bytes[8..8 + header_len].copy_from_slice(header.replacen(from, to, 1).as_bytes());
        bytes
    };
    let mut nan = shipped.clone();
    // The first weight (decoder.0.bias[0]) becomes a quiet NaN.
    nan[8 + header_len..8 + header_len + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let files = [
        (
            "bad-truncated",
            shipped[..shipped.len() / 2].to_vec(),
            "not a listener model file",
        ),
        ("bad-random", random, "not a listener model file"),
        (
            "bad-version",
            edit_header(
                &format!(r#"\"format_version\":{shipped_version},"#),
                r#"\"format_version\":9,"#,
            ),
            "version 9",
        ),
        (
            "bad-shape",
            edit_header(r#""shape":[250,200]"#, r#""shape":[200,250]"#),
            "shape",
        ),
        ("bad-nan", nan, "NaN"),
    ];
    files
        .into_iter()
        .map(|(name, bytes, expect)| {
            std::fs::write(dir.join(format!("{name}.safetensors")), bytes).unwrap();
            (name.to_owned(), expect)
        })
        .collect()
}

#[test]
fn clap_editor_refuses_damaged_models_keeps_the_previous_one_and_audio_passes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = XServer::start().expect("an X server");
    let dir = model_dir("models-damaged");
    let damaged = damaged_models(&dir);
    let probe_path = screenshot_dir().join("probe-clap-damaged.json");
    let _ = std::fs::remove_file(&probe_path);
    let _env = EnvGuard::set(&[
        ("DISPLAY", server.display().as_ref()),
        ("ECHOIC_EDITOR_PROBE", probe_path.as_os_str()),
        ("ECHOIC_MODELS_DIR", dir.as_os_str()),
    ]);
    let (music, rate) = recording("music_armygeddon.wav");
    let mut embedded: Option<EmbeddedEditor> = None;
    let mut host = EchoicHost::new().unwrap();
    let state = host.save_state().unwrap();
    let good = dir
        .join("copy-of-default.safetensors")
        .display()
        .to_string();

    // The previous model: a file chosen earlier and saved with the session.
    host.load_state(&with_model_path(&state, &good)).unwrap();
    host.activate(AudioConfig::new(rate, BLOCK as u32, 1))
        .unwrap();
    let editor = embedded
        .insert(EmbeddedEditor::open(&mut host, server.display()).expect("the editor opens"));
    let mut probe = Probe::wait(&probe_path, Duration::from_secs(20), |p| {
        p.0["model_file"].as_str() == Some(good.as_str())
            && damaged
                .iter()
                .all(|(name, _)| p.model_entry(name).is_some())
    })
    .expect("the saved file is in use and the chooser lists the damaged files");

    // Each damaged file, chosen while music plays: an error naming the damage, the previous
    // model still in use and still listening, and the audio untouched throughout (`play`).
    let mut position = 0;
    let quarter = (0.25 * rate) as usize;
    for (name, expect) in &damaged {
        // Where the entry is once the layout has settled (a banner above the list moves it):
        // the same place in two probes a second apart.
        let mut seen = probe.model_entry(name);
        for _ in 0..20 {
            for _ in 0..4 {
                play(
                    &mut host,
                    Some(&mut *editor),
                    &music[position..position + quarter],
                );
                position = (position + quarter) % (music.len() - quarter);
            }
            probe = Probe::read(&probe_path).unwrap();
            let now = probe.model_entry(name);
            if now.is_some() && now == seen {
                break;
            }
            seen = now;
        }
        let (x, y) = centre(seen.unwrap());
        editor.x11.click(editor.parent, x, y).unwrap();
        let hops_before = probe.hops();
        let mut refused = None;
        for _ in 0..40 {
            let chunk = &music[position..position + quarter];
            position = (position + chunk.len()) % (music.len() - chunk.len());
            play(&mut host, Some(&mut *editor), chunk);
            let p = Probe::read(&probe_path).unwrap();
            if p.0["model_error"]
                .as_str()
                .is_some_and(|e| e.contains(name.as_str()))
                && p.hops() > hops_before + 50
            {
                refused = Some(p);
                break;
            }
        }
        let p = refused.unwrap_or_else(|| {
            let _ = editor
                .screenshot()
                .map(|shot| shot.save_png(&screenshot_dir().join("clap-bad-model-failed.png")));
            panic!(
                "no error shown for {name}, or the listener stopped: {:?}",
                Probe::read(&probe_path)
            )
        });
        let error = p.0["model_error"].as_str().unwrap();
        println!("{name}: {error}");
        assert!(
            error.contains(expect),
            "the error for {name} does not say \"{expect}\": {error}"
        );
        assert!(error.contains("previous model stays in use"), "{error}");
        assert_eq!(
            p.0["model_file"].as_str(),
            Some(good.as_str()),
            "the previous model was replaced after {name}"
        );
        assert_eq!(p.0["refused"], false, "{p:?}");
        probe = p;
    }
    editor
        .screenshot()
        .unwrap()
        .save_png(&screenshot_dir().join("clap-damaged-model.png"))
        .unwrap();
    let saved = state_json(&host.save_state().unwrap());
    assert_eq!(
        saved["fields"]["model-path"].as_str(),
        Some(serde_json::to_string(&Some(&good)).unwrap().as_str()),
        "the saved choice changed"
    );

    // A session saved with a file that has since been damaged: the built-in model, a note that
    // says why, and the choice kept in the state so that a repaired file is found again.
    let nan_path = dir.join("bad-nan.safetensors").display().to_string();
    host.deactivate();
    host.load_state(&with_model_path(&state, &nan_path))
        .unwrap();
    host.activate(AudioConfig::new(rate, BLOCK as u32, 1))
        .unwrap();
    let note = Probe::wait(&probe_path, Duration::from_secs(20), |p| {
        p.0["model_note"]
            .as_str()
            .is_some_and(|n| n.contains("bad-nan"))
    })
    .expect("a note about the damaged file");
    println!("note: {}", note.0["model_note"]);
    assert!(
        note.0["model_note"]
            .as_str()
            .unwrap()
            .contains("failed to load"),
        "{note:?}"
    );
    assert!(
        note.0["model_file"].is_null(),
        "the built-in model is in use"
    );
    play(&mut host, embedded.as_mut(), &music[..rate as usize]);
    // The probe is written at most twice a second: wait for one written after the music.
    Probe::wait(&probe_path, Duration::from_secs(10), |p| {
        p.hops() > note.hops() + 50
    })
    .expect("the built-in model listens");
    let saved = state_json(&host.save_state().unwrap());
    assert!(
        saved["fields"]["model-path"]
            .as_str()
            .unwrap()
            .contains("bad-nan"),
        "{saved}"
    );

    if let Some(editor) = embedded.take() {
        editor.close(&mut host);
    }
    host.deactivate();
}

/// Settings past what Echoic serves (every structural knob at its maximum: Steps 16 with
/// Dilation 4 asks for a look-back of 4^15 frames) are fitted to the nearest usable ones while
/// the instance plays, and the editor's banner names what was adjusted.
#[test]
fn extreme_settings_are_fitted_and_the_banner_names_what_changed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = XServer::start().expect("an X server");
    std::fs::create_dir_all(screenshot_dir()).unwrap();
    let probe_path = screenshot_dir().join("probe-clap-adjusted.json");
    let _ = std::fs::remove_file(&probe_path);
    let _env = EnvGuard::set(&[
        ("DISPLAY", server.display().as_ref()),
        ("ECHOIC_EDITOR_PROBE", probe_path.as_os_str()),
    ]);
    let mut host = EchoicHost::new().unwrap();
    for name in ["Bands", "Steps", "Dilation"] {
        let param = host.param_by_name(name).unwrap().expect(name);
        host.set_param(param.id, param.max).unwrap();
    }
    let (music, rate) = recording("music_armygeddon.wav");
    host.activate(AudioConfig::new(rate, BLOCK as u32, 1))
        .unwrap();
    let mut editor = EmbeddedEditor::open(&mut host, server.display()).expect("the editor opens");
    play(&mut host, Some(&mut editor), &music[..rate as usize]);
    let expected = "Listening settings adjusted: Steps 16 -> 13, Dilation 4 -> 2: the echoic \
                    memory reaches back at most 4096 frames; now 4096 frames, 40.96 s";
    let probe = Probe::wait(&probe_path, Duration::from_secs(20), |p| p.hops() > 0)
        .expect("the editor shows hops from the fitted settings");
    let banner: Vec<&str> = probe.0["banner"]
        .as_array()
        .expect("the probe lists the banner")
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    println!("banner: {banner:?}");
    assert!(banner.contains(&expected), "{banner:?}");
    editor
        .screenshot()
        .unwrap()
        .save_png(&screenshot_dir().join("clap-settings-adjusted.png"))
        .unwrap();
    editor.close(&mut host);
    host.deactivate();
}

/// The last value sent on controller `cc` (channel 1) before sample `at`, i.e. the value a
/// mapped parameter holds there; 0 before any.
fn held_cc(midi: &[MidiMessage], cc: u8, at: u64) -> f32 {
    midi.iter()
        .rfind(|m| m.data[0] == 0xB0 && m.data[1] == cc && m.sample < at)
        .map_or(0.0, |m| f32::from(m.data[2]) / 127.0)
}

/// The adapted listener the saved state holds, if any (its `adapted-listener` field is stored
/// as the JSON of an `Option<String>`).
fn saved_adapted_listener(host: &mut EchoicHost) -> Option<String> {
    let saved = state_json(&host.save_state().unwrap());
    let field = saved["fields"]["adapted-listener"].as_str()?;
    serde_json::from_str::<Option<String>>(field).unwrap()
}

/// What a saved adapted listener records of its adaptation: decoded against the shipped model,
/// the built-in one it was adapted from.
fn adaptation_of(saved: &str) -> echoic_core::listener::format::AdaptedFrom {
    let shipped = std::fs::read(
        echoic_host_tests::bundle::workspace_root()
            .join("models")
            .join("echoic-default.safetensors"),
    )
    .unwrap();
    let base = echoic_core::listener::Listener::from_bytes(&shipped).unwrap();
    let (meta, _) = echoic_core::listener::adapt::saved::decode(saved, base.id(), base.weights())
        .expect("the saved adapted listener decodes against the built-in model");
    meta.provenance
        .adapted_from
        .expect("an adapted listener says what it was adapted from")
}

/// *Adapt* from the embedded editor while recordings play in real time: a click on the Adapt
/// button (a synthetic X event) after ~30 s of music and speech shows a progress bar, the adapted
/// listener is swapped in (its name says so, the saved state keeps it), the learned music still
/// reads high on its similarity output and the speech low, and Revert undoes it.
///
/// Real time matters here besides the editor: the adaptation thread runs at the OS's lowest
/// priority, so a test that kept the cores busy would starve it.
#[test]
fn embedded_editor_adapts_and_the_learned_sound_stays_on_its_sound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = XServer::start().expect("an X server");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let probe_path = dir.join("probe-clap-adapt.json");
    let _ = std::fs::remove_file(&probe_path);
    let _env = EnvGuard::set(&[
        ("DISPLAY", server.display().as_ref()),
        ("ECHOIC_EDITOR_PROBE", probe_path.as_os_str()),
    ]);
    let (music, rate) = recording("music_armygeddon.wav");
    let (speech, _) = recording("speech_june.wav");
    let mut embedded: Option<EmbeddedEditor> = None;
    let mut host = EchoicHost::new().unwrap();
    // Slot 4 follows the similarity to learned sound 1 on CC 23.
    const CC: u8 = 23;
    let params = host.params().unwrap();
    let slot_4 = |name: &str| {
        params
            .iter()
            .find(|p| p.name == name && p.module.contains("Outputs 4"))
            .unwrap_or_else(|| panic!("no {name} in slot 4"))
            .id
    };
    host.set_param(slot_4("On"), 1.0).unwrap();
    host.set_param(slot_4("Source"), 8.0).unwrap(); // SAVED_SOURCES[8] = similarity to sound 1
    host.activate(AudioConfig::new(rate, BLOCK as u32, 1))
        .unwrap();
    let editor = embedded
        .insert(EmbeddedEditor::open(&mut host, server.display()).expect("the editor opens"));
    Probe::wait(&probe_path, Duration::from_secs(20), |p| {
        p.stat("frames") > 0.0
    })
    .expect("the editor draws");
    let mut midi = Vec::new();
    // Plays a sound, keeps its MIDI, and returns the similarity held at its end.
    let mut listen = |host: &mut EchoicHost, editor: &mut EmbeddedEditor, sound: &[f32]| {
        play(host, Some(editor), sound);
        midi.extend(host.take_midi());
        held_cc(&midi, CC, host.frames_processed())
    };

    // History: music and speech in turn. Sound 1 is learned on the third music, clicked 1.5 s
    // in (once the echoic memory is full of it); the capture takes the next 2 s.
    // The history ends with speech: adaptation judges its epochs on the last tenth of the
    // history, and the model has more to learn about this speech than about this music, so the
    // tuned weights do change (on a music ending the first epochs need not beat the base, and
    // then the base's weights are kept, which would make the checks after the swap prove
    // nothing).
    for sound in [&music, &speech, &music, &speech] {
        listen(&mut host, editor, sound);
    }
    let split = (1.5 * rate) as usize;
    listen(&mut host, editor, &music[..split]);
    let probe = Probe::read(&probe_path).unwrap();
    let (x, y) = centre(probe.learn_button(0).unwrap());
    editor.x11.click(editor.parent, x, y).unwrap();
    listen(&mut host, editor, &music[split..]);
    let music_before = listen(&mut host, editor, &music);
    let speech_before = listen(&mut host, editor, &speech);
    let probe = Probe::wait(&probe_path, Duration::from_secs(5), |p| {
        p.learned(0) && p.rect("adapt_button").is_some()
    })
    .expect("sound 1 is learned and the Adapt panel is drawn");
    let heard = host.frames_processed() as f64 / rate;
    println!(
        "before adapting: {heard:.1} s heard; similarity to sound 1 held {speech_before:.2} on \
         speech, {music_before:.2} on the music"
    );
    assert!(heard >= 20.0);
    let panel = probe.rect("adapt").unwrap();
    let idle_panel = editor.screenshot().unwrap().crop(panel);

    // Adapt, while the recordings go on playing in turn, in quarter seconds.
    let tape: Vec<f32> = [&speech[..], &music[..]].concat();
    let quarter = (0.25 * rate) as usize;
    let mut position = 0;
    let (x, y) = centre(probe.rect("adapt_button").unwrap());
    editor.x11.click(editor.parent, x, y).unwrap();
    let clicked = Instant::now();
    let (mut bar_seen, mut progress_seen, mut swapped) = (None, None, None);
    while clicked.elapsed() < Duration::from_secs(120) {
        if position + quarter > tape.len() {
            position = 0;
        }
        listen(&mut host, editor, &tape[position..position + quarter]);
        position += quarter;
        let p = Probe::read(&probe_path).unwrap();
        if let Some(bar) = p.rect("adapt_progress") {
            bar_seen.get_or_insert(clicked.elapsed());
            if progress_seen.is_none() {
                // The bar has filled some way: the shot shows progress, not just a bar.
                let shot = editor.screenshot().unwrap();
                let filled = shot.crop(bar).count_near(ACCENT, 40);
                if filled > 20 {
                    let diff = shot.crop(panel).mean_abs_diff(&idle_panel);
                    println!(
                        "progress bar at {:.1} s: {filled} filled pixels; the panel differs from \
                         before by {diff:.1}",
                        clicked.elapsed().as_secs_f32()
                    );
                    assert!(diff > 1.0, "the Adapt panel looks as before ({diff:.1})");
                    shot.save_png(&dir.join("clap-adapting.png")).unwrap();
                    progress_seen = Some(clicked.elapsed());
                }
            }
        }
        if p.0["model"]
            .as_str()
            .is_some_and(|m| m.contains("(adapted)"))
        {
            swapped = Some((clicked.elapsed(), p));
            break;
        }
    }
    let Some((swap_time, adapted)) = swapped else {
        let _ = editor
            .screenshot()
            .map(|shot| shot.save_png(&dir.join("clap-adapt-failed.png")));
        panic!(
            "no adapted listener within 120 s of the click (progress bar seen: {bar_seen:?}): {:?}",
            Probe::read(&probe_path)
        );
    };
    println!(
        "Adapt clicked after {heard:.1} s of listening: progress bar after {:.1} s, swapped in \
         after {:.1} s as {}",
        bar_seen.unwrap_or_default().as_secs_f32(),
        swap_time.as_secs_f32(),
        adapted.0["model"]
    );
    assert!(
        progress_seen.is_some(),
        "no progress was seen while adapting (bar first seen at {bar_seen:?})"
    );
    let saved =
        saved_adapted_listener(&mut host).expect("the saved state has the adapted listener");
    let from = adaptation_of(&saved);
    println!(
        "saved adapted listener: {} characters; adapted on {:.1} s, held-out loss {:.5} -> {:.5}, \
         epoch {} of {}",
        saved.len(),
        from.history_seconds,
        from.held_out_before,
        from.held_out_after,
        from.best_epoch,
        from.epochs
    );
    assert!(
        from.history_seconds >= 20.0,
        "adapted on {:.1} s of history only",
        from.history_seconds
    );
    assert!(
        from.best_epoch > 0 && from.held_out_after < from.held_out_before,
        "adaptation kept the base's weights, so what follows would not test a changed listener: \
         {from:?}"
    );

    // The learned sound followed the listener: its similarity still tells the music from speech.
    let speech_after = listen(&mut host, editor, &speech);
    let music_after = listen(&mut host, editor, &music);
    let shot = editor.screenshot().unwrap();
    shot.save_png(&dir.join("clap-adapted.png")).unwrap();
    let probe = Probe::read(&probe_path).unwrap();
    println!(
        "after adapting: similarity to sound 1 held {speech_after:.2} on speech, \
         {music_after:.2} on the music; sound 1 at {} on the map",
        probe.0["learned_on_map"][0]
    );
    assert!(probe.learned(0), "sound 1 was lost: {probe:?}");
    assert!(
        music_after > 0.6,
        "the learned music reads {music_after:.2} after adapting"
    );
    assert!(
        speech_after < 0.3,
        "speech reads {speech_after:.2} on the music's similarity after adapting"
    );

    // Revert: the model chosen again, and nothing adapted left in the state.
    let (x, y) = centre(probe.rect("adapt_revert").unwrap());
    editor.x11.click(editor.parent, x, y).unwrap();
    let clicked = Instant::now();
    let mut reverted = None;
    while clicked.elapsed() < Duration::from_secs(30) {
        listen(&mut host, editor, &music[..quarter]);
        let p = Probe::read(&probe_path).unwrap();
        if p.0["model"].as_str() == Some("echoic-default")
            && saved_adapted_listener(&mut host).is_none()
        {
            reverted = Some(clicked.elapsed());
            break;
        }
    }
    let reverted = reverted.expect("Revert goes back to the chosen model");
    println!("reverted after {:.1} s", reverted.as_secs_f32());

    if let Some(editor) = embedded.take() {
        editor.close(&mut host);
    }
    host.deactivate();
}
