//! Runs on the worker: what a slot follows, and its saved ids.
//!
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
//!
//! A slot's source is saved (in the plugin state and in host automation lanes) as an integer:
//! its position in [`SAVED_SOURCES`], a pinned table of string ids that new sources are only
//! ever appended to, so that the integers keep their meaning whatever [`MAX_AXES`] and
//! [`MAX_LEARNED`] become.

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

/// The saved integer of every source, as its string id (see [`Source::id`]): a slot's source is
/// saved as the position of its id here. Saved sessions and automation lanes hold these
/// integers, so an entry never moves or changes: a new source (a ninth axis, a fifth learned
/// sound) is appended at the end, never inserted next to its kind.
pub const SAVED_SOURCES: [&str; 16] = [
    "axis1",
    "axis2",
    "axis3",
    "axis4",
    "axis5",
    "axis6",
    "axis7",
    "axis8",
    "similarity1",
    "similarity2",
    "similarity3",
    "similarity4",
    "novelty",
    "periodicity",
    "period",
    "loudness",
];

/// What an output slot follows.
///
/// Indices inside the enum count from 0, the ids (see [`Source::id`]) and names from 1.
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

/// The axes' ids in [`SAVED_SOURCES`].
const AXIS_IDS: [&str; MAX_AXES] = [
    "axis1", "axis2", "axis3", "axis4", "axis5", "axis6", "axis7", "axis8",
];
/// The axes' names for the user.
const AXIS_NAMES: [&str; MAX_AXES] = [
    "Axis 1", "Axis 2", "Axis 3", "Axis 4", "Axis 5", "Axis 6", "Axis 7", "Axis 8",
];
/// The similarities' ids in [`SAVED_SOURCES`].
const SIMILARITY_IDS: [&str; MAX_LEARNED] =
    ["similarity1", "similarity2", "similarity3", "similarity4"];
/// The similarities' names for the user.
const SIMILARITY_NAMES: [&str; MAX_LEARNED] = [
    "Similarity 1",
    "Similarity 2",
    "Similarity 3",
    "Similarity 4",
];

impl Source {
    /// How many distinct sources there are.
    pub const COUNT: usize = MAX_AXES + MAX_LEARNED + 4;

    /// Every source in a fixed order: axes, similarities, novelty, periodicity, period,
    /// loudness. Allocation-free.
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

    /// The integer this source is saved as: the position of its id in [`SAVED_SOURCES`]; `None`
    /// for an out-of-range axis or sound index. Allocation-free.
    pub fn saved_index(self) -> Option<usize> {
        let id = self.id()?;
        SAVED_SOURCES.iter().position(|saved| *saved == id)
    }

    /// The source saved as `index` (see [`Source::saved_index`]); `None` past the table or for
    /// an id this build does not know. Allocation-free.
    pub fn from_saved_index(index: usize) -> Option<Source> {
        Self::from_id(SAVED_SOURCES.get(index)?)
    }

    /// The stable string id of [`SAVED_SOURCES`]; `None` for an out-of-range index.
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

    /// The saved integers, spelled out: every saved session and automation lane holds them, so
    /// this list only ever grows at the end.
    const PINNED: [(usize, &str, Source); 16] = [
        (0, "axis1", Source::Axis(0)),
        (1, "axis2", Source::Axis(1)),
        (2, "axis3", Source::Axis(2)),
        (3, "axis4", Source::Axis(3)),
        (4, "axis5", Source::Axis(4)),
        (5, "axis6", Source::Axis(5)),
        (6, "axis7", Source::Axis(6)),
        (7, "axis8", Source::Axis(7)),
        (8, "similarity1", Source::Similarity(0)),
        (9, "similarity2", Source::Similarity(1)),
        (10, "similarity3", Source::Similarity(2)),
        (11, "similarity4", Source::Similarity(3)),
        (12, "novelty", Source::Novelty),
        (13, "periodicity", Source::Periodicity),
        (14, "period", Source::Period),
        (15, "loudness", Source::Loudness),
    ];

    #[test]
    fn saved_integers_never_change_meaning() {
        assert!(
            SAVED_SOURCES.len() >= PINNED.len(),
            "a saved source was removed"
        );
        for (index, id, source) in PINNED {
            assert_eq!(
                SAVED_SOURCES[index], id,
                "saved integer {index} changed its id"
            );
            assert_eq!(Source::from_saved_index(index), Some(source), "{index}");
            assert_eq!(source.saved_index(), Some(index), "{source:?}");
            assert_eq!(source.id(), Some(id));
            assert_eq!(Source::from_id(id), Some(source));
        }
        assert_eq!(Source::from_saved_index(SAVED_SOURCES.len()), None);
    }

    #[test]
    fn every_source_has_one_saved_integer() {
        for (i, id) in SAVED_SOURCES.iter().enumerate() {
            assert_eq!(
                SAVED_SOURCES.iter().position(|s| s == id),
                Some(i),
                "{id} twice"
            );
        }
        for source in Source::all() {
            let index = source
                .saved_index()
                .unwrap_or_else(|| panic!("{source:?} has no saved integer: append its id"));
            assert_eq!(Source::from_saved_index(index), Some(source));
        }
        assert_eq!(Source::Axis(MAX_AXES as u8).saved_index(), None);
        assert_eq!(Source::Similarity(MAX_LEARNED as u8).saved_index(), None);
        assert_eq!(Source::from_id("axis9"), None);
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
