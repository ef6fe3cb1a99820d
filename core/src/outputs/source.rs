//! What an output slot follows, the raw per-hop values of every source, and the one fixed
//! mapping of each source onto 0..1.
//!
//! | source | raw value | 0 | 1 | mapping |
//! |---|---|---|---|---|
//! | `Axis(k)` | z-score on principal axis k | z = −3 | z = +3 | linear; the corpus mean sits at 0.5 |
//! | `Similarity(j)` | similarity to learned sound j | unrelated | the learned sound | identity |
//! | `Novelty` | novelty | as usual | very unlike the recent past | identity |
//! | `Periodicity` | normalised SACF peak | no periodicity | perfectly periodic | identity |
//! | `Period` | dominant period, s | [`MIN_PERIOD_SECONDS`] | [`MAX_PERIOD_SECONDS`] | logarithmic |
//! | `Loudness` | level, dB | −80 dB | 0 dB | linear in dB |
//!
//! Every mapping clamps to 0..1 and turns NaN into 0, so a slot never sees anything else.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

use super::pca::MAX_AXES;

/// How many sounds can be learned: the `Similarity` sources.
pub const MAX_LEARNED: usize = 4;

/// Shortest dominant period reported, seconds (600 beats per minute): the `Period` source's 0.
/// Shorter periods are pitch or roughness rather than rhythm, and at a 10 ms hop they span too
/// few frames to be measured well.
pub const MIN_PERIOD_SECONDS: f32 = 0.1;
/// Longest dominant period reported, seconds (48 beats per minute): the `Period` source's 1. The
/// default 256-hop analysis window (2.56 s at a 10 ms hop) holds two such periods.
pub const MAX_PERIOD_SECONDS: f32 = 1.25;

/// Lowest level on the `Loudness` source's scale, dB: quieter reads 0.
pub const LOUDNESS_FLOOR_DB: f32 = -80.0;

/// Z-score that maps to the ends of an `Axis` source: ±3 standard deviations of the training
/// corpus cover all but 0.3 % of it when it is Gaussian.
pub const AXIS_Z_RANGE: f32 = 3.0;

/// What an output slot follows.
///
/// Serialises as a stable string id (see [`Source::id`]): `"axis1"`..`"axis8"`,
/// `"similarity1"`..`"similarity4"`, `"novelty"`, `"periodicity"`, `"period"`, `"loudness"`.
/// Indices inside the enum count from 0, the ids and names from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Principal axis `k` (0-based, below [`MAX_AXES`]) of the model's embedding distribution.
    Axis(u8),
    /// Similarity to learned sound `j` (0-based, below [`MAX_LEARNED`]).
    Similarity(u8),
    /// How unlike the recent echoic memory the present is.
    Novelty,
    /// How periodic the recent band envelopes are.
    Periodicity,
    /// The dominant rhythmic period.
    Period,
    /// The level of the current frame.
    Loudness,
}

const AXIS_IDS: [&str; MAX_AXES] = [
    "axis1", "axis2", "axis3", "axis4", "axis5", "axis6", "axis7", "axis8",
];
const AXIS_NAMES: [&str; MAX_AXES] = [
    "Axis 1", "Axis 2", "Axis 3", "Axis 4", "Axis 5", "Axis 6", "Axis 7", "Axis 8",
];
const SIMILARITY_IDS: [&str; MAX_LEARNED] =
    ["similarity1", "similarity2", "similarity3", "similarity4"];
const SIMILARITY_NAMES: [&str; MAX_LEARNED] = [
    "Similarity 1",
    "Similarity 2",
    "Similarity 3",
    "Similarity 4",
];

impl Source {
    /// How many distinct sources there are.
    pub const COUNT: usize = MAX_AXES + MAX_LEARNED + 4;

    /// Every source in a fixed order (axes, similarities, novelty, periodicity, period,
    /// loudness): the order of [`Source::index`], for a host parameter's list. Allocation-free.
    pub const fn all() -> [Source; Self::COUNT] {
        let mut all = [Source::Novelty; Self::COUNT];
        let mut i = 0;
        while i < MAX_AXES {
            all[i] = Source::Axis(i as u8);
            i += 1;
        }
        let mut j = 0;
        while j < MAX_LEARNED {
            all[MAX_AXES + j] = Source::Similarity(j as u8);
            j += 1;
        }
        all[MAX_AXES + MAX_LEARNED] = Source::Novelty;
        all[MAX_AXES + MAX_LEARNED + 1] = Source::Periodicity;
        all[MAX_AXES + MAX_LEARNED + 2] = Source::Period;
        all[MAX_AXES + MAX_LEARNED + 3] = Source::Loudness;
        all
    }

