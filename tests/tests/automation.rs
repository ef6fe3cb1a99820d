//! The automation outputs through a real CLAP host: the plugin learns one real recording and its
//! similarity CC must rise on that sound and stay low on another; a click's loudness CC measures
//! the sound-to-MIDI latency.
//!
//! Blocks are paced in real time, as a DAW plays them, so that the worker thread runs at the speed
//! it would in a session.

use echoic_host_tests::{recording, AudioConfig, EchoicHost, MidiMessage, ParamInfo};
use std::time::{Duration, Instant};

const BLOCK: usize = 256;

/// The parameter `name` of output slot `slot` (1-based) or of the top level.
fn param(params: &[ParamInfo], group: &str, name: &str) -> ParamInfo {
    params
        .iter()
        .find(|p| p.name == name && p.module.contains(group))
        .unwrap_or_else(|| panic!("no parameter {name:?} in group {group:?}: {params:#?}"))
        .clone()
}

/// Plays `signal` in real time, returning the MIDI with sample positions counted from `offset`.
fn play(host: &mut EchoicHost, signal: &[f32], offset: u64, midi: &mut Vec<MidiMessage>) {
    let rate = host.config().unwrap().sample_rate;
    let start = Instant::now();
    for (i, block) in signal.chunks(BLOCK).enumerate() {
        let out = host.process_signal(&[block.to_vec()], &[BLOCK]).unwrap();
        let block_start = offset + (i * BLOCK) as u64;
        midi.extend(out.midi.into_iter().map(|m| MidiMessage {
            sample: m.sample + block_start,
            ..m
        }));
        let due = Duration::from_secs_f64(((i + 1) * BLOCK) as f64 / rate);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// The CC values of controller `cc` on channel 1 sent within `range` of sample positions.
fn cc_values(midi: &[MidiMessage], cc: u8, range: std::ops::Range<u64>) -> Vec<f32> {
    midi.iter()
        .filter(|m| m.data[0] == 0xB0 && m.data[1] == cc && range.contains(&m.sample))
        .map(|m| m.data[2] as f32 / 127.0)
        .collect()
}

/// The last CC value of `cc` sent before `at`, i.e. the value a mapped parameter holds there.
fn held_value(midi: &[MidiMessage], cc: u8, at: u64) -> f32 {
    cc_values(midi, cc, 0..at).last().copied().unwrap_or(0.0)
}

#[test]
fn similarity_rises_on_the_learned_sound_and_stays_low_on_another() {
    let (music, rate) = recording("music_armygeddon.wav");
    let (speech, speech_rate) = recording("speech_june.wav");
    assert_eq!(rate, speech_rate);
    let mut host = EchoicHost::new().unwrap();
    let params = host.params().unwrap();
    // Slot 4 follows the similarity to learned sound 1 on CC 23.
    let on = param(&params, "Outputs 4", "On");
    let source = param(&params, "Outputs 4", "Source");
    let learn = param(&params, "Learn 1", "Learn sound 1");
    host.set_param(on.id, 1.0).unwrap();
    host.set_param(source.id, 8.0).unwrap(); // SAVED_SOURCES[8] = similarity to sound 1
    host.activate(AudioConfig::new(rate, BLOCK as u32, 1))
        .unwrap();

    let mut midi = Vec::new();
    let mut position = 0u64;
    // Let the memory fill with music, then learn it for 2 s while it keeps playing.
    play(
        &mut host,
        &music[..(1.5 * rate) as usize],
        position,
        &mut midi,
    );
    position += (1.5 * rate) as u64;
    host.set_param(learn.id, 1.0).unwrap();
    let rest = &music[(1.5 * rate) as usize..];
    play(&mut host, rest, position, &mut midi);
    position += rest.len() as u64;
    host.set_param(learn.id, 0.0).unwrap();

    // Now the other sound, then the learned one again.
    let speech_start = position;
    play(&mut host, &speech, position, &mut midi);
    position += speech.len() as u64;
    let music_again = position;
    play(&mut host, &music, position, &mut midi);
    position += music.len() as u64;

    // Judge each sound after the memory (1.28 s) has filled with it.
    let settle = (1.5 * rate) as u64;
    let on_speech = cc_values(&midi, 23, speech_start + settle..music_again);
    let speech_peak = on_speech.iter().copied().fold(0.0f32, f32::max);
    let speech_level = held_value(&midi, 23, music_again);
    let music_level = held_value(&midi, 23, position);
    println!(
        "similarity CC: {} messages; on speech peak {speech_peak:.2}, held {speech_level:.2}; \
         on the learned music held {music_level:.2}",
        midi.len(),
    );
    assert!(
        speech_peak < 0.5,
        "the other sound peaked at {speech_peak:.2}"
    );
    assert!(
        music_level > 0.6,
        "the learned sound reads {music_level:.2}"
    );
    assert!(
        speech_level < 0.3,
        "the other sound reads {speech_level:.2}"
    );
    assert!(music_level > speech_level + 0.4);
}

#[test]
fn a_click_reaches_the_loudness_cc_within_one_hop_plus_one_inference() {
    let rate = 48_000.0;
    let mut host = EchoicHost::new().unwrap();
    let params = host.params().unwrap();
    // Slot 5 follows loudness on CC 24 with the fastest smoothing.
    let group = "Outputs 5";
    host.set_param(param(&params, group, "On").id, 1.0).unwrap();
    host.set_param(param(&params, group, "Source").id, 15.0)
        .unwrap(); // loudness
    for name in ["Rise", "Fall"] {
        host.set_param(param(&params, group, name).id, 0.0).unwrap(); // 1 ms
    }
    host.activate(AudioConfig::new(rate, BLOCK as u32, 1))
        .unwrap();
    let mut signal = vec![0.0f32; (2.0 * rate) as usize];
    let click_at = (1.5 * rate) as usize + 123;
    for s in &mut signal[click_at..click_at + 48] {
        *s = 0.9;
    }
    let mut midi = Vec::new();
    play(&mut host, &signal, 0, &mut midi);
    let first = midi
        .iter()
        .find(|m| m.data[1] == 24 && m.sample >= click_at as u64 && m.data[2] > 30)
        .unwrap_or_else(|| panic!("no loudness CC after the click: {midi:?}"));
    let latency_ms = (first.sample - click_at as u64) as f64 / rate * 1e3;
    println!(
        "sound-to-CC latency: {latency_ms:.2} ms (hop 10 ms, block {:.2} ms)",
        BLOCK as f64 / rate * 1e3
    );
    // One hop to complete the frame, one block for the worker's answer to be picked up.
    assert!(
        latency_ms <= 10.0 + BLOCK as f64 / rate * 1e3 + 1.0,
        "{latency_ms:.2} ms"
    );
}
