//! Runs on the worker: the Novelty source.
//!
//! Novelty: how unlike the recent echoic memory the present is.
//!
//! The detector keeps exponential moving statistics of the embedding stream: the mean `μ`
//! (time constant [`NoveltyConfig::mean_seconds`]) and the mean squared distance from it, the
//! spread `s` (time constant [`NoveltyConfig::spread_seconds`]). For each new embedding `e`,
//! before updating either,
//!
//! ```text
//! d² = ‖e − μ‖²                       distance from the recent past
//! r  = d² / (s + ε)                   how many times the usual squared distance
//! novelty = clamp(ln(r / 2) / ln(30 / 2), 0, 1)
//! ```
//!
//! `r` is a ratio of two distances in the same space, so it is dimensionless and means the same
//! for every model: about 1 while the sound goes on as it has been (its own fluctuation is what
//! `s` measured), large when it changes. The logarithmic map reads 0 up to twice the usual
//! squared distance (ordinary fluctuation, including the heavy tail of few-dimensional
//! embeddings) and 1 from 30 times it (5.5 times the usual distance: a different sound, or any
//! sound after silence). After a change `μ` moves to the new sound and `s` absorbs the jump, so
//! novelty falls back within a few hundred ms; for a few seconds after a big change `s` stays
//! larger, so similar changes read somewhat less novel (adaptation), until it relaxes with its
//! time constant.
//!
//! `ε` keeps silence (a constant embedding, `s` = 0) from dividing by zero: 10⁻⁴ of the model's
//! PCA variance (the spread of the training embeddings), or 10⁻⁴ when no PCA is known. A sound
//! starting after silence is therefore fully novel, as it should be.
//!
//! The first [`NoveltyConfig::warmup_seconds`] after a reset read 0 while the statistics form;
//! during that time they are plain running averages (the EMA weight is `max(α, 1/n)`), so they do
//! not start biased towards the first embedding.

/// Squared-distance ratio below which novelty reads 0.
pub const NOVELTY_RATIO_LOW: f32 = 2.0;
/// Squared-distance ratio at which novelty reads 1.
pub const NOVELTY_RATIO_HIGH: f32 = 30.0;
/// `ε` as a fraction of the reference variance.
pub const NOVELTY_FLOOR_FRACTION: f32 = 1e-4;

/// The time constants of the novelty detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoveltyConfig {
    /// Time constant of the running mean, s: how far back "the recent past" reaches (about the
    /// span of the echoic memory).
    pub mean_seconds: f32,
    /// Time constant of the running spread, s: how quickly the usual size of a fluctuation is
    /// learned, and so how long the detector stays desensitised after a big change (the change
    /// itself enters the spread). Equal to the mean's by default.
    pub spread_seconds: f32,
    /// Time after a reset during which novelty reads 0 while the statistics form, s.
    pub warmup_seconds: f32,
}

impl Default for NoveltyConfig {
    /// 1 s mean, 1 s spread, 0.5 s warm-up. Allocation-free.
    fn default() -> Self {
        Self {
            mean_seconds: 1.0,
            spread_seconds: 1.0,
            warmup_seconds: 0.5,
        }
    }
}

/// The novelty detector's state.
#[derive(Clone, Debug)]
pub struct Novelty {
    /// Running mean embedding: the recent past the present is compared with.
    mean: Vec<f64>,
    /// Running mean squared distance from `mean`: the usual size of a change.
    spread: f64,
    /// Embeddings seen since the reset: drives the warm-up and the running-average start.
    count: u64,
    /// EMA weight of the mean per hop, `1 − exp(−hop/τ)`.
    alpha_mean: f64,
    /// EMA weight of the spread per hop.
    alpha_spread: f64,
    /// Hops of warm-up.
    warmup_hops: u64,
    /// `ε`: keeps a silent (constant) stream from dividing by zero.
    floor: f64,
    /// The last novelty: held while no embedding arrives.
    value: f32,
}

fn ema_weight(tau_seconds: f32, hop_seconds: f64) -> f64 {
    if tau_seconds > 0.0 {
        1.0 - (-hop_seconds / tau_seconds as f64).exp()
    } else {
        1.0
    }
}