    /// Position in [`Source::all`]; `None` for an out-of-range axis or sound index.
    /// Allocation-free.
    pub fn index(self) -> Option<usize> {
        match self {
            Source::Axis(k) if (k as usize) < MAX_AXES => Some(k as usize),
            Source::Similarity(j) if (j as usize) < MAX_LEARNED => Some(MAX_AXES + j as usize),
            Source::Axis(_) | Source::Similarity(_) => None,
            Source::Novelty => Some(MAX_AXES + MAX_LEARNED),
            Source::Periodicity => Some(MAX_AXES + MAX_LEARNED + 1),
            Source::Period => Some(MAX_AXES + MAX_LEARNED + 2),
            Source::Loudness => Some(MAX_AXES + MAX_LEARNED + 3),
        }
    }

    /// The source at `index` in [`Source::all`]. Allocation-free.
    pub fn from_index(index: usize) -> Option<Source> {
        Self::all().get(index).copied()
    }

    /// The stable string id used in saved state; `None` for an out-of-range index.
    /// Allocation-free.
    pub fn id(self) -> Option<&'static str> {
        match self {
            Source::Axis(k) => AXIS_IDS.get(k as usize).copied(),
            Source::Similarity(j) => SIMILARITY_IDS.get(j as usize).copied(),
            Source::Novelty => Some("novelty"),
            Source::Periodicity => Some("periodicity"),
            Source::Period => Some("period"),
            Source::Loudness => Some("loudness"),
        }
    }

    /// The source with string id `id`. Allocation-free.
    pub fn from_id(id: &str) -> Option<Source> {
        Self::all().into_iter().find(|s| s.id() == Some(id))
    }

    /// A short human-readable name for the editor and the host; `"?"` for an out-of-range
    /// index. Allocation-free.
    pub fn name(self) -> &'static str {
        match self {
            Source::Axis(k) => AXIS_NAMES.get(k as usize).copied().unwrap_or("?"),
            Source::Similarity(j) => SIMILARITY_NAMES.get(j as usize).copied().unwrap_or("?"),
            Source::Novelty => "Novelty",
            Source::Periodicity => "Periodicity",
            Source::Period => "Period",
            Source::Loudness => "Loudness",
        }
    }
}

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.id() {
            Some(id) => serializer.serialize_str(id),
            None => Err(serde::ser::Error::custom(format!(
                "source index out of range: {self:?}"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Id;
        impl Visitor<'_> for Id {
            type Value = Source;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an output source id such as \"axis1\" or \"novelty\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Source, E> {
                Source::from_id(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_str(Id)
    }
}

/// The raw value of every source for one hop, before the fixed mapping onto 0..1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Features {
    /// Projection on each principal axis divided by the square root of its explained variance
    /// (a z-score against the training corpus), so that every axis and every model share one
    /// scale; 0 on axes the model has not got.
    pub axes: [f32; MAX_AXES],
    /// Similarity to each learned sound, 0..1 (see [`super::learned`]); 0 where none is learned.
    pub similarity: [f32; MAX_LEARNED],
    /// Novelty, 0..1 (see [`super::novelty`]).
    pub novelty: f32,
    /// Periodicity strength, 0..1 (see [`super::periodicity`]).
    pub periodicity: f32,
    /// Dominant period in seconds; 0 until one has been measured.
    pub period_seconds: f32,
    /// Level of the frame in dB (see [`super::loudness`]).
    pub loudness_db: f32,
}

impl Default for Features {
    /// Silence with no model: every axis at the corpus mean, nothing learned, novel, periodic
    /// or loud. Allocation-free.
    fn default() -> Self {
        Self {
            axes: [0.0; MAX_AXES],
            similarity: [0.0; MAX_LEARNED],
            novelty: 0.0,
            periodicity: 0.0,
            period_seconds: 0.0,
            loudness_db: crate::frame::SILENCE_DB,
        }
    }
}

/// Clamps to 0..1, mapping NaN to 0.
#[inline]
pub(crate) fn unit(x: f32) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(0.0, 1.0)
    }
}

