//! Offline: what training does to a batch before the network sees it.
//!
//! - [`Augmentation`] changes training buffers on the fly, in dB, before normalisation: gain,
//!   spectral tilt, a small pitch change, and a second training sound or a quiet background
//!   from the corpus mixed in. The target is the augmented buffer, so the listener learns to
//!   describe all of these. (A speed change, which needs the frames behind a buffer, is the
//!   `speed` module's.)
//! - [`Objective`] says what the loss asks for beyond plain reconstruction: a corrupted input
//!   with the clean buffer as the target (masked reconstruction), extra weight on each frame's
//!   spectral peaks, a cross-entropy on where each frame peaks, and a contrastive loss that
//!   pulls two augmented views of one sound together (one moment, or two moments of one
//!   recording) and pushes other moments apart (all of them, or those of other kinds), in the
//!   raw embedding's cosine or in the plugin's whitened principal geometry.
//!
//! Every function here works on batch-major buffers (`steps × n_bands` values each) and
//! allocates nothing.

pub use echoic_core::listener::augment::Augmentation;
use echoic_core::listener::format::Normalisation;
use echoic_core::listener::lstm::{Contrast, Geometry, PeakLoss, PeakUnits, SameKind};
use echoic_core::rng::SplitMix64;

/// What the loss asks for beyond plain reconstruction (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Objective {
    /// Masked reconstruction: the widest run of bands set to the floor (0 in model units) in
    /// every input step, with the clean buffer as the target; 0 turns masking off. The
    /// listener must infer what is hidden from the rest of the sound.
    pub mask_bands: usize,
    /// Masked reconstruction: steps of the input set wholly to the floor (chosen at random).
    pub mask_steps: usize,
    /// Extra weight on the squared error of each frame's loudest bands in model units (the
    /// weight is `1 + peak_weight` there, 1 elsewhere): peak-band accuracy needs the peaks in
    /// the right place, which a plain mean squared error barely rewards. 0 turns it off. (Judged
    /// in dB instead, the bands chosen differ in a third of frames, yet peak-band accuracy did
    /// not move; `peak_loss_weight` does move it.)
    pub peak_weight: f32,
    /// How many of each frame's loudest bands count as its peak.
    pub peak_bands: usize,
    /// Weight of the peak-band cross-entropy (the engine's `PeakLoss`): each reconstructed
    /// frame, read in dB, as a softmax over bands whose answer should be the target's loudest
    /// band, which is what peak-band accuracy counts. 0 turns it off.
    pub peak_loss_weight: f32,
    /// The peak-band softmax's temperature, in dB: about the gap by which a frame's loudest
    /// band leads the next.
    pub peak_temperature_db: f32,
    /// Where the peak-band cross-entropy reads a frame's loudest band: in dB, or in the model's
    /// units, where the original Listener's peak-band accuracy counts it and where a loss read
    /// in dB lifted the figure less.
    pub peak_units: PeakUnits,
    /// Weight of the contrastive loss on the embeddings (the engine's `Contrast`): every
    /// batch then holds two independently augmented (and masked) views of each moment, and
    /// each view's embedding is pulled towards its twin and pushed from the other moments.
    /// 0 turns it off.
    pub contrast_weight: f32,
    /// The contrastive loss's temperature.
    pub contrast_temperature: f32,
    /// The similarity the contrastive loss sharpens: the raw embedding's cosine, or the
    /// whitened distance on the principal axes the plugin's learned sounds read (which they whiten
    /// partially; training then refits the
    /// principal axes at the start of every epoch).
    pub contrast_geometry: Geometry,
    /// How far apart, in seconds, the two views' moments may lie in one recording: 0 makes
    /// them two views of the same moment (augmentation invariance); more makes a moment's
    /// partner another moment of the same file, so that what one recording shares (its kind
    /// of sound) draws together, as COLA does.
    pub contrast_reach_seconds: f32,
    /// Chance that a moment's contrastive partner is instead any moment of the same package
    /// (of training moments when training, of validation moments when validating): a coarser
    /// "same kind" than one recording, as far as a package holds one kind of sound. 0 turns it
    /// off.
    pub contrast_package_share: f32,
    /// Chance that the partner of a moment whose path names its kind of sound (see
    /// `train::kinds`) is instead a moment of another file of that kind, from any package (of
    /// the same side of the split): "same kind" across recordings and sources, which the
    /// evaluation's sound types ask for and one recording or one package cannot teach. 0 turns
    /// it off.
    pub contrast_kind_share: f32,
    /// What the other moments of an anchor's kind (see `train::kinds`) are to the contrast:
    /// left out of its negatives ([`SameKind::Cancelled`], false-negative cancellation: a
    /// batch holds many moments of one kind, and pushing them apart teaches the listener to
    /// tell the recordings of a kind apart where the evaluation asks it to hear them as one),
    /// its positives beside its partner ([`SameKind::Positive`], the supervised contrast), or
    /// positives holding a fixed share of its target ([`SameKind::Pulled`]). `None` keeps
    /// them negatives, and kinds unread. Moments of no known kind stay negatives in every case.
    pub contrast_same_kind: Option<SameKind>,
    /// Whether a drum one-shot whose file name says its drum type (kick, snare, hi-hat, cymbal,
    /// tom; `adaptation::scenarios::drum_label`) has that type as its kind for the contrast's
    /// kind partners and same-kind moments, instead of "drums": a drummer who teaches the
    /// listener a snare expects kicks and toms not to light up, and one "drums" kind cancels
    /// every kick-against-snare negative. Kind balance still counts them as drums.
    pub contrast_drum_types: bool,
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

    /// The peak-band cross-entropy for a model normalised by `normalisation`, when asked for.
    /// Allocates.
    pub fn peak_loss(&self, normalisation: &Normalisation) -> Option<PeakLoss> {
        (self.peak_loss_weight > 0.0).then(|| {
            PeakLoss::new(
                self.peak_loss_weight,
                self.peak_temperature_db,
                self.peak_units,
                normalisation,
            )
        })
    }

    /// Whether a contrast is asked for and reads each moment's kind (see
    /// [`contrast_same_kind`](Self::contrast_same_kind)).
    pub fn reads_kinds(&self) -> bool {
        self.contrast().is_some() && self.contrast_same_kind.is_some()
    }

    /// The contrastive loss, when asked for.
    pub fn contrast(&self) -> Option<Contrast> {
        (self.contrast_weight > 0.0).then_some(Contrast {
            weight: self.contrast_weight,
            temperature: self.contrast_temperature,
            geometry: self.contrast_geometry,
            same_kind: self.contrast_same_kind.unwrap_or_default(),
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
