//! Worker and audio thread: the automation outputs, from hop features to MIDI CC.
//!
//! The automation outputs: eight slots that turn what Echoic hears into MIDI CC.
//!
//! The work is split by thread:
//! - the worker runs an [`OutputEngine`] once per hop ([`OutputEngine::on_hop`]): it derives the
//!   raw [`Features`] of the hop (principal axes, similarity to learned sounds, novelty,
//!   periodicity, period, loudness), maps each slot's source onto 0..1 with the fixed mapping of
//!   [`source`], and shapes it ([`slot`]: in-range, invert, out-range, rise/fall smoothing);
//! - the audio thread gets those eight 0..1 values (with the frame's `sample_pos`) and runs one
//!   [`CcEmitter`] per enabled slot, which sends a control change only when the value really
//!   changes ([`cc`]).
//!
//! Everything here is framework-free. After construction nothing on the per-hop paths
//! allocates; the exceptions are listed on the functions (a capture finishing frees the sound it
//! replaces; an embedding of an unexpected length resizes the novelty state once).

pub mod cc;
pub mod learned;
pub mod loudness;
pub mod novelty;
pub mod periodicity;
pub mod slot;
pub mod source;

#[cfg(test)]
pub(crate) mod test_util;

pub use crate::pca::{Pca, PcaError, MAX_AXES};
pub use cc::{BlockTiming, CcConfig, CcEmitter};
pub use learned::{LearnedSound, LearnedSounds};
pub use novelty::{Novelty, NoveltyConfig};
pub use periodicity::{Periodicity, PeriodicityConfig};
pub use slot::{SlotConfig, SlotShaper};
pub use source::{Features, Source, MAX_LEARNED};

use crate::frame::Frame;
/// The principal axes, for `super::pca::…` in the submodules.
use crate::pca;
use crate::worker::ListenSettings;

/// How many output slots there are.
pub const N_SLOTS: usize = 8;

/// The default embedding size (the default model's latent width).
pub const DEFAULT_EMBEDDING_DIM: usize = 250;

/// What an [`OutputEngine`] needs to know about the listening configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutputConfig {
    /// Seconds per hop: the smoothing, novelty and learning time constants and the periods are
    /// all counted in hops.
    pub hop_seconds: f64,
    /// Embedding length expected, so that the novelty and learning buffers are sized up front.
    pub embedding_dim: usize,
    /// Bands per ERB of the filterbank ([`loudness::band_overlap`]): turns summed band powers
    /// into the input's level.
    pub band_overlap: f32,
    /// Time constants of the novelty detector.
    pub novelty: NoveltyConfig,
    /// Window and lag range of the periodicity analysis.
    pub periodicity: PeriodicityConfig,
}

impl OutputConfig {
    /// The configuration for a listening setup and a model's embedding size. Allocation-free.
    pub fn from_settings(settings: &ListenSettings, embedding_dim: usize) -> Self {
        Self {
            hop_seconds: settings.hop_seconds,
            embedding_dim,
            band_overlap: loudness::band_overlap(
                settings.n_bands,
                settings.low_hz,
                settings.high_hz,
            ),
            novelty: NoveltyConfig::default(),
            periodicity: PeriodicityConfig::default(),
        }
    }
}

impl Default for OutputConfig {
    /// The default listening setup with a 250-dimensional embedding. Allocation-free.
    fn default() -> Self {
        Self::from_settings(&ListenSettings::default(), DEFAULT_EMBEDDING_DIM)
    }
}

