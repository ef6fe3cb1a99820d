//! Any thread: the batch-1 matrix-vector kernel, for AVX-512, AVX2+FMA or any CPU.
//!
//! At batch 1 the recurrent product `h · R` is bound by reading `R` (1 MB for the default
//! 250-unit layer) once per step. The weights are packed at load into panels of [`LANES`]
//! columns, each panel's `depth × LANES` values contiguous, so that the kernel streams them
//! front to back with its accumulators in registers: one load and one fused multiply-add per 16
//! weights, four panels (four independent streams and accumulator chains) at a time.
//!
//! The caller compiles its whole loop for the instruction set [`Isa::detect`] picked (through
//! [`Isa::run`], see `single.rs`), so the kernels here inline into it. No allocation after
//! packing.

use super::isa::Isa;

/// Columns per panel: one AVX-512 register, two AVX2 registers.
pub(crate) const LANES: usize = 16;

/// A `depth × n` row-major matrix packed in [`LANES`]-column panels, the last one zero-padded.
#[derive(Clone, Debug)]
pub(crate) struct Panels {
    /// Rows: the length of the vector it multiplies.
    depth: usize,
    /// Columns: the length of the product.
    n: usize,
    /// `ceil(n / LANES)` panels of `depth × LANES` values.
    values: Vec<f32>,
}

impl Panels {
    /// Packs row-major `depth × n` values. Allocates.
    ///
    /// # Panics
    /// If `rows` is shorter than `depth × n`.
    pub(crate) fn new(rows: &[f32], depth: usize, n: usize) -> Self {
        assert!(rows.len() >= depth * n, "matrix slice too short");
        let tiles = n.div_ceil(LANES);
        let mut values = vec![0.0; tiles * depth * LANES];
        for (t, panel) in values.chunks_exact_mut(depth * LANES).enumerate() {
            for (k, dst) in panel.chunks_exact_mut(LANES).enumerate() {
                let start = t * LANES;
                let width = LANES.min(n - start);
                dst[..width].copy_from_slice(&rows[k * n + start..k * n + start + width]);
            }
        }
        Self { depth, n, values }
    }

    /// Rows: the length of the vector it multiplies.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }
}

/// `y += x · W` for one vector: `x` holds `W.depth` values, `y` `W.n`. Inline into a caller
/// compiled for `isa`.
///
/// # Safety
/// The CPU must support `isa`, and the caller must be compiled with its target features (or
/// `isa` is [`Isa::Portable`]).
///
/// # Panics
/// If `x` or `y` is too short.
#[inline(always)]
pub(crate) unsafe fn matvec(isa: Isa, x: &[f32], w: &Panels, y: &mut [f32]) {
    let (x, y) = (&x[..w.depth], &mut y[..w.n]);
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => x86::matvec_avx512(x, w, y),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => x86::matvec_avx2(x, w, y),
        _ => matvec_portable(x, w, y),
    }
}

/// The portable kernel: one panel at a time, its accumulators a fixed-size array that LLVM keeps
/// in vector registers.
#[inline(always)]
fn matvec_portable(x: &[f32], w: &Panels, y: &mut [f32]) {
    for (t, panel) in w.values.chunks_exact(w.depth * LANES).enumerate() {
        let mut acc = [0.0f32; LANES];
        for (&xk, row) in x.iter().zip(panel.chunks_exact(LANES)) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a += xk * v;
            }
        }
        let start = t * LANES;
        for (dst, a) in y[start..].iter_mut().zip(acc) {
            *dst += a;
        }
    }
}

