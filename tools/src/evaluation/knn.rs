//! k-nearest-neighbour sound-type accuracy: one classifier (Euclidean distance on features
//! standardised with the reference set's statistics, majority vote, the nearest neighbour breaking
//! ties), measured either with stratified k-fold cross-validation over clips or leaving one source
//! out at a time.

/// Accuracy of the k-nearest-neighbour classifier under stratified `folds`-fold
/// cross-validation with a seeded shuffle. Allocates.
///
/// # Panics
/// If `vectors` and `labels` differ in length, or vectors differ in dimension.
pub fn knn_cross_validated_accuracy(
    vectors: &[Vec<f32>],
    labels: &[usize],
    k: usize,
    folds: usize,
    seed: u64,
) -> f64 {
    knn_accuracy_over_folds(vectors, labels, k, &stratified_folds(labels, folds, seed))
}

/// Accuracy of the k-nearest-neighbour classifier when every clip is classified against only
/// the clips of other sources (`sources[i]` names clip `i`'s source): no recording, package or
/// song is on both sides. A source holding every clip has no reference and counts as wrong.
/// Allocates.
///
/// # Panics
/// If `vectors`, `labels` and `sources` differ in length, or vectors differ in dimension.
pub fn knn_leave_one_source_out_accuracy(
    vectors: &[Vec<f32>],
    labels: &[usize],
    sources: &[usize],
    k: usize,
) -> f64 {
    knn_accuracy_over_folds(vectors, labels, k, sources)
}

/// The label the k-nearest-neighbour classifier gives each clip against the clips of other
/// sources only, as [`knn_leave_one_source_out_accuracy`] counts them; `None` for a clip whose
/// source holds every clip. With [`confusion`], which kinds are taken for which. Allocates.
///
/// # Panics
/// If `vectors`, `labels` and `sources` differ in length, or vectors differ in dimension.
pub fn knn_leave_one_source_out_votes(
    vectors: &[Vec<f32>],
    labels: &[usize],
    sources: &[usize],
    k: usize,
) -> Vec<Option<usize>> {
    votes_over_folds(vectors, labels, k, sources)
}

/// How many clips of each class (rows, by `labels`) were voted each class (columns); clips
/// without a vote are left out. Allocates the table.
///
/// # Panics
/// If a label or a vote is `n_classes` or more, or `votes` and `labels` differ in length.
pub fn confusion(votes: &[Option<usize>], labels: &[usize], n_classes: usize) -> Vec<Vec<usize>> {
    assert_eq!(votes.len(), labels.len());
    let mut table = vec![vec![0; n_classes]; n_classes];
    for (&vote, &label) in votes.iter().zip(labels) {
        if let Some(vote) = vote {
            table[label][vote] += 1;
        }
    }
    table
}

/// Accuracy when the items of each fold (`fold_of[i]`) are classified against the items of every
/// other fold. Folds without any other item count as wrong. Allocates.
fn knn_accuracy_over_folds(
    vectors: &[Vec<f32>],
    labels: &[usize],
    k: usize,
    fold_of: &[usize],
) -> f64 {
    let votes = votes_over_folds(vectors, labels, k, fold_of);
    let correct = votes
        .iter()
        .zip(labels)
        .filter(|&(&vote, &label)| vote == Some(label))
        .count();
    correct as f64 / labels.len().max(1) as f64
}

/// Each item's label as voted by the items of every other fold (`fold_of[i]` is item `i`'s);
/// `None` for the items of a fold that holds every item. Allocates.
fn votes_over_folds(
    vectors: &[Vec<f32>],
    labels: &[usize],
    k: usize,
    fold_of: &[usize],
) -> Vec<Option<usize>> {
    assert_eq!(vectors.len(), labels.len());
    assert_eq!(fold_of.len(), labels.len());
    let n = vectors.len();
    let mut votes = vec![None; n];
    let Some(&last_fold) = fold_of.iter().max() else {
        return votes;
    };
    for fold in 0..=last_fold {
        let (queries, reference): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| fold_of[i] == fold);
        if !queries.is_empty() && !reference.is_empty() {
            let voted = predictions(vectors, labels, k, &reference, &queries);
            for (&i, vote) in queries.iter().zip(voted) {
                votes[i] = Some(vote);
            }
        }
    }
    votes
}

/// The label the k-nearest-neighbour classifier over `reference` gives each of `queries`, with
/// every vector standardised by the reference's mean and deviation. Allocates.
fn predictions(
    vectors: &[Vec<f32>],
    labels: &[usize],
    k: usize,
    reference: &[usize],
    queries: &[usize],
) -> Vec<usize> {
    let (mean, std) = standardisation(vectors, reference);
    let standardise = |i: usize| -> Vec<f32> {
        vectors[i]
            .iter()
            .zip(&mean)
            .zip(&std)
            .map(|((x, m), s)| (x - m) / s)
            .collect()
    };
    let reference_z: Vec<Vec<f32>> = reference.iter().map(|&i| standardise(i)).collect();
    let reference_labels: Vec<usize> = reference.iter().map(|&i| labels[i]).collect();
    queries
        .iter()
        .map(|&i| knn_label(&standardise(i), &reference_z, &reference_labels, k))
        .collect()
}

