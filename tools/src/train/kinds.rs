//! Weak kinds: what kind of sound a training file holds, read from the words of its path.
//!
//! Training packages name their folders and files for what they hold (`music/`, `voices/`,
//! `samples/drums/`, `drum_snare_hard.flac`), so a path says, often, which of the evaluation's
//! sound types ([`CLASSES`]) a recording is, with no label written by hand. Many paths say
//! nothing (a game's `sounds/explosion.wav`): those files have no kind. `echoic train
//! --contrast-kind` uses the kinds to draw contrastive partners from other recordings, and other
//! packages, of the same kind; with `--contrast-drum-types` a drum one-shot's type (kick,
//! snare, hi-hat, cymbal, tom) is its kind for the contrast instead ([`contrast_kind`]).
//!
//! The words are matched whole, after splitting the path into its runs of letters (digits and
//! every other character split words: `kick01` is `kick`), and the rules are tried in order,
//! so that a package of spoken words (`ktuberling`, whose files are named for what the voice
//! says: `cat`, `hat`) is speech before its words can read as an animal or a drum. Offline:
//! allocates.

use crate::adaptation::scenarios::{drum_label, DRUM_TYPES};
use crate::corpus::{CLASSES, GROOVE_WORD, PHRASE_WORD};
use std::path::Path;

/// The rules, in order: a path holding any of a rule's words has that rule's kind.
const RULES: &[(&str, &[&str])] = &[
    // General MIDI programs played through a training package's SoundFont
    // (`corpus::soundfonts` names each phrase `gmNNN_program_name`): an instrument, whatever its
    // name says (`voice_oohs`, `music_box`, `steel_drums`).
    ("instrument", &[PHRASE_WORD]),
    // Packages, and folders, of spoken words.
    (
        "speech",
        &[
            "klettres",
            "ktuberling",
            "fillets",
            "voice",
            "voices",
            "speech",
            "comments",
            "announcer",
        ],
    ),
    (
        "drums",
        &[
            "drum",
            "drums",
            "drumkit",
            "kick",
            "snare",
            "hihat",
            "hat",
            "cymbal",
            "perc",
            "tabla",
            "beats",
            "bd",
            "sn",
            "tom",
            "toms",
            "percussion",
            GROOVE_WORD,
        ],
    ),
    (
        "instrument",
        &[
            "instrument",
            "instruments",
            "basses",
            "bass",
            "guit",
            "guitar",
            "piano",
            "stringsnpads",
            "strings",
            "synth",
            "organ",
            "flute",
            "violin",
            "harp",
            "ambi",
        ],
    ),
    ("music", &["music", "soundtrack", "song", "songs"]),
    (
        "animal",
        &[
            "animal", "animals", "dog", "dogs", "cat", "cats", "bird", "birds", "cow", "horse",
            "sheep", "wolf", "rabbit", "crow", "chicken", "pig", "frog", "duck", "lion", "owl",
            "goat", "bark", "meow", "moo", "baa", "bee", "bees", "ox", "donkey", "boar", "coyote",
            "moose", "stag", "cricket", "crickets", "critters",
        ],
    ),
];

/// The kind of the file at `path` (a path relative to the training folder, package folder
/// included), as an index into [`CLASSES`], or `None` when no word of the path names one.
pub(super) fn kind_of(path: &str) -> Option<u8> {
    let lower = path.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    RULES
        .iter()
        .find(|(_, names)| words.iter().any(|w| names.contains(w)))
        .map(|(kind, _)| class_index(kind))
}

/// The kind a file has for the contrast: its weak `kind`, except that with `drum_types` a
/// drums file whose name says its drum type ([`drum_label`]) has that type's kind
/// ([`drum_type_kind`]). Allocates the words of a drums file's name.
pub(super) fn contrast_kind(kind: Option<u8>, path: &Path, drum_types: bool) -> Option<u8> {
    match kind {
        Some(k) if drum_types && k == class_index("drums") => {
            let file_name = path.file_name().unwrap_or_default().to_string_lossy();
            drum_label(&file_name).map_or(kind, |t| Some(drum_type_kind(t)))
        }
        _ => kind,
    }
}

/// The contrast kind of drum type `t` (an index into [`DRUM_TYPES`]): numbered after the
/// [`CLASSES`], so that no type shares a number with a broad kind.
pub(super) fn drum_type_kind(t: usize) -> u8 {
    (CLASSES.len() + t) as u8
}

