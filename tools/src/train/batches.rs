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
    /// Running sums of the sequences' draw weights, one per training sequence; empty when
    /// nothing is balanced (an epoch is then a plain shuffle).
    cumulative: Vec<f64>,
}

/// How strongly the draws even out the corpus's packages and kinds, each 0..1 (0: as the corpus
/// holds them; 1: every package, or every kind, alike).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Balance {
    /// Evens out packages, so that a large package neither dominates nor is cut.
    pub package: f64,
    /// Evens out weak kinds (files with no kind count as one more kind), after the packages, so
    /// that a kind the corpus holds little of (animal calls) is heard, and contrasted, more.
    pub kind: f64,
}

impl Draws {
    /// Draws over `train` (indices into `package`, each sequence's package, and into `kind`,
    /// each sequence's weak kind). Each package is drawn in proportion to its sequence count to
    /// the power `1 − balance.package`; then each kind in proportion to its share of those
    /// draws to the power `1 − balance.kind`. Allocates.
    pub(super) fn new(
        package: &[u32],
        kind: &[Option<u8>],
        train: &[usize],
        balance: Balance,
    ) -> Self {
        let package_balance = balance.package.clamp(0.0, 1.0);
        let kind_balance = balance.kind.clamp(0.0, 1.0);
        if package_balance == 0.0 && kind_balance == 0.0 {
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
        let mut weights: Vec<f64> = train
            .iter()
            .map(|&i| (counts[package[i] as usize] as f64).powf(-package_balance))
            .collect();
        if kind_balance > 0.0 {
            // A kind holding w of the package-balanced weight gets w^(1−balance) of the draws.
            let group = |i: usize| kind[i].map_or(0, |k| usize::from(k) + 1);
            let mut kind_weight = vec![0.0f64; usize::from(u8::MAX) + 2];
            for (&w, &i) in weights.iter().zip(train) {
                kind_weight[group(i)] += w;
            }
            for (w, &i) in weights.iter_mut().zip(train) {
                *w *= kind_weight[group(i)].powf(-kind_balance);
            }
        }
        let mut total = 0.0;
        let cumulative = weights
            .iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Self {
            train: train.to_vec(),
            cumulative,
        }
    }

    /// The share of the draws that falls on training sequences for which `of` holds (the
    /// sequences' own share when nothing is balanced). Allocation-free.
    pub(super) fn share(&self, of: impl Fn(usize) -> bool) -> f64 {
        let Some(&total) = self.cumulative.last() else {
            let hits = self.train.iter().filter(|&&i| of(i)).count();
            return hits as f64 / self.train.len().max(1) as f64;
        };
        let mut before = 0.0;
        let mut hits = 0.0;
        for (&c, &i) in self.cumulative.iter().zip(&self.train) {
            if of(i) {
                hits += c - before;
            }
            before = c;
        }
        hits / total
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
    /// Where each moment's contrastive partner comes from.
    pub partners: &'a Partners<'a>,
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
    /// The kind of each of `sequences`, when the contrast cancels same-kind negatives.
    kinds: Vec<Option<u8>>,
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
                self.sequences.push(source.partners.draw(i, rng));
            }
        }
        let idx = &self.sequences;
        let reads_kinds = objective.reads_kinds();
        if reads_kinds {
            self.kinds.clear();
            self.kinds
                .extend(idx.iter().map(|&i| source.partners.kind(i)));
        }
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
            kinds: reads_kinds.then_some(&self.kinds[..]),
        };
        (example, idx.len())
    }
}

/// Where each moment's contrastive partner comes from: another moment of its file, or, with
/// given chances, any moment of its package or of another file of its kind.
pub(super) struct Partners<'a> {
    /// Per sequence, the index of its file.
    file: &'a [u32],
    /// How many kept sequences away a partner from the same file may lie (0: the moment
    /// itself).
    reach: usize,
    /// Per sequence, the index of its package.
    package: &'a [u32],
    /// Per package, the sequences a package partner is drawn from: the training ones for
    /// training, the validation ones for validation, so that neither reaches into the other.
    members: Vec<Vec<usize>>,
    /// Chance that the partner is any of `members` of the same package instead: a package
    /// holds one kind of recording more often than two packages do, so this is a coarser
    /// "same kind" than one recording.
    package_share: f64,
    /// Per file, its weak kind (see `kinds`), when its path names one.
    file_kind: &'a [Option<u8>],
    /// Per kind, the sequences a kind partner is drawn from, of the same side of the split as
    /// `members`.
    kind_members: Vec<Vec<usize>>,
    /// Chance that the partner of a moment whose file has a kind is any of `kind_members` of
    /// that kind from another file instead: the one "same kind" across recordings and
    /// packages the corpus can tell without labels written by hand.
    kind_share: f64,
}

