//! Runs on the worker: learned sounds and the similarity to them.
//!
//! Learned sounds: mean embeddings the user captured, and how similar the present is to each.
//!
//! # Learning
//! [`LearnedSounds::start_learning`] arms a target; every following embedding passed to
//! [`LearnedSounds::observe`] is summed (in f64, in order, so the result is reproducible) until
//! `ceil(seconds / hop)` hops have been seen; the mean then replaces the target's sound.
//!
//! # Similarity
//! With the model's PCA (`k` axes), both the current embedding `e` and the learned mean `m` are
//! centred on the corpus mean, projected and partially whitened
//! ([`Pca::whiten_partially`] at strength `γ` = [`SIMILARITY_WHITENING`]):
//! `w_i = c · a_i·(e − μ) / λ_i^(γ/2)`, with `c` chosen so that `Σ c²·λ_i^(1−γ) = k`. For two
//! independent embeddings drawn from the corpus `E‖w_e − w_m‖² = 2k` whatever the model, as in
//! fully whitened coordinates. The normalised squared distance
//!
//! ```text
//! δ² = ‖w_e − w_m‖² / (2k)          (0: the learned sound; ≈ 1: an unrelated sound)
//! similarity = 1 / (1 + (δ² / δ²½)^p),   δ²½ = 1/4,  p = 3
//! ```
//!
//! is therefore calibrated by the model's own spread: similarity is 1 at the learned mean,
//! 1/2 at half the typical inter-sound distance (`δ = 1/2`), and `1/65 ≈ 0.015` at the typical
//! distance between unrelated sounds. The flat top (≥ 0.94 while `δ² ≤ 0.1`) lets the learned
//! sound's own natural variation still read close to 1; the steep fall keeps unrelated sounds
//! near 0. A Gaussian kernel cannot do both: at the width that keeps unrelated sounds near 0 it
//! already drops a varying learned sound to ~0.7.
//!
//! Why partial whitening: full whitening (`γ = 1`) gives each of the `k` axes the same weight,
//! however little of the embedding's variance it holds, and a listener's weakest axes can be
//! hundreds of times weaker than its first (`echoic-kinds`: 1.530 against 0.0014). Raw principal
//! distances (`γ = 0`) let the first axis decide alone. On a labelled sample of the training
//! corpus (kinds read from the paths), `γ` of 1/2 and 3/4 told sound kinds apart better than
//! full whitening for each of the four listeners it was chosen on, and tied with each other; 3/4
//! is the smaller step from the full whitening the listeners were trained with. On the evaluation
//! set it raised each of those listeners' learned-sound ROC-AUC (see the model card's "How
//! learned sounds compare").
//!
//! Why not the cosine of whitened vectors: its value for unrelated sounds is spread
//! `±1/√k` (±0.35 for 8 axes) rather than sitting near 0, and it ignores how far from typical
//! the sound is, so a faint, nearly average sound matches anything in its direction.
//!
//! Without a PCA (a checkpoint model), the same curve is applied to the scale-free
//! `δ² = ‖e − m‖² / (‖e‖² + ‖m‖²)` (0 when equal, 1 when orthogonal), a cruder fallback.
//!
//! # Saved state
//! [`LearnedSounds`] is part of the plugin state. It serialises with serde in a fixed field
//! order with f32 values written in their shortest exact form, so serialising, loading and
//! serialising again gives the same bytes.

use serde::{Deserialize, Serialize};

use super::pca::{Pca, MAX_AXES};
use super::source::MAX_LEARNED;

/// The saved-state format version this build writes.
pub const LEARNED_VERSION: u32 = 1;
/// Default length of a learning capture, seconds.
pub const DEFAULT_LEARN_SECONDS: f32 = 2.0;
/// `δ²` at which similarity is ½: half the typical distance between unrelated sounds.
pub const SIMILARITY_HALF_DISTANCE2: f32 = 0.25;
/// Steepness of the similarity curve around `δ²½`.
pub const SIMILARITY_POWER: i32 = 3;
/// How fully the similarity whitens the principal axes (`γ` in the module documentation): 1
/// weighs every axis alike, 0 by its variance.
pub const SIMILARITY_WHITENING: f32 = 0.75;
/// Hop assumed until [`LearnedSounds::set_hop_seconds`] says otherwise (Echoic's default).
pub const DEFAULT_HOP_SECONDS: f64 = 0.010;