/// How many of `kinds` (contrast kinds, one per file) each drum type holds, for the training
/// log. Allocates.
pub(super) fn drum_type_summary(kinds: &[Option<u8>]) -> String {
    DRUM_TYPES
        .iter()
        .enumerate()
        .map(|(t, name)| {
            let kind = Some(drum_type_kind(t));
            format!("{name} {}", kinds.iter().filter(|&&k| k == kind).count())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// How many of `kinds` (one per file) each kind holds, and how many have none, for the
/// training log. Allocates.
pub(super) fn summary(kinds: &[Option<u8>]) -> String {
    let count = |kind: Option<u8>| kinds.iter().filter(|&&k| k == kind).count();
    (0..CLASSES.len())
        .map(|k| format!("{} {}", CLASSES[k], count(Some(k as u8))))
        .chain(std::iter::once(format!("no kind {}", count(None))))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each kind's share, in per cent, as `share` gives it (the last: files with no kind), in one
/// line.
pub(super) fn shares(share: impl Fn(Option<u8>) -> f64) -> String {
    (0..CLASSES.len())
        .map(|k| (CLASSES[k], share(Some(k as u8))))
        .chain(std::iter::once(("no kind", share(None))))
        .map(|(name, s)| format!("{name} {:.1} %", s * 100.0))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of `kind` in [`CLASSES`].
fn class_index(kind: &str) -> u8 {
    CLASSES
        .iter()
        .position(|&c| c == kind)
        .expect("every rule names an evaluation class") as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str) -> Option<&'static str> {
        kind_of(path).map(|k| CLASSES[k as usize])
    }

    #[test]
    fn paths_name_their_kind() {
        let cases = [
            (
                "hedgewars-data/games__hedgewars__Data__Sounds__voices__Pirate__Hello.wav",
                Some("speech"),
            ),
            (
                "ktuberling-data/ktuberling__sounds__en__hat.wav",
                Some("speech"),
            ),
            (
                "lmms-common/lmms__samples__drums__kick01.wav",
                Some("drums"),
            ),
            (
                "sonic-pi-samples/sonic-pi__samples__drum_snare_hard.wav",
                Some("drums"),
            ),
            (
                "lmms-common/lmms__samples__stringsnpads__pad.wav",
                Some("instrument"),
            ),
            (
                "wesnoth-1.16-music/games__wesnoth__1.16__data__core__music__battle.wav",
                Some("music"),
            ),
            (
                "megaglest-data/commondata__sounds__animals__cow1.wav",
                Some("animal"),
            ),
            (
                "lincity-ng-data/games__lincity-ng__sounds__Residential.wav",
                None,
            ),
            (
                "timgm6mb-soundfont/TimGM6mb__gm053_voice_oohs_1.wav",
                Some("instrument"),
            ),
            (
                "csound-soundfont/sf_GMbank__gm010_music_box_0.wav",
                Some("instrument"),
            ),
            ("timgm6mb-soundfont/TimGM6mb__groove_03.wav", Some("drums")),
            (
                "scratch/scratch__Media__Sounds__Percussion__Cymbal.wav",
                Some("drums"),
            ),
            (
                "scratch/scratch__Media__Sounds__Animal__Rooster.wav",
                Some("animal"),
            ),
            (
                "widelands-data/games__widelands__data__sound__farm__ox_00.wav",
                Some("animal"),
            ),
            (
                "widelands-data/games__widelands__data__world__critters__duck__duck_00.wav",
                Some("animal"),
            ),
            (
                "wesnoth-1.16-data/games__wesnoth__1.16__data__core__sounds__ambient__birds1.wav",
                Some("animal"),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(kind(path), want, "{path}");
        }
    }

    #[test]
    fn words_match_whole() {
        // "location" holds "cat", "bassoon" holds "bass": neither is the word.
        assert_eq!(kind("pkg/location_bassoon.wav"), None);
        assert_eq!(kind("DRUMS/Kick.WAV"), Some("drums"));
        // Digits split words.
        assert_eq!(
            kind("lmms-common/lmms__samples__drums__tom04.wav"),
            Some("drums")
        );
        assert_eq!(
            kind("sonic-pi-samples/sonic-pi__samples__loop_perc2.wav"),
            Some("drums")
        );
    }

    #[test]
    fn drum_one_shots_take_their_type_only_when_asked() {
        let contrast = |path: &str, drum_types: bool| {
            contrast_kind(kind_of(path), Path::new(path), drum_types)
        };
        let snare = "sonic-pi-samples/sonic-pi__samples__drum_snare_hard.wav";
        let kick = "lmms-common/lmms__samples__drums__kick01.wav";
        let cymbal = "scratch/scratch__Media__Sounds__Percussion__Cymbal.wav";
        let groove = "timgm6mb-soundfont/TimGM6mb__groove_03.wav";
        let voice = "hedgewars-data/games__hedgewars__Data__Sounds__voices__Pirate__Hello.wav";
        let drums = Some(class_index("drums"));
        let type_kind = |t: usize| Some(drum_type_kind(t));
        // Every type has its own kind, apart from the broad kinds and from the other types.
        let numbers: std::collections::BTreeSet<u8> = (0..CLASSES.len() as u8)
            .chain((0..DRUM_TYPES.len()).map(drum_type_kind))
            .collect();
        assert_eq!(numbers.len(), CLASSES.len() + DRUM_TYPES.len());
        assert_eq!(contrast(snare, false), drums);
        assert_eq!(contrast(snare, true), type_kind(1));
        assert_eq!(contrast(kick, true), type_kind(0));
        assert_eq!(contrast(cymbal, true), type_kind(3));
        // A groove names no one drum, and a voice is not a drum at all.
        assert_eq!(contrast(groove, true), drums);
        assert_eq!(contrast(voice, true), kind_of(voice));
        // A kick's words read in another kind's file do not make it a drum.
        let bass = "lmms-common/lmms__samples__basses__bass01.wav";
        assert_eq!(contrast(bass, true), Some(class_index("instrument")));
        let kinds: Vec<_> = [snare, kick, kick, groove]
            .iter()
            .map(|p| contrast(p, true))
            .collect();
        assert_eq!(
            drum_type_summary(&kinds),
            "kick 2, snare 1, hi-hat 0, cymbal 0, tom 0"
        );
    }

    #[test]
    fn summary_counts_files_per_kind() {
        assert_eq!(
            summary(&[Some(0), None, Some(0), Some(4)]),
            "speech 2, music 0, drums 0, instrument 0, animal 1, no kind 1"
        );
    }

    #[test]
    fn shares_name_every_kind_in_per_cent() {
        assert_eq!(
            shares(|k| if k == Some(4) { 0.25 } else { 0.125 }),
            "speech 12.5 %, music 12.5 %, drums 12.5 %, instrument 12.5 %, animal 25.0 %, \
             no kind 12.5 %"
        );
    }

    #[test]
    fn every_rule_names_a_class() {
        for (name, _) in RULES {
            assert!(CLASSES.contains(name), "{name}");
        }
    }
}
