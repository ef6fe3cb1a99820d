//! Offline: speed changes of training sounds, as resampling makes them, rebuilt from the
//! cochlea's frames.
//!
//! Playing a recording `s` times as fast (resampling it) changes two things a dilated buffer
//! sees: every moment comes `s` times sooner, and every frequency is `s` times higher. Training
//! keeps every analysed frame (dB) beside its buffers, so [`SpeedChange::rebuild`] makes the
//! buffer the faster or slower sound would give: each step reads the frames at `s` times its
//! distance from the newest one (interpolated between neighbouring frames, or pooled over the
//! stretched span), and each band reads the frame at `1/s` of its centre frequency
//! (interpolated between neighbouring bands). What this leaves out is that an auditory filter's
//! bandwidth does not scale with `s` at low frequencies, which moves a noise's band energy by at
//! most `10·log10(s)` dB (0.4 dB at `s` = 1.1), well inside gain augmentation's range; the
//! module's test measures the whole difference against real resampling.

use echoic_core::dilated::{DilatedSpec, Pooling};
use echoic_core::erb::erb_space;
use echoic_core::frame::MAX_BANDS;
use echoic_core::rng::SplitMix64;
use echoic_core::worker::ListenSettings;

/// Speed changes drawn for training buffers, and the cochlea and buffer layout they are
/// rebuilt for.
#[derive(Clone, Debug)]
pub(super) struct SpeedChange {
    /// Largest speed ratio: speeds are drawn log-uniformly between `1 / largest` and
    /// `largest`, so that slowing down is as likely and as large as speeding up.
    largest: f64,
    /// The cochlea's band centres in Hz, ascending: where each band finds the frequency it
    /// hears at the new speed.
    centres: Vec<f64>,
    /// The dilated buffer's layout: which frames each step covers.
    spec: DilatedSpec,
}

impl SpeedChange {
    /// Speed changes up to `fraction` (0.1: between 1/1.1 and 1.1 times as fast) for buffers
    /// listened to with `settings`. Allocates.
    pub(super) fn new(fraction: f64, settings: &ListenSettings) -> Self {
        Self {
            largest: 1.0 + fraction.max(0.0),
            centres: erb_space(settings.low_hz, settings.high_hz, settings.n_bands),
            spec: settings.spec,
        }
    }

    /// A speed, log-uniform between `1 / largest` and `largest`. Allocation-free.
    pub(super) fn draw(&self, rng: &mut SplitMix64) -> f64 {
        self.largest.powf(2.0 * rng.next_f64() - 1.0)
    }

    /// Writes into `out` (`steps × n_bands`, oldest step first) the dilated buffer whose newest
    /// frame is `frames[newest]`, as the sound played `speed` times as fast would give it.
    /// `frames` holds `n_bands` dB values per frame; `first` is the first frame of the analysed
    /// piece, which earlier frames repeat, as a warming memory does. At speed 1 the result is
    /// the buffer the pipeline built (to rounding, for mean pooling). Allocation-free.
    pub(super) fn rebuild(
        &self,
        frames: &[f32],
        first: usize,
        newest: usize,
        speed: f64,
        out: &mut [f32],
    ) {
        let n_bands = self.centres.len();
        let frame = |k: usize| &frames[k * n_bands..][..n_bands];
        // The frame `offset` frames (fractional: interpolated) before the newest, within the piece.
        let back = |offset: f64| (newest as f64 - offset).clamp(first as f64, newest as f64);
        for (step, row) in out.chunks_exact_mut(n_bands).rev().enumerate() {
            let mut heard = [0.0f32; MAX_BANDS];
            let heard = &mut heard[..n_bands];
            match self.spec.pooling {
                Pooling::Pick => {
                    let position = back(speed * (self.spec.lookback(step) - 1) as f64);
                    let earlier = position.floor() as usize;
                    let t = (position - earlier as f64) as f32;
                    let (a, b) = (frame(earlier), frame((earlier + 1).min(newest)));
                    for ((h, &a), &b) in heard.iter_mut().zip(a).zip(b) {
                        *h = a + t * (b - a);
                    }
                }
                pooling => {
                    // The covered look-backs, their span stretched by `speed` about its edges.
                    let (nearest, farthest) = self.spec.covered(step);
                    let near = ((nearest as f64 - 1.5) * speed + 0.5).round().max(0.0);
                    let far = ((farthest as f64 - 0.5) * speed - 0.5).round().max(near);
                    let count = (far - near + 1.0) as f32;
                    heard.fill(if pooling == Pooling::Max {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    });
                    // Offsets past the piece's start read its first frame, once per offset.
                    for offset in near as usize..=far as usize {
                        let k = newest.saturating_sub(offset).max(first);
                        for (h, &v) in heard.iter_mut().zip(frame(k)) {
                            *h = if pooling == Pooling::Max {
                                h.max(v)
                            } else {
                                *h + v / count
                            };
                        }
                    }
                }
            }
            self.warp_bands(heard, speed, row);
        }
    }