impl<'a> Partners<'a> {
    /// Partners for the sequences `among` (see the fields). Allocates.
    pub(super) fn new(
        (file, reach): (&'a [u32], usize),
        (package, package_share): (&'a [u32], f64),
        (file_kind, kind_share): (&'a [Option<u8>], f64),
        among: &[usize],
    ) -> Self {
        let mut members = vec![Vec::new(); package.iter().max().map_or(0, |&p| p as usize + 1)];
        if package_share > 0.0 {
            for &i in among {
                members[package[i] as usize].push(i);
            }
        }
        let kinds = file_kind
            .iter()
            .flatten()
            .max()
            .map_or(0, |&k| k as usize + 1);
        let mut kind_members = vec![Vec::new(); kinds];
        if kind_share > 0.0 {
            for &i in among {
                if let Some(k) = file_kind[file[i] as usize] {
                    kind_members[k as usize].push(i);
                }
            }
        }
        Self {
            file,
            reach,
            package,
            members,
            package_share,
            file_kind,
            kind_members,
            kind_share,
        }
    }

    /// The partner of sequence `i`. Draws nothing for a package or kind partner when its
    /// chance is 0, so that runs without one repeat exactly. Allocation-free.
    pub(super) fn draw(&self, i: usize, rng: &mut SplitMix64) -> usize {
        if self.package_share > 0.0 && rng.next_f64() < self.package_share {
            let members = &self.members[self.package[i] as usize];
            if members.len() > 1 {
                let k = rng.below(members.len());
                // Another moment than `i` itself: its neighbour in the list when drawn.
                return if members[k] == i {
                    members[(k + 1) % members.len()]
                } else {
                    members[k]
                };
            }
        }
        if let Some(kind) = self.kind(i) {
            if self.kind_share > 0.0 && rng.next_f64() < self.kind_share {
                if let Some(j) = self.other_file_of_kind(i, kind, rng) {
                    return j;
                }
            }
        }
        partner(i, self.file, self.reach, rng)
    }

    /// The kind of sequence `i`'s file, when its path names one.
    pub(super) fn kind(&self, i: usize) -> Option<u8> {
        self.file_kind[self.file[i] as usize]
    }

    /// A moment of `kind` from another file than `i`'s, or `None` after a few draws that all
    /// fell in `i`'s file (a kind held by one file). Allocation-free; at most
    /// [`KIND_DRAWS`] draws.
    fn other_file_of_kind(&self, i: usize, kind: u8, rng: &mut SplitMix64) -> Option<usize> {
        let members = &self.kind_members[kind as usize];
        if members.is_empty() {
            return None;
        }
        (0..KIND_DRAWS)
            .map(|_| members[rng.below(members.len())])
            .find(|&j| self.file[j] != self.file[i])
    }
}

/// Draws a kind partner may take to leave its own file.
const KIND_DRAWS: usize = 8;

/// A contrastive partner for sequence `i`: another sequence of the same file at most `reach`
/// kept sequences away (a file's kept sequences are consecutive, in time order), or `i` itself
/// when `reach` is 0 or the file has no other sequence in reach. Allocation-free.
fn partner(i: usize, file: &[u32], reach: usize, rng: &mut SplitMix64) -> usize {
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

    /// The share of 200 epochs' draws that falls on sequences for which `of` holds, and the
    /// share [`Draws::share`] expects, checked to agree within `tolerance`.
    fn drawn_and_expected_share(
        draws: &Draws,
        train: &[usize],
        of: impl Fn(usize) -> bool,
        tolerance: f64,
    ) -> (f64, f64) {
        let mut rng = SplitMix64(4);
        let mut order = train.to_vec();
        let mut hits = 0usize;
        for _ in 0..200 {
            order.copy_from_slice(train);
            draws.epoch(&mut rng, &mut order);
            hits += order.iter().filter(|&&i| of(i)).count();
        }
        let drawn = hits as f64 / (200 * train.len()) as f64;
        let expected = draws.share(of);
        assert!(
            (drawn - expected).abs() < tolerance,
            "{drawn} against {expected}"
        );
        (drawn, expected)
    }

    /// Package 0 holds 90 sequences and package 1 holds 10: balance 0 keeps 9 : 1 (a plain
    /// shuffle), balance 1 draws both alike, 0.5 in between (3 : 1).
    #[test]
    fn package_balance_sets_the_draw_shares() {
        let package: Vec<u32> = (0..100).map(|i| u32::from(i >= 90)).collect();
        let kind = vec![None; 100];
        let train: Vec<usize> = (0..100).collect();
        let share_of_small = |balance: f64| {
            let draws = Draws::new(
                &package,
                &kind,
                &train,
                Balance {
                    package: balance,
                    kind: 0.0,
                },
            );
            drawn_and_expected_share(&draws, &train, |i| i >= 90, 0.02).0
        };
        assert_eq!(share_of_small(0.0), 0.1);
        assert!((share_of_small(1.0) - 0.5).abs() < 0.02);
        assert!((share_of_small(0.5) - 0.25).abs() < 0.02);
    }

    /// Four packages of 25 sequences: three hold speech, one holds animal calls in its last 5
    /// sequences (a package of mixed kinds). Packages balanced alike leave the animals 5 %;
    /// kinds balanced alike (speech, animal, no kind) give them a third, and 0.5 gives them
    /// √5 / (√75 + √5 + √20) of the draws.
    #[test]
    fn kind_balance_evens_out_kinds_after_packages() {
        let package: Vec<u32> = (0..100).map(|i| i / 25).collect();
        let kind: Vec<Option<u8>> = (0..100)
            .map(|i| match i {
                0..=74 => Some(0),
                95.. => Some(4),
                _ => None,
            })
            .collect();
        let train: Vec<usize> = (0..100).collect();
        let animal_share = |balance: f64| {
            let draws = Draws::new(
                &package,
                &kind,
                &train,
                Balance {
                    package: 1.0,
                    kind: balance,
                },
            );
            drawn_and_expected_share(&draws, &train, |i| kind[i] == Some(4), 0.01).1
        };
        assert!((animal_share(0.0) - 0.05).abs() < 1e-12);
        assert!((animal_share(1.0) - 1.0 / 3.0).abs() < 1e-12);
        let half = 5f64.sqrt() / (75f64.sqrt() + 5f64.sqrt() + 20f64.sqrt());
        assert!((animal_share(0.5) - half).abs() < 1e-12);
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

    /// Package partners come from the same package and the set drawn among, never the moment
    /// itself, at about the chance asked; the rest are partners from the file.
    #[test]
    fn package_partners_stay_in_the_package_and_the_set() {
        // Files of 5 sequences; packages 0 (files 0, 1) and 1 (files 2, 3); the odd sequences
        // are the set drawn among.
        let file: Vec<u32> = (0..20).map(|i| i / 5).collect();
        let package: Vec<u32> = (0..20).map(|i| i / 10).collect();
        let among: Vec<usize> = (0..20).filter(|i| i % 2 == 1).collect();
        let partners = Partners::new((&file, 2), (&package, 0.5), (&[None; 4], 0.0), &among);
        let mut rng = SplitMix64(9);
        let (mut other_file, mut draws) = (0, 0);
        for _ in 0..500 {
            for i in 0..20 {
                let j = partners.draw(i, &mut rng);
                assert_ne!(j, i);
                assert_eq!(package[j], package[i]);
                if file[j] != file[i] {
                    assert!(among.contains(&j), "{i} → {j}");
                    other_file += 1;
                } else {
                    assert!(j.abs_diff(i) <= 2 || among.contains(&j), "{i} → {j}");
                }
                draws += 1;
            }
        }
        // Half the partners come from the package, and about half of those from the other file.
        let share = other_file as f64 / draws as f64;
        assert!((0.2..0.3).contains(&share), "{share}");
        // Without a package share, partners are the file's alone.
        let partners = Partners::new((&file, 2), (&package, 0.0), (&[None; 4], 0.0), &among);
        assert!((0..20).all(|i| file[partners.draw(i, &mut rng)] == file[i]));
    }

    /// With cancelled same-kind negatives, or same-kind positives, the example gives each of
    /// its sequences (a drawn moment, then its partner) the kind of its file, and its contrast
    /// says which; without either, it gives none.
    #[test]
    fn a_batch_carries_its_sequences_kinds_when_the_contrast_reads_them() {
        use echoic_core::listener::format::{Level, Normalisation};
        use echoic_core::listener::lstm::SameKind;
        // Files of 2 sequences of 2 values: kinds 0, none and 1.
        let file: Vec<u32> = (0..6).map(|i| i / 2).collect();
        let kinds = [Some(0), None, Some(1)];
        let train: Vec<usize> = (0..6).collect();
        let partners = Partners::new((&file, 1), (&file, 0.0), (&kinds, 0.0), &train);
        let values: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let normalisation = Normalisation {
            offset: vec![0.0],
            scale: vec![1.0],
            level: Level::Absolute,
        };
        let source = || BatchSource {
            normalised: &values,
            db: &values,
            train: &train,
            partners: &partners,
            normalisation: &normalisation,
            n_bands: 1,
            seq_len: 2,
            speed: None,
        };
        let mut cfg = TrainConfig::default();
        cfg.objective.contrast_weight = 0.1;
        cfg.objective.contrast_same_kind = Some(SameKind::Cancelled);
        let mut batch = Batch::default();
        let mut rng = SplitMix64(5);
        let (example, sequences) = batch.prepare(source(), &[4, 0, 3], &cfg, &mut rng);
        assert_eq!(sequences, 6);
        assert_eq!(
            example.kinds,
            Some(&[Some(1), Some(1), Some(0), Some(0), None, None][..])
        );
        assert_eq!(example.contrast.unwrap().same_kind, SameKind::Cancelled);
        for same_kind in [SameKind::Positive, SameKind::Pulled(0.25)] {
            cfg.objective.contrast_same_kind = Some(same_kind);
            let (example, _) = batch.prepare(source(), &[4, 0, 3], &cfg, &mut rng);
            assert_eq!(example.kinds.map(<[_]>::len), Some(6));
            assert_eq!(example.contrast.unwrap().same_kind, same_kind);
        }
        cfg.objective.contrast_same_kind = None;
        let (example, _) = batch.prepare(source(), &[4, 0, 3], &cfg, &mut rng);
        assert_eq!(example.kinds, None);
    }

    /// Kind partners come from another file of the same kind and the set drawn among, at
    /// about the chance asked; files without a kind, and kinds held by one file, keep partners
    /// from their own file.
    #[test]
    fn kind_partners_come_from_other_files_of_the_kind() {
        // Files of 5 sequences: 0 and 2 are of kind 1, 1 has no kind, 3 is alone in kind 0;
        // each file its own package.
        let file: Vec<u32> = (0..20).map(|i| i / 5).collect();
        let package = file.clone();
        let kinds = [Some(1), None, Some(1), Some(0)];
        let among: Vec<usize> = (0..20).collect();
        let partners = Partners::new((&file, 2), (&package, 0.0), (&kinds, 0.5), &among);
        let mut rng = SplitMix64(3);
        let mut across = 0;
        for _ in 0..1000 {
            for i in 0..20 {
                let j = partners.draw(i, &mut rng);
                let (fi, fj) = (file[i] as usize, file[j] as usize);
                if fi == fj {
                    assert!(j.abs_diff(i) <= 2, "{i} → {j}");
                } else {
                    assert_eq!(kinds[fj], kinds[fi], "{i} → {j}");
                    assert!(kinds[fi].is_some());
                    across += 1;
                }
                if matches!(fi, 1 | 3) {
                    assert_eq!(fj, fi, "{i} → {j}");
                }
            }
        }
        // Files 0 and 2 (10 of the 20 sequences) find the other half the time.
        let share = f64::from(across) / 20_000.0;
        assert!((0.22..0.28).contains(&share), "{share}");
    }
}
