//! What the principal axes follow: the Pearson correlation, over every usable hop of every clip,
//! of each of the first axes with the hop's level, spectral centroid and periodicity. An axis
//! that correlates with level near ±1 is a level meter, not a description of the sound.
//!
//! The axes are read in the learned-sound similarity's coordinates, which divide each axis by a
//! positive constant, as the whitening of the plugin's Axis sources does: the correlations are
//! those of the plain projection, and of the Axis sources.

use echoic_core::erb::erb_space;
use echoic_core::frame::{Frame, SILENCE_DB};
use echoic_core::outputs::loudness::{band_overlap, loudness_db};
use echoic_core::outputs::periodicity::{Periodicity, PeriodicityConfig};
use echoic_core::worker::ListenSettings;

use crate::offline::Analysis;

/// How many principal axes are correlated with the hop features.
pub const CORRELATED_AXES: usize = 3;

/// One principal axis' correlations with the hop features.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AxisCorrelation {
    /// Pearson r with the hop's level in dB (the plugin's Loudness source): near ±1, the axis
    /// mostly follows level.
    pub loudness: Option<f64>,
    /// Pearson r with the hop's spectral centroid in Hz: whether the axis follows brightness.
    pub centroid: Option<f64>,
    /// Pearson r with the hop's periodicity strength (the plugin's Periodicity source): whether
    /// the axis follows rhythm.
    pub periodicity: Option<f64>,
}

/// Level, brightness and rhythm of every usable hop of the evaluated clips, in hop order.
#[derive(Clone, Debug, Default)]
pub struct HopFeatures {
    /// The level in dB, as the plugin's Loudness source measures it.
    pub loudness_db: Vec<f32>,
    /// The spectral centroid in Hz ([`spectral_centroid_hz`]); NaN for a silent hop.
    pub centroid_hz: Vec<f32>,
    /// The periodicity strength 0..1, as the plugin's Periodicity source measures it.
    pub periodicity: Vec<f32>,
}

impl HopFeatures {
    /// Appends the features of every usable hop of `analysis`, made with `settings`. Allocates.
    pub fn extend_from(&mut self, analysis: &Analysis, settings: &ListenSettings) {
        let n = analysis.n_bands;
        let overlap = band_overlap(n, settings.low_hz, settings.high_hz);
        let centres_hz = erb_space(settings.low_hz, settings.high_hz, n);
        let periodicity = periodicity_strengths(analysis, settings.hop_seconds);
        for i in analysis.usable() {
            let energies = &analysis.frames[i * n..(i + 1) * n];
            self.loudness_db.push(loudness_db(energies, overlap));
            self.centroid_hz
                .push(spectral_centroid_hz(energies, &centres_hz));
            self.periodicity.push(periodicity[i]);
        }
    }
}

/// The power-weighted mean of the band centre frequencies `centres_hz` for one frame of band
/// energies in dB (bands at the silence floor weigh nothing); NaN when every band is silent.
/// Allocation-free.
pub fn spectral_centroid_hz(energies_db: &[f32], centres_hz: &[f64]) -> f32 {
    let (weighted, total) = energies_db
        .iter()
        .zip(centres_hz)
        .filter(|(&e, _)| e.is_finite() && e > SILENCE_DB)
        .map(|(&e, &f)| (10f64.powf(e as f64 / 10.0), f))
        .fold((0.0, 0.0), |(w, t), (p, f)| (w + p * f, t + p));
    if total > 0.0 {
        (weighted / total) as f32
    } else {
        f32::NAN
    }
}

/// The plugin's periodicity strength after each frame of `analysis`, from a
/// [`Periodicity`] with the default configuration fed the frames in order. Allocates.
fn periodicity_strengths(analysis: &Analysis, hop_seconds: f64) -> Vec<f32> {
    let n = analysis.n_bands;
    let mut periodicity = Periodicity::new(PeriodicityConfig::default(), hop_seconds);
    let mut frame = Frame::silent(n as u16);
    (0..analysis.len())
        .map(|i| {
            frame.bands[..n].copy_from_slice(&analysis.frames[i * n..(i + 1) * n]);
            frame.valid = analysis.valid[i];
            periodicity.push(&frame).0
        })
        .collect()
}

