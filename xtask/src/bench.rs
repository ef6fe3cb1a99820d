//! `cargo xtask bench [--torch]`: the benchmarks, and with `--torch` the LSTM autoencoder against
//! PyTorch's `nn.LSTM` in the same run, on the same shapes, weights and batch.
//!
//! The Rust LSTM bench (`cargo bench -p echoic-core --bench lstm -- --out DIR`) writes
//! `DIR/weights.safetensors` (the weights and the inputs) and `DIR/echoic.json` (the
//! configuration and Echoic's timings); `core/benches/torch_lstm.py DIR` times PyTorch on the
//! same files with one thread and writes `DIR/torch.json`. This command prints both figures, the
//! ratio (PyTorch's time divided by Echoic's) and one machine-readable `torch-ratio NAME RATIO`
//! line per comparison. Targets are printed next to the ratios but never fail the command:
//! benchmarks inform, and shared machines are noisy.
//!
//! PyTorch comes from `$ECHOIC_TORCH_PYTHON` (a Python that imports torch and numpy) or else is
//! installed from PyPI into the bench's own virtual environment, `target/bench-venv`, never into
//! CI's test environment (`.venv`).

use super::{cargo, root, run};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where the LSTM bench writes its files, under the workspace root.
const OUT_DIR: &str = "target/bench-lstm";

/// The bench's own virtual environment for PyTorch, under the workspace root.
const VENV_DIR: &str = "target/bench-venv";

/// PyTorch's side of the comparison, under the workspace root.
const TORCH_SCRIPT: &str = "core/benches/torch_lstm.py";

/// The variable that may name a Python with torch and numpy, used instead of the bench's venv.
const TORCH_PYTHON_VAR: &str = "ECHOIC_TORCH_PYTHON";

/// What the bench's venv installs from PyPI when it cannot import them.
const TORCH_REQUIREMENTS: [&str; 2] = ["torch", "numpy"];

/// The target for Echoic's two-thread speed-up of a training step (train-b64 divided by
/// train-b64-2threads).
const TWO_THREAD_SPEED_UP_TARGET: f64 = 1.6;

/// PyTorch's two-thread training step in `torch.json`, printed for information.
const TORCH_TWO_THREADS_KEY: &str = "train-b64-torch-2threads";

/// The largest difference between Echoic's and PyTorch's embedding of the same input that is
/// still rounding; more means the two sides do not compute the same network.
const EMBEDDING_TOLERANCE: f64 = 1e-4;

/// The embedding both sides write for the cross-check: the first row of `input_b64`'s.
const EMBEDDING_KEY: &str = "embedding_b64_first_row";

/// One comparison between PyTorch and Echoic.
struct Comparison {
    /// The name in `echoic.json` and in the `torch-ratio` line.
    name: &'static str,
    /// PyTorch's figure it is compared with, by its name in `torch.json`.
    torch: &'static str,
    /// What one figure measures.
    per: &'static str,
    /// The ratio aimed at, if any.
    target: Option<f64>,
    /// What the row compares, when the name does not say.
    note: &'static str,
}

/// The comparisons, in the order they are printed. PyTorch always runs on one thread, so the
/// two-thread row compares Echoic on two threads with PyTorch on one.
const COMPARISONS: [Comparison; 4] = [
    Comparison {
        name: "infer-b1",
        torch: "infer-b1",
        per: "per embedding",
        target: Some(3.0),
        note: "",
    },
    Comparison {
        name: "infer-b64",
        torch: "infer-b64",
        per: "per embedding",
        target: Some(1.3),
        note: "",
    },
    Comparison {
        name: "train-b64",
        torch: "train-b64",
        per: "per step",
        target: Some(1.5),
        note: "",
    },
    Comparison {
        name: "train-b64-2threads",
        torch: "train-b64",
        per: "per step",
        target: None,
        note: "Echoic on 2 threads, PyTorch on 1",
    },
];

/// `cargo xtask bench [--torch]`: without `--torch`, the listening bench and the LSTM bench with
/// Echoic's figures; with it, the LSTM bench and PyTorch on the same files, with the ratios.
pub fn bench(args: impl Iterator<Item = String>) -> Result<()> {
    let mut torch = false;
    for arg in args {
        match arg.as_str() {
            "--torch" => torch = true,
            _ => bail!("unknown bench option `{arg}`; usage: cargo xtask bench [--torch]"),
        }
    }
    // Find or install PyTorch first, so that a failed install fails before the long benches.
    let python = if torch { Some(torch_python()?) } else { None };
    if !torch {
        run(
            &cargo(),
            &["bench", "-p", "echoic-core", "--bench", "listening"],
        )?;
    }

    let out = root().join(OUT_DIR);
    let echoic_json = out.join("echoic.json");
    let torch_json = out.join("torch.json");
    // A failed run must not leave an earlier run's figures to be read as this one's.
    for stale in [&echoic_json, &torch_json] {
        if stale.exists() {
            std::fs::remove_file(stale)
                .with_context(|| format!("could not remove {}", stale.display()))?;
        }
    }
    // Cargo runs a bench in its package's directory: the directory must be absolute.
    let out_arg = out.to_str().context("non-UTF-8 path")?;
    run(
        &cargo(),
        &[
            "bench",
            "-p",
            "echoic-core",
            "--bench",
            "lstm",
            "--",
            "--out",
            out_arg,
        ],
    )?;
    let echoic = read_json(&echoic_json)?;

    let Some(python) = python else {
        print_echoic(&echoic, &echoic_json)?;
        return Ok(());
    };
    let script = root().join(TORCH_SCRIPT);
    run(
        python.to_str().context("non-UTF-8 path")?,
        &[script.to_str().context("non-UTF-8 path")?, out_arg],
    )
    .context("PyTorch's side of the benchmark failed")?;
    let torch = read_json(&torch_json)?;
    print_comparison(&echoic, &echoic_json, &torch, &torch_json)
}

