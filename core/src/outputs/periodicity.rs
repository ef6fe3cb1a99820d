//! Runs on the worker: the Periodicity and Period sources.
//!
//! Periodicity: a summary autocorrelogram of the band envelopes at the frame rate.
//!
//! Slaney & Lyon's correlogram (1990) autocorrelates every cochlear channel and sums the
//! channels into a summary autocorrelation (SACF), whose peaks give the periods common to the
//! channels. Here the channels are the per-band log-energy frames, so the time axis is the hop
//! (10 ms) and the periods found are rhythmic ones, not pitch.
//!
//! Every hop, over the last `W` frames (default 256, 2.56 s at a 10 ms hop):
//! 1. each band's envelope `x_b(t)` (dB) is floored at `max − 60 dB` (the maximum over the whole
//!    window and all bands), so that the noise of near-silent bands cannot dominate, and then
//!    detrended (least-squares line removed), so that a crescendo is not mistaken for a long
//!    period;
//! 2. `R(l) = Σ_b Σ_t x_b(t) x_b(t + l)`, computed as one inverse real FFT of the summed power
//!    spectra of the zero-padded envelopes (`realfft`, plans and buffers made once);
//! 3. `ρ(l) = (R(l) / (W − l)) / (R(0) / W)`: the unbiased, normalised SACF, 1 at lag 0, about 1
//!    at the period of a perfectly periodic envelope, about 0 at every lag for noise;
//! 4. among the local maxima of `ρ` with lags in `[min, max]` period, the *shortest* lag whose
//!    peak reaches 90 % of the highest is the dominant period (so that a beat is not reported as
//!    its double, which the unbiased SACF shows as an equal peak); its lag is refined by a
//!    parabola through the three points around the peak. Taking only local maxima keeps a slowly
//!    decaying SACF (a smooth, aperiodic envelope) from reading as periodic.
//!
//! Periodicity strength is `clamp(ρ(peak), 0, 1)`; 0 when no peak lies in range, during the
//! first half window after a reset, and in silence. The period is in seconds, held at its last
//! value when no peak is found (it is 0 until the first is). Because the input is scaled dB, a
//! gain change alters neither value.
//!
//! # Limits
//! The frame rate bounds what can be seen: at a 10 ms hop, periods shorter than a few hops are
//! smeared by the hop's integration (hence the 0.1 s minimum; pitch periods are far out of
//! reach), and the lag resolution is one hop (10 ms, about 2 % at 0.5 s), interpolation making it
//! finer for clean signals. The longest period is bounded by half the window, so that at least two
//! periods are compared: 1.28 s for 256 hops of 10 ms (the window is enlarged when the hop is
//! shorter, so that [`MAX_PERIOD_SECONDS`] always fits). The estimate looks back a whole window,
//! so it follows tempo changes with about a window's delay.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use super::source::{MAX_PERIOD_SECONDS, MIN_PERIOD_SECONDS};
use crate::frame::{Frame, MAX_BANDS, SILENCE_DB};

/// How the summary autocorrelogram is computed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeriodicityConfig {
    /// Frames analysed (at least; enlarged to hold two of the longest periods): longer windows
    /// give steadier estimates and longer periods, shorter ones follow changes sooner.
    pub window_hops: usize,
    /// Shortest period searched, seconds: below it the hop smears the envelopes.
    pub min_period_seconds: f32,
    /// Longest period searched, seconds.
    pub max_period_seconds: f32,
    /// Envelopes are floored this far below the window's loudest band, dB: the quiet bands'
    /// noise would otherwise weigh as much as the audible rhythm.
    pub dynamic_range_db: f32,
    /// A shorter-lag peak at least this fraction of the highest peak is preferred, so that the
    /// beat rather than a multiple of it is reported.
    pub octave_tolerance: f32,
}

impl Default for PeriodicityConfig {
    /// 256 hops, [`MIN_PERIOD_SECONDS`]..[`MAX_PERIOD_SECONDS`], 60 dB, 0.9. Allocation-free.
    fn default() -> Self {
        Self {
            window_hops: 256,
            min_period_seconds: MIN_PERIOD_SECONDS,
            max_period_seconds: MAX_PERIOD_SECONDS,
            dynamic_range_db: 60.0,
            octave_tolerance: 0.9,
        }
    }
}

