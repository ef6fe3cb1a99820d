//! *Adapt* through the real plugin in the CLAP test host (issue 15's "No glitch" and "Safe"
//! targets): the listener is fine-tuned on a background thread while a recording plays, and
//! swapped in at a hop boundary.
//!
//! - While it adapts and swaps, the audio thread stays clean (the debug bundle's
//!   `assert_process_allocs` aborts this whole process on any allocation in `process`), audio
//!   passes bit for bit, every block's MIDI events are in time order inside the block, and no CC
//!   jumps further per hop than its smoothing allows.
//! - The adapted listener is saved with the session and reopens adapted; a damaged one falls
//!   back to the chosen model, with the rest of the session intact and a note saying so.
//! - One adapted from a model file chosen in the editor is saved against that file; while the
//!   file is gone the built-in model plays with a note, and the adaptation stays in the session
//!   until the file returns.
//! - Adapting on too little history, on silence, while the listening layout changes, and
//!   deactivating meanwhile, never harm the host.
//!
//! The adaptation thread runs at `SCHED_IDLE`: it gets a core only when nothing else wants one.
//! So the blocks are paced in real time, as a DAW plays them, leaving the machine's idle time to
//! it; played faster than real time on two cores it would starve.
//!
//! Needs the debug bundle: `cargo xtask bundle echoic` (or `ECHOIC_BUNDLE_DIR`).

use echoic_core::listener::adapt::saved;
use echoic_core::listener::{format, Listener, DEFAULT_MODEL};
use echoic_host_tests::gui::{EmbeddedEditor, Probe, XServer};
use echoic_host_tests::{
    passed_through, recording, resampled, state_bytes, state_document, with_model_path,
    AudioConfig, EchoicHost, MidiMessage, ParamInfo,
};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 256;
/// The default 10 ms hop at 48 kHz, in samples.
const HOP: usize = 480;
/// The least common multiple of the block and the hop: a signal played in whole chunks from a
/// hop boundary ends on one, so that two instances can hear the same audio on the same hops.
const CHUNK: usize = 3_840;
/// The CCs the default slots send (slots 1 to 3, axes 1 to 3, channel 1); the rest are off.
const ENABLED_CCS: [u8; 3] = [20, 21, 22];
/// How far a default slot's value may move in one hop: its one-pole smoothing (50 ms at a 10 ms
/// hop) moves at most `1 − exp(−0.2)` = 0.181 of the full range, 23.0 steps of 127. The
/// emitter's rounding (0.5) and hysteresis (0.25 beyond it) add under a step between two
/// messages, whatever the hops between them, so no two consecutive messages differ by more.
const MAX_CC_STEP: i32 = 24;
/// Listening history before *Adapt* is pressed: adaptation needs 16.3 s.
const HISTORY_SECONDS: f64 = 20.0;
/// The longest any adaptation may take here (seconds of CPU on an otherwise idle core; the
/// whole machine may be busy with other work, which the idle-priority thread yields to).
const ADAPT_TIMEOUT: Duration = Duration::from_secs(180);
/// The audio two instances are compared on, and the part of it skipped before comparing: the
/// echoic memory looks 1.28 s back.
const COMPARE_SECONDS: f64 = 6.0;
const SETTLE_SECONDS: f64 = 1.5;

/// The tests share the machine's two cores with the idle-priority adaptation thread: run them
/// one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn chunks(seconds: f64) -> usize {
    (seconds * RATE / CHUNK as f64).round() as usize
}

/// What is played: a fixture recording at 48 kHz, looped, or silence.
struct Source {
    samples: Vec<f32>,
    at: usize,
    silent: bool,
}

impl Source {
    fn recording(name: &str) -> Self {
        let (samples, rate) = recording(name);
        Self {
            samples: resampled(&samples, rate, RATE),
            at: 0,
            silent: false,
        }
    }

    fn music() -> Self {
        Self::recording("music_armygeddon.wav")
    }

    /// What the shared adaptation listens to: the speech fixture, on which the shipped listener
    /// adapts (held-out loss −23 % on 20 s of it, offline). On 20 s of the looped music no epoch
    /// beats the shipped listener, so the swap would put in the very same weights.
    fn speech() -> Self {
        Self::recording("speech_june.wav")
    }

    fn silence() -> Self {
        Self {
            samples: Vec::new(),
            at: 0,
            silent: true,
        }
    }

    /// Starts the recording over.
    fn restart(&mut self) {
        self.at = 0;
    }

