//! Near copies: training files that are another encoding of a file the evaluation set plays.
//!
//! The corpus leaves out byte-identical copies of evaluation files (`training::EvalFiles`), but
//! a training package may ship the same recording re-encoded, resampled or at another gain
//! (megaglest ships tuxpaint's white cow byte for byte; another package could ship it as Ogg at
//! 44.1 kHz). Such a file would put an evaluation source into training. So every audio file
//! an evaluation clip was cut from is a *reference*, and a training file is a near copy of one
//! when their lengths agree within [`LENGTH_TOLERANCE_SECONDS`] (or [`LENGTH_TOLERANCE_RATIO`]
//! of the reference) and their spectrograms correlate by at least [`NEAR_COPY_CORRELATION`].
//!
//! The spectrogram is the log energy of [`BANDS`] log-spaced bands in frames of [`FRAME`]
//! samples every [`HOP`], floored [`FLOOR_DB`] under its loudest cell, with each band's mean over
//! the file and then each frame's mean over the bands taken out: a gain or a fixed equalisation
//! does not hide a copy, and two recordings are not alike only because both decay. Two spectrograms are compared at every offset up to
//! [`MAX_LAG_SECONDS`] (an encoder's padding) and the best Pearson correlation counts. A copy
//! that was cut or mixed into something longer is not looked for: that would mean aligning every
//! reference within every training file.
//!
//! Offline: decodes files and allocates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use realfft::{RealFftPlanner, RealToComplex};

use super::hash_str;
use super::packages::decode_with_ffmpeg;
use crate::audio_file::{decode_mono_at, has_extension};
use crate::evaluation::axes::pearson;

/// Samples per analysis frame (46 ms at 22,050 Hz).
const FRAME: usize = 1024;
/// Samples between frames: a quarter of a frame, so that a copy shifted by any padding lines
/// up with its original within 6 ms at 22,050 Hz.
const HOP: usize = 256;
/// Log-spaced bands of the spectrogram, from [`LOWEST_HZ`] to [`HIGHEST_HZ`] (or Nyquist).
const BANDS: usize = 32;
/// The lowest band's lower edge: below it, recordings differ in rumble more than in content.
const LOWEST_HZ: f64 = 60.0;
/// The highest band's upper edge: above it, lossy encoders cut or smear the spectrum.
const HIGHEST_HZ: f64 = 10_000.0;
/// How far below a file's loudest band energy its energies are floored, in dB, so that an
/// encoder's padding with digital silence, a copy's dither or its noise floor in quiet frames
/// does not decide the correlation.
const FLOOR_DB: f64 = 50.0;

/// Lengths that differ by less than this, in seconds, may be one recording: Ogg and MP3
/// encoders pad a few tens of milliseconds.
pub const LENGTH_TOLERANCE_SECONDS: f64 = 0.1;
/// ... or by less than this share of the reference's length (a speed change by resampling at a
/// rate off by a semitone is not a copy the guard looks for).
pub const LENGTH_TOLERANCE_RATIO: f64 = 0.02;
/// The furthest two spectrograms are shifted against each other, in seconds.
const MAX_LAG_SECONDS: f64 = 0.1;
/// The correlation from which a training file is a near copy. A resampled, re-levelled and
/// shifted copy correlates above 0.98, another recording of its length under 0.5 (the tests);
/// the corpus report prints the closest pair it kept.
pub const NEAR_COPY_CORRELATION: f64 = 0.95;

/// A recording's level-free spectrogram and its length.
pub(super) struct Fingerprint {
    /// Frames × [`BANDS`] log energies, each band's mean removed.
    cells: Vec<f32>,
    /// Its length in seconds, to pick the references worth comparing.
    seconds: f64,
}

