//! Fitted offline, used on the worker: the principal axes of a model's embeddings.
//!
//! The principal axes of a model's embeddings: fitted offline from the training set, stored in
//! the model file, and used by the worker's outputs (the Axis sources, and the whitened space the
//! learned-sound similarity measures in). Projection is allocation-free; fitting allocates.
//!
//! In the model file this is the `pca` entry of the metadata; the file loader parses it but does
//! not judge it: [`Pca::validate`] does, where the outputs install it. Older files also carry
//! `explained_variance_ratio`, `projection_low` and `projection_high`, which nothing reads; they
//! are ignored.

use serde::{Deserialize, Serialize};

/// The most principal axes a model stores and the outputs use: one per
/// [`Source::Axis`](crate::outputs::source::Source::Axis) index.
pub const MAX_AXES: usize = 8;

/// Principal axes of the training embeddings: a mean, `k` unit axes and the variance along each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Mean training embedding. Subtracted before projecting so that projections (and the
    /// whitened coordinates the similarity uses) are centred on the corpus: 0 means "typical".
    pub mean: Vec<f32>,
    /// The top `k` principal axes, strongest first, each `mean.len()` long (`k × dim`). Dotted
    /// with the centred embedding they give the few decorrelated controls the slots send.
    #[serde(rename = "components")]
    pub axes: Vec<Vec<f32>>,
    /// Variance of the training embeddings along each axis. Dividing a projection by its square
    /// root gives a z-score, so every axis (and every model) has the same scale on the outputs.
    pub explained_variance: Vec<f32>,
}

/// Why a [`Pca`] cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PcaError {
    /// No axes, or a zero-length mean.
    #[error("the PCA has no axes or an empty mean")]
    Empty,
    /// More axes than [`MAX_AXES`] or than the embedding has dimensions.
    #[error("the PCA has more axes than {MAX_AXES} or than the embedding's size")]
    TooManyAxes,
    /// The mean is not as long as the embedding, or an axis or the variance list does not match
    /// the mean's length or the axis count.
    #[error("the PCA's axes, variances and mean disagree in size")]
    Shape,
    /// A value is NaN or infinite, or a variance is not positive.
    #[error("the PCA holds a non-finite value or a non-positive variance")]
    Value,
}

impl Pca {
    /// Length of the embeddings this PCA projects. Allocation-free.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// How many axes the outputs use: the stored axes, at most [`MAX_AXES`]. Allocation-free.
    pub fn n_axes(&self) -> usize {
        self.axes
            .len()
            .min(self.explained_variance.len())
            .min(MAX_AXES)
    }

    /// Whether these axes can serve embeddings of `embedding_dim` values: the one rule, applied
    /// where the outputs install a model's axes. A model whose axes fail it still embeds; only the
    /// Axis sources and the whitened similarity go without. Allocation-free.
    pub fn validate(&self, embedding_dim: usize) -> Result<(), PcaError> {
        if self.mean.is_empty() || self.axes.is_empty() {
            return Err(PcaError::Empty);
        }
        if self.mean.len() != embedding_dim {
            return Err(PcaError::Shape);
        }
        if self.axes.len() > MAX_AXES.min(self.mean.len()) {
            return Err(PcaError::TooManyAxes);
        }
        if self.axes.len() != self.explained_variance.len()
            || self.axes.iter().any(|a| a.len() != self.mean.len())
        {
            return Err(PcaError::Shape);
        }
        let finite = self
            .mean
            .iter()
            .chain(self.axes.iter().flatten())
            .all(|v| v.is_finite());
        let variances = self
            .explained_variance
            .iter()
            .all(|&v| v.is_finite() && v > 0.0);
        if !finite || !variances {
            return Err(PcaError::Value);
        }
        Ok(())
    }

    /// Sum of the variances along the used axes: the scale of the embedding's spread over the
    /// training corpus, used to floor distances. Allocation-free.
    pub fn total_variance(&self) -> f32 {
        self.explained_variance[..self.n_axes()].iter().sum()
    }

    /// Projects the centred `embedding` onto the first `min(n_axes, out.len())` axes, writes
    /// those projections to the front of `out` and zero to the rest, and returns how many were
    /// written. An embedding of the wrong length writes zeros and returns 0. Allocation-free.
    pub fn project(&self, embedding: &[f32], out: &mut [f32]) -> usize {
        out.fill(0.0);
        if embedding.len() != self.dim() {
            return 0;
        }
        let n = self.n_axes().min(out.len());
        for (o, axis) in out.iter_mut().zip(&self.axes).take(n) {
            *o = axis
                .iter()
                .zip(embedding.iter().zip(&self.mean))
                .map(|(a, (e, m))| a * (e - m))
                .sum();
        }
        n
    }

