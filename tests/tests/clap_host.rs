//! Loads the bundled `Echoic.clap` in a real CLAP host and checks what a DAW relies on.
//!
//! Needs the bundle: `cargo xtask bundle echoic` (or `ECHOIC_BUNDLE_DIR`).

use echoic_host_tests::{
    bundle, passed_through, test_signal, AudioConfig, EchoicHost, HostError, MidiMessage, ParamInfo,
};

/// The sample rates every passthrough test runs at.
const SAMPLE_RATES: [f64; 6] = [8_000.0, 22_050.0, 44_100.0, 48_000.0, 96_000.0, 192_000.0];

/// Largest block used; the activations in the rate sweep allow this much.
const MAX_BLOCK: u32 = 8192;

/// Block-size patterns of the rate sweep: fixed sizes, then an irregular cycle as hosts produce
/// around loop points and automation splits.
const BLOCK_PATTERNS: [&[usize]; 7] = [
    &[1],
    &[7],
    &[64],
    &[512],
    &[4096],
    &[8192],
    &[1, 7, 512, 33, 4096, 2, 100, 8192, 1000],
];

fn new_host() -> EchoicHost {
    EchoicHost::new().expect("instantiate Echoic")
}

/// Asserts `output` is `input` passed through: every sample bit for bit, except subnormal ones,
/// which the plugin flushes to a zero of the same sign. Names the first wrong sample.
fn assert_passed_through(input: &[Vec<f32>], output: &[Vec<f32>], what: &str) {
    assert_eq!(input.len(), output.len(), "{what}: channel count");
    for (channel, (i, o)) in input.iter().zip(output).enumerate() {
        assert_eq!(i.len(), o.len(), "{what}: length of channel {channel}");
        if let Some(frame) = i
            .iter()
            .zip(o)
            .position(|(a, b)| passed_through(*a).to_bits() != b.to_bits())
        {
            panic!(
                "{what}: channel {channel} differs first at frame {frame}: in {:e} out {:e}",
                i[frame], o[frame]
            );
        }
    }
}

/// The test signal with a subnormal sample of alternating sign every 997 samples, so that every
/// passthrough check also checks the flushing.
fn with_subnormals(mut signal: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    for channel in &mut signal {
        for (k, sample) in channel.iter_mut().step_by(997).enumerate() {
            let tiny = f32::from_bits(1 + 4099 * k as u32 % 0x007f_ffff);
            *sample = if k % 2 == 0 { tiny } else { -tiny };
        }
    }
    signal
}

fn param<'a>(params: &'a [ParamInfo], name: &str) -> &'a ParamInfo {
    params
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no parameter named {name:?} in {params:#?}"))
}

/// The leading number of a value text such as "5.0 ms" or "16000 Hz".
fn number(text: &Option<String>) -> f64 {
    let text = text.as_deref().expect("the plugin has text for this value");
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(text.len());
    text[..end]
        .parse()
        .unwrap_or_else(|e| panic!("no number in {text:?}: {e}"))
}

/// A parameter's real `(min, max, default)`, read from the plugin's texts, which must end in
/// `unit`.
fn real_range(param: &ParamInfo, unit: &str) -> (f64, f64, f64) {
    for text in [&param.min_text, &param.max_text, &param.default_text] {
        assert!(
            text.as_deref().is_some_and(|t| t.ends_with(unit)),
            "{}: {text:?} is not in {unit}",
            param.name
        );
    }
    (
        number(&param.min_text),
        number(&param.max_text),
        number(&param.default_text),
    )
}

/// Runs the whole rate × block-size sweep for one channel count.
fn passthrough_sweep(channels: usize) {
    let mut host = new_host();
    for rate in SAMPLE_RATES {
        let signal = with_subnormals(test_signal(rate, 1.25, channels));
        host.activate(AudioConfig::new(rate, MAX_BLOCK, channels))
            .unwrap();
        assert_eq!(host.config().map(|c| c.channels), Some(channels));
        for pattern in BLOCK_PATTERNS {
            let processed = host.process_signal(&signal, pattern).unwrap();
            assert_passed_through(
                &signal,
                &processed.audio,
                &format!("{channels} ch at {rate} Hz, blocks {pattern:?}"),
            );
            let expected_blocks = if pattern.len() == 1 {
                signal[0].len().div_ceil(pattern[0])
            } else {
                processed.blocks
            };
            assert_eq!(processed.blocks, expected_blocks);
        }
        host.deactivate();
        assert!(!host.is_active());
    }
    let errors: Vec<_> = host
        .log()
        .into_iter()
        .filter(|r| r.severity >= echoic_host_tests::clack_extensions::log::LogSeverity::Error)
        .collect();
    assert!(errors.is_empty(), "the plugin logged errors: {errors:?}");
}

