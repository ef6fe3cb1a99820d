//! Tests of the listener: shapes, the golden comparison with the numpy reference, the loader's
//! refusals, a training smoke run, and (ignored) timings.

use super::format;
use super::*;
use crate::worker::ListenSettings;

/// The reference document written by `core/tests/golden/listener_reference.py`.
const REFERENCE: &str = include_str!("../../tests/golden/listener_reference.json");

/// The golden weights (see the reference script): tensor number `k` in forward order, element `i`
/// in row-major order, `u = (i·2654435761 + k·1013904223) mod 2³²`,
/// `w = amp·(2u/2³² − 1)` with `amp = 1.5/√rows` for matrices and 0.5 for biases.
fn golden_weights(cfg: &ModelConfig) -> Vec<NamedTensor> {
    cfg.tensor_shapes()
        .into_iter()
        .enumerate()
        .map(|(k, (name, shape))| {
            let count: usize = shape.iter().product();
            let amp = if shape.len() == 1 {
                0.5
            } else {
                1.5 / (shape[0] as f64).sqrt()
            };
            let data = (0..count as u64)
                .map(|i| {
                    let u = (i
                        .wrapping_mul(2_654_435_761)
                        .wrapping_add(k as u64 * 1_013_904_223))
                        % (1u64 << 32);
                    (amp * (2.0 * u as f64 / 4_294_967_296.0 - 1.0)) as f32
                })
                .collect();
            NamedTensor { name, shape, data }
        })
        .collect()
}

/// The golden inputs: `x_dB = −50 + 25·sin(0.05b + 0.7t + 1.3n) + 10·cos(0.11bt + n)`.
fn golden_inputs(n: usize, steps: usize, n_bands: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(n * steps * n_bands);
    for s in 0..n {
        for t in 0..steps {
            for b in 0..n_bands {
                let (s, t, b) = (s as f64, t as f64, b as f64);
                x.push(
                    (-50.0
                        + 25.0 * (0.05 * b + 0.7 * t + 1.3 * s).sin()
                        + 10.0 * (0.11 * b * t + s).cos()) as f32,
                );
            }
        }
    }
    x
}

/// Metadata for `cfg` with the golden normalisation `offset[b] = −80 + 0.2b`,
/// `scale[b] = 1/(50 + 0.3b)`.
fn golden_meta(cfg: &ModelConfig) -> ListenerMetadata {
    let settings = ListenSettings {
        n_bands: cfg.n_bands,
        spec: crate::dilated::DilatedSpec {
            steps: cfg.steps,
            ..Default::default()
        },
        ..ListenSettings::default()
    };
    ListenerMetadata {
        format_version: FORMAT_VERSION,
        name: "golden".into(),
        features: Features::from_settings(&settings),
        model: cfg.clone(),
        normalisation: Normalisation {
            offset: (0..cfg.n_bands)
                .map(|b| (-80.0 + 0.2 * b as f64) as f32)
                .collect(),
            scale: (0..cfg.n_bands)
                .map(|b| (1.0 / (50.0 + 0.3 * b as f64)) as f32)
                .collect(),
            level: Level::Absolute,
        },
        pca: None,
        provenance: Provenance::default(),
        metrics: Default::default(),
    }
}

fn golden_listener(activation: Activation) -> Listener {
    let cfg = ModelConfig {
        activation,
        ..ModelConfig::default()
    };
    Listener::from_parts(golden_meta(&cfg), &golden_weights(&cfg), Device::Cpu).unwrap()
}

fn json_floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn default_model_has_the_keras_parameter_count() {
    let cfg = ModelConfig::default();
    assert_eq!(cfg.parameter_count(), 451_800);
    let weights = golden_weights(&cfg);
    assert_eq!(weights.iter().map(|t| t.data.len()).sum::<usize>(), 451_800);
    let names: Vec<_> = cfg
        .tensor_shapes()
        .into_iter()
        .map(|(n, s)| format!("{n}{s:?}"))
        .collect();
    assert_eq!(
        names,
        [
            "encoder.0.kernel[100, 200]",
            "encoder.0.recurrent_kernel[50, 200]",
            "encoder.0.bias[200]",
            "encoder.1.kernel[50, 1000]",
            "encoder.1.recurrent_kernel[250, 1000]",
            "encoder.1.bias[1000]",
            "decoder.0.kernel[250, 200]",
            "decoder.0.recurrent_kernel[50, 200]",
            "decoder.0.bias[200]",
            "decoder.1.kernel[50, 400]",
            "decoder.1.recurrent_kernel[100, 400]",
            "decoder.1.bias[400]",
        ]
    );
    assert_eq!(cfg.latent_dim(), 250);
}