    fn fill(&mut self, out: &mut [f32]) {
        if self.silent {
            out.fill(0.0);
            return;
        }
        for s in out {
            *s = self.samples[self.at];
            self.at = (self.at + 1) % self.samples.len();
        }
    }
}

/// One plugin instance, active in mono at 48 kHz with 256-sample blocks, played in real time.
/// Every block is checked as it passes: the audio must leave bit for bit, and the block's
/// output events must be in time order within the block.
struct Player {
    host: EchoicHost,
    input: Vec<f32>,
    output: Vec<f32>,
    /// Every MIDI message since activation, timed from activation.
    midi: Vec<MidiMessage>,
    blocks: usize,
    /// Blocks whose output events were out of order or outside the block.
    disorder: Vec<String>,
    /// Wall time and frame count that pacing counts from.
    clock: (Instant, u64),
}

impl Player {
    fn new(host: EchoicHost) -> Self {
        let mut host = host;
        host.activate(AudioConfig::new(RATE, BLOCK as u32, 1))
            .expect("activate at 48 kHz, mono");
        Self {
            host,
            input: vec![0.0; BLOCK],
            output: vec![0.0; BLOCK],
            midi: Vec::new(),
            blocks: 0,
            disorder: Vec::new(),
            clock: (Instant::now(), 0),
        }
    }

    fn fresh() -> Self {
        Self::new(EchoicHost::new().expect("instantiate Echoic"))
    }

    fn frames(&self) -> u64 {
        self.host.frames_processed()
    }

    /// Processes one block of `len` samples from `source`, checks it, then sleeps until its
    /// audio time (a host that fell behind by more than half a second starts counting anew
    /// rather than rushing).
    fn block(&mut self, source: &mut Source, len: usize) {
        let input = &mut self.input[..len];
        source.fill(input);
        self.host
            .process_block(&[&*input], &mut [&mut self.output[..len]])
            .unwrap_or_else(|e| panic!("block {}: {e}", self.blocks));
        for (i, (x, y)) in input.iter().zip(&self.output[..len]).enumerate() {
            assert_eq!(
                passed_through(*x).to_bits(),
                y.to_bits(),
                "block {} sample {i}: the audio did not pass through untouched",
                self.blocks
            );
        }
        let times = self.host.last_output_event_times();
        if times.windows(2).any(|w| w[1] < w[0]) || times.iter().any(|&t| t as usize >= len) {
            self.disorder
                .push(format!("block {} ({len} samples): {times:?}", self.blocks));
        }
        self.midi.extend(self.host.take_midi());
        self.blocks += 1;
        let (since, from) = self.clock;
        let due = Duration::from_secs_f64((self.frames() - from) as f64 / RATE);
        match due.checked_sub(since.elapsed()) {
            Some(wait) => std::thread::sleep(wait),
            None if since.elapsed() > due + Duration::from_millis(500) => {
                self.clock = (Instant::now(), self.frames());
            }
            None => {}
        }
    }

    /// Plays `n` chunks (15 blocks each).
    fn play(&mut self, source: &mut Source, n: usize) {
        for _ in 0..n * (CHUNK / BLOCK) {
            self.block(source, BLOCK);
        }
    }

    /// Lets the worker answer the hops heard so far, then processes one sample of silence, so
    /// that their CCs leave (one sample completes no hop).
    fn drain(&mut self) {
        std::thread::sleep(Duration::from_millis(300));
        self.block(&mut Source::silence(), 1);
        self.clock = (Instant::now(), self.frames());
    }

    /// The saved state's document.
    fn state(&mut self) -> serde_json::Value {
        state_document(&self.host.save_state().expect("save the state")).expect("a state document")
    }

    /// Plays `source` until the saved state holds an adapted listener (the swap happened),
    /// saving the state every 3 chunks (240 ms). Returns the frame counts of the last save
    /// without one and of the first with one, or `None` after `timeout`.
    fn play_until_adapted(&mut self, source: &mut Source, timeout: Duration) -> Option<(u64, u64)> {
        let start = Instant::now();
        let mut before = self.frames();
        while start.elapsed() < timeout {
            self.play(source, 3);
            if adapted_text(&self.state()).is_some() {
                return Some((before, self.frames()));
            }
            before = self.frames();
        }
        None
    }

