//! Offline and on a training thread: an auxiliary loss on where each reconstructed frame peaks.
//!
//! Peak-band accuracy (the original Listener's metric) counts the frames whose loudest band in
//! dB is the input's. A squared error barely rewards that: the loudest band usually leads its
//! neighbours by under a decibel, far less than the reconstruction's error. [`PeakLoss`] asks for
//! it directly, as a classification of the peak: each reconstructed frame, read in dB, is a
//! softmax over bands at a temperature in dB, and the loss is its cross-entropy against the
//! target frame's loudest band, `ℓ = log Σₖ exp(zₖ) − z_p` with `zₖ = dBₖ / τ`.
//!
//! The dB of a band is `value / scale + offset` in the model's normalisation; the buffer's own
//! level is common to its bands and drops out of both the softmax and the argmax.
//!
//! The loss can instead read frames in the model's units ([`PeakUnits::ModelUnits`]), where
//! each band's value is measured from its own typical level. The original Listener counted
//! peaks there, and a frame's loudest band in model units is often not its loudest in dB: a
//! band that is usually quiet peaks in model units when it is merely less quiet than usual.

use crate::listener::format::Normalisation;

/// Where [`PeakLoss`] reads a frame's loudest band.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PeakUnits {
    /// In dB, as `echoic eval`'s peak-band accuracy in dB counts it.
    #[default]
    Decibels,
    /// In the model's units, as the original Listener's peak-band accuracy counts it. The
    /// temperature stays in dB, converted at the bands' mean scale.
    ModelUnits,
}

/// The peak-band cross-entropy, added to the squared error as `weight · mean ℓ` over frames
/// (see the module documentation). Set on a workspace with
/// [`Workspace::set_peak_loss`](super::Workspace::set_peak_loss).
#[derive(Clone, Debug, PartialEq)]
pub struct PeakLoss {
    /// How much the mean cross-entropy counts against the mean squared error.
    pub weight: f32,
    /// Per band, `1 / (scale · τ)`: a model unit's change of the band's logit, so that the
    /// softmax reads dB at the temperature `τ` without a division per value.
    logit_per_unit: Vec<f32>,
    /// Per band, `offset / τ`: the band's logit at model value 0.
    logit_offset: Vec<f32>,
}

impl PeakLoss {
    /// The loss for a model normalised by `normalisation`, at `weight` and a softmax temperature
    /// of `temperature_db` decibels, reading peaks in `units`. Allocates.
    ///
    /// # Panics
    /// If the temperature is not positive.
    pub fn new(
        weight: f32,
        temperature_db: f32,
        units: PeakUnits,
        normalisation: &Normalisation,
    ) -> Self {
        assert!(temperature_db > 0.0, "the temperature must be positive");
        let (logit_per_unit, logit_offset) = match units {
            PeakUnits::Decibels => (
                normalisation
                    .scale
                    .iter()
                    .map(|s| 1.0 / (s * temperature_db))
                    .collect(),
                normalisation
                    .offset
                    .iter()
                    .map(|o| o / temperature_db)
                    .collect(),
            ),
            PeakUnits::ModelUnits => {
                let n = normalisation.scale.len();
                let mean_scale = normalisation.scale.iter().sum::<f32>() / n as f32;
                (vec![1.0 / (mean_scale * temperature_db); n], vec![0.0; n])
            }
        };
        Self {
            weight,
            logit_per_unit,
            logit_offset,
        }
    }

    /// Bands per frame.
    pub fn n_bands(&self) -> usize {
        self.logit_per_unit.len()
    }