    /// Each band of `row` reads `heard` at `1/speed` of its centre frequency, interpolated
    /// between the two nearest bands (the edge bands beyond the range). Allocation-free.
    fn warp_bands(&self, heard: &[f32], speed: f64, row: &mut [f32]) {
        let last = self.centres.len() - 1;
        for (value, &centre) in row.iter_mut().zip(&self.centres) {
            let source = centre / speed;
            let above = self.centres.partition_point(|&c| c <= source);
            *value = match above {
                0 => heard[0],
                k if k > last => heard[last],
                k => {
                    let (low, high) = (self.centres[k - 1], self.centres[k]);
                    let t = ((source - low) / (high - low)) as f32;
                    heard[k - 1] + t * (heard[k] - heard[k - 1])
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio_file::{decode_mono_at, resample};
    use crate::offline::analyse;
    use echoic_core::dilated::Dilation;

    const RATE: u32 = 22_050;

    fn fixture(name: &str) -> Vec<f32> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name);
        decode_mono_at(&path, RATE).unwrap().samples
    }

    /// At speed 1 every pooling rebuilds the pipeline's own buffers, including those whose
    /// memory was still warming up.
    #[test]
    fn speed_one_rebuilds_the_pipelines_buffers() {
        let samples = fixture("speech_june.wav");
        for (kind, dilation, pooling) in [
            (Dilation::Exponential, 2, Pooling::Pick),
            (Dilation::Exponential, 2, Pooling::Mean),
            (Dilation::Linear, 3, Pooling::Max),
        ] {
            let mut settings = ListenSettings::default();
            settings.spec = DilatedSpec {
                kind,
                dilation,
                pooling,
                ..settings.spec
            };
            let analysis =
                analyse(&samples[..RATE as usize * 3], RATE.into(), &settings, true).unwrap();
            let change = SpeedChange::new(0.1, &settings);
            let mut rebuilt = vec![0.0; analysis.buffer(0).len()];
            for newest in (0..analysis.len()).step_by(7) {
                change.rebuild(&analysis.frames, 0, newest, 1.0, &mut rebuilt);
                let built = analysis.buffer(newest);
                let worst = rebuilt
                    .iter()
                    .zip(built)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                assert!(worst < 1e-3, "{pooling:?}, frame {newest}: {worst} dB");
            }
        }
    }

    /// Against real resampling (the speech and music fixtures played 1.1 and 0.9 times as
    /// fast through `rubato`, then analysed): the rebuilt buffers are far nearer the real ones
    /// than the unchanged buffers of the same moment are (1.1–1.7 dB RMS against 4.1–15.7 dB
    /// here). Rebuilt in time alone, without the bands' warp, the music is 2.8 dB away at 1.1
    /// and fails; with the warp the wrong way round, the speech is 8.5 dB away and fails.
    #[test]
    fn rebuilt_buffers_are_near_what_resampled_audio_gives() {
        let settings = ListenSettings::default();
        let change = SpeedChange::new(0.1, &settings);
        for name in ["speech_june.wav", "music_armygeddon.wav"] {
            let samples = fixture(name);
            let samples = &samples[..samples.len().min(RATE as usize * 12)];
            let original = analyse(samples, RATE.into(), &settings, true).unwrap();
            // Played `speed` times as fast: read as if recorded at `RATE · speed`.
            for tenths in [11usize, 9] {
                let speed = tenths as f64 / 10.0;
                let faster = resample(samples, RATE * tenths as u32 / 10, RATE);
                let real = analyse(&faster, RATE.into(), &settings, true).unwrap();
                let (mut rebuilt_error, mut unchanged_error, mut n) = (0.0, 0.0, 0);
                let mut rebuilt = vec![0.0; real.buffer(0).len()];
                // Frames ending together: frame k of the changed sound ends where frame
                // `speed · (k + 1) − 1` of the original does, an integer every ten frames.
                for end in (200..real.len())
                    .step_by(10)
                    .filter(|&e| e < original.len())
                {
                    let k = end - 1;
                    let newest = tenths * end / 10 - 1;
                    if newest >= original.len() {
                        break;
                    }
                    change.rebuild(&original.frames, 0, newest, speed, &mut rebuilt);
                    let unchanged = original.buffer(newest);
                    for ((&r, &b), &u) in real.buffer(k).iter().zip(&rebuilt).zip(unchanged) {
                        // Bands near the floor carry no sound to compare.
                        if r > -60.0 {
                            rebuilt_error += f64::from(r - b).powi(2);
                            unchanged_error += f64::from(r - u).powi(2);
                            n += 1;
                        }
                    }
                }
                let rms = |e: f64| (e / n as f64).sqrt();
                let (rebuilt_rms, unchanged_rms) = (rms(rebuilt_error), rms(unchanged_error));
                eprintln!(
                    "{name} at {speed}: rebuilt {rebuilt_rms:.2} dB RMS from the real \
                     buffers, unchanged {unchanged_rms:.2} dB ({n} values)"
                );
                assert!(n > 5_000, "{n}");
                assert!(
                    rebuilt_rms < 0.5 * unchanged_rms,
                    "{name} at {speed}: {rebuilt_rms} against {unchanged_rms}"
                );
            }
        }
    }

    #[test]
    fn speeds_are_drawn_log_uniformly_within_the_range() {
        let change = SpeedChange::new(0.1, &ListenSettings::default());
        let mut rng = SplitMix64(5);
        let speeds: Vec<f64> = (0..10_000).map(|_| change.draw(&mut rng)).collect();
        assert!(speeds.iter().all(|s| (1.0 / 1.1..=1.1).contains(s)));
        let faster = speeds.iter().filter(|&&s| s > 1.0).count();
        assert!((4_800..5_200).contains(&faster), "{faster}");
        let mean_log = speeds.iter().map(|s| s.ln()).sum::<f64>() / speeds.len() as f64;
        assert!(mean_log.abs() < 0.002, "{mean_log}");
    }
}