/// The summary autocorrelogram's state: recent frames, FFT plans and work buffers.
pub struct Periodicity {
    /// The settings, kept for the lag range.
    config: PeriodicityConfig,
    /// Seconds per frame: converts lags to seconds.
    hop_seconds: f64,
    /// Frames kept, `W`.
    window: usize,
    /// The last `W` frames of every band, band-major (`band · W + slot`), sized for
    /// [`MAX_BANDS`] so that a change of band count never allocates.
    history: Vec<f32>,
    /// Where the next frame goes in each band's ring.
    write: usize,
    /// Frames in the rings (up to `W`).
    filled: usize,
    /// Bands per frame in the rings; a frame with another count restarts them.
    n_bands: usize,
    /// The cochlea configuration of the frames in the rings; another restarts them.
    config_id: u32,
    /// Shortest lag searched, hops.
    min_lag: usize,
    /// Longest lag searched, hops.
    max_lag: usize,
    /// Forward FFT of one zero-padded envelope.
    r2c: Arc<dyn RealToComplex<f32>>,
    /// Inverse FFT of the summed power spectrum: the SACF.
    c2r: Arc<dyn ComplexToReal<f32>>,
    /// One envelope, zero-padded to the FFT length (at least `2W`, so the correlation is linear,
    /// not circular).
    time: Vec<f32>,
    /// One envelope's spectrum.
    spectrum: Vec<Complex<f32>>,
    /// Power spectra summed over bands.
    power: Vec<Complex<f32>>,
    /// FFT scratch, shared by both directions.
    scratch: Vec<Complex<f32>>,
    /// The raw SACF `R(l)` for all lags of the FFT.
    acf: Vec<f32>,
    /// The normalised SACF `ρ(l)` for lags `0..=max_lag + 1`, kept for the editor and tests.
    sacf: Vec<f32>,
    /// Latest strength, 0..1.
    strength: f32,
    /// Latest dominant period, seconds (held when none is found).
    period_seconds: f32,
}

impl Periodicity {
    /// An analyser for frames every `hop_seconds`. Plans the FFTs and allocates every buffer;
    /// nothing allocates afterwards.
    pub fn new(config: PeriodicityConfig, hop_seconds: f64) -> Self {
        let hop = if hop_seconds > 0.0 && hop_seconds.is_finite() {
            hop_seconds
        } else {
            0.01
        };
        let min_lag = ((config.min_period_seconds as f64 / hop).round() as usize).max(2);
        let wanted_max =
            ((config.max_period_seconds as f64 / hop).round() as usize).max(min_lag + 1);
        let window = config.window_hops.max(2 * wanted_max + 4);
        let max_lag = wanted_max.min(window / 2);
        let fft_len = (2 * window).next_power_of_two();
        let mut planner = RealFftPlanner::<f32>::new();
        let r2c = planner.plan_fft_forward(fft_len);
        let c2r = planner.plan_fft_inverse(fft_len);
        let scratch_len = r2c.get_scratch_len().max(c2r.get_scratch_len());
        Self {
            config,
            hop_seconds: hop,
            window,
            history: vec![SILENCE_DB; MAX_BANDS * window],
            write: 0,
            filled: 0,
            n_bands: 0,
            config_id: 0,
            min_lag,
            max_lag,
            time: r2c.make_input_vec(),
            spectrum: r2c.make_output_vec(),
            power: c2r.make_input_vec(),
            scratch: vec![Complex::default(); scratch_len],
            acf: c2r.make_output_vec(),
            sacf: vec![0.0; max_lag + 2],
            r2c,
            c2r,
            strength: 0.0,
            period_seconds: 0.0,
        }
    }

    /// Frames analysed, `W`. Allocation-free.
    pub fn window_hops(&self) -> usize {
        self.window
    }

    /// The lags searched, in hops (shortest, longest). Allocation-free.
    pub fn lag_range(&self) -> (usize, usize) {
        (self.min_lag, self.max_lag)
    }

    /// Latest periodicity strength, 0..1. Allocation-free.
    pub fn strength(&self) -> f32 {
        self.strength
    }

    /// Latest dominant period, seconds; 0 before the first. Allocation-free.
    pub fn period_seconds(&self) -> f32 {
        self.period_seconds
    }

    /// The normalised SACF `ρ(l)` of the latest analysis for lags `0..=max_lag + 1` (zeros
    /// before the first). Allocation-free.
    pub fn sacf(&self) -> &[f32] {
        &self.sacf
    }

    /// Forgets the frames and the results. Allocation-free.
    pub fn reset(&mut self) {
        self.write = 0;
        self.filled = 0;
        self.strength = 0.0;
        self.period_seconds = 0.0;
        self.sacf.fill(0.0);
    }

