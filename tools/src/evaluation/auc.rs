//! The learned-sound ROC-AUC: how well the plugin's similarity to a taught sound tells clips of
//! the taught sound's class from the rest.
//!
//! Every clip teaches once, through the plugin's own [`LearnedSounds`]: a capture of
//! [`DEFAULT_LEARN_SECONDS`] at the model's hop over the clip's first usable hops. A clip with
//! fewer usable hops than the capture teaches the mean of all of them: the rest of the capture is
//! fed non-finite embeddings, which [`LearnedSounds::observe`] skips but counts as time. Every
//! other clip is then scored by its mean [`LearnedSounds::similarity`] over its usable hops, and
//! the AUC compares the scores of the other clips of the teacher's class with those of the other
//! classes.
//!
//! The similarity maps both the embedding and the learned mean into partially whitened principal
//! coordinates before comparing them ([`Pca::whiten_partially`]). The map is affine, so the
//! mapped mean of a capture is the mean of its mapped hops: the hops are mapped once
//! ([`similarity_rows`]) and the learned sounds then work in that space with [`unit_pca`], which
//! leaves its coordinates as they are. The result is the plugin's similarity (to rounding),
//! without mapping every hop again for every teacher.

use std::ops::Range;

use echoic_core::outputs::learned::{LearnedSounds, DEFAULT_LEARN_SECONDS, SIMILARITY_WHITENING};
use echoic_core::pca::Pca;

/// ROC-AUC of a score: the probability that a random positive scores above a random negative,
/// ties counting half (the Mann–Whitney U over `P · N`). `None` when either side is empty.
/// Allocation-free.
pub fn roc_auc(positives: &[f64], negatives: &[f64]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    let wins: f64 = positives
        .iter()
        .flat_map(|p| negatives.iter().map(move |n| (p, n)))
        .map(|(p, n)| match p.total_cmp(n) {
            std::cmp::Ordering::Greater => 1.0,
            std::cmp::Ordering::Equal => 0.5,
            std::cmp::Ordering::Less => 0.0,
        })
        .sum();
    Some(wins / (positives.len() * negatives.len()) as f64)
}

/// The learned-sound AUCs of one representation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LearnedSoundAuc {
    /// Mean AUC over the teaching clips: the headline of how well teaching one clip finds its
    /// class. `None` without a clip that could be scored.
    pub mean: Option<f64>,
    /// Mean AUC of the teaching clips of each class, in label order: which sound types the
    /// learned-sound outputs can be trusted with.
    pub per_class: Vec<Option<f64>>,
    /// The same with the other clips of the teacher's source left out of the scoring, so that
    /// recognising the same recording (or song, kit, language…) does not count.
    pub leave_source_out: Option<f64>,
    /// The leave-source-out mean per teaching clip's class.
    pub leave_source_out_per_class: Vec<Option<f64>>,
    /// Teaching clips that have an AUC: the sample size behind `mean`.
    pub teachers: usize,
    /// Teaching clips that have a leave-source-out AUC (their class has other sources).
    pub leave_source_out_teachers: usize,
    /// Teaching clips with less usable audio than a capture, which taught the mean of what they
    /// had.
    pub short_captures: usize,
}

/// The clips an AUC is measured over.
pub struct LabelledClips<'a> {
    /// Each clip's hops, as a range of rows of the hop matrix.
    pub hops: &'a [Range<usize>],
    /// Each clip's class.
    pub labels: &'a [usize],
    /// Each clip's source (see `sources`).
    pub sources: &'a [usize],
    /// How many classes there are.
    pub n_classes: usize,
}

