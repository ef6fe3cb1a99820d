//! Offline: drawing training batches — which sequences an epoch visits ([`Draws`], with package
//! weights) and what the network sees of them ([`Batch`], augmented and shaped by the
//! objective). Allocates when built and while a batch grows; a steady batch size reuses its
//! buffers.

use super::{gather, TrainConfig};
use echoic_core::listener::lstm::Example;
use echoic_core::listener::Normalisation;
use echoic_core::rng::SplitMix64;

/// Which training sequences each epoch visits.
pub(super) struct Draws {
    /// The training sequences.
    train: Vec<usize>,
    /// Running sums of the sequences' draw weights, one per training sequence; empty when the
    /// packages are not balanced (an epoch is then a plain shuffle).
    cumulative: Vec<f64>,
}

impl Draws {
    /// Draws over `train` (indices into `package`, each sequence's package) where each package
    /// is drawn in proportion to its sequence count to the power `1 − balance`. Allocates.
    pub(super) fn new(package: &[u32], train: &[usize], balance: f64) -> Self {
        let balance = balance.clamp(0.0, 1.0);
        if balance == 0.0 {
            return Self {
                train: train.to_vec(),
                cumulative: Vec::new(),
            };
        }
        let packages = package.iter().max().map_or(0, |&p| p as usize + 1);
        let mut counts = vec![0usize; packages];
        for &i in train {
            counts[package[i] as usize] += 1;
        }
        // A package of n sequences gets n^(1−balance) of the draws, so each sequence n^−balance.
        let mut total = 0.0;
        let cumulative = train
            .iter()
            .map(|&i| {
                total += (counts[package[i] as usize] as f64).powf(-balance);
                total
            })
            .collect();
        Self {
            train: train.to_vec(),
            cumulative,
        }
    }

    /// This epoch's order into `order` (as long as the training set): a shuffle, or weighted
    /// draws with replacement. Allocation-free.
    pub(super) fn epoch(&self, rng: &mut SplitMix64, order: &mut [usize]) {
        let Some(&total) = self.cumulative.last() else {
            rng.shuffle(order);
            return;
        };
        for slot in order.iter_mut() {
            let u = rng.next_f64() * total;
            let k = self.cumulative.partition_point(|&c| c <= u);
            *slot = self.train[k.min(self.train.len() - 1)];
        }
    }
}

/// Where a batch's sequences come from.
pub(super) struct BatchSource<'a> {
    /// Every sequence, normalised (the clean input when nothing is augmented).
    pub normalised: &'a [f32],
    /// Every sequence in dB, for augmentation.
    pub db: &'a [f32],
    /// The training sequences: where mixed-in sounds are drawn from.
    pub train: &'a [usize],
    /// The model's normalisation, applied after augmentation.
    pub normalisation: &'a Normalisation,
    /// Bands per frame.
    pub n_bands: usize,
    /// Values per sequence.
    pub seq_len: usize,
}

/// The buffers of one batch, kept between batches.
#[derive(Default)]
pub(super) struct Batch {
    /// Augmented sequences in dB.
    db: Vec<f32>,
    /// What the network should reconstruct, normalised.
    target: Vec<f32>,
    /// What it reads: the target, corrupted when the objective masks.
    input: Vec<f32>,
    /// The squared error's weights, when the objective weighs.
    weights: Vec<f32>,
    /// The sequences of the batch: each drawn one, twice when the objective contrasts views.
    sequences: Vec<usize>,
}

impl Batch {
    /// The example for sequences `idx` (each twice, side by side, when the objective
    /// contrasts views): augmented as `cfg.augmentation` asks, normalised, then corrupted and
    /// weighted as `cfg.objective` asks. Returns it with its sequence count. Allocates only
    /// while the batch grows.
    pub(super) fn prepare<'b>(
        &'b mut self,
        source: BatchSource,
        idx: &[usize],
        cfg: &TrainConfig,
        rng: &mut SplitMix64,
    ) -> (Example<'b>, usize) {
        let (n_bands, seq_len) = (source.n_bands, source.seq_len);
        let objective = cfg.objective;
        self.sequences.clear();
        let views = if objective.contrast().is_some() { 2 } else { 1 };
        for &i in idx {
            self.sequences.extend(std::iter::repeat_n(i, views));
        }
        let idx = &self.sequences;
        if cfg.augmentation.is_active() {
            gather(source.db, idx, seq_len, &mut self.db);
            for sequence in self.db.chunks_exact_mut(seq_len) {
                cfg.augmentation.apply(sequence, n_bands, rng, |r| {
                    let other = source.train[r.below(source.train.len())];
                    &source.db[other * seq_len..][..seq_len]
                });
            }
            self.target.resize(self.db.len(), 0.0);
            source
                .normalisation
                .apply(&self.db, &mut self.target, seq_len);
        } else {
            gather(source.normalised, idx, seq_len, &mut self.target);
        }
        if objective.masks() {
            self.input.clone_from(&self.target);
            for sequence in self.input.chunks_exact_mut(seq_len) {
                objective.corrupt(sequence, n_bands, rng);
            }
        }
        if objective.weighs() {
            self.weights.resize(self.target.len(), 0.0);
            objective.weights(&self.target, n_bands, &mut self.weights);
        }
        let example = Example {
            input: if objective.masks() {
                &self.input
            } else {
                &self.target
            },
            target: &self.target,
            weights: objective.weighs().then_some(&self.weights[..]),
            contrast: objective.contrast(),
        };
        (example, idx.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Package 0 holds 90 sequences and package 1 holds 10: balance 0 keeps 9 : 1 (a plain
    /// shuffle), balance 1 draws both alike, 0.5 in between (3 : 1).
    #[test]
    fn package_balance_sets_the_draw_shares() {
        let package: Vec<u32> = (0..100).map(|i| u32::from(i >= 90)).collect();
        let train: Vec<usize> = (0..100).collect();
        let share_of_small = |balance: f64| {
            let draws = Draws::new(&package, &train, balance);
            let mut rng = SplitMix64(4);
            let mut order = train.clone();
            let mut small = 0usize;
            for _ in 0..200 {
                order.copy_from_slice(&train);
                draws.epoch(&mut rng, &mut order);
                small += order.iter().filter(|&&i| i >= 90).count();
            }
            small as f64 / (200 * 100) as f64
        };
        assert_eq!(share_of_small(0.0), 0.1);
        assert!((share_of_small(1.0) - 0.5).abs() < 0.02);
        assert!((share_of_small(0.5) - 0.25).abs() < 0.02);
    }
}
