use super::*;
use crate::frame::SILENCE_DB;
use realfft::RealFftPlanner;

/// Deterministic white-ish noise from a 64-bit LCG, in [-0.5, 0.5).
fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn config(sample_rate: f64) -> CochleaConfig {
    CochleaConfig {
        sample_rate,
        ..CochleaConfig::default()
    }
}

#[test]
fn any_block_size_gives_identical_frames() {
    let signal = noise(48_000, 1);
    let reference = Cochlea::new(config(48_000.0))
        .unwrap()
        .process_to_vec(&signal);
    assert_eq!(reference.len(), 100);
    for block in [1usize, 7, 64, 479, 480, 481, 4096] {
        let mut cochlea = Cochlea::new(config(48_000.0)).unwrap();
        let mut frames = Vec::new();
        for chunk in signal.chunks(block) {
            cochlea.process(chunk, |f| frames.push(*f));
        }
        assert_eq!(frames, reference, "block size {block}");
    }
}

#[test]
fn reset_reproduces_the_frames() {
    let signal = noise(24_000, 2);
    let mut cochlea = Cochlea::new(config(48_000.0)).unwrap();
    let first = cochlea.process_to_vec(&signal);
    cochlea.reset();
    assert_eq!(cochlea.process_to_vec(&signal), first);
}

#[test]
fn frames_carry_position_and_sequence() {
    let mut cochlea = Cochlea::new(config(44_100.0)).unwrap();
    let frames = cochlea.process_to_vec(&noise(44_100, 3));
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.seq, i as u64);
        assert_eq!(frame.sample_pos, (i as u64 + 1) * 441);
        assert!(frame.valid);
        assert_eq!(frame.n_bands, 100);
    }
}

#[test]
fn portable_and_simd_kernels_agree() {
    let signal = noise(48_000, 4);
    let portable = Cochlea::with_kernel(config(48_000.0), Kernel::Portable)
        .unwrap()
        .process_to_vec(&signal);
    for kernel in [Kernel::Avx2Fma, Kernel::Avx512] {
        let Ok(mut cochlea) = Cochlea::with_kernel(config(48_000.0), kernel) else {
            continue;
        };
        let frames = cochlea.process_to_vec(&signal);
        for (a, b) in portable.iter().zip(&frames) {
            for (x, y) in a.energies().iter().zip(b.energies()) {
                assert!((x - y).abs() < 1e-3, "{kernel:?}: {x} dB vs {y} dB");
            }
        }
    }
}

#[test]
fn non_finite_input_invalidates_one_frame_and_recovers() {
    let hop = 480;
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut signal = noise(48_000, 5);
        signal[10 * hop + 17] = bad;
        let mut cochlea = Cochlea::new(config(48_000.0)).unwrap();
        let frames = cochlea.process_to_vec(&signal);
        for (i, frame) in frames.iter().enumerate() {
            assert_eq!(frame.valid, i != 10, "frame {i} with {bad}");
            assert!(
                frame.energies().iter().all(|e| e.is_finite()),
                "frame {i} with {bad}"
            );
        }
        // The filter state itself stayed finite.
        assert!(cochlea.bank.y_re.iter().flatten().all(|y| y.is_finite()));
        // The frame after the bad one holds real energy again.
        assert!(frames[11]
            .energies()
            .iter()
            .skip(20)
            .all(|&e| e > SILENCE_DB + 20.0));
    }
}

#[test]
fn bands_above_045_fs_are_silent_and_flagged() {
    let mut cochlea = Cochlea::new(config(8_000.0)).unwrap();
    let inactive = cochlea.active_bands().iter().filter(|a| !**a).count();
    let expected = cochlea
        .centres()
        .iter()
        .filter(|&&fc| fc as f64 > 3_600.0)
        .count();
    assert_eq!(inactive, expected);
    assert!(inactive > 0);
    let frames = cochlea.process_to_vec(&noise(8_000, 6));
    for frame in &frames {
        for (band, &active) in cochlea.active_bands().iter().enumerate() {
            if !active {
                assert_eq!(frame.bands[band], SILENCE_DB);
            }
        }
    }
}

#[test]
fn silence_after_sound_decays_to_the_floor_and_stays_finite() {
    let mut signal = noise(4_800, 7);
    signal.extend(std::iter::repeat_n(0.0, 48_000 * 10));
    let frames = Cochlea::new(config(48_000.0))
        .unwrap()
        .process_to_vec(&signal);
    let last = frames.last().unwrap();
    assert!(
        last.energies().iter().all(|&e| e == SILENCE_DB),
        "{:?}",
        last.energies()
    );
}

/// Measures each band's frequency response from its impulse response with realfft: the peak
/// must sit at the centre frequency within 1 % and the equivalent rectangular bandwidth must be
/// within 5 % of Glasberg & Moore's ERB.
#[test]
fn measured_responses_peak_at_centre_with_one_erb_bandwidth() {
    let fs = 48_000.0;
    let len = 1 << 16; // 1.4 s: the 50 Hz filter has decayed by > 150 dB; bins are 0.73 Hz apart
    let cochlea = Cochlea::new(config(fs)).unwrap();
    let responses = cochlea.impulse_responses(len);
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(len);
    let bin_hz = fs / len as f64;
    for (band, response) in responses.iter().enumerate() {
        let fc = cochlea.centres()[band] as f64;
        let mut input: Vec<f64> = response.iter().map(|&x| x as f64).collect();
        let mut spectrum = fft.make_output_vec();
        fft.process(&mut input, &mut spectrum).unwrap();
        let power: Vec<f64> = spectrum.iter().map(|c| c.norm_sqr()).collect();
        let (peak_bin, &peak) = power
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        let peak_hz = peak_bin as f64 * bin_hz;
        assert!(
            (peak_hz - fc).abs() <= 0.01 * fc + bin_hz,
            "band {band}: peak at {peak_hz:.1} Hz, centre {fc:.1} Hz"
        );
        // Unity gain at the centre frequency.
        let gain_db = 10.0 * peak.log10();
        assert!(
            gain_db.abs() < 0.1,
            "band {band}: gain {gain_db:.3} dB at the peak"
        );
        let erb_measured = power.iter().sum::<f64>() * bin_hz / peak;
        let erb_expected = crate::erb::erb_hz(fc);
        assert!(
            (erb_measured / erb_expected - 1.0).abs() < 0.05,
            "band {band} at {fc:.1} Hz: ERB {erb_measured:.2} Hz, expected {erb_expected:.2} Hz"
        );
    }
}

#[test]
fn invalid_configurations_are_refused() {
    for bad in [
        CochleaConfig {
            n_bands: 0,
            ..CochleaConfig::default()
        },
        CochleaConfig {
            n_bands: MAX_BANDS + 1,
            ..CochleaConfig::default()
        },
        CochleaConfig {
            low_hz: 9_000.0,
            ..CochleaConfig::default()
        },
        CochleaConfig {
            high_hz: f64::NAN,
            ..CochleaConfig::default()
        },
        CochleaConfig {
            hop_seconds: 0.0,
            ..CochleaConfig::default()
        },
        CochleaConfig {
            sample_rate: -1.0,
            ..CochleaConfig::default()
        },
    ] {
        assert!(Cochlea::new(bad).is_err(), "{bad:?}");
    }
}