    /// Presses Adapt and plays `source` until the swap (see [`Self::play_until_adapted`]; panics
    /// after [`ADAPT_TIMEOUT`]), releases it, plays one more chunk, then [`COMPARE_SECONDS`] of
    /// `source` from its start and lets their CCs leave. Returns where the swap happened, the
    /// wall time from pressing to the swap, and where the comparison audio began.
    fn adapt_then_compare(&mut self, source: &mut Source) -> ((u64, u64), Duration, u64) {
        self.set("", "Adapt", 1.0);
        let start = Instant::now();
        let swap_between = self
            .play_until_adapted(source, ADAPT_TIMEOUT)
            .unwrap_or_else(|| panic!("no adapted listener within {ADAPT_TIMEOUT:?}"));
        let adapt_wall = start.elapsed();
        self.set("", "Adapt", 0.0);
        self.play(source, 1);
        source.restart();
        let compare_from = self.frames();
        self.play(source, chunks(COMPARE_SECONDS));
        self.drain();
        (swap_between, adapt_wall, compare_from)
    }

    /// Plays `source` until no adaptation thread is left, or `timeout`; returns how long it took.
    fn play_until_no_job(&mut self, source: &mut Source, timeout: Duration) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if adapt_threads() == 0 {
                return Some(start.elapsed());
            }
            self.play(source, 1);
        }
        None
    }

    /// This instance's MIDI from frame `from` on, timed from there.
    fn midi_since(&self, from: u64) -> Vec<MidiMessage> {
        self.midi
            .iter()
            .filter(|m| m.sample >= from)
            .map(|m| MidiMessage {
                sample: m.sample - from,
                ..*m
            })
            .collect()
    }

    fn param(&mut self, group: &str, name: &str) -> ParamInfo {
        let params = self.host.params().expect("the parameters");
        params
            .iter()
            .find(|p| p.name == name && p.module.contains(group))
            .unwrap_or_else(|| panic!("no parameter {name:?} in group {group:?}"))
            .clone()
    }

    /// Sets a parameter by the plugin's own text for the value (e.g. "64" for Bands).
    fn set_text(&mut self, group: &str, name: &str, text: &str) {
        let id = self.param(group, name).id;
        let value = self
            .host
            .param_text_to_value(id, text)
            .unwrap_or_else(|| panic!("{name} does not take {text:?}"));
        self.host.set_param(id, value).unwrap();
    }

    fn set(&mut self, group: &str, name: &str, value: f64) {
        let id = self.param(group, name).id;
        self.host.set_param(id, value).unwrap();
    }
}

/// The adapted listener a saved state holds (the field's JSON text decoded), `None` when the
/// chosen model itself is in use.
fn adapted_text(doc: &serde_json::Value) -> Option<String> {
    let field = doc["fields"]["adapted-listener"]
        .as_str()
        .expect("the state has the adapted-listener field");
    serde_json::from_str::<Option<String>>(field).expect("the field is a JSON string or null")
}

/// What a saved adapted listener says of itself: the `adapted_from` provenance of its metadata
/// (history, held-out losses, epochs, the epoch kept), and how many of its weights differ from
/// `base`'s, out of how many. Rebuilt by the plugin's own reader (`listener::adapt::saved`)
/// against `base`, so it also checks that the text is whole and names that base.
fn adapted_summary(text: &str, base: &Listener) -> (serde_json::Value, usize, usize) {
    let (meta, tensors) = saved::decode(text, base.id(), base.weights()).unwrap_or_else(|e| {
        panic!(
            "the saved adapted listener rebuilds against {}: {e}",
            base.metadata().name
        )
    });
    let (mut changed, mut total) = (0, 0);
    for (adapted, base) in tensors.iter().zip(base.weights().iter()) {
        total += adapted.data.len();
        changed += adapted
            .data
            .iter()
            .zip(&base.data)
            .filter(|(a, b)| a != b)
            .count();
    }
    let from = serde_json::to_value(&meta.provenance.adapted_from).unwrap();
    (from, changed, total)
}

/// Asserts that a saved adapted listener is `expected`, saying only the lengths when it is not
/// (the text is over a megabyte).
fn assert_same_text(saved: Option<String>, expected: &str, what: &str) {
    assert!(
        saved.as_deref() == Some(expected),
        "{what}: saved {:?} characters, expected {}",
        saved.map(|t| t.len()),
        expected.len()
    );
}

/// The plugin's adaptation threads alive now (`echoic-adapt`, one per running job).
fn adapt_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "echoic-adapt")
        .count()
}

/// The CC messages of controller `cc`, channel 1.
fn cc_messages(midi: &[MidiMessage], cc: u8) -> Vec<MidiMessage> {
    midi.iter()
        .filter(|m| m.data[0] == 0xB0 && m.data[1] == cc)
        .copied()
        .collect()
}