/// The worker's side of the outputs: per-hop features and shaped slot values.
pub struct OutputEngine {
    /// The configuration it was built for.
    config: OutputConfig,
    /// The model's principal axes; `None` without a model or with a checkpoint (axes then read
    /// the corpus mean, 0.5, and similarity uses its PCA-free fallback).
    pca: Option<Pca>,
    /// The learned sounds and the capture in progress: part of the plugin state.
    learned: LearnedSounds,
    /// Set when a capture finishes, so the owner knows to publish the new saved state.
    learned_changed: bool,
    /// The learn target whose capture finished and has not been asked for yet, so that the owner
    /// can attach the frames it heard ([`LearnedSound::frames`]).
    finished_capture: Option<usize>,
    /// Novelty detector.
    novelty: Novelty,
    /// Summary autocorrelogram.
    periodicity: Periodicity,
    /// One shaper per slot.
    shapers: [SlotShaper; N_SLOTS],
    /// The latest raw features: features an absent embedding cannot update are held.
    features: Features,
    /// The latest shaped values.
    values: [f32; N_SLOTS],
}

impl OutputEngine {
    /// An engine with no model and nothing learned. Allocates every buffer (FFT plans included).
    pub fn new(config: OutputConfig) -> Self {
        let mut novelty = Novelty::new(config.novelty, config.hop_seconds, config.embedding_dim);
        novelty.set_reference_variance(0.0);
        let mut learned = LearnedSounds::new(config.hop_seconds);
        learned.set_embedding_dim(config.embedding_dim);
        Self {
            config,
            pca: None,
            learned,
            learned_changed: false,
            finished_capture: None,
            novelty,
            periodicity: Periodicity::new(config.periodicity, config.hop_seconds),
            shapers: [SlotShaper::new(); N_SLOTS],
            features: Features::default(),
            values: [0.0; N_SLOTS],
        }
    }

    /// The configuration. Allocation-free.
    pub fn config(&self) -> &OutputConfig {
        &self.config
    }

    /// Installs a model's principal axes (or none). An invalid PCA is refused and leaves none.
    /// Restarts the novelty statistics, which belong to the previous embedding space.
    /// Allocation-free (frees the previous PCA).
    pub fn set_pca(&mut self, pca: Option<Pca>) -> Result<(), PcaError> {
        let result = match &pca {
            Some(p) => p.validate(self.config.embedding_dim),
            None => Ok(()),
        };
        self.pca = if result.is_ok() { pca } else { None };
        self.novelty
            .set_reference_variance(self.pca.as_ref().map_or(0.0, Pca::total_variance));
        self.novelty.reset();
        self.features.axes = [0.0; MAX_AXES];
        result
    }

    /// The installed principal axes. Allocation-free.
    pub fn pca(&self) -> Option<&Pca> {
        self.pca.as_ref()
    }

    /// The learned sounds, for saving. Allocation-free.
    pub fn learned(&self) -> &LearnedSounds {
        &self.learned
    }

    /// Replaces the learned sounds (after loading state), cancelling any capture. Allocation-free
    /// (frees the previous ones).
    pub fn set_learned(&mut self, mut learned: LearnedSounds) {
        learned.set_hop_seconds(self.config.hop_seconds);
        learned.set_embedding_dim(self.config.embedding_dim);
        learned.cancel_learning();
        self.learned = learned;
    }

    /// Starts capturing learn target `target` over the next `seconds`. Allocates the capture's
    /// buffers (once, not per hop).
    pub fn start_learning(&mut self, target: usize, seconds: f32) {
        self.learned.start_learning(target, seconds);
    }

    /// Forgets learned sound `target`. Allocation-free (frees it).
    pub fn clear_learned(&mut self, target: usize) {
        self.learned.clear(target);
        self.learned_changed = true;
    }

    /// Whether the learned sounds changed (a capture finished, or one was cleared) since the last
    /// call: the owner then saves [`OutputEngine::learned`]. Allocation-free.
    pub fn take_learned_changed(&mut self) -> bool {
        std::mem::take(&mut self.learned_changed)
    }

    /// The learn target whose capture finished since the last call, if any. Allocation-free.
    pub fn take_finished_capture(&mut self) -> Option<usize> {
        self.finished_capture.take()
    }

