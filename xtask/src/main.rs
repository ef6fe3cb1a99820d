//! Project tasks: `cargo xtask bundle …` (nice-plug's bundler), `cargo xtask test` (everything
//! CI runs), `cargo xtask demo` (the main job: release bundles and the listener on a demo clip),
//! `cargo xtask fuzz` (the loaders' fuzz targets), `cargo xtask fuzz-host` (the parameter-space
//! fuzzer of the CLAP test host, for long runs), `cargo xtask check-cuda` (builds the `cuda`
//! feature, which CI does not; see `check_cuda.rs`) and `cargo xtask bench [--torch]` (the
//! benchmarks, with `--torch` the LSTM against PyTorch; see `bench.rs`; not part of CI).

mod bench;
mod check_cuda;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test") => test(),
        Some("demo") => demo(),
        Some("fuzz") => fuzz_command(args),
        Some("fuzz-host") => fuzz_host_command(args),
        Some("check-cuda") => check_cuda::check_cuda(),
        Some("bench") => bench::bench(args),
        Some("bundle") | Some("bundle-universal") | Some("known-packages") => {
            nice_plug_xtask::main_with_args("cargo xtask", std::env::args().skip(1))
        }
        _ => bail!(
            "usage:\n  cargo xtask bundle echoic [--release]   build Echoic.clap, Echoic.vst3 and the standalone\n  \
             cargo xtask test                      bundle, then run every Rust and host test\n  \
             cargo xtask demo                      release bundles, then listen to the demo clip\n  \
             cargo xtask fuzz [--seconds N] [TARGET...]\n                                        \
             fuzz the loaders (model_loader, state_loader), N s each (default 600)\n  \
             cargo xtask fuzz-host --minutes N [--seed S]\n                                        \
             fuzz parameters, states and setups through the CLAP test host for N minutes\n                                        \
             (random seeds after S; builds the debug bundle unless ECHOIC_BUNDLE_DIR is set)\n  \
             cargo xtask check-cuda                build the `cuda` feature (not in CI); without a CUDA\n                                        \
             toolkit, installs one from PyPI into ~/.cache/echoic (no GPU needed)\n  \
             cargo xtask bench                     the listening and LSTM benchmarks (not in CI)\n  \
             cargo xtask bench --torch             the LSTM benchmark against PyTorch (one thread),\n                                        \
             with `torch-ratio NAME RATIO` lines; PyTorch from $ECHOIC_TORCH_PYTHON or\n                                        \
             installed from PyPI into target/bench-venv (never .venv)"
        ),
    }
}

