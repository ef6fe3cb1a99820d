//! Runs on the audio thread: subnormal flushing, for the filterbank's state and the plugin's output.
//!
//! Flushing denormals: while the filterbank runs (a decaying IIR tail passes through the
//! denormal range, where x86 arithmetic is many times slower; flushed to zero, it simply ends),
//! and from the audio the plugin passes on. Runs on the audio thread.

/// Sets flush-to-zero and denormals-are-zero for the current thread while alive, and restores the
/// previous mode on drop. Allocation-free and syscall-free (two `mxcsr` instructions). On
/// targets other than x86-64 it does nothing.
pub struct FlushDenormals {
    /// The control word to restore, so a host's own floating-point mode survives our call.
    #[cfg(target_arch = "x86_64")]
    previous: u32,
}

#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

impl FlushDenormals {
    /// Enters flush-to-zero mode. Allocation-free.
    #[inline]
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let previous = read_mxcsr();
            write_mxcsr(previous | FTZ_DAZ);
            Self { previous }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self {}
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushDenormals {
    #[inline]
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write_mxcsr(self.previous);
    }
}

/// Replaces every subnormal sample by a zero of the same sign, leaving every other sample —
/// normal, zero, infinite or NaN — bit for bit as it was. Subnormals lie more than 700 dB below
/// full scale, so nothing audible changes, but passed on they slow whatever processes them next.
/// Real-time safe: no allocation, lock or system call; one pass over `samples`.
///
/// ```
/// use echoic_core::denormals::flush_subnormals;
///
/// let mut block = [0.5, 1.0e-40, -1.0e-41, f32::MIN_POSITIVE, -0.0];
/// flush_subnormals(&mut block);
/// assert_eq!(block, [0.5, 0.0, -0.0, f32::MIN_POSITIVE, -0.0]);
/// assert!(block[2].is_sign_negative());
/// ```
#[inline]
pub fn flush_subnormals(samples: &mut [f32]) {
    const EXPONENT: u32 = 0x7f80_0000;
    const SIGN: u32 = 0x8000_0000;
    for sample in samples {
        let bits = sample.to_bits();
        // A zero exponent field holds zeros and subnormals; either way only the sign is kept.
        if bits & EXPONENT == 0 {
            *sample = f32::from_bits(bits & SIGN);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_mxcsr() -> u32 {
    let mut value: u32 = 0;
    // SAFETY: `stmxcsr` stores the 32-bit control word into the pointed-to local.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut value, options(nostack, preserves_flags));
    }
    value
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn write_mxcsr(value: u32) {
    // SAFETY: `ldmxcsr` loads a control word that was read from the register and only had the
    // FTZ/DAZ bits changed, so no reserved bit is set.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &value, options(nostack, preserves_flags, readonly));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subnormals_change() {
        let specials = [
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NAN,
            1.0,
        ];
        let subnormals = [
            f32::from_bits(1),
            f32::from_bits(0x007f_ffff),
            -f32::from_bits(1),
            f32::MIN_POSITIVE / 2.0,
        ];
        let mut block: Vec<f32> = specials.iter().chain(&subnormals).copied().collect();
        flush_subnormals(&mut block);
        for (out, x) in block.iter().zip(&specials) {
            assert_eq!(out.to_bits(), x.to_bits());
        }
        for (out, x) in block[specials.len()..].iter().zip(&subnormals) {
            assert_eq!(*out, 0.0);
            assert_eq!(out.is_sign_negative(), x.is_sign_negative());
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn flushes_inside_and_restores_after() {
        let tiny = std::hint::black_box(f32::MIN_POSITIVE);
        let before = read_mxcsr();
        {
            let _guard = FlushDenormals::new();
            // A denormal result is flushed to zero.
            assert_eq!(std::hint::black_box(tiny) * std::hint::black_box(0.5), 0.0);
        }
        assert_eq!(read_mxcsr(), before);
        assert!(std::hint::black_box(tiny) * std::hint::black_box(0.5) > 0.0);
    }
}
