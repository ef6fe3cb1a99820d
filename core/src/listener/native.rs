//! Runs on the worker (and offline): the fast CPU encoder.
//!
//! The encoder in plain Rust, for the CPU: the worker's per-frame path and the CPU batch path.
//!
//! candle's CPU matmul (the `gemm` crate) is slow for a single row: `1×250 · 250×1000` took
//! about 150 µs where a straight AVX2 loop takes about 30 µs on the same core, and every candle
//! op allocates. This path runs the same equations as [`super::model`] on weights copied (and
//! repacked) at load time, into buffers allocated once, so [`NativeEncoder::encode`] neither
//! allocates nor locks. It picks an AVX2+FMA build of its kernels at run time when the CPU has
//! them, and a portable one otherwise. Its output matches the candle encoder to float rounding
//! (the golden tests check both against the numpy reference).
//!
//! The matrix kernel keeps an `R × 8·NT` tile of the product in registers while running down
//! the shared dimension, reading the weights from 8-column panels stored contiguously (so the
//! weights stream sequentially, once per block of R sequences).

use super::config::Activation;

/// A `depth × n` weight matrix: row-major, and packed in 8-column panels for the AVX2 kernel.
#[derive(Clone, Debug)]
struct Matrix {
    /// Rows (the shared dimension of `x · W`).
    depth: usize,
    /// Columns.
    n: usize,
    /// Row-major values, for the portable kernel.
    rows: Vec<f32>,
    /// `ceil(n/8)` panels of `depth × 8` values, the last one zero-padded: each panel is read
    /// front to back by the AVX2 kernel.
    packed: Vec<f32>,
}

impl Matrix {
    /// Takes the row-major values and packs the panels. Allocates.
    fn new(depth: usize, n: usize, rows: Vec<f32>) -> Self {
        let tiles = n.div_ceil(8);
        let mut packed = vec![0.0; tiles * depth * 8];
        for (t, panel) in packed.chunks_exact_mut(depth * 8).enumerate() {
            for (k, dst) in panel.chunks_exact_mut(8).enumerate() {
                for (l, d) in dst.iter_mut().enumerate() {
                    let j = t * 8 + l;
                    if j < n {
                        *d = rows[k * n + j];
                    }
                }
            }
        }
        Self {
            depth,
            n,
            rows,
            packed,
        }
    }
}

/// One encoder layer as handed to [`NativeEncoder::new`]: `(input, units)` and the `kernel`,
/// `recurrent_kernel` and `bias` values.
pub(crate) type LayerWeights = ((usize, usize), [Vec<f32>; 3]);

/// One LSTM layer's weights.
#[derive(Clone, Debug)]
struct Layer {
    /// Units H.
    units: usize,
    /// Input projection, `D × 4H`.
    kernel: Matrix,
    /// Recurrent projection, `H × 4H`.
    recurrent: Matrix,
    /// `4H`.
    bias: Vec<f32>,
}

/// Sequences encoded together: each weight read then serves this many sequences, and their
/// accumulators for one 8-column panel fit the 16 AVX2 registers.
pub(crate) const BLOCK: usize = 8;

/// The encoder half of a listener.
#[derive(Clone, Debug)]
pub(crate) struct NativeEncoder {
    /// Encoder layers, first to last.
    layers: Vec<Layer>,
    /// Steps per sequence.
    steps: usize,
    /// Cell activation.
    act: Activation,
}

/// Working buffers of [`NativeEncoder::encode`], sized for one sequence or one block;
/// separate from the weights so that several callers can share one encoder.
#[derive(Clone, Debug)]
pub(crate) struct Scratch {
    /// Sequences these buffers hold: 1, or [`BLOCK`].
    rows: usize,
    /// Input projections of all steps of the block, `R × T × 4H` of the current layer.
    proj: Vec<f32>,
    /// The current layer's input sequences, `R × T × D`.
    seq_in: Vec<f32>,
    /// The current layer's output sequences, `R × T × H`.
    seq_out: Vec<f32>,
    /// Gate pre-activations of one step, `R × 4H`.
    z: Vec<f32>,
    /// Hidden states, `R × H`.
    h: Vec<f32>,
    /// Cell states, `R × H`.
    c: Vec<f32>,
    /// A short block's inputs padded to a full block, `R × T × D`.
    stage_in: Vec<f32>,
    /// A padded block's outputs, `R × latent`.
    stage_out: Vec<f32>,
}