    /// Like [`Pca::project`], but divides every projection by the square root of its explained
    /// variance: whitened coordinates, which over the training corpus have mean 0 and variance 1
    /// on every axis. Allocation-free.
    pub fn whiten(&self, embedding: &[f32], out: &mut [f32]) -> usize {
        let n = self.project(embedding, out);
        for (o, &var) in out.iter_mut().zip(&self.explained_variance).take(n) {
            *o /= var.max(f32::MIN_POSITIVE).sqrt();
        }
        n
    }

    /// Like [`Pca::whiten`], but divides each projection by `λ^(strength/2)` rather than `λ^(1/2)`,
    /// then scales all of them by one factor so that the mean squared distance between two
    /// independent training embeddings stays `2·n` (`n` the axes written), as it is for whitened
    /// coordinates. `strength` 1 whitens (to rounding); 0 keeps the principal projections'
    /// proportions; in between, the weak axes count for more than their share of the variance,
    /// but less than the strong ones. Returns `n`, as [`project`](Self::project) does.
    /// Allocation-free.
    ///
    /// ```
    /// use echoic_core::pca::Pca;
    ///
    /// let pca = Pca {
    ///     mean: vec![0.0, 0.0],
    ///     axes: vec![vec![1.0, 0.0], vec![0.0, 1.0]],
    ///     explained_variance: vec![4.0, 1.0],
    /// };
    /// let (mut whitened, mut tempered) = ([0.0; 2], [0.0; 2]);
    /// pca.whiten(&[2.0, 1.0], &mut whitened);
    /// assert_eq!(whitened, [1.0, 1.0]);
    /// // Half strength: divided by λ^¼ (√2 and 1), then scaled by √(2 / (√4 + √1)).
    /// pca.whiten_partially(&[2.0, 1.0], 0.5, &mut tempered);
    /// let scale = (2.0f32 / 3.0).sqrt();
    /// assert!((tempered[0] - 2.0f32.sqrt() * scale).abs() < 1e-6);
    /// assert!((tempered[1] - scale).abs() < 1e-6);
    /// ```
    pub fn whiten_partially(&self, embedding: &[f32], strength: f32, out: &mut [f32]) -> usize {
        let n = self.project(embedding, out);
        for (o, factor) in out
            .iter_mut()
            .zip(self.partial_whitening_factors(n, strength))
        {
            *o *= factor;
        }
        n
    }

    /// What [`whiten_partially`](Self::whiten_partially) multiplies each of the first `n`
    /// projections by: `scale / λ^(strength/2)`, with the one `scale` that keeps the mean
    /// squared distance at `2·n`. Allocation-free.
    fn partial_whitening_factors(&self, n: usize, strength: f32) -> impl Iterator<Item = f32> + '_ {
        let variances = &self.explained_variance[..n];
        let floored = |v: f32| v.max(f32::MIN_POSITIVE);
        let spread: f32 = variances
            .iter()
            .map(|&v| floored(v).powf(1.0 - strength))
            .sum();
        let scale = (n as f32 / spread).sqrt();
        variances
            .iter()
            .map(move |&v| scale / floored(v).powf(strength / 2.0))
    }

    /// The rows that [`whiten_partially`](Self::whiten_partially) at `strength` dots a centred
    /// embedding with, end to end (`n_axes × dim`): each axis times its factor. Training
    /// measures its contrast through them in the geometry the learned sounds read
    /// (`strength` = `outputs::learned::SIMILARITY_WHITENING`); at strength 1 each axis is
    /// divided by its deviation, as [`whiten`](Self::whiten) reads it. Allocates.
    pub fn partial_whitening(&self, strength: f32) -> Vec<f32> {
        let n = self.n_axes();
        self.axes
            .iter()
            .zip(self.partial_whitening_factors(n, strength))
            .flat_map(|(axis, factor)| axis.iter().map(move |a| a * factor))
            .collect()
    }
}