#[test]
fn bundle_exposes_echoic() {
    let entry = bundle::load_default_entry().unwrap();
    let ids = bundle::plugin_ids(&entry);
    assert!(
        ids.iter().any(|id| id == "org.echoic.echoic"),
        "plugin ids: {ids:?}"
    );
}

#[test]
fn offers_stereo_and_mono_and_one_midi_output() {
    let mut host = new_host();
    let configs = host.port_configs().unwrap();
    for channels in [1, 2] {
        assert!(
            configs
                .iter()
                .any(|c| c.main_input_channels == Some(channels)
                    && c.main_output_channels == Some(channels)),
            "no {channels}-in/{channels}-out configuration in {configs:?}"
        );
    }
    // Default layout is the first one, stereo.
    assert_eq!(host.audio_port_channels().unwrap(), (vec![2], vec![2]));
    // MIDI_OUTPUT = MidiCCs gives one note output port and no input.
    assert_eq!(host.note_port_counts(), (0, 1));
    assert_eq!(host.latency(), 0);
    assert!(
        host.gui().is_some(),
        "the plugin has an editor, so it exposes clap.gui"
    );
}

#[test]
fn stereo_passthrough_is_bit_exact_at_every_rate_and_block_size() {
    passthrough_sweep(2);
}

#[test]
fn mono_passthrough_is_bit_exact_at_every_rate_and_block_size() {
    passthrough_sweep(1);
}

#[test]
fn passthrough_is_bit_exact_when_max_block_equals_block() {
    // Activations whose max block is the block size itself (1 included), in both layouts.
    let mut host = new_host();
    for channels in [2, 1] {
        for block in [1usize, 64, 512, 4096] {
            let signal = test_signal(48_000.0, 0.3, channels);
            host.activate(AudioConfig::new(48_000.0, block as u32, channels))
                .unwrap();
            let processed = host.process_signal(&signal, &[block]).unwrap();
            assert_passed_through(
                &signal,
                &processed.audio,
                &format!("{channels} ch, max block {block}"),
            );
            host.deactivate();
        }
    }
}

#[test]
fn reactivation_switches_rate_and_layout() {
    let mut host = new_host();
    host.activate(AudioConfig::new(44_100.0, 512, 2)).unwrap();
    let stereo = test_signal(44_100.0, 0.2, 2);
    assert_passed_through(
        &stereo,
        &host.process_signal(&stereo, &[512]).unwrap().audio,
        "stereo",
    );
    assert!(matches!(
        host.activate(AudioConfig::new(44_100.0, 512, 2)),
        Err(HostError::WrongState(_))
    ));
    host.deactivate();

    host.activate(AudioConfig::new(96_000.0, 256, 1)).unwrap();
    assert_eq!(host.audio_port_channels().unwrap(), (vec![1], vec![1]));
    let mono = test_signal(96_000.0, 0.2, 1);
    assert_passed_through(
        &mono,
        &host.process_signal(&mono, &[256, 3]).unwrap().audio,
        "mono",
    );
    host.deactivate();
    // Dropping an active host deactivates it first.
    host.activate(AudioConfig::new(48_000.0, 128, 2)).unwrap();
    drop(host);
}

#[test]
fn rejects_what_it_cannot_do() {
    let mut host = new_host();
    assert!(matches!(
        host.activate(AudioConfig::new(48_000.0, 512, 3)),
        Err(HostError::UnsupportedChannels(3))
    ));
    assert!(!host.is_active());
    let signal = test_signal(48_000.0, 0.01, 2);
    assert!(matches!(
        host.process_signal(&signal, &[64]),
        Err(HostError::WrongState(_))
    ));
    host.activate(AudioConfig::new(48_000.0, 512, 2)).unwrap();
    assert!(matches!(
        host.process_signal(&signal, &[513]),
        Err(HostError::InvalidBuffers(_))
    ));
    let mono = test_signal(48_000.0, 0.01, 1);
    assert!(matches!(
        host.process_signal(&mono, &[64]),
        Err(HostError::InvalidBuffers(_))
    ));
    // Still fine afterwards.
    assert_passed_through(
        &signal,
        &host.process_signal(&signal, &[64]).unwrap().audio,
        "after errors",
    );
}