    /// Changes the learned sounds in place (attach a capture's frames, put in the means another
    /// listener gives) and marks them changed for saving. Allocates only what `change` does.
    pub fn update_learned(&mut self, change: impl FnOnce(&mut LearnedSounds)) {
        change(&mut self.learned);
        self.learned_changed = true;
    }

    /// The latest raw features. Allocation-free.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The latest shaped slot values. Allocation-free.
    pub fn values(&self) -> [f32; N_SLOTS] {
        self.values
    }

    /// Forgets the running state (novelty, periodicity, smoothing, features) for a restart;
    /// keeps the model and the learned sounds. Allocation-free.
    pub fn reset(&mut self) {
        self.novelty.reset();
        self.periodicity.reset();
        self.shapers = [SlotShaper::new(); N_SLOTS];
        self.features = Features::default();
        self.values = [0.0; N_SLOTS];
    }

    /// Processes one hop: the frame (loudness, periodicity) and, when the listener produced one,
    /// the embedding (axes, novelty, learning, similarity); then shapes every slot's source.
    /// Returns the eight shaped values, 0..1, slot order; disabled slots are computed too, so the
    /// editor can show them, and the audio thread simply does not send them. Invalid frames
    /// leave the frame features as they were; a missing or non-finite embedding leaves the
    /// embedding features as they were.
    ///
    /// Allocation-free, except: the hop that finishes a capture frees the sound it replaces, and
    /// an embedding of a length other than [`OutputConfig::embedding_dim`] resizes the novelty
    /// state once (allocating if longer than any seen before).
    pub fn on_hop(
        &mut self,
        frame: &Frame,
        embedding: Option<&[f32]>,
        slots: &[SlotConfig; N_SLOTS],
    ) -> [f32; N_SLOTS] {
        if frame.valid {
            self.features.loudness_db =
                loudness::loudness_db(frame.energies(), self.config.band_overlap);
            let (strength, period) = self.periodicity.push(frame);
            self.features.periodicity = strength;
            self.features.period_seconds = period;
        }
        if let Some(e) = embedding.filter(|e| !e.is_empty() && e.iter().all(|v| v.is_finite())) {
            match &self.pca {
                Some(p) if p.dim() == e.len() => {
                    p.whiten(e, &mut self.features.axes);
                }
                _ => self.features.axes = [0.0; MAX_AXES],
            }
            self.features.novelty = self.novelty.update(e);
            if let Some(target) = self.learned.observe(e) {
                self.learned_changed = true;
                self.finished_capture = Some(target);
            }
            self.features.similarity = self.learned.similarity(e, self.pca.as_ref());
        }
        for ((value, shaper), slot) in self.values.iter_mut().zip(&mut self.shapers).zip(slots) {
            *value = shaper.step(
                self.features.normalised(slot.source),
                slot,
                self.config.hop_seconds,
            );
        }
        self.values
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::Rng;
    use super::*;

    fn frame(seq: u64, level_db: f32) -> Frame {
        let mut f = Frame::silent(100);
        f.seq = seq;
        f.bands[..100].fill(level_db);
        f
    }

    fn pca(dim: usize) -> Pca {
        Pca {
            mean: vec![0.0; dim],
            axes: (0..4)
                .map(|i| (0..dim).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
                .collect(),
            explained_variance: vec![4.0, 1.0, 1.0, 1.0],
        }
    }

    #[test]
    fn default_slots_follow_the_first_three_axes() {
        let mut engine = OutputEngine::new(OutputConfig {
            embedding_dim: 8,
            ..OutputConfig::default()
        });
        engine.set_pca(Some(pca(8))).unwrap();
        let slots = SlotConfig::defaults();
        // z = +1.5 on axis 0 (2 · 1.5 / √4), −3 on axis 1, 0 on axis 2.
        let e = [3.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let v = engine.on_hop(&frame(0, -40.0), Some(&e), &slots);
        assert!((v[0] - 0.75).abs() < 1e-6, "{v:?}");
        assert!(v[1].abs() < 1e-6);
        assert!((v[2] - 0.5).abs() < 1e-6);
        assert_eq!(engine.features().axes[..4], [1.5, -3.0, 0.0, 0.0]);
        // Without an embedding the axes hold.
        let held = engine.on_hop(&frame(1, -40.0), None, &slots);
        assert_eq!(held[..3], v[..3]);
        // A bad PCA is refused and leaves none.
        assert!(engine
            .set_pca(Some(Pca {
                explained_variance: vec![0.0; 4],
                ..pca(8)
            }))
            .is_err());
        assert!(engine.pca().is_none());
    }

    #[test]
    fn loudness_novelty_and_learning_flow_to_the_slots() {
        let config = OutputConfig {
            embedding_dim: 16,
            ..OutputConfig::default()
        };
        let mut engine = OutputEngine::new(config);
        let mut slots = SlotConfig::defaults();
        slots[0].source = Source::Loudness;
        slots[1].source = Source::Novelty;
        slots[2].source = Source::Similarity(0);
        for s in &mut slots {
            s.rise_ms = 0.0;
            s.fall_ms = 0.0;
        }
        let mut rng = Rng::new(9);
        let a: Vec<f32> = (0..16).map(|_| rng.gaussian()).collect();
        let b: Vec<f32> = (0..16).map(|_| rng.gaussian()).collect();
        let noisy = |rng: &mut Rng, c: &[f32]| {
            c.iter()
                .map(|v| v + 0.05 * rng.gaussian())
                .collect::<Vec<f32>>()
        };
        // Learn sound A over 1 s.
        engine.start_learning(0, 1.0);
        for t in 0..200 {
            engine.on_hop(&frame(t, -30.0), Some(&noisy(&mut rng, &a)), &slots);
        }
        assert!(engine.take_learned_changed());
        assert!(!engine.take_learned_changed());
        assert_eq!(engine.learned().sounds[0].as_ref().unwrap().count, 100);
        let v = engine.values();
        // 100 bands at −30 dB: 10·log10(100 / 3.19) − 30 = −15 dB → (80 − 15) / 80.
        assert!((v[0] - 65.0 / 80.0).abs() < 0.01, "loudness {}", v[0]);
        assert!(v[1] < 0.2, "steady: novelty {}", v[1]);
        assert!(v[2] > 0.9, "similarity while hearing A {}", v[2]);
        let v = engine.on_hop(&frame(200, -30.0), Some(&noisy(&mut rng, &b)), &slots);
        assert!(v[1] > 0.9, "novelty on the change {}", v[1]);
        assert!(v[2] < 0.2, "similarity on hearing B {}", v[2]);
        // The learned state survives a save and load into a fresh engine.
        let saved = engine.learned().to_json();
        let mut fresh = OutputEngine::new(config);
        fresh.set_learned(LearnedSounds::from_json(&saved).unwrap());
        assert_eq!(fresh.learned().to_json(), saved);
        let s = fresh.on_hop(&frame(0, -30.0), Some(&a), &slots)[2];
        assert!(s > 0.9, "{s}");
    }

    #[test]
    fn the_engine_can_move_to_the_worker_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<OutputEngine>();
        assert_send::<CcEmitter>();
    }

    #[test]
    fn invalid_frames_and_embeddings_hold_the_features() {
        let mut engine = OutputEngine::new(OutputConfig {
            embedding_dim: 4,
            ..OutputConfig::default()
        });
        let slots = SlotConfig::defaults();
        engine.on_hop(&frame(0, -20.0), Some(&[0.0; 4]), &slots);
        let before = *engine.features();
        let mut bad = frame(1, 0.0);
        bad.valid = false;
        engine.on_hop(&bad, Some(&[f32::NAN; 4]), &slots);
        assert_eq!(*engine.features(), before);
    }
}