/// Fits the top `k` (at most [`MAX_AXES`] and `dim`) principal axes of `n` embeddings of
/// `dim` values laid end to end, in f64. Each axis' sign is chosen so that its largest component
/// is positive, so that a fit is reproducible. Axes without variance are left out, so a fit always
/// passes [`Pca::validate`] for `dim`. Returns `None` when there are fewer than two embeddings, `dim` is 0
/// or the embeddings do not vary at all. Allocates.
pub fn fit(embeddings: &[f32], dim: usize, k: usize) -> Option<Pca> {
    if dim == 0 || embeddings.len() < 2 * dim {
        return None;
    }
    let n = embeddings.len() / dim;
    let k = k.clamp(1, MAX_AXES.min(dim));
    let mut mean = vec![0.0f64; dim];
    for e in embeddings.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(e) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; dim * dim];
    let mut centred = vec![0.0f64; dim];
    for e in embeddings.chunks_exact(dim) {
        for ((c, &v), m) in centred.iter_mut().zip(e).zip(&mean) {
            *c = v as f64 - m;
        }
        for i in 0..dim {
            let ci = centred[i];
            if ci == 0.0 {
                continue;
            }
            let row = &mut cov[i * dim..(i + 1) * dim];
            for j in i..dim {
                row[j] += ci * centred[j];
            }
        }
    }
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / (n - 1) as f64;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    let (values, vectors) = jacobi_eigen(cov, dim);
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut axes = Vec::with_capacity(k);
    let mut explained_variance = Vec::with_capacity(k);
    for &idx in order.iter().take(k) {
        let var = values[idx] as f32;
        if !(var > 0.0 && var.is_finite()) {
            break;
        }
        let mut axis: Vec<f64> = (0..dim).map(|r| vectors[r * dim + idx]).collect();
        let biggest = axis
            .iter()
            .copied()
            .fold(0.0f64, |acc, v| if v.abs() > acc.abs() { v } else { acc });
        if biggest < 0.0 {
            axis.iter_mut().for_each(|v| *v = -*v);
        }
        axes.push(axis.iter().map(|&v| v as f32).collect::<Vec<f32>>());
        explained_variance.push(var);
    }
    if axes.is_empty() {
        return None;
    }
    Some(Pca {
        mean: mean.iter().map(|&m| m as f32).collect(),
        axes,
        explained_variance,
    })
}