/// The largest difference between consecutive values of `cc` sent at or after `from` (and
/// before `to`), skipping the first value after activation, with where it happened.
fn largest_step(midi: &[MidiMessage], cc: u8, from: u64, to: u64) -> (i32, u64) {
    cc_messages(midi, cc)
        .windows(2)
        .filter(|w| w[1].sample >= from && w[1].sample < to)
        .map(|w| {
            (
                (w[1].data[2] as i32 - w[0].data[2] as i32).abs(),
                w[1].sample,
            )
        })
        .max()
        .unwrap_or((0, from))
}

/// For every hop of a [`COMPARE_SECONDS`] run after [`SETTLE_SECONDS`], the value each enabled
/// CC holds one hop after the hop ended (when its answer has left, be it at the hop's sample or
/// a block later).
fn held_per_hop(midi: &[MidiMessage]) -> Vec<[i32; 3]> {
    let hops = (COMPARE_SECONDS * RATE) as u64 / HOP as u64;
    let settle = (SETTLE_SECONDS * RATE) as u64 / HOP as u64;
    (settle..hops)
        .map(|k| {
            let probe = (k + 2) * HOP as u64;
            std::array::from_fn(|i| {
                midi.iter()
                    .filter(|m| m.data[0] == 0xB0 && m.data[1] == ENABLED_CCS[i])
                    .take_while(|m| m.sample < probe)
                    .last()
                    .map_or(-1, |m| m.data[2] as i32)
            })
        })
        .collect()
}

/// Mean and largest difference of two runs' held CC values, in steps of 127.
fn distance(a: &[[i32; 3]], b: &[[i32; 3]]) -> (f64, i32) {
    let diffs: Vec<i32> = a
        .iter()
        .zip(b)
        .flat_map(|(x, y)| (0..3).map(move |i| (x[i] - y[i]).abs()))
        .collect();
    let mean = diffs.iter().sum::<i32>() as f64 / diffs.len().max(1) as f64;
    (mean, diffs.into_iter().max().unwrap_or(0))
}

/// Per enabled CC, the values sent, in order: what two runs of the same audio on the same
/// listener must agree on exactly (the times may differ by the worker's timing).
fn sent_values(midi: &[MidiMessage]) -> Vec<Vec<u8>> {
    ENABLED_CCS
        .iter()
        .map(|&cc| cc_messages(midi, cc).iter().map(|m| m.data[2]).collect())
        .collect()
}

/// One adaptation through the host, shared by the tests that look at it from two sides.
struct AdaptedRun {
    /// MIDI of the whole run, from activation.
    midi: Vec<MidiMessage>,
    blocks: usize,
    disorder: Vec<String>,
    /// Where the Adapt parameter went on.
    pressed_at: u64,
    /// The swap happened between these frames (the last state without an adapted listener and
    /// the first with one).
    swap_between: (u64, u64),
    /// Wall time from pressing Adapt to the state holding the result.
    adapt_wall: Duration,
    /// Where the comparison audio started, and the CCs from there.
    compare_from: u64,
    compare_midi: Vec<MidiMessage>,
    /// The state saved after the comparison audio.
    state: Vec<u8>,
}

static ADAPTED: OnceLock<AdaptedRun> = OnceLock::new();

/// 20 s of speech (learning sound 1 from it at 5 s), then Adapt on until the swap, then Adapt
/// off and [`COMPARE_SECONDS`] of the speech from its start, then the state.
fn adapted_run() -> &'static AdaptedRun {
    ADAPTED.get_or_init(|| {
        let mut speech = Source::speech();
        let mut p = Player::fresh();
        let history = chunks(HISTORY_SECONDS);
        let (learn_on, learn_off) = (chunks(5.0), chunks(8.0));
        for chunk in 0..history {
            if chunk == learn_on {
                p.set("Learn 1", "Learn sound 1", 1.0);
            }
            if chunk == learn_off {
                p.set("Learn 1", "Learn sound 1", 0.0);
            }
            p.play(&mut speech, 1);
        }
        let learned = p.state()["fields"]["learned-sounds"].clone();
        assert!(
            learned.as_str().is_some_and(|l| l.contains("Sound 1")),
            "sound 1 was learned before adapting: {learned}"
        );
        let pressed_at = p.frames();
        let (swap_between, adapt_wall, compare_from) = p.adapt_then_compare(&mut speech);
        let compare_midi = p.midi_since(compare_from);
        let state = p.host.save_state().unwrap();
        AdaptedRun {
            midi: std::mem::take(&mut p.midi),
            blocks: p.blocks,
            disorder: std::mem::take(&mut p.disorder),
            pressed_at,
            swap_between,
            adapt_wall,
            compare_from,
            compare_midi,
            state,
        }
    })
}

