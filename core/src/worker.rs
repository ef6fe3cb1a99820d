//! Runs on the worker: its thread, its settings and the frame loop.
//!
//! The worker thread: drains the frame ring into echoic memory, builds the dilated buffer for
//! every new frame, and rebuilds the filterbank when the listening structure changes. It owns
//! everything that may allocate or take time, so the audio thread never does.

use crate::cochlea::{Cochlea, CochleaConfig, ConfigError};
use crate::dilated::{DilatedSpec, SpecError, MAX_LOOKBACK};
use crate::frame::{Frame, MAX_BANDS};
use crate::memory::EchoicMemory;
use crate::pipeline::CochleaSwap;
use crate::ring::FrameReceiver;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Everything the user chooses about how Echoic listens, independent of the sample rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ListenSettings {
    /// Number of gammatone bands.
    pub n_bands: usize,
    /// Lowest band centre, Hz.
    pub low_hz: f64,
    /// Upper end of the ERB spacing, Hz.
    pub high_hz: f64,
    /// Time between frames, seconds.
    pub hop_seconds: f64,
    /// Shape of the dilated buffer.
    pub spec: DilatedSpec,
}

impl Default for ListenSettings {
    fn default() -> Self {
        let cochlea = CochleaConfig::default();
        Self {
            n_bands: cochlea.n_bands,
            low_hz: cochlea.low_hz,
            high_hz: cochlea.high_hz,
            hop_seconds: cochlea.hop_seconds,
            spec: DilatedSpec::default(),
        }
    }
}

/// The shortest hop [`ListenSettings::validated`] lets through (the Hop parameter's minimum):
/// the worker's work per second grows as the hop shrinks.
pub const MIN_HOP_SECONDS: f64 = 0.005;

/// The longest hop [`ListenSettings::validated`] lets through.
pub const MAX_HOP_SECONDS: f64 = 1.0;

/// The most memory one instance's echoic memory can take, whatever the settings: 4096 frames
/// ([`MAX_LOOKBACK`]) of 128 bands ([`MAX_BANDS`]) with their running summaries take 30.0 MiB.
pub const MAX_MEMORY_BYTES: usize = 31 * 1024 * 1024;

impl ListenSettings {
    /// The nearest settings the pipeline can serve: `self` when they already are. The one check
    /// every path runs before it builds anything — construction, activation, a live change, a
    /// loaded state — so that no parameter value, automation or state can size the echoic
    /// memory beyond [`MAX_MEMORY_BYTES`] or make a step's work grow with its span.
    ///
    /// Bands are clamped to `1..=MAX_BANDS`, the hop to [`MIN_HOP_SECONDS`]..=
    /// [`MAX_HOP_SECONDS`], a band range that is not a rising range of positive frequencies is
    /// replaced by the default one, and the dilated buffer is fitted by
    /// [`DilatedSpec::validated`]. [`describe_adjustment`](Self::describe_adjustment) says what
    /// changed. Allocation-free and bounded.
    pub fn validated(&self) -> Self {
        let default = Self::default();
        let rising = self.low_hz > 0.0 && self.high_hz > self.low_hz && self.high_hz.is_finite();
        Self {
            n_bands: self.n_bands.clamp(1, MAX_BANDS),
            low_hz: if rising { self.low_hz } else { default.low_hz },
            high_hz: if rising {
                self.high_hz
            } else {
                default.high_hz
            },
            hop_seconds: if self.hop_seconds.is_nan() {
                default.hop_seconds
            } else {
                self.hop_seconds.clamp(MIN_HOP_SECONDS, MAX_HOP_SECONDS)
            },
            spec: self.spec.validated(),
        }
    }

    /// What [`validated`](Self::validated) changed in these settings, for the user ("Steps 16 ->
    /// 13, Dilation 4 -> 2: …", with ASCII arrows, which every font has), or `None` when they
    /// are used as they are. Allocates the text.
    pub fn describe_adjustment(&self) -> Option<String> {
        let used = self.validated();
        if used == *self {
            return None;
        }
        let (a, u) = (self, &used);
        let mut changes = Vec::new();
        let mut note = |what: &str, asked: String, used: String| {
            if asked != used {
                changes.push(format!("{what} {asked} -> {used}"));
            }
        };
        note("Bands", a.n_bands.to_string(), u.n_bands.to_string());
        note(
            "Lowest band",
            format!("{} Hz", a.low_hz),
            format!("{} Hz", u.low_hz),
        );
        note(
            "Highest band",
            format!("{} Hz", a.high_hz),
            format!("{} Hz", u.high_hz),
        );
        note(
            "Hop",
            format!("{} ms", a.hop_seconds * 1e3),
            format!("{} ms", u.hop_seconds * 1e3),
        );
        note("Steps", a.spec.steps.to_string(), u.spec.steps.to_string());
        note(
            "Dilation",
            a.spec.dilation.to_string(),
            u.spec.dilation.to_string(),
        );
        let mut text = changes.join(", ");
        if (a.spec.steps, a.spec.dilation) != (u.spec.steps, u.spec.dilation) {
            let span = used.spec.span_seconds(used.hop_seconds);
            text += &format!(
                ": the echoic memory reaches back at most {MAX_LOOKBACK} frames; now {} frames, \
                 {span:.2} s",
                used.spec.memory_frames(),
            );
        }
        Some(text)
    }