/// Eigen-decomposition of a symmetric `n × n` row-major matrix by cyclic Jacobi rotations.
/// Returns the eigenvalues and the eigenvectors as the columns of a row-major matrix.
fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-15 * scale.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                // A ← Jᵀ A J, touching rows and columns p and q only.
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_recovers_a_known_spectrum() {
        // A = Q diag(5, 2, 0.5) Qᵀ for a rotation Q.
        let (c, s) = (0.6f64, 0.8f64);
        let q = [c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0];
        let d = [5.0, 2.0, 0.5];
        let mut a = vec![0.0; 9];
        for i in 0..3 {
            for j in 0..3 {
                a[i * 3 + j] = (0..3).map(|k| q[i * 3 + k] * d[k] * q[j * 3 + k]).sum();
            }
        }
        let (mut values, _) = jacobi_eigen(a, 3);
        values.sort_by(|a, b| b.total_cmp(a));
        for (v, e) in values.iter().zip(d) {
            assert!((v - e).abs() < 1e-12, "{values:?}");
        }
    }

    #[test]
    fn pca_finds_the_dominant_direction() {
        // Points spread along (1, 1, 0)/√2 with a little noise on the other axes.
        let mut rng = crate::rng::SplitMix64(7);
        let mut data = Vec::new();
        for _ in 0..2000 {
            let t = rng.normal() * 3.0;
            data.extend([
                (t + rng.normal() * 0.1) as f32,
                (t + rng.normal() * 0.1) as f32,
                (rng.normal() * 0.2) as f32,
            ]);
        }
        let pca = fit(&data, 3, 2).unwrap();
        let axis = &pca.axes[0];
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (axis[0] - r).abs() < 0.01 && (axis[1] - r).abs() < 0.01 && axis[2].abs() < 0.01,
            "{axis:?}"
        );
        assert!(
            (pca.explained_variance[0] - 18.0).abs() < 2.0,
            "{:?}",
            pca.explained_variance
        );
        assert_eq!(pca.validate(3), Ok(()));
        assert!(fit(&data[..3], 3, 2).is_none());
        assert!(fit(&[1.0; 30], 3, 2).is_none(), "no variance, no axes");
    }
    fn pca() -> Pca {
        Pca {
            mean: vec![1.0, 1.0, 1.0],
            axes: vec![vec![1.0, 0.0, 0.0], vec![0.0, 0.6, 0.8]],
            explained_variance: vec![4.0, 0.25],
        }
    }

    #[test]
    fn projects_and_whitens_centred_embeddings() {
        let pca = pca();
        pca.validate(3).unwrap();
        let mut out = [9.0; 4];
        assert_eq!(pca.project(&[3.0, 2.0, 2.0], &mut out), 2);
        assert_eq!(out, [2.0, 1.4000001, 0.0, 0.0]);
        assert_eq!(pca.whiten(&[3.0, 2.0, 2.0], &mut out), 2);
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] - 2.8).abs() < 1e-6);
        assert_eq!(pca.project(&[1.0, 2.0], &mut out), 0, "wrong length");
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    fn partial_whitening_spans_projection_to_whitening_at_the_whitened_scale() {
        let pca = pca();
        let e = [3.0, 2.0, 2.0];
        let (mut whitened, mut partial) = ([0.0; 2], [0.0; 2]);
        pca.whiten(&e, &mut whitened);
        assert_eq!(pca.whiten_partially(&e, 1.0, &mut partial), 2);
        for (p, w) in partial.iter().zip(&whitened) {
            assert!(
                (p - w).abs() < 1e-5,
                "strength 1 whitens: {partial:?} {whitened:?}"
            );
        }
        // At any strength an embedding one standard deviation out along each axis in turn sums
        // to n in squared coordinates, as whitened ones do: the mean squared distance between
        // independent training embeddings stays 2n.
        for strength in [0.0, 0.5, 0.75, 1.0] {
            let squares: f32 = (0..2)
                .map(|i| {
                    let sd = pca.explained_variance[i].sqrt();
                    let along: Vec<f32> =
                        (0..3).map(|j| pca.mean[j] + sd * pca.axes[i][j]).collect();
                    pca.whiten_partially(&along, strength, &mut partial);
                    partial[i] * partial[i]
                })
                .sum();
            assert!(
                (squares - 2.0).abs() < 1e-5,
                "strength {strength}: {squares}"
            );
        }
        // Strength 0 keeps the projections' proportions.
        pca.whiten_partially(&e, 0.0, &mut partial);
        assert!((partial[0] / partial[1] - 2.0 / 1.4).abs() < 1e-5);
        assert_eq!(
            pca.whiten_partially(&[1.0, 2.0], 0.5, &mut partial),
            0,
            "wrong length"
        );
        assert_eq!(partial, [0.0; 2]);
    }

    #[test]
    fn partial_whitening_rows_dot_centred_embeddings_into_partially_whitened_ones() {
        let pca = pca();
        let e = [3.0, 2.0, 2.0];
        let centred: Vec<f32> = e.iter().zip(&pca.mean).map(|(x, m)| x - m).collect();
        let dot = |rows: &[f32]| -> Vec<f32> {
            rows.chunks_exact(3)
                .map(|row| row.iter().zip(&centred).map(|(r, c)| r * c).sum())
                .collect()
        };
        let mut partial = [0.0; 2];
        for strength in [0.0, 0.5, 0.75, 1.0] {
            let rows = pca.partial_whitening(strength);
            assert_eq!(rows.len(), 2 * 3);
            pca.whiten_partially(&e, strength, &mut partial);
            let through_rows = dot(&rows);
            for (r, p) in through_rows.iter().zip(&partial) {
                assert!(
                    (r - p).abs() < 1e-5,
                    "strength {strength}: {through_rows:?} {partial:?}"
                );
            }
        }
        // At strength 1 the rows are each axis over its deviation, as `whiten` divides.
        let full = pca.partial_whitening(1.0);
        let dim = pca.dim();
        for (k, row) in full.chunks(dim).enumerate() {
            let root = pca.explained_variance[k].sqrt();
            for (r, a) in row.iter().zip(&pca.axes[k]) {
                assert!((r - a / root).abs() < 1e-6, "{full:?}");
            }
        }
    }

    #[test]
    fn reads_the_listener_metadata_json() {
        let json = r#"{"mean":[0,0],"components":[[1,0]],"explained_variance":[2],
            "explained_variance_ratio":[0.5],"projection_low":[-1],"projection_high":[1]}"#;
        let pca: Pca = serde_json::from_str(json).unwrap();
        assert_eq!(pca.axes, vec![vec![1.0, 0.0]]);
        assert_eq!(pca.n_axes(), 1);
        let round: Pca = serde_json::from_str(&serde_json::to_string(&pca).unwrap()).unwrap();
        assert_eq!(round, pca);
    }

    #[test]
    fn validation_rejects_bad_fits() {
        let mut bad = pca();
        bad.axes[1].pop();
        assert_eq!(bad.validate(3), Err(PcaError::Shape));
        assert_eq!(
            pca().validate(4),
            Err(PcaError::Shape),
            "another embedding size"
        );
        let mut bad = pca();
        bad.explained_variance[0] = 0.0;
        assert_eq!(bad.validate(3), Err(PcaError::Value));
        let bad = Pca {
            mean: vec![],
            axes: vec![],
            explained_variance: vec![],
        };
        assert_eq!(bad.validate(3), Err(PcaError::Empty));
    }
}
