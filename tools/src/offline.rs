//! Offline: the plugin's pipeline over a whole recording.
//!
//! The live pipeline run over whole recordings, for the command-line tools and training: the same
//! downmix, cochlea, ring, memory and dilated buffers the plugin runs, driven block by block.

use echoic_core::cochlea::Cochlea;
use echoic_core::frame::Frame;
use echoic_core::pipeline::AudioFront;
use echoic_core::ring::frame_ring;
use echoic_core::worker::{BufferSink, ListenSettings, SettingsError, Worker, WorkerStatus};
use std::sync::Arc;

/// Samples fed per block: what a host might send, and few enough frames per block that the ring
/// never overflows.
const BLOCK: usize = 4096;

/// Everything the pipeline produced for one recording.
#[derive(Clone, Debug, Default)]
pub struct Analysis {
    /// Bands per frame.
    pub n_bands: usize,
    /// Steps per dilated buffer.
    pub steps: usize,
    /// Frame energies in dB, `frames × n_bands`.
    pub frames: Vec<f32>,
    /// Dilated buffers, one per frame, `frames × steps × n_bands`, oldest step first.
    pub buffers: Vec<f32>,
    /// Per frame: the memory was still warming up when its buffer was built.
    pub warming_up: Vec<bool>,
    /// Per frame: the cochlea marked it valid.
    pub valid: Vec<bool>,
}

impl Analysis {
    /// Number of frames.
    pub fn len(&self) -> usize {
        self.valid.len()
    }

    /// Whether the recording was shorter than one hop.
    pub fn is_empty(&self) -> bool {
        self.valid.is_empty()
    }

    /// The dilated buffer of frame `i`.
    pub fn buffer(&self, i: usize) -> &[f32] {
        let size = self.steps * self.n_bands;
        &self.buffers[i * size..(i + 1) * size]
    }

    /// Frames that are valid and have a full memory behind them: the ones to learn from and to
    /// summarise a recording with.
    pub fn usable(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len()).filter(|&i| self.valid[i] && !self.warming_up[i])
    }
}

/// Collects what the worker hands out.
struct Collector {
    /// The analysis being built.
    analysis: Analysis,
    /// Whether to keep the dilated buffers (they are `steps` times larger than the frames).
    keep_buffers: bool,
}

impl BufferSink for Collector {
    fn on_buffer(&mut self, frame: &Frame, buffer: &[f32], warming_up: bool) {
        self.analysis.frames.extend_from_slice(frame.energies());
        if self.keep_buffers {
            self.analysis.buffers.extend_from_slice(buffer);
        }
        self.analysis.warming_up.push(warming_up);
        self.analysis.valid.push(frame.valid);
    }
}

/// Runs mono `samples` at `sample_rate` through the live pipeline. With `keep_buffers` false only
/// the frames are kept. Allocates.
pub fn analyse(
    samples: &[f32],
    sample_rate: f64,
    settings: &ListenSettings,
    keep_buffers: bool,
) -> Result<Analysis, SettingsError> {
    settings.spec.validate()?;
    let cochlea: Cochlea = Cochlea::new(settings.cochlea_config(sample_rate))?;
    let (sender, receiver) = frame_ring(BLOCK / cochlea.hop_samples().max(1) + 2);
    let (mut front, swap) = AudioFront::new(cochlea, sender);
    let collector = Collector {
        analysis: Analysis {
            n_bands: settings.n_bands,
            steps: settings.spec.steps,
            ..Analysis::default()
        },
        keep_buffers,
    };
    let status = Arc::new(WorkerStatus::default());
    let mut worker = Worker::new(receiver, swap, sample_rate, *settings, collector, status);
    for block in samples.chunks(BLOCK) {
        front.process(&[block]);
        worker.drain();
    }
    let dropped = worker.dropped();
    debug_assert_eq!(dropped, 0, "the offline ring never overflows");
    Ok(worker.into_sink().analysis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_analysis_equals_the_cochlea_frame_for_frame() {
        let samples: Vec<f32> = (0..48_000 * 2)
            .map(|i| (i as f32).powi(2).mul_add(1e-7, 0.0).sin() * 0.2)
            .collect();
        let settings = ListenSettings::default();
        let analysis = analyse(&samples, 48_000.0, &settings, true).unwrap();
        let frames = Cochlea::new(settings.cochlea_config(48_000.0))
            .unwrap()
            .process_to_vec(&samples);
        assert_eq!(analysis.len(), frames.len());
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(&analysis.frames[i * 100..(i + 1) * 100], frame.energies());
        }
        assert_eq!(analysis.buffers.len(), frames.len() * 8 * 100);
        // The last buffer's newest step is the last frame.
        let last = analysis.buffer(analysis.len() - 1);
        assert_eq!(&last[7 * 100..], frames.last().unwrap().energies());
        assert_eq!(analysis.usable().count(), frames.len() - 127);
    }
}