/// A Python that imports torch and numpy: `$ECHOIC_TORCH_PYTHON` if set, else the bench's venv,
/// created and given PyTorch from PyPI when it lacks it.
fn torch_python() -> Result<PathBuf> {
    if let Some(python) = std::env::var_os(TORCH_PYTHON_VAR).filter(|p| !p.is_empty()) {
        let python = PathBuf::from(python);
        if !imports_torch(&python) {
            bail!(
                "${TORCH_PYTHON_VAR} is {}, which cannot import torch and numpy",
                python.display()
            );
        }
        eprintln!(
            "Using PyTorch from ${TORCH_PYTHON_VAR} = {}",
            python.display()
        );
        return Ok(python);
    }
    let venv = root().join(VENV_DIR);
    let python = venv.join("bin/python");
    if !python.exists() {
        let venv_arg = venv.to_str().context("non-UTF-8 path")?;
        run("python3", &["-m", "venv", venv_arg]).context(
            "could not create the bench's virtual environment (is python3-venv installed?)",
        )?;
    }
    if !imports_torch(&python) {
        eprintln!(
            "Installing {} from PyPI into {} (PyPI's torch is a CUDA build: several GB of NVIDIA \
             wheels, though the bench runs on the CPU); set ${TORCH_PYTHON_VAR} to use a Python \
             that has them",
            TORCH_REQUIREMENTS.join(" and "),
            venv.display()
        );
        let mut args = vec!["-m", "pip", "install", "--disable-pip-version-check"];
        args.extend(TORCH_REQUIREMENTS);
        run(python.to_str().context("non-UTF-8 path")?, &args)
            .context("could not install PyTorch from PyPI into the bench's venv")?;
        if !imports_torch(&python) {
            bail!(
                "{} still cannot import torch and numpy after installing them: remove {} and run \
                 again",
                python.display(),
                venv.display()
            );
        }
    }
    Ok(python)
}

/// Whether `python` runs and imports torch and numpy.
fn imports_torch(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import torch, numpy"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Reads and parses a JSON file.
fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("the bench did not write {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// The time named `name` in a file's `seconds` object: a positive, finite number of seconds.
fn seconds(json: &Value, path: &Path, name: &str) -> Result<f64> {
    let Some(value) = json.get("seconds").and_then(|s| s.get(name)) else {
        bail!("{}: no seconds.{name}", path.display());
    };
    match value.as_f64() {
        Some(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => bail!(
            "{}: seconds.{name} is {}, not a positive number of seconds",
            path.display(),
            show(value)
        ),
    }
}

/// A value as the bench prints it, compact and readable: strings without quotes, numbers as
/// `f64`s (`100`, not `100.0`), arrays as `[50, 250]`. serde_json's own `Display` writes JSON
/// (`"tanh"`, `[50,250]`), which reads worse in a sentence.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), |n| n.to_string()),
        Value::Array(items) => {
            let items: Vec<_> = items.iter().map(show).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(members) => {
            let members: Vec<_> = members
                .iter()
                .map(|(k, v)| format!("{k}: {}", show(v)))
                .collect();
            format!("{{{}}}", members.join(", "))
        }
        Value::Null | Value::Bool(_) => value.to_string(),
    }
}

/// One line describing the benchmarked network, from `echoic.json`.
fn describe(echoic: &Value) -> String {
    let field = |key: &str| match echoic.get("config").and_then(|c| c.get(key)) {
        Some(value) => show(value),
        None => "?".to_owned(),
    };
    let batch = match echoic.get("batch") {
        Some(value) => show(value),
        None => "?".to_owned(),
    };
    format!(
        "LSTM autoencoder: {} bands, {} steps, encoder {}, decoder {}, {}; training batch {batch}",
        field("n_bands"),
        field("steps"),
        field("encoder"),
        field("decoder"),
        field("activation"),
    )
}

/// Seconds as microseconds, with about four significant digits.
fn micros(seconds: f64) -> String {
    let us = seconds * 1e6;
    if us < 10.0 {
        format!("{us:.3} µs")
    } else if us < 100.0 {
        format!("{us:.2} µs")
    } else if us < 10_000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{us:.0} µs")
    }
}

/// Echoic's two-thread speed-up of a training step and the line that reports it.
fn speed_up_line(echoic: &Value, path: &Path) -> Result<String> {
    let speed_up =
        seconds(echoic, path, "train-b64")? / seconds(echoic, path, "train-b64-2threads")?;
    Ok(format!(
        "Echoic's two-thread speed-up (train-b64 / train-b64-2threads): {speed_up:.2} (target ≥ \
         {TWO_THREAD_SPEED_UP_TARGET}: {})",
        verdict(speed_up, TWO_THREAD_SPEED_UP_TARGET)
    ))
}

/// Whether a figure meets its target, in words.
fn verdict(value: f64, target: f64) -> &'static str {
    if value >= target {
        "met"
    } else {
        "missed"
    }
}

