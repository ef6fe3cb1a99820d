//! Signal helpers: level, silence trimming, fades and normalisation of clips. Offline:
//! allocates.

/// Files whose RMS is below this are treated as silent and skipped.
pub(super) const SILENCE_DBFS: f64 = -60.0;

/// RMS level in dBFS (-inf for silence).
pub(super) fn dbfs(x: &[f32]) -> f64 {
    if x.is_empty() {
        return f64::NEG_INFINITY;
    }
    let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    10.0 * ms.log10()
}

/// Removes leading and trailing stretches quieter than 50 dB below the peak (in 5 ms blocks),
/// keeping 10 ms on either side.
pub(super) fn trim_silence(x: &[f32], rate: u32) -> Vec<f32> {
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if peak == 0.0 {
        return vec![];
    }
    let thr = peak * 10f32.powf(-50.0 / 20.0);
    let first = x.iter().position(|v| v.abs() > thr).unwrap_or(0);
    let last = x.iter().rposition(|v| v.abs() > thr).unwrap_or(x.len() - 1);
    let pad = (rate / 100) as usize;
    let start = first.saturating_sub(pad);
    let end = (last + pad + 1).min(x.len());
    x[start..end].to_vec()
}

/// Linear fade-in and fade-out of `secs` seconds (at most a quarter of the signal each).
pub(super) fn fade(x: &mut [f32], rate: u32, secs: f64) {
    let n = ((secs * rate as f64) as usize).min(x.len() / 4);
    let len = x.len();
    for i in 0..n {
        let g = i as f32 / n as f32;
        x[i] *= g;
        x[len - 1 - i] *= g;
    }
}

/// Scales to `rms_dbfs`, then down so that the peak stays below -0.1 dBFS.
pub(super) fn normalize(x: &mut [f32], rms_dbfs: f64) {
    let level = dbfs(x);
    if !level.is_finite() {
        return;
    }
    let mut gain = 10f64.powf((rms_dbfs - level) / 20.0) as f32;
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let limit = 10f32.powf(-0.1 / 20.0);
    if peak * gain > limit {
        gain = limit / peak;
    }
    for v in x {
        *v *= gain;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_hits_target_without_clipping() {
        let mut x: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.1).sin() * 0.01).collect();
        normalize(&mut x, -20.0);
        assert!((dbfs(&x) + 20.0).abs() < 0.01);
        let mut spiky = vec![0.0f32; 1000];
        spiky[10] = 0.5;
        normalize(&mut spiky, -20.0);
        assert!(spiky.iter().all(|v| v.abs() <= 1.0));
    }
}
