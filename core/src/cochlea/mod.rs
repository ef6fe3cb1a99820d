//! Runs on the audio thread: the gammatone cochlea, audio in, one frame of band energies per hop out.
//!
//! The cochlea: a 4th-order gammatone filterbank on ERB-spaced bands that turns audio into
//! per-band log-energy frames, one every hop. It runs on the audio thread: once built, nothing in
//! it allocates, locks or makes a system call.

mod kernel;

pub use kernel::Kernel;

use crate::denormals::FlushDenormals;
use crate::erb::{erb_hz, erb_space_into};
use crate::frame::{Frame, MAX_BANDS};
use kernel::Bank;
use std::f64::consts::PI;

/// Gammatone bandwidth as a multiple of the ERB: makes a 4th-order filter's equivalent
/// rectangular bandwidth equal to one ERB (Patterson et al. 1992).
pub const BANDWIDTH_PER_ERB: f64 = 1.019;

/// Bands centred above this fraction of the sample rate are silenced and flagged: their filters
/// would be distorted by aliasing near Nyquist.
pub const MAX_CENTRE_PER_FS: f64 = 0.45;

/// What the filterbank listens to. Independent of the host's sample rate except for
/// `sample_rate` itself, so the same sound gives the same frames at any rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CochleaConfig {
    /// Audio sample rate in Hz.
    pub sample_rate: f64,
    /// Number of bands, at most [`MAX_BANDS`].
    pub n_bands: usize,
    /// Centre frequency of the lowest band, in Hz.
    pub low_hz: f64,
    /// Upper end of the ERB spacing, in Hz (the highest band sits one ERB step below it).
    pub high_hz: f64,
    /// Time between frames, in seconds.
    pub hop_seconds: f64,
}

impl Default for CochleaConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000.0,
            n_bands: 100,
            low_hz: 50.0,
            high_hz: 8_000.0,
            hop_seconds: 0.010,
        }
    }
}

/// Why a configuration cannot be served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The band count is zero or above [`MAX_BANDS`].
    #[error("{0} bands requested; Echoic supports 1 to {MAX_BANDS}")]
    BandCount(usize),
    /// The band range is empty, negative or not finite.
    #[error("band range {low} Hz to {high} Hz is not a rising range of positive frequencies")]
    BandRange {
        /// Requested lowest centre frequency.
        low: f64,
        /// Requested upper limit.
        high: f64,
    },
    /// The sample rate or hop is not positive, or the hop is shorter than one sample.
    #[error("a hop of {hop_seconds} s at {sample_rate} Hz is not at least one sample long")]
    Timing {
        /// Requested sample rate.
        sample_rate: f64,
        /// Requested hop.
        hop_seconds: f64,
    },
    /// The kernel cannot run on this CPU.
    #[error("the {0:?} kernel is not supported by this CPU")]
    Kernel(Kernel),
}

impl CochleaConfig {
    /// Checks that the configuration can be served. Allocation-free.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.n_bands == 0 || self.n_bands > MAX_BANDS {
            return Err(ConfigError::BandCount(self.n_bands));
        }
        if !(self.low_hz > 0.0 && self.high_hz > self.low_hz && self.high_hz.is_finite()) {
            return Err(ConfigError::BandRange {
                low: self.low_hz,
                high: self.high_hz,
            });
        }
        if !(self.sample_rate > 0.0 && self.sample_rate.is_finite() && self.hop_seconds.is_finite())
            || self.hop_samples() == 0
        {
            return Err(ConfigError::Timing {
                sample_rate: self.sample_rate,
                hop_seconds: self.hop_seconds,
            });
        }
        Ok(())
    }

    /// The hop in whole samples (rounded). Allocation-free.
    pub fn hop_samples(&self) -> usize {
        (self.hop_seconds * self.sample_rate).round().max(0.0) as usize
    }

    /// A stable identifier of everything that shapes the frames, so that frames of different
    /// layouts are never mixed. Allocation-free.
    pub fn id(&self) -> u32 {
        // FNV-1a over the fields' bits.
        let mut hash: u32 = 0x811c_9dc5;
        for word in [
            self.sample_rate.to_bits(),
            self.n_bands as u64,
            self.low_hz.to_bits(),
            self.high_hz.to_bits(),
            self.hop_seconds.to_bits(),
        ] {
            for byte in word.to_le_bytes() {
                hash = (hash ^ byte as u32).wrapping_mul(0x0100_0193);
            }
        }
        hash
    }
}

