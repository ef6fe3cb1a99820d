//! Offline: `echoic eval`'s metrics.
//!
//! Metrics for `echoic eval`: reconstruction quality (MSE, R², the original Listener's peak-band
//! accuracy) and k-nearest-neighbour sound-type accuracy with k-fold cross-validation.

/// Reconstruction quality of a set of buffers.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReconstructionMetrics {
    /// Mean squared error, dB².
    pub mse_db2: f64,
    /// Coefficient of determination: 1 − SSE / SST, with SST around each band's mean.
    pub r_squared: f64,
    /// How often a reconstructed frame's loudest band is the original's loudest band.
    pub peak_band_accuracy: f64,
    /// Frames compared.
    pub frames: usize,
}

/// Compares `original` and `reconstructed`, both `frames × n_bands` in dB. Allocates one vector
/// of band means.
///
/// # Panics
/// If the lengths differ or are not a multiple of `n_bands`.
pub fn reconstruction_metrics(
    original: &[f32],
    reconstructed: &[f32],
    n_bands: usize,
) -> ReconstructionMetrics {
    assert_eq!(original.len(), reconstructed.len());
    assert_eq!(original.len() % n_bands, 0);
    let frames = original.len() / n_bands;
    if frames == 0 {
        return ReconstructionMetrics::default();
    }
    let mut means = vec![0.0f64; n_bands];
    for frame in original.chunks_exact(n_bands) {
        for (m, &x) in means.iter_mut().zip(frame) {
            *m += x as f64;
        }
    }
    means.iter_mut().for_each(|m| *m /= frames as f64);
    let (mut sse, mut sst, mut peaks) = (0.0f64, 0.0f64, 0usize);
    for (a, b) in original
        .chunks_exact(n_bands)
        .zip(reconstructed.chunks_exact(n_bands))
    {
        for ((&x, &y), m) in a.iter().zip(b).zip(&means) {
            sse += (x as f64 - y as f64).powi(2);
            sst += (x as f64 - m).powi(2);
        }
        peaks += usize::from(argmax(a) == argmax(b));
    }
    ReconstructionMetrics {
        mse_db2: sse / original.len() as f64,
        r_squared: if sst > 0.0 { 1.0 - sse / sst } else { 0.0 },
        peak_band_accuracy: peaks as f64 / frames as f64,
        frames,
    }
}

/// Index of the largest value (the first, on ties). Allocation-free.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

/// Accuracy of a k-nearest-neighbour classifier (Euclidean distance on features standardised with
/// the training fold's statistics, majority vote, nearest neighbour breaking ties) under
/// stratified `folds`-fold cross-validation with a seeded shuffle. Allocates.
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
    assert_eq!(vectors.len(), labels.len());
    let n = vectors.len();
    if n == 0 {
        return 0.0;
    }
    let fold_of = stratified_folds(labels, folds, seed);
    let mut correct = 0usize;
    for fold in 0..folds {
        let train: Vec<usize> = (0..n).filter(|&i| fold_of[i] != fold).collect();
        let test: Vec<usize> = (0..n).filter(|&i| fold_of[i] == fold).collect();
        let (mean, std) = standardisation(vectors, &train);
        let z = |i: usize| -> Vec<f32> {
            vectors[i]
                .iter()
                .zip(&mean)
                .zip(&std)
                .map(|((x, m), s)| (x - m) / s)
                .collect()
        };
        let train_z: Vec<Vec<f32>> = train.iter().map(|&i| z(i)).collect();
        for &i in &test {
            let query = z(i);
            let mut distances: Vec<(f32, usize)> = train_z
                .iter()
                .zip(&train)
                .map(|(t, &j)| {
                    (
                        query.iter().zip(t).map(|(a, b)| (a - b).powi(2)).sum(),
                        labels[j],
                    )
                })
                .collect();
            distances.sort_by(|a, b| a.0.total_cmp(&b.0));
            let neighbours = &distances[..k.min(distances.len())];
            if vote(neighbours) == labels[i] {
                correct += 1;
            }
        }
    }
    correct as f64 / n as f64
}

/// Majority label among `neighbours` (sorted nearest first); ties go to the label whose nearest
/// member is closest.
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

/// Assigns each item a fold so that every label is spread evenly over the folds.
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

    #[test]
    fn perfect_and_mean_reconstructions() {
        let original: Vec<f32> = (0..40)
            .map(|i| (i % 7) as f32 * 3.0 - (i / 10) as f32)
            .collect();
        let perfect = reconstruction_metrics(&original, &original, 4);
        assert_eq!(perfect.r_squared, 1.0);
        assert_eq!(perfect.peak_band_accuracy, 1.0);
        assert_eq!(perfect.mse_db2, 0.0);
        // Predicting each band's mean explains nothing.
        let mut means = [0.0f32; 4];
        for f in original.chunks(4) {
            for b in 0..4 {
                means[b] += f[b] / 10.0;
            }
        }
        let flat: Vec<f32> = (0..40).map(|i| means[i % 4]).collect();
        assert!(reconstruction_metrics(&original, &flat, 4).r_squared.abs() < 1e-5);
    }

    #[test]
    fn knn_separates_clusters_and_fails_on_noise() {
        let mut vectors = Vec::new();
        let mut labels = Vec::new();
        let mut state = 7u64;
        let mut rand = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for label in 0..3 {
            for _ in 0..30 {
                vectors.push(vec![label as f32 * 5.0 + rand(), rand()]);
                labels.push(label);
            }
        }
        assert_eq!(
            knn_cross_validated_accuracy(&vectors, &labels, 5, 5, 1),
            1.0
        );
        let noise: Vec<Vec<f32>> = (0..90).map(|_| vec![rand(), rand()]).collect();
        let accuracy = knn_cross_validated_accuracy(&noise, &labels, 5, 5, 1);
        assert!(accuracy < 0.6, "{accuracy}");
    }
}

