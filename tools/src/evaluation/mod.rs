//! Offline: `echoic eval`'s metrics.
//!
//! Metrics for `echoic eval`, each measured for the model and, side by side, for the plain mean
//! spectrum:
//! - sound type by 5-nearest-neighbour vote on clip means ([`knn`]), with clip-level 5-fold
//!   cross-validation and leaving each source (package, song, kit, instrument, stamp file; see
//!   [`sources`]) out; then the same on each clip's mean and standard deviation, for the mean
//!   spectrum, the dilated buffer and the embedding alike;
//! - the learned-sound ROC-AUC: teach one clip through the plugin's own learned-sound code, score
//!   the other clips by their similarity to it ([`auc`]);
//! - reconstruction quality (MSE, R², the original Listener's peak-band accuracy);
//! - what the first principal axes follow: level, spectral centroid, periodicity ([`axes`]).

pub mod auc;
pub mod axes;
pub mod knn;
pub mod sources;

use std::ops::Range;
use std::path::Path;

use echoic_core::listener::Listener;
use echoic_core::pca::{Pca, MAX_AXES};
use echoic_core::worker::ListenSettings;

use crate::offline::Analysis;
use crate::train::model::Autoencoder;
use auc::{learned_sound_auc, similarity_rows, LabelledClips, LearnedSoundAuc};
use axes::{axis_correlations, AxisCorrelation, HopFeatures};
use knn::{
    confusion, knn_cross_validated_accuracy, knn_leave_one_source_out_accuracy,
    knn_leave_one_source_out_votes,
};

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

/// What `echoic eval` reports for a model on a labelled folder of clips. Fields added after the
/// first version default when absent, so older reports still load.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    /// Class names, in label order (the sub-folder names).
    pub classes: Vec<String>,
    /// Clips per class.
    pub clips_per_class: Vec<usize>,
    /// Distinct sources per class: how many independent recordings leave-one-source-out has to
    /// generalise across.
    #[serde(default)]
    pub sources_per_class: Vec<usize>,
    /// Whether `DIR/../manifest.csv` was found: without it every clip is its own source, and
    /// leaving the source out is leaving the clip out.
    #[serde(default)]
    pub manifest_found: bool,
    /// Clips without a manifest row, each taken as its own source: leave-one-source-out flatters
    /// them.
    #[serde(default)]
    pub clips_without_source: usize,
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
    /// 5-NN accuracy with each clip classified against other sources only, for the mean
    /// spectrum, the dilated buffer and the embedding: sound type rather than recording.
    #[serde(default)]
    pub knn_leave_source_out: [f64; 3],
    /// 5-NN accuracy (5-fold CV, then leave-one-source-out) on each clip's mean *and* standard
    /// deviation, for the same three representations: how a clip varies tells drums from a held
    /// note, which the mean alone hides. `None` in reports written before it was measured.
    #[serde(default)]
    pub knn_mean_and_spread: Option<[[f64; 2]; 3]>,
    /// Behind the embedding's leave-one-source-out 5-NN on clip means: how many clips of each
    /// class (rows) were voted each class (columns), so that a weak class shows what it is
    /// taken for. `None` in reports written before it was measured.
    #[serde(default)]
    pub knn_leave_source_out_confusion: Option<Vec<Vec<usize>>>,
    /// Dimensions of the three representations, in the same order.
    pub dims: [usize; 3],
    /// Usable hops over all clips: the sample behind the learned-sound scores and the axis
    /// correlations.
    #[serde(default)]
    pub usable_hops: usize,
    /// Learned-sound AUC with each hop's spectrum frame as the "embedding", compared on a PCA of
    /// [`MAX_AXES`] axes fitted on the evaluation frames themselves (which flatters it slightly);
    /// `None` when the frames do not vary.
    #[serde(default)]
    pub learned_sound_mean_spectrum: Option<LearnedSoundAuc>,
    /// Learned-sound AUC of the model's embeddings with the model's PCA, as the plugin measures
    /// similarity; `None` when the model has no usable PCA.
    #[serde(default)]
    pub learned_sound_embedding: Option<LearnedSoundAuc>,
    /// What the first principal axes of the spectrum frames (the PCA above) follow.
    #[serde(default)]
    pub axes_mean_spectrum: Vec<AxisCorrelation>,
    /// What the model's first principal axes follow; empty without a usable PCA.
    #[serde(default)]
    pub axes_embedding: Vec<AxisCorrelation>,
    /// Files that could not be read, with the reason.
    pub errors: Vec<String>,
}

