//! Flushing denormals while the filterbank runs. A decaying IIR tail passes through the denormal
//! range, where x86 arithmetic is many times slower; flushed to zero, it simply ends.

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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

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
