//! Checks the cochlea against an independent reference: the Python `Gammatone` 1.0.3 package
//! (the package the original Listener used). `tests/reference/gammatone_reference.py` produced
//! the fixtures in `tests/fixtures/`; see `tests/reference/README.md`.

use echoic_core::cochlea::{Cochlea, CochleaConfig};
use serde_json::Value;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("gammatone_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn config_of(entry: &Value) -> CochleaConfig {
    CochleaConfig {
        sample_rate: entry["sample_rate"].as_f64().unwrap(),
        n_bands: entry["num_bands"].as_u64().unwrap() as usize,
        low_hz: entry["low_hz"].as_f64().unwrap(),
        high_hz: entry["high_hz"].as_f64().unwrap(),
        hop_seconds: 0.010,
    }
}

#[test]
fn centre_frequencies_equal_python_erb_space() {
    for entry in reference()["configs"].as_array().unwrap() {
        assert_eq!(entry["order"], "descending");
        let cochlea = Cochlea::new(config_of(entry)).unwrap();
        let mut expected = floats(&entry["centre_freqs_hz"]);
        expected.reverse();
        assert_eq!(cochlea.centres().len(), expected.len());
        for (ours, theirs) in cochlea.centres().iter().zip(&expected) {
            // Centres are stored as f32.
            assert!(
                ((*ours as f64) - theirs).abs() <= 1e-6 * theirs,
                "{ours} Hz vs {theirs} Hz"
            );
        }
    }
}

#[test]
fn band_power_matches_python_erb_filterbank_within_half_a_db() {
    let reference = reference();
    let entry = &reference["configs"][0];
    let power = &entry["band_power"];
    let mut expected_db = floats(&power["power_db"]);
    expected_db.reverse();
    let discard = power["discard_samples"].as_u64().unwrap() as usize;

    let mut reader = hound::WavReader::open(fixtures().join("reference_signal.wav")).unwrap();
    let signal: Vec<f32> = reader.samples::<f32>().map(Result::unwrap).collect();
    let config = config_of(entry);
    assert_eq!(reader.spec().sample_rate as f64, config.sample_rate);
    let hop = config.hop_samples();
    assert_eq!(
        discard % hop,
        0,
        "the discarded transient must end on a hop boundary"
    );

    let frames = Cochlea::new(config).unwrap().process_to_vec(&signal);
    let measured = &frames[discard / hop..];
    assert_eq!(measured.len() * hop, signal.len() - discard);
    let mut worst: f64 = 0.0;
    for (band, &theirs) in expected_db.iter().enumerate() {
        let mean_power = measured
            .iter()
            .map(|f| 10f64.powf(f.bands[band] as f64 / 10.0))
            .sum::<f64>()
            / measured.len() as f64;
        let ours = 10.0 * mean_power.log10();
        worst = worst.max((ours - theirs).abs());
        assert!(
            (ours - theirs).abs() <= 0.5,
            "band {band}: {ours:.3} dB vs {theirs:.3} dB"
        );
    }
    println!("largest band-power difference from Python Gammatone: {worst:.3} dB");
}
