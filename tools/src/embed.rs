//! Offline: `echoic embed`.
//!
//! `echoic embed`: the live pipeline over audio files, written as `.npy` matrices, a summary CSV
//! and optionally a picture.

use crate::audio_file::decode_mono;
use crate::offline::{analyse, Analysis};
use echoic_core::listener::Listener;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which representation to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layer {
    /// The listener's embedding of each frame's dilated buffer.
    Embedding,
    /// The cochlea's frames (dB).
    Cochleagram,
    /// The flattened dilated buffers (dB).
    Dilated,
}

/// The result of embedding one file.
#[derive(Clone, Debug)]
pub struct EmbeddedFile {
    /// The input.
    pub input: PathBuf,
    /// The `.npy` written.
    pub npy: PathBuf,
    /// The picture written, if asked for.
    pub png: Option<PathBuf>,
    /// Rows (frames).
    pub frames: usize,
    /// Mean over the valid, warmed-up frames (all frames if there are none such).
    pub mean: Vec<f32>,
}

/// Audio files under `inputs`, in the order given: a file is taken as it is, a folder is searched
/// recursively for wav, flac, ogg and mp3 and its files come sorted by path (so that `echoic
/// adapt` hears files in the order the user named them). Allocates; reads directories.
pub fn audio_files(inputs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            collect(input, &mut found)?;
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if crate::audio_file::is_audio_file(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// Runs one file through the pipeline the listener was trained with and returns the rows of the
/// requested layer (`frames × dims`) and the analysis. Allocates; reads the file.
pub fn embed_file(
    listener: &Listener,
    path: &Path,
    layer: Layer,
) -> anyhow::Result<(Vec<f32>, usize, Analysis)> {
    let audio = decode_mono(path)?;
    let settings = listener.metadata().features.to_settings();
    let keep_buffers = layer != Layer::Cochleagram;
    let analysis = analyse(
        &audio.samples,
        audio.sample_rate as f64,
        &settings,
        keep_buffers,
    )?;
    let (rows, dims) = match layer {
        Layer::Cochleagram => (analysis.frames.clone(), analysis.n_bands),
        Layer::Dilated => (analysis.buffers.clone(), analysis.steps * analysis.n_bands),
        Layer::Embedding => (
            listener.embed_batch(&analysis.buffers, analysis.len())?,
            listener.latent_dim(),
        ),
    };
    Ok((rows, dims, analysis))
}

/// Mean of the usable rows of `rows` (`frames × dims`), or of all rows if none is usable.
/// Allocates.
pub fn usable_mean(rows: &[f32], dims: usize, analysis: &Analysis) -> Vec<f32> {
    mean_of_rows(rows, dims, &usable_rows(analysis))
}

/// The [`usable_mean`] of `rows` followed by the standard deviation of each dimension over the
/// same rows (`2 × dims` values): a clip summarised by how it varies as well as where it sits.
/// Allocates.
pub fn usable_mean_and_spread(rows: &[f32], dims: usize, analysis: &Analysis) -> Vec<f32> {
    let usable = usable_rows(analysis);
    let mean = mean_of_rows(rows, dims, &usable);
    let mut variance = vec![0.0f32; dims];
    for &i in &usable {
        for ((v, x), m) in variance
            .iter_mut()
            .zip(&rows[i * dims..(i + 1) * dims])
            .zip(&mean)
        {
            *v += (x - m) * (x - m);
        }
    }
    let n = usable.len().max(1) as f32;
    let spread = variance.into_iter().map(|v| (v / n).sqrt());
    mean.iter().copied().chain(spread).collect()
}

/// Mean of the rows `which` of `rows` (`frames × dims`). Allocates the mean.
fn mean_of_rows(rows: &[f32], dims: usize, which: &[usize]) -> Vec<f32> {
    let mut mean = vec![0.0f32; dims];
    for &i in which {
        for (m, x) in mean.iter_mut().zip(&rows[i * dims..(i + 1) * dims]) {
            *m += x;
        }
    }
    let n = which.len().max(1) as f32;
    mean.iter_mut().for_each(|m| *m /= n);
    mean
}

/// The usable rows of `analysis`, or all of them if none is usable. Allocates.
fn usable_rows(analysis: &Analysis) -> Vec<usize> {
    let usable: Vec<usize> = analysis.usable().collect();
    if usable.is_empty() {
        (0..analysis.len()).collect()
    } else {
        usable
    }
}

/// Writes `rows` (`frames × dims`, row-major) as a float32 `.npy` file. Allocates; writes a file.
pub fn write_npy(path: &Path, rows: &[f32], dims: usize) -> anyhow::Result<()> {
    let frames = rows.len().checked_div(dims).unwrap_or(0);
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    use npyz::WriterBuilder as _;
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&[frames as u64, dims as u64])
        .writer(file)
        .begin_nd()?;
    writer.extend(rows.iter().copied())?;
    writer.finish()?;
    Ok(())
}

/// Embeds every input into `out_dir`: `<name>.npy` per file and `summary.csv`
/// (`file,frames,d0,d1,…`, the usable-frame means). A file that cannot be read is reported with
/// its name in the returned errors and the batch carries on. Allocates; reads and writes files.
pub fn embed_all(
    listener: &Listener,
    inputs: &[PathBuf],
    out_dir: &Path,
    layer: Layer,
    png: bool,
    mut on_file: impl FnMut(&Path),
) -> anyhow::Result<(Vec<EmbeddedFile>, Vec<String>)> {
    std::fs::create_dir_all(out_dir)?;
    let files = audio_files(inputs)?;
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        on_file(&path);
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = (|| -> anyhow::Result<EmbeddedFile> {
            let (rows, dims, analysis) = embed_file(listener, &path, layer)?;
            let npy = out_dir.join(format!("{stem}.npy"));
            write_npy(&npy, &rows, dims)?;
            let png = if png {
                let picture = out_dir.join(format!("{stem}.png"));
                crate::picture::draw(&picture, listener, &analysis)?;
                Some(picture)
            } else {
                None
            };
            Ok(EmbeddedFile {
                input: path.clone(),
                npy,
                png,
                frames: analysis.len(),
                mean: usable_mean(&rows, dims, &analysis),
            })
        })();
        match result {
            Ok(file) => done.push(file),
            Err(error) => errors.push(format!("{}: {error:#}", path.display())),
        }
    }
    let mut csv = String::from("file,frames");
    let dims = done.first().map_or(0, |f| f.mean.len());
    for d in 0..dims {
        let _ = write!(csv, ",d{d}");
    }
    csv.push('\n');
    for file in &done {
        let _ = write!(csv, "{},{}", file.input.display(), file.frames);
        for v in &file.mean {
            let _ = write!(csv, ",{v}");
        }
        csv.push('\n');
    }
    std::fs::write(out_dir.join("summary.csv"), csv)?;
    Ok((done, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_statistics_cover_the_usable_rows_only() {
        // Four frames of two values; the first is still warming up and the last is invalid.
        let analysis = Analysis {
            n_bands: 2,
            steps: 1,
            frames: vec![100.0, 100.0, 1.0, 10.0, 3.0, 30.0, -50.0, -50.0],
            buffers: Vec::new(),
            warming_up: vec![true, false, false, false],
            valid: vec![true, true, true, false],
        };
        assert_eq!(analysis.usable().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(usable_mean(&analysis.frames, 2, &analysis), [2.0, 20.0]);
        assert_eq!(
            usable_mean_and_spread(&analysis.frames, 2, &analysis),
            [2.0, 20.0, 1.0, 10.0]
        );
    }

    #[test]
    fn files_keep_the_order_given_and_folders_come_sorted() {
        let dir = std::env::temp_dir().join(format!("echoic-audio-files-{}", std::process::id()));
        let folder = dir.join("kit");
        std::fs::create_dir_all(folder.join("deeper")).unwrap();
        for name in ["b.wav", "a.flac", "notes.txt", "deeper/c.ogg"] {
            std::fs::write(folder.join(name), b"").unwrap();
        }
        let named = dir.join("z.wav");
        let found = audio_files(&[named.clone(), folder.clone()]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            found,
            vec![
                named,
                folder.join("a.flac"),
                folder.join("b.wav"),
                folder.join("deeper/c.ogg"),
            ]
        );
    }
}
