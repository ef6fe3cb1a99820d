//! Packages: `apt-get download`, `dpkg-deb -x`, walking the extracted trees and unzipping the
//! game archives. Offline: runs external tools and writes the cache.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::part_path;
use crate::audio_file::{has_extension, is_audio_file};

/// Zip archives that hold game audio.
const ZIP_EXTENSIONS: &[&str] = &["wz", "pk3", "zip"];

/// Downloads `pkg` into `cache/debs` unless a `.deb` of it is there, and extracts it into
/// `cache/extracted/pkg` unless that exists.
pub(super) fn fetch_package(cache: &Path, pkg: &str) -> Result<()> {
    let debs = cache.join("debs");
    fs::create_dir_all(&debs)?;
    let deb = match find_deb(&debs, pkg)? {
        Some(deb) => deb,
        None => {
            run(Command::new("apt-get")
                .arg("download")
                .arg(pkg)
                .current_dir(&debs))
            .with_context(|| format!("apt-get download {pkg}"))?;
            find_deb(&debs, pkg)?.with_context(|| format!("apt-get download {pkg} left no .deb"))?
        }
    };
    let dest = extracted_dir(cache, pkg);
    if dest.is_dir() {
        return Ok(());
    }
    let tmp = part_path(&dest);
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir_all(&tmp)?;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))
        .with_context(|| format!("dpkg-deb -x {}", deb.display()))?;
    fs::rename(&tmp, &dest)?;
    Ok(())
}

fn find_deb(dir: &Path, pkg: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{pkg}_");
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

pub(super) fn extracted_dir(cache: &Path, pkg: &str) -> PathBuf {
    cache.join("extracted").join(pkg)
}

/// Fails early, with one message, when an external tool a class needs is missing.
pub(super) fn require_tool(name: &str) -> Result<()> {
    Command::new(name)
        .arg("--version")
        .output()
        .map(|_| ())
        .with_context(|| format!("{name} is needed but cannot be run; install it"))
}

pub(super) fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Decodes `path` through ffmpeg (for formats symphonia lacks: raw G.722, Opus) into mono
/// samples at `rate`; `format` forces the input format for headerless files. Allocates and runs
/// ffmpeg.
pub(crate) fn decode_with_ffmpeg(path: &Path, format: Option<&str>, rate: u32) -> Result<Vec<f32>> {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-v", "error"]);
    if let Some(format) = format {
        cmd.args(["-f", format]);
    }
    cmd.arg("-i")
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar"])
        .arg(rate.to_string())
        .arg("-");
    let out = run(&mut cmd).with_context(|| format!("ffmpeg cannot decode {}", path.display()))?;
    let samples: Vec<f32> = out
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if samples.is_empty() {
        bail!("no audio in {}", path.display());
    }
    Ok(samples)
}

/// Every regular file under `dir`, sorted; symbolic links are not followed, so that a file is
/// never counted twice.
pub(super) fn walk(dir: &Path) -> Vec<PathBuf> {
    fn rec(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                rec(&entry.path(), out);
            } else if ft.is_file() {
                out.push(entry.path());
            }
        }
    }
    let mut out = Vec::new();
    rec(dir, &mut out);
    out.sort();
    out
}
/// Extracts the audio members of every zip archive in the package into
/// `cache/unzipped/pkg/ARCHIVE/`, unless that exists.
pub(super) fn unzip_audio(cache: &Path, pkg: &str) -> Result<()> {
    for archive in walk(&extracted_dir(cache, pkg)) {
        if !has_extension(&archive, ZIP_EXTENSIONS) {
            continue;
        }
        let name = archive.file_name().expect("a file has a name");
        let dest = cache.join("unzipped").join(pkg).join(name);
        if dest.is_dir() {
            continue;
        }
        let tmp = part_path(&dest);
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let file = fs::File::open(&archive)
            .with_context(|| format!("cannot open {}", archive.display()))?;
        let mut zip = zip::ZipArchive::new(file)
            .with_context(|| format!("cannot read zip {}", archive.display()))?;
        for i in 0..zip.len() {
            let mut member = zip
                .by_index(i)
                .with_context(|| format!("{}: member {i}", archive.display()))?;
            if !member.is_file() {
                continue;
            }
            // `enclosed_name` refuses absolute paths and `..`.
            let Some(rel) = member.enclosed_name() else {
                continue;
            };
            if !is_audio_file(&rel) {
                continue;
            }
            let out = tmp.join(&rel);
            if let Some(parent) = out.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut f = fs::File::create(&out)?;
            std::io::copy(&mut member, &mut f)
                .with_context(|| format!("{}: {}", archive.display(), rel.display()))?;
        }
        fs::rename(&tmp, &dest)?;
    }
    Ok(())
}
