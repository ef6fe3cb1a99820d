//! Runs on the audio thread: the filterbank's SIMD inner loop.
//!
//! The filterbank's inner loop: a cascade of four complex one-pole sections per band (Hohmann
//! 2002), laid out channel-major so that one vector register holds one section of `W` bands.
//!
//! The loop runs band chunk by band chunk, and sample by sample inside a chunk, so that a chunk's
//! whole state stays in registers across the segment. Each section's recursion is only one
//! complex multiply-add long, so consecutive samples overlap in the pipeline and the loop is
//! bound by arithmetic throughput rather than latency.

use crate::frame::MAX_BANDS;

/// Filter coefficients and state for up to [`MAX_BANDS`] bands, padded to the widest vector.
/// Padding lanes have zero gain and zero poles, so they stay silent.
#[derive(Clone)]
pub(crate) struct Bank {
    /// Real part of each band's pole `λ·e^{iβ}`.
    pub a_re: [f32; MAX_BANDS],
    /// Imaginary part of each band's pole.
    pub a_im: [f32; MAX_BANDS],
    /// Input gain `2(1−λ)^4`: unity gain at the centre frequency for the real part of the output.
    pub gain: [f32; MAX_BANDS],
    /// Real part of each section's output, section-major.
    pub y_re: [[f32; MAX_BANDS]; 4],
    /// Imaginary part of each section's output.
    pub y_im: [[f32; MAX_BANDS]; 4],
    /// Sum over the current hop of the squared magnitude of the last section's output.
    pub energy: [f32; MAX_BANDS],
}

impl Bank {
    /// A silent bank with no bands. Allocation-free.
    pub const fn zeroed() -> Self {
        Self {
            a_re: [0.0; MAX_BANDS],
            a_im: [0.0; MAX_BANDS],
            gain: [0.0; MAX_BANDS],
            y_re: [[0.0; MAX_BANDS]; 4],
            y_im: [[0.0; MAX_BANDS]; 4],
            energy: [0.0; MAX_BANDS],
        }
    }

    /// Clears the filter state and the energy accumulator, keeping the coefficients.
    pub fn clear_state(&mut self) {
        self.y_re = [[0.0; MAX_BANDS]; 4];
        self.y_im = [[0.0; MAX_BANDS]; 4];
        self.energy = [0.0; MAX_BANDS];
    }
}

/// Which instruction set runs the inner loop. Chosen once, at construction, by runtime detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust that the compiler vectorises for the baseline target (SSE2 on x86-64).
    Portable,
    /// 8 bands per vector with fused multiply-add.
    Avx2Fma,
    /// 16 bands per vector with fused multiply-add.
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU supports. Allocation-free.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Kernel::Avx2Fma;
            }
        }
        Kernel::Portable
    }

    /// Whether this CPU can run the kernel. Allocation-free.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Runs `input` through the first `n_bands` bands of `bank`. Allocation-free.
    #[inline]
    pub(crate) fn run(self, bank: &mut Bank, n_bands: usize, input: &[f32]) {
        match self {
            Kernel::Portable => filter_segment::<8, false>(bank, n_bands, input),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a `Kernel` other than `Portable` is only constructed after `is_supported`.
            Kernel::Avx2Fma => unsafe { filter_segment_avx2(bank, n_bands, input) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Kernel::Avx512 => unsafe { filter_segment_avx512(bank, n_bands, input) },
            #[cfg(not(target_arch = "x86_64"))]
            _ => filter_segment::<8, false>(bank, n_bands, input),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn filter_segment_avx2(bank: &mut Bank, n_bands: usize, input: &[f32]) {
    filter_segment::<8, true>(bank, n_bands, input)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn filter_segment_avx512(bank: &mut Bank, n_bands: usize, input: &[f32]) {
    filter_segment::<16, true>(bank, n_bands, input)
}

/// `a·b + c`, fused when the kernel was compiled with FMA.
#[inline(always)]
fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn filter_segment<const W: usize, const FMA: bool>(bank: &mut Bank, n_bands: usize, input: &[f32]) {
    let n_chunks = n_bands.div_ceil(W);
    for chunk in 0..n_chunks {
        let o = chunk * W;
        let a_re: [f32; W] = std::array::from_fn(|l| bank.a_re[o + l]);
        let a_im: [f32; W] = std::array::from_fn(|l| bank.a_im[o + l]);
        let gain: [f32; W] = std::array::from_fn(|l| bank.gain[o + l]);
        let mut y_re: [[f32; W]; 4] =
            std::array::from_fn(|s| std::array::from_fn(|l| bank.y_re[s][o + l]));
        let mut y_im: [[f32; W]; 4] =
            std::array::from_fn(|s| std::array::from_fn(|l| bank.y_im[s][o + l]));
        let mut energy: [f32; W] = std::array::from_fn(|l| bank.energy[o + l]);

        for &x in input {
            // Section input: the scaled sample for the first section, the previous section's
            // output for the others.
            let mut in_re: [f32; W] = std::array::from_fn(|l| x * gain[l]);
            let mut in_im = [0.0f32; W];
            for s in 0..4 {
                for l in 0..W {
                    let re = mul_add::<FMA>(
                        a_re[l],
                        y_re[s][l],
                        mul_add::<FMA>(-a_im[l], y_im[s][l], in_re[l]),
                    );
                    let im = mul_add::<FMA>(
                        a_re[l],
                        y_im[s][l],
                        mul_add::<FMA>(a_im[l], y_re[s][l], in_im[l]),
                    );
                    y_re[s][l] = re;
                    y_im[s][l] = im;
                }
                in_re = y_re[s];
                in_im = y_im[s];
            }
            for l in 0..W {
                energy[l] = mul_add::<FMA>(
                    in_re[l],
                    in_re[l],
                    mul_add::<FMA>(in_im[l], in_im[l], energy[l]),
                );
            }
        }

        for s in 0..4 {
            bank.y_re[s][o..o + W].copy_from_slice(&y_re[s]);
            bank.y_im[s][o..o + W].copy_from_slice(&y_im[s]);
        }
        bank.energy[o..o + W].copy_from_slice(&energy);
    }
}