fn golden(activation: Activation) {
    let doc: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let cfg = ModelConfig {
        activation,
        ..ModelConfig::default()
    };
    assert_eq!(doc["n_bands"], cfg.n_bands);
    assert_eq!(doc["steps"], cfg.steps);
    // The weights and inputs rebuilt here are the script's.
    for t in golden_weights(&cfg) {
        let want = doc["weight_sums"][&t.name].as_f64().unwrap();
        let got: f64 = t.data.iter().map(|&v| v as f64).sum();
        assert!(
            (got - want).abs() < 1e-9 * t.data.len() as f64,
            "{}: {got} vs {want}",
            t.name
        );
    }
    let n = doc["n_sequences"].as_u64().unwrap() as usize;
    let x = golden_inputs(n, cfg.steps, cfg.n_bands);
    let input_sum: f64 = x.iter().map(|&v| v as f64).sum();
    assert!((input_sum - doc["input_sum"].as_f64().unwrap()).abs() < 1e-6);

    let case = &doc["cases"][activation.name()];
    let want_emb = json_floats(&case["embedding"]);
    let want_rec = json_floats(&case["reconstruction_db"]);
    let mut listener = golden_listener(activation);
    // The batch path.
    let emb = listener.embed_batch(&x, n).unwrap();
    let emb_err = max_abs_diff(&emb, &want_emb);
    // Batch-1 path, sequence by sequence.
    let mut one = vec![0.0; listener.latent_dim()];
    let mut one_err: f64 = 0.0;
    for s in 0..n {
        let len = listener.sequence_len();
        listener
            .embed_into(&x[s * len..(s + 1) * len], &mut one)
            .unwrap();
        one_err = one_err.max(max_abs_diff(
            &one,
            &want_emb[s * one.len()..(s + 1) * one.len()],
        ));
    }
    eprintln!("{activation:?}: max |error| embedding batch {emb_err:.2e}, batch-1 {one_err:.2e}");
    assert!(
        emb_err < 1e-4 && one_err < 1e-4,
        "embedding error {emb_err}, {one_err}"
    );
    // The engine's whole autoencoder, as training runs it: the reconstruction.
    let model = &listener.metadata().model;
    let net = super::lstm::Network::new(model, &golden_weights(model)).unwrap();
    let mut normalised = vec![0.0; x.len()];
    listener
        .metadata()
        .normalisation
        .apply(&x, &mut normalised, listener.sequence_len());
    let mut rec = vec![0.0; x.len()];
    super::lstm::Workspace::new(&net, n).reconstruct(&net, &normalised, n, &mut rec);
    listener
        .metadata()
        .normalisation
        .invert(&mut rec, listener.sequence_len(), &x);
    let engine_rec_err = max_abs_diff(&rec, &want_rec);
    eprintln!("{activation:?}: engine reconstruction {engine_rec_err:.2e} dB");
    assert!(
        engine_rec_err < 1e-4,
        "engine reconstruction error {engine_rec_err} dB"
    );
    #[cfg(feature = "candle")]
    {
        // The reference: candle's autoencoder, embedding and reconstruction.
        let cfg = listener.metadata().model.clone();
        let reference = super::candle::Seq2Seq::from_tensors(
            listener.metadata(),
            &golden_weights(&cfg),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let mut normalised = vec![0.0; x.len()];
        listener
            .metadata()
            .normalisation
            .apply(&x, &mut normalised, listener.sequence_len());
        let input = candle_core::Tensor::from_slice(
            &normalised,
            (n, cfg.steps, cfg.n_bands),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let candle_emb = reference
            .encode(&input)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut rec = reference
            .forward(&input)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        listener
            .metadata()
            .normalisation
            .invert(&mut rec, listener.sequence_len(), &x);
        let candle_err = max_abs_diff(&candle_emb, &want_emb);
        let rec_err = max_abs_diff(&rec, &want_rec);
        eprintln!(
            "{activation:?}: candle embedding {candle_err:.2e}, reconstruction {rec_err:.2e} dB"
        );
        assert!(candle_err < 1e-4, "candle embedding error {candle_err}");
        assert!(rec_err < 1e-4, "reconstruction error {rec_err} dB");
    }
    // The file round trip keeps every bit.
    let file = format::encode(
        listener.metadata(),
        &golden_weights(&listener.metadata().model),
    )
    .unwrap();
    let again = Listener::from_bytes_on(&file, Device::Cpu).unwrap();
    assert_eq!(again.embed_batch(&x, n).unwrap(), emb);
    assert_eq!(again.metadata(), listener.metadata());
}

#[test]
fn golden_relu_matches_numpy() {
    golden(Activation::Relu);
}

#[test]
fn golden_tanh_matches_numpy() {
    golden(Activation::Tanh);
}

/// With the level removed, a gain change leaves the embedding where it was; with absolute
/// levels it moves it. A version-1 file cannot claim the relative mode, and version 2 loads.
#[test]
fn a_relative_level_makes_the_embedding_gain_invariant() {
    let cfg = ModelConfig {
        activation: Activation::Tanh,
        ..ModelConfig::default()
    };
    let x = golden_inputs(1, cfg.steps, cfg.n_bands);
    let louder: Vec<f32> = x.iter().map(|v| v + 12.0).collect();
    let moved = |level: Level| {
        let mut meta = golden_meta(&cfg);
        meta.normalisation.level = level;
        meta.format_version = level.format_version();
        let mut listener = Listener::from_parts(meta, &golden_weights(&cfg), Device::Cpu).unwrap();
        let mut a = vec![0.0; listener.latent_dim()];
        let mut b = a.clone();
        listener.embed_into(&x, &mut a).unwrap();
        listener.embed_into(&louder, &mut b).unwrap();
        a.iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(moved(Level::Relative) < 1e-5, "{}", moved(Level::Relative));
    assert!(moved(Level::Absolute) > 1e-3, "{}", moved(Level::Absolute));

    // Silence stays silence: a buffer at the cochlea's floor is not a flat spectrum at its own
    // level (what loud noise is), but 40 dB below the quietest level removed.
    let mut norm = golden_meta(&cfg).normalisation;
    norm.level = Level::Relative;
    let n = cfg.steps * cfg.n_bands;
    let (mut silent, mut flat) = (vec![0.0; n], vec![0.0; n]);
    let silence = vec![crate::frame::SILENCE_DB; n];
    norm.apply(&silence, &mut silent, n);
    norm.apply(&vec![-30.0; n], &mut flat, n);
    let at = |relative_db: f32| (relative_db - norm.offset[0]) * norm.scale[0];
    let silence_below_quietest = crate::frame::SILENCE_DB - format::QUIETEST_LEVEL_DB;
    assert!((silent[0] - at(silence_below_quietest)).abs() < 1e-5);
    assert!((flat[0] - at(0.0)).abs() < 1e-5);
    // And back, exactly: silence alone, and a silent band in a louder buffer.
    let mut quiet_band = vec![-20.0; n];
    quiet_band[0] = crate::frame::SILENCE_DB;
    for input in [&silence, &quiet_band] {
        let mut round_trip = vec![0.0; n];
        norm.apply(input, &mut round_trip, n);
        norm.invert(&mut round_trip, n, input);
        let err = round_trip
            .iter()
            .zip(input.iter())
            .map(|(r, x)| (r - x).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-3, "round trip off by {err} dB");
    }

    let mut meta = golden_meta(&cfg);
    meta.normalisation.level = Level::Relative;
    meta.format_version = 1;
    assert!(meta.validate().is_err());
    meta.format_version = 2;
    assert!(meta.validate().is_ok());
}

#[test]
fn every_batch_size_agrees_with_one_at_a_time() {
    for activation in [Activation::Relu, Activation::Tanh] {
        let mut listener = golden_listener(activation);
        let n = 19; // an odd batch
        let x = golden_inputs(n, 8, 100);
        let batch = listener.embed_batch(&x, n).unwrap();
        let mut one = vec![0.0; 250];
        for s in 0..n {
            listener
                .embed_into(&x[s * 800..(s + 1) * 800], &mut one)
                .unwrap();
            for (j, (&a, &b)) in one.iter().zip(&batch[s * 250..]).enumerate() {
                assert!(
                    (a - b).abs() < 1e-6,
                    "{activation:?} seq {s} unit {j}: {a} {b}"
                );
            }
        }
        for m in 1..=9 {
            let part = listener.embed_batch(&x[..m * 800], m).unwrap();
            assert!(
                part.iter().zip(&batch).all(|(a, b)| (a - b).abs() < 1e-6),
                "batch of {m}"
            );
        }
    }
}

#[test]
fn a_listener_can_move_to_the_worker_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Listener>();
    send_sync::<ListenerError>();
}

#[test]
fn wrong_input_lengths_are_errors() {
    let mut listener = golden_listener(Activation::Relu);
    let mut out = vec![0.0; 250];
    assert!(matches!(
        listener.embed_into(&[0.0; 799], &mut out),
        Err(ListenerError::Input {
            expected: 800,
            found: 799
        })
    ));
    assert!(matches!(
        listener.embed_into(&[0.0; 800], &mut out[..10]),
        Err(ListenerError::Input { .. })
    ));
    assert!(matches!(
        listener.embed_batch(&[0.0; 1600], 3),
        Err(ListenerError::Input { .. })
    ));
    assert_eq!(listener.embed_batch(&[], 0).unwrap(), Vec::<f32>::new());
    assert_eq!(listener.device_name(), "cpu");
}

/// A small valid file and its parts, for the refusal tests.
fn small_model() -> (ListenerMetadata, Vec<NamedTensor>) {
    let cfg = ModelConfig {
        n_bands: 6,
        steps: 3,
        encoder: vec![4, 5],
        decoder: vec![3],
        activation: Activation::Tanh,
    };
    (golden_meta(&cfg), golden_weights(&cfg))
}

fn encode_raw(meta_json: &str, tensors: &[NamedTensor], dtype: safetensors::Dtype) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| {
            let b: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            if dtype == safetensors::Dtype::F16 {
                b[..b.len() / 2].to_vec()
            } else {
                b
            }
        })
        .collect();
    let views: Vec<_> = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            (
                t.name.clone(),
                safetensors::tensor::TensorView::new(dtype, t.shape.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = std::collections::HashMap::from([(
        format::METADATA_KEY.to_string(),
        meta_json.to_string(),
    )]);
    safetensors::serialize(views, Some(meta)).unwrap()
}

#[test]
fn the_loader_refuses_bad_files_with_clear_errors() {
    let (meta, tensors) = small_model();
    let good = format::encode(&meta, &tensors).unwrap();
    assert!(Listener::from_bytes(&good).is_ok());
    let json = serde_json::to_value(&meta).unwrap();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut j = json.clone();
        edit(&mut j);
        encode_raw(&j.to_string(), &tensors, safetensors::Dtype::F32)
    };
    let err = |bytes: &[u8]| Listener::from_bytes(bytes).unwrap_err();

    assert!(matches!(err(b""), ListenerError::Format(_)));
    assert!(matches!(
        err(b"definitely not a model file"),
        ListenerError::Format(_)
    ));
    assert!(matches!(
        err(&good[..good.len() - 1]),
        ListenerError::Format(_)
    ));
    assert!(matches!(
        err(&good[..good.len() / 2]),
        ListenerError::Format(_)
    ));
    assert!(matches!(
        err(&safetensors::serialize(
            Vec::<(String, safetensors::tensor::TensorView)>::new(),
            None
        )
        .unwrap()),
        ListenerError::MissingMetadata
    ));
    assert!(matches!(
        err(&encode_raw("{", &tensors, safetensors::Dtype::F32)),
        ListenerError::Metadata(_)
    ));
    assert!(matches!(
        err(&with(&|j| j["format_version"] = 3.into())),
        ListenerError::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    ));
    // Version 1 files cannot claim version 2's relative level.
    assert!(matches!(
        err(&with(&|j| {
            j["format_version"] = 1.into();
            j["normalisation"]["level"] = "Relative".into();
        })),
        ListenerError::Inconsistent(_)
    ));
    assert!(matches!(
        err(&with(&|j| j["format_version"] = 0.into())),
        ListenerError::UnsupportedVersion { found: 0, .. }
    ));
    assert!(matches!(
        err(&with(&|j| j["format_version"] = (-1).into())),
        ListenerError::Metadata(_)
    ));
    assert!(matches!(
        err(&with(&|j| {
            j.as_object_mut().unwrap().remove("model");
        })),
        ListenerError::Metadata(_)
    ));
    assert!(matches!(
        err(&with(&|j| j["features"]["n_bands"] = 7.into())),
        ListenerError::Inconsistent(_)
    ));
    assert!(matches!(
        err(&with(&|j| j["features"]["spec"]["steps"] = 4.into())),
        ListenerError::Inconsistent(_)
    ));
    assert!(matches!(
        err(&with(&|j| j["features"]["low_hz"] = (-1.0).into())),
        ListenerError::Inconsistent(_)
    ));
    assert!(matches!(
        err(&with(&|j| j["model"]["encoder"] = serde_json::json!([]))),
        ListenerError::Inconsistent(_)
    ));
    assert!(matches!(
        err(&with(
            &|j| j["model"]["encoder"] = serde_json::json!([4, 100000])
        )),
        ListenerError::Inconsistent(_)
    ));
    assert!(matches!(
        err(&with(&|j| {
            j["model"]["steps"] = 4000.into();
            j["model"]["encoder"] = serde_json::json!([4, 300]);
        })),
        ListenerError::Inconsistent(m) if m.contains("step-gates")
    ));
    assert!(matches!(
        err(&with(&|j| j["model"]["activation"] = "sigmoid".into())),
        ListenerError::Metadata(_)
    ));
    assert!(matches!(
        err(&with(
            &|j| j["normalisation"]["scale"] = serde_json::json!(vec![1.0; 5])
        )),
        ListenerError::Inconsistent(_)
    ));
    assert!(matches!(
        err(&with(&|j| j["normalisation"]["scale"][0] = 0.0.into())),
        ListenerError::Inconsistent(_)
    ));
    // JSON has no NaN; an overflowing literal parses to infinity or fails, never passes.
    let mut inf = json.to_string();
    inf = inf.replacen("\"offset\":[", "\"offset\":[1e999,", 1);
    assert!(Listener::from_bytes(&encode_raw(&inf, &tensors, safetensors::Dtype::F32)).is_err());
    // Shapes agreeing with each other but not with the stored tensors.
    assert!(matches!(
        err(&with(&|j| j["model"]["encoder"] = serde_json::json!([4, 6]))),
        ListenerError::Shape { .. }
    ));
    // PCA of the wrong size.
    let pca = crate::pca::Pca {
        mean: vec![0.0; 5],
        axes: vec![vec![0.0; 5]; 2],
        explained_variance: vec![1.0; 2],
    };
    let pca_json = serde_json::to_value(&pca).unwrap();
    assert!(Listener::from_bytes(&with(&|j| j["pca"] = pca_json.clone())).is_ok());
    // Axes the outputs cannot use still load: the model embeds, and the outputs judge the axes.
    for bad in [
        serde_json::json!({"mean": vec![0.0; 4]}),
        serde_json::json!({"explained_variance": [1.0, 0.0]}),
        serde_json::json!({"components": vec![vec![0.0; 5]; crate::pca::MAX_AXES + 1]}),
    ] {
        let mut edited = pca_json.clone();
        for (k, v) in bad.as_object().unwrap() {
            edited[k] = v.clone();
        }
        let listener = Listener::from_bytes(&with(&|j| j["pca"] = edited.clone())).unwrap();
        let pca = listener.metadata().pca.as_ref().unwrap();
        assert!(pca.validate(listener.latent_dim()).is_err(), "{bad}");
    }
    // Not even a PCA: a clear metadata error.
    assert!(matches!(
        err(&with(&|j| j["pca"] = serde_json::json!({"mean": "x"}))),
        ListenerError::Metadata(_)
    ));
    // Older files carry three more PCA fields, which are ignored.
    let mut old_pca = pca_json.clone();
    old_pca["explained_variance_ratio"] = serde_json::json!([0.5, 0.5]);
    old_pca["projection_low"] = serde_json::json!([-1.0, -1.0]);
    old_pca["projection_high"] = serde_json::json!([1.0, 1.0]);
    assert!(Listener::from_bytes(&with(&|j| j["pca"] = old_pca.clone())).is_ok());

    // Tensors.
    assert!(
        matches!(err(&encode_raw(&json.to_string(), &tensors[1..], safetensors::Dtype::F32)), ListenerError::MissingTensor(n) if n == "encoder.0.kernel")
    );
    let mut extra = tensors.clone();
    extra.push(NamedTensor {
        name: "decoder.9.bias".into(),
        shape: vec![1],
        data: vec![0.0],
    });
    assert!(matches!(
        err(&encode_raw(
            &json.to_string(),
            &extra,
            safetensors::Dtype::F32
        )),
        ListenerError::UnexpectedTensor(_)
    ));
    let mut reshaped = tensors.clone();
    reshaped[0].shape = vec![reshaped[0].shape[1], reshaped[0].shape[0]];
    assert!(matches!(
        err(&encode_raw(
            &json.to_string(),
            &reshaped,
            safetensors::Dtype::F32
        )),
        ListenerError::Shape { .. }
    ));
    let mut nan = tensors.clone();
    nan[4].data[3] = f32::NAN;
    assert!(
        matches!(err(&encode_raw(&json.to_string(), &nan, safetensors::Dtype::F32)), ListenerError::NonFinite(n) if n == nan[4].name)
    );
    nan[4].data[3] = f32::INFINITY;
    assert!(matches!(
        err(&encode_raw(
            &json.to_string(),
            &nan,
            safetensors::Dtype::F32
        )),
        ListenerError::NonFinite(_)
    ));
    assert!(matches!(
        err(&encode_raw(
            &json.to_string(),
            &tensors,
            safetensors::Dtype::F16
        )),
        ListenerError::Dtype { .. }
    ));
    // Writing refuses what reading would refuse.
    assert!(format::encode(&meta, &nan).is_err());
    assert!(format::encode(&meta, &tensors[1..]).is_err());
    // Error messages name the problem.
    assert_eq!(
        err(&with(&|j| j["format_version"] = 7.into())).to_string(),
        "model format version 7 is not supported; this build reads versions 1 to 2"
    );
    assert!(matches!(
        Listener::load("/nonexistent/model.safetensors"),
        Err(ListenerError::Io { .. })
    ));
    assert!(matches!(Listener::load("/"), Err(ListenerError::Io { .. })));
    // A file past the size limit is refused without being read into memory (a sparse file, so
    // the test takes no disk space); one exactly at the limit is read and refused as a format.
    let dir = std::env::temp_dir().join(format!("echoic-too-large-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let huge = dir.join("huge.safetensors");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(MAX_MODEL_BYTES + 1).unwrap();
    let refused = Listener::load(&huge);
    assert!(
        matches!(refused, Err(ListenerError::TooLarge { .. })),
        "{refused:?}"
    );
    file.set_len(MAX_MODEL_BYTES).unwrap();
    assert!(matches!(
        Listener::load(&huge),
        Err(ListenerError::Format(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_loader_never_panics_on_damaged_files() {
    let (meta, tensors) = small_model();
    let good = format::encode(&meta, &tensors).unwrap();
    // Every truncation.
    for len in 0..good.len() {
        assert!(
            Listener::from_bytes(&good[..len]).is_err(),
            "truncated to {len}"
        );
    }
    // Bit flips and byte overwrites everywhere (some land in weights and still load).
    let mut rng = crate::rng::SplitMix64(3);
    for pos in 0..good.len() {
        let mut bad = good.clone();
        bad[pos] ^= 1 << rng.below(8);
        let _ = Listener::from_bytes(&bad);
        bad[pos] = rng.next_u64() as u8;
        let _ = Listener::from_bytes(&bad);
    }
    // Random bytes, with and without a plausible header length.
    for len in [1, 7, 8, 9, 64, 1000] {
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        assert!(Listener::from_bytes(&bytes).is_err());
        if len >= 8 {
            bytes[..8].copy_from_slice(&((len as u64).saturating_sub(8)).to_le_bytes());
            assert!(Listener::from_bytes(&bytes).is_err());
        }
    }
}