/// The workspace root (the parent of this crate's manifest directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Runs a command in the workspace root, failing with its name if it fails.
fn run(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("\n$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("could not start {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The cargo that runs this xtask (`$CARGO`), else `cargo` from `PATH`.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Everything CI checks, in one profile: formatting, lints, the debug bundles (with nice-plug's
/// `assert_process_allocs`, so an allocation in `process()` aborts the host tests), the Rust tests
/// and the VST3 host tests in Python.
fn test() -> Result<()> {
    let cargo = cargo();
    run(&cargo, &["fmt", "--all", "--check"])?;
    run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    nice_plug_xtask::chdir_workspace_root()?;
    nice_plug_xtask::main_with_args("cargo xtask", ["bundle", "echoic"].map(String::from))?;
    run(&cargo, &["test", "--workspace"])?;
    let python = root().join(".venv/bin/python");
    if !python.exists() {
        bail!(
            "{} is missing: run .ci/setup-debian first",
            python.display()
        );
    }
    run(
        python.to_str().context("non-UTF-8 path")?,
        &["-m", "pytest", "tests/python", "-q"],
    )?;
    fuzz(FUZZ_TARGETS, CI_FUZZ_SECONDS)
}

/// The cargo-fuzz targets in `fuzz/fuzz_targets`.
const FUZZ_TARGETS: &[&str] = &["model_loader", "state_loader"];

/// How long `cargo xtask fuzz` runs each target unless told otherwise.
const DEFAULT_FUZZ_SECONDS: u64 = 600;

/// How long `cargo xtask test` (CI) runs each target: a short run that proves the targets build,
/// start from their seeds and survive a few thousand inputs.
const CI_FUZZ_SECONDS: u64 = 30;

/// `cargo xtask fuzz [--seconds N] [TARGET...]`.
fn fuzz_command(mut args: impl Iterator<Item = String>) -> Result<()> {
    let mut seconds = DEFAULT_FUZZ_SECONDS;
    let mut targets = Vec::new();
    while let Some(arg) = args.next() {
        if arg == "--seconds" {
            let value = args.next().context("--seconds needs a number")?;
            seconds = value
                .parse()
                .with_context(|| format!("--seconds {value}: not a number of seconds"))?;
        } else if FUZZ_TARGETS.contains(&arg.as_str()) {
            targets.push(arg);
        } else {
            bail!("unknown fuzz target or option `{arg}`; the targets are {FUZZ_TARGETS:?}");
        }
    }
    let targets: Vec<&str> = if targets.is_empty() {
        FUZZ_TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    fuzz(&targets, seconds)
}

/// Writes fresh seeds (`fuzz-seeds`), then runs each target for `seconds` with libFuzzer through
/// cargo-fuzz: an instrumented dev-profile build with AddressSanitizer (cargo-fuzz needs nightly
/// flags; `RUSTC_BOOTSTRAP=1` lets the stable toolchain accept them). The corpus grows in
/// `target/fuzz/corpus/<target>`; a finding is written to `target/fuzz/artifacts/<target>/` and
/// fails the command.
fn fuzz(targets: &[&str], seconds: u64) -> Result<()> {
    let has_cargo_fuzz = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_cargo_fuzz {
        bail!("cargo-fuzz is missing: `cargo install cargo-fuzz --locked` (.ci/setup-debian does)");
    }
    let work = root().join("target/fuzz");
    let seeds = work.join("seeds");
    run(
        &cargo(),
        &[
            "run",
            "-q",
            "-p",
            "echoic-fuzz",
            "--bin",
            "fuzz-seeds",
            "--",
            seeds.to_str().context("non-UTF-8 path")?,
        ],
    )?;
    for target in targets {
        let corpus = work.join("corpus").join(target);
        let artifacts = work.join("artifacts").join(target);
        std::fs::create_dir_all(&corpus)?;
        std::fs::create_dir_all(&artifacts)?;
        let corpus = corpus.to_str().context("non-UTF-8 path")?;
        let seeds = seeds.join(target);
        let seeds = seeds.to_str().context("non-UTF-8 path")?;
        let artifact_prefix = format!(
            "-artifact_prefix={}/",
            artifacts.to_str().context("non-UTF-8 path")?
        );
        let max_time = format!("-max_total_time={seconds}");
        let mut args = vec![
            "fuzz",
            "run",
            "--dev",
            "--fuzz-dir",
            "fuzz",
            target,
            corpus,
            seeds,
            "--",
            &max_time,
            &artifact_prefix,
            // A state load re-activates the plugin and a model may be megabytes: generous, but
            // a hang or a runaway allocation is still a finding.
            "-timeout=20",
            "-rss_limit_mb=4096",
            "-max_len=65536",
            "-print_final_stats=1",
        ];
        // The dictionary `fuzz-seeds` wrote for this target, if any.
        let dict = work.join("seeds").join(format!("{target}.dict"));
        let dict_arg = format!("-dict={}", dict.to_str().context("non-UTF-8 path")?);
        if dict.is_file() {
            args.push(&dict_arg);
        }
        eprintln!("\n$ RUSTC_BOOTSTRAP=1 cargo {}", args.join(" "));
        let log = work.join(format!("{target}-plugin.log"));
        let status = Command::new(cargo())
            .args(args)
            .current_dir(root())
            .env("RUSTC_BOOTSTRAP", "1")
            // The plugin logs every refused state; keep that out of the fuzzer's output.
            .env("NICE_LOG", &log)
            .status()
            .context("could not start cargo fuzz")?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}): the input is in {}",
                artifacts.display()
            );
        }
    }
    Ok(())
}

/// `cargo xtask fuzz-host --minutes N [--seed S]`: the CLAP test host's parameter-space fuzzer
/// (`tests/tests/param_fuzz.rs`) for N minutes, one seed after another (S first if given, then
/// random ones); each seed is printed, and each round with the command that replays it. Unless
/// `ECHOIC_BUNDLE_DIR` names a bundle to test, the debug bundle is built first, so the run tests
/// the code as it is, with `assert_process_allocs` live.
fn fuzz_host_command(mut args: impl Iterator<Item = String>) -> Result<()> {
    let mut minutes = None;
    let mut seed = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--minutes" => {
                let value = args.next().context("--minutes needs a number")?;
                let n: u64 = value
                    .parse()
                    .with_context(|| format!("--minutes {value}: not a number of minutes"))?;
                if n == 0 {
                    bail!("--minutes must be at least 1");
                }
                minutes = Some(n);
            }
            "--seed" => {
                let value = args.next().context("--seed needs a number")?;
                let valid = match value.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).is_ok(),
                    None => value.parse::<u64>().is_ok(),
                };
                if !valid {
                    bail!("--seed {value}: not a 64-bit number (decimal or 0x hex)");
                }
                seed = Some(value);
            }
            _ => bail!("unknown fuzz-host option `{arg}`; usage: cargo xtask fuzz-host --minutes N [--seed S]"),
        }
    }
    let minutes = minutes.context("usage: cargo xtask fuzz-host --minutes N [--seed S]")?;
    if std::env::var_os("ECHOIC_BUNDLE_DIR").is_none() {
        nice_plug_xtask::chdir_workspace_root()?;
        nice_plug_xtask::main_with_args("cargo xtask", ["bundle", "echoic"].map(String::from))?;
    }
    let args = [
        "test",
        "-p",
        "echoic-host-tests",
        "--test",
        "param_fuzz",
        "--",
        "--nocapture",
    ];
    eprintln!(
        "\n$ ECHOIC_FUZZ_HOST_MINUTES={minutes} cargo {}",
        args.join(" ")
    );
    let mut command = Command::new(cargo());
    command
        .args(args)
        .current_dir(root())
        .env("ECHOIC_FUZZ_HOST_MINUTES", minutes.to_string());
    if let Some(seed) = &seed {
        command.env("ECHOIC_FUZZ_HOST_SEED", seed);
    }
    if std::env::var_os("NICE_LOG").is_none() {
        // The plugin logs every refused state; keep that out of the findings.
        let log = root().join("target/fuzz-host-plugin.log");
        eprintln!("(the plugin's log goes to {})", log.display());
        command.env("NICE_LOG", log);
    }
    let status = command.status().context("could not start cargo test")?;
    if !status.success() {
        bail!("the host fuzzer failed ({status}): its findings and replay commands are above");
    }
    Ok(())
}

/// The main job: release bundles, then the shipped listener on the demo clip.
fn demo() -> Result<()> {
    nice_plug_xtask::chdir_workspace_root()?;
    nice_plug_xtask::main_with_args(
        "cargo xtask",
        ["bundle", "echoic", "--release"].map(String::from),
    )?;
    let bundled = root().join("target/bundled");
    println!("\nBundles: {}", bundled.display());
    println!("  Echoic.clap  -> copy to ~/.clap/");
    println!("  Echoic.vst3  -> copy to ~/.vst3/");
    println!("  Echoic       -> the standalone (try `target/bundled/Echoic -b dummy`)");
    let out = root().join("target/demo");
    let echoic = root().join("target/release/echoic");
    run(
        echoic.to_str().context("non-UTF-8 path")?,
        &[
            "embed",
            "--png",
            "--out",
            out.to_str().context("non-UTF-8 path")?,
            "tests/fixtures/music_armygeddon.wav",
            "tests/fixtures/speech_june.wav",
        ],
    )?;
    println!(
        "\nThe shipped listener's embeddings and pictures are in {}",
        out.display()
    );
    Ok(())
}
