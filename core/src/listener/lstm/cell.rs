//! Any thread: the LSTM cell's element-wise arithmetic, forward and backward.
//!
//! Written as single-stream or indexed loops over slices cut to one length, with the fast
//! [`exp`], so that every loop vectorises inside the instruction-set builds of its callers (a
//! loop over zipped gate blocks was vectorised across the four gates instead, four lanes wide).
//! No allocation.
//!
//! The activation's derivative follows candle's convention, `relu'(x) = [x ≥ 0]`, so that the
//! gradients match the reference's bit for bit where a cell state is exactly zero (which happens
//! on every first step whose candidate was clipped).

/// Multiply-add, fused where the build allows it. A trait so that one loop body compiles twice:
/// with FMA inside the AVX builds and with a separate multiply and add in the portable one
/// (where `f32::mul_add` would call a slow software fma).
pub(crate) trait MulAdd {
    /// `a·b + c`.
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// `a·b + c` rounded once.
pub(crate) struct Fused;
/// `a·b + c` rounded twice.
pub(crate) struct Plain;

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
pub(crate) fn exp<M: MulAdd>(x: f32) -> f32 {
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
pub(crate) fn sigmoid<M: MulAdd>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<M>(-x))
}

/// The cell activation: relu, or tanh on [`exp`].
#[inline(always)]
pub(crate) fn activate<M: MulAdd, const RELU: bool>(x: f32) -> f32 {
    if RELU {
        x.max(0.0)
    } else {
        // 1 − 2/(e^{2x} + 1): exact at the extremes, absolute error near 1e-7 around 0.
        1.0 - 2.0 / (exp::<M>(2.0 * x) + 1.0)
    }
}

/// The activation's derivative from its input `x` and output `a = act(x)`.
#[inline(always)]
fn slope<const RELU: bool>(x: f32, a: f32) -> f32 {
    if RELU {
        if x >= 0.0 {
            1.0
        } else {
            0.0
        }
    } else {
        1.0 - a * a
    }
}

/// The four gate blocks of a `4H` row, each `units` long.
#[inline(always)]
fn gates_of(row: &[f32], units: usize) -> [&[f32]; 4] {
    let (i, rest) = row.split_at(units);
    let (f, rest) = rest.split_at(units);
    let (g, o) = rest.split_at(units);
    [i, f, g, &o[..units]]
}

/// The four gate blocks of a `4H` row, mutably.
#[inline(always)]
fn gates_of_mut(row: &mut [f32], units: usize) -> [&mut [f32]; 4] {
    let (i, rest) = row.split_at_mut(units);
    let (f, rest) = rest.split_at_mut(units);
    let (g, o) = rest.split_at_mut(units);
    [i, f, g, &mut o[..units]]
}

/// Adds the bias to the products `z` (`4H`) and activates them in place: σ on i, f and o, the
/// cell activation on g. One pass per block, each a single stream that vectorises. (Adding the
/// bias here rather than starting the products from it saves a pass over every step's gates.)
#[inline(always)]
fn activate_gates<M: MulAdd, const RELU: bool>(z: &mut [f32], bias: &[f32], units: usize) {
    // Separate loops: a chain of the three σ blocks would not vectorise.
    let (input_and_forget, rest) = z.split_at_mut(2 * units);
    let (g, o) = rest.split_at_mut(units);
    let (bias_input_and_forget, rest) = bias.split_at(2 * units);
    let (bias_g, bias_o) = rest.split_at(units);
    for (v, &b) in input_and_forget.iter_mut().zip(bias_input_and_forget) {
        *v = sigmoid::<M>(*v + b);
    }
    for (v, &b) in g.iter_mut().zip(bias_g) {
        *v = activate::<M, RELU>(*v + b);
    }
    for (v, &b) in o[..units].iter_mut().zip(bias_o) {
        *v = sigmoid::<M>(*v + b);
    }
}