/// Every `RECON_STRIDE`-th usable buffer of a clip is reconstructed: neighbours overlap almost
/// entirely, so this bounds the time without losing information.
const RECON_STRIDE: usize = 4;

/// What the model and the pipeline made of the clips evaluated so far.
#[derive(Default)]
struct Measured {
    /// Each clip's mean then standard deviation (see [`usable_mean_and_spread`]) of the
    /// spectrum (the baseline), the flattened dilated buffer (the model's input, a second
    /// baseline) and the embedding, in that order. The sound-type vote runs on the means alone,
    /// then on both.
    ///
    /// [`usable_mean_and_spread`]: crate::embed::usable_mean_and_spread
    clip_statistics: [Vec<Vec<f32>>; 3],
    /// The strided usable buffers that were reconstructed, dB, laid end to end.
    originals: Vec<f32>,
    /// Their reconstructions, in the same layout.
    reconstructions: Vec<f32>,
    /// Each clip's usable hops, as a range of rows of the hop matrices below.
    hops: Vec<Range<usize>>,
    /// Every usable hop's spectrum frame, dB (`hops × n_bands`): the baseline's "embedding".
    hop_spectra: Vec<f32>,
    /// Every usable hop's embedding in the learned-sound similarity's coordinates on the model's
    /// PCA (`hops × axes`, see [`similarity_rows`]); empty without one.
    hop_embeddings: Vec<f32>,
    /// Every usable hop's level, centroid and periodicity.
    features: HopFeatures,
}

impl Measured {
    /// Runs the clip at `path` through the pipeline, the listener and the autoencoder and adds
    /// what evaluation keeps of it; on error nothing is added. Allocates; reads the file.
    fn add_clip(
        &mut self,
        listener: &Listener,
        autoencoder: &Autoencoder,
        pca: Option<&Pca>,
        settings: &ListenSettings,
        path: &Path,
    ) -> anyhow::Result<()> {
        let audio = crate::audio_file::decode_mono(path)?;
        let analysis =
            crate::offline::analyse(&audio.samples, audio.sample_rate as f64, settings, true)?;
        anyhow::ensure!(!analysis.is_empty(), "shorter than one hop");
        let embedded = listener.embed_batch(&analysis.buffers, analysis.len())?;
        let picked: Vec<usize> = analysis.usable().step_by(RECON_STRIDE).collect();
        let chosen: Vec<f32> = picked
            .iter()
            .flat_map(|&i| analysis.buffer(i).iter().copied())
            .collect();
        let reconstructed = autoencoder.reconstruct_batch(&chosen, picked.len())?;
        self.add_statistics(&analysis, &embedded, listener.latent_dim());
        self.originals.extend(chosen);
        self.reconstructions.extend(reconstructed);
        self.add_hops(&analysis, &embedded, listener.latent_dim(), pca, settings);
        Ok(())
    }

    /// Adds the clip's mean and spread of the spectrum, dilated buffer and embedding.
    /// Allocates.
    fn add_statistics(&mut self, analysis: &Analysis, embedded: &[f32], latent: usize) {
        let representations: [(&[f32], usize); 3] = [
            (&analysis.frames, analysis.n_bands),
            (&analysis.buffers, analysis.steps * analysis.n_bands),
            (embedded, latent),
        ];
        for ((rows, dims), clips) in representations.into_iter().zip(&mut self.clip_statistics) {
            clips.push(crate::embed::usable_mean_and_spread(rows, dims, analysis));
        }
    }

    /// Adds every usable hop of the clip: its spectrum, its embedding in the similarity's
    /// coordinates and its features.
    /// Allocates.
    fn add_hops(
        &mut self,
        analysis: &Analysis,
        embedded: &[f32],
        latent: usize,
        pca: Option<&Pca>,
        settings: &ListenSettings,
    ) {
        let n = analysis.n_bands;
        let first = self.hops.last().map_or(0, |r| r.end);
        let mut count = 0;
        for i in analysis.usable() {
            self.hop_spectra
                .extend_from_slice(&analysis.frames[i * n..(i + 1) * n]);
            if let Some(pca) = pca {
                let embedding = &embedded[i * latent..(i + 1) * latent];
                self.hop_embeddings
                    .extend(similarity_rows(embedding, latent, pca));
            }
            count += 1;
        }
        self.hops.push(first..first + count);
        self.features.extend_from(analysis, settings);
    }
}

