//! Runs on the worker: dilated spectral buffers read from the echoic memory.
//!
//! Dilated spectral buffers: T steps of the echoic memory, where step j looks back further the
//! larger j is, so that a short buffer spans a long stretch of time with fine detail near "now".

use crate::memory::EchoicMemory;

/// How far each step looks back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Dilation {
    /// Step j ends `dilation^j` frames back (1, 2, 4, … for dilation 2): the original Listener's
    /// layout.
    Exponential,
    /// Step j ends `1 + j·dilation` frames back (1, 3, 5, … for dilation 2).
    Linear,
}

/// How a step turns the frames it covers into one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// The frame at the step's look-back, ignoring the others: the original Listener's choice.
    Pick,
    /// The mean of the covered frames' log energies.
    Mean,
    /// The per-band maximum over the covered frames.
    Max,
}

/// The shape of a dilated buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DilatedSpec {
    /// Number of steps T.
    pub steps: usize,
    /// The dilation factor; at least 2 for [`Dilation::Exponential`], at least 1 for linear.
    pub dilation: usize,
    /// Exponential or linear spacing.
    pub kind: Dilation,
    /// How covered frames are combined.
    pub pooling: Pooling,
}

impl Default for DilatedSpec {
    fn default() -> Self {
        Self {
            steps: 8,
            dilation: 2,
            kind: Dilation::Exponential,
            pooling: Pooling::Pick,
        }
    }
}

/// Why a spec cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Zero steps or too long a look-back.
    #[error("{steps} steps with dilation {dilation} ({kind:?}) look back {lookback} frames; the limit is {MAX_LOOKBACK}")]
    TooLong {
        /// Requested steps.
        steps: usize,
        /// Requested dilation.
        dilation: usize,
        /// Requested spacing.
        kind: Dilation,
        /// The look-back it implies (saturated).
        lookback: usize,
    },
    /// A dilation that does not grow.
    #[error("dilation {0} does not grow the look-back")]
    Dilation(usize),
    /// More steps than the listener's input may have.
    #[error("{0} steps requested; the limit is {MAX_STEPS}")]
    Steps(usize),
}

/// The longest look-back a spec may ask for: 40.96 s of 10 ms frames. It sizes the echoic
/// memory, so it bounds the worker's memory: see [`EchoicMemory::bytes_needed`].
pub const MAX_LOOKBACK: usize = 4096;

/// The most steps a spec may have: the dilated buffer (`steps × bands`) is the listener's input.
pub const MAX_STEPS: usize = 64;