/// A fresh instance loaded with `state` (or the defaults) plays the comparison audio; returns
/// its CCs and the player.
fn compare_run(state: Option<&[u8]>) -> (Vec<MidiMessage>, Player) {
    let mut host = EchoicHost::new().expect("instantiate Echoic");
    if let Some(state) = state {
        host.load_state(state).expect("the state loads");
    }
    let mut p = Player::new(host);
    p.play(&mut Source::speech(), chunks(COMPARE_SECONDS));
    p.drain();
    let midi = p.midi_since(0);
    assert!(
        p.disorder.is_empty(),
        "events out of order: {:?}",
        p.disorder
    );
    (midi, p)
}

/// "No glitch": through history, adaptation and swap, nothing allocates in `process` (the
/// bundle would abort), audio passes bit for bit, each block's events are in time order inside
/// it, only the enabled slots send, no CC steps further than its smoothing allows (around the
/// swap as anywhere), and the CCs go on after the swap.
#[test]
fn adapting_in_the_host_keeps_the_audio_thread_clean_and_ccs_in_order() {
    let _serial = serial();
    let run = adapted_run();
    let seconds = |frames: u64| frames as f64 / RATE;
    println!(
        "{} blocks; Adapt pressed at {:.2} s, swapped between {:.2} and {:.2} s; adaptation \
         took {:.1} s of wall time (to the state holding it); comparison audio from {:.2} s",
        run.blocks,
        seconds(run.pressed_at),
        seconds(run.swap_between.0),
        seconds(run.swap_between.1),
        run.adapt_wall.as_secs_f64(),
        seconds(run.compare_from)
    );
    // Reaching here at all: nothing allocated in process() (the debug bundle aborts on it).
    assert!(
        run.disorder.is_empty(),
        "blocks with events out of time order or outside the block: {:?}",
        run.disorder
    );
    let strays: Vec<_> = run
        .midi
        .iter()
        .filter(|m| m.data[0] != 0xB0 || !ENABLED_CCS.contains(&m.data[1]))
        .collect();
    assert!(strays.is_empty(), "only the enabled slots send: {strays:?}");
    // Around the swap (from a second before the last state without it to a second after the
    // first with it) and over the whole run, no CC steps further than its smoothing allows.
    let around = (
        run.swap_between.0.saturating_sub(RATE as u64),
        run.swap_between.1 + RATE as u64,
    );
    for cc in ENABLED_CCS {
        let (whole, at) = largest_step(&run.midi, cc, 0, u64::MAX);
        let (swap, swap_at) = largest_step(&run.midi, cc, around.0, around.1);
        let sent = cc_messages(&run.midi, cc);
        let after = sent
            .iter()
            .filter(|m| m.sample >= run.swap_between.1)
            .count();
        println!(
            "CC {cc}: {} values, {after} after the swap; largest step {whole} (at {:.2} s), \
             {swap} around the swap (at {:.2} s); allowed {MAX_CC_STEP}",
            sent.len(),
            seconds(at),
            seconds(swap_at)
        );
        assert!(
            whole <= MAX_CC_STEP,
            "CC {cc} jumped by {whole} at {:.2} s",
            seconds(at)
        );
        assert!(after > 0, "CC {cc} went silent after the swap");
    }
}

