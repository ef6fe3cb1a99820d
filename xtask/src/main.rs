//! Project tasks: `cargo xtask bundle …` (nice-plug's bundler), `cargo xtask test` (everything
//! CI runs) and `cargo xtask demo` (the main job: release bundles and the listener on a demo clip).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bundle") | Some("bundle-universal") | Some("known-packages") => {
            nice_plug_xtask::main_with_args("cargo xtask", std::env::args().skip(1))
        }
        _ => bail!(
            "usage:\n  cargo xtask bundle echoic [--release]   build Echoic.clap, Echoic.vst3 and the standalone\n  \
             cargo xtask test                      bundle, then run every Rust and host test\n  \
             cargo xtask demo                      release bundles, then listen to the demo clip"
        ),
    }
}

/// The workspace root (the parent of this crate's manifest directory).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_owned()
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

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Everything CI checks, in one profile: lints, the debug bundles (with nice-plug's
/// `assert_process_allocs`, so an allocation in `process()` aborts the host tests), the Rust tests
/// and the VST3 host tests in Python.
fn test() -> Result<()> {
    let cargo = cargo();
    run(&cargo, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    nice_plug_xtask::chdir_workspace_root()?;
    nice_plug_xtask::main_with_args("cargo xtask", ["bundle", "echoic"].map(String::from))?;
    run(&cargo, &["test", "--workspace"])?;
    let python = root().join(".venv/bin/python");
    if !python.exists() {
        bail!("{} is missing: run .ci/setup-debian first", python.display());
    }
    run(python.to_str().context("non-UTF-8 path")?, &["-m", "pytest", "tests/python", "-q"])
}

/// The main job: release bundles, then the shipped listener on the demo clip.
fn demo() -> Result<()> {
    nice_plug_xtask::chdir_workspace_root()?;
    nice_plug_xtask::main_with_args("cargo xtask", ["bundle", "echoic", "--release"].map(String::from))?;
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
    println!("\nThe shipped listener's embeddings and pictures are in {}", out.display());
    Ok(())
}