    /// The filterbank configuration at a sample rate. Allocation-free.
    pub fn cochlea_config(&self, sample_rate: f64) -> CochleaConfig {
        CochleaConfig {
            sample_rate,
            n_bands: self.n_bands,
            low_hz: self.low_hz,
            high_hz: self.high_hz,
            hop_seconds: self.hop_seconds,
        }
    }
}

/// Why the worker cannot listen as asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// The filterbank refused the configuration.
    #[error(transparent)]
    Cochlea(#[from] ConfigError),
    /// The dilated buffer refused its spec.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

/// Counters and flags the worker publishes; the editor and tests read them.
#[derive(Default)]
pub struct WorkerStatus {
    /// Frames taken from the ring.
    pub frames_received: AtomicU64,
    /// Frames the audio thread dropped because the ring was full.
    pub frames_dropped: AtomicU64,
    /// Dilated buffers built.
    pub buffers_built: AtomicU64,
    /// The memory does not yet reach back as far as the oldest step.
    pub warming_up: AtomicBool,
    /// The last settings error, shown to the user; `None` when the settings in force are good.
    pub error: Mutex<Option<String>>,
}

impl WorkerStatus {
    /// Zeroes the counters and forgets the error, for a new activation. Allocation-free.
    pub fn clear(&self) {
        self.frames_received.store(0, Ordering::Relaxed);
        self.frames_dropped.store(0, Ordering::Relaxed);
        self.buffers_built.store(0, Ordering::Relaxed);
        self.warming_up.store(true, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// What the worker does with each dilated buffer. The listener model and the automation outputs
/// plug in here.
pub trait BufferSink: Send {
    /// Called when the listening settings change (and once before the first buffer), so the sink
    /// can check they still suit it.
    fn settings_changed(&mut self, settings: &ListenSettings) {
        let _ = settings;
    }

    /// Called once per new frame with the frame and the dilated buffer (`steps × bands`, oldest
    /// step first) that ends with it.
    fn on_buffer(&mut self, frame: &Frame, buffer: &[f32], warming_up: bool);
}

/// A sink that does nothing: the cochleagram and memory alone.
impl BufferSink for () {
    fn on_buffer(&mut self, _frame: &Frame, _buffer: &[f32], _warming_up: bool) {}
}

/// The worker's state, independent of the thread that runs it so that tests can drive it.
pub struct Worker<S: BufferSink> {
    /// Frames from the audio thread.
    receiver: FrameReceiver,
    /// Hands replacement filterbanks to the audio thread.
    swap: CochleaSwap,
    /// Sample rate of the activation this worker serves.
    sample_rate: f64,
    /// Settings the running filterbank and memory were built for.
    settings: ListenSettings,
    /// Recent frames.
    memory: EchoicMemory,
    /// The current dilated buffer.
    buffer: Vec<f32>,
    /// Receives every buffer.
    sink: S,
    /// Published counters.
    status: Arc<WorkerStatus>,
}

impl<S: BufferSink> Worker<S> {
    /// A worker for a filterbank the audio thread already runs with `settings` (which should be
    /// [validated](ListenSettings::validated); if they are not, the worker validates them, and
    /// the first [`apply`](Self::apply) rebuilds the filterbank to match). Allocates at most
    /// [`MAX_MEMORY_BYTES`] for the memory.
    pub fn new(
        receiver: FrameReceiver,
        swap: CochleaSwap,
        sample_rate: f64,
        settings: ListenSettings,
        sink: S,
        status: Arc<WorkerStatus>,
    ) -> Self {
        let settings = settings.validated();
        Self {
            receiver,
            swap,
            sample_rate,
            settings,
            memory: EchoicMemory::new(settings.spec.memory_frames(), settings.n_bands),
            buffer: vec![0.0; settings.spec.steps * settings.n_bands],
            sink,
            status,
        }
    }

    /// The sink, for inspection.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, to drive it (tests, tools). Allocation-free.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Takes the sink back, ending the worker.
    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Frames the audio thread dropped so far because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.receiver.dropped()
    }

    /// Applies new settings, [validated](ListenSettings::validated) first. A structural change
    /// (bands, range, hop) builds a new filterbank and offers it to the audio thread; the memory
    /// restarts when the first frame of the new layout arrives. Errors leave the running
    /// settings in force and are published. Allocates (at most [`MAX_MEMORY_BYTES`] for the
    /// memory).
    pub fn apply(&mut self, wanted: ListenSettings) {
        let wanted = wanted.validated();
        if wanted == self.settings {
            return;
        }
        let result = self.try_apply(wanted);
        *self.status.error.lock().unwrap_or_else(|e| e.into_inner()) =
            result.err().map(|e| e.to_string());
    }

    fn try_apply(&mut self, wanted: ListenSettings) -> Result<(), SettingsError> {
        wanted.spec.validate()?;
        let structural = wanted.cochlea_config(self.sample_rate)
            != self.settings.cochlea_config(self.sample_rate);
        if structural {
            if self.swap.is_pending() {
                return Ok(()); // retried on the next call, once the last swap went through
            }
            let cochlea = Box::new(Cochlea::new(wanted.cochlea_config(self.sample_rate))?);
            if self.swap.offer(cochlea).is_err() {
                return Ok(());
            }
        }
        if structural || wanted.spec.memory_frames() != self.settings.spec.memory_frames() {
            self.memory = EchoicMemory::new(wanted.spec.memory_frames(), wanted.n_bands);
        }
        self.buffer = vec![0.0; wanted.spec.steps * wanted.n_bands];
        self.settings = wanted;
        self.sink.settings_changed(&wanted);
        Ok(())
    }

    /// Takes every waiting frame from the ring into memory and the sink. Returns how many.
    /// Allocation-free once warmed up (the sink may allocate).
    pub fn drain(&mut self) -> usize {
        self.drain_until(&AtomicBool::new(false))
    }

    /// [`drain`](Self::drain), but checks `stop` before every frame and returns early once it is
    /// set, so that a stop request waits for at most one frame's work (memory, buffer and sink).
    pub fn drain_until(&mut self, stop: &AtomicBool) -> usize {
        let mut count = 0;
        while !stop.load(Ordering::Acquire) {
            let Some(frame) = self.receiver.recv() else {
                break;
            };
            count += 1;
            // Published per frame: a slow sink may keep this loop busy for a long time.
            self.status
                .frames_dropped
                .store(self.receiver.dropped(), Ordering::Relaxed);
            if !self.memory.push(&frame) {
                continue; // a frame of the previous layout, still in the ring
            }
            if let Some(status) = self.settings.spec.build(&self.memory, &mut self.buffer) {
                self.status
                    .warming_up
                    .store(status.warming_up, Ordering::Relaxed);
                self.status.buffers_built.fetch_add(1, Ordering::Relaxed);
                self.sink.on_buffer(&frame, &self.buffer, status.warming_up);
            }
        }
        self.status
            .frames_received
            .fetch_add(count as u64, Ordering::Relaxed);
        self.status
            .frames_dropped
            .store(self.receiver.dropped(), Ordering::Relaxed);
        count
    }
}

/// How long the worker parks when the ring is empty: well under a hop, so frames are picked up
/// promptly, and long enough that an idle worker costs nothing measurable.
const IDLE_PARK: Duration = Duration::from_millis(2);

/// A running worker thread. Dropping it stops and joins the thread.
pub struct WorkerHandle {
    /// Asks the thread to finish.
    stop: Arc<AtomicBool>,
    /// The thread, joined on drop.
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts a thread that drains `worker` until stopped, parking while idle, and before each
    /// drain applies the settings `settings` returns (read from the plugin's parameters).
    /// Allocates; spawns a thread.
    pub fn spawn<S: BufferSink + 'static>(
        mut worker: Worker<S>,
        mut settings: impl FnMut() -> ListenSettings + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("echoic-worker".into())
            .spawn(move || {
                while !thread_stop.load(Ordering::Acquire) {
                    worker.apply(settings());
                    if worker.drain_until(&thread_stop) == 0 {
                        std::thread::park_timeout(IDLE_PARK);
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops and joins the thread. Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
