//! A seeded, repeatable fuzzer over Echoic's parameter space, driven through the real CLAP host.
//!
//! Each round creates a fresh instance and, from a generator seeded by `(seed, round)` alone
//! (so one round replays on its own):
//! - sets parameters (random ones, all to their minimum, all to their maximum, the structural
//!   ones to extremes, one output slot, the learn triggers), both through `set_param` between
//!   blocks and as CLAP param value events at random offsets inside a block;
//! - saves states after random changes and loads them back, whole or damaged (byte flips,
//!   truncation, lying length prefix, JSON-level edits); a refused state is fine, a plugin that
//!   then cannot save or play is not;
//! - activates at a random sample rate and maximum block size, mono or stereo, plays the
//!   fixture recordings (with subnormal and other special samples mixed in) in random block
//!   sizes, resets and changes parameters while active, and deactivates.
//!
//! Checked: every `process` succeeds; each block's raw output events are in time order and
//! inside the block; every non-subnormal input sample comes out bit for bit and no subnormal
//! comes out; `deactivate` and destroying the instance each take at most 100 ms; the resident
//! memory after a round stays within 256 MiB of what it was after the first round. An
//! allocation on the audio thread aborts the process (the debug bundle's
//! `assert_process_allocs`), as does any other crash; a hang is ended by a watchdog. The seed and
//! round are written to stderr before each round (uncaptured), so a crash can be replayed.
//!
//! Environment:
//! - `ECHOIC_FUZZ_HOST_SEED=S`: the seed (decimal or 0x-hex) instead of the fixed one;
//! - `ECHOIC_FUZZ_HOST_ROUND=R`: only round R of that seed (a replay);
//! - `ECHOIC_FUZZ_HOST_MINUTES=N`: run seeds for N minutes (the first is S if given, the rest
//!   random), [`ROUNDS_PER_SEED`] rounds each. `cargo xtask fuzz-host --minutes N` sets it.

use echoic_core::rng::SplitMix64;
use echoic_host_tests::{
    recording, state_bytes, state_document, AudioConfig, EchoicHost, ParamInfo, TimedParam,
};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The seed of the default (CI) run: fixed, so a failure there is the same failure on every
/// machine.
const DEFAULT_SEED: u64 = 0xEC01_C0DE_F022_0001;

/// Rounds of the default run and per seed of a timed run: enough to reach the structural
/// extremes, damaged states and resets several times, short enough for CI (well under a minute
/// in the debug profile on two cores).
const ROUNDS_PER_SEED: u64 = 40;

/// The longest a `deactivate` or the destruction of an instance may take. A host calls both on
/// its main thread, where a hang freezes the whole session.
const TEARDOWN_LIMIT: Duration = Duration::from_millis(100);

/// How far the resident memory may grow beyond its level after the first round. The plugin's
/// listening memory is limited to about 32 MiB per instance; a leak or a runaway buffer shows
/// well past this margin.
const RSS_GROWTH_LIMIT_KIB: u64 = 256 * 1024;

/// Without progress for this long, the watchdog takes the process down and names the step
/// that hung (a `deactivate` waiting forever would otherwise hang CI).
const HANG_LIMIT: Duration = Duration::from_secs(30);

/// A timed run stops early once it has this many findings: enough to act on.
const MAX_FINDINGS: usize = 100;

/// The parameters that reshape the filterbank or the echoic memory (a new filterbank, a new
/// dilated buffer); the fuzzer drives them to their extremes on purpose.
const STRUCTURAL: &[&str] = &[
    "Bands",
    "Lowest band",
    "Highest band",
    "Hop",
    "Steps",
    "Dilation",
    "Dilation spacing",
    "Pooling",
];

/// Sample rates hosts use; a random one in between is added per activation.
const SAMPLE_RATES: &[f64] = &[
    8_000.0, 22_050.0, 44_100.0, 48_000.0, 88_200.0, 96_000.0, 192_000.0,
];

/// The largest block size CLAP hosts commonly ask for, and the top of the fuzzed range.
const MAX_BLOCK: u32 = 8192;

/// The fuzzer's draws, from the project's one seeded generator, so that a seed means the same
/// actions on every platform.
struct Rng(
    /// The generator.
    SplitMix64,
);