/// The sub-folders of `dir`, sorted: the class names. Allocates; reads the directory.
fn class_folders(dir: &Path) -> anyhow::Result<Vec<String>> {
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
    Ok(classes)
}

/// Numbers the distinct `keys` 0.. in order of first appearance. Allocates.
fn dense_ids(keys: &[String]) -> Vec<usize> {
    let mut ids = std::collections::HashMap::new();
    keys.iter()
        .map(|k| {
            let next = ids.len();
            *ids.entry(k.as_str()).or_insert(next)
        })
        .collect()
}

/// How many distinct `sources` the clips of each class hold. Allocates.
fn sources_per_class(labels: &[usize], sources: &[usize], n_classes: usize) -> Vec<usize> {
    (0..n_classes)
        .map(|class| {
            let mut seen: Vec<usize> = labels
                .iter()
                .zip(sources)
                .filter(|(&l, _)| l == class)
                .map(|(_, &s)| s)
                .collect();
            seen.sort_unstable();
            seen.dedup();
            seen.len()
        })
        .collect()
}

/// The learned-sound AUC and the axis correlations of one representation, from its hops in the
/// similarity's coordinates on `k` principal axes (`mapped`, from [`similarity_rows`], in the
/// order of `clips.hops` and `features`). Allocates.
fn similarity_scores(
    mapped: &[f32],
    k: usize,
    clips: &LabelledClips,
    features: &HopFeatures,
    hop_seconds: f64,
) -> (LearnedSoundAuc, Vec<AxisCorrelation>) {
    (
        learned_sound_auc(mapped, k, clips, hop_seconds),
        axis_correlations(mapped, k, features),
    )
}

/// Evaluates `listener` on `dir/<class>/<clip>` audio files (see the module documentation).
/// Sources come from `dir/../manifest.csv`; clips it does not list are their own source.
/// Allocates; reads files.
pub fn evaluate(
    listener: &Listener,
    autoencoder: &Autoencoder,
    dir: &Path,
    on_file: impl FnMut(&Path),
) -> anyhow::Result<EvalReport> {
    evaluate_without(listener, autoencoder, dir, &[], on_file)
}

