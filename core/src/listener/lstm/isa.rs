//! Any thread: the instruction sets the engine's loops are compiled for, and the one dispatch
//! that picks a build.
//!
//! A loop is written once, generic over the multiply-add flavour and the cell activation, as a
//! [`Specialised`] job; [`Isa::run`] calls it from a function compiled for AVX-512, for AVX2 and
//! FMA, or for any CPU, so that the job's body (its `#[inline(always)]` kernels and cell
//! arithmetic included) vectorises for the set the CPU has.

use super::cell::{Fused, MulAdd, Plain};
use crate::listener::config::Activation;

/// The instruction sets the engine has builds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F (with AVX2 and FMA for the rest of the loop).
    Avx512,
    /// AVX2 and FMA.
    Avx2,
    /// Whatever the target has by default.
    Portable,
}

/// A loop to compile once per instruction set and activation.
pub(crate) trait Specialised {
    /// The loop, with fused multiply-adds (`M = Fused`) or separate ones, for relu cells
    /// (`RELU`) or tanh ones, inside a function compiled for `isa` (which kernels with their own
    /// intrinsics, such as `matvec`, need to know).
    fn run<M: MulAdd, const RELU: bool>(self, isa: Isa);
}

impl Isa {
    /// The best set this CPU runs.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// A name for reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2+fma",
            Isa::Portable => "portable",
        }
    }

    /// Runs `job` compiled for this set, specialised for `activation`. No allocation.
    ///
    /// # Safety
    /// The CPU must support this set: it came from [`Isa::detect`], or is a lower one.
    #[inline(always)]
    pub(crate) unsafe fn run<S: Specialised>(self, activation: Activation, job: S) {
        let relu = activation == Activation::Relu;
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller's promise.
            Isa::Avx512 => unsafe { avx512(relu, job) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller's promise.
            Isa::Avx2 => unsafe { avx2(relu, job) },
            _ => specialise::<Plain, S>(Isa::Portable, relu, job),
        }
    }
}

/// Runs `job` for one multiply-add flavour, picking the activation's specialisation.
#[inline(always)]
fn specialise<M: MulAdd, S: Specialised>(isa: Isa, relu: bool, job: S) {
    if relu {
        job.run::<M, true>(isa)
    } else {
        job.run::<M, false>(isa)
    }
}

/// `job` compiled for AVX-512.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512<S: Specialised>(relu: bool, job: S) {
    specialise::<Fused, S>(Isa::Avx512, relu, job)
}

/// `job` compiled for AVX2 and FMA.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<S: Specialised>(relu: bool, job: S) {
    specialise::<Fused, S>(Isa::Avx2, relu, job)
}