/// Pearson correlation of `x` and `y` over the pairs where both are finite; `None` with fewer
/// than two such pairs or when either does not vary. Allocation-free.
pub fn pearson(x: &[f32], y: &[f32]) -> Option<f64> {
    assert_eq!(x.len(), y.len());
    let pairs = || {
        x.iter()
            .zip(y)
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(&a, &b)| (a as f64, b as f64))
    };
    let n = pairs().count();
    if n < 2 {
        return None;
    }
    let (sx, sy) = pairs().fold((0.0, 0.0), |(sx, sy), (a, b)| (sx + a, sy + b));
    let (mx, my) = (sx / n as f64, sy / n as f64);
    let (sxy, sxx, syy) = pairs().fold((0.0, 0.0, 0.0), |(sxy, sxx, syy), (a, b)| {
        let (da, db) = (a - mx, b - my);
        (sxy + da * db, sxx + da * da, syy + db * db)
    });
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// The correlations of the first [`CORRELATED_AXES`] of the hops' principal coordinates, each
/// axis scaled by any positive constant (`k` coordinates per hop, in the order of `features`),
/// with the hop features. Allocates.
pub fn axis_correlations(
    coordinates: &[f32],
    k: usize,
    features: &HopFeatures,
) -> Vec<AxisCorrelation> {
    (0..CORRELATED_AXES.min(k))
        .map(|axis| {
            let values: Vec<f32> = coordinates.chunks_exact(k).map(|w| w[axis]).collect();
            AxisCorrelation {
                loudness: pearson(&values, &features.loudness_db),
                centroid: pearson(&values, &features.centroid_hz),
                periodicity: pearson(&values, &features.periodicity),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_on_known_cases() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
        // Deviations (−2..2) against (1, −1, 0, −1, 1): Σxy = −2 + 1 + 0 − 1 + 2 = 0.
        assert_eq!(pearson(&x, &[1.0, -1.0, 0.0, -1.0, 1.0]), Some(0.0));
        // x = 1..4, y = 1, 3, 2, 4: Σdxdy = 4, Σdx² = Σdy² = 5, so r = 0.8.
        let r = pearson(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((r - 0.8).abs() < 1e-12, "{r}");
        // NaN pairs are skipped; constants have no correlation.
        let r = pearson(&[1.0, f32::NAN, 2.0, 3.0], &[1.0, 7.0, 2.0, 3.0]).unwrap();
        assert!((r - 1.0).abs() < 1e-12);
        assert_eq!(pearson(&x, &[3.0; 5]), None);
    }

    #[test]
    fn centroid_is_power_weighted() {
        let centres = [100.0, 1000.0, 4000.0];
        // Equal power in the first two bands, none in the third.
        let c = spectral_centroid_hz(&[-20.0, -20.0, SILENCE_DB], &centres);
        assert!((c - 550.0).abs() < 1e-3, "{c}");
        // 10 dB more in the top band: ten times the power.
        let c = spectral_centroid_hz(&[SILENCE_DB, -30.0, -20.0], &centres);
        assert!((c - (1000.0 + 10.0 * 4000.0) / 11.0).abs() < 1e-2, "{c}");
        assert!(spectral_centroid_hz(&[SILENCE_DB; 3], &centres).is_nan());
    }

    #[test]
    fn a_level_axis_correlates_with_loudness_only() {
        // Axis 0 is the level, axis 1 alternates, axis 2 is brightness.
        let features = HopFeatures {
            loudness_db: (0..40).map(|i| -60.0 + i as f32).collect(),
            centroid_hz: (0..40).map(|i| 500.0 + 100.0 * (i % 5) as f32).collect(),
            periodicity: vec![0.5; 40],
        };
        let whitened: Vec<f32> = (0..40)
            .flat_map(|i| {
                [
                    0.1 * i as f32,
                    if i % 2 == 0 { 1.0 } else { -1.0 },
                    (i % 5) as f32,
                ]
            })
            .collect();
        let axes = axis_correlations(&whitened, 3, &features);
        assert!((axes[0].loudness.unwrap() - 1.0).abs() < 1e-9);
        assert!((axes[2].centroid.unwrap() - 1.0).abs() < 1e-9);
        assert!(axes[1].loudness.unwrap().abs() < 0.1);
        assert_eq!(axes[0].periodicity, None, "a constant has no correlation");
    }
}
