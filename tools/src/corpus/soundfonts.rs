//! SoundFonts in training packages: a training package that ships a SoundFont (timgm6mb's,
//! csound's General MIDI bank) is heard as fluidsynth plays it, through phrases for every
//! melodic General MIDI program and drum grooves on the percussion channel, and, when asked for,
//! drum-hit studies of one drum type each. The renders go to `cache/rendered/vN/PKG/FONT/` (the
//! studies to `cache/rendered/drum-hits-vN/PKG/FONT/`) and are then read like the package's own
//! audio files.
//! Offline: runs fluidsynth and writes files.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;
use echoic_core::rng::SplitMix64;

use super::instruments::{
    instrument_programs, midi_file, phrase, phrase_name, render_midi, render_paths, Note,
};
use super::packages::{extracted_dir, require_tool, walk};
use super::{hash_str, sanitize, CorpusConfig};
use crate::adaptation::scenarios::DRUM_TYPES;
use crate::audio_file::has_extension;

/// Bump when the phrases, grooves or their lengths change, so that they are rendered again.
const RENDER_VERSION: u32 = 1;

/// Phrases rendered for each melodic program of a font.
const PHRASES_PER_PROGRAM: usize = 2;

/// Drum grooves rendered for each font.
const GROOVES_PER_FONT: usize = 48;

/// How long each phrase and groove plays, at least: long enough for the contrastive partners
/// (up to 5 s apart in one file) to be two moments of one performance.
const RENDER_SECONDS: f64 = 20.0;

/// The word every groove's file stem begins with (`groove_NN`).
pub(crate) const GROOVE_WORD: &str = "groove";

/// General MIDI's percussion channel (0-based).
const PERCUSSION_CHANNEL: u8 = 9;

/// Bump when the drum hits or their lengths change, so that they are rendered again.
const DRUM_HITS_VERSION: u32 = 1;

/// Drum-hit studies rendered for each drum type and font.
const HITS_PER_TYPE: usize = 8;

/// The word every drum-hit study's file stem begins with (`drum_hits_<type>_NN`): a drums word
/// for `echoic train`'s kinds, followed by a word its drum type is read from.
const DRUM_HITS_STEM: &str = "drum_hits";

/// Where the renders of `pkg` go.
pub(super) fn rendered_dir(cache: &Path, pkg: &str) -> PathBuf {
    cache
        .join("rendered")
        .join(format!("v{RENDER_VERSION}"))
        .join(pkg)
}

/// Where the drum-hit studies of `pkg` go: apart from [`rendered_dir`], so that a corpus built
/// without [`CorpusConfig::with_drum_hits`] never reads them.
pub(super) fn drum_hits_dir(cache: &Path, pkg: &str) -> PathBuf {
    cache
        .join("rendered")
        .join(format!("drum-hits-v{DRUM_HITS_VERSION}"))
        .join(pkg)
}

