//! Frame timing, shown in the status bar and written to the test probe: how long `ui()` takes
//! (building the frame) and how long from one frame to the next (everything: layout, tessellation,
//! rendering, waiting for the next repaint).

use std::collections::VecDeque;
use std::time::Instant;

/// Frames the rolling statistics cover: 4 s at 60 fps.
const WINDOW: usize = 240;

/// Rolling frame timings.
#[derive(Default)]
pub struct FrameStats {
    /// When the current frame's `ui()` started.
    started: Option<Instant>,
    /// When the previous frame's `ui()` started.
    previous: Option<Instant>,
    /// Time spent in `ui()` per frame, ms.
    ui_ms: VecDeque<f32>,
    /// Time from one frame's start to the next, ms.
    interval_ms: VecDeque<f32>,
    /// Frames drawn since the window opened.
    pub frames: u64,
}

/// A summary of the recent frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    /// Frames drawn since the window opened.
    pub frames: u64,
    /// Frames per second over the window (from the mean interval).
    pub fps: f32,
    /// Mean time in `ui()`, ms.
    pub ui_ms_mean: f32,
    /// 95th percentile of the time in `ui()`, ms.
    pub ui_ms_p95: f32,
    /// Longest time in `ui()`, ms.
    pub ui_ms_max: f32,
    /// Mean frame interval, ms.
    pub interval_ms_mean: f32,
    /// 95th percentile of the frame interval, ms.
    pub interval_ms_p95: f32,
}

fn push(queue: &mut VecDeque<f32>, value: f32) {
    if queue.len() == WINDOW {
        queue.pop_front();
    }
    queue.push_back(value);
}

fn mean_p95_max(queue: &VecDeque<f32>) -> (f32, f32, f32) {
    if queue.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted: Vec<f32> = queue.iter().copied().collect();
    sorted.sort_by(f32::total_cmp);
    let mean = sorted.iter().sum::<f32>() / sorted.len() as f32;
    let p95 = sorted[((sorted.len() - 1) as f32 * 0.95).round() as usize];
    (mean, p95, sorted[sorted.len() - 1])
}

impl FrameStats {
    /// Marks the start of a frame.
    pub fn begin(&mut self) {
        let now = Instant::now();
        if let Some(previous) = self.previous {
            push(&mut self.interval_ms, (now - previous).as_secs_f32() * 1e3);
        }
        self.previous = Some(now);
        self.started = Some(now);
    }

    /// Marks the end of a frame's `ui()`.
    pub fn end(&mut self) {
        if let Some(started) = self.started.take() {
            push(&mut self.ui_ms, started.elapsed().as_secs_f32() * 1e3);
            self.frames += 1;
        }
    }

    /// The recent frames in numbers.
    pub fn summary(&self) -> Summary {
        let (ui_ms_mean, ui_ms_p95, ui_ms_max) = mean_p95_max(&self.ui_ms);
        let (interval_ms_mean, interval_ms_p95, _) = mean_p95_max(&self.interval_ms);
        Summary {
            frames: self.frames,
            fps: if interval_ms_mean > 0.0 {
                1000.0 / interval_ms_mean
            } else {
                0.0
            },
            ui_ms_mean,
            ui_ms_p95,
            ui_ms_max,
            interval_ms_mean,
            interval_ms_p95,
        }
    }
}
