//! On a training or adaptation thread: augmenting buffers on the fly.
//!
//! [`Augmentation`] changes dilated buffers in dB, before normalisation: gain, spectral tilt, a
//! small pitch change, and a second sound or a quiet background mixed in. Offline training uses
//! it so that the listener learns to describe all of these; adaptation uses it to make two
//! views of one moment for its contrastive loss. Every function here allocates nothing.

use crate::rng::SplitMix64;

/// On-the-fly augmentation of training buffers (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// Largest gain change, ± dB: recordings come at every level.
    pub gain_db: f32,
    /// Largest spectral tilt, ± dB from the lowest band to the highest: microphones, rooms and
    /// mixes colour the same sound differently.
    pub tilt_db: f32,
    /// Largest shift along the band axis, ± bands: a small pitch change. On the ERB scale a
    /// shift of one band is about 0.3 ERB (roughly 0.7 semitone near 1 kHz); resampling would
    /// scale frequency instead, which above ~500 Hz is nearly the same shift.
    pub band_shift: usize,
    /// Chance that a second training sound is mixed in, so that mixtures are heard.
    pub mix_probability: f32,
    /// Level of that second sound relative to the first, dB: `(lowest, highest)`.
    pub mix_db: (f32, f32),
    /// Chance that a quiet background (another training buffer) is mixed in.
    pub background_probability: f32,
    /// Level of the background relative to the sound, dB: `(lowest, highest)`.
    pub background_db: (f32, f32),
}

impl Default for Augmentation {
    /// The recipe's augmentation: ±12 dB gain, ±6 dB tilt, ±2 bands, a mix one time in four
    /// at −12..0 dB, a background one time in four at −30..−15 dB.
    fn default() -> Self {
        Self {
            gain_db: 12.0,
            tilt_db: 6.0,
            band_shift: 2,
            mix_probability: 0.25,
            mix_db: (-12.0, 0.0),
            background_probability: 0.25,
            background_db: (-30.0, -15.0),
        }
    }
}

impl Augmentation {
    /// No augmentation: every buffer as the corpus holds it.
    pub fn none() -> Self {
        Self {
            gain_db: 0.0,
            tilt_db: 0.0,
            band_shift: 0,
            mix_probability: 0.0,
            mix_db: (0.0, 0.0),
            background_probability: 0.0,
            background_db: (0.0, 0.0),
        }
    }

    /// Whether any augmentation is asked for.
    pub fn is_active(&self) -> bool {
        *self != Self::none()
    }

    /// Augments one buffer (`buffer_db`, whole frames of `n_bands` dB values) in place.
    /// `other` hands out another training buffer (dB, same length) for mixing. Allocation-free.
    pub fn apply<'a>(
        &self,
        buffer_db: &mut [f32],
        n_bands: usize,
        rng: &mut SplitMix64,
        mut other: impl FnMut(&mut SplitMix64) -> &'a [f32],
    ) {
        if self.band_shift > 0 {
            let span = 2 * self.band_shift + 1;
            let shift = rng.below(span) as isize - self.band_shift as isize;
            shift_bands(buffer_db, n_bands, shift);
        }
        for (probability, (low, high)) in [
            (self.mix_probability, self.mix_db),
            (self.background_probability, self.background_db),
        ] {
            if probability > 0.0 && (rng.next_f64() as f32) < probability {
                let gain = uniform(rng, low, high);
                mix_into(buffer_db, other(rng), gain);
            }
        }
        let gain = uniform(rng, -self.gain_db, self.gain_db);
        let tilt = uniform(rng, -self.tilt_db, self.tilt_db);
        let last = (n_bands.max(2) - 1) as f32;
        for frame in buffer_db.chunks_exact_mut(n_bands) {
            for (b, v) in frame.iter_mut().enumerate() {
                *v += gain + tilt * (b as f32 / last - 0.5);
            }
        }
    }
}

/// A uniform draw in `low..high`.
fn uniform(rng: &mut SplitMix64, low: f32, high: f32) -> f32 {
    low + (high - low) * rng.next_f64() as f32
}

/// Moves every frame's spectrum `shift` bands up (negative: down), repeating the edge band
/// into the space left. Allocation-free.
fn shift_bands(buffer_db: &mut [f32], n_bands: usize, shift: isize) {
    if shift == 0 {
        return;
    }
    let k = shift.unsigned_abs().min(n_bands);
    for frame in buffer_db.chunks_exact_mut(n_bands) {
        if shift > 0 {
            frame.copy_within(..n_bands - k, k);
            let edge = frame[k.min(n_bands - 1)];
            frame[..k].fill(edge);
        } else {
            frame.copy_within(k.., 0);
            let edge = frame[n_bands - 1 - k.min(n_bands - 1)];
            frame[n_bands - k..].fill(edge);
        }
    }
}

/// Adds the power of `other` (dB), `gain_db` louder, to `buffer_db`: the two sounds played
/// together, to the precision band energies allow. Allocation-free.
fn mix_into(buffer_db: &mut [f32], other: &[f32], gain_db: f32) {
    for (v, &o) in buffer_db.iter_mut().zip(other) {
        let (a, b) = (*v, o + gain_db);
        let top = a.max(b);
        *v = top + 10.0 * (10f32.powf((a - top) * 0.1) + 10f32.powf((b - top) * 0.1)).log10();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_moves_the_spectrum_and_repeats_the_edge() {
        let mut frame = [1.0, 2.0, 3.0, 4.0, 5.0];
        shift_bands(&mut frame, 5, 2);
        assert_eq!(frame, [1.0, 1.0, 1.0, 2.0, 3.0]);
        let mut frame = [1.0, 2.0, 3.0, 4.0, 5.0];
        shift_bands(&mut frame, 5, -1);
        assert_eq!(frame, [2.0, 3.0, 4.0, 5.0, 5.0]);
    }

    #[test]
    fn mixing_two_equal_sounds_adds_three_decibels() {
        let mut a = [-20.0, -40.0];
        mix_into(&mut a, &[-20.0, -40.0], 0.0);
        assert!((a[0] + 20.0 - 3.0103).abs() < 1e-3, "{a:?}");
        // A much quieter sound changes almost nothing.
        let mut a = [-20.0];
        mix_into(&mut a, &[-20.0], -40.0);
        assert!((a[0] + 20.0).abs() < 1e-3, "{a:?}");
    }

    #[test]
    fn gain_and_tilt_stay_within_their_limits() {
        let aug = Augmentation {
            gain_db: 3.0,
            tilt_db: 2.0,
            ..Augmentation::none()
        };
        let mut rng = SplitMix64(9);
        for _ in 0..100 {
            let mut buffer = vec![-50.0; 8];
            aug.apply(&mut buffer, 4, &mut rng, |_| &[]);
            for v in &buffer {
                assert!((v + 50.0).abs() <= 4.0 + 1e-4, "{buffer:?}");
            }
            // One gain and one tilt per buffer: every frame changes alike.
            assert_eq!(buffer[..4], buffer[4..]);
        }
        assert!(!Augmentation::none().is_active());
    }
}
