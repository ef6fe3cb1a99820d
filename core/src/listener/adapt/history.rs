//! The history's side of adaptation: checks that it suits the model and has something to teach,
//! and turns its frames into the dilated buffers the plugin would have fed the model.

use super::AdaptError;
use crate::dilated::DilatedSpec;
use crate::frame::Frame;
use crate::listener::format::ListenerMetadata;
use crate::memory::EchoicMemory;
use crate::worker::ListenSettings;

/// Share of the history, its newest frames, held out to judge each epoch and stop early.
pub const HOLD_OUT_FRACTION: usize = 10;

/// Fewest training sequences adaptation runs on: fewer would fit their noise, not the sound.
pub const MIN_TRAIN_SEQUENCES: usize = 32;

/// Fewest held-out sequences: fewer make the early stop a coin toss.
pub const MIN_HELD_OUT_SEQUENCES: usize = 8;

/// A band whose values span less than this (dB) over the whole history does not vary.
const CONSTANT_DB: f32 = 1e-3;

/// A frame whose loudest band is this far (dB) below the history's loudest frame is a pause: the
/// sound before it and the sound after it are taken to be two sounds.
pub const PAUSE_BELOW_PEAK_DB: f32 = 40.0;

/// Refuses a history heard with other features than the model's: its frames would mean
/// something else to the network. Allocates only the error.
pub(super) fn check_features(
    meta: &ListenerMetadata,
    settings: &ListenSettings,
    values: usize,
) -> Result<(), AdaptError> {
    let model = &meta.features;
    let mismatch = |history: String, model: String| Err(AdaptError::Mismatch { history, model });
    if settings.n_bands != model.n_bands {
        return mismatch(
            format!("{} bands", settings.n_bands),
            format!("{} bands", model.n_bands),
        );
    }
    if settings.spec != model.spec {
        let describe = |s: &DilatedSpec| {
            format!(
                "{} steps, dilation {} ({:?}, {:?})",
                s.steps, s.dilation, s.kind, s.pooling
            )
        };
        return mismatch(describe(&settings.spec), describe(&model.spec));
    }
    if (settings.low_hz, settings.high_hz, settings.hop_seconds)
        != (model.low_hz, model.high_hz, model.hop_seconds)
    {
        let describe =
            |low: f64, high: f64, hop: f64| format!("bands {low}–{high} Hz every {} ms", hop * 1e3);
        return mismatch(
            describe(settings.low_hz, settings.high_hz, settings.hop_seconds),
            describe(model.low_hz, model.high_hz, model.hop_seconds),
        );
    }
    if !values.is_multiple_of(model.n_bands) {
        return mismatch(
            format!("{values} values, not whole frames"),
            format!("frames of {} bands", model.n_bands),
        );
    }
    Ok(())
}

/// Whether some band of `frames_db` (`n_bands` per frame) varies over the history: a silent or
/// constant history has nothing to teach. Allocation-free.
pub(super) fn varies(frames_db: &[f32], n_bands: usize) -> bool {
    (0..n_bands).any(|band| {
        let mut values = frames_db.iter().skip(band).step_by(n_bands);
        let first = values.next().copied().unwrap_or(0.0);
        let (lo, hi) = values.fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        hi - lo >= CONSTANT_DB
    })
}

/// The frames of the history `[0, split)` trained on and `[split, frames)` held out: the newest
/// [`HOLD_OUT_FRACTION`]-th by time. Allocation-free.
pub(super) fn split(frames: usize) -> usize {
    frames - frames / HOLD_OUT_FRACTION
}

/// Sequences kept from `frames` consecutive frames: one every `stride` of the buffers built once
/// the memory is full. Allocation-free.
fn kept(frames: usize, memory_frames: usize, stride: usize) -> usize {
    (frames + 1)
        .saturating_sub(memory_frames)
        .div_ceil(stride.max(1))
}

/// For each buffer that [`sequences`] keeps from `frames_db` at `stride`, the last kept buffer
/// reached from it without a pause ([`PAUSE_BELOW_PEAK_DB`]) among the frames between their
/// newest frames: how far one sound runs on. A buffer whose newest frame is a pause reaches
/// only itself. Allocates the result.
pub(super) fn sound_runs(
    frames_db: &[f32],
    n_bands: usize,
    spec: &DilatedSpec,
    stride: usize,
) -> Vec<usize> {
    let stride = stride.max(1);
    let peak = |frame: &[f32]| frame.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let peaks: Vec<f32> = frames_db.chunks_exact(n_bands).map(peak).collect();
    let loudest = peaks.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let pause = |frame: usize| peaks[frame] < loudest - PAUSE_BELOW_PEAK_DB;
    let memory = spec.memory_frames();
    let n = kept(peaks.len(), memory, stride);
    let newest = |i: usize| memory - 1 + i * stride;
    let mut runs = vec![0; n];
    let mut end = n.saturating_sub(1);
    for i in (0..n).rev() {
        if (newest(i)..=newest((i + 1).min(n - 1))).any(pause) {
            end = i;
        }
        runs[i] = end;
    }
    runs
}