/// One learned sound.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnedSound {
    /// What the user calls it, shown in the editor ("Sound 1" until renamed).
    pub name: String,
    /// When learning finished, seconds since the Unix epoch: tells the user which capture this
    /// is, and a sound learned under another model can be recognised as stale.
    pub learned_unix: u64,
    /// How many embeddings were averaged: with the hop, how long the capture really was.
    pub count: u32,
    /// The mean embedding: what similarity compares against. Its length is the model's
    /// embedding size; a different model makes the sound unusable (similarity 0).
    pub mean: Vec<f32>,
    /// The cochlear frames the capture heard, so that another listener (an adapted one, or the
    /// one *Revert* returns to) can embed them again and the sound keeps meaning what the user
    /// taught. `None` for sounds saved before frames were kept, or learned with too short a
    /// history. Absent from the saved state when `None`, so older states load unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<CapturedFrames>,
}

/// The cochlear frames behind a learned sound: the memory's look-back before the capture
/// ([`DilatedSpec::memory_frames`](crate::dilated::DilatedSpec::memory_frames) − 1 frames), then
/// one frame per hop of the capture, in dB, oldest first.
///
/// Kept at half precision: values are rounded to f16 when captured (below 0.03 dB at any level
/// Echoic hears, far under what a band's energy varies by hop to hop), so the saved state holds
/// exactly what is in memory and serialising it again gives the same bytes. The default 2 s
/// capture at 100 bands and 10 ms hops keeps 327 frames: 131 KB in memory (f32), 65 KB as f16
/// and 87 KB of base64 text in the saved state; the longest, 10 s, keeps 1,127 frames: 451 KB,
/// 225 KB and 300 KB.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedFrames {
    /// Bands per frame: a listener with another band count cannot embed them.
    pub n_bands: usize,
    /// `frames × n_bands` energies in dB, each exactly representable as an f16.
    pub values: Vec<f32>,
}

impl CapturedFrames {
    /// Frames of `n_bands` energies (`values.len()` a multiple of it), rounded to f16.
    /// Allocates the copy.
    pub fn new(n_bands: usize, values: &[f32]) -> Self {
        Self {
            n_bands,
            values: values
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect(),
        }
    }

    /// Frames held. Allocation-free.
    pub fn frames(&self) -> usize {
        self.values.len().checked_div(self.n_bands).unwrap_or(0)
    }
}

/// The saved form of [`CapturedFrames`]: the band count and base64 of the little-endian f16
/// values.
#[derive(Serialize, Deserialize)]
struct SavedFrames {
    /// [`CapturedFrames::n_bands`].
    n_bands: usize,
    /// Base64 (standard alphabet) of the values as little-endian f16.
    f16: String,
}

impl Serialize for CapturedFrames {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let bytes: Vec<u8> = self
            .values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect();
        SavedFrames {
            n_bands: self.n_bands,
            f16: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CapturedFrames {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine;
        use serde::de::Error;
        let saved = SavedFrames::deserialize(deserializer)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(saved.f16.as_bytes())
            .map_err(D::Error::custom)?;
        if bytes.len() % 2 != 0 || saved.n_bands == 0 || (bytes.len() / 2) % saved.n_bands != 0 {
            return Err(D::Error::custom(format!(
                "{} bytes of frames are not whole frames of {} bands",
                bytes.len(),
                saved.n_bands
            )));
        }
        let values: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(D::Error::custom(
                "a captured frame holds a non-finite value",
            ));
        }
        Ok(Self {
            n_bands: saved.n_bands,
            values,
        })
    }
}

/// A capture in progress. Never saved: a reload cancels learning.
#[derive(Clone, Debug, PartialEq)]
struct Session {
    /// The target being learned.
    target: usize,
    /// Hops still to observe.
    hops_left: u32,
    /// Hops asked for: the progress shown is `1 − hops_left / hops_total`.
    hops_total: u32,
    /// Running sum in f64 so that long captures lose no precision and the mean is reproducible.
    sum: Vec<f64>,
    /// Embeddings summed.
    count: u32,
    /// The sound that will replace the target, prepared (name and capacity) when learning starts
    /// so that observing never allocates.
    pending: LearnedSound,
}

