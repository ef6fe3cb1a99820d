//! Offline: decoding, resampling and writing audio files.
//!
//! Offline audio file input and output for the command-line tools: decoding to mono, resampling
//! and writing mono wav files.
//!
//! This is offline code. Every function here allocates and none may be called from the audio
//! thread.
//!
//! - Decoding goes through `symphonia` (pure Rust): wav (PCM and ADPCM), AIFF, FLAC, Ogg Vorbis
//!   and MP3.
//! - Resampling uses `rubato`'s synchronous FFT resampler (`rubato::Fft`), a band-limited
//!   converter for fixed rate pairs that trims its own delay, so the output lines up with the
//!   input.
//! - Writing uses `hound` and stores 16-bit PCM: half the size of f32, about 96 dB of dynamic
//!   range, which is plenty for training audio, and readable by every tool.

use std::fs::File;
use std::path::{Path, PathBuf};

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

/// File extensions [`decode_mono`] reads, lower case: the one list the corpus builder, training,
/// `echoic embed` and `echoic eval` collect audio files by.
pub const AUDIO_EXTENSIONS: &[&str] = &["wav", "flac", "ogg", "oga", "mp3", "aif", "aiff"];

/// Whether `path` names a file the tools decode, by its extension (any case). Allocation-free.
///
/// ```
/// use echoic_tools::audio_file::is_audio_file;
/// assert!(is_audio_file(std::path::Path::new("kit/Snare.WAV")));
/// assert!(!is_audio_file(std::path::Path::new("kit/README")));
/// ```
pub fn is_audio_file(path: &Path) -> bool {
    has_extension(path, AUDIO_EXTENSIONS)
}

/// Whether `path`'s extension is one of `extensions` (lower case), in any case. Allocation-free.
pub fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// A decoded audio file, mixed down to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// The samples, nominally in -1..1: the mean of all channels of each frame, so that a mono
    /// signal copied to both channels of a stereo file decodes to itself.
    pub samples: Vec<f32>,
    /// The sample rate of `samples` in Hz, as stored in the file; every consumer needs it to
    /// resample or to convert sample counts to seconds.
    pub sample_rate: u32,
}

impl DecodedAudio {
    /// The length in seconds. Does not allocate.
    pub fn seconds(&self) -> f64 {
        if self.sample_rate == 0 {
            0.0
        } else {
            self.samples.len() as f64 / self.sample_rate as f64
        }
    }
}

/// Why an audio file could not be read or written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioFileError {
    /// The file could not be opened or created.
    #[error("cannot open {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The container or the codec could not be read.
    #[error("cannot decode {}: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// symphonia's error.
        #[source]
        source: SymphoniaError,
    },
    /// The file holds no audio track, or its audio track decoded to nothing.
    #[error("no audio in {}", path.display())]
    NoAudio {
        /// The file.
        path: PathBuf,
    },
    /// The wav file's header could not be read.
    #[error("cannot read wav header of {}: {source}", path.display())]
    WavHeader {
        /// The file.
        path: PathBuf,
        /// hound's error.
        #[source]
        source: hound::Error,
    },
    /// The wav file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// hound's error.
        #[source]
        source: hound::Error,
    },
}

