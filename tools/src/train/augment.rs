//! Offline: what training does to a batch before the network sees it.
//!
//! - [`Augmentation`] changes training buffers on the fly, in dB, before normalisation: gain,
//!   spectral tilt, a small pitch change, and a second training sound or a quiet background
//!   from the corpus mixed in. The target is the augmented buffer, so the listener learns to
//!   describe all of these.
//! - [`Objective`] says what the loss asks for beyond plain reconstruction: a corrupted input
//!   with the clean buffer as the target (masked reconstruction), extra weight on each frame's
//!   spectral peaks, and a contrastive loss that pulls two augmented views of one moment
//!   together and pushes other moments apart.
//!
//! Every function here works on batch-major buffers (`steps × n_bands` values each) and
//! allocates nothing.

use echoic_core::listener::lstm::Contrast;
use echoic_core::rng::SplitMix64;

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

/// What the loss asks for beyond plain reconstruction (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Objective {
    /// Masked reconstruction: the widest run of bands set to the floor (0 in model units) in
    /// every input step, with the clean buffer as the target; 0 turns masking off. The
    /// listener must infer what is hidden from the rest of the sound.
    pub mask_bands: usize,
    /// Masked reconstruction: steps of the input set wholly to the floor (chosen at random).
    pub mask_steps: usize,
    /// Extra weight on the squared error of each frame's loudest bands (the weight is
    /// `1 + peak_weight` there, 1 elsewhere): peak-band accuracy needs the peaks in the right
    /// place, which a plain mean squared error barely rewards. 0 turns it off.
    pub peak_weight: f32,
    /// How many of each frame's loudest bands count as its peak.
    pub peak_bands: usize,
    /// Weight of the contrastive loss on the embeddings (the engine's `Contrast`): every
    /// batch then holds two independently augmented (and masked) views of each moment, and
    /// each view's embedding is pulled towards its twin and pushed from the other moments.
    /// 0 turns it off.
    pub contrast_weight: f32,
    /// The contrastive loss's temperature.
    pub contrast_temperature: f32,
}

impl Objective {
    /// Whether the input is corrupted (so it differs from the target).
    pub fn masks(&self) -> bool {
        self.mask_bands > 0 || self.mask_steps > 0
    }

    /// Whether errors are weighted.
    pub fn weighs(&self) -> bool {
        self.peak_weight > 0.0 && self.peak_bands > 0
    }

    /// The contrastive loss, when asked for.
    pub fn contrast(&self) -> Option<Contrast> {
        (self.contrast_weight > 0.0).then_some(Contrast {
            weight: self.contrast_weight,
            temperature: self.contrast_temperature,
        })
    }

    /// Corrupts one normalised input buffer in place (see [`mask_bands`](Self::mask_bands) and
    /// [`mask_steps`](Self::mask_steps)). Allocation-free.
    pub fn corrupt(&self, input: &mut [f32], n_bands: usize, rng: &mut SplitMix64) {
        let steps = input.len() / n_bands;
        if self.mask_bands > 0 {
            let width = (1 + rng.below(self.mask_bands)).min(n_bands);
            let start = rng.below(n_bands - width + 1);
            for frame in input.chunks_exact_mut(n_bands) {
                frame[start..start + width].fill(0.0);
            }
        }
        for _ in 0..self.mask_steps.min(steps) {
            let step = rng.below(steps);
            input[step * n_bands..][..n_bands].fill(0.0);
        }
    }

    /// The error weights of one normalised target buffer into `weights` (same length): `1 +
    /// peak_weight` on each frame's `peak_bands` loudest bands, 1 elsewhere. Allocation-free.
    pub fn weights(&self, target: &[f32], n_bands: usize, weights: &mut [f32]) {
        let top = self.peak_bands.min(n_bands);
        for (frame, w) in target
            .chunks_exact(n_bands)
            .zip(weights.chunks_exact_mut(n_bands))
        {
            w.fill(1.0);
            for _ in 0..top {
                // The loudest band not yet weighted: `top` passes over the frame, no sorting.
                let mut best: Option<usize> = None;
                for (b, &v) in frame.iter().enumerate() {
                    if w[b] == 1.0 && best.is_none_or(|i| v > frame[i]) {
                        best = Some(b);
                    }
                }
                if let Some(b) = best {
                    w[b] = 1.0 + self.peak_weight;
                }
            }
        }
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

    #[test]
    fn masking_hides_bands_and_steps_and_peaks_get_weight() {
        let objective = Objective {
            mask_bands: 3,
            mask_steps: 1,
            peak_weight: 4.0,
            peak_bands: 2,
            ..Objective::default()
        };
        let mut input = vec![0.5; 4 * 10];
        objective.corrupt(&mut input, 10, &mut SplitMix64(3));
        let zeros = input.iter().filter(|&&v| v == 0.0).count();
        // One to three bands in every step, plus one whole step.
        assert!((4..=3 * 3 + 10).contains(&zeros), "{zeros}");
        let target = [0.1, 0.9, 0.3, 0.8, 0.2];
        let mut w = [0.0; 5];
        objective.weights(&target, 5, &mut w);
        assert_eq!(w, [1.0, 5.0, 1.0, 5.0, 1.0]);
    }
}