/// The learned sounds of one plugin instance, and the capture in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnedSounds {
    /// Saved-state format version ([`LEARNED_VERSION`]), so later builds can migrate.
    pub version: u32,
    /// One entry per learn target; `None` where nothing is learned.
    pub sounds: [Option<LearnedSound>; MAX_LEARNED],
    /// The capture in progress, if any.
    #[serde(skip)]
    session: Option<Session>,
    /// Seconds per hop: converts a capture length into a hop count. Not saved: it belongs to the
    /// listening configuration, which the owner sets again after loading.
    #[serde(skip, default = "default_hop")]
    hop_seconds: f64,
    /// Expected embedding length, so that starting a capture sizes its buffers and observing
    /// never has to. Not saved, for the same reason as the hop.
    #[serde(skip)]
    dim_hint: usize,
}

fn default_hop() -> f64 {
    DEFAULT_HOP_SECONDS
}

impl Default for LearnedSounds {
    /// Nothing learned, 10 ms hop. Allocation-free.
    fn default() -> Self {
        Self {
            version: LEARNED_VERSION,
            sounds: Default::default(),
            session: None,
            hop_seconds: DEFAULT_HOP_SECONDS,
            dim_hint: 0,
        }
    }
}

/// Maps a normalised squared distance onto the similarity scale (module documentation).
/// Allocation-free.
pub fn similarity_from_distance2(delta2: f32) -> f32 {
    if delta2.is_nan() {
        return 0.0;
    }
    let r = (delta2.max(0.0) / SIMILARITY_HALF_DISTANCE2).powi(SIMILARITY_POWER);
    1.0 / (1.0 + r)
}

impl LearnedSounds {
    /// Nothing learned, with a hop of `hop_seconds`. Allocation-free.
    pub fn new(hop_seconds: f64) -> Self {
        let mut s = Self::default();
        s.set_hop_seconds(hop_seconds);
        s
    }

    /// Sets the hop the capture lengths are counted in (after loading saved state). Non-positive
    /// values are ignored. Allocation-free.
    pub fn set_hop_seconds(&mut self, hop_seconds: f64) {
        if hop_seconds > 0.0 && hop_seconds.is_finite() {
            self.hop_seconds = hop_seconds;
        }
    }

    /// Sets the embedding length captures are prepared for (the model's latent size), so that
    /// [`LearnedSounds::observe`] does not allocate. Allocation-free.
    pub fn set_embedding_dim(&mut self, dim: usize) {
        self.dim_hint = dim;
    }

    /// Arms `target` (0..[`MAX_LEARNED`]) to capture the mean embedding of the next `seconds` of
    /// input (at least one hop), replacing any capture in progress. Out-of-range targets are
    /// ignored. Allocates the accumulator and the new sound's name (not per hop).
    pub fn start_learning(&mut self, target: usize, seconds: f32) {
        if target >= MAX_LEARNED {
            return;
        }
        let hops = if seconds.is_finite() && seconds > 0.0 {
            ((seconds as f64 / self.hop_seconds).ceil() as u32).max(1)
        } else {
            1
        };
        let name = match &self.sounds[target] {
            Some(old) => old.name.clone(),
            None => format!("Sound {}", target + 1),
        };
        self.session = Some(Session {
            target,
            hops_left: hops,
            hops_total: hops,
            sum: vec![0.0; self.dim_hint],
            count: 0,
            pending: LearnedSound {
                name,
                learned_unix: 0,
                count: 0,
                mean: Vec::with_capacity(self.dim_hint),
                frames: None,
            },
        });
    }

    /// Cancels a capture in progress; the target keeps its previous sound. Allocation-free
    /// (frees the accumulator).
    pub fn cancel_learning(&mut self) {
        self.session = None;
    }

    /// The target being learned and the progress 0..1, if a capture is running.
    /// Allocation-free.
    pub fn learning(&self) -> Option<(usize, f32)> {
        self.session
            .as_ref()
            .map(|s| (s.target, 1.0 - s.hops_left as f32 / s.hops_total as f32))
    }