/// The gammatone filterbank with its hop clock.
///
/// Build it off the audio thread ([`new`](Self::new) allocates, once); then feed it blocks of
/// any size with [`process`](Self::process), which is real-time safe and calls back once per
/// completed hop with that hop's [`Frame`].
///
/// ```
/// use echoic_core::cochlea::{Cochlea, CochleaConfig};
/// use echoic_core::frame::Frame;
///
/// // Off the audio thread: build once (allocates).
/// let config = CochleaConfig::default(); // 48 kHz, 100 bands from 50 Hz to 8 kHz, 10 ms hops
/// let mut cochlea = Cochlea::new(config)?;
///
/// // 100 ms of a 1 kHz tone, as the host would deliver it: in blocks of 64 samples.
/// let tone: Vec<f32> = (0..4_800)
///     .map(|n| (std::f32::consts::TAU * 1_000.0 * n as f32 / 48_000.0).sin())
///     .collect();
///
/// // On the audio thread: allocation-free, one callback per completed 480-sample hop.
/// let mut frames = 0;
/// let mut last = Frame::silent(0);
/// for block in tone.chunks(64) {
///     cochlea.process(block, |frame| {
///         frames += 1;
///         last = *frame;
///     });
/// }
/// assert_eq!(frames, 10);
/// assert_eq!(last.sample_pos, 4_800);
///
/// // The band centred nearest 1 kHz carries the most energy.
/// let distance = |hz: f32| (hz - 1_000.0).abs();
/// let centres = cochlea.centres();
/// let nearest = (0..centres.len())
///     .min_by(|&a, &b| distance(centres[a]).total_cmp(&distance(centres[b])))
///     .unwrap();
/// let energies = last.energies();
/// let loudest = (0..energies.len())
///     .max_by(|&a, &b| energies[a].total_cmp(&energies[b]))
///     .unwrap();
/// assert_eq!(loudest, nearest);
/// # Ok::<(), echoic_core::cochlea::ConfigError>(())
/// ```
pub struct Cochlea {
    /// What this instance was built for.
    config: CochleaConfig,
    /// Cached [`CochleaConfig::id`], stamped on every frame.
    config_id: u32,
    /// Cached [`CochleaConfig::hop_samples`].
    hop: usize,
    /// The instruction set the inner loop uses.
    kernel: Kernel,
    /// Ascending centre frequencies, Hz.
    centres: [f32; MAX_BANDS],
    /// False for bands centred above [`MAX_CENTRE_PER_FS`]·fs, which are kept silent.
    active: [bool; MAX_BANDS],
    /// Coefficients and state, boxed to keep this struct cheap to move.
    bank: Box<Bank>,
    /// Samples already filtered in the current hop.
    in_hop: usize,
    /// Sequence number of the next frame.
    next_seq: u64,
    /// Samples filtered since the last reset.
    sample_pos: u64,
    /// Cleared when non-finite input arrives; the next frame is then marked invalid.
    hop_valid: bool,
}

impl Cochlea {
    /// Builds a filterbank with the fastest kernel for this CPU. Allocates (once).
    pub fn new(config: CochleaConfig) -> Result<Self, ConfigError> {
        Self::with_kernel(config, Kernel::detect())
    }

    /// Builds a filterbank with a chosen kernel, for tests and benchmarks. Allocates (once).
    pub fn with_kernel(config: CochleaConfig, kernel: Kernel) -> Result<Self, ConfigError> {
        config.validate()?;
        if !kernel.is_supported() {
            return Err(ConfigError::Kernel(kernel));
        }
        let mut centres_f64 = [0.0f64; MAX_BANDS];
        erb_space_into(
            config.low_hz,
            config.high_hz,
            &mut centres_f64[..config.n_bands],
        );
        let mut cochlea = Self {
            config,
            config_id: config.id(),
            hop: config.hop_samples(),
            kernel,
            centres: [0.0; MAX_BANDS],
            active: [false; MAX_BANDS],
            bank: Box::new(Bank::zeroed()),
            in_hop: 0,
            next_seq: 0,
            sample_pos: 0,
            hop_valid: true,
        };
        let fs = config.sample_rate;
        for (band, &fc) in centres_f64[..config.n_bands].iter().enumerate() {
            cochlea.centres[band] = fc as f32;
            if fc > MAX_CENTRE_PER_FS * fs {
                continue;
            }
            cochlea.active[band] = true;
            let lambda = (-2.0 * PI * BANDWIDTH_PER_ERB * erb_hz(fc) / fs).exp();
            let beta = 2.0 * PI * fc / fs;
            cochlea.bank.a_re[band] = (lambda * beta.cos()) as f32;
            cochlea.bank.a_im[band] = (lambda * beta.sin()) as f32;
            cochlea.bank.gain[band] = (2.0 * (1.0 - lambda).powi(4)) as f32;
        }
        Ok(cochlea)
    }

    /// The configuration this filterbank was built for. Allocation-free.
    pub fn config(&self) -> &CochleaConfig {
        &self.config
    }