/// The fewest frames a history needs for [`MIN_TRAIN_SEQUENCES`] and
/// [`MIN_HELD_OUT_SEQUENCES`] at this spec and stride. Allocation-free.
pub fn frames_needed(spec: &DilatedSpec, stride: usize) -> usize {
    let memory = spec.memory_frames();
    let enough = |n: usize| {
        let train = split(n);
        kept(train, memory, stride) >= MIN_TRAIN_SEQUENCES
            && kept(n - train, memory, stride) >= MIN_HELD_OUT_SEQUENCES
    };
    // The held-out part alone needs this many frames; a few more at most satisfy both.
    let mut n = HOLD_OUT_FRACTION * (memory + (MIN_HELD_OUT_SEQUENCES - 1) * stride.max(1));
    while !enough(n) {
        n += 1;
    }
    n
}

/// The dilated buffers (dB, `steps × n_bands` each, laid end to end) the worker builds from
/// consecutive frames `frames_db`, one per frame once the memory is full (the first ends at frame
/// [`DilatedSpec::memory_frames`]` − 1`): what a listener embeds when a learned sound's captured
/// frames are heard again. Allocates the memory and the buffers.
pub fn dilated_buffers(frames_db: &[f32], n_bands: usize, spec: &DilatedSpec) -> Vec<f32> {
    sequences(frames_db, n_bands, spec, 1)
}

/// The dilated buffers (dB, `steps × n_bands` each, laid end to end) of consecutive frames
/// `frames_db`, built as the worker builds them: every frame through an [`EchoicMemory`] and
/// [`DilatedSpec::build`], keeping one buffer every `stride` once the memory is full. Allocates
/// the memory and the buffers.
pub(super) fn sequences(
    frames_db: &[f32],
    n_bands: usize,
    spec: &DilatedSpec,
    stride: usize,
) -> Vec<f32> {
    let sequence = spec.steps * n_bands;
    let frames = frames_db.len() / n_bands;
    let mut out = Vec::with_capacity(kept(frames, spec.memory_frames(), stride) * sequence);
    let mut memory = EchoicMemory::new(spec.memory_frames(), n_bands);
    let mut buffer = vec![0.0; sequence];
    let mut frame = Frame::silent(n_bands as u16);
    let mut usable = 0usize;
    for (seq, energies) in frames_db.chunks_exact(n_bands).enumerate() {
        frame.seq = seq as u64;
        frame.bands[..n_bands].copy_from_slice(energies);
        memory.push(&frame);
        match spec.build(&memory, &mut buffer) {
            Some(status) if !status.warming_up => {
                if usable.is_multiple_of(stride.max(1)) {
                    out.extend_from_slice(&buffer);
                }
                usable += 1;
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sounds_run_stops_at_the_next_pause() {
        let spec = DilatedSpec {
            steps: 4,
            ..DilatedSpec::default()
        };
        let n_bands = 2;
        // Loud frames, a pause at frame 14 (60 dB down), loud again, a quiet frame 30 dB down at
        // 20 (not a pause), and a pause at the end.
        let frames: Vec<f32> = (0..30)
            .flat_map(|i| match i {
                14 | 27.. => [-70.0, -80.0],
                20 => [-40.0, -45.0],
                _ => [-10.0, -20.0 - i as f32 * 0.1],
            })
            .collect();
        let stride = 2;
        let runs = sound_runs(&frames, n_bands, &spec, stride);
        let sequence = spec.steps * n_bands;
        assert_eq!(
            runs.len(),
            sequences(&frames, n_bands, &spec, stride).len() / sequence
        );
        // Kept buffers end at frames 7, 9, …, 29: the first four run up to the one ending at 13;
        // the pause at 14 lies before the one ending at 15; frame 20 is no pause; buffers from
        // the one ending at 27 end on pauses.
        assert_eq!(runs, [3, 3, 3, 3, 9, 9, 9, 9, 9, 9, 10, 11]);
    }

    #[test]
    fn sequences_are_the_workers_buffers_and_the_counts_agree() {
        let spec = DilatedSpec {
            steps: 4,
            ..DilatedSpec::default()
        };
        let n_bands = 2;
        let frames: Vec<f32> = (0..40).flat_map(|i| [i as f32, -(i as f32)]).collect();
        let stride = 3;
        let out = sequences(&frames, n_bands, &spec, stride);
        let sequence = spec.steps * n_bands;
        assert_eq!(out.len() / sequence, kept(40, spec.memory_frames(), stride));
        // The first buffer ends at frame 7 (the memory holds 8) and looks back 1, 2, 4, 8.
        assert_eq!(
            &out[..sequence],
            &[0.0, 0.0, 4.0, -4.0, 6.0, -6.0, 7.0, -7.0]
        );
        // The next kept one ends `stride` frames later.
        assert_eq!(out[2 * sequence - 2], 10.0);
        for stride in [1, 5] {
            let n = frames_needed(&spec, stride);
            let train = split(n);
            assert!(kept(train, spec.memory_frames(), stride) >= MIN_TRAIN_SEQUENCES);
            assert!(kept(n - train, spec.memory_frames(), stride) >= MIN_HELD_OUT_SEQUENCES);
            let fewer = split(n - 1);
            assert!(
                kept(fewer, spec.memory_frames(), stride) < MIN_TRAIN_SEQUENCES
                    || kept(n - 1 - fewer, spec.memory_frames(), stride) < MIN_HELD_OUT_SEQUENCES
            );
        }
    }

    #[test]
    fn only_a_band_that_moves_varies() {
        assert!(!varies(&[-100.0; 12], 3));
        let mut frames = vec![-40.0; 12];
        assert!(!varies(&frames, 3));
        frames[7] = -39.0;
        assert!(varies(&frames, 3));
    }
}