#[test]
fn lists_the_parameters_with_sensible_ranges() {
    let mut host = new_host();
    let params = host.params().unwrap();
    assert!(params.len() >= 8, "{params:#?}");
    let mut ids: Vec<_> = params.iter().map(|p| p.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), params.len(), "parameter ids are unique");
    for p in &params {
        assert!(p.min < p.max, "{p:?}");
        assert!((p.min..=p.max).contains(&p.default), "{p:?}");
        // A fresh instance sits at its defaults.
        assert_eq!(host.param_value(p.id), Some(p.default), "{}", p.name);
    }

    let bands = param(&params, "Bands");
    assert!(bands.stepped, "Bands is an integer parameter");
    assert!(
        !bands.automatable,
        "Bands is structural, hence not automatable"
    );
    assert_eq!(bands.min_text.as_deref(), Some("16"));
    assert_eq!(bands.max_text.as_deref(), Some("128"));
    assert_eq!(bands.default_text.as_deref(), Some("100"));

    // The other ranges are tuned over time: check units and plausibility, not exact values.
    let hop = param(&params, "Hop");
    let (hop_min, hop_max, hop_default) = real_range(hop, "ms");
    assert!(
        1.0 <= hop_min && hop_min < hop_default && hop_default < hop_max && hop_max <= 100.0,
        "Hop range {hop_min}..{hop_max} ms, default {hop_default} ms"
    );

    let low = param(&params, "Lowest band");
    let high = param(&params, "Highest band");
    let (low_min, low_max, low_default) = real_range(low, "Hz");
    let (high_min, high_max, high_default) = real_range(high, "Hz");
    for (name, min, default, max) in [
        ("Lowest band", low_min, low_default, low_max),
        ("Highest band", high_min, high_default, high_max),
    ] {
        assert!(
            20.0 <= min && min < max && max <= 20_000.0 && (min..=max).contains(&default),
            "{name} range {min}..{max} Hz, default {default} Hz"
        );
    }
    // The lowest band's range lies entirely below the highest band's.
    assert!(
        low_max < high_min,
        "Lowest band up to {low_max} Hz overlaps Highest band from {high_min} Hz"
    );
}

#[test]
fn parameter_changes_reach_the_plugin_and_main_thread_callbacks_are_serviced() {
    let mut host = new_host();
    let bands = host.param_by_name("Bands").unwrap().unwrap();
    let hop = host.param_by_name("Hop").unwrap().unwrap();

    // Inactive: through params.flush.
    let bands_64 = host
        .param_text_to_value(bands.id, "64")
        .expect("Bands parses \"64\"");
    host.set_param(bands.id, bands_64).unwrap();
    assert_eq!(host.param_value(bands.id), Some(bands_64));
    assert_eq!(
        host.param_value_to_text(bands.id, bands_64).as_deref(),
        Some("64")
    );

    // Active: delivered with the next block. nice-plug tells its editor about the change from
    // the audio thread via request_callback, which the host must service on the main thread.
    host.activate(AudioConfig::new(48_000.0, 256, 2)).unwrap();
    let callbacks_before = host.main_thread_callbacks();
    let hop_20 = host
        .param_text_to_value(hop.id, "20")
        .expect("Hop parses \"20\"");
    host.set_param(hop.id, hop_20).unwrap();
    let signal = test_signal(48_000.0, 0.05, 2);
    let processed = host.process_signal(&signal, &[256]).unwrap();
    assert_passed_through(&signal, &processed.audio, "while changing Hop");
    assert_eq!(host.param_value(hop.id), Some(hop_20));
    assert!(
        host.main_thread_callbacks() > callbacks_before,
        "the plugin requested no main-thread callback for a parameter change from the audio thread"
    );
    assert!(!host.with_shared(|s| s
        .callback_requested
        .load(std::sync::atomic::Ordering::Acquire)));
}

