//! Instruments: single-instrument phrases for General MIDI programs, written as MIDI files and
//! rendered by fluidsynth. Offline: runs fluidsynth and writes files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use echoic_core::rng::SplitMix64;
use indicatif::ProgressBar;

use super::evaluation::Clip;
use super::packages::{extracted_dir, run, walk};
use super::signal::{fade, trim_silence};
use super::{fail, hash_str, part_path, rel_string, write_atomic, CorpusConfig, Failure};
use crate::audio_file::{decode_mono, has_extension, resample};

/// Bump when the generated MIDI phrases change, so that they are rendered again.
const MIDI_VERSION: u32 = 3;

/// General MIDI program names, 0-based.
#[rustfmt::skip]
const GM_NAMES: [&str; 128] = [
    "acoustic_grand_piano", "bright_acoustic_piano", "electric_grand_piano", "honky_tonk_piano",
    "electric_piano_1", "electric_piano_2", "harpsichord", "clavinet", "celesta", "glockenspiel",
    "music_box", "vibraphone", "marimba", "xylophone", "tubular_bells", "dulcimer", "drawbar_organ",
    "percussive_organ", "rock_organ", "church_organ", "reed_organ", "accordion", "harmonica",
    "tango_accordion", "nylon_guitar", "steel_guitar", "jazz_guitar", "clean_electric_guitar",
    "muted_electric_guitar", "overdriven_guitar", "distortion_guitar", "guitar_harmonics",
    "acoustic_bass", "fingered_bass", "picked_bass", "fretless_bass", "slap_bass_1", "slap_bass_2",
    "synth_bass_1", "synth_bass_2", "violin", "viola", "cello", "contrabass", "tremolo_strings",
    "pizzicato_strings", "orchestral_harp", "timpani", "string_ensemble_1", "string_ensemble_2",
    "synth_strings_1", "synth_strings_2", "choir_aahs", "voice_oohs", "synth_voice",
    "orchestra_hit", "trumpet", "trombone", "tuba", "muted_trumpet", "french_horn", "brass_section",
    "synth_brass_1", "synth_brass_2", "soprano_sax", "alto_sax", "tenor_sax", "baritone_sax",
    "oboe", "english_horn", "bassoon", "clarinet", "piccolo", "flute", "recorder", "pan_flute",
    "blown_bottle", "shakuhachi", "whistle", "ocarina", "square_lead", "sawtooth_lead",
    "calliope_lead", "chiff_lead", "charang_lead", "voice_lead", "fifths_lead", "bass_lead",
    "new_age_pad", "warm_pad", "polysynth_pad", "choir_pad", "bowed_pad", "metallic_pad",
    "halo_pad", "sweep_pad", "rain_fx", "soundtrack_fx", "crystal_fx", "atmosphere_fx",
    "brightness_fx", "goblins_fx", "echoes_fx", "sci_fi_fx", "sitar", "banjo", "shamisen", "koto",
    "kalimba", "bagpipe", "fiddle", "shanai", "tinkle_bell", "agogo", "steel_drums", "woodblock",
    "taiko_drum", "melodic_tom", "synth_drum", "reverse_cymbal", "guitar_fret_noise",
    "breath_noise", "seashore", "bird_tweet", "telephone_ring", "helicopter", "applause", "gunshot",
];

/// The programs used: every melodic GM program. Left out: the unpitched percussion
/// (agogo, woodblock, taiko, melodic tom, synth drum, reverse cymbal), which belongs with drums,
/// and the sound effects 120–127 (bird tweet, seashore, applause, ...), which would blur the
/// animal and other classes.
pub(super) fn instrument_programs() -> Vec<u8> {
    (0u8..120)
        .filter(|p| !matches!(p, 113 | 115 | 116 | 117 | 118 | 119))
        .collect()
}

/// The file stem of a program's phrase, `gmNNN_program_name_VARIANT`, for the evaluation's
/// renders and the training packages' alike; `echoic train`'s weak kinds read the `gm` word as
/// an instrument. Allocates.
pub(super) fn phrase_name(program: u8, variant: usize) -> String {
    format!(
        "{PHRASE_WORD}{program:03}_{}_{variant}",
        GM_NAMES[program as usize]
    )
}

/// The word every phrase's file stem begins with ([`phrase_name`]).
pub(crate) const PHRASE_WORD: &str = "gm";

/// A comfortable MIDI note range for a program.
fn program_range(p: u8) -> (u8, u8) {
    match p {
        32..=39 | 43 | 58 | 87 => (28, 55), // basses, contrabass, tuba, bass lead
        40 | 110 => (55, 91),               // violin, fiddle
        41 => (48, 81),                     // viola
        42 | 70 => (36, 69),                // cello, bassoon
        47 => (41, 57),                     // timpani
        57 => (40, 72),                     // trombone
        64 | 68 | 72 | 73 | 74 | 75 => (60, 91), // soprano sax, oboe, piccolo, flutes
        67 => (36, 69),                     // baritone sax
        8..=15 | 108 | 112 => (60, 96),     // chromatic percussion, kalimba, tinkle bell
        24..=31 => (40, 76),                // guitars
        _ => (48, 84),
    }
}

