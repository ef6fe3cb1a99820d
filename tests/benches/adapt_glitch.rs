//! Does *Adapt* make the audio thread glitch? The wall time of every `process` call while the
//! plugin idles and while it adapts, through the CLAP test host.
//!
//! ```sh
//! cargo xtask bundle echoic && cargo bench -p echoic-host-tests --bench adapt_glitch
//! ```
//!
//! It loads the debug bundle (`target/bundled/Echoic.clap`, with `assert_process_allocs`), or the
//! bundle in `$ECHOIC_BUNDLE_DIR` (point it at a folder holding a release `Echoic.clap` to
//! measure that), and plays the speech fixture, resampled to 48 kHz and looped, in 256-sample
//! mono blocks paced in real time, as a DAW plays them (the adaptation thread runs at
//! `SCHED_IDLE` and takes only the time nothing else wants). Speech, because on it the shipped
//! listener really adapts (12 epochs); on the looped music no epoch beats it and the job is over
//! in a second.
//!
//! 1. 2 s of warm-up, not measured;
//! 2. (a) 20 s idle: no adaptation;
//! 3. (b) Adapt pressed: every block until the saved state holds the adapted listener (the
//!    swap happened), polled every 80 ms between blocks.
//!
//! Printed: per phase the block count, median, p99 and slowest block (and when it came), and
//! the blocks over 1 ms; the ratios slowest(adapting)/slowest(idle) and p99(adapting)/p99(idle);
//! the adaptation's wall time. A block's time is the host's whole `process_block` call (the
//! plugin's `process` plus the host's copying of 256 samples in and out), so a block the OS
//! preempted for another process counts too: on a busy machine the slowest blocks say more
//! about the machine than the plugin. No assertions: speed lives in benchmarks.

use echoic_host_tests::{
    passed_through, recording, resampled, state_document, AudioConfig, EchoicHost,
};
use std::time::{Duration, Instant};

const RATE: f64 = 48_000.0;
const BLOCK: usize = 256;
/// Blocks between two looks at the saved state while adapting: 80 ms.
const POLL_BLOCKS: usize = 15;
const WARM_UP_SECONDS: f64 = 2.0;
const IDLE_SECONDS: f64 = 20.0;
/// Gives up on the adaptation after this long.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Plays one block of the looped recording, paced in real time; returns the block's time.
struct Player {
    host: EchoicHost,
    signal: Vec<f32>,
    at: usize,
    input: Vec<f32>,
    output: Vec<f32>,
    start: Instant,
    frames: u64,
}

impl Player {
    fn block(&mut self) -> Duration {
        for s in &mut self.input {
            *s = self.signal[self.at];
            self.at = (self.at + 1) % self.signal.len();
        }
        let t = Instant::now();
        self.host
            .process_block(&[&self.input[..]], &mut [&mut self.output[..]])
            .expect("process");
        let took = t.elapsed();
        assert!(
            self.input
                .iter()
                .zip(&self.output)
                .all(|(x, y)| passed_through(*x).to_bits() == y.to_bits()),
            "the audio did not pass through"
        );
        self.host.take_midi();
        self.frames += BLOCK as u64;
        let due = Duration::from_secs_f64(self.frames as f64 / RATE);
        if let Some(wait) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(wait);
        }
        took
    }

    /// Whether the saved state holds an adapted listener.
    fn adapted(&mut self) -> bool {
        let doc = state_document(&self.host.save_state().expect("save")).expect("a state");
        doc["fields"]["adapted-listener"].as_str() != Some("null")
    }
}

/// Median, p99 and slowest in µs, and how many blocks took over 1 ms.
fn stats(times: &[Duration]) -> (f64, f64, f64, usize) {
    let mut us: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e6).collect();
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() - 1) as f64 * q).round() as usize];
    let over = us.iter().filter(|&&t| t > 1_000.0).count();
    (at(0.5), at(0.99), at(1.0), over)
}

fn main() {
    let (speech, rate) = recording("speech_june.wav");
    let mut host = EchoicHost::new().expect("instantiate Echoic");
    host.activate(AudioConfig::new(RATE, BLOCK as u32, 1))
        .expect("activate");
    let adapt = host
        .param_by_name("Adapt")
        .unwrap()
        .expect("the Adapt parameter");
    let mut p = Player {
        host,
        signal: resampled(&speech, rate, RATE),
        at: 0,
        input: vec![0.0; BLOCK],
        output: vec![0.0; BLOCK],
        start: Instant::now(),
        frames: 0,
    };
    let blocks = |seconds: f64| (seconds * RATE / BLOCK as f64).round() as usize;
    println!(
        "bundle: {}",
        echoic_host_tests::clap_bundle_path().display()
    );

    for _ in 0..blocks(WARM_UP_SECONDS) {
        p.block();
    }
    let idle: Vec<Duration> = (0..blocks(IDLE_SECONDS)).map(|_| p.block()).collect();

    p.host.set_param(adapt.id, 1.0).unwrap();
    let pressed = Instant::now();
    let mut adapting = Vec::new();
    let adapt_wall = loop {
        for _ in 0..POLL_BLOCKS {
            adapting.push(p.block());
        }
        if p.adapted() {
            break Some(pressed.elapsed());
        }
        if pressed.elapsed() > TIMEOUT {
            break None;
        }
    };
    p.host.set_param(adapt.id, 0.0).unwrap();
    p.block();

    let (idle_median, idle_p99, idle_max, idle_over) = stats(&idle);
    let (adapt_median, adapt_p99, adapt_max, adapt_over) = stats(&adapting);
    let slowest_at = |times: &[Duration]| {
        let i = (0..times.len()).max_by_key(|&i| times[i]).unwrap_or(0);
        i as f64 * BLOCK as f64 / RATE
    };
    println!("process() per {BLOCK}-sample block at {RATE} Hz, paced in real time:");
    println!(
        "  idle:     {:>6} blocks, median {idle_median:8.1} µs, p99 {idle_p99:8.1} µs, \
         slowest {idle_max:8.1} µs ({:.2} s in), {idle_over} over 1 ms",
        idle.len(),
        slowest_at(&idle)
    );
    println!(
        "  adapting: {:>6} blocks, median {adapt_median:8.1} µs, p99 {adapt_p99:8.1} µs, \
         slowest {adapt_max:8.1} µs ({:.2} s after pressing Adapt), {adapt_over} over 1 ms",
        adapting.len(),
        slowest_at(&adapting)
    );
    println!(
        "  slowest(adapting)/slowest(idle) {:.2}, p99(adapting)/p99(idle) {:.2}; the block \
         budget is {:.0} µs",
        adapt_max / idle_max,
        adapt_p99 / idle_p99,
        BLOCK as f64 / RATE * 1e6
    );
    match adapt_wall {
        Some(wall) => println!(
            "  adaptation: {:.2} s of wall time from pressing Adapt to the swap (±80 ms)",
            wall.as_secs_f64()
        ),
        None => println!("  adaptation: no swap within {TIMEOUT:?}"),
    }
}