/// The PCA of `dim` identity axes with zero mean and unit variance: whitening with it, fully or
/// partially, leaves a vector unchanged. Allocates.
pub fn unit_pca(dim: usize) -> Pca {
    Pca {
        mean: vec![0.0; dim],
        axes: (0..dim)
            .map(|i| (0..dim).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect(),
        explained_variance: vec![1.0; dim],
    }
}

/// Every `rows.len() / dim` row in the learned-sound similarity's coordinates on `pca`'s
/// `pca.n_axes()` axes (partially whitened, at [`SIMILARITY_WHITENING`]), laid end to end.
/// Allocates the result.
pub fn similarity_rows(rows: &[f32], dim: usize, pca: &Pca) -> Vec<f32> {
    let k = pca.n_axes();
    let mut out = vec![0.0; rows.len() / dim * k];
    for (row, w) in rows.chunks_exact(dim).zip(out.chunks_exact_mut(k)) {
        pca.whiten_partially(row, SIMILARITY_WHITENING, w);
    }
    out
}

/// A [`LearnedSounds`] that learned sound 0 from `hops` (`dim` values each) over one capture of
/// [`DEFAULT_LEARN_SECONDS`], and whether the hops ran out before the capture ended. Allocates.
pub fn teach(hops: &[f32], dim: usize, hop_seconds: f64) -> (LearnedSounds, bool) {
    let mut learned = LearnedSounds::new(hop_seconds);
    learned.set_embedding_dim(dim);
    learned.start_learning(0, DEFAULT_LEARN_SECONDS);
    for hop in hops.chunks_exact(dim) {
        if learned.observe(hop).is_some() {
            return (learned, false);
        }
    }
    let nothing = vec![f32::NAN; dim];
    while learned.learning().is_some() {
        learned.observe(&nothing);
    }
    (learned, true)
}

/// Mean similarity of `hops` to learned sound 0, `None` without hops. Allocation-free.
fn mean_similarity(learned: &LearnedSounds, hops: &[f32], dim: usize, pca: &Pca) -> Option<f64> {
    let n = hops.len() / dim;
    let sum: f64 = hops
        .chunks_exact(dim)
        .map(|hop| learned.similarity(hop, Some(pca))[0] as f64)
        .sum();
    (n > 0).then(|| sum / n as f64)
}

/// Teaches every clip in turn and measures the AUC of the others' mean similarity (module
/// documentation). `hops` holds rows of `dim` values in the similarity's coordinates
/// ([`similarity_rows`]), indexed by `clips.hops`. Allocates.
pub fn learned_sound_auc(
    hops: &[f32],
    dim: usize,
    clips: &LabelledClips,
    hop_seconds: f64,
) -> LearnedSoundAuc {
    let pca = unit_pca(dim);
    let rows = |c: usize| &hops[clips.hops[c].start * dim..clips.hops[c].end * dim];
    let (mut all, mut other_sources) = (Vec::new(), Vec::new());
    let mut short_captures = 0;
    for teacher in 0..clips.hops.len() {
        if clips.hops[teacher].is_empty() {
            continue;
        }
        let (learned, short) = teach(rows(teacher), dim, hop_seconds);
        short_captures += usize::from(short);
        let scores: Vec<(usize, f64)> = (0..clips.hops.len())
            .filter(|&c| c != teacher)
            .filter_map(|c| Some((c, mean_similarity(&learned, rows(c), dim, &pca)?)))
            .collect();
        let label = clips.labels[teacher];
        let auc_over = |keep: &dyn Fn(usize) -> bool| {
            let (same, other): (Vec<(usize, f64)>, _) = scores
                .iter()
                .filter(|(c, _)| keep(*c))
                .partition(|(c, _)| clips.labels[*c] == label);
            roc_auc(&second(&same), &second(&other))
        };
        if let Some(auc) = auc_over(&|_| true) {
            all.push((label, auc));
        }
        let source = clips.sources[teacher];
        if let Some(auc) = auc_over(&|c| clips.sources[c] != source) {
            other_sources.push((label, auc));
        }
    }
    LearnedSoundAuc {
        mean: mean(all.iter().map(|a| a.1)),
        per_class: class_means(&all, clips.n_classes),
        leave_source_out: mean(other_sources.iter().map(|a| a.1)),
        leave_source_out_per_class: class_means(&other_sources, clips.n_classes),
        teachers: all.len(),
        leave_source_out_teachers: other_sources.len(),
        short_captures,
    }
}

/// The scores of `(clip, score)` pairs. Allocates.
fn second(pairs: &[(usize, f64)]) -> Vec<f64> {
    pairs.iter().map(|p| p.1).collect()
}

/// The mean of `values`, `None` when there are none. Allocation-free.
pub fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The mean value of each class in `(class, value)` pairs, in class order. Allocates.
fn class_means(values: &[(usize, f64)], n_classes: usize) -> Vec<Option<f64>> {
    (0..n_classes)
        .map(|class| mean(values.iter().filter(|v| v.0 == class).map(|v| v.1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_wins_and_half_ties() {
        assert_eq!(roc_auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(roc_auc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        // Pairs: (2,1) win, (2,2) tie, (2,3) loss, (4,·) three wins: 4.5 / 6.
        assert_eq!(roc_auc(&[2.0, 4.0], &[1.0, 2.0, 3.0]), Some(0.75));
        // All tied: chance.
        assert_eq!(roc_auc(&[0.5; 3], &[0.5; 4]), Some(0.5));
        assert_eq!(roc_auc(&[], &[1.0]), None);
    }

    /// Deterministic pseudo-Gaussian values (sum of uniforms).
    fn noise(state: &mut u64) -> f32 {
        (0..4)
            .map(|_| {
                *state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .sum()
    }

    #[test]
    fn similarity_in_its_own_coordinates_is_the_plugins() {
        let (dim, n) = (12, 400);
        let mut state = 5u64;
        let rows: Vec<f32> = (0..n * dim)
            .map(|i| noise(&mut state) * (1.0 + (i % dim) as f32))
            .collect();
        let pca = echoic_core::pca::fit(&rows, dim, 4).unwrap();
        let k = pca.n_axes();
        let mapped = similarity_rows(&rows, dim, &pca);
        let hop = 0.01;
        let (direct, short) = teach(&rows[..300 * dim], dim, hop);
        assert!(!short, "300 hops fill a 2 s capture");
        let (via_mapped, _) = teach(&mapped[..300 * k], k, hop);
        let unit = unit_pca(k);
        for i in 300..n {
            let a = direct.similarity(&rows[i * dim..(i + 1) * dim], Some(&pca))[0];
            let b = via_mapped.similarity(&mapped[i * k..(i + 1) * k], Some(&unit))[0];
            assert!((a - b).abs() < 1e-4, "hop {i}: {a} vs {b}");
        }
    }

    #[test]
    fn a_short_clip_teaches_the_mean_of_its_hops() {
        let hops = [1.0, 2.0, 3.0, 6.0];
        let (learned, short) = teach(&hops, 2, 0.01);
        assert!(short);
        let sound = learned.sounds[0].as_ref().unwrap();
        assert_eq!(
            (sound.mean.as_slice(), sound.count),
            ([2.0, 4.0].as_slice(), 2)
        );
    }

    #[test]
    fn separated_classes_score_one_and_leaving_sources_out_is_reported() {
        // Two classes far apart in a 2-d whitened space, two sources each, 250 hops per clip.
        let mut state = 9u64;
        let (mut hops, mut ranges, mut labels, mut sources) = (vec![], vec![], vec![], vec![]);
        for clip in 0..8 {
            let label = clip % 2;
            let start = hops.len() / 2;
            for _ in 0..250 {
                hops.push(label as f32 * 6.0 + 0.1 * noise(&mut state));
                hops.push(0.1 * noise(&mut state));
            }
            ranges.push(start..hops.len() / 2);
            labels.push(label);
            sources.push(clip % 4);
        }
        let clips = LabelledClips {
            hops: &ranges,
            labels: &labels,
            sources: &sources,
            n_classes: 2,
        };
        let auc = learned_sound_auc(&hops, 2, &clips, 0.01);
        assert_eq!(auc.mean, Some(1.0));
        assert_eq!(auc.per_class, [Some(1.0), Some(1.0)]);
        assert_eq!(auc.leave_source_out, Some(1.0));
        assert_eq!((auc.teachers, auc.leave_source_out_teachers), (8, 8));
        assert_eq!(auc.short_captures, 0);
        // With one source per class, no same-class clip is left to score.
        let one_source: Vec<usize> = labels.clone();
        let clips = LabelledClips {
            sources: &one_source,
            ..clips
        };
        let auc = learned_sound_auc(&hops, 2, &clips, 0.01);
        assert_eq!(
            (auc.leave_source_out, auc.leave_source_out_teachers),
            (None, 0)
        );
    }
}
