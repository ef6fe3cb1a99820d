//! The principal axes of a model's embedding distribution, as the automation outputs use them.
//!
//! The listener stores the fit in its model metadata; this type reads the same JSON (`axes` is
//! also accepted under the listener's field name `components`, and unknown fields such as
//! `projection_low` are ignored), and [`From<&crate::listener::Pca>`] converts the listener's own
//! struct.

use serde::{Deserialize, Serialize};

/// The most principal axes the outputs use: one per [`super::Source::Axis`] index.
pub const MAX_AXES: usize = 8;

/// Principal axes of the training embeddings: a mean, `k` unit axes and the variance along each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Mean training embedding. Subtracted before projecting so that projections (and the
    /// whitened coordinates the similarity uses) are centred on the corpus: 0 means "typical".
    pub mean: Vec<f32>,
    /// The top `k` principal axes, strongest first, each `mean.len()` long (`k × dim`). Dotted
    /// with the centred embedding they give the few decorrelated controls the slots send.
    #[serde(alias = "components")]
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
    /// An axis or the variance list does not match the mean's length or the axis count.
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

    /// Checks the shapes and values. Allocation-free.
    pub fn validate(&self) -> Result<(), PcaError> {
        if self.mean.is_empty() || self.axes.is_empty() {
            return Err(PcaError::Empty);
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
}

impl From<&crate::listener::Pca> for Pca {
    /// Keeps the mean, the axes and their variances of the listener's fit. Allocates.
    fn from(pca: &crate::listener::Pca) -> Self {
        Self {
            mean: pca.mean.clone(),
            axes: pca.components.clone(),
            explained_variance: pca.explained_variance.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        pca.validate().unwrap();
        let mut out = [9.0; 4];
        assert_eq!(pca.project(&[3.0, 2.0, 2.0], &mut out), 2);
        assert_eq!(out, [2.0, 1.4000001, 0.0, 0.0]);
        assert_eq!(pca.whiten(&[3.0, 2.0, 2.0], &mut out), 2);
        assert!((out[0] - 1.0).abs() < 1e-6 && (out[1] - 2.8).abs() < 1e-6);
        assert_eq!(pca.project(&[1.0, 2.0], &mut out), 0, "wrong length");
        assert_eq!(out, [0.0; 4]);
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
        assert_eq!(bad.validate(), Err(PcaError::Shape));
        let mut bad = pca();
        bad.explained_variance[0] = 0.0;
        assert_eq!(bad.validate(), Err(PcaError::Value));
        let bad = Pca {
            mean: vec![],
            axes: vec![],
            explained_variance: vec![],
        };
        assert_eq!(bad.validate(), Err(PcaError::Empty));
    }
}