/// Prints Echoic's LSTM figures alone (`cargo xtask bench` without `--torch`).
fn print_echoic(echoic: &Value, path: &Path) -> Result<()> {
    println!("\n{}", describe(echoic));
    for comparison in &COMPARISONS {
        let s = seconds(echoic, path, comparison.name)?;
        println!(
            "  {:<20} {:>14} {}",
            comparison.name,
            micros(s),
            comparison.per
        );
    }
    println!("{}", speed_up_line(echoic, path)?);
    println!("(`cargo xtask bench --torch` compares these with PyTorch)");
    Ok(())
}

/// The cross-check of Echoic's and PyTorch's embeddings of the same input (the first row of
/// `input_b64`), when both files carry one: a line saying how far apart they are, a warning when
/// they differ by more than rounding. It informs and does not fail, as the figures do not.
fn embedding_check(echoic: &Value, torch: &Value) -> Option<String> {
    let values = |json: &Value| -> Option<Vec<f64>> {
        json.get(EMBEDDING_KEY)?
            .as_array()?
            .iter()
            .map(|item| match item {
                // serde_json writes a NaN as null.
                Value::Null => Some(f64::NAN),
                _ => item.as_f64(),
            })
            .collect()
    };
    let (ours, theirs) = (values(echoic)?, values(torch)?);
    if ours.len() != theirs.len() {
        return Some(format!(
            "WARNING: Echoic's embedding has {} values, PyTorch's {}: the two sides do not compute \
             the same network",
            ours.len(),
            theirs.len()
        ));
    }
    let difference = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .map(|d| if d.is_nan() { f64::INFINITY } else { d })
        .fold(0.0, f64::max);
    Some(if difference <= EMBEDDING_TOLERANCE {
        format!(
            "Cross-check: Echoic's and PyTorch's embeddings of input_b64's first row agree to \
             {difference:.1e} ({} values)",
            ours.len()
        )
    } else {
        format!(
            "WARNING: Echoic's and PyTorch's embeddings of input_b64's first row differ by up to \
             {difference:.1e} (more than {EMBEDDING_TOLERANCE:.0e}): the two sides do not compute \
             the same network, and the ratios compare different work"
        )
    })
}

/// Prints the table of PyTorch's and Echoic's figures with their ratios, the two-thread figures,
/// then one `torch-ratio NAME RATIO` line per comparison.
fn print_comparison(
    echoic: &Value,
    echoic_path: &Path,
    torch: &Value,
    torch_path: &Path,
) -> Result<()> {
    let version = match torch.get("torch_version") {
        Some(value) => show(value),
        None => "?".to_owned(),
    };
    println!("\n{}", describe(echoic));
    println!(
        "PyTorch {version} (nn.LSTM, one thread) against Echoic; ratio = PyTorch's time / Echoic's"
    );
    println!(
        "  {:<20} {:>14} {:>14} {:>7}  {:<16} per",
        "", "PyTorch", "Echoic", "ratio", "target"
    );
    let mut ratios = Vec::new();
    for comparison in &COMPARISONS {
        let theirs = seconds(torch, torch_path, comparison.torch)?;
        let ours = seconds(echoic, echoic_path, comparison.name)?;
        let ratio = theirs / ours;
        let target = match comparison.target {
            Some(target) => format!("≥ {target} {}", verdict(ratio, target)),
            None => String::new(),
        };
        let note = if comparison.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", comparison.note)
        };
        println!(
            "  {:<20} {:>14} {:>14} {:>7.2}  {:<16} {}{note}",
            comparison.name,
            micros(theirs),
            micros(ours),
            ratio,
            target,
            comparison.per
        );
        ratios.push((comparison.name, ratio));
    }
    println!("{}", speed_up_line(echoic, echoic_path)?);
    let torch_one = seconds(torch, torch_path, "train-b64")?;
    let torch_two = seconds(torch, torch_path, TORCH_TWO_THREADS_KEY)?;
    println!(
        "PyTorch on two threads (for information): {} per step, a speed-up of {:.2} over one thread",
        micros(torch_two),
        torch_one / torch_two
    );
    if let Some(line) = embedding_check(echoic, torch) {
        println!("{line}");
    }
    for (name, ratio) in ratios {
        println!("torch-ratio {name} {ratio:.2}");
    }
    Ok(())
}