/// Multiply-add, fused where the build allows it. A trait so that one loop body compiles twice:
/// with FMA inside the AVX2 build and with a separate multiply and add in the portable one
/// (where `f32::mul_add` would call a slow software fma).
trait MulAdd {
    /// `a·b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// `a·b + c` rounded once.
struct Fused;
/// `a·b + c` rounded twice.
struct Plain;

impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl MulAdd for Plain {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// `exp(x)` for f32 without a libm call and without float-to-int conversions, so that loops
/// over it vectorise: Cephes' `expf` (range reduction by ln 2 in two parts, degree-5
/// polynomial), within 2 ulp over the clamped range ±87. The integer `n` is rounded and turned
/// into the exponent bits by adding 1.5·2²³ (its low mantissa bits then hold `n`).
#[inline(always)]
fn exp<M: MulAdd>(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let x = x.clamp(-87.0, 87.0);
    let shifted = M::mul_add(x, std::f32::consts::LOG2_E, MAGIC);
    let n = shifted - MAGIC;
    let r = M::mul_add(n, -0.693_359_4, x);
    let r = M::mul_add(n, 2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4f32;
    p = M::mul_add(p, r, 1.398_199_9e-3);
    p = M::mul_add(p, r, 8.333_452e-3);
    p = M::mul_add(p, r, 4.166_579_6e-2);
    p = M::mul_add(p, r, 1.666_666_5e-1);
    p = M::mul_add(p, r, 0.5);
    let e = M::mul_add(p, r * r, r + 1.0);
    let scale = f32::from_bits(
        shifted
            .to_bits()
            .wrapping_sub(MAGIC.to_bits())
            .wrapping_add(127)
            << 23,
    );
    e * scale
}

/// The logistic function, on [`exp`].
#[inline(always)]
fn sigmoid<M: MulAdd>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<M>(-x))
}

/// The cell activation: relu, or tanh on [`exp`].
#[inline(always)]
fn activate<M: MulAdd, const RELU: bool>(x: f32) -> f32 {
    if RELU {
        x.max(0.0)
    } else {
        // 1 − 2/(e^{2x} + 1): exact at the extremes, absolute error near 1e-7 around 0.
        1.0 - 2.0 / (exp::<M>(2.0 * x) + 1.0)
    }
}

/// The gates of one step for one sequence: from the pre-activations `z` (`4H`, order i, f, g,
/// o) and the cell state, the new cell and hidden states. Written over zipped slices, one
/// version per activation, so that it vectorises.
#[inline(always)]
fn gates<M: MulAdd, const RELU: bool>(z: &[f32], h_out: &mut [f32], c_state: &mut [f32]) {
    let units = h_out.len();
    let (zi, rest) = z.split_at(units);
    let (zf, rest) = rest.split_at(units);
    let (zg, zo) = rest.split_at(units);
    for ((((h, c), (&zi, &zf)), &zg), &zo) in h_out
        .iter_mut()
        .zip(c_state.iter_mut())
        .zip(zi.iter().zip(zf))
        .zip(zg)
        .zip(zo)
    {
        let i = sigmoid::<M>(zi);
        let f = sigmoid::<M>(zf);
        let g = activate::<M, RELU>(zg);
        let o = sigmoid::<M>(zo);
        let cn = M::mul_add(f, *c, i * g);
        *c = cn;
        *h = o * activate::<M, RELU>(cn);
    }
}

/// The matrix product kernels for one instruction set.
trait Kernels {
    /// Multiply-add flavour of the gate arithmetic.
    type M: MulAdd;
    /// `c[j] += Σ_k a[k]·m[k][j]` for one row: streams the row-major weights once, with `c` in
    /// L1. For a single row this is memory-bound, and one sequential stream is what the
    /// prefetchers serve best.
    fn gemm1(a: &[f32], m: &Matrix, c: &mut [f32]);
    /// `c[r][j] += Σ_k a[r][k]·m[k][j]` for 8 rows; `a` and `c` row-major with row strides
    /// `lda` and `ldc`.
    fn gemm8(a: &[f32], lda: usize, m: &Matrix, c: &mut [f32], ldc: usize);
}

/// `c += a · m` for one row, row-major weights; the loop LLVM vectorises.
#[inline(always)]
fn row_gemm<M: MulAdd>(a: &[f32], m: &Matrix, c: &mut [f32]) {
    let c = &mut c[..m.n];
    for (&av, w) in a[..m.depth].iter().zip(m.rows.chunks_exact(m.n)) {
        if av != 0.0 {
            for (cv, &w) in c.iter_mut().zip(w) {
                *cv = M::mul_add(av, w, *cv);
            }
        }
    }
}

/// Portable kernels.
struct Portable;

impl Kernels for Portable {
    type M = Plain;
    #[inline(always)]
    fn gemm1(a: &[f32], m: &Matrix, c: &mut [f32]) {
        row_gemm::<Plain>(a, m, c);
    }
    #[inline(always)]
    fn gemm8(a: &[f32], lda: usize, m: &Matrix, c: &mut [f32], ldc: usize) {
        for r in 0..8 {
            row_gemm::<Plain>(&a[r * lda..], m, &mut c[r * ldc..]);
        }
    }
}

/// AVX2 + FMA kernels; only reached from [`NativeEncoder::encode_avx2`], after detection.
#[cfg(target_arch = "x86_64")]
struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Kernels for Avx2 {
    type M = Fused;
    #[inline(always)]
    fn gemm1(a: &[f32], m: &Matrix, c: &mut [f32]) {
        // Inlined into `encode_avx2`, so it compiles with AVX2 and FMA.
        row_gemm::<Fused>(a, m, c);
    }
    #[inline(always)]
    fn gemm8(a: &[f32], lda: usize, m: &Matrix, c: &mut [f32], ldc: usize) {
        // SAFETY: `Avx2` kernels run only inside `encode_avx2`, which runs only on CPUs with
        // AVX2 and FMA.
        unsafe { avx2::gemm8(a, lda, m, c, ldc) }
    }
}

/// The hand-vectorised 8-row kernel.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Matrix;
    use std::arch::x86_64::*;