/// Renders every SoundFont that `pkg` ships (none for most packages, which costs a walk of the
/// package) into [`rendered_dir`], skipping renders already there. Fails when a font cannot be
/// played; the caller reports it and goes on with the package's other audio.
pub(super) fn render_soundfonts(cfg: &CorpusConfig, pkg: &str) -> Result<()> {
    let fonts: Vec<PathBuf> = walk(&extracted_dir(&cfg.cache_dir, pkg))
        .into_iter()
        .filter(|p| has_extension(p, &["sf2", "sf3"]))
        .collect();
    if fonts.is_empty() {
        return Ok(());
    }
    require_tool("fluidsynth")?;
    for font in fonts {
        let stem = sanitize(&font.file_stem().unwrap_or_default().to_string_lossy());
        let dir = rendered_dir(&cfg.cache_dir, pkg).join(&stem);
        fs::create_dir_all(&dir)?;
        let seed_of = |what: &str| SplitMix64(cfg.seed ^ hash_str(&format!("{pkg}/{stem}/{what}")));
        for program in instrument_programs() {
            for variant in 0..PHRASES_PER_PROGRAM {
                let name = phrase_name(program, variant);
                let (bpm, notes) = phrase(program, RENDER_SECONDS, &mut seed_of(&name));
                let (mid, wav) = render_paths(&dir, &name);
                render_midi(&font, &midi_file(0, program, bpm, &notes), &mid, &wav)?;
            }
        }
        for groove in 0..GROOVES_PER_FONT {
            let name = format!("{GROOVE_WORD}_{groove:02}");
            let (bpm, notes) = drum_groove(RENDER_SECONDS, &mut seed_of(&name));
            let (mid, wav) = render_paths(&dir, &name);
            let midi = midi_file(PERCUSSION_CHANNEL, 0, bpm, &notes);
            render_midi(&font, &midi, &mid, &wav)?;
        }
        if cfg.with_drum_hits {
            let dir = drum_hits_dir(&cfg.cache_dir, pkg).join(&stem);
            fs::create_dir_all(&dir)?;
            for (t, keys) in key::DRUM_TYPE_KEYS.iter().enumerate() {
                for study in 0..HITS_PER_TYPE {
                    let name = drum_hits_name(t, study);
                    let notes = drum_hits(keys, RENDER_SECONDS, &mut seed_of(&name));
                    let (mid, wav) = render_paths(&dir, &name);
                    let midi = midi_file(PERCUSSION_CHANNEL, 0, HITS_BPM, &notes);
                    render_midi(&font, &midi, &mid, &wav)?;
                }
            }
        }
    }
    Ok(())
}

/// The file stem of study `study` of drum type `t` (an index into [`DRUM_TYPES`]):
/// `drum_hits_<type>_NN`, the type's name without its hyphen (`hihat`), which
/// [`drum_label`](crate::adaptation::scenarios::drum_label) reads back as `t`. Allocates.
fn drum_hits_name(t: usize, study: usize) -> String {
    let word = DRUM_TYPES[t].replace('-', "");
    format!("{DRUM_HITS_STEM}_{word}_{study:02}")
}

/// The tempo a drum-hit study's MIDI file is written at; its hits are placed in seconds, so
/// the tempo only sets the tick grid.
const HITS_BPM: f64 = 120.0;

/// A drummer trying out one drum: one key of `keys` struck until `target` seconds, at
/// velocities from 30 to 127 and 0.2 to 1.5 s apart (so that a hit sometimes rings into the
/// next). Returns the notes, in time order.
fn drum_hits(keys: &[u8], target: f64, rng: &mut SplitMix64) -> Vec<Note> {
    let key = keys[rng.below(keys.len())];
    let mut notes = Vec::new();
    let mut start = 0.05;
    while start < target {
        notes.push(Note {
            start,
            dur: 0.1,
            key,
            vel: (30 + rng.below(98)) as u8,
        });
        start += 0.2 + 1.3 * rng.next_f64();
    }
    notes
}

/// General MIDI percussion keys, by role.
mod key {
    pub const KICKS: [u8; 2] = [35, 36];
    pub const SNARES: [u8; 4] = [38, 40, 37, 39]; // snares, side stick, clap
    pub const TIMEKEEPERS: [u8; 4] = [42, 44, 51, 70]; // closed and pedal hi-hat, ride, maracas
    pub const OPEN_HAT: u8 = 46;
    pub const TOMS: [u8; 6] = [50, 48, 47, 45, 43, 41]; // high to low
    pub const CRASHES: [u8; 2] = [49, 57];
    pub const HAND_PERCUSSION: [u8; 8] = [54, 56, 60, 61, 62, 63, 64, 69]; // tambourine, cowbell, bongos, congas, cabasa
    /// The keys the drum-hit studies strike for each drum type, in the order of
    /// `adaptation::scenarios::DRUM_TYPES` (kick, snare, hi-hat, cymbal, tom), one entry per
    /// type (its length is that list's, so a type added there fails to compile here).
    pub const DRUM_TYPE_KEYS: [&[u8]; super::DRUM_TYPES.len()] = [
        &KICKS,
        &[38, 40],
        &[42, 44, 46],             // closed, pedal and open
        &[49, 57, 51, 59, 52, 55], // crashes, rides, china, splash
        &TOMS,
    ];
}