/// The x86 kernels.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Panels, LANES};
    use std::arch::x86_64::*;

    /// Adds the 16 sums `acc` to `y[start..]`, of which fewer than 16 may remain.
    #[inline(always)]
    unsafe fn add_tile(y: &mut [f32], start: usize, acc: [f32; LANES]) {
        for (dst, a) in y[start..].iter_mut().zip(acc) {
            *dst += a;
        }
    }

    /// AVX-512 kernel: four panels per pass, one 16-lane accumulator each.
    ///
    /// # Safety
    /// The CPU must have AVX-512F; the caller is compiled with it.
    #[inline(always)]
    pub(super) unsafe fn matvec_avx512(x: &[f32], w: &Panels, y: &mut [f32]) {
        let depth = w.depth;
        let tiles = w.n.div_ceil(LANES);
        let stride = depth * LANES;
        let base = w.values.as_ptr();
        let mut t = 0;
        while t + 4 <= tiles {
            let p = base.add(t * stride);
            let (mut a0, mut a1, mut a2, mut a3) = (
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
                _mm512_setzero_ps(),
            );
            for (k, &xk) in x.iter().enumerate() {
                let b = _mm512_set1_ps(xk);
                let o = k * LANES;
                a0 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p.add(o)), a0);
                a1 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p.add(stride + o)), a1);
                a2 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p.add(2 * stride + o)), a2);
                a3 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p.add(3 * stride + o)), a3);
            }
            for (q, acc) in [a0, a1, a2, a3].into_iter().enumerate() {
                let mut sums = [0.0f32; LANES];
                _mm512_storeu_ps(sums.as_mut_ptr(), acc);
                add_tile(y, (t + q) * LANES, sums);
            }
            t += 4;
        }
        while t < tiles {
            let p = base.add(t * stride);
            let mut a0 = _mm512_setzero_ps();
            for (k, &xk) in x.iter().enumerate() {
                a0 = _mm512_fmadd_ps(_mm512_set1_ps(xk), _mm512_loadu_ps(p.add(k * LANES)), a0);
            }
            let mut sums = [0.0f32; LANES];
            _mm512_storeu_ps(sums.as_mut_ptr(), a0);
            add_tile(y, t * LANES, sums);
            t += 1;
        }
    }

    /// AVX2 kernel: two panels per pass, each as two 8-lane halves (four accumulator chains).
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; the caller is compiled with them.
    #[inline(always)]
    pub(super) unsafe fn matvec_avx2(x: &[f32], w: &Panels, y: &mut [f32]) {
        let depth = w.depth;
        let tiles = w.n.div_ceil(LANES);
        let stride = depth * LANES;
        let base = w.values.as_ptr();
        let mut t = 0;
        while t < tiles {
            let pair = t + 1 < tiles;
            let p = base.add(t * stride);
            // A lone last panel reads itself twice rather than past the end.
            let q = if pair { p.add(stride) } else { p };
            let (mut a0, mut a1, mut a2, mut a3) = (
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
                _mm256_setzero_ps(),
            );
            for (k, &xk) in x.iter().enumerate() {
                let b = _mm256_set1_ps(xk);
                let o = k * LANES;
                a0 = _mm256_fmadd_ps(b, _mm256_loadu_ps(p.add(o)), a0);
                a1 = _mm256_fmadd_ps(b, _mm256_loadu_ps(p.add(o + 8)), a1);
                a2 = _mm256_fmadd_ps(b, _mm256_loadu_ps(q.add(o)), a2);
                a3 = _mm256_fmadd_ps(b, _mm256_loadu_ps(q.add(o + 8)), a3);
            }
            let mut sums = [0.0f32; LANES];
            _mm256_storeu_ps(sums.as_mut_ptr(), a0);
            _mm256_storeu_ps(sums.as_mut_ptr().add(8), a1);
            add_tile(y, t * LANES, sums);
            if pair {
                _mm256_storeu_ps(sums.as_mut_ptr(), a2);
                _mm256_storeu_ps(sums.as_mut_ptr().add(8), a3);
                add_tile(y, (t + 1) * LANES, sums);
            }
            t += 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_the_cpu_runs_matches_the_definition() {
        let mut isas = vec![Isa::Portable];
        if matches!(Isa::detect(), Isa::Avx2 | Isa::Avx512) {
            isas.push(Isa::Avx2);
        }
        if Isa::detect() == Isa::Avx512 {
            isas.push(Isa::Avx512);
        }
        for (depth, n) in [(1, 1), (3, 17), (50, 200), (250, 1000), (7, 100), (5, 80)] {
            let rows: Vec<f32> = (0..depth * n)
                .map(|i| ((i * 37) % 23) as f32 - 11.0)
                .collect();
            let x: Vec<f32> = (0..depth)
                .map(|k| ((k * 13) % 7) as f32 * 0.25 - 0.5)
                .collect();
            let panels = Panels::new(&rows, depth, n);
            for &isa in &isas {
                let mut y = vec![1.0f32; n];
                // SAFETY: only the sets this CPU has are tried, and the portable path for the
                // rest of this (unspecialised) test function's code is sound for any set.
                unsafe { matvec(isa, &x, &panels, &mut y) };
                for (j, &got) in y.iter().enumerate() {
                    let want = 1.0 + (0..depth).map(|k| x[k] * rows[k * n + j]).sum::<f32>();
                    assert_eq!(got, want, "{isa:?} {depth}×{n} column {j}");
                }
            }
        }
    }
}