impl Rng {
    /// The generator for round `round` of `seed`.
    fn for_round(seed: u64, round: u64) -> Self {
        let mut mix = SplitMix64(seed ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Rng(SplitMix64(mix.next_u64()))
    }

    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.0.below(n as usize) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0.next_f64()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What the process is doing, for the watchdog: a heartbeat and a description of the step.
struct Progress {
    /// Milliseconds since `start` at the last heartbeat.
    beat_ms: AtomicU64,
    /// The step in progress, with the seed and round to replay it.
    stage: Mutex<String>,
    /// The watchdog's time origin.
    start: Instant,
}

static PROGRESS: OnceLock<Progress> = OnceLock::new();

/// The progress record, with its watchdog thread started on first use.
fn progress() -> &'static Progress {
    PROGRESS.get_or_init(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_millis(250));
            let p = progress();
            let idle = (p.start.elapsed().as_millis() as u64)
                .saturating_sub(p.beat_ms.load(Ordering::Acquire));
            if idle > HANG_LIMIT.as_millis() as u64 {
                let stage = p.stage.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let _ = writeln!(
                    std::io::stderr(),
                    "param_fuzz: HANG: no progress for {} s while {stage}",
                    idle / 1000
                );
                std::process::abort();
            }
        });
        Progress {
            beat_ms: AtomicU64::new(0),
            stage: Mutex::new(String::new()),
            start: Instant::now(),
        }
    })
}

/// Records a heartbeat.
fn beat() {
    let p = progress();
    p.beat_ms
        .store(p.start.elapsed().as_millis() as u64, Ordering::Release);
}

/// Names the step about to run (and records a heartbeat).
fn stage(what: String) {
    *progress().stage.lock().unwrap_or_else(|e| e.into_inner()) = what;
    beat();
}