/// Decodes an audio file (wav, AIFF, FLAC, Ogg Vorbis or MP3) and mixes it down to mono, the
/// mean of its channels, at the file's own sample rate.
///
/// Corrupt packets in the middle of a stream are skipped; a stream that breaks off early
/// keeps what was decoded up to that point. If the sample rate changes within a chained stream,
/// later sections are kept as they are, at the first section's rate. A wav file that wraps an
/// Ogg Vorbis stream (the old ACM "Vorbis in RIFF" format tags 0x674f..0x6771, which some
/// sample packs ship under a `.ogg` name) is decoded from the Ogg stream inside it.
///
/// Allocates: the whole decoded signal, and the decoder's buffers.
pub fn decode_mono(path: &Path) -> Result<DecodedAudio, AudioFileError> {
    let file = File::open(path).map_err(|source| AudioFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match decode_source(path, Box::new(file), ext.as_deref()) {
        Err(err @ AudioFileError::Decode { .. }) => match ogg_inside_riff(path) {
            Some(ogg) => decode_source(path, Box::new(std::io::Cursor::new(ogg)), Some("ogg"))
                .map_err(|_| err),
            None => Err(err),
        },
        other => other,
    }
}

/// The Ogg stream inside a RIFF wave file, if the file is one of those.
fn ogg_inside_riff(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let head = &bytes[..bytes.len().min(4096)];
    let start = head.windows(4).position(|w| w == b"OggS")?;
    Some(bytes[start..].to_vec())
}

fn decode_source(
    path: &Path,
    source: Box<dyn symphonia::core::io::MediaSource>,
    extension: Option<&str>,
) -> Result<DecodedAudio, AudioFileError> {
    let decode_err = |source| AudioFileError::Decode {
        path: path.to_path_buf(),
        source,
    };
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(decode_err)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioFileError::NoAudio {
            path: path.to_path_buf(),
        })?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| AudioFileError::NoAudio {
            path: path.to_path_buf(),
        })?
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(decode_err)?;

    let mut samples: Vec<f32> = Vec::new();
    let mut sample_rate = params.sample_rate.unwrap_or(0);
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            // A stream that ends without its proper trailer: keep what was decoded.
            Err(SymphoniaError::IoError(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof && !samples.is_empty() =>
            {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(decode_err(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                let spec = buf.spec();
                let channels = spec.channels().count().max(1);
                if sample_rate == 0 {
                    sample_rate = spec.rate();
                }
                buf.copy_to_vec_interleaved(&mut interleaved);
                let scale = 1.0 / channels as f32;
                samples.extend(
                    interleaved
                        .chunks_exact(channels)
                        .map(|frame| frame.iter().sum::<f32>() * scale),
                );
            }
            // A corrupt packet: skip it, as players do.
            Err(SymphoniaError::DecodeError(_)) => continue,
            Err(SymphoniaError::IoError(_)) if !samples.is_empty() => continue,
            Err(e) => return Err(decode_err(e)),
        }
    }
    if samples.is_empty() || sample_rate == 0 {
        return Err(AudioFileError::NoAudio {
            path: path.to_path_buf(),
        });
    }
    Ok(DecodedAudio {
        samples,
        sample_rate,
    })
}

/// Decodes an audio file to mono (see [`decode_mono`]) and resamples it to `rate` Hz (see
/// [`resample`]).
///
/// Allocates: the decoded signal and the resampled copy.
pub fn decode_mono_at(path: &Path, rate: u32) -> Result<DecodedAudio, AudioFileError> {
    let decoded = decode_mono(path)?;
    Ok(DecodedAudio {
        samples: resample(&decoded.samples, decoded.sample_rate, rate),
        sample_rate: rate,
    })
}

/// Resamples a mono signal from `from` Hz to `to` Hz with `rubato`'s FFT resampler (band-limited
/// sinc filter, Blackman-Harris window), delay-compensated so that the output lines up with the
/// input and has `round(len * to / from)` samples, give or take one.
///
/// Returns a copy when the rates are equal and an empty vector for an empty input.
///
/// Allocates: the output and the resampler's FFT plans and buffers.
///
/// # Panics
/// If either rate is zero.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    assert!(
        from > 0 && to > 0,
        "resample: sample rates must be positive ({from} -> {to})"
    );
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Both)
        .expect("rubato accepts any pair of positive sample rates");
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .expect("a mono slice is a valid one-channel buffer");
    resampler
        .process_all(&input, samples.len(), None)
        .expect("process_all sizes its own output buffer")
        .take_data()
}

/// Writes a mono wav file of 16-bit PCM at `rate` Hz. Samples are clamped to -1..1 and rounded
/// to the nearest step (no dither).
///
/// Allocates: the writer's buffer.
pub fn write_wav_mono(path: &Path, samples: &[f32], rate: u32) -> Result<(), AudioFileError> {
    let write_err = |source| AudioFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(write_err)?;
    {
        let mut w = writer.get_i16_writer(samples.len() as u32);
        for &s in samples {
            let s = if s.is_finite() {
                s.clamp(-1.0, 1.0)
            } else {
                0.0
            };
            w.write_sample((s * i16::MAX as f32).round() as i16);
        }
        w.flush().map_err(write_err)?;
    }
    writer.finalize().map_err(write_err)
}

