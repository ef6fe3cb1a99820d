//! Runs on the worker: the Loudness source.
//!
//! Loudness: the level of one frame, in dB.
//!
//! ```text
//! level_dB = 10·log10( Σ_b 10^(E_b / 10) / overlap )
//! ```
//!
//! `E_b` are the frame's band energies (dB of mean power). The bands overlap: a sine excites
//! several neighbours, and with unit-peak gammatones whose equivalent rectangular bandwidth is one
//! ERB, `Σ_b |H_b(f)|²` is the number of bands per ERB, `overlap = n / (ERB-number(high) −
//! ERB-number(low))` (3.2, i.e. 5 dB, for the default 100 bands over 50..8000 Hz). Dividing by it
//! makes the level the power of the input within the filterbank's range, independent of the band
//! count: a full-scale sine reads −3 dB (mean power ½), like any mean-power meter.
//!
//! This is a level, not a perceptual loudness model (no equal-loudness weighting or temporal
//! integration beyond the hop); it is floored at [`SILENCE_DB`].

use crate::erb::erb_hz;
use crate::frame::SILENCE_DB;

/// Bands per ERB of a filterbank of `n_bands` from `low_hz` to `high_hz` (see the module
/// documentation): the factor by which summed band powers overcount the input's power. 1 for a
/// degenerate range. Allocation-free.
pub fn band_overlap(n_bands: usize, low_hz: f64, high_hz: f64) -> f32 {
    // ERB(f) = f / Q + B, so the ERB-number is Q · ln(f + Q·B) up to a constant.
    let q = 1.0 / (erb_hz(1.0) - erb_hz(0.0));
    let qb = q * erb_hz(0.0);
    let span = q * ((high_hz + qb) / (low_hz + qb)).ln();
    if n_bands == 0 || span.is_nan() || span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    (n_bands as f64 / span) as f32
}

/// The level of a frame's band energies (dB), corrected for `overlap` (from [`band_overlap`]).
/// Allocation-free.
pub fn loudness_db(energies_db: &[f32], overlap: f32) -> f32 {
    // Bands at the floor carry no energy (or cannot be heard at this sample rate): skip them.
    let power: f64 = energies_db
        .iter()
        .filter(|&&e| e.is_finite() && e > SILENCE_DB)
        .map(|&e| 10f64.powf(e as f64 / 10.0))
        .sum();
    let overlap = if overlap > 0.0 && overlap.is_finite() {
        overlap as f64
    } else {
        1.0
    };
    let level = 10.0 * (power / overlap).log10();
    if level.is_finite() {
        (level as f32).max(SILENCE_DB)
    } else {
        SILENCE_DB
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cochlea::{Cochlea, CochleaConfig};

    #[test]
    fn overlap_of_the_default_bank() {
        let c = CochleaConfig::default();
        let overlap = band_overlap(c.n_bands, c.low_hz, c.high_hz);
        assert!((overlap - 3.19).abs() < 0.02, "{overlap}");
        assert_eq!(band_overlap(0, 50.0, 8000.0), 1.0);
        assert_eq!(band_overlap(10, 8000.0, 50.0), 1.0);
    }

    #[test]
    fn a_full_scale_sine_reads_minus_3_db_at_any_band_count() {
        for n_bands in [40, 100] {
            let config = CochleaConfig {
                n_bands,
                ..CochleaConfig::default()
            };
            let overlap = band_overlap(n_bands, config.low_hz, config.high_hz);
            for (freq, amplitude, expected) in [
                (1000.0, 1.0, -3.01),
                (250.0, 1.0, -3.01),
                (3000.0, 0.1, -23.01),
            ] {
                let mut cochlea = Cochlea::new(config).unwrap();
                let sr = config.sample_rate;
                let audio: Vec<f32> = (0..(sr * 0.5) as usize)
                    .map(|i| {
                        (amplitude * (std::f64::consts::TAU * freq * i as f64 / sr).sin()) as f32
                    })
                    .collect();
                let frames = cochlea.process_to_vec(&audio);
                let level = loudness_db(frames.last().unwrap().energies(), overlap);
                assert!(
                    (level - expected).abs() < 1.0,
                    "{n_bands} bands, {freq} Hz: {level} dB"
                );
            }
        }
        assert_eq!(loudness_db(&[SILENCE_DB; 10], 3.0), SILENCE_DB);
        assert_eq!(loudness_db(&[], 3.0), SILENCE_DB);
    }
}