/// [`evaluate`] on the clips of `dir` that come from none of the Debian packages `left_out`
/// (by the manifest's source of each clip; clips it does not list are kept): the rest of the
/// evaluation set, when a model was adapted on those packages' audio. A class left without
/// clips is still listed, with none. Allocates; reads files.
pub fn evaluate_without(
    listener: &Listener,
    autoencoder: &Autoencoder,
    dir: &Path,
    left_out: &[&str],
    mut on_file: impl FnMut(&Path),
) -> anyhow::Result<EvalReport> {
    let classes = class_folders(dir)?;
    let settings = listener.metadata().features.to_settings();
    let manifest = sources::read_manifest_sources(dir);
    let pca = listener
        .metadata()
        .pca
        .as_ref()
        .filter(|p| p.validate(listener.latent_dim()).is_ok());
    let mut measured = Measured::default();
    let (mut labels, mut source_keys, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut clips_per_class = vec![0; classes.len()];
    let mut clips_without_source = 0;
    for (label, class) in classes.iter().enumerate() {
        for path in crate::embed::audio_files(&[dir.join(class)])? {
            let clip = sources::clip_key(&path);
            let source = manifest.as_ref().and_then(|m| m.get(&clip).cloned());
            let package = source.as_deref().map(sources::package_of);
            if package.is_some_and(|p| left_out.contains(&p)) {
                continue;
            }
            on_file(&path);
            if let Err(error) = measured.add_clip(listener, autoencoder, pca, &settings, &path) {
                errors.push(format!("{}: {error:#}", path.display()));
                continue;
            }
            clips_without_source += usize::from(source.is_none());
            source_keys.push(source.unwrap_or_else(|| format!("clip {clip}")));
            labels.push(label);
            clips_per_class[label] += 1;
        }
    }
    let sources = dense_ids(&source_keys);
    let clips = LabelledClips {
        hops: &measured.hops,
        labels: &labels,
        sources: &sources,
        n_classes: classes.len(),
    };
    let scores = |mapped: &[f32], k: usize| {
        similarity_scores(mapped, k, &clips, &measured.features, settings.hop_seconds)
    };
    let (learned_sound_mean_spectrum, axes_mean_spectrum) =
        echoic_core::pca::fit(&measured.hop_spectra, settings.n_bands, MAX_AXES)
            .map(|p| {
                scores(
                    &similarity_rows(&measured.hop_spectra, settings.n_bands, &p),
                    p.n_axes(),
                )
            })
            .unzip();
    let (learned_sound_embedding, axes_embedding) = pca
        .map(|p| scores(&measured.hop_embeddings, p.n_axes()))
        .unzip();
    let knn = |vectors: &[Vec<f32>]| knn_cross_validated_accuracy(vectors, &labels, 5, 5, 1);
    let knn_loso =
        |vectors: &[Vec<f32>]| knn_leave_one_source_out_accuracy(vectors, &labels, &sources, 5);
    // Each clip's mean: the first half of its statistics.
    let means = measured.clip_statistics.each_ref().map(|clips| {
        clips
            .iter()
            .map(|statistics| statistics[..statistics.len() / 2].to_vec())
            .collect::<Vec<_>>()
    });
    let normalise = |values: &[f32]| {
        listener
            .metadata()
            .normalisation
            .applied(values, listener.sequence_len())
    };
    Ok(EvalReport {
        reconstruction: reconstruction_metrics(
            &measured.originals,
            &measured.reconstructions,
            settings.n_bands,
        ),
        reconstruction_model_units: reconstruction_metrics(
            &normalise(&measured.originals),
            &normalise(&measured.reconstructions),
            settings.n_bands,
        ),
        knn_mean_spectrum: knn(&means[0]),
        knn_dilated_buffer: knn(&means[1]),
        knn_embedding: knn(&means[2]),
        knn_leave_source_out: means.each_ref().map(|vectors| knn_loso(vectors)),
        knn_leave_source_out_confusion: Some(confusion(
            &knn_leave_one_source_out_votes(&means[2], &labels, &sources, 5),
            &labels,
            classes.len(),
        )),
        knn_mean_and_spread: Some(
            measured
                .clip_statistics
                .each_ref()
                .map(|vectors| [knn(vectors), knn_loso(vectors)]),
        ),
        dims: [
            settings.n_bands,
            settings.spec.steps * settings.n_bands,
            listener.latent_dim(),
        ],
        usable_hops: measured.hops.last().map_or(0, |r| r.end),
        learned_sound_mean_spectrum,
        learned_sound_embedding,
        axes_mean_spectrum: axes_mean_spectrum.unwrap_or_default(),
        axes_embedding: axes_embedding.unwrap_or_default(),
        sources_per_class: sources_per_class(&labels, &sources, classes.len()),
        manifest_found: manifest.is_some(),
        clips_without_source,
        classes,
        clips_per_class,
        errors,
    })
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

    /// Writes `corpus/eval/{tone,noise}/` with three 2.5 s clips each (the tones from two
    /// recordings, the noises from one) and the corpus manifest.
    fn synthetic_corpus(name: &str) -> std::path::PathBuf {
        let corpus =
            std::env::temp_dir().join(format!("echoic-eval-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&corpus);
        let rate = 22_050;
        let mut rows = String::from("split,class_or_package,path,seconds,source_file\n");
        let mut state = 1u64;
        for class in ["tone", "noise"] {
            std::fs::create_dir_all(corpus.join("eval").join(class)).unwrap();
            for clip in 0..3 {
                let samples: Vec<f32> = (0..rate * 5 / 2)
                    .map(|i| match class {
                        "tone" => 0.2 * (i as f32 * (0.05 + 0.005 * clip as f32)).sin(),
                        _ => {
                            state = state
                                .wrapping_mul(6_364_136_223_846_793_005)
                                .wrapping_add(1);
                            0.1 * ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                        }
                    })
                    .collect();
                let path = format!("eval/{class}/{class}_{clip}.wav");
                crate::audio_file::write_wav_mono(&corpus.join(&path), &samples, rate as u32)
                    .unwrap();
                let package = match class {
                    "tone" => format!("tones-{}", clip % 2),
                    _ => "noises".to_string(),
                };
                rows.push_str(&format!(
                    "eval,{class},{path},2.5,extracted/{package}/x/{clip}.ogg\n"
                ));
            }
        }
        std::fs::write(corpus.join("manifest.csv"), rows).unwrap();
        corpus
    }

    #[test]
    fn evaluation_runs_end_to_end_with_sources_from_the_manifest() {
        let bytes = echoic_core::listener::DEFAULT_MODEL;
        let listener = Listener::from_bytes(bytes).unwrap();
        let autoencoder = Autoencoder::from_bytes(bytes).unwrap();
        let corpus = synthetic_corpus("manifest");
        let report = evaluate(&listener, &autoencoder, &corpus.join("eval"), |_| {}).unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.classes, ["noise", "tone"]);
        assert_eq!(report.clips_per_class, [3, 3]);
        assert_eq!(report.sources_per_class, [1, 2]);
        assert!(report.manifest_found);
        assert_eq!(report.clips_without_source, 0);
        assert!(report.usable_hops > 6 * 100, "{}", report.usable_hops);
        let spectrum = report.learned_sound_mean_spectrum.as_ref().unwrap();
        assert_eq!(spectrum.teachers, 6);
        assert_eq!(
            spectrum.short_captures, 6,
            "2.5 s clips have about 1.2 s usable"
        );
        assert!(
            (0.0..=1.0).contains(&spectrum.mean.unwrap()),
            "{spectrum:?}"
        );
        // Noise has one source: leaving it out leaves no other noise to find.
        assert_eq!(spectrum.leave_source_out_per_class[0], None);
        assert_eq!(spectrum.leave_source_out_teachers, 3);
        let model = report.learned_sound_embedding.as_ref().unwrap();
        assert_eq!(model.per_class.len(), 2);
        assert_eq!(report.axes_embedding.len(), 3);
        assert_eq!(report.axes_mean_spectrum.len(), 3);
        // Leaving a package out leaves out its clips, and only those.
        let rest = evaluate_without(
            &listener,
            &autoencoder,
            &corpus.join("eval"),
            &["tones-1"],
            |_| {},
        )
        .unwrap();
        assert_eq!(rest.clips_per_class, [3, 2]);
        assert_eq!(rest.sources_per_class, [1, 1]);
        // The report survives JSON, and a report without the new fields still loads.
        let json = serde_json::to_value(&report).unwrap();
        let back: EvalReport = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back.knn_leave_source_out, report.knn_leave_source_out);
        assert_eq!(back.knn_mean_and_spread, report.knn_mean_and_spread);
        let votes = report.knn_leave_source_out_confusion.as_ref().unwrap();
        assert_eq!(back.knn_leave_source_out_confusion.as_ref(), Some(votes));
        // Each class's row counts its clips that had a vote; the diagonal is the accuracy.
        let voted: usize = votes.iter().flatten().sum();
        let correct: usize = (0..votes.len()).map(|c| votes[c][c]).sum();
        assert!(votes
            .iter()
            .zip(&report.clips_per_class)
            .all(|(row, &n)| row.iter().sum::<usize>() <= n));
        assert!(voted > 0);
        let clips: usize = report.clips_per_class.iter().sum();
        assert_eq!(
            correct as f64 / clips as f64,
            report.knn_leave_source_out[2]
        );
        let pooled = report.knn_mean_and_spread.unwrap();
        assert!(pooled
            .as_flattened()
            .iter()
            .all(|a| (0.0..=1.0).contains(a)));
        let mut old = json;
        for field in [
            "sources_per_class",
            "knn_leave_source_out",
            "knn_mean_and_spread",
            "knn_leave_source_out_confusion",
            "learned_sound_embedding",
        ] {
            old.as_object_mut().unwrap().remove(field);
        }
        assert!(serde_json::from_value::<EvalReport>(old).is_ok());
        // Without the manifest every clip is its own source.
        std::fs::remove_file(corpus.join("manifest.csv")).unwrap();
        let report = evaluate(&listener, &autoencoder, &corpus.join("eval"), |_| {}).unwrap();
        assert!(!report.manifest_found);
        assert_eq!(
            (
                report.clips_without_source,
                report.sources_per_class.as_slice()
            ),
            (6, [3, 3].as_slice())
        );
        std::fs::remove_dir_all(&corpus).unwrap();
    }
}