/// What `echoic eval` reports for a model on a labelled folder of clips.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// Class names, in label order (the sub-folder names).
    pub classes: Vec<String>,
    /// Clips per class.
    pub clips_per_class: Vec<usize>,
    /// Reconstruction quality over the (strided) usable buffers of every clip, in dB.
    pub reconstruction: ReconstructionMetrics,
    /// The same in the model's normalised units (each band scaled by its training range), where
    /// the original Keras Listener measured its peak-band "accuracy".
    pub reconstruction_model_units: ReconstructionMetrics,
    /// 5-NN accuracy on each clip's mean spectrum (one frame's worth of values).
    pub knn_mean_spectrum: f64,
    /// 5-NN accuracy on each clip's mean flattened dilated buffer.
    pub knn_dilated_buffer: f64,
    /// 5-NN accuracy on each clip's mean embedding.
    pub knn_embedding: f64,
    /// Dimensions of the three representations, in the same order.
    pub dims: [usize; 3],
    /// Files that could not be read, with the reason.
    pub errors: Vec<String>,
}

/// `values` (dB, whole frames) in the model's units, as evaluation measures reconstructions.
/// Allocates.
pub(crate) fn model_units(
    normalisation: &echoic_core::listener::Normalisation,
    values: &[f32],
) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    normalisation.apply(values, &mut out);
    out
}

/// Every `RECON_STRIDE`-th usable buffer of a clip is reconstructed: neighbours overlap almost
/// entirely, so this bounds the time without losing information.
const RECON_STRIDE: usize = 4;

/// Evaluates `listener` on `dir/<class>/<clip>` audio files: reconstruction on held-out audio, and
/// 5-nearest-neighbour sound-type accuracy (5-fold cross-validation, mean-pooled vectors per clip)
/// for the mean spectrum, the flattened dilated buffer and the embedding. Allocates; reads files.
pub fn evaluate(
    listener: &echoic_core::listener::Listener,
    autoencoder: &crate::train::model::Autoencoder,
    dir: &std::path::Path,
    mut on_file: impl FnMut(&std::path::Path),
) -> anyhow::Result<EvalReport> {
    let mut classes: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    classes.sort();
    anyhow::ensure!(
        !classes.is_empty(),
        "{} has no class folders",
        dir.display()
    );
    let settings = listener.metadata().features.to_settings();
    let step_len = settings.spec.steps * settings.n_bands;
    let (mut spectra, mut buffers, mut embeddings, mut labels) = (vec![], vec![], vec![], vec![]);
    let (mut originals, mut reconstructions) = (Vec::new(), Vec::new());
    let mut clips_per_class = vec![0; classes.len()];
    let mut errors = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let files = crate::embed::audio_files(&[dir.join(class)])?;
        for path in files {
            on_file(&path);
            let result = (|| -> anyhow::Result<()> {
                let audio = crate::audio_file::decode_mono(&path)?;
                let analysis = crate::offline::analyse(
                    &audio.samples,
                    audio.sample_rate as f64,
                    &settings,
                    true,
                )?;
                anyhow::ensure!(!analysis.is_empty(), "shorter than one hop");
                let embedded = listener.embed_batch(&analysis.buffers, analysis.len())?;
                let latent = listener.latent_dim();
                spectra.push(crate::embed::usable_mean(
                    &analysis.frames,
                    settings.n_bands,
                    &analysis,
                ));
                buffers.push(crate::embed::usable_mean(
                    &analysis.buffers,
                    step_len,
                    &analysis,
                ));
                embeddings.push(crate::embed::usable_mean(&embedded, latent, &analysis));
                let picked: Vec<usize> = analysis.usable().step_by(RECON_STRIDE).collect();
                let mut chosen = Vec::with_capacity(picked.len() * step_len);
                for &i in &picked {
                    chosen.extend_from_slice(analysis.buffer(i));
                }
                reconstructions.extend(autoencoder.reconstruct_batch(&chosen, picked.len())?);
                originals.extend(chosen);
                Ok(())
            })();
            match result {
                Ok(()) => {
                    labels.push(label);
                    clips_per_class[label] += 1;
                }
                Err(error) => errors.push(format!("{}: {error:#}", path.display())),
            }
        }
    }
    let normalise = |values: &[f32]| model_units(&listener.metadata().normalisation, values);
    Ok(EvalReport {
        reconstruction: reconstruction_metrics(&originals, &reconstructions, settings.n_bands),
        reconstruction_model_units: reconstruction_metrics(
            &normalise(&originals),
            &normalise(&reconstructions),
            settings.n_bands,
        ),
        knn_mean_spectrum: knn_cross_validated_accuracy(&spectra, &labels, 5, 5, 1),
        knn_dilated_buffer: knn_cross_validated_accuracy(&buffers, &labels, 5, 5, 1),
        knn_embedding: knn_cross_validated_accuracy(&embeddings, &labels, 5, 5, 1),
        dims: [settings.n_bands, step_len, listener.latent_dim()],
        classes,
        clips_per_class,
        errors,
    })
}
