//! Offline: drawing training batches — which sequences an epoch visits ([`Draws`], with package
//! weights) and what the network sees of them ([`Batch`], augmented and shaped by the
//! objective). Allocates when built and while a batch grows; a steady batch size reuses its
//! buffers.

use super::speed::SpeedChange;
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
    /// Per sequence, the index of its file: a contrastive partner comes from the same file.
    pub file: &'a [u32],
    /// How many kept sequences away a contrastive partner may lie (0: the moment itself).
    pub reach: usize,
    /// The model's normalisation, applied after augmentation.
    pub normalisation: &'a Normalisation,
    /// Bands per frame.
    pub n_bands: usize,
    /// Values per sequence.
    pub seq_len: usize,
    /// Where speed-changed buffers are rebuilt from, when speeds are changed.
    pub speed: Option<SpeedSource<'a>>,
}

/// What speed-changed training buffers are rebuilt from.
pub(super) struct SpeedSource<'a> {
    /// The speeds drawn and how a buffer is rebuilt at one.
    pub change: &'a SpeedChange,
    /// Every analysed frame in dB, `n_bands` values each.
    pub frames: &'a [f32],
    /// Per sequence, the index in `frames` of its newest frame.
    pub newest: &'a [usize],
    /// Per sequence, the index in `frames` of its analysed piece's first frame.
    pub piece_start: &'a [usize],
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
    /// The sequences of the batch: each drawn one, followed by its partner when the objective
    /// contrasts views.
    sequences: Vec<usize>,
}

impl Batch {
    /// The example for sequences `idx` (each followed by its partner, see [`partner`], when
    /// the objective contrasts views): played at a changed speed when `source.speed` is given,
    /// augmented as `cfg.augmentation` asks, normalised, then
    /// corrupted and weighted as `cfg.objective` asks. Returns it with its sequence count.
    /// Allocates only while the batch grows.
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
        for &i in idx {
            self.sequences.push(i);
            if objective.contrast().is_some() {
                self.sequences
                    .push(partner(i, source.file, source.reach, rng));
            }
        }
        let idx = &self.sequences;
        if cfg.augmentation.is_active() || source.speed.is_some() {
            self.db.resize(idx.len() * seq_len, 0.0);
            for (&i, sequence) in idx.iter().zip(self.db.chunks_exact_mut(seq_len)) {
                match &source.speed {
                    Some(from) => {
                        let speed = from.change.draw(rng);
                        let (first, newest) = (from.piece_start[i], from.newest[i]);
                        from.change
                            .rebuild(from.frames, first, newest, speed, sequence);
                    }
                    None => sequence.copy_from_slice(&source.db[i * seq_len..][..seq_len]),
                }
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

/// A contrastive partner for sequence `i`: another sequence of the same file at most `reach`
/// kept sequences away (a file's kept sequences are consecutive, in time order), or `i` itself
/// when `reach` is 0 or the file has no other sequence in reach. Allocation-free.
pub(super) fn partner(i: usize, file: &[u32], reach: usize, rng: &mut SplitMix64) -> usize {
    if reach == 0 {
        return i;
    }
    let offset = 1 + rng.below(reach);
    let (later, earlier) = (i + offset, i.checked_sub(offset));
    let same = |j: usize| file.get(j) == Some(&file[i]);
    let (first, second) = if rng.below(2) == 0 {
        (Some(later), earlier)
    } else {
        (earlier, Some(later))
    };
    // The nearer end of the file when the offset passes it on both sides.
    [first, second, Some(i + 1), i.checked_sub(1)]
        .into_iter()
        .flatten()
        .find(|&j| same(j))
        .unwrap_or(i)
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

    /// Partners stay in their file, within reach, and cover both directions; a file of one
    /// sequence, or no reach, pairs a moment with itself.
    #[test]
    fn partners_come_from_the_same_file_within_reach() {
        // Files: 0 holds sequences 0..10, 1 holds 10, 2 holds 11..20.
        let file: Vec<u32> = (0..20)
            .map(|i| match i {
                0..=9 => 0,
                10 => 1,
                _ => 2,
            })
            .collect();
        let mut rng = SplitMix64(7);
        assert_eq!(partner(4, &file, 0, &mut rng), 4);
        assert_eq!(partner(10, &file, 3, &mut rng), 10);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            for i in (0..10).chain(11..20) {
                let j = partner(i, &file, 3, &mut rng);
                assert_ne!(j, i);
                assert_eq!(file[j], file[i]);
                assert!(j.abs_diff(i) <= 3, "{i} → {j}");
                if i == 5 {
                    seen.insert(j);
                }
            }
        }
        assert_eq!(seen, [2, 3, 4, 6, 7, 8].into_iter().collect());
    }
}