impl Fingerprint {
    /// The fingerprint of `samples` at `rate` Hz. Allocates.
    pub(super) fn of(samples: &[f32], rate: u32) -> Self {
        let seconds = samples.len() as f64 / rate as f64;
        let fft: Arc<dyn RealToComplex<f32>> = RealFftPlanner::new().plan_fft_forward(FRAME);
        let edges = band_edges(rate);
        let window: Vec<f32> = (0..FRAME)
            .map(|i| {
                (std::f32::consts::PI * (i as f32 + 0.5) / FRAME as f32)
                    .sin()
                    .powi(2)
            })
            .collect();
        let mut input = fft.make_input_vec();
        let mut spectrum = fft.make_output_vec();
        let frames = if samples.len() < FRAME {
            usize::from(!samples.is_empty())
        } else {
            1 + (samples.len() - FRAME) / HOP
        };
        let mut energies: Vec<f64> = Vec::with_capacity(frames * BANDS);
        for f in 0..frames {
            let start = f * HOP;
            for (i, x) in input.iter_mut().enumerate() {
                *x = samples.get(start + i).copied().unwrap_or(0.0) * window[i];
            }
            fft.process(&mut input, &mut spectrum)
                .expect("buffers come from the plan");
            for band in edges.windows(2) {
                let e: f64 = spectrum[band[0]..band[1]]
                    .iter()
                    .map(|c| c.norm_sqr() as f64)
                    .sum();
                energies.push(e);
            }
        }
        let loudest = energies.iter().copied().fold(0.0, f64::max);
        let floor = (loudest * 10f64.powf(-FLOOR_DB / 10.0)).max(f64::MIN_POSITIVE);
        let mut cells: Vec<f32> = energies
            .iter()
            .map(|&e| (10.0 * e.max(floor).log10()) as f32)
            .collect();
        for b in 0..BANDS {
            let mean =
                (0..frames).map(|f| cells[f * BANDS + b]).sum::<f32>() / frames.max(1) as f32;
            for f in 0..frames {
                cells[f * BANDS + b] -= mean;
            }
        }
        // And each frame's mean over the bands, so that what is compared is how the spectrum's
        // shape moves: two drum hits that both decay are not alike for that alone.
        for frame in cells.chunks_exact_mut(BANDS) {
            let mean = frame.iter().sum::<f32>() / BANDS as f32;
            frame.iter_mut().for_each(|c| *c -= mean);
        }
        Self { cells, seconds }
    }

    fn frames(&self) -> usize {
        self.cells.len() / BANDS
    }

    /// Whether a recording `seconds` long may be a copy of this one (see the module's lengths).
    fn length_matches(&self, seconds: f64) -> bool {
        (seconds - self.seconds).abs()
            <= LENGTH_TOLERANCE_SECONDS.max(LENGTH_TOLERANCE_RATIO * self.seconds)
    }