/// Programs that may play two notes at once.
fn polyphonic(p: u8) -> bool {
    matches!(p, 0..=7 | 16..=21 | 24..=27 | 46 | 48..=51 | 88..=95)
}

/// One note of a phrase, in seconds from the phrase's start.
pub(super) struct Note {
    /// When the key goes down.
    pub(super) start: f64,
    /// How long it is held.
    pub(super) dur: f64,
    /// The MIDI key.
    pub(super) key: u8,
    /// The MIDI velocity, 1–127.
    pub(super) vel: u8,
}

/// A random phrase in a major, minor or pentatonic scale whose last note starts at `target`
/// seconds or later.
pub(super) fn phrase(program: u8, target: f64, rng: &mut SplitMix64) -> (f64, Vec<Note>) {
    const SCALES: [&[i32]; 3] = [
        &[0, 2, 4, 5, 7, 9, 11],
        &[0, 2, 3, 5, 7, 8, 10],
        &[0, 2, 4, 7, 9],
    ];
    let scale = SCALES[rng.below(SCALES.len())];
    let (lo, hi) = program_range(program);
    let root = lo as i32 + rng.below(((hi - lo) as usize / 2).max(1)) as i32;
    let bpm = 80.0 + 60.0 * rng.next_f64();
    let beat = 60.0 / bpm;
    let key_of = |degree: i32| -> i32 {
        let n = scale.len() as i32;
        root + 12 * degree.div_euclid(n) + scale[degree.rem_euclid(n) as usize]
    };
    let mut notes = Vec::new();
    let mut t = 0.0;
    let mut degree = rng.below(scale.len()) as i32;
    // Keep adding notes until one starts at or after `target`, so that even quickly decaying
    // instruments sound for at least `target` seconds.
    loop {
        let beats = [0.5, 0.5, 1.0, 1.0, 1.5, 2.0][rng.below(6)];
        let dur = beats * beat;
        let step = rng.below(5) as i32 - 2;
        degree += step;
        let mut key = key_of(degree);
        if key < lo as i32 || key > hi as i32 {
            degree -= 2 * step;
            key = key_of(degree).clamp(lo as i32, hi as i32);
        }
        let vel = 70 + rng.below(45) as u8;
        notes.push(Note {
            start: t,
            dur: dur * 0.9,
            key: key as u8,
            vel,
        });
        if polyphonic(program) && rng.next_f64() < 0.3 {
            let third = key_of(degree + 2).clamp(0, 127);
            notes.push(Note {
                start: t,
                dur: dur * 0.9,
                key: third as u8,
                vel: vel.saturating_sub(10),
            });
        }
        if t >= target {
            break;
        }
        t += dur;
    }
    (bpm, notes)
}

/// A format-0 standard MIDI file: one track on `channel` (0-based; 9 is General MIDI's
/// percussion) with a program change and the notes.
pub(super) fn midi_file(channel: u8, program: u8, bpm: f64, notes: &[Note]) -> Vec<u8> {
    assert!(channel < 16, "MIDI has 16 channels");
    const DIVISION: u16 = 480;
    let ticks = |secs: f64| -> u32 { (secs * bpm / 60.0 * DIVISION as f64).round() as u32 };
    let mut events: Vec<(u32, [u8; 3])> = Vec::new();
    for n in notes {
        events.push((ticks(n.start), [0x90 | channel, n.key, n.vel]));
        events.push((ticks(n.start + n.dur), [0x80 | channel, n.key, 64]));
    }
    // Note-offs before note-ons at the same tick.
    events.sort_by_key(|(t, e)| (*t, e[0] & 0xF0 == 0x90));
    let mut track: Vec<u8> = Vec::new();
    let tempo = (60_000_000.0 / bpm).round() as u32;
    track.extend([0x00, 0xFF, 0x51, 0x03]);
    track.extend(&tempo.to_be_bytes()[1..]);
    track.extend([0x00, 0xC0 | channel, program]);
    let mut last = 0;
    for (t, e) in events {
        push_vlq(&mut track, t - last);
        last = t;
        track.extend(e);
    }
    track.extend([0x00, 0xFF, 0x2F, 0x00]);
    let mut out = Vec::new();
    out.extend(b"MThd");
    out.extend(6u32.to_be_bytes());
    out.extend(0u16.to_be_bytes());
    out.extend(1u16.to_be_bytes());
    out.extend(DIVISION.to_be_bytes());
    out.extend(b"MTrk");
    out.extend((track.len() as u32).to_be_bytes());
    out.extend(track);
    out
}