    /// Feeds one hop's embedding to the capture in progress (nothing happens otherwise). Returns
    /// the target whose learning finished on this hop. Embeddings with non-finite values, or of
    /// a different length than the first of the capture, are skipped but still count as time.
    /// Allocation-free when the embedding length is the one set by
    /// [`LearnedSounds::set_embedding_dim`] (otherwise the first hop of a capture resizes its
    /// buffers); the finishing hop frees the replaced sound and the accumulator.
    pub fn observe(&mut self, embedding: &[f32]) -> Option<usize> {
        let session = self.session.as_mut()?;
        if session.count == 0 && session.sum.len() != embedding.len() {
            session.sum.clear();
            session.sum.resize(embedding.len(), 0.0);
            session.pending.mean.clear();
            session.pending.mean.reserve_exact(embedding.len());
        }
        if embedding.len() == session.sum.len()
            && !embedding.is_empty()
            && embedding.iter().all(|v| v.is_finite())
        {
            for (s, &e) in session.sum.iter_mut().zip(embedding) {
                *s += e as f64;
            }
            session.count += 1;
        }
        session.hops_left = session.hops_left.saturating_sub(1);
        if session.hops_left > 0 {
            return None;
        }
        let mut session = self.session.take()?;
        if session.count == 0 {
            return None; // nothing usable was heard: keep the old sound
        }
        let n = session.count as f64;
        session
            .pending
            .mean
            .extend(session.sum.iter().map(|s| (s / n) as f32));
        session.pending.count = session.count;
        session.pending.learned_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sounds[session.target] = Some(session.pending);
        Some(session.target)
    }

    /// Forgets the sound of `target` (and cancels its capture if running). Allocation-free.
    pub fn clear(&mut self, target: usize) {
        if let Some(slot) = self.sounds.get_mut(target) {
            *slot = None;
        }
        if self.session.as_ref().is_some_and(|s| s.target == target) {
            self.session = None;
        }
    }

    /// Renames the sound of `target`, if one is learned. Allocates the name.
    pub fn rename(&mut self, target: usize, name: &str) {
        if let Some(Some(sound)) = self.sounds.get_mut(target) {
            sound.name = name.to_owned();
        }
    }

    /// Similarity of `embedding` to every learned sound, 0..1 (module documentation); 0 for
    /// targets with nothing learned or learned under a model of another embedding size.
    /// Allocation-free.
    pub fn similarity(&self, embedding: &[f32], pca: Option<&Pca>) -> [f32; MAX_LEARNED] {
        let mut out = [0.0; MAX_LEARNED];
        let usable_pca = pca.filter(|p| p.dim() == embedding.len() && p.n_axes() > 0);
        let mut w_e = [0.0f32; MAX_AXES];
        let k = usable_pca.map_or(0, |p| {
            p.whiten_partially(embedding, SIMILARITY_WHITENING, &mut w_e)
        });
        for (o, sound) in out.iter_mut().zip(&self.sounds) {
            let Some(sound) = sound else { continue };
            if sound.mean.len() != embedding.len() || embedding.is_empty() {
                continue;
            }
            let delta2 = match usable_pca {
                Some(p) => {
                    let mut w_m = [0.0f32; MAX_AXES];
                    p.whiten_partially(&sound.mean, SIMILARITY_WHITENING, &mut w_m);
                    let d2: f32 = w_e
                        .iter()
                        .zip(&w_m)
                        .take(k)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    d2 / (2 * k) as f32
                }
                None => {
                    let (mut d2, mut norms) = (0.0f64, 0.0f64);
                    for (&e, &m) in embedding.iter().zip(&sound.mean) {
                        d2 += ((e - m) as f64).powi(2);
                        norms += (e as f64).powi(2) + (m as f64).powi(2);
                    }
                    if norms > 0.0 {
                        (d2 / norms) as f32
                    } else {
                        0.0
                    }
                }
            };
            *o = similarity_from_distance2(delta2);
        }
        out
    }