    /// The best Pearson correlation of the two spectrograms over the offsets up to
    /// [`MAX_LAG_SECONDS`] at `rate` Hz, on the frames they share (at least half the shorter's).
    fn correlation(&self, other: &Self, rate: u32) -> f64 {
        let max_lag = (MAX_LAG_SECONDS * rate as f64 / HOP as f64).ceil() as isize;
        let (a, b) = (self.frames() as isize, other.frames() as isize);
        let least = (a.min(b) / 2).max(1);
        (-max_lag..=max_lag)
            .filter_map(|lag| {
                // Frame i of self against frame i + lag of other.
                let first = 0.max(-lag);
                let end = a.min(b - lag);
                (end - first >= least).then(|| {
                    let len = (end - first) as usize * BANDS;
                    let (mine, theirs) = (first as usize * BANDS, (first + lag) as usize * BANDS);
                    // The cells are finite (floored logs), so `None` means one does not vary.
                    pearson(
                        &self.cells[mine..mine + len],
                        &other.cells[theirs..theirs + len],
                    )
                    .unwrap_or(0.0)
                })
            })
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

/// The FFT bins bounding each band: [`BANDS`] + 1 increasing edges, log-spaced in frequency,
/// each band at least one bin wide.
fn band_edges(rate: u32) -> Vec<usize> {
    let bin_hz = rate as f64 / FRAME as f64;
    let top = HIGHEST_HZ.min(rate as f64 / 2.0);
    let mut edges: Vec<usize> = (0..=BANDS)
        .map(|k| {
            let hz = LOWEST_HZ * (top / LOWEST_HZ).powf(k as f64 / BANDS as f64);
            (hz / bin_hz).round() as usize
        })
        .collect();
    for k in 1..edges.len() {
        edges[k] = edges[k].max(edges[k - 1] + 1);
    }
    edges
}

/// A training file's closest reference among those of a matching length.
pub(super) struct Closest {
    /// The reference, relative to the cache directory.
    pub(super) reference: String,
    /// Their spectrograms' correlation.
    pub(super) correlation: f64,
}

/// The evaluation's source recordings, fingerprinted at the training rate.
#[derive(Default)]
pub(super) struct References {
    /// Each reference's fingerprint and its path relative to the cache directory.
    fingerprints: Vec<(Fingerprint, String)>,
    /// The training rate they were decoded at.
    rate: u32,
    /// A stable hash of the references' paths, for the training packages' index keys: a
    /// package chosen against other references is checked again.
    key: u64,
}

impl References {
    /// Decodes and fingerprints `files` (relative to `cache`, as the evaluation clips' sources
    /// name them) at `rate` Hz; a file that cannot be decoded is returned in the failures and
    /// left out. Raw G.722 (`.g722`) is read through ffmpeg.
    pub(super) fn decode(
        cache: &Path,
        files: &[String],
        rate: u32,
    ) -> (Self, Vec<(PathBuf, anyhow::Error)>) {
        let mut fingerprints = Vec::new();
        let mut failures = Vec::new();
        for rel in files {
            let path = cache.join(rel);
            match decode_reference(&path, rate) {
                Ok(samples) => fingerprints.push((Fingerprint::of(&samples, rate), rel.clone())),
                Err(e) => failures.push((path, e)),
            }
        }
        let key = hash_str(&files.join("\n"));
        let references = Self {
            fingerprints,
            rate,
            key,
        };
        (references, failures)
    }

    /// A stable hash of the reference list (see the field).
    pub(super) fn key(&self) -> u64 {
        self.key
    }

    /// Whether any reference is as long as a recording of `seconds`, so that only then need a
    /// training file be read and fingerprinted. Does not allocate.
    pub(super) fn any_of_length(&self, seconds: f64) -> bool {
        self.fingerprints
            .iter()
            .any(|(fp, _)| fp.length_matches(seconds))
    }

    /// The reference of a matching length that `samples` (at the references' rate) correlates
    /// with best, if any has a matching length. Allocates.
    pub(super) fn closest(&self, samples: &[f32]) -> Option<Closest> {
        let seconds = samples.len() as f64 / self.rate as f64;
        if !self.any_of_length(seconds) {
            return None;
        }
        let candidate = Fingerprint::of(samples, self.rate);
        self.fingerprints
            .iter()
            .filter(|(fp, _)| fp.length_matches(seconds))
            .map(|(fp, rel)| Closest {
                reference: rel.clone(),
                correlation: fp.correlation(&candidate, self.rate),
            })
            .max_by(|a, b| a.correlation.total_cmp(&b.correlation))
    }
}

fn decode_reference(path: &Path, rate: u32) -> Result<Vec<f32>> {
    if has_extension(path, &["g722"]) {
        decode_with_ffmpeg(path, Some("g722"), rate)
    } else {
        Ok(decode_mono_at(path, rate)?.samples)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::audio_file::resample;
    use echoic_core::rng::SplitMix64;

    const RATE: u32 = 22_050;

    /// Noise shaped by a few decaying notes: a recording with a spectrogram of its own.
    pub(in crate::corpus) fn recording(seed: u64, seconds: f64, rate: u32) -> Vec<f32> {
        let mut rng = SplitMix64(seed);
        let notes: Vec<(f64, f64)> = (0..6)
            .map(|_| (rng.next_f64() * seconds, 200.0 + rng.next_f64() * 3_000.0))
            .collect();
        (0..(seconds * rate as f64) as usize)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let tone: f64 = notes
                    .iter()
                    .filter(|&&(start, _)| t >= start)
                    .map(|&(start, hz)| {
                        (-(t - start) * 6.0).exp() * (std::f64::consts::TAU * hz * t).sin()
                    })
                    .sum();
                (0.2 * tone + 0.01 * (rng.next_f64() - 0.5)) as f32
            })
            .collect()
    }

    #[test]
    fn a_resampled_quieter_padded_copy_is_found_and_another_recording_is_not() {
        let original = recording(1, 3.0, 44_100);
        let (references, failures) = {
            let dir = std::env::temp_dir().join(format!("echoic-near-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            crate::audio_file::write_wav_mono(&dir.join("cow.wav"), &original, 44_100).unwrap();
            let decoded = References::decode(&dir, &["cow.wav".to_string()], RATE);
            std::fs::remove_dir_all(&dir).unwrap();
            decoded
        };
        assert!(failures.is_empty());

        // The same recording at half the rate, 9 dB down, 40 ms later.
        let mut copy = vec![0.0f32; (0.04 * RATE as f64) as usize];
        copy.extend(resample(&original, 44_100, RATE).iter().map(|&x| x * 0.35));
        let found = references.closest(&copy).expect("the lengths match");
        assert_eq!(found.reference, "cow.wav");
        assert!(found.correlation > 0.98, "{}", found.correlation);

        // Another recording of the same length is compared, and is not a copy.
        let other = recording(2, 3.0, RATE);
        let kept = references.closest(&other).expect("the lengths match");
        assert!(kept.correlation < 0.5, "{}", kept.correlation);

        // A recording of another length is not compared at all.
        assert!(references.closest(&recording(1, 4.0, RATE)).is_none());
    }

    #[test]
    fn lengths_match_within_the_tolerances() {
        let fp = Fingerprint::of(&vec![0.1; 10 * RATE as usize], RATE);
        assert!(fp.length_matches(10.19) && fp.length_matches(9.81));
        assert!(!fp.length_matches(10.21) && !fp.length_matches(9.79));
        let short = Fingerprint::of(&vec![0.1; RATE as usize], RATE);
        assert!(short.length_matches(1.09) && !short.length_matches(1.11));
    }

    #[test]
    fn band_edges_rise_and_stay_below_nyquist() {
        for rate in [8_000, 16_000, 22_050, 48_000] {
            let edges = band_edges(rate);
            assert_eq!(edges.len(), BANDS + 1);
            assert!(edges.windows(2).all(|w| w[0] < w[1]), "{edges:?}");
            assert!(*edges.last().unwrap() <= FRAME / 2 + 1, "{edges:?}");
        }
    }
}