    /// The kernel in use. Allocation-free.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Ascending centre frequencies in Hz, one per band. Allocation-free.
    pub fn centres(&self) -> &[f32] {
        &self.centres[..self.config.n_bands]
    }

    /// For each band, whether the sample rate can carry it; inactive bands read
    /// [`SILENCE_DB`](crate::frame::SILENCE_DB). Allocation-free.
    pub fn active_bands(&self) -> &[bool] {
        &self.active[..self.config.n_bands]
    }

    /// Samples filtered since construction or the last reset: the position frames are stamped
    /// with. Allocation-free.
    pub fn samples_processed(&self) -> u64 {
        self.sample_pos
    }

    /// The hop in samples. Allocation-free.
    pub fn hop_samples(&self) -> usize {
        self.hop
    }

    /// Forgets all state: the next frame is the first again, exactly as after construction.
    /// Allocation-free.
    pub fn reset(&mut self) {
        self.bank.clear_state();
        self.in_hop = 0;
        self.next_seq = 0;
        self.sample_pos = 0;
        self.hop_valid = true;
    }

    /// Filters `input` and calls `on_frame` for every hop completed inside it. Blocks of any size
    /// (one sample included) give the same frames. Non-finite samples reset the filter state and
    /// invalidate the frame they fall in; the following hop is valid again.
    ///
    /// Real-time safe: no allocation, lock or system call, and work bounded by `input.len()`.
    pub fn process(&mut self, input: &[f32], mut on_frame: impl FnMut(&Frame)) {
        let _flush = FlushDenormals::new();
        let mut rest = input;
        while !rest.is_empty() {
            let take = rest.len().min(self.hop - self.in_hop);
            let (segment, tail) = rest.split_at(take);
            self.filter_checked(segment);
            self.in_hop += take;
            self.sample_pos += take as u64;
            if self.in_hop == self.hop {
                let frame = self.finish_frame();
                on_frame(&frame);
            }
            rest = tail;
        }
    }

    /// Convenience form of [`Cochlea::process`] for offline use. Allocates the returned frames.
    pub fn process_to_vec(&mut self, input: &[f32]) -> Vec<Frame> {
        let mut frames = Vec::with_capacity(input.len() / self.hop + 1);
        self.process(input, |frame| frames.push(*frame));
        frames
    }

    /// The real-valued impulse response of every band, `len` samples long, measured by running a
    /// unit impulse through a fresh copy of this filterbank. For analysis and tests. Allocates.
    pub fn impulse_responses(&self, len: usize) -> Vec<Vec<f32>> {
        let n_bands = self.config.n_bands;
        let mut bank = self.bank.clone();
        bank.clear_state();
        let mut responses = vec![vec![0.0; len]; n_bands];
        for t in 0..len {
            let x = if t == 0 { 1.0 } else { 0.0 };
            self.kernel.run(&mut bank, n_bands, &[x]);
            for (band, response) in responses.iter_mut().enumerate() {
                response[t] = bank.y_re[3][band];
            }
        }
        responses
    }

    fn filter_checked(&mut self, segment: &[f32]) {
        let n_bands = self.config.n_bands;
        match segment.iter().rposition(|x| !x.is_finite()) {
            None => self.kernel.run(&mut self.bank, n_bands, segment),
            Some(last_bad) => {
                // Restart from silence after the last bad sample, so nothing non-finite ever
                // enters the recursion.
                self.bank.clear_state();
                self.hop_valid = false;
                self.kernel
                    .run(&mut self.bank, n_bands, &segment[last_bad + 1..]);
            }
        }
    }

    fn finish_frame(&mut self) -> Frame {
        let n_bands = self.config.n_bands;
        // Mean of |y|²/2 over the hop: the power of the real-valued gammatone output.
        let scale = 0.5 / self.hop as f32;
        let mut frame = Frame::silent(n_bands as u16);
        frame.seq = self.next_seq;
        frame.sample_pos = self.sample_pos;
        frame.config_id = self.config_id;
        frame.valid = self.hop_valid;
        for band in 0..n_bands {
            if self.active[band] && self.hop_valid {
                let power = self.bank.energy[band] * scale;
                frame.bands[band] = power_to_db(power);
            }
        }
        self.bank.energy = [0.0; MAX_BANDS];
        self.next_seq += 1;
        self.in_hop = 0;
        self.hop_valid = true;
        frame
    }
}

/// `10·log10(power)`, floored at [`SILENCE_DB`](crate::frame::SILENCE_DB). Allocation-free.
#[inline]
pub fn power_to_db(power: f32) -> f32 {
    const FLOOR: f32 = 1e-10; // 10^(SILENCE_DB / 10)
    10.0 * power.max(FLOOR).log10()
}

#[cfg(test)]
mod tests;
