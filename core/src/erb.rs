//! Any thread: the ERB frequency scale.
//!
//! The ERB (equivalent rectangular bandwidth) scale of Glasberg & Moore (1990), in the form
//! Slaney's Auditory Toolbox and the Python `Gammatone` package use.

/// Glasberg & Moore's asymptotic filter quality at high frequencies.
const EAR_Q: f64 = 9.264_49;
/// Glasberg & Moore's minimum bandwidth at low frequencies, in Hz.
const MIN_BW: f64 = 24.7;

/// Equivalent rectangular bandwidth of the auditory filter centred on `fc` Hz, in Hz:
/// `24.7 · (4.37e-3 · fc + 1)`. Allocation-free.
pub fn erb_hz(fc: f64) -> f64 {
    fc / EAR_Q + MIN_BW
}

/// `n` centre frequencies from `low` to (just below) `high` Hz, equally spaced on the ERB scale,
/// in ascending order. The set equals the Python `Gammatone` package's `erb_space(low, high, n)`,
/// which returns the same values in descending order: the lowest is exactly `low` and the highest
/// lies one ERB step below `high`. Allocation-free: writes into `out`, whose length is `n`.
pub fn erb_space_into(low: f64, high: f64, out: &mut [f64]) {
    let n = out.len();
    let span = (low + EAR_Q * MIN_BW).ln() - (high + EAR_Q * MIN_BW).ln();
    for (i, fc) in out.iter_mut().enumerate() {
        // `erb_space` evaluates fraction k/n for k = 1..=n; ascending order reverses k.
        let fraction = (n - i) as f64 / n as f64;
        *fc = -EAR_Q * MIN_BW + (fraction * span).exp() * (high + EAR_Q * MIN_BW);
    }
}

/// Convenience form of [`erb_space_into`]. Allocates the returned vector.
pub fn erb_space(low: f64, high: f64, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n];
    erb_space_into(low, high, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erb_matches_glasberg_moore_formula() {
        for fc in [50.0, 1000.0, 8000.0] {
            let reference = 24.7 * (4.37e-3 * fc + 1.0);
            assert!((erb_hz(fc) - reference).abs() < 1e-3 * reference, "fc {fc}");
        }
    }

    #[test]
    fn erb_space_is_ascending_and_ends_at_low() {
        let fcs = erb_space(50.0, 8000.0, 100);
        assert_eq!(fcs.len(), 100);
        assert!((fcs[0] - 50.0).abs() < 1e-9);
        assert!(fcs.windows(2).all(|w| w[1] > w[0]));
        assert!(fcs[99] < 8000.0);
    }
}