/// "Safe", saved sessions: the adapted listener travels with the state (within its f16 delta's
/// rounding), and a damaged one costs only itself.
#[test]
fn an_adapted_session_reopens_adapted_and_a_damaged_one_falls_back() {
    let _serial = serial();
    let run = adapted_run();
    let saved = state_document(&run.state).unwrap();
    let adapted = adapted_text(&saved).expect("the session saved its adapted listener");
    let shipped = Listener::from_bytes(DEFAULT_MODEL).unwrap();
    let (provenance, changed, weights) = adapted_summary(&adapted, &shipped);
    println!(
        "adapted listener saved as {} characters of text; {changed} of {weights} weights \
         changed; {provenance}",
        adapted.len()
    );

    // Reopened in a fresh instance: it loads, saves the same listener again, and hears the
    // audio as the adapted instance did, not as a never-adapted one.
    let (reopened, mut b) = compare_run(Some(&run.state));
    assert_same_text(
        adapted_text(&b.state()),
        &adapted,
        "the reopened session keeps its adapted listener",
    );
    drop(b);
    let (never, _) = compare_run(None);
    let (a, b, c) = (
        held_per_hop(&run.compare_midi),
        held_per_hop(&reopened),
        held_per_hop(&never),
    );
    let (same_mean, same_max) = distance(&a, &b);
    let (other_mean, other_max) = distance(&b, &c);
    println!(
        "held CC values over {} hops: adapted vs reopened {same_mean:.3} mean, {same_max} max; \
         reopened vs never adapted {other_mean:.3} mean, {other_max} max (steps of 127)",
        a.len()
    );
    assert!(
        same_mean <= 0.5 && same_mean * 4.0 < other_mean,
        "the reopened session does not hear as the adapted one did: {same_mean:.3} from it, \
         {other_mean:.3} from a never-adapted one"
    );

    // Damaged: characters flipped in the middle of the saved text. The load succeeds, the rest
    // of the session is as saved, the adapted listener falls back to the chosen model with a
    // note, and the instance hears exactly as a never-adapted one.
    let mut damaged_text: Vec<char> = adapted.chars().collect();
    let middle = damaged_text.len() / 2;
    for c in &mut damaged_text[middle..middle + 4] {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    let damaged_text: String = damaged_text.into_iter().collect();
    let mut damaged = saved.clone();
    damaged["fields"]["adapted-listener"] =
        serde_json::Value::String(serde_json::to_string(&Some(damaged_text)).unwrap());
    let (heard, mut d) = compare_run(Some(&state_bytes(&damaged)));
    let reloaded = d.state();
    assert_eq!(
        reloaded["params"], saved["params"],
        "every parameter as saved"
    );
    for key in ["learned-sounds", "model-path", "editor-size"] {
        assert_eq!(
            reloaded["fields"][key], saved["fields"][key],
            "{key} as saved"
        );
    }
    assert_eq!(
        adapted_text(&reloaded),
        None,
        "the damaged listener is not kept"
    );
    assert_eq!(
        sent_values(&heard),
        sent_values(&never),
        "the damaged session hears as a never-adapted one"
    );
    let notes: Vec<String> =
        serde_json::from_value(editor_probe(&mut d.host)["state_notes"].clone())
            .expect("the probe lists state notes");
    println!("state notes after the damaged load: {notes:?}");
    assert!(
        notes.iter().any(|n| n.contains("adapted listener")),
        "the editor says the adapted listener was not restored: {notes:?}"
    );
}

/// The shipped model's weights and settings under another name, as a model file: a model the
/// editor can choose that adapts on the speech fixture as the shipped one does, but whose bytes,
/// and so whose model id, differ from the built-in model's.
fn renamed_shipped_model(name: &str) -> Vec<u8> {
    let (mut meta, tensors) = format::decode(DEFAULT_MODEL).unwrap();
    meta.name = name.to_owned();
    format::encode(&meta, &tensors).unwrap()
}

/// "Safe" for a model chosen in the editor, not built in: the listener adapted from it is saved
/// as a delta against that file and reopens adapted. While the file is gone the session listens
/// with the built-in model as it is, the editor says why, and the adapted listener stays in the
/// session, so that the file's return brings it back, even after the session was saved without
/// it.
#[test]
fn an_adapted_chosen_model_waits_for_its_file_and_comes_back_with_it() {
    let _serial = serial();
    let dir = std::env::temp_dir().join(format!("echoic-adapt-chosen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echoic-renamed.safetensors");
    let chosen_bytes = renamed_shipped_model("echoic-renamed");
    std::fs::write(&path, &chosen_bytes).unwrap();
    let chosen = Listener::from_bytes(&chosen_bytes).unwrap();
    let built_in = Listener::from_bytes(DEFAULT_MODEL).unwrap();
    assert_ne!(
        chosen.id(),
        built_in.id(),
        "the chosen file is another model"
    );

    // A session that chose the file adapts on 20 s of speech, then plays the comparison audio.
    let mut host = EchoicHost::new().expect("instantiate Echoic");
    let defaults = host.save_state().unwrap();
    host.load_state(&with_model_path(&defaults, &path.display().to_string()))
        .expect("the state with the chosen model loads");
    let mut p = Player::new(host);
    let mut speech = Source::speech();
    p.play(&mut speech, chunks(HISTORY_SECONDS));
    let (_, _, compare_from) = p.adapt_then_compare(&mut speech);
    let adapted_midi = p.midi_since(compare_from);
    let state = p.host.save_state().unwrap();
    assert!(p.disorder.is_empty(), "{:?}", p.disorder);
    drop(p);
    let saved = state_document(&state).unwrap();
    let adapted = adapted_text(&saved).expect("the session saved its adapted listener");
    let (provenance, changed, weights) = adapted_summary(&adapted, &chosen);
    println!("adapted from the chosen file: {changed} of {weights} weights changed; {provenance}");
    assert!(changed > 0, "adaptation changed no weight");
    assert!(
        saved::decode(&adapted, built_in.id(), built_in.weights()).is_err(),
        "the delta is against the chosen file, not the built-in model"
    );

    // Reopened with the file in place: it hears as the adapted instance did. The built-in
    // model has the chosen file's weights, so a fresh instance hears as the file never adapted.
    let (reopened, _) = compare_run(Some(&state));
    let (never, _) = compare_run(None);
    let (same_mean, _) = distance(&held_per_hop(&adapted_midi), &held_per_hop(&reopened));
    let (other_mean, _) = distance(&held_per_hop(&reopened), &held_per_hop(&never));
    println!(
        "held CC values: adapted vs reopened {same_mean:.3} mean, reopened vs never adapted \
         {other_mean:.3} mean (steps of 127)"
    );
    assert!(
        same_mean <= 0.5 && same_mean * 4.0 < other_mean,
        "the reopened session does not hear as the adapted one did: {same_mean:.3} from it, \
         {other_mean:.3} from a never-adapted one"
    );

    // The file gone: the built-in model as it is, the editor saying why, and the session still
    // naming the file and holding the adapted listener when saved.
    std::fs::remove_file(&path).unwrap();
    let (heard_without, mut without) = compare_run(Some(&state));
    assert_eq!(
        sent_values(&heard_without),
        sent_values(&never),
        "without its file the session hears as the built-in model"
    );
    let probe = editor_probe(&mut without.host);
    let note = probe["model_note"].as_str().unwrap_or_default().to_owned();
    println!("model note without the file: {note}");
    assert_eq!(probe["model"].as_str(), Some("echoic-default"), "{probe}");
    assert!(
        note.contains("gone") && note.contains("adapted listener"),
        "the editor says the chosen file is gone and the adaptation is not in use: {note:?}"
    );
    let saved_without = without.host.save_state().unwrap();
    drop(without);
    let kept = state_document(&saved_without).unwrap();
    assert_eq!(kept["fields"]["model-path"], saved["fields"]["model-path"]);
    assert_same_text(
        adapted_text(&kept),
        &adapted,
        "the adapted listener is kept while its base is missing",
    );

    // The file back: the session saved while it was gone hears adapted again.
    std::fs::write(&path, &chosen_bytes).unwrap();
    let (back, _) = compare_run(Some(&saved_without));
    let (back_mean, _) = distance(&held_per_hop(&adapted_midi), &held_per_hop(&back));
    println!("held CC values: adapted vs the file back {back_mean:.3} mean");
    assert!(
        back_mean <= 0.5 && back_mean * 4.0 < other_mean,
        "with its file back the session does not hear adapted: {back_mean:.3} from it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the editor shows, as its probe reports it once it has drawn: among others the last
/// state load's repairs (`state_notes`; load-only, saved empty, so only the probe can tell) and
/// the model's status (`model`, `model_file`, `model_note`). Opens the editor under a private
/// Xvfb.
fn editor_probe(host: &mut EchoicHost) -> serde_json::Value {
    let server = XServer::start().expect("an X server");
    let dir = std::env::temp_dir().join(format!("echoic-adapt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let probe_path = dir.join("probe.json");
    let _ = std::fs::remove_file(&probe_path);
    let saved_env: Vec<_> = ["DISPLAY", "ECHOIC_EDITOR_PROBE"]
        .iter()
        .map(|k| (*k, std::env::var_os(k)))
        .collect();
    std::env::set_var("DISPLAY", server.display());
    std::env::set_var("ECHOIC_EDITOR_PROBE", &probe_path);
    let editor = EmbeddedEditor::open(host, server.display()).expect("the editor opens");
    let probe = Probe::wait(&probe_path, Duration::from_secs(30), |p| {
        p.stat("frames") > 0.0
    });
    editor.close(host);
    for (k, v) in saved_env {
        match v {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    probe.expect("the editor draws").0
}

/// "Safe", odd moments: Adapt with too little history, on silence, across a layout change, and
/// deactivation during a job. The deactivation time printed is the figure to quote (target
/// 100 ms); the assertion only catches a hang.
#[test]
fn unsafe_moments_are_harmless() {
    let _serial = serial();
    let seconds = |frames: u64| frames as f64 / RATE;

    // Too short: 2 s of history. The job refuses, nothing is swapped.
    {
        let mut music = Source::music();
        let mut p = Player::fresh();
        p.play(&mut music, chunks(2.0));
        p.set("", "Adapt", 1.0);
        p.play(&mut music, chunks(0.5));
        let ended = p.play_until_no_job(&mut music, Duration::from_secs(30));
        p.set("", "Adapt", 0.0);
        p.play(&mut music, chunks(1.0));
        println!("2 s of history: job ended within {ended:?} of looking");
        assert!(ended.is_some(), "the job on 2 s of history did not end");
        assert_eq!(adapted_text(&p.state()), None, "nothing was adapted");
        assert!(p.disorder.is_empty(), "{:?}", p.disorder);
    }

    // Silence: 20 s of it. Whatever the job makes of it, the host is unharmed and the plugin
    // still answers music afterwards.
    {
        let mut silence = Source::silence();
        let mut p = Player::fresh();
        p.play(&mut silence, chunks(HISTORY_SECONDS));
        p.set("", "Adapt", 1.0);
        p.play(&mut silence, 2);
        let running = adapt_threads();
        let ended = p.play_until_no_job(&mut silence, ADAPT_TIMEOUT);
        p.set("", "Adapt", 0.0);
        p.play(&mut silence, chunks(0.5));
        let swapped = adapted_text(&p.state()).is_some();
        let from = p.frames();
        p.play(&mut Source::music(), chunks(3.0));
        p.drain();
        let answered = p.midi_since(from).len();
        println!(
            "20 s of silence: {running} job thread(s) 160 ms after pressing, ended within \
             {ended:?}, swapped: {swapped}; then {answered} CC messages in 3 s of music"
        );
        assert!(ended.is_some(), "the job on silence did not end");
        assert!(answered > 0, "no CC on music after adapting on silence");
        assert!(p.disorder.is_empty(), "{:?}", p.disorder);
    }

    // The listening layout changes while the job runs: Bands, then Steps. The job's result no
    // longer fits; it is swapped in refused or set aside, never a crash; back to the old layout,
    // the plugin listens again.
    {
        let mut speech = Source::speech();
        let mut p = Player::fresh();
        p.play(&mut speech, chunks(HISTORY_SECONDS));
        p.set("", "Adapt", 1.0);
        p.play(&mut speech, 3);
        let running_at_bands = adapt_threads();
        p.set_text("", "Bands", "64");
        p.play(&mut speech, 3);
        let running_at_steps = adapt_threads();
        p.set_text("", "Steps", "12");
        let start = Instant::now();
        let swapped = p.play_until_adapted(&mut speech, ADAPT_TIMEOUT);
        let waited = start.elapsed();
        p.set("", "Adapt", 0.0);
        p.set_text("", "Bands", "100");
        p.set_text("", "Steps", "8");
        let from = p.frames();
        p.play(&mut speech, chunks(3.0));
        p.drain();
        let answered = p.midi_since(from).len();
        println!(
            "layout changed while adapting ({running_at_bands} and {running_at_steps} job \
             thread(s) at the changes): swapped {swapped:?} after {:.1} s; back on the old \
             layout, {answered} CC messages in 3 s",
            waited.as_secs_f64()
        );
        assert!(
            swapped.is_some(),
            "the job running across the layout change never finished"
        );
        assert!(answered > 0, "no CC after returning to the old layout");
        assert!(p.disorder.is_empty(), "{:?}", p.disorder);
    }

    // Deactivation while the job runs returns at once (the target is 100 ms; 1 s only guards
    // against a hang), and the instance works again afterwards.
    {
        let mut speech = Source::speech();
        let mut p = Player::fresh();
        p.play(&mut speech, chunks(HISTORY_SECONDS));
        p.set("", "Adapt", 1.0);
        let pressed = p.frames();
        p.play(&mut speech, 4);
        let running = adapt_threads();
        let since_pressed = seconds(p.frames() - pressed);
        let start = Instant::now();
        p.host.deactivate();
        let took = start.elapsed();
        let lingering = {
            let deadline = Instant::now() + Duration::from_secs(5);
            while adapt_threads() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            adapt_threads()
        };
        println!(
            "deactivate while adapting ({running} job thread(s), {:.2} s after pressing): \
             {:.1} ms; job threads 5 s later: {lingering}",
            since_pressed,
            took.as_secs_f64() * 1e3
        );
        assert_eq!(running, 1, "an adaptation was running when deactivated");
        assert!(took < Duration::from_secs(1), "deactivation hung: {took:?}");
        p.host
            .activate(AudioConfig::new(RATE, BLOCK as u32, 1))
            .unwrap();
        p.clock = (Instant::now(), p.frames());
        p.play(&mut speech, chunks(1.0));
        assert!(p.disorder.is_empty(), "{:?}", p.disorder);
    }
}