    /// `c += a · m` for 8 rows (see [`super::Kernels::gemm8`]), one 8-column panel at a time:
    /// the 8 accumulators stay in registers while the panel streams by, so each weight is
    /// loaded once for the 8 rows.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    ///
    /// # Panics
    /// If `a` or `c` is too short for 8 rows at the given strides.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(super) unsafe fn gemm8(a: &[f32], lda: usize, m: &Matrix, c: &mut [f32], ldc: usize) {
        let (depth, n) = (m.depth, m.n);
        let tiles = n.div_ceil(8);
        assert!(
            a.len() >= 7 * lda + depth
                && c.len() >= 7 * ldc + n
                && m.packed.len() == tiles * depth * 8
        );
        // Index arithmetic wraps explicitly: the project's test builds keep overflow checks on,
        // and a check per multiply in the inner loop costs more than the multiply-adds.
        let c = c.as_mut_ptr();
        // Eight row pointers and eight named accumulators: written out so that all of them
        // stay in registers (an array of accumulators was spilled to the stack every step).
        let row = |r: usize| a.as_ptr().add(r.wrapping_mul(lda));
        let (p0, p1, p2, p3, p4, p5, p6, p7) = (
            row(0),
            row(1),
            row(2),
            row(3),
            row(4),
            row(5),
            row(6),
            row(7),
        );
        let mut wp = m.packed.as_ptr();
        for tile in 0..tiles {
            let z = _mm256_setzero_ps();
            let (mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7) =
                (z, z, z, z, z, z, z, z);
            for k in 0..depth {
                let w = _mm256_loadu_ps(wp);
                a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p0.add(k)), w, a0);
                a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p1.add(k)), w, a1);
                a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p2.add(k)), w, a2);
                a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p3.add(k)), w, a3);
                a4 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p4.add(k)), w, a4);
                a5 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p5.add(k)), w, a5);
                a6 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p6.add(k)), w, a6);
                a7 = _mm256_fmadd_ps(_mm256_broadcast_ss(&*p7.add(k)), w, a7);
                wp = wp.add(8);
            }
            let acc = [a0, a1, a2, a3, a4, a5, a6, a7];
            let j = tile.wrapping_mul(8);
            for (r, acc) in acc.iter().enumerate() {
                let dst = c.add(r.wrapping_mul(ldc).wrapping_add(j));
                if j + 8 <= n {
                    _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), *acc));
                } else {
                    let mut tmp = [0.0f32; 8];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), *acc);
                    for (l, v) in tmp.iter().enumerate().take(n - j) {
                        *dst.add(l) += v;
                    }
                }
            }
        }
    }
}

