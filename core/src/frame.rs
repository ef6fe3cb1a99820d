//! Any thread: the cochlear frame every stage passes on.
//!
//! One cochlear frame: the log energy of every band over one hop.

/// The most bands a frame can carry. Frames are fixed-size so that they travel through the
/// lock-free ring by copy, without allocation.
pub const MAX_BANDS: usize = 128;

/// Log energy (dB) reported for a band with no energy, and for bands the sample rate cannot
/// carry. Low enough to sit far below any real signal, finite so that arithmetic stays finite.
pub const SILENCE_DB: f32 = -100.0;

/// Per-band log energy over one hop, with the position it was measured at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    /// Counts frames since the cochlea was last reset, so the worker can tell a gap (a dropped
    /// frame) from a repeat.
    pub seq: u64,
    /// Index of the first sample after this hop: the sample at which the frame became known,
    /// used to time the automation that it causes. The cochlea counts from its last reset; the
    /// audio front restamps frames on its own timeline, which never goes back.
    pub sample_pos: u64,
    /// Identifies the cochlea configuration that produced the frame, so the worker never mixes
    /// frames of different band layouts in one memory.
    pub config_id: u32,
    /// False when non-finite input reached the filterbank during this hop: the energies are then
    /// meaningless and consumers should skip the frame.
    pub valid: bool,
    /// How many entries of `bands` are used.
    pub n_bands: u16,
    /// Log energy in dB (`10·log10` of mean power, floored at [`SILENCE_DB`]), lowest band first.
    pub bands: [f32; MAX_BANDS],
}

impl Frame {
    /// An empty frame: all bands silent. Allocation-free.
    pub const fn silent(n_bands: u16) -> Self {
        Self {
            seq: 0,
            sample_pos: 0,
            config_id: 0,
            valid: true,
            n_bands,
            bands: [SILENCE_DB; MAX_BANDS],
        }
    }

    /// The used band energies. Allocation-free.
    pub fn energies(&self) -> &[f32] {
        &self.bands[..self.n_bands as usize]
    }
}