impl DilatedSpec {
    /// Checks that the spec is usable. Allocation-free.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.dilation < self.min_dilation() {
            return Err(SpecError::Dilation(self.dilation));
        }
        if self.steps > MAX_STEPS {
            return Err(SpecError::Steps(self.steps));
        }
        let lookback = if self.steps == 0 {
            0
        } else {
            self.lookback(self.steps - 1)
        };
        if self.steps == 0 || lookback > MAX_LOOKBACK {
            return Err(SpecError::TooLong {
                steps: self.steps,
                dilation: self.dilation,
                kind: self.kind,
                lookback,
            });
        }
        Ok(())
    }

    /// The nearest spec that [`validate`](Self::validate) accepts: `self` when it already is.
    /// Steps are clamped to `1..=MAX_STEPS` and the dilation raised to its minimum; then, if
    /// the look-back exceeds [`MAX_LOOKBACK`], the largest dilation that fits is used, and when
    /// even the smallest does not fit, the most steps that fit. Spacing and pooling never change.
    /// Allocation-free; constant work, whatever the values.
    pub fn validated(&self) -> Self {
        let mut spec = *self;
        spec.steps = spec.steps.clamp(1, MAX_STEPS);
        spec.dilation = spec.dilation.clamp(self.min_dilation(), MAX_LOOKBACK);
        if spec.memory_frames() <= MAX_LOOKBACK {
            return spec;
        }
        // Too long: the largest dilation whose look-back over `intervals` steps fits.
        let intervals = (spec.steps - 1) as u32;
        spec.dilation = match spec.kind {
            // The integer `intervals`-th root of MAX_LOOKBACK; the loop only corrects the float
            // root's rounding (at most a step or two).
            Dilation::Exponential => {
                let mut root = (MAX_LOOKBACK as f64)
                    .powf(1.0 / f64::from(intervals))
                    .round() as usize;
                while root > 1 && root.saturating_pow(intervals) > MAX_LOOKBACK {
                    root -= 1;
                }
                root.max(self.min_dilation())
            }
            Dilation::Linear => ((MAX_LOOKBACK - 1) / intervals as usize).max(1),
        };
        if spec.memory_frames() > MAX_LOOKBACK {
            // Exponential at dilation 2 and still too long: as many steps as 2^(T-1) allows.
            spec.steps = MAX_LOOKBACK.ilog(spec.dilation) as usize + 1;
        }
        spec
    }

    /// The smallest dilation that grows the look-back.
    fn min_dilation(&self) -> usize {
        match self.kind {
            Dilation::Exponential => 2,
            Dilation::Linear => 1,
        }
    }

    /// How many frames back step `j` ends (1 = the newest frame). Saturates instead of
    /// overflowing. Allocation-free.
    pub fn lookback(&self, step: usize) -> usize {
        match self.kind {
            Dilation::Exponential => self
                .dilation
                .saturating_pow(step.min(u32::MAX as usize) as u32),
            Dilation::Linear => step.saturating_mul(self.dilation).saturating_add(1),
        }
    }

    /// The frames step `j` covers, as look-backs `first..=last` (1 = newest). Steps tile the
    /// memory without gaps or overlaps. Allocation-free.
    pub fn covered(&self, step: usize) -> (usize, usize) {
        let first = if step == 0 {
            1
        } else {
            self.lookback(step - 1) + 1
        };
        (first, self.lookback(step))
    }

    /// Memory capacity this spec needs, in frames. Allocation-free.
    pub fn memory_frames(&self) -> usize {
        self.lookback(self.steps.saturating_sub(1))
    }

    /// Seconds the buffer spans at a given hop. Allocation-free.
    pub fn span_seconds(&self, hop_seconds: f64) -> f64 {
        self.memory_frames() as f64 * hop_seconds
    }

    /// Writes the dilated buffer into `out` (`steps × bands`, oldest step first, so that the
    /// sequence runs forward in time) and returns whether the memory is still warming up (look-
    /// backs past its oldest frame repeat that frame). Returns `None`, leaving `out` untouched,
    /// while the memory is empty. Allocation-free, and `O(steps × bands)` whatever the
    /// look-back: mean and max pooling read the memory's running summaries.
    ///
    /// # Panics
    /// If `out.len() != steps × memory.n_bands()`.
    ///
    /// # Example
    /// ```
    /// use echoic_core::dilated::DilatedSpec;
    /// use echoic_core::frame::Frame;
    /// use echoic_core::memory::EchoicMemory;
    ///
    /// // Off the hot path: size the memory and the buffer from the spec (allocates, once).
    /// let spec = DilatedSpec::default(); // 8 steps looking back 1, 2, 4, … 128 frames
    /// spec.validate()?;
    /// let n_bands = 4;
    /// let mut memory = EchoicMemory::new(spec.memory_frames(), n_bands);
    /// let mut buffer = vec![0.0; spec.steps * n_bands];
    /// assert!(spec.build(&memory, &mut buffer).is_none(), "nothing heard yet");
    ///
    /// // Every hop: store the cochlea's frame, then rebuild the buffer (both allocation-free).
    /// let mut frame = Frame::silent(n_bands as u16);
    /// for seq in 0..200 {
    ///     frame.seq = seq;
    ///     frame.bands[..n_bands].fill(seq as f32);
    ///     memory.push(&frame);
    ///     let status = spec.build(&memory, &mut buffer).unwrap();
    ///     assert_eq!(status.warming_up, seq < 127, "full once 128 frames are held");
    /// }
    ///
    /// // steps × bands values, oldest step first: the newest step is the last frame pushed,
    /// // the oldest the frame 128 hops back.
    /// assert_eq!(buffer.len(), spec.steps * n_bands);
    /// assert_eq!(&buffer[(spec.steps - 1) * n_bands..], frame.energies());
    /// assert_eq!(&buffer[..n_bands], &[199.0 - 127.0; 4]);
    /// # Ok::<(), echoic_core::dilated::SpecError>(())
    /// ```
    pub fn build(&self, memory: &EchoicMemory, out: &mut [f32]) -> Option<BufferStatus> {
        let n_bands = memory.n_bands();
        assert_eq!(out.len(), self.steps * n_bands, "dilated buffer size");
        if memory.is_empty() {
            return None;
        }
        for step in 0..self.steps {
            let row = self.steps - 1 - step;
            let dst = &mut out[row * n_bands..(row + 1) * n_bands];
            let (first, last) = self.covered(step);
            match self.pooling {
                Pooling::Pick => dst.copy_from_slice(memory.frame_back(last - 1)?),
                Pooling::Mean => {
                    memory.mean_back(first - 1, last - 1, dst);
                }
                Pooling::Max => {
                    memory.max_back(first - 1, last - 1, dst);
                }
            }
        }
        Some(BufferStatus {
            warming_up: memory.is_warming_up(),
        })
    }
}

