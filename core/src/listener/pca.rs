//! Principal component analysis of embeddings, in f64: covariance, then the cyclic Jacobi
//! eigenvalue method (exact to rounding, and fast enough for a few hundred dimensions).

use super::format::{Pca, MAX_PCA_AXES};

/// Fits the top `k` (at most [`MAX_PCA_AXES`] and `dim`) principal axes of `n` embeddings of
/// `dim` values laid end to end. Each axis' sign is chosen so that its largest component is
/// positive, so that a fit is reproducible. Returns `None` when there are fewer than two
/// embeddings or `dim` is 0. Allocates.
pub fn fit(embeddings: &[f32], dim: usize, k: usize) -> Option<Pca> {
    if dim == 0 || embeddings.len() < 2 * dim {
        return None;
    }
    let n = embeddings.len() / dim;
    let k = k.clamp(1, MAX_PCA_AXES.min(dim));
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
    let total: f64 = values.iter().map(|v| v.max(0.0)).sum();
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut components = Vec::with_capacity(k);
    let mut explained_variance = Vec::with_capacity(k);
    let mut explained_variance_ratio = Vec::with_capacity(k);
    for &idx in order.iter().take(k) {
        let mut axis: Vec<f64> = (0..dim).map(|r| vectors[r * dim + idx]).collect();
        let biggest = axis
            .iter()
            .copied()
            .fold(0.0f64, |acc, v| if v.abs() > acc.abs() { v } else { acc });
        if biggest < 0.0 {
            axis.iter_mut().for_each(|v| *v = -*v);
        }
        components.push(axis.iter().map(|&v| v as f32).collect::<Vec<f32>>());
        let var = values[idx].max(0.0);
        explained_variance.push(var as f32);
        explained_variance_ratio.push(if total > 0.0 {
            (var / total) as f32
        } else {
            0.0
        });
    }
    // Percentiles of the projections, for mapping each axis onto 0..1.
    let mut projection_low = Vec::with_capacity(k);
    let mut projection_high = Vec::with_capacity(k);
    let mut proj = vec![0.0f32; n];
    for axis in &components {
        for (p, e) in proj.iter_mut().zip(embeddings.chunks_exact(dim)) {
            *p = axis
                .iter()
                .zip(e.iter().zip(&mean))
                .map(|(a, (&v, &m))| a * (v - m as f32))
                .sum();
        }
        projection_low.push(percentile(&mut proj, 0.01));
        projection_high.push(percentile(&mut proj, 0.99));
    }
    Some(Pca {
        mean: mean.iter().map(|&m| m as f32).collect(),
        components,
        explained_variance,
        explained_variance_ratio,
        projection_low,
        projection_high,
    })
}

/// The `q` quantile (0..1) of `values` by nearest rank; reorders `values`. `values` must not be
/// empty.
pub(crate) fn percentile(values: &mut [f32], q: f64) -> f32 {
    let idx = ((values.len() - 1) as f64 * q).round() as usize;
    let (_, v, _) = values.select_nth_unstable_by(idx, |a, b| a.total_cmp(b));
    *v
}

/// Eigen-decomposition of a symmetric `n × n` row-major matrix by cyclic Jacobi rotations.
/// Returns the eigenvalues and the eigenvectors as the columns of a row-major matrix.
pub(crate) fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
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
        let mut rng = super::super::model::SplitMix64(7);
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
        let axis = &pca.components[0];
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (axis[0] - r).abs() < 0.01 && (axis[1] - r).abs() < 0.01 && axis[2].abs() < 0.01,
            "{axis:?}"
        );
        assert!(pca.explained_variance_ratio[0] > 0.95);
        assert!(
            (pca.explained_variance[0] - 18.0).abs() < 2.0,
            "{:?}",
            pca.explained_variance
        );
        assert!(pca.projection_low[0] < -5.0 && pca.projection_high[0] > 5.0);
        assert!(fit(&data[..3], 3, 2).is_none());
    }
}