fn push_vlq(out: &mut Vec<u8>, mut v: u32) {
    let mut bytes = vec![(v & 0x7F) as u8];
    v >>= 7;
    while v > 0 {
        bytes.push((v & 0x7F) as u8 | 0x80);
        v >>= 7;
    }
    bytes.reverse();
    out.extend(bytes);
}

/// The MIDI file and the render of the phrase or groove `name` in `dir`: `name.mid` and
/// `name.wav`. Allocates.
pub(super) fn render_paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.mid")),
        dir.join(format!("{name}.wav")),
    )
}

/// Writes `midi` to `mid` and has fluidsynth play it through `font` into `wav` (44.1 kHz), unless
/// `wav` is there already. Runs fluidsynth and writes files.
pub(super) fn render_midi(font: &Path, midi: &[u8], mid: &Path, wav: &Path) -> Result<()> {
    if wav.is_file() {
        return Ok(());
    }
    write_atomic(mid, midi)?;
    let tmp = part_path(wav);
    run(Command::new("fluidsynth")
        .args(["-ni", "-q", "-g", "0.5", "-r", "44100", "-T", "wav", "-F"])
        .arg(&tmp)
        .arg(font)
        .arg(mid))?;
    Ok(fs::rename(&tmp, wav)?)
}

pub(super) fn instrument_clips(
    cfg: &CorpusConfig,
    rng: &mut SplitMix64,
    pb: &ProgressBar,
    fails: &mut Vec<Failure>,
) -> Result<Vec<Clip>> {
    let rate = cfg.train_rate;
    let sf2 = walk(&extracted_dir(&cfg.cache_dir, "fluid-soundfont-gm"))
        .into_iter()
        .find(|p| has_extension(p, &["sf2"]))
        .context("fluid-soundfont-gm holds no .sf2")?;
    let midi_dir = cfg.cache_dir.join("midi").join(format!("v{MIDI_VERSION}"));
    fs::create_dir_all(&midi_dir)?;
    let programs = instrument_programs();
    // Every program once in random order, then every program again, until the cap.
    let mut order: Vec<(u8, usize)> = Vec::new();
    let mut variant = 0;
    while order.len() < cfg.clips_per_class {
        let mut pass: Vec<u8> = programs.clone();
        rng.shuffle(&mut pass);
        order.extend(pass.into_iter().map(|p| (p, variant)));
        variant += 1;
    }
    order.truncate(cfg.clips_per_class);
    let mut clips = Vec::new();
    for (program, variant) in order {
        // Each phrase has its own generator so that it does not depend on the cap.
        let mut prng = SplitMix64(cfg.seed ^ hash_str(&format!("gm{program}/{variant}")));
        let target = cfg.min_clip_seconds
            + 0.2
            + (cfg.max_clip_seconds - cfg.min_clip_seconds - 0.8) * prng.next_f64();
        let (bpm, notes) = phrase(program, target, &mut prng);
        let name = phrase_name(program, variant);
        let (mid, wav) = render_paths(&midi_dir, &name);
        if let Err(e) = render_midi(&sf2, &midi_file(0, program, bpm, &notes), &mid, &wav) {
            fail(pb, fails, &mid, &e);
            continue;
        }
        let samples = match decode_mono(&wav) {
            Ok(d) => resample(&d.samples, d.sample_rate, rate),
            Err(e) => {
                fail(pb, fails, &wav, &e);
                continue;
            }
        };
        let mut samples = trim_silence(&samples, rate);
        let max = (cfg.max_clip_seconds * rate as f64) as usize;
        if samples.len() > max {
            samples.truncate(max);
            fade(&mut samples, rate, 0.1);
        }
        if (samples.len() as f64) < cfg.min_clip_seconds * rate as f64 {
            fail(
                pb,
                fails,
                &wav,
                &"the rendered phrase is shorter than a clip",
            );
            continue;
        }
        clips.push(Clip {
            name: format!("{name}.wav"),
            samples,
            source: format!(
                "{} (program {program}, {})",
                rel_string(&sf2, &cfg.cache_dir),
                rel_string(&mid, &cfg.cache_dir)
            ),
        });
        pb.inc(1);
    }
    Ok(clips)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midi_file_is_well_formed() {
        let mut rng = SplitMix64(1);
        let (bpm, notes) = phrase(0, 3.0, &mut rng);
        let m = midi_file(0, 0, bpm, &notes);
        assert_eq!(&m[..4], b"MThd");
        assert_eq!(&m[14..18], b"MTrk");
        let len = u32::from_be_bytes([m[18], m[19], m[20], m[21]]) as usize;
        assert_eq!(m.len(), 22 + len);
        assert_eq!(&m[m.len() - 3..], &[0xFF, 0x2F, 0x00]);
        let mut v = Vec::new();
        push_vlq(&mut v, 0x0FFF_FFFF);
        assert_eq!(v, [0xFF, 0xFF, 0xFF, 0x7F]);
    }
}