/// What [`DilatedSpec::build`] reports alongside the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferStatus {
    /// The memory did not yet reach back as far as the oldest step; the oldest frame was repeated.
    pub warming_up: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Frame;

    /// A memory whose frame with sequence number s holds the value s in every band.
    fn ramp_memory(capacity: usize, frames: u64) -> EchoicMemory {
        let mut memory = EchoicMemory::new(capacity, 2);
        for seq in 0..frames {
            let mut frame = Frame::silent(2);
            frame.seq = seq;
            frame.bands[..2].fill(seq as f32);
            memory.push(&frame);
        }
        memory
    }

    #[test]
    fn default_spec_looks_back_in_powers_of_two_over_1_28_s() {
        let spec = DilatedSpec::default();
        let lookbacks: Vec<usize> = (0..8).map(|j| spec.lookback(j)).collect();
        assert_eq!(lookbacks, vec![1, 2, 4, 8, 16, 32, 64, 128]);
        assert!((spec.span_seconds(0.010) - 1.28).abs() < 1e-9);
        assert_eq!(spec.covered(0), (1, 1));
        assert_eq!(spec.covered(3), (5, 8));
    }

    #[test]
    fn linear_spacing() {
        let spec = DilatedSpec {
            kind: Dilation::Linear,
            dilation: 3,
            ..DilatedSpec::default()
        };
        let lookbacks: Vec<usize> = (0..4).map(|j| spec.lookback(j)).collect();
        assert_eq!(lookbacks, vec![1, 4, 7, 10]);
        assert_eq!(spec.covered(2), (5, 7));
    }

    #[test]
    fn pick_mean_and_max_pool_the_covered_frames() {
        // Newest frame has value 199; look-back b holds 200 - b.
        let memory = ramp_memory(128, 200);
        let mut out = vec![0.0; 8 * 2];
        for (pooling, expected_step3) in [
            (Pooling::Pick, 192.0),
            (Pooling::Mean, 193.5),
            (Pooling::Max, 195.0),
        ] {
            let spec = DilatedSpec {
                pooling,
                ..DilatedSpec::default()
            };
            let status = spec.build(&memory, &mut out).unwrap();
            assert!(!status.warming_up);
            // Step 3 covers look-backs 5..=8, i.e. values 195..=192; it is row 8-1-3 = 4.
            assert_eq!(out[4 * 2], expected_step3, "{pooling:?}");
            // The newest step is the last row.
            assert_eq!(out[7 * 2], 199.0);
        }
        let spec = DilatedSpec::default();
        spec.build(&memory, &mut out).unwrap();
        assert_eq!(out[0], 200.0 - 128.0); // oldest step first
    }

    #[test]
    fn warming_up_repeats_the_oldest_frame() {
        let memory = ramp_memory(128, 10);
        let mut out = vec![0.0; 8 * 2];
        let status = DilatedSpec::default().build(&memory, &mut out).unwrap();
        assert!(status.warming_up);
        // Steps reaching past the 10 frames held read the oldest frame, value 0.
        assert_eq!(&out[..8], &[0.0; 8]);
        assert_eq!(out[7 * 2], 9.0);
        assert!(DilatedSpec::default()
            .build(&EchoicMemory::new(128, 2), &mut out)
            .is_none());
    }

    #[test]
    fn every_spec_validates_to_the_nearest_usable_one() {
        let exp = |steps, dilation| DilatedSpec {
            steps,
            dilation,
            ..DilatedSpec::default()
        };
        // Usable specs are kept as they are.
        assert_eq!(DilatedSpec::default().validated(), DilatedSpec::default());
        assert_eq!(exp(7, 4).validated(), exp(7, 4), "4^6 = 4096 fits exactly");
        // Too long: the largest dilation that fits, then the most steps.
        assert_eq!(exp(8, 4).validated(), exp(8, 3), "3^7 = 2187");
        assert_eq!(exp(13, 4).validated(), exp(13, 2), "2^12 = 4096");
        assert_eq!(
            exp(16, 4).validated(),
            exp(13, 2),
            "the case that aborted hosts: 4^15 frames"
        );
        assert_eq!(exp(16, 1).validated(), exp(13, 2));
        assert_eq!(exp(0, 2).validated(), exp(1, 2));
        assert_eq!(exp(usize::MAX, usize::MAX).validated(), exp(13, 2));
        assert_eq!(exp(2, usize::MAX).validated(), exp(2, MAX_LOOKBACK));
        let linear = |steps, dilation| DilatedSpec {
            steps,
            dilation,
            kind: Dilation::Linear,
            ..DilatedSpec::default()
        };
        assert_eq!(linear(16, 0).validated(), linear(16, 1));
        assert_eq!(
            linear(MAX_STEPS, usize::MAX).validated(),
            linear(MAX_STEPS, 65)
        );
        // Exhaustively over a generous grid: always valid, and never shorter than needed.
        for kind in [Dilation::Exponential, Dilation::Linear] {
            for steps in 0..=70 {
                for dilation in 0..=70 {
                    let asked = DilatedSpec {
                        steps,
                        dilation,
                        kind,
                        pooling: Pooling::Max,
                    };
                    let used = asked.validated();
                    assert!(used.validate().is_ok(), "{asked:?} -> {used:?}");
                    assert_eq!(used.validated(), used, "validation is idempotent");
                    assert_eq!((used.kind, used.pooling), (kind, Pooling::Max));
                    if asked.validate().is_ok() {
                        assert_eq!(used, asked);
                    } else if used.steps == asked.steps && used.dilation > used.min_dilation() {
                        let longer = DilatedSpec {
                            dilation: used.dilation + 1,
                            ..used
                        };
                        assert!(
                            longer.validate().is_err(),
                            "{asked:?}: {used:?} is not the longest fit"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn pooling_costs_the_same_per_hop_whatever_the_span() {
        // The longest spec there is, with mean and max pooling, over a full memory: the buffer
        // must equal the definition (computed the slow way from single frames).
        let spec = DilatedSpec {
            steps: 13,
            dilation: 2,
            kind: Dilation::Exponential,
            pooling: Pooling::Max,
        };
        let memory = ramp_memory(spec.memory_frames(), 10_000);
        let mut out = vec![0.0; 13 * 2];
        for pooling in [Pooling::Mean, Pooling::Max] {
            let spec = DilatedSpec { pooling, ..spec };
            spec.build(&memory, &mut out).unwrap();
            for step in 0..13 {
                let (first, last) = spec.covered(step);
                // Look-back b holds 10_000 - b.
                let expected = match pooling {
                    Pooling::Mean => 10_000.0 - (first + last) as f32 / 2.0,
                    _ => 10_000.0 - first as f32,
                };
                assert_eq!(out[(12 - step) * 2], expected, "{pooling:?} step {step}");
            }
        }
    }

    #[test]
    fn unusable_specs_are_refused() {
        assert!(DilatedSpec {
            dilation: 1,
            ..DilatedSpec::default()
        }
        .validate()
        .is_err());
        assert!(DilatedSpec {
            steps: 0,
            ..DilatedSpec::default()
        }
        .validate()
        .is_err());
        assert!(DilatedSpec {
            steps: 40,
            ..DilatedSpec::default()
        }
        .validate()
        .is_err());
        assert!(DilatedSpec::default().validate().is_ok());
    }
}