impl NativeEncoder {
    /// An encoder from the model's encoder tensors, in forward order: for each layer its
    /// `kernel`, `recurrent_kernel` and `bias` values, with `(input, units)`. Allocates.
    pub(crate) fn new(layers: Vec<LayerWeights>, steps: usize, act: Activation) -> Self {
        let layers = layers
            .into_iter()
            .map(|((input, units), [kernel, recurrent, bias])| Layer {
                units,
                kernel: Matrix::new(input, 4 * units, kernel),
                recurrent: Matrix::new(units, 4 * units, recurrent),
                bias,
            })
            .collect();
        Self { layers, steps, act }
    }

    /// Buffers for [`encode`](Self::encode) of up to `rows` sequences at a time: 1 for the
    /// per-frame path, [`BLOCK`] for batches. Allocates.
    pub(crate) fn scratch(&self, rows: usize) -> Scratch {
        let rows = rows.clamp(1, BLOCK);
        let steps = self.steps;
        let widest = self
            .layers
            .iter()
            .map(|l| l.units.max(l.kernel.depth))
            .max()
            .unwrap_or(0);
        let widest_units = self.layers.iter().map(|l| l.units).max().unwrap_or(0);
        // Padding to a full block only happens in batch scratch.
        let stage = if rows == BLOCK { BLOCK } else { 0 };
        Scratch {
            rows,
            proj: vec![0.0; rows * steps * 4 * widest_units],
            seq_in: vec![0.0; rows * steps * widest],
            seq_out: vec![0.0; rows * steps * widest],
            z: vec![0.0; rows * 4 * widest_units],
            h: vec![0.0; rows * widest_units],
            c: vec![0.0; rows * widest_units],
            stage_in: vec![0.0; stage * steps * self.layers.first().map_or(0, |l| l.kernel.depth)],
            stage_out: vec![0.0; stage * self.layers.last().map_or(0, |l| l.units)],
        }
    }