/// Kick patterns on a 16-step bar, as bit masks (bit `i` = step `i`).
const KICK_PATTERNS: [u16; 6] = [
    0b0000_0001_0000_0001, // beats 1 and 3
    0b0001_0001_0001_0001, // four on the floor
    0b0000_0101_0000_0001, // rock: 1, 3 and the "and" of 3
    0b0010_0001_0000_1001, // syncopated
    0b0000_0000_0010_0001, // half-time
    0b0100_0001_0010_0001, // busy
];

/// A drum-kit groove on a 16-step grid until `target` seconds: kick, backbeat snare with ghost
/// notes, a timekeeper (hi-hat, ride or maracas) in eighths or sixteenths with accents and the
/// odd open hat, now and then a hand-percussion line, and every fourth bar a tom fill followed
/// by a crash. Returns the tempo and the notes, in time order.
fn drum_groove(target: f64, rng: &mut SplitMix64) -> (f64, Vec<Note>) {
    let bpm = 70.0 + 100.0 * rng.next_f64();
    let step = 60.0 / bpm / 4.0;
    let kick_key = key::KICKS[rng.below(key::KICKS.len())];
    let snare_key = key::SNARES[rng.below(key::SNARES.len())];
    let timekeeper = key::TIMEKEEPERS[rng.below(key::TIMEKEEPERS.len())];
    let sixteenths = rng.next_f64() < 0.4;
    let half_time = rng.next_f64() < 0.2;
    let kicks = KICK_PATTERNS[rng.below(KICK_PATTERNS.len())];
    let hand = (rng.next_f64() < 0.3).then(|| {
        let key = key::HAND_PERCUSSION[rng.below(key::HAND_PERCUSSION.len())];
        let mask = (rng.next_u64() & 0xFFFF) as u16 | 1;
        (key, mask)
    });
    let mut notes = Vec::new();
    let hit = |notes: &mut Vec<Note>, start: f64, key: u8, vel: i32| {
        notes.push(Note {
            start,
            dur: 0.1,
            key,
            vel: vel.clamp(1, 127) as u8,
        })
    };
    let mut bar = 0;
    loop {
        let bar_start = bar as f64 * 16.0 * step;
        if bar_start >= target {
            break;
        }
        let fill = bar % 4 == 3;
        let fill_from = 16 - 4 * (1 + rng.below(2));
        for s in 0..16 {
            let t = bar_start + s as f64 * step;
            let jitter = rng.below(11) as i32 - 5;
            if fill && s >= fill_from {
                let tom = key::TOMS[((s - fill_from) * key::TOMS.len() / (16 - fill_from)).min(5)];
                hit(&mut notes, t, tom, 90 + jitter);
                continue;
            }
            if s == 0 && bar > 0 && (bar - 1) % 4 == 3 {
                hit(&mut notes, t, key::CRASHES[rng.below(2)], 110);
            }
            if kicks & (1 << s) != 0 || (rng.next_f64() < 0.05) {
                hit(&mut notes, t, kick_key, 105 + jitter);
            }
            let backbeat = if half_time { s == 8 } else { s == 4 || s == 12 };
            if backbeat {
                hit(&mut notes, t, snare_key, 110 + jitter);
            } else if rng.next_f64() < 0.08 {
                hit(&mut notes, t, snare_key, 35 + jitter);
            }
            if sixteenths || s % 2 == 0 {
                let accent = if s % 4 == 0 { 95 } else { 70 };
                let key = if s % 8 == 6 && rng.next_f64() < 0.15 {
                    key::OPEN_HAT
                } else {
                    timekeeper
                };
                hit(&mut notes, t, key, accent + jitter);
            }
            if let Some((key, mask)) = hand {
                if mask & (1 << s) != 0 {
                    hit(&mut notes, t, key, 80 + jitter);
                }
            }
        }
        bar += 1;
    }
    (bpm, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groove_keeps_time_plays_the_kit_and_fills_every_fourth_bar() {
        for seed in 0..20 {
            let (bpm, notes) = drum_groove(RENDER_SECONDS, &mut SplitMix64(seed));
            assert!((70.0..170.0).contains(&bpm));
            let bar = 60.0 / bpm * 4.0;
            let last = notes.last().expect("a groove has notes").start;
            assert!(last >= RENDER_SECONDS - bar && last < RENDER_SECONDS + bar);
            assert!(notes.windows(2).all(|w| w[0].start <= w[1].start));
            assert!(notes
                .iter()
                .all(|n| (35..=81).contains(&n.key) && (1..=127).contains(&n.vel)));
            let bars = (last / bar).floor() as usize + 1;
            for b in 0..bars.min(8) {
                let in_bar =
                    |n: &&Note| n.start >= b as f64 * bar && n.start < (b + 1) as f64 * bar;
                let keys: Vec<u8> = notes.iter().filter(in_bar).map(|n| n.key).collect();
                let has = |set: &[u8]| keys.iter().any(|k| set.contains(k));
                let fill = b % 4 == 3;
                assert!(has(&key::KICKS), "seed {seed} bar {b}: no kick");
                assert!(has(&key::SNARES) || fill, "seed {seed} bar {b}: no snare");
                assert_eq!(
                    has(&key::TOMS),
                    fill,
                    "seed {seed} bar {b}: toms only in fills"
                );
            }
        }
    }

    #[test]
    fn a_groove_is_a_percussion_channel_midi_file() {
        let (bpm, notes) = drum_groove(4.0, &mut SplitMix64(7));
        let m = midi_file(PERCUSSION_CHANNEL, 0, bpm, &notes);
        // Tempo meta event (7 bytes), then the program change on channel 10.
        assert_eq!(&m[22 + 7..22 + 10], &[0x00, 0xC9, 0x00]);
        // Every hit is a note-on and a note-off on channel 10 (a byte count, so a lower bound).
        let count = |status: u8| m.iter().filter(|&&b| b == status).count();
        assert!(count(0x99) >= notes.len() && count(0x89) >= notes.len());
    }

    #[test]
    fn drum_hits_strike_one_drum_and_are_named_for_its_type() {
        for (t, keys) in key::DRUM_TYPE_KEYS.iter().enumerate() {
            let name = drum_hits_name(t, 0);
            let label = crate::adaptation::scenarios::drum_label(&format!("TimGM6mb__{name}.wav"));
            assert_eq!(label, Some(t), "{name}");
            for seed in 0..10 {
                let notes = drum_hits(keys, RENDER_SECONDS, &mut SplitMix64(seed));
                assert!(keys.contains(&notes[0].key));
                assert!(notes.iter().all(|n| n.key == notes[0].key));
                assert!(notes.iter().all(|n| (30..=127).contains(&n.vel)));
                assert!(notes
                    .windows(2)
                    .all(|w| (0.2..=1.5).contains(&(w[1].start - w[0].start))));
                let last = notes.last().unwrap().start;
                assert!((RENDER_SECONDS - 1.5..RENDER_SECONDS).contains(&last));
            }
        }
    }

    #[test]
    fn a_package_without_soundfonts_renders_nothing() {
        let cache = std::env::temp_dir().join(format!("echoic-soundfonts-{}", std::process::id()));
        let pkg_dir = extracted_dir(&cache, "pkg");
        fs::create_dir_all(pkg_dir.join("usr/share/sounds")).unwrap();
        fs::write(pkg_dir.join("usr/share/sounds/a.ogg"), b"not a font").unwrap();
        let cfg = CorpusConfig {
            cache_dir: cache.clone(),
            with_drum_hits: true,
            ..CorpusConfig::default()
        };
        render_soundfonts(&cfg, "pkg").unwrap();
        assert!(!rendered_dir(&cache, "pkg").exists());
        assert!(!drum_hits_dir(&cache, "pkg").exists());
        fs::remove_dir_all(&cache).unwrap();
    }
}