impl Features {
    /// The value of `source` mapped onto 0..1 by the fixed mapping in the module documentation.
    /// Out-of-range indices read 0. Allocation-free.
    pub fn normalised(&self, source: Source) -> f32 {
        match source {
            Source::Axis(k) => match self.axes.get(k as usize) {
                Some(z) => unit((z + AXIS_Z_RANGE) / (2.0 * AXIS_Z_RANGE)),
                None => 0.0,
            },
            Source::Similarity(j) => self.similarity.get(j as usize).map_or(0.0, |&s| unit(s)),
            Source::Novelty => unit(self.novelty),
            Source::Periodicity => unit(self.periodicity),
            Source::Period => period_to_unit(self.period_seconds),
            Source::Loudness => unit((self.loudness_db - LOUDNESS_FLOOR_DB) / -LOUDNESS_FLOOR_DB),
        }
    }
}

/// Maps a period in seconds onto 0..1, logarithmically from [`MIN_PERIOD_SECONDS`] to
/// [`MAX_PERIOD_SECONDS`] (equal tempo ratios take equal steps). Allocation-free.
pub fn period_to_unit(seconds: f32) -> f32 {
    if seconds.is_nan() || seconds <= 0.0 {
        return 0.0;
    }
    unit((seconds / MIN_PERIOD_SECONDS).ln() / (MAX_PERIOD_SECONDS / MIN_PERIOD_SECONDS).ln())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_round_trip() {
        let all = Source::all();
        assert_eq!(all.len(), 16);
        for (i, s) in all.iter().enumerate() {
            assert_eq!(s.index(), Some(i));
            assert_eq!(Source::from_index(i), Some(*s));
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.id().unwrap()));
            assert_eq!(serde_json::from_str::<Source>(&json).unwrap(), *s);
        }
        // The saved form is part of the plugin state: these strings must never change.
        assert_eq!(
            serde_json::to_string(&Source::Axis(0)).unwrap(),
            "\"axis1\""
        );
        assert_eq!(
            serde_json::to_string(&Source::Similarity(3)).unwrap(),
            "\"similarity4\""
        );
        assert_eq!(
            serde_json::to_string(&Source::Period).unwrap(),
            "\"period\""
        );
        assert!(serde_json::to_string(&Source::Axis(8)).is_err());
        assert!(serde_json::from_str::<Source>("\"axis9\"").is_err());
        assert_eq!(Source::Axis(8).index(), None);
    }

    #[test]
    fn mapping_is_fixed_and_clamped() {
        let mut f = Features::default();
        assert_eq!(f.normalised(Source::Axis(0)), 0.5);
        f.axes[1] = 3.0;
        f.axes[2] = -6.0;
        assert_eq!(f.normalised(Source::Axis(1)), 1.0);
        assert_eq!(f.normalised(Source::Axis(2)), 0.0);
        f.axes[3] = 1.5;
        assert!((f.normalised(Source::Axis(3)) - 0.75).abs() < 1e-6);
        f.loudness_db = -20.0;
        assert!((f.normalised(Source::Loudness) - 0.75).abs() < 1e-6);
        f.period_seconds = MIN_PERIOD_SECONDS;
        assert_eq!(f.normalised(Source::Period), 0.0);
        f.period_seconds = MAX_PERIOD_SECONDS;
        assert!((f.normalised(Source::Period) - 1.0).abs() < 1e-6);
        // Log spacing: the geometric mean of the ends sits in the middle.
        f.period_seconds = (MIN_PERIOD_SECONDS * MAX_PERIOD_SECONDS).sqrt();
        assert!((f.normalised(Source::Period) - 0.5).abs() < 1e-5);
        f.novelty = f32::NAN;
        assert_eq!(f.normalised(Source::Novelty), 0.0);
        f.similarity[2] = 1.5;
        assert_eq!(f.normalised(Source::Similarity(2)), 1.0);
        assert_eq!(f.normalised(Source::Similarity(7)), 0.0);
    }
}