    /// Takes one frame and re-analyses the window; returns (strength, period in seconds).
    /// Invalid frames are skipped; a frame of another band layout restarts the window.
    /// Allocation-free.
    pub fn push(&mut self, frame: &Frame) -> (f32, f32) {
        if !frame.valid {
            return (self.strength, self.period_seconds);
        }
        let n_bands = (frame.n_bands as usize).min(MAX_BANDS);
        if n_bands != self.n_bands || frame.config_id != self.config_id {
            self.reset();
            self.n_bands = n_bands;
            self.config_id = frame.config_id;
        }
        for (b, &e) in frame.energies().iter().take(n_bands).enumerate() {
            self.history[b * self.window + self.write] = if e.is_finite() { e } else { SILENCE_DB };
        }
        self.write = (self.write + 1) % self.window;
        self.filled = (self.filled + 1).min(self.window);
        self.analyse();
        (self.strength, self.period_seconds)
    }

    fn analyse(&mut self) {
        let n = self.filled;
        let max_lag = self.max_lag.min(n / 2);
        if n < self.window / 2 || max_lag < self.min_lag + 1 || self.n_bands == 0 {
            self.strength = 0.0;
            return;
        }
        let w = self.window;
        let oldest = (self.write + w - n) % w;
        // The filled part of each ring, oldest first, as at most two contiguous runs.
        let first_len = n.min(w - oldest);
        let second_len = n - first_len;
        let mut loudest = SILENCE_DB;
        for b in 0..self.n_bands {
            let ring = &self.history[b * w..(b + 1) * w];
            let runs = ring[oldest..oldest + first_len]
                .iter()
                .chain(&ring[..second_len]);
            loudest = runs.fold(loudest, |m, &v| m.max(v));
        }
        let floor = (loudest - self.config.dynamic_range_db).max(SILENCE_DB);
        self.power.fill(Complex::default());
        let mut any = false;
        // Least-squares line over t = 0..n: centred time t − t̄, Σ(t − t̄)² = n(n² − 1)/12.
        let t_mean = (n as f64 - 1.0) / 2.0;
        let t_var = n as f64 * (n as f64 * n as f64 - 1.0) / 12.0;
        for b in 0..self.n_bands {
            let ring = &self.history[b * w..(b + 1) * w];
            self.time[..first_len].copy_from_slice(&ring[oldest..oldest + first_len]);
            self.time[first_len..n].copy_from_slice(&ring[..second_len]);
            let (mut sum, mut sum_t) = (0.0f64, 0.0f64);
            for (t, x) in self.time[..n].iter_mut().enumerate() {
                *x = x.max(floor);
                sum += *x as f64;
                sum_t += (t as f64 - t_mean) * *x as f64;
            }
            let mean = sum / n as f64;
            let slope = sum_t / t_var;
            let mut energy = 0.0f32;
            for (t, x) in self.time[..n].iter_mut().enumerate() {
                *x = (*x as f64 - mean - slope * (t as f64 - t_mean)) as f32;
                energy += *x * *x;
            }
            if energy.is_nan() || energy <= 1e-9 * n as f32 {
                continue; // a flat envelope adds nothing: skip its FFT
            }
            any = true;
            self.time[n..].fill(0.0);
            if self
                .r2c
                .process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.scratch)
                .is_err()
            {
                continue;
            }
            for (p, s) in self.power.iter_mut().zip(&self.spectrum) {
                p.re += s.norm_sqr();
            }
        }
        if !any
            || self
                .c2r
                .process_with_scratch(&mut self.power, &mut self.acf, &mut self.scratch)
                .is_err()
        {
            self.strength = 0.0;
            self.sacf.fill(0.0);
            return;
        }
        let r0 = self.acf[0] / n as f32;
        if r0.is_nan() || r0 <= 0.0 {
            self.strength = 0.0;
            return;
        }
        self.sacf.fill(0.0);
        for (l, r) in self.sacf.iter_mut().enumerate().take(max_lag + 2) {
            *r = self.acf[l] / (n - l) as f32 / r0;
        }
        let rho = &self.sacf;
        let is_peak = |l: usize| rho[l] > rho[l - 1] && rho[l] >= rho[l + 1];
        let best = (self.min_lag..=max_lag)
            .filter(|&l| is_peak(l))
            .map(|l| rho[l])
            .fold(f32::NEG_INFINITY, f32::max);
        if best.is_nan() || best <= 0.0 {
            self.strength = 0.0;
            return;
        }
        let threshold = best * self.config.octave_tolerance;
        let Some(lag) = (self.min_lag..=max_lag).find(|&l| is_peak(l) && rho[l] >= threshold)
        else {
            self.strength = 0.0;
            return;
        };
        let (y0, y1, y2) = (rho[lag - 1], rho[lag], rho[lag + 1]);
        let curvature = y0 - 2.0 * y1 + y2;
        let offset = if curvature < 0.0 {
            (0.5 * (y0 - y2) / curvature).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        self.strength = y1.clamp(0.0, 1.0);
        self.period_seconds = ((lag as f64 + offset as f64) * self.hop_seconds) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::test_util::Rng;

    const HOP: f64 = 0.01;

    fn frame(seq: u64, bands: &[f32]) -> Frame {
        let mut f = Frame::silent(bands.len() as u16);
        f.seq = seq;
        f.bands[..bands.len()].copy_from_slice(bands);
        f
    }

    /// Feeds `hops` frames from `make(t, band)` and returns the final (strength, period).
    fn run(
        p: &mut Periodicity,
        hops: usize,
        n_bands: usize,
        make: impl FnMut(usize, usize) -> f32,
    ) -> (f32, f32) {
        run_from(p, 0..hops, n_bands, make)
    }

    /// Feeds the frames of hops `range` from `make(t, band)`; returns the final result.
    fn run_from(
        p: &mut Periodicity,
        range: std::ops::Range<usize>,
        n_bands: usize,
        mut make: impl FnMut(usize, usize) -> f32,
    ) -> (f32, f32) {
        let mut out = (0.0, 0.0);
        let mut bands = vec![0.0; n_bands];
        for t in range {
            for (b, v) in bands.iter_mut().enumerate() {
                *v = make(t, b);
            }
            out = p.push(&frame(t as u64, &bands));
        }
        out
    }

    #[test]
    fn finds_a_half_second_pulse_train() {
        let mut p = Periodicity::new(PeriodicityConfig::default(), HOP);
        assert_eq!(p.window_hops(), 256);
        assert_eq!(p.lag_range(), (10, 125));
        let mut rng = Rng::new(1);
        // A click every 0.5 s (50 hops), decaying over a few hops, over a quiet noisy floor.
        let (strength, period) = run(&mut p, 400, 32, |t, _| {
            let since = (t % 50) as f32;
            let click = -20.0 - 8.0 * since;
            click.max(-70.0) + 2.0 * rng.gaussian()
        });
        assert!((period - 0.5).abs() <= HOP as f32, "period {period}");
        assert!(strength > 0.8, "strength {strength}");
        // Not its double (the SACF peaks equally at 1.0 s).
        assert!(p.sacf()[100] > 0.8 * strength);
    }

    #[test]
    fn finds_a_period_between_hops_within_one_hop() {
        // 0.437 s: 43.7 hops, so the pulses fall on alternating hop phases.
        for period_s in [0.437f64, 0.25, 0.8, 1.1] {
            let mut p = Periodicity::new(PeriodicityConfig::default(), HOP);
            let (strength, period) = run(&mut p, 600, 16, |t, b| {
                // (The nudge keeps rounding from moving a pulse that falls exactly on a hop.)
                let phase = (t as f64 * HOP / period_s + 1e-9).fract();
                let since = phase * period_s / HOP;
                (-10.0 - 10.0 * since as f32 - b as f32).max(-60.0)
            });
            assert!(
                (period as f64 - period_s).abs() <= HOP,
                "period {period} for {period_s}"
            );
            assert!(strength > 0.7, "strength {strength} for {period_s}");
        }
    }

    #[test]
    fn noise_reads_low_strength() {
        let mut p = Periodicity::new(PeriodicityConfig::default(), HOP);
        let mut rng = Rng::new(2);
        let mut worst = 0.0f32;
        let mut bands = [0.0f32; 32];
        for t in 0..1000 {
            for v in bands.iter_mut() {
                *v = -40.0 + 10.0 * rng.gaussian();
            }
            let (s, _) = p.push(&frame(t, &bands));
            if t >= 256 {
                worst = worst.max(s);
            }
        }
        assert!(worst < 0.3, "noise strength up to {worst}");
    }

    #[test]
    fn smooth_and_silent_envelopes_are_not_periodic() {
        // A slow swell (a 6 s cycle): the SACF decays monotonically over the lag range.
        let mut p = Periodicity::new(PeriodicityConfig::default(), HOP);
        let (s, _) = run(&mut p, 400, 8, |t, _| {
            -30.0 + 20.0 * (t as f32 * 0.01 * std::f32::consts::TAU / 6.0).sin()
        });
        assert!(s < 0.2, "swell strength {s}");
        let mut p = Periodicity::new(PeriodicityConfig::default(), HOP);
        assert_eq!(run(&mut p, 400, 8, |_, _| SILENCE_DB), (0.0, 0.0));
        // A gain change alters nothing.
        let pulse = |gain: f32| {
            let mut p = Periodicity::new(PeriodicityConfig::default(), HOP);
            run(&mut p, 300, 4, |t, _| {
                if t % 30 < 3 {
                    gain - 10.0
                } else {
                    gain - 50.0
                }
            })
        };
        let (a, b) = (pulse(0.0), pulse(-30.0));
        assert!(
            (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-6,
            "{a:?} {b:?}"
        );
    }

    #[test]
    fn warms_up_and_restarts_on_a_new_layout() {
        let mut p = Periodicity::new(PeriodicityConfig::default(), HOP);
        let pulse = |t: usize, _: usize| if t % 40 < 2 { -10.0 } else { -60.0 };
        let (s, _) = run(&mut p, 127, 8, pulse);
        assert_eq!(s, 0.0, "no result before half a window");
        let (s, period) = run_from(&mut p, 127..327, 8, pulse);
        assert!(s > 0.8 && (period - 0.4).abs() < 0.011, "{s} {period}");
        // Another band count restarts.
        let (s, _) = run(&mut p, 10, 4, pulse);
        assert_eq!(s, 0.0);
    }

    /// Runs audio through a real cochlea (16 kHz, 32 bands) and the analyser; returns the final
    /// (strength, period) and the lowest strength over the last second.
    fn through_cochlea(audio: &[f32]) -> ((f32, f32), f32) {
        use crate::cochlea::{Cochlea, CochleaConfig};
        let config = CochleaConfig {
            sample_rate: 16_000.0,
            n_bands: 32,
            high_hz: 7_000.0,
            ..CochleaConfig::default()
        };
        let mut cochlea = Cochlea::new(config).unwrap();
        let frames = cochlea.process_to_vec(audio);
        let mut p = Periodicity::new(PeriodicityConfig::default(), config.hop_seconds);
        let mut out = (0.0, 0.0);
        let mut low = 1.0f32;
        let n = frames.len();
        for (i, f) in frames.iter().enumerate() {
            out = p.push(f);
            if i + 100 >= n {
                low = low.min(out.0);
            }
        }
        (out, low)
    }

    #[test]
    fn cochlea_frames_of_clicks_drums_and_noise() {
        let sr = 16_000usize;
        let mut rng = Rng::new(4);
        // Clicks every 0.5 s.
        let clicks: Vec<f32> = (0..4 * sr)
            .map(|i| if i % (sr / 2) == 0 { 1.0 } else { 0.0 })
            .collect();
        let ((strength, period), low) = through_cochlea(&clicks);
        assert!((period - 0.5).abs() <= 0.01, "clicks: period {period}");
        assert!(low > 0.8, "clicks: strength {strength}, lowest {low}");
        // Noise bursts decaying over 80 ms every 0.3 s, over quiet noise, at a period that is not
        // a whole number of 10 ms hops: 0.3125 s.
        let drums: Vec<f32> = (0..5 * sr)
            .map(|i| {
                let since = (i % 5000) as f32 / sr as f32;
                (0.5 * (-since / 0.08).exp() + 0.01) * (2.0 * rng.uniform() - 1.0)
            })
            .collect();
        let ((strength, period), low) = through_cochlea(&drums);
        assert!((period - 0.3125).abs() <= 0.01, "drums: period {period}");
        assert!(low > 0.7, "drums: strength {strength}, lowest {low}");
        // Steady white noise.
        let noise: Vec<f32> = (0..5 * sr)
            .map(|_| 0.3 * (2.0 * rng.uniform() - 1.0))
            .collect();
        let ((strength, _), _) = through_cochlea(&noise);
        assert!(strength < 0.3, "noise: strength {strength}");
    }

    #[test]
    fn a_short_hop_enlarges_the_window() {
        let p = Periodicity::new(PeriodicityConfig::default(), 0.005);
        assert_eq!(p.lag_range(), (20, 250));
        assert!(p.window_hops() >= 504);
    }
}
