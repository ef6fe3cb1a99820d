//! Any thread but the audio thread: batched matrix products on the `gemm` crate.
//!
//! A safe face over [`gemm::gemm`]: matrices are slices with a row and a column stride, so that a
//! transpose is a view, not a copy. `gemm` picks its AVX-512, AVX2+FMA or scalar kernels at run
//! time. It packs its operands into scratch memory of its own, at most two blocks allocated per
//! product (`core/tests/lstm_alloc.rs` counts them); the engine's own buffers are sized once per
//! batch shape.

use gemm::Parallelism;

/// A `rows × cols` matrix read from a slice: element `(r, c)` is at `r·row_stride +
/// c·col_stride`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    /// The values.
    data: &'a [f32],
    /// Rows.
    rows: usize,
    /// Columns.
    cols: usize,
    /// Distance between rows, in values.
    row_stride: usize,
    /// Distance between columns, in values.
    col_stride: usize,
}

impl<'a> View<'a> {
    /// The row-major `rows × cols` matrix at the start of `data`.
    ///
    /// # Panics
    /// If `data` is shorter than `rows × cols`.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert!(data.len() >= rows * cols, "matrix slice too short");
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without copying.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// `dst = a · b`, or `dst += a · b` when `accumulate`; `dst` is row-major `a.rows × b.cols` at
/// its start. One thread. May allocate (inside `gemm`).
///
/// # Panics
/// If the inner dimensions differ or `dst` is too short.
pub(crate) fn product(dst: &mut [f32], a: View, b: View, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    assert!(dst.len() >= m * n, "destination too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: `View::rows` checked that each view's slice holds every element it addresses
    // (a transpose addresses the same elements), `dst` holds `m × n` values at strides (1, n),
    // and `dst` cannot alias the views' shared borrows.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_transposed_views_match_the_definition() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 2 × 3
        let b: Vec<f32> = (0..12).map(|v| (v as f32) * 0.5 - 2.0).collect(); // 3 × 4
        let mut c = vec![1.0; 8];
        product(&mut c, View::rows(&a, 2, 3), View::rows(&b, 3, 4), true);
        for r in 0..2 {
            for j in 0..4 {
                let want = 1.0 + (0..3).map(|k| a[r * 3 + k] * b[k * 4 + j]).sum::<f32>();
                assert_eq!(c[r * 4 + j], want);
            }
        }
        // aᵀ · a as views of the same slice: 3 × 3, symmetric.
        let mut g = vec![f32::NAN; 9];
        product(
            &mut g,
            View::rows(&a, 2, 3).t(),
            View::rows(&a, 2, 3),
            false,
        );
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(g[i * 3 + j], a[i] * a[j] + a[3 + i] * a[3 + j]);
            }
        }
    }
}