#[test]
fn state_round_trips_byte_for_byte() {
    let mut original = new_host();
    let defaults = original.save_state().unwrap();
    assert!(!defaults.is_empty());

    // Move two parameters off their defaults so the state carries something.
    let bands = original.param_by_name("Bands").unwrap().unwrap();
    let hop = original.param_by_name("Hop").unwrap().unwrap();
    let bands_32 = original.param_text_to_value(bands.id, "32").unwrap();
    let hop_25 = original.param_text_to_value(hop.id, "25").unwrap();
    original.set_param(bands.id, bands_32).unwrap();
    original.set_param(hop.id, hop_25).unwrap();
    let saved = original.save_state().unwrap();
    assert_ne!(saved, defaults, "changed parameters must change the state");
    // Saving twice gives the same bytes.
    assert_eq!(original.save_state().unwrap(), saved);

    let mut copy = new_host();
    copy.load_state(&saved).unwrap();
    assert_eq!(copy.param_value(bands.id), Some(bands_32));
    assert_eq!(copy.param_value(hop.id), Some(hop_25));
    let resaved = copy.save_state().unwrap();
    assert_eq!(
        resaved, saved,
        "state after load + save differs from the state loaded"
    );

    // Loading while active works too and keeps the audio path intact.
    let mut active = new_host();
    active.activate(AudioConfig::new(44_100.0, 512, 2)).unwrap();
    active.load_state(&saved).unwrap();
    assert_eq!(active.save_state().unwrap(), saved);
    let signal = test_signal(44_100.0, 0.1, 2);
    assert_passed_through(
        &signal,
        &active.process_signal(&signal, &[512]).unwrap().audio,
        "after load",
    );
}

#[test]
fn garbage_state_is_rejected_without_crashing() {
    let mut host = new_host();
    let before = host.save_state().unwrap();

    let mut not_json = 16u64.to_le_bytes().to_vec();
    not_json.extend_from_slice(b"this is not json");
    let mut huge_length = u64::MAX.to_le_bytes().to_vec();
    huge_length.extend_from_slice(b"{}");
    let mut truncated = before.clone();
    truncated.truncate(before.len() / 2);
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: [(&str, &[u8]); 6] = [
        ("empty", &[]),
        ("shorter than the length prefix", &[1, 2, 3]),
        ("length prefix then non-JSON", &not_json),
        ("absurd length prefix", &huge_length),
        ("truncated real state", &truncated),
        ("noise", &noise),
    ];
    for (what, bytes) in cases {
        assert!(
            matches!(host.load_state(bytes), Err(HostError::StateLoad)),
            "{what}: the plugin accepted garbage state"
        );
    }
    // Nothing changed, and the instance still works.
    assert_eq!(host.save_state().unwrap(), before);
    host.activate(AudioConfig::new(48_000.0, 64, 1)).unwrap();
    let signal = test_signal(48_000.0, 0.05, 1);
    assert_passed_through(
        &signal,
        &host.process_signal(&signal, &[64]).unwrap().audio,
        "after garbage",
    );
}

#[test]
fn output_events_are_collected() {
    let mut host = new_host();
    for (rate, channels, pattern) in [
        (48_000.0, 2, &[512usize][..]),
        (22_050.0, 1, &[1, 300, 64][..]),
    ] {
        host.activate(AudioConfig::new(rate, 512, channels))
            .unwrap();
        let signal = test_signal(rate, 2.0, channels);
        let processed = host.process_signal(&signal, pattern).unwrap();
        let frames = signal[0].len() as u64;
        // Nothing is emitted yet; whatever is must be well-formed MIDI 1.0 inside the signal.
        for MidiMessage { sample, port, data } in &processed.midi {
            assert!(*sample < frames, "event at {sample} beyond {frames} frames");
            assert_eq!(*port, 0, "the plugin has a single note output port");
            assert!(data[0] & 0x80 != 0, "status byte expected, got {data:?}");
            assert!(
                data[1] & 0x80 == 0 && data[2] & 0x80 == 0,
                "data bytes must be < 0x80: {data:?}"
            );
        }
        assert!(
            processed
                .midi
                .windows(2)
                .all(|w| w[0].sample <= w[1].sample),
            "events out of order"
        );
        // Block by block, the same collection is available through take_midi.
        let left: Vec<&[f32]> = signal.iter().map(|c| &c[..100]).collect();
        let mut out = vec![vec![0.0f32; 100]; channels];
        let mut out_refs: Vec<&mut [f32]> = out.iter_mut().map(|c| c.as_mut_slice()).collect();
        host.process_block(&left, &mut out_refs).unwrap();
        assert!(host
            .take_midi()
            .iter()
            .all(|m| m.sample < host.frames_processed()));
        assert_eq!(host.frames_processed(), frames + 100);
        host.deactivate();
    }
}

#[test]
fn editor_can_be_embedded_in_an_x11_window() {
    use echoic_host_tests::clack_extensions::gui::{GuiApiType, GuiConfiguration};
    let mut host = new_host();
    let gui = host.gui().expect("clap.gui");
    let handle = host.instance_mut().plugin_handle();
    let embedded_x11 = GuiConfiguration {
        api_type: GuiApiType::X11,
        is_floating: false,
    };
    assert!(gui.is_api_supported(&handle, embedded_x11));
}