impl Novelty {
    /// A detector for embeddings of length `dim` at one per `hop_seconds`. Allocates.
    pub fn new(config: NoveltyConfig, hop_seconds: f64, dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            spread: 0.0,
            count: 0,
            alpha_mean: ema_weight(config.mean_seconds, hop_seconds),
            alpha_spread: ema_weight(config.spread_seconds, hop_seconds),
            warmup_hops: (config.warmup_seconds.max(0.0) as f64 / hop_seconds).round() as u64,
            floor: NOVELTY_FLOOR_FRACTION as f64,
            value: 0.0,
        }
    }

    /// Sets the reference variance `ε` is a fraction of: the model's PCA variance (the training
    /// embeddings' spread). Non-positive values restore the model-free default 1. Allocation-free.
    pub fn set_reference_variance(&mut self, variance: f32) {
        let v = if variance > 0.0 && variance.is_finite() {
            variance as f64
        } else {
            1.0
        };
        self.floor = NOVELTY_FLOOR_FRACTION as f64 * v;
    }

    /// Forgets the statistics (a new model, or a restart). Allocation-free.
    pub fn reset(&mut self) {
        self.count = 0;
        self.spread = 0.0;
        self.value = 0.0;
    }

    /// The last novelty, 0..1. Allocation-free.
    pub fn value(&self) -> f32 {
        self.value
    }

    /// Takes one hop's embedding and returns the novelty, 0..1. An embedding of another length
    /// than the last restarts the statistics (a new model): allocation-free unless it is longer
    /// than any seen before. Embeddings with non-finite values are ignored (the last value is
    /// returned).
    pub fn update(&mut self, embedding: &[f32]) -> f32 {
        if embedding.is_empty() || !embedding.iter().all(|v| v.is_finite()) {
            return self.value;
        }
        if embedding.len() != self.mean.len() {
            self.mean.resize(embedding.len(), 0.0);
            self.reset();
        }
        self.count += 1;
        if self.count == 1 {
            for (m, &e) in self.mean.iter_mut().zip(embedding) {
                *m = e as f64;
            }
            self.value = 0.0;
            return self.value;
        }
        let d2: f64 = self
            .mean
            .iter()
            .zip(embedding)
            .map(|(m, &e)| (e as f64 - m).powi(2))
            .sum();
        let ratio = d2 / (self.spread + self.floor);
        self.value = if self.count > self.warmup_hops {
            novelty_from_ratio(ratio as f32)
        } else {
            0.0
        };
        // Running averages at first (weight 1/n), exponential once n exceeds the time constant.
        let seen = (self.count - 1) as f64;
        let a_mean = self.alpha_mean.max(1.0 / (seen + 1.0));
        let a_spread = self.alpha_spread.max(1.0 / seen);
        for (m, &e) in self.mean.iter_mut().zip(embedding) {
            *m += a_mean * (e as f64 - *m);
        }
        self.spread += a_spread * (d2 - self.spread);
        self.value
    }
}

/// Maps the squared-distance ratio `r` onto 0..1 (module documentation). Allocation-free.
pub fn novelty_from_ratio(ratio: f32) -> f32 {
    if ratio.is_nan() || ratio <= 0.0 {
        return 0.0;
    }
    super::source::unit(
        (ratio / NOVELTY_RATIO_LOW).ln() / (NOVELTY_RATIO_HIGH / NOVELTY_RATIO_LOW).ln(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::test_util::Rng;

    const HOP: f64 = 0.01;

    fn sound(rng: &mut Rng, centre: &[f32], spread: f32) -> Vec<f32> {
        centre.iter().map(|c| c + spread * rng.gaussian()).collect()
    }

    #[test]
    fn spikes_on_a_change_of_sound_and_decays() {
        let mut rng = Rng::new(11);
        let dim = 250;
        let a: Vec<f32> = (0..dim).map(|_| rng.gaussian()).collect();
        let b: Vec<f32> = (0..dim).map(|_| rng.gaussian()).collect();
        let mut novelty = Novelty::new(NoveltyConfig::default(), HOP, dim);
        novelty.set_reference_variance(dim as f32);
        // 3 s of sound A, varying by 10 % of the corpus spread.
        let steady: Vec<f32> = (0..300)
            .map(|_| novelty.update(&sound(&mut rng, &a, 0.1)))
            .collect();
        assert!(steady[..50].iter().all(|&v| v == 0.0), "warm-up reads 0");
        let settled = steady[100..].iter().copied().fold(0.0f32, f32::max);
        assert!(settled < 0.1, "a steady sound is not novel: max {settled}");
        // Then sound B.
        let after: Vec<f32> = (0..300)
            .map(|_| novelty.update(&sound(&mut rng, &b, 0.1)))
            .collect();
        assert!(after[0] > 0.95, "the change spikes: {}", after[0]);
        let half = after.iter().position(|&v| v < 0.5).unwrap();
        assert!(half < 50, "decays below 0.5 within 0.5 s: {half} hops");
        let late = after[150..].iter().copied().fold(0.0f32, f32::max);
        assert!(late < 0.1, "back to quiet 1.5 s after the change: {late}");
        // Returning to A 3 s later is novel again.
        let back = novelty.update(&sound(&mut rng, &a, 0.1));
        assert!(back > 0.6, "{back}");
    }

    #[test]
    fn sound_after_silence_is_novel_and_silence_is_not() {
        let dim = 16;
        let mut novelty = Novelty::new(NoveltyConfig::default(), HOP, dim);
        let silence = vec![0.25f32; dim];
        let quiet = (0..200)
            .map(|_| novelty.update(&silence))
            .fold(0.0f32, f32::max);
        assert_eq!(quiet, 0.0);
        let mut rng = Rng::new(5);
        let onset = novelty.update(&sound(&mut rng, &[1.0; 16], 0.1));
        assert_eq!(onset, 1.0);
        // A new model (another length) restarts the statistics, and NaN is ignored.
        assert_eq!(novelty.update(&[0.0; 8]), 0.0);
        assert_eq!(novelty.update(&[f32::NAN; 8]), 0.0);
    }

    #[test]
    fn ratio_map_has_the_documented_anchors() {
        assert_eq!(novelty_from_ratio(1.0), 0.0);
        assert_eq!(novelty_from_ratio(2.0), 0.0);
        assert!((novelty_from_ratio(30.0) - 1.0).abs() < 1e-6);
        assert!((novelty_from_ratio(2.0 * 15.0_f32.sqrt()) - 0.5).abs() < 1e-5);
        assert_eq!(novelty_from_ratio(f32::NAN), 0.0);
        assert_eq!(novelty_from_ratio(f32::INFINITY), 1.0);
    }
}