/// Reads the length in seconds of a wav file from its header, without decoding it.
///
/// Allocates: the reader's buffer.
pub fn wav_seconds(path: &Path) -> Result<f64, AudioFileError> {
    let reader = hound::WavReader::open(path).map_err(|source| AudioFileError::WavHeader {
        path: path.to_path_buf(),
        source,
    })?;
    let spec = reader.spec();
    Ok(reader.duration() as f64 / spec.sample_rate.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("echoic-audio-file-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sine(freq: f32, rate: u32, seconds: f32, amp: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64).sqrt()
    }

    /// Frequency from the rising zero crossings, linearly interpolated.
    fn zero_crossing_freq(x: &[f32], rate: u32) -> f64 {
        let mut crossings = Vec::new();
        for i in 1..x.len() {
            if x[i - 1] < 0.0 && x[i] >= 0.0 {
                let frac = x[i - 1] as f64 / (x[i - 1] as f64 - x[i] as f64);
                crossings.push(i as f64 - 1.0 + frac);
            }
        }
        let periods = (crossings.len() - 1) as f64;
        rate as f64 * periods / (crossings[crossings.len() - 1] - crossings[0])
    }

    #[test]
    fn tone_round_trips_through_wav() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("tone.wav");
        let tone = sine(440.0, 22050, 1.0, 0.5);
        write_wav_mono(&path, &tone, 22050).unwrap();
        let decoded = decode_mono(&path).unwrap();
        assert_eq!(decoded.sample_rate, 22050);
        assert_eq!(decoded.samples.len(), tone.len());
        let max_err = tone
            .iter()
            .zip(&decoded.samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_err < 1.0 / 16384.0, "max error {max_err}");
        assert!((wav_seconds(&path).unwrap() - 1.0).abs() < 1e-9);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stereo_is_mixed_to_mono() {
        let dir = temp_dir("stereo");
        let path = dir.join("stereo.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for _ in 0..100 {
            w.write_sample(0.5f32).unwrap();
            w.write_sample(-0.25f32).unwrap();
        }
        w.finalize().unwrap();
        let decoded = decode_mono(&path).unwrap();
        assert_eq!(decoded.samples.len(), 100);
        assert!(decoded.samples.iter().all(|&s| (s - 0.125).abs() < 1e-6));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn resampling_keeps_frequency_and_level() {
        for &(from, to) in &[
            (44100, 22050),
            (16000, 22050),
            (48000, 22050),
            (22050, 44100),
        ] {
            let freq = 1000.0;
            let x = sine(freq, from, 2.0, 0.5);
            let y = resample(&x, from, to);
            let expected_len = x.len() as f64 * to as f64 / from as f64;
            assert!(
                (y.len() as f64 - expected_len).abs() <= 2.0,
                "{from}->{to}: {} samples, expected {expected_len}",
                y.len()
            );
            // Measure away from the edges, where the filter sees the clip's ends.
            let core = &y[y.len() / 10..y.len() * 9 / 10];
            let f = zero_crossing_freq(core, to);
            assert!((f - freq as f64).abs() < 0.5, "{from}->{to}: {f} Hz");
            let db = 20.0 * (rms(core) / rms(&x)).log10();
            assert!(db.abs() < 0.2, "{from}->{to}: level changed by {db} dB");
        }
    }

    #[test]
    fn resampling_equal_rates_copies() {
        let x = sine(100.0, 8000, 0.1, 0.3);
        assert_eq!(resample(&x, 8000, 8000), x);
        assert!(resample(&[], 8000, 16000).is_empty());
    }

    #[test]
    fn corrupt_file_error_names_the_file() {
        let dir = temp_dir("corrupt");
        let path = dir.join("broken-file.ogg");
        std::fs::write(
            &path,
            b"OggS this is not really an ogg vorbis stream at all",
        )
        .unwrap();
        let err = decode_mono(&path).unwrap_err();
        assert!(err.to_string().contains("broken-file.ogg"), "{err}");

        let missing = dir.join("missing.wav");
        let err = decode_mono(&missing).unwrap_err();
        assert!(err.to_string().contains("missing.wav"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
