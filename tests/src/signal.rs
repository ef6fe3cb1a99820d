//! Deterministic test audio.

use std::f64::consts::TAU;

/// A deterministic, non-trivial test signal: `channels` channels of `seconds` seconds at
/// `sample_rate`, planar (`result[channel][frame]`).
///
/// Each channel holds three tones (a low one, a mid one with slow vibrato, a high one), seeded
/// white noise, and a single full-scale impulse; the frequencies, phases, noise seed and impulse
/// position differ per channel, so a swapped or duplicated channel shows. Peaks stay within
/// ±1.0. The same arguments always give the same bits.
///
/// This stands in for a real recording until one is added.
pub fn test_signal(sample_rate: f64, seconds: f64, channels: usize) -> Vec<Vec<f32>> {
    assert!(
        sample_rate > 0.0,
        "sample rate must be positive, got {sample_rate}"
    );
    assert!(
        seconds >= 0.0,
        "duration must not be negative, got {seconds}"
    );
    // Rounded to the nearest whole frame.
    let frames = (sample_rate * seconds).round() as usize;
    (0..channels)
        .map(|channel| channel_signal(sample_rate, frames, channel))
        .collect()
}

/// One channel of [`test_signal`].
fn channel_signal(sample_rate: f64, frames: usize, channel: usize) -> Vec<f32> {
    let c = channel as f64;
    // Tones (Hz) chosen below 10 kHz so they are valid at every tested rate (>= 22.05 kHz).
    let low = 110.0 * (1.0 + 0.25 * c);
    let mid = 1_000.0 + 150.0 * c;
    let high = 5_500.0 - 400.0 * c;
    let phase = 0.7 * c;
    let mut noise = XorShift64::new(0x9E37_79B9_7F4A_7C15 ^ (channel as u64 + 1));
    // The impulse sits a third of the way in, shifted per channel.
    let impulse_at = frames / 3 + channel * 97;
    (0..frames)
        .map(|i| {
            if i == impulse_at {
                return if channel.is_multiple_of(2) { 1.0 } else { -1.0 };
            }
            let t = i as f64 / sample_rate;
            let vibrato = 0.01 * (TAU * 5.0 * t).sin();
            let tones = 0.30 * (TAU * low * t + phase).sin()
                + 0.20 * (TAU * mid * t * (1.0 + vibrato)).sin()
                + 0.10 * (TAU * high * t + 2.0 * phase).sin();
            let sample = tones + 0.05 * noise.next_bipolar();
            sample as f32
        })
        .collect()
}

/// A tiny xorshift64 generator: enough for reproducible noise without a `rand` dependency.
struct XorShift64 {
    /// The generator state; never zero.
    state: u64,
}

impl XorShift64 {
    /// Seeds the generator (a zero seed is replaced, since zero is a fixed point).
    fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x2545_F491_4F6C_DD1D
            } else {
                seed
            },
        }
    }

    /// Uniform in [-1, 1).
    fn next_bipolar(&mut self) -> f64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        // Top 53 bits as a fraction in [0, 1).
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// What a sample should leave the plugin as: itself, bit for bit, unless it is subnormal, which
/// Echoic flushes to a zero of the same sign. The one rule every passthrough check applies.
pub fn passed_through(sample: f32) -> f32 {
    if sample.is_subnormal() {
        0.0f32.copysign(sample)
    } else {
        sample
    }
}

/// A real recording from `tests/fixtures/` (16-bit mono wav) as samples in -1..1, with its
/// sample rate in Hz. Panics with the path if it cannot be read.
pub fn recording(name: &str) -> (Vec<f32>, f64) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    let mut reader =
        hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rate = reader.spec().sample_rate as f64;
    let samples = reader
        .samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect();
    (samples, rate)
}

/// `samples` at `from` Hz resampled to `to` Hz by linear interpolation, for playing the
/// fixtures (22.05 kHz) at a host's rate. Linear interpolation leaves faint images of the
/// content mirrored about the old Nyquist frequency (above 11 kHz for the fixtures), beyond
/// Echoic's highest band; what the cochlea hears is the recording.
pub fn resampled(samples: &[f32], from: f64, to: f64) -> Vec<f32> {
    assert!(
        from > 0.0 && to > 0.0,
        "rates must be positive: {from} -> {to}"
    );
    if samples.is_empty() {
        return Vec::new();
    }
    let frames = (samples.len() as f64 * to / from).round() as usize;
    let last = samples.len() - 1;
    (0..frames)
        .map(|i| {
            let t = i as f64 * from / to;
            let k = (t.floor() as usize).min(last);
            let frac = (t - k as f64) as f32;
            let next = samples[(k + 1).min(last)];
            samples[k] + frac * (next - samples[k])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_bounded_and_distinct_per_channel() {
        let a = test_signal(48_000.0, 0.5, 2);
        let b = test_signal(48_000.0, 0.5, 2);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].len(), 24_000);
        assert!(a
            .iter()
            .flatten()
            .zip(b.iter().flatten())
            .all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a.iter().flatten().all(|s| s.is_finite() && s.abs() <= 1.0));
        assert_ne!(a[0], a[1]);
        // Non-trivial: has energy and an impulse at full scale.
        assert!(a[0].contains(&1.0));
        assert!(a[1].contains(&-1.0));
        let rms = (a[0].iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / 24_000.0).sqrt();
        assert!(rms > 0.1, "rms {rms}");
    }

    #[test]
    fn resampling_keeps_the_samples_on_the_shared_grid_and_interpolates_between() {
        let x = [0.0f32, 1.0, -1.0, 0.5];
        let up = resampled(&x, 1.0, 2.0);
        assert_eq!(up, [0.0, 0.5, 1.0, 0.0, -1.0, -0.25, 0.5, 0.5]);
        assert_eq!(resampled(&x, 2.0, 1.0), [0.0, -1.0]);
        assert!(resampled(&[], 22_050.0, 48_000.0).is_empty());
    }
}