    /// Serialises the saved state to JSON bytes (deterministic). Allocates.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("learned sounds always serialise: values are finite")
    }

    /// Loads saved state from JSON bytes; the hop is reset to the default until
    /// [`LearnedSounds::set_hop_seconds`]. Allocates.
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::test_util::Rng;

    /// A PCA over `dim` dims whose first 8 axes are the coordinate axes.
    fn pca(dim: usize) -> Pca {
        Pca {
            mean: vec![0.5; dim],
            axes: (0..MAX_AXES)
                .map(|i| (0..dim).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
                .collect(),
            explained_variance: vec![4.0, 3.0, 2.0, 1.5, 1.0, 1.0, 0.5, 0.5],
        }
    }

    /// A corpus-like embedding: whitened coordinates drawn N(0, 1) on the PCA axes.
    fn draw(rng: &mut Rng, pca: &Pca) -> Vec<f32> {
        let mut e = pca.mean.clone();
        for (axis, var) in pca.axes.iter().zip(&pca.explained_variance) {
            let z = rng.gaussian() * var.sqrt();
            for (v, a) in e.iter_mut().zip(axis) {
                *v += z * a;
            }
        }
        e
    }

    /// `e` plus the sound's own variation: whitened noise of standard deviation `spread`.
    fn vary(rng: &mut Rng, pca: &Pca, e: &[f32], spread: f32) -> Vec<f32> {
        let mut out = e.to_vec();
        for (i, var) in pca.explained_variance.iter().enumerate() {
            out[i] += spread * var.sqrt() * rng.gaussian();
        }
        out
    }

    #[test]
    fn learning_takes_the_mean_over_n_seconds() {
        let mut learned = LearnedSounds::new(0.01);
        learned.start_learning(1, 0.5); // 50 hops
        for i in 0..49 {
            assert_eq!(learned.observe(&[i as f32, 1.0]), None);
            assert_eq!(learned.learning().unwrap().0, 1);
        }
        assert!(learned.sounds[1].is_none(), "not before N seconds of hops");
        assert_eq!(learned.observe(&[49.0, 1.0]), Some(1));
        assert_eq!(learned.learning(), None);
        let sound = learned.sounds[1].as_ref().unwrap();
        assert_eq!(sound.count, 50);
        assert_eq!(sound.mean, vec![24.5, 1.0]);
        assert_eq!(sound.name, "Sound 2");
        assert!(sound.learned_unix > 0);
        // Observing without a capture does nothing; clear forgets.
        assert_eq!(learned.observe(&[0.0, 0.0]), None);
        learned.clear(1);
        assert!(learned.sounds[1].is_none());
        // The default capture is 2 s: 200 hops.
        learned.start_learning(0, DEFAULT_LEARN_SECONDS);
        assert!((0..199).all(|_| learned.observe(&[1.0]).is_none()));
        assert_eq!(learned.observe(&[1.0]), Some(0));
    }

    #[test]
    fn similarity_is_near_1_for_the_learned_sound_and_low_for_unrelated_ones() {
        let mut rng = Rng::new(7);
        let pca = pca(32);
        let sound = draw(&mut rng, &pca);
        let mut learned = LearnedSounds::new(0.01);
        learned.start_learning(0, 2.0);
        // The sound varies by 20 % of the corpus spread on every axis while it is learned.
        while learned
            .observe(&vary(&mut rng, &pca, &sound, 0.2))
            .is_none()
        {}
        let mut own: Vec<f32> = (0..500)
            .map(|_| learned.similarity(&vary(&mut rng, &pca, &sound, 0.2), Some(&pca))[0])
            .collect();
        let mut others: Vec<f32> = (0..2000)
            .map(|_| learned.similarity(&draw(&mut rng, &pca), Some(&pca))[0])
            .collect();
        own.sort_by(f32::total_cmp);
        others.sort_by(f32::total_cmp);
        let median = |v: &[f32]| v[v.len() / 2];
        assert!(
            learned.similarity(
                &learned.sounds[0].as_ref().unwrap().mean.clone(),
                Some(&pca)
            )[0] > 0.999
        );
        assert!(median(&own) > 0.95, "own median {}", median(&own));
        assert!(
            own[own.len() / 10] > 0.85,
            "own 10th percentile {}",
            own[own.len() / 10]
        );
        assert!(
            median(&others) < 0.05,
            "unrelated median {}",
            median(&others)
        );
        assert!(
            others[others.len() * 9 / 10] < 0.5,
            "unrelated 90th percentile {}",
            others[others.len() * 9 / 10]
        );
        // Targets with nothing learned, and wrong-sized embeddings, read 0.
        let s = learned.similarity(&sound, Some(&pca));
        assert_eq!(&s[1..], &[0.0; 3]);
        assert_eq!(learned.similarity(&[0.0; 3], Some(&pca)), [0.0; 4]);
    }

    #[test]
    fn fallback_without_pca_is_still_ordered() {
        let mut learned = LearnedSounds::new(0.01);
        learned.start_learning(2, 0.01);
        learned.observe(&[1.0, 0.0, 0.0, 0.0]);
        let s = |e: &[f32]| learned.similarity(e, None)[2];
        assert!(s(&[1.0, 0.0, 0.0, 0.0]) > 0.999);
        assert!(s(&[1.0, 0.1, 0.0, 0.0]) > 0.99);
        assert!(s(&[0.0, 1.0, 0.0, 0.0]) < 0.02, "orthogonal");
    }

    #[test]
    fn similarity_curve_has_the_documented_anchors() {
        assert_eq!(similarity_from_distance2(0.0), 1.0);
        assert!((similarity_from_distance2(0.25) - 0.5).abs() < 1e-6);
        assert!((similarity_from_distance2(1.0) - 1.0 / 65.0).abs() < 1e-6);
        assert!(similarity_from_distance2(0.1) > 0.93);
        assert_eq!(similarity_from_distance2(f32::NAN), 0.0);
    }

    #[test]
    fn captured_frames_are_saved_exactly_and_damage_is_refused() {
        let mut learned = LearnedSounds::new(0.01);
        learned.start_learning(1, 0.02);
        learned.observe(&[0.5, -0.5]);
        learned.observe(&[0.5, -0.5]);
        let values: Vec<f32> = (0..30).map(|i| -100.0 + i as f32 * 3.3337).collect();
        let frames = CapturedFrames::new(3, &values);
        assert_eq!(frames.frames(), 10);
        // Rounded to f16 when captured: within half a unit in the last place of f16.
        for (&kept, &heard) in frames.values.iter().zip(&values) {
            assert!(
                (kept - heard).abs() <= heard.abs() * 2f32.powi(-11),
                "{kept} {heard}"
            );
        }
        learned.sounds[1].as_mut().unwrap().frames = Some(frames.clone());
        let bytes = learned.to_json();
        let loaded = LearnedSounds::from_json(&bytes).unwrap();
        assert_eq!(loaded.sounds[1].as_ref().unwrap().frames, Some(frames));
        assert_eq!(loaded.to_json(), bytes, "saving again gives the same bytes");
        // A sound saved before frames were kept loads without them.
        let text = String::from_utf8(bytes).unwrap();
        let start = text.find(",\"frames\"").unwrap();
        let end = text[start..].find('}').unwrap() + start + 1;
        let old = format!("{}{}", &text[..start], &text[end..]);
        let loaded = LearnedSounds::from_json(old.as_bytes()).unwrap();
        assert_eq!(loaded.sounds[1].as_ref().unwrap().frames, None);
        // Frames that are not whole frames, or not base64, are refused.
        for bad in [r#""n_bands":4"#, r#""n_bands":0"#] {
            let damaged = text.replace(r#""n_bands":3"#, bad);
            assert!(
                LearnedSounds::from_json(damaged.as_bytes()).is_err(),
                "{bad}"
            );
        }
        let damaged = text.replace(r#""f16":""#, r#""f16":"*"#);
        assert!(LearnedSounds::from_json(damaged.as_bytes()).is_err());
    }

    #[test]
    fn saved_state_is_byte_reproducible() {
        let mut rng = Rng::new(3);
        let mut learned = LearnedSounds::new(0.01);
        for target in [0, 3] {
            learned.start_learning(target, 0.3);
            while learned
                .observe(&(0..250).map(|_| rng.gaussian() * 0.37).collect::<Vec<_>>())
                .is_none()
            {}
        }
        learned.rename(3, "Snare \"wet\" ✓");
        let bytes = learned.to_json();
        let loaded = LearnedSounds::from_json(&bytes).unwrap();
        assert_eq!(loaded, learned);
        assert_eq!(
            loaded.to_json(),
            bytes,
            "serialise → load → serialise must give equal bytes"
        );
        // And once more through a second generation.
        assert_eq!(
            LearnedSounds::from_json(&loaded.to_json())
                .unwrap()
                .to_json(),
            bytes
        );
        // The similarity of the reloaded state is identical, bit for bit.
        let probe: Vec<f32> = (0..250).map(|_| rng.gaussian()).collect();
        assert_eq!(
            loaded.similarity(&probe, None),
            learned.similarity(&probe, None)
        );
        // Captures in progress are not saved.
        learned.start_learning(1, 1.0);
        assert_eq!(learned.to_json(), bytes);
        assert!(LearnedSounds::from_json(&learned.to_json())
            .unwrap()
            .learning()
            .is_none());
    }
}