    /// Encodes `r` (1..=[`BLOCK`]) normalised sequences (`r × T × D`, oldest step first) into
    /// `out` (`r ×` the last layer's units). Allocation-free. The caller checks the lengths.
    ///
    /// # Panics
    /// If `scratch` holds fewer than `r` rows (or `r` is 0).
    pub(crate) fn encode(&self, scratch: &mut Scratch, x: &[f32], r: usize, out: &mut [f32]) {
        assert!(
            r >= 1 && r <= scratch.rows && (r == 1 || scratch.rows == BLOCK),
            "scratch too small"
        );
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU has the features `encode_avx2` is compiled for.
                unsafe { self.encode_avx2(scratch, x, r, out) };
                return;
            }
        }
        self.encode_rows::<Portable>(scratch, x, r, out);
    }

    /// [`encode`](Self::encode) compiled for AVX2 and FMA.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn encode_avx2(&self, scratch: &mut Scratch, x: &[f32], r: usize, out: &mut [f32]) {
        self.encode_rows::<Avx2>(scratch, x, r, out);
    }

    /// Picks the block code for `r` sequences and the activation.
    #[inline(always)]
    fn encode_rows<K: Kernels>(&self, scratch: &mut Scratch, x: &[f32], r: usize, out: &mut [f32]) {
        match (r, self.act) {
            (1, Activation::Relu) => self.encode_block::<K, 1, true>(scratch, x, out),
            (1, Activation::Tanh) => self.encode_block::<K, 1, false>(scratch, x, out),
            (_, Activation::Relu) => self.encode_padded::<K, true>(scratch, x, r, out),
            (_, Activation::Tanh) => self.encode_padded::<K, false>(scratch, x, r, out),
        }
    }

    /// Runs `r ≤ BLOCK` sequences as a full block, the missing ones zero (their results
    /// dropped): one kernel for every block size, at the cost of some wasted work on the last
    /// block of a batch.
    #[inline(always)]
    fn encode_padded<K: Kernels, const RELU: bool>(
        &self,
        sc: &mut Scratch,
        x: &[f32],
        r: usize,
        out: &mut [f32],
    ) {
        const R: usize = BLOCK;
        if r == R {
            return self.encode_block::<K, R, RELU>(sc, x, out);
        }
        let seq = self.steps * self.layers.first().map_or(0, |l| l.kernel.depth);
        let latent = self.layers.last().map_or(0, |l| l.units);
        let (mut stage_in, mut stage_out) = (
            std::mem::take(&mut sc.stage_in),
            std::mem::take(&mut sc.stage_out),
        );
        stage_in[..r * seq].copy_from_slice(&x[..r * seq]);
        stage_in[r * seq..R * seq].fill(0.0);
        self.encode_block::<K, R, RELU>(sc, &stage_in[..R * seq], &mut stage_out[..R * latent]);
        out[..r * latent].copy_from_slice(&stage_out[..r * latent]);
        (sc.stage_in, sc.stage_out) = (stage_in, stage_out);
    }

    /// Encodes exactly R sequences (R is 1 or [`BLOCK`]).
    #[inline(always)]
    fn encode_block<K: Kernels, const R: usize, const RELU: bool>(
        &self,
        sc: &mut Scratch,
        x: &[f32],
        out: &mut [f32],
    ) {
        let t_steps = self.steps;
        let first_input = self.layers.first().map_or(0, |l| l.kernel.depth);
        sc.seq_in[..R * t_steps * first_input].copy_from_slice(&x[..R * t_steps * first_input]);
        let n_layers = self.layers.len();
        for (li, layer) in self.layers.iter().enumerate() {
            let (d, h) = (layer.kernel.depth, layer.units);
            let g4 = 4 * h;
            let last = li + 1 == n_layers;
            // Input projection of every step of every sequence: rows (r, t), 8 at a time.
            let rows = R * t_steps;
            let proj = &mut sc.proj[..rows * g4];
            for row in proj.chunks_exact_mut(g4) {
                row.copy_from_slice(&layer.bias);
            }
            let mut start = 0;
            while start + 8 <= rows {
                K::gemm8(
                    &sc.seq_in[start * d..],
                    d,
                    &layer.kernel,
                    &mut proj[start * g4..],
                    g4,
                );
                start += 8;
            }
            while start < rows {
                K::gemm1(
                    &sc.seq_in[start * d..],
                    &layer.kernel,
                    &mut proj[start * g4..],
                );
                start += 1;
            }
            let (hs, cs, z) = (&mut sc.h[..R * h], &mut sc.c[..R * h], &mut sc.z[..R * g4]);
            cs.fill(0.0);
            for t in 0..t_steps {
                for s in 0..R {
                    let p = (s * t_steps + t) * g4;
                    z[s * g4..(s + 1) * g4].copy_from_slice(&proj[p..p + g4]);
                }
                // The state starts at zero: no recurrent term on the first step.
                if t > 0 {
                    if R == 1 {
                        K::gemm1(hs, &layer.recurrent, z);
                    } else {
                        debug_assert_eq!(R, 8);
                        K::gemm8(hs, h, &layer.recurrent, z, g4);
                    }
                }
                for s in 0..R {
                    let (hrow, crow) = (&mut hs[s * h..(s + 1) * h], &mut cs[s * h..(s + 1) * h]);
                    gates::<K::M, RELU>(&z[s * g4..(s + 1) * g4], hrow, crow);
                    if !last {
                        let o = (s * t_steps + t) * h;
                        sc.seq_out[o..o + h].copy_from_slice(hrow);
                    }
                }
            }
            if last {
                out[..R * h].copy_from_slice(hs);
            } else {
                std::mem::swap(&mut sc.seq_in, &mut sc.seq_out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_tanh_are_accurate() {
        for i in -8000..=8000 {
            let x = i as f32 * 0.01;
            for (got, want) in [(exp::<Plain>(x), x.exp()), (exp::<Fused>(x), x.exp())] {
                assert!(
                    ((got - want) / want).abs() < 3e-7,
                    "exp({x}) = {got}, want {want}"
                );
            }
            let t = activate::<Plain, false>(x);
            assert!((t - x.tanh()).abs() < 2e-7, "tanh({x}) = {t}");
            assert!((sigmoid::<Plain>(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-7);
        }
        assert_eq!(exp::<Plain>(-1000.0), (-87.0f32).exp());
        assert!(sigmoid::<Plain>(1000.0) == 1.0 && sigmoid::<Plain>(-1000.0) < 1e-37);
        let _ = exp::<Plain>(f32::NAN); // no panic on the cast
    }
}