/// One step of one sequence for inference: from the products `z` (`4H`, gates i, f, g, o;
/// overwritten by the activated gates), the `bias` and the cell state `c`, the new cell and
/// hidden states.
#[inline(always)]
pub(crate) fn step<M: MulAdd, const RELU: bool>(
    z: &mut [f32],
    bias: &[f32],
    h: &mut [f32],
    c: &mut [f32],
) {
    let units = h.len();
    activate_gates::<M, RELU>(z, bias, units);
    let [i, f, g, o] = gates_of(z, units);
    let c = &mut c[..units];
    for j in 0..units {
        let cn = M::mul_add(f[j], c[j], i[j] * g[j]);
        c[j] = cn;
        h[j] = o[j] * activate::<M, RELU>(cn);
    }
}

/// One step of one sequence for training: turns the products `z` (`4H`) plus the `bias` into
/// the activated gates in place (kept for the backward pass), and writes the cell state `c` and
/// hidden state `h` from the previous cell state (`None` on the first step, where it is zero).
#[inline(always)]
pub(crate) fn step_recorded<M: MulAdd, const RELU: bool>(
    z: &mut [f32],
    bias: &[f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    h: &mut [f32],
) {
    let units = h.len();
    activate_gates::<M, RELU>(z, bias, units);
    let [i, f, g, o] = gates_of(z, units);
    let c = &mut c[..units];
    match c_prev {
        Some(p) => {
            let p = &p[..units];
            for j in 0..units {
                let cn = M::mul_add(f[j], p[j], i[j] * g[j]);
                c[j] = cn;
                h[j] = o[j] * activate::<M, RELU>(cn);
            }
        }
        None => {
            for j in 0..units {
                let cn = i[j] * g[j];
                c[j] = cn;
                h[j] = o[j] * activate::<M, RELU>(cn);
            }
        }
    }
}

/// The backward pass through one step of one sequence.
///
/// - `gates`: the activated gates i, f, g, o of the step (`4H`), as [`step_recorded`] left them;
/// - `c`, `c_prev`: the step's cell state and the one before (`None` on the first step);
/// - `dh`: the loss's gradient with respect to the step's hidden state, recurrent part included;
/// - `dc`: in, the gradient reaching the cell state from the next step; out, the gradient
///   passed on to the previous step's cell state;
/// - `dz`: out, the gradient with respect to the step's pre-activations (`4H`).
#[inline(always)]
pub(crate) fn step_backward<M: MulAdd, const RELU: bool>(
    gates: &[f32],
    c: &[f32],
    c_prev: Option<&[f32]>,
    dh: &[f32],
    dc: &mut [f32],
    dz: &mut [f32],
) {
    let units = c.len();
    let [gi, gf, gg, go] = gates_of(gates, units);
    let [dzi, dzf, dzg, dzo] = gates_of_mut(dz, units);
    let (dh, dc) = (&dh[..units], &mut dc[..units]);
    for j in 0..units {
        let (i, g, o) = (gi[j], gg[j], go[j]);
        let a = activate::<M, RELU>(c[j]);
        dzo[j] = dh[j] * a * o * (1.0 - o);
        // The step's cell-state gradient: from the next step, and through h = o·act(c).
        let dcj = M::mul_add(dh[j] * o, slope::<RELU>(c[j], a), dc[j]);
        dzi[j] = dcj * g * i * (1.0 - i);
        // relu: g > 0 exactly where its input was (an input of exactly zero has measure zero).
        let g_slope = if RELU {
            if g > 0.0 {
                1.0
            } else {
                0.0
            }
        } else {
            1.0 - g * g
        };
        dzg[j] = dcj * i * g_slope;
        dc[j] = dcj;
    }
    match c_prev {
        Some(p) => {
            let p = &p[..units];
            for j in 0..units {
                let f = gf[j];
                dzf[j] = dc[j] * p[j] * f * (1.0 - f);
                dc[j] *= f;
            }
        }
        None => {
            dzf.fill(0.0);
            for j in 0..units {
                dc[j] *= gf[j];
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