/// Writes a line to stderr directly, past the test harness's capture, so that it is seen even
/// when the process aborts.
fn announce(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The process's resident memory (VmRSS), KiB.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The command that replays one round.
fn replay(seed: u64, round: u64) -> String {
    format!(
        "ECHOIC_FUZZ_HOST_SEED={seed:#x} ECHOIC_FUZZ_HOST_ROUND={round} \
         cargo test -p echoic-host-tests --test param_fuzz -- --nocapture"
    )
}

/// One failed check.
struct Finding {
    /// The seed of the run that found it.
    seed: u64,
    /// The round of that seed, for the replay.
    round: u64,
    /// Which check failed ("event order", "passthrough", ...).
    check: &'static str,
    /// What exactly, with the step it happened in.
    detail: String,
}

/// Counts of what the fuzzer did, so a run shows that it exercised what it claims to.
#[derive(Default)]
struct Stats {
    /// Rounds completed.
    rounds: u64,
    /// Successful activations.
    activations: u64,
    /// `process` calls.
    blocks: u64,
    /// Frames processed.
    frames: u64,
    /// Changes through `set_param` (flush or a block's first sample).
    params_set: u64,
    /// Changes as param value events inside blocks.
    params_timed: u64,
    /// States the plugin accepted.
    states_loaded: u64,
    /// States the plugin refused.
    states_refused: u64,
    /// `reset` calls while active.
    resets: u64,
    /// Output events seen in the raw per-block lists.
    output_events: u64,
    /// Of those, MIDI messages.
    midi: u64,
    /// Subnormal samples fed in.
    subnormals_in: u64,
    /// The longest `deactivate` or destruction.
    slowest_teardown: Duration,
}

/// The parameters, sorted by role.
struct ParamSpace {
    /// Every parameter, as `clap.params` lists them.
    all: Vec<ParamInfo>,
    /// Indices into `all` of [`STRUCTURAL`], in that order.
    structural: Vec<usize>,
    /// Indices of the "Learn sound N" triggers.
    learn: Vec<usize>,
    /// Per output slot, the indices of its parameters.
    slots: Vec<Vec<usize>>,
}

impl ParamSpace {
    fn new(all: Vec<ParamInfo>) -> Self {
        let index = |name: &str| {
            all.iter()
                .position(|p| p.name == name)
                .unwrap_or_else(|| panic!("no parameter {name:?}: the fuzzer's roles are stale"))
        };
        let structural = STRUCTURAL.iter().map(|n| index(n)).collect();
        let learn: Vec<usize> = (0..all.len())
            .filter(|&i| all[i].name.starts_with("Learn sound"))
            .collect();
        let mut modules: Vec<&str> = Vec::new();
        for p in all.iter().filter(|p| p.module.contains("Outputs")) {
            if !modules.contains(&p.module.as_str()) {
                modules.push(&p.module);
            }
        }
        let slots: Vec<Vec<usize>> = modules
            .iter()
            .map(|m| (0..all.len()).filter(|&i| all[i].module == *m).collect())
            .collect();
        assert_eq!(learn.len(), 4, "four learn triggers");
        assert_eq!(slots.len(), 8, "eight output slots: {modules:?}");
        Self {
            all,
            structural,
            learn,
            slots,
        }
    }

    /// A random CLAP value of parameter `i`: often an end of its range, integral if stepped.
    fn random_value(&self, rng: &mut Rng, i: usize) -> f64 {
        let p = &self.all[i];
        match rng.below(6) {
            0 => p.min,
            1 => p.max,
            _ if p.stepped => p.min + rng.below((p.max - p.min) as u64 + 1) as f64,
            _ => p.min + rng.unit() * (p.max - p.min),
        }
    }

    /// A set of changes, `(parameter index, CLAP value)`, and what kind it is.
    fn random_set(&self, rng: &mut Rng) -> (&'static str, Vec<(usize, f64)>) {
        let n = self.all.len();
        match rng.below(8) {
            0 => (
                "all random",
                (0..n).map(|i| (i, self.random_value(rng, i))).collect(),
            ),
            1 => (
                "all minimum",
                (0..n).map(|i| (i, self.all[i].min)).collect(),
            ),
            2 => (
                "all maximum",
                (0..n).map(|i| (i, self.all[i].max)).collect(),
            ),
            3 | 4 => (
                "structural extremes",
                self.structural
                    .iter()
                    .map(|&i| {
                        let p = &self.all[i];
                        (i, if rng.chance(0.5) { p.min } else { p.max })
                    })
                    .collect(),
            ),
            5 => {
                let slot = rng.pick(&self.slots);
                (
                    "one output slot",
                    slot.iter()
                        .map(|&i| (i, self.random_value(rng, i)))
                        .collect(),
                )
            }
            6 => {
                let on = if rng.chance(0.7) { 1.0 } else { 0.0 };
                let picked: Vec<usize> = self
                    .learn
                    .iter()
                    .copied()
                    .filter(|_| rng.chance(0.5))
                    .collect();
                (
                    "learn triggers",
                    picked.into_iter().map(|i| (i, on)).collect(),
                )
            }
            _ => ("random few", {
                let mut few = Vec::new();
                for i in 0..n {
                    if rng.chance(0.1) {
                        few.push((i, self.random_value(rng, i)));
                    }
                }
                few
            }),
        }
    }

    /// The current values of the structural parameters as the plugin shows them, for the log.
    fn describe_structure(&self, host: &mut EchoicHost) -> String {
        self.structural
            .iter()
            .map(|&i| {
                let p = &self.all[i];
                let text = host
                    .param_value(p.id)
                    .and_then(|v| host.param_value_to_text(p.id, v))
                    .unwrap_or_else(|| "?".into());
                format!("{} {text}", p.name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The fixture recordings, played without resampling (the plugin listens to any rate).
struct Audio {
    /// The recordings' samples.
    clips: Vec<Vec<f32>>,
}

/// How one activation's input is made.
struct Player {
    /// Per channel: which clip and where in it.
    cursors: Vec<(usize, usize)>,
    /// Applied to the recording (quiet inputs reach the filterbank's denormal range sooner).
    gain: f32,
    /// Chance per sample of a subnormal instead of the recording.
    subnormal_rate: f64,
    /// Chance per sample of another special value (NaN, ±Inf, −0, the smallest normal, ±1).
    special_rate: f64,
    /// Chance per block of silence.
    silence_rate: f64,
}

impl Player {
    fn new(rng: &mut Rng, audio: &Audio, channels: usize) -> Self {
        Self {
            cursors: (0..channels)
                .map(|_| {
                    let clip = rng.below(audio.clips.len() as u64) as usize;
                    (clip, rng.below(audio.clips[clip].len() as u64) as usize)
                })
                .collect(),
            gain: *rng.pick(&[1.0, 1.0, 0.5, 0.01, 1e-4]),
            subnormal_rate: *rng.pick(&[0.0, 0.0, 1e-3, 0.05, 1.0]),
            special_rate: *rng.pick(&[0.0, 0.0, 1e-4, 1e-2]),
            silence_rate: *rng.pick(&[0.0, 0.1, 0.5]),
        }
    }

    /// Fills `frames` samples of each channel.
    fn fill(&mut self, rng: &mut Rng, audio: &Audio, block: &mut [Vec<f32>], frames: usize) {
        let silent = rng.chance(self.silence_rate);
        for (channel, (clip, at)) in block.iter_mut().zip(&mut self.cursors) {
            let clip_samples = &audio.clips[*clip];
            for sample in &mut channel[..frames] {
                *sample = if silent {
                    0.0
                } else {
                    clip_samples[*at] * self.gain
                };
                *at = (*at + 1) % clip_samples.len();
                if self.subnormal_rate > 0.0 && rng.chance(self.subnormal_rate) {
                    let bits = (rng.range(1, 0x007F_FFFF) as u32) | ((rng.below(2) as u32) << 31);
                    *sample = f32::from_bits(bits);
                } else if self.special_rate > 0.0 && rng.chance(self.special_rate) {
                    *sample = *rng.pick(&[
                        f32::NAN,
                        f32::INFINITY,
                        f32::NEG_INFINITY,
                        -0.0,
                        f32::MIN_POSITIVE,
                        -f32::MIN_POSITIVE,
                        1.0,
                        -1.0,
                    ]);
                }
            }
        }
    }
}

/// Numbers and stand-ins a damaged state might hold where a value belongs.
fn weird_value(rng: &mut Rng) -> Value {
    rng.pick(&[
        json!(1e300),
        json!(-1e300),
        json!(f64::MAX),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(2_147_483_648i64),
        json!(-1),
        json!(0),
        json!(1e-320),
        json!(3.5e38),
        json!(-3.5e38),
        json!(0.5),
        Value::Null,
        json!("NaN"),
        json!("-inf"),
        json!(""),
        json!([]),
        json!({}),
    ])
    .clone()
}

/// Replaces one number, string or null somewhere inside `value` by a weird one; false if there
/// is none.
fn replace_random_leaf(rng: &mut Rng, value: &mut Value) -> bool {
    match value {
        Value::Array(items) if !items.is_empty() => {
            let i = rng.below(items.len() as u64) as usize;
            replace_random_leaf(rng, &mut items[i])
        }
        Value::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(rng.below(map.len() as u64) as usize)
                .cloned();
            key.is_some_and(|k| replace_random_leaf(rng, &mut map[&k]))
        }
        Value::Number(_) | Value::String(_) | Value::Null | Value::Bool(_) => {
            *value = weird_value(rng);
            true
        }
        _ => false,
    }
}

/// A random key of `map`.
fn random_key(rng: &mut Rng, map: &serde_json::Map<String, Value>) -> Option<String> {
    (!map.is_empty()).then(|| {
        map.keys()
            .nth(rng.below(map.len() as u64) as usize)
            .cloned()
            .unwrap_or_default()
    })
}

/// One to four JSON-level edits of a state document: weird numbers, unknown enum ids, dropped
/// parameters and fields, damaged persisted fields, wrong types where objects belong.
fn edit_document(rng: &mut Rng, doc: &mut Value) -> Vec<String> {
    let mut edits = Vec::new();
    for _ in 0..rng.range(1, 4) {
        let params = doc.get("params").and_then(Value::as_object).cloned();
        let fields = doc.get("fields").and_then(Value::as_object).cloned();
        match rng.below(7) {
            0 => {
                if let Some(key) = params.as_ref().and_then(|m| random_key(rng, m)) {
                    let tag = *rng.pick(&["f32", "i32", "bool", "string"]);
                    let value = weird_value(rng);
                    edits.push(format!("params.{key} = {{{tag}: {value}}}"));
                    doc["params"][&key] = json!({ tag: value });
                }
            }
            1 => {
                let strings = [
                    "",
                    "PICK",
                    "mean ",
                    "exponential",
                    "linear",
                    "max",
                    "\u{0}",
                    "🦀",
                ];
                let text = *rng.pick(&strings);
                for key in ["pooling", "dilation-kind"] {
                    if doc["params"].is_object() && rng.chance(0.6) {
                        edits.push(format!("params.{key} = {{string: {text:?}}}"));
                        doc["params"][key] = json!({ "string": text });
                    }
                }
            }
            2 => {
                if let Some(key) = params.as_ref().and_then(|m| random_key(rng, m)) {
                    edits.push(format!("drop params.{key}"));
                    doc["params"].as_object_mut().map(|m| m.remove(&key));
                }
            }
            3 => {
                if let Some(key) = fields.as_ref().and_then(|m| random_key(rng, m)) {
                    edits.push(format!("drop fields.{key}"));
                    doc["fields"].as_object_mut().map(|m| m.remove(&key));
                }
            }
            4 => {
                // A persisted field is JSON inside a JSON string: damage the inner document.
                if let Some(key) = fields.as_ref().and_then(|m| random_key(rng, m)) {
                    let text = doc["fields"][&key].as_str().unwrap_or("null").to_owned();
                    let parsed = serde_json::from_str::<Value>(&text);
                    let new = if let (Ok(mut inner), true) = (parsed, rng.chance(0.7)) {
                        replace_random_leaf(rng, &mut inner);
                        inner.to_string()
                    } else {
                        (*rng.pick(&["{", "null", "[1e999]", "\"\"", "{\"version\":99}"]))
                            .to_owned()
                    };
                    edits.push(format!("fields.{key} = {new:.80}"));
                    doc["fields"][&key] = Value::String(new);
                }
            }
            5 => {
                let key = *rng.pick(&["params", "fields", "version"]);
                if rng.chance(0.5) {
                    edits.push(format!("drop {key}"));
                    doc.as_object_mut().map(|m| m.remove(key));
                } else {
                    let value = weird_value(rng);
                    edits.push(format!("{key} = {value}"));
                    doc[key] = value;
                }
            }
            _ => {
                if let Some(key) = params.as_ref().and_then(|m| random_key(rng, m)) {
                    if replace_random_leaf(rng, &mut doc["params"][&key]) {
                        edits.push(format!("params.{key} = {}", doc["params"][&key]));
                    }
                }
            }
        }
    }
    edits
}

/// A damaged copy of a saved state, and what was done to it.
fn damage_state(rng: &mut Rng, good: &[u8]) -> (String, Vec<u8>) {
    let mut bytes = good.to_vec();
    match rng.below(5) {
        0 if !bytes.is_empty() => {
            let flips = rng.range(1, 16);
            for _ in 0..flips {
                let at = rng.below(bytes.len() as u64) as usize;
                bytes[at] ^= 1 << rng.below(8);
            }
            (format!("{flips} bit flips"), bytes)
        }
        1 => {
            let len = rng.below(bytes.len() as u64 + 1) as usize;
            bytes.truncate(len);
            (format!("truncated to {len} bytes"), bytes)
        }
        2 if bytes.len() >= 8 => {
            let body = bytes.len() as u64 - 8;
            let claimed = *rng.pick(&[0, body.saturating_sub(1), body + 1, u64::MAX, 1 << 40]);
            bytes[..8].copy_from_slice(&claimed.to_le_bytes());
            (format!("length prefix {claimed} for {body}"), bytes)
        }
        _ => match state_document(good) {
            Some(mut doc) => {
                let edits = edit_document(rng, &mut doc);
                (format!("edited: {}", edits.join("; ")), state_bytes(&doc))
            }
            None => ("unparsable as saved".into(), bytes),
        },
    }
}

/// The fuzzer: the audio, what it found and what it did.
struct Fuzz {
    /// What is played.
    audio: Audio,
    /// Every failed check so far.
    findings: Vec<Finding>,
    /// What was done so far.
    stats: Stats,
    /// Resident memory after the first round, KiB.
    rss_base_kib: Option<u64>,
}

/// One round in progress.
struct Round<'a> {
    /// Where findings and counts go.
    fuzz: &'a mut Fuzz,
    /// This round's generator, seeded by `seed` and `round` only.
    rng: Rng,
    /// The run's seed.
    seed: u64,
    /// This round's number.
    round: u64,
    /// The instance's parameters by role.
    space: ParamSpace,
    /// States saved during this round, to load again later in it.
    saved: Vec<Vec<u8>>,
    /// Checks that already failed this round: each is reported once per round.
    failed: Vec<&'static str>,
    /// Where in the round we are, for findings.
    context: String,
}

impl Round<'_> {
    fn fail(&mut self, check: &'static str, detail: String) {
        if self.failed.contains(&check) {
            return;
        }
        self.failed.push(check);
        let detail = format!("{detail} ({})", self.context);
        announce(&format!(
            "param_fuzz: FINDING seed {:#x} round {}: {check}: {detail}",
            self.seed, self.round
        ));
        self.fuzz.findings.push(Finding {
            seed: self.seed,
            round: self.round,
            check,
            detail,
        });
    }

    fn stage(&self, what: &str) {
        stage(format!(
            "{what} ({}; replay: {})",
            self.context,
            replay(self.seed, self.round)
        ));
    }

    /// Applies a random set of changes through `set_param` (a flush while inactive, the next
    /// block's first sample while active).
    fn set_params(&mut self, host: &mut EchoicHost) {
        let (kind, changes) = self.space.random_set(&mut self.rng);
        self.stage(&format!("setting {} parameters ({kind})", changes.len()));
        for (i, value) in changes {
            host.set_param(self.space.all[i].id, value)
                .expect("clap.params");
            self.fuzz.stats.params_set += 1;
        }
    }

    /// A random set of changes as in-block automation, in time order.
    fn automation(&mut self, frames: usize) -> Vec<TimedParam> {
        let (_, changes) = self.space.random_set(&mut self.rng);
        let mut timed: Vec<TimedParam> = changes
            .into_iter()
            .map(|(i, value)| TimedParam {
                offset: self.rng.below(frames as u64) as u32,
                id: self.space.all[i].id,
                value,
            })
            .collect();
        timed.sort_by_key(|p| p.offset);
        self.fuzz.stats.params_timed += timed.len() as u64;
        timed
    }

    /// Saves the state (it must save), keeping it to load later in the round.
    fn save_state(&mut self, host: &mut EchoicHost) {
        self.stage("saving the state");
        match host.save_state() {
            Ok(bytes) if state_document(&bytes).is_some() => self.saved.push(bytes),
            Ok(bytes) => self.fail(
                "state save",
                format!("saved {} bytes that are no state document", bytes.len()),
            ),
            Err(e) => self.fail("state save", e.to_string()),
        }
    }

    /// Loads a saved state, whole or damaged. Refusing it is fine; afterwards the plugin must
    /// still save.
    fn load_state(&mut self, host: &mut EchoicHost) {
        let good = self.rng.pick(&self.saved).clone();
        let (what, bytes) = if self.rng.chance(0.3) {
            ("a saved state".to_owned(), good)
        } else {
            damage_state(&mut self.rng, &good)
        };
        self.stage(&format!("loading {what}"));
        match host.load_state(&bytes) {
            Ok(()) => self.fuzz.stats.states_loaded += 1,
            Err(_) => self.fuzz.stats.states_refused += 1,
        }
        if let Err(e) = host.save_state() {
            self.fail("state save after load", format!("{e} after loading {what}"));
        }
    }

    /// Something done while inactive: parameters, a state saved or loaded.
    fn inactive_step(&mut self, host: &mut EchoicHost) {
        match self.rng.below(4) {
            0 | 1 => self.set_params(host),
            2 => {
                self.set_params(host);
                self.save_state(host);
            }
            _ => self.load_state(host),
        }
    }

    /// One activation: a random setup, audio in random blocks with changes, resets and state
    /// loads along the way; then deactivation, or (`last`) sometimes destruction while active.
    /// Returns the host unless it was destroyed.
    fn activation(&mut self, mut host: EchoicHost, index: u64, last: bool) -> Option<EchoicHost> {
        let rate = if self.rng.chance(0.2) {
            8_000.0 + self.rng.unit() * 184_000.0
        } else {
            *self.rng.pick(SAMPLE_RATES)
        };
        let max_block = match self.rng.below(6) {
            0 => MAX_BLOCK,
            1 => self.rng.range(1, 16) as u32,
            2 => 1 << self.rng.below(14),
            _ => (2f64.powf(self.rng.unit() * 13.0) as u32).clamp(1, MAX_BLOCK),
        };
        let channels = self.rng.range(1, 2) as usize;
        let config = AudioConfig::new(rate, max_block, channels);
        self.context = format!(
            "round {} activation {index}: {rate:.1} Hz, max block {max_block}, {channels} ch",
            self.round
        );
        println!(
            "  {}; {}",
            self.context,
            self.space.describe_structure(&mut host)
        );
        self.stage("activating");
        if let Err(e) = host.activate(config) {
            self.fail("activate", e.to_string());
            return Some(host);
        }
        self.fuzz.stats.activations += 1;

        // At most ~2,000 blocks and 0.8 s of audio per activation.
        let seconds = 0.02 + self.rng.unit() * 0.78;
        let total = ((rate * seconds) as usize).clamp(1, 2_000 * max_block as usize);
        let fixed_block = self.rng.range(1, max_block as u64) as usize;
        let block_pattern = self.rng.below(3);
        let mut player = Player::new(&mut self.rng, &self.fuzz.audio, channels);
        let mut input = vec![vec![0.0f32; max_block as usize]; channels];
        let mut output = vec![vec![0.0f32; max_block as usize]; channels];
        let mut position = 0;
        let mut block_index = 0u64;
        let mut last_reset: Option<u64> = None;
        let mut failed_process = false;
        while position < total && !failed_process {
            let frames = match block_pattern {
                0 => max_block as usize,
                1 => fixed_block,
                _ => self.rng.range(1, max_block as u64) as usize,
            }
            .min(total - position);
            // Between blocks: changes the host makes while playing, each about once per
            // `mean` seconds of audio whatever the block size.
            let per_block = |mean: f64| (frames as f64 / rate / mean).min(1.0);
            if self.rng.chance(per_block(0.25)) {
                self.stage("resetting");
                host.reset();
                self.fuzz.stats.resets += 1;
                last_reset = Some(block_index);
            }
            if self.rng.chance(per_block(0.15)) {
                self.set_params(&mut host);
            }
            if self.rng.chance(per_block(0.4)) {
                self.load_state(&mut host);
            }
            if self.rng.chance(per_block(0.4)) {
                self.save_state(&mut host);
            }
            if self.rng.chance(per_block(0.1)) {
                // Lets the worker catch up, as real-time playback would.
                std::thread::sleep(Duration::from_millis(self.rng.range(1, 5)));
            }
            player.fill(&mut self.rng, &self.fuzz.audio, &mut input, frames);
            let timed = if self.rng.chance(per_block(0.1)) {
                self.automation(frames)
            } else {
                Vec::new()
            };
            let since_reset = last_reset.map_or("no reset".into(), |r| {
                format!("{} blocks after a reset", block_index - r)
            });
            self.context = format!(
                "round {} activation {index}: {rate:.1} Hz, max block {max_block}, {channels} ch, \
                 block {block_index} of {frames} frames at frame {position}, {since_reset}",
                self.round
            );
            self.stage("processing");
            let block_in: Vec<&[f32]> = input.iter().map(|c| &c[..frames]).collect();
            let mut block_out: Vec<&mut [f32]> =
                output.iter_mut().map(|c| &mut c[..frames]).collect();
            let result = host.process_block_with_params(&block_in, &mut block_out, &timed);
            beat();
            if let Err(e) = result {
                self.fail("process", e.to_string());
                failed_process = true;
            }
            self.check_events(&host, frames);
            self.check_audio(&input, &output, frames);
            self.fuzz.stats.midi += host.take_midi().len() as u64;
            self.fuzz.stats.blocks += 1;
            self.fuzz.stats.frames += frames as u64;
            position += frames;
            block_index += 1;
        }
        self.check_memory("while active");

        if last && self.rng.chance(0.3) {
            self.stage("destroying the instance while active");
            self.timed_teardown("destroying an active instance", || drop(host));
            return None;
        }
        self.stage("deactivating");
        self.timed_teardown("deactivate", || host.deactivate());
        Some(host)
    }

    /// Each block's raw output events: in time order and inside the block.
    fn check_events(&mut self, host: &EchoicHost, frames: usize) {
        let times = host.last_output_event_times();
        self.fuzz.stats.output_events += times.len() as u64;
        if let Some(t) = times.iter().find(|&&t| t as usize >= frames) {
            self.fail(
                "event offset",
                format!("an output event at offset {t} in a block of {frames}: {times:?}"),
            );
        }
        if let Some(w) = times.windows(2).position(|w| w[1] < w[0]) {
            self.fail(
                "event order",
                format!(
                    "output event {} at offset {} after one at {}; the block's times: {:?}",
                    w + 1,
                    times[w + 1],
                    times[w],
                    &times[..times.len().min(48)]
                ),
            );
        }
    }

    /// Non-subnormal samples pass bit for bit; subnormal ones come out as zero.
    fn check_audio(&mut self, input: &[Vec<f32>], output: &[Vec<f32>], frames: usize) {
        for (channel, (a, b)) in input.iter().zip(output).enumerate() {
            for (i, (&x, &y)) in a[..frames].iter().zip(&b[..frames]).enumerate() {
                if x.is_subnormal() {
                    self.fuzz.stats.subnormals_in += 1;
                    if y != 0.0 {
                        self.fail(
                            "subnormal output",
                            format!(
                                "subnormal input {x:e} came out as {y:e} ({:#010x}), channel \
                                 {channel} frame {i}",
                                y.to_bits()
                            ),
                        );
                    }
                } else if x.to_bits() != y.to_bits() {
                    self.fail(
                        "passthrough",
                        format!("input {x:e} came out as {y:e}, channel {channel} frame {i}"),
                    );
                }
            }
        }
    }

    /// Runs a teardown, failing if it takes longer than [`TEARDOWN_LIMIT`].
    fn timed_teardown(&mut self, what: &'static str, teardown: impl FnOnce()) {
        let start = Instant::now();
        teardown();
        let took = start.elapsed();
        beat();
        self.fuzz.stats.slowest_teardown = self.fuzz.stats.slowest_teardown.max(took);
        if took > TEARDOWN_LIMIT {
            self.fail(
                "slow teardown",
                format!("{what} took {} ms", took.as_millis()),
            );
        }
    }

    /// The resident memory against its level after the first round.
    fn check_memory(&mut self, when: &str) {
        let rss = resident_kib();
        if let Some(base) = self.fuzz.rss_base_kib {
            if rss > base + RSS_GROWTH_LIMIT_KIB {
                self.fail(
                    "resident memory",
                    format!(
                        "{when}: {} MiB resident, {} MiB after the first round",
                        rss / 1024,
                        base / 1024
                    ),
                );
            }
        }
    }
}

impl Fuzz {
    fn new() -> Self {
        let clips = ["music_armygeddon.wav", "speech_june.wav"]
            .iter()
            .map(|name| recording(name).0)
            .collect();
        Self {
            audio: Audio { clips },
            findings: Vec::new(),
            stats: Stats::default(),
            rss_base_kib: None,
        }
    }

    /// Round `round` of `seed` on a fresh instance.
    fn round(&mut self, seed: u64, round: u64) {
        announce(&format!(
            "param_fuzz: seed {seed:#x} round {round} (replay: {})",
            replay(seed, round)
        ));
        stage(format!(
            "creating an instance (seed {seed:#x} round {round})"
        ));
        let mut host = EchoicHost::new().expect("the plugin instantiates");
        let space = ParamSpace::new(host.params().expect("clap.params"));
        let defaults = host.save_state().expect("a fresh instance saves its state");
        let mut r = Round {
            fuzz: self,
            rng: Rng::for_round(seed, round),
            seed,
            round,
            space,
            saved: vec![defaults],
            failed: Vec::new(),
            context: format!("round {round}, inactive"),
        };
        let activations = r.rng.range(1, 3);
        let mut host = Some(host);
        for index in 0..activations {
            let Some(mut h) = host.take() else { break };
            r.context = format!("round {round} before activation {index}, inactive");
            for _ in 0..r.rng.range(0, 3) {
                r.inactive_step(&mut h);
            }
            host = r.activation(h, index, index + 1 == activations);
        }
        if let Some(h) = host {
            r.context = format!("round {round}, end");
            r.stage("destroying the instance");
            r.timed_teardown("destroying the instance", || drop(h));
        }
        r.context = format!("round {round}, after the instance was destroyed");
        if r.fuzz.rss_base_kib.is_some() {
            r.check_memory("after the round");
        } else {
            r.fuzz.rss_base_kib = Some(resident_kib());
        }
        self.stats.rounds += 1;
    }

    /// Prints what was done and fails with every finding.
    fn finish(self, started: Instant) {
        let s = &self.stats;
        println!(
            "param_fuzz: {} rounds in {:.1} s: {} activations, {} blocks, {} frames, {} parameter \
             changes between blocks and {} inside blocks, {} states loaded and {} refused, {} \
             resets, {} output events ({} MIDI), {} subnormal input samples, slowest teardown {} \
             ms, {} MiB resident",
            s.rounds,
            started.elapsed().as_secs_f64(),
            s.activations,
            s.blocks,
            s.frames,
            s.params_set,
            s.params_timed,
            s.states_loaded,
            s.states_refused,
            s.resets,
            s.output_events,
            s.midi,
            s.subnormals_in,
            s.slowest_teardown.as_millis(),
            resident_kib() / 1024,
        );
        if !self.findings.is_empty() {
            let list: Vec<String> = self
                .findings
                .iter()
                .map(|f| {
                    format!(
                        "seed {:#x} round {}: {}: {}\n    replay: {}",
                        f.seed,
                        f.round,
                        f.check,
                        f.detail,
                        replay(f.seed, f.round)
                    )
                })
                .collect();
            panic!("{} findings:\n{}", list.len(), list.join("\n"));
        }
        // The checks must have had something to check.
        assert!(
            s.activations > 0 && s.blocks > 0,
            "nothing was processed: {} activations, {} blocks",
            s.activations,
            s.blocks
        );
        assert!(
            s.output_events > 0,
            "the plugin sent no output event: the event checks checked nothing"
        );
    }
}

/// A number from the environment (decimal, or hex with 0x).
fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok().filter(|t| !t.trim().is_empty())?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text}: not a number ({e})")))
}

/// A seed no earlier run used (time and process id, mixed).
fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    SplitMix64(nanos ^ (u64::from(std::process::id()) << 32)).next_u64()
}

#[test]
fn parameter_space_fuzz() {
    let started = Instant::now();
    let seed = env_number("ECHOIC_FUZZ_HOST_SEED");
    let mut fuzz = Fuzz::new();
    if let Some(minutes) = env_number("ECHOIC_FUZZ_HOST_MINUTES") {
        let until = started + Duration::from_secs(minutes * 60);
        let mut next = seed;
        while Instant::now() < until && fuzz.findings.len() < MAX_FINDINGS {
            let seed = next.take().unwrap_or_else(fresh_seed);
            announce(&format!("param_fuzz: seed {seed:#x}"));
            for round in 0..ROUNDS_PER_SEED {
                if Instant::now() >= until {
                    break;
                }
                fuzz.round(seed, round);
            }
        }
    } else {
        let seed = seed.unwrap_or(DEFAULT_SEED);
        match env_number("ECHOIC_FUZZ_HOST_ROUND") {
            Some(round) => fuzz.round(seed, round),
            None => (0..ROUNDS_PER_SEED).for_each(|round| fuzz.round(seed, round)),
        }
    }
    fuzz.finish(started);
}