/// The label the `k` nearest of `reference` (Euclidean) vote for `query`. Allocates the list of
/// distances.
fn knn_label(query: &[f32], reference: &[Vec<f32>], reference_labels: &[usize], k: usize) -> usize {
    let mut distances: Vec<(f32, usize)> = reference
        .iter()
        .zip(reference_labels)
        .map(|(r, &label)| {
            let d2 = query.iter().zip(r).map(|(a, b)| (a - b).powi(2)).sum();
            (d2, label)
        })
        .collect();
    distances.sort_by(|a, b| a.0.total_cmp(&b.0));
    vote(&distances[..k.min(distances.len())])
}

/// Majority label among `neighbours` (sorted nearest first); ties go to the label whose nearest
/// member is closest. Allocation-free.
fn vote(neighbours: &[(f32, usize)]) -> usize {
    let mut best = (0usize, usize::MAX, usize::MAX); // (count, first rank, label)
    for (rank, &(_, label)) in neighbours.iter().enumerate() {
        let count = neighbours.iter().filter(|n| n.1 == label).count();
        let first = neighbours.iter().position(|n| n.1 == label).unwrap_or(rank);
        if count > best.0 || (count == best.0 && first < best.1) {
            best = (count, first, label);
        }
    }
    best.2
}

/// Per-dimension mean and standard deviation (floored at 1e-6) of the `rows` of `vectors`.
/// Allocates the two vectors.
fn standardisation(vectors: &[Vec<f32>], rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let dim = vectors[rows[0]].len();
    let mut mean = vec![0.0f64; dim];
    let mut square = vec![0.0f64; dim];
    for &i in rows {
        assert_eq!(vectors[i].len(), dim);
        for d in 0..dim {
            mean[d] += vectors[i][d] as f64;
            square[d] += (vectors[i][d] as f64).powi(2);
        }
    }
    let n = rows.len() as f64;
    let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
    let std = square
        .iter()
        .zip(&mean)
        .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt()).max(1e-6) as f32)
        .collect();
    (mean.iter().map(|&m| m as f32).collect(), std)
}

/// Assigns each item a fold so that every label is spread evenly over the folds. Allocates.
fn stratified_folds(labels: &[usize], folds: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    let mut state = seed | 1;
    for i in (1..order.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        order.swap(i, (state % (i as u64 + 1)) as usize);
    }
    order.sort_by_key(|&i| labels[i]); // stable: keeps the shuffle within each label
    let mut fold_of = vec![0; labels.len()];
    for (position, &i) in order.iter().enumerate() {
        fold_of[i] = position % folds;
    }
    fold_of
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic uniform generator in −0.5..0.5.
    fn uniform(state: &mut u64) -> f32 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (*state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    #[test]
    fn knn_separates_clusters_and_fails_on_noise() {
        let mut vectors = Vec::new();
        let mut labels = Vec::new();
        let mut state = 7u64;
        for label in 0..3 {
            for _ in 0..30 {
                vectors.push(vec![
                    label as f32 * 5.0 + uniform(&mut state),
                    uniform(&mut state),
                ]);
                labels.push(label);
            }
        }
        assert_eq!(
            knn_cross_validated_accuracy(&vectors, &labels, 5, 5, 1),
            1.0
        );
        let noise: Vec<Vec<f32>> = (0..90)
            .map(|_| vec![uniform(&mut state), uniform(&mut state)])
            .collect();
        let accuracy = knn_cross_validated_accuracy(&noise, &labels, 5, 5, 1);
        assert!(accuracy < 0.6, "{accuracy}");
    }

    /// Two classes, each recorded from three sources. Every source sounds alike within itself
    /// (a tight cluster far from the others), and the sources of one class are no closer to each
    /// other than to the other class's: the classifier can only recognise the recording.
    #[test]
    fn leaving_the_source_out_exposes_recognising_the_recording() {
        let mut state = 3u64;
        let (mut vectors, mut labels, mut sources) = (Vec::new(), Vec::new(), Vec::new());
        // One dimension, cluster centres 10 apart, classes interleaved: A B A B A B.
        for source in 0..6 {
            for _ in 0..10 {
                vectors.push(vec![source as f32 * 10.0 + uniform(&mut state)]);
                labels.push(source % 2);
                sources.push(source);
            }
        }
        assert_eq!(
            knn_cross_validated_accuracy(&vectors, &labels, 5, 5, 1),
            1.0
        );
        let loso = knn_leave_one_source_out_accuracy(&vectors, &labels, &sources, 5);
        // Without its own source, each cluster's nearest clusters are of the other class.
        assert!(loso < 0.2, "{loso}");
        // With every clip its own source, leaving the source out is leave-one-clip-out.
        let own: Vec<usize> = (0..vectors.len()).collect();
        assert_eq!(
            knn_leave_one_source_out_accuracy(&vectors, &labels, &own, 5),
            1.0
        );
        // A single source has no reference at all.
        assert_eq!(
            knn_leave_one_source_out_accuracy(&vectors, &labels, &vec![0; 60], 5),
            0.0
        );
        assert!(
            knn_leave_one_source_out_votes(&vectors, &labels, &vec![0; 60], 5)
                .iter()
                .all(Option::is_none)
        );

        // The votes behind the accuracy: each class's clips are taken for the other class.
        let votes = knn_leave_one_source_out_votes(&vectors, &labels, &sources, 5);
        let table = confusion(&votes, &labels, 2);
        let correct = table[0][0] + table[1][1];
        assert_eq!(correct as f64 / 60.0, loso);
        assert!(table.iter().all(|row| row.iter().sum::<usize>() == 30));
        assert!(
            table[0][1] > table[0][0] && table[1][0] > table[1][1],
            "{table:?}"
        );
    }
}