    /// The summed cross-entropy `Σ ℓ` of the frames of `output` against those of `target`
    /// (whole frames, same layout), and, with `gradient`, `scale · ∂Σℓ/∂output` added into it.
    /// Allocation-free.
    ///
    /// # Panics
    /// If the slices differ in length or are not whole frames.
    pub fn cross_entropy(
        &self,
        output: &[f32],
        target: &[f32],
        mut gradient: Option<(&mut [f32], f32)>,
    ) -> f64 {
        let n = self.n_bands();
        assert!(
            output.len() == target.len() && output.len().is_multiple_of(n),
            "{} outputs against {} targets in frames of {n}",
            output.len(),
            target.len()
        );
        let logit = |k: usize, v: f32| v * self.logit_per_unit[k] + self.logit_offset[k];
        let mut sum = 0.0;
        for (f, (y, x)) in output
            .chunks_exact(n)
            .zip(target.chunks_exact(n))
            .enumerate()
        {
            let peak = (0..n)
                .max_by(|&a, &b| logit(a, x[a]).total_cmp(&logit(b, x[b])))
                .unwrap_or(0);
            let top = (0..n)
                .map(|k| logit(k, y[k]))
                .fold(f32::NEG_INFINITY, f32::max);
            let total: f32 = (0..n).map(|k| (logit(k, y[k]) - top).exp()).sum();
            sum += f64::from(total.ln() + top - logit(peak, y[peak]));
            if let Some((d, scale)) = gradient.as_mut() {
                let d = &mut d[f * n..][..n];
                for (k, dv) in d.iter_mut().enumerate() {
                    let p = (logit(k, y[k]) - top).exp() / total;
                    let hit = if k == peak { 1.0 } else { 0.0 };
                    *dv += *scale * (p - hit) * self.logit_per_unit[k];
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listener::format::Level;

    fn normalisation() -> Normalisation {
        Normalisation {
            offset: vec![-20.0, -60.0, -50.0],
            scale: vec![0.02, 0.1, 0.04],
            level: Level::Relative,
        }
    }

    #[test]
    fn a_flat_frame_costs_log_n_and_the_peak_is_judged_in_db() {
        let loss = PeakLoss::new(1.0, 2.0, PeakUnits::Decibels, &normalisation());
        // Model values giving -10 dB in every band: a flat softmax.
        let flat = [0.2, 5.0, 1.6];
        assert!((loss.cross_entropy(&flat, &flat, None) - 3f64.ln()).abs() < 1e-6);
        // Band 1 is highest in model units but quietest in dB (-60 + 9 = -51); band 0 is the
        // loudest (-20 + 5 = -15), so the gradient lowers band 0's error (negative) and raises
        // the others'.
        let target = [0.1, 0.9, 0.8];
        let mut d = [0.0; 3];
        loss.cross_entropy(&flat, &target, Some((&mut d, 1.0)));
        assert!(d[0] < 0.0 && d[1] > 0.0 && d[2] > 0.0, "{d:?}");
    }

    #[test]
    fn in_model_units_the_peak_is_the_largest_value() {
        let loss = PeakLoss::new(1.0, 2.0, PeakUnits::ModelUnits, &normalisation());
        // Band 1 is quietest in dB but largest in model units, so the gradient now lowers
        // band 1's error and raises the others'.
        let flat = [0.5, 0.5, 0.5];
        assert!((loss.cross_entropy(&flat, &flat, None) - 3f64.ln()).abs() < 1e-6);
        let target = [0.1, 0.9, 0.8];
        let mut d = [0.0; 3];
        loss.cross_entropy(&flat, &target, Some((&mut d, 1.0)));
        assert!(d[1] < 0.0 && d[0] > 0.0 && d[2] > 0.0, "{d:?}");
        // The temperature is 2 dB at the mean scale (0.16 / 3): a frame whose peak leads the
        // other two bands by that many units costs ln(1 + 2/e).
        let lead = 2.0 * 0.16 / 3.0;
        let y = [0.0, lead, 0.0];
        let expected = (1.0 + 2.0 / std::f64::consts::E).ln();
        assert!((loss.cross_entropy(&y, &target, None) - expected).abs() < 1e-5);
    }

    #[test]
    fn the_gradient_matches_central_differences() {
        for units in [PeakUnits::Decibels, PeakUnits::ModelUnits] {
            gradient_matches_central_differences(units);
        }
    }

    fn gradient_matches_central_differences(units: PeakUnits) {
        let loss = PeakLoss::new(1.0, 1.5, units, &normalisation());
        let target = [0.1, 0.9, 0.8, 0.5, 0.2, 0.3];
        let mut y = [0.3, 2.0, 1.0, 0.1, 4.0, 0.7];
        let mut d = [0.0; 6];
        loss.cross_entropy(&y, &target, Some((&mut d, 0.5)));
        let eps = 1e-3;
        for i in 0..y.len() {
            let v = y[i];
            y[i] = v + eps;
            let up = loss.cross_entropy(&y, &target, None);
            y[i] = v - eps;
            let down = loss.cross_entropy(&y, &target, None);
            y[i] = v;
            let numeric = 0.5 * (up - down) / (2.0 * f64::from(eps));
            assert!(
                (numeric - f64::from(d[i])).abs() < 2e-3 * (1.0 + numeric.abs()),
                "{units:?} value {i}: {} analytic, {numeric} numeric",
                d[i]
            );
        }
    }
}
