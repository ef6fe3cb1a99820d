//! Offline: the `echoic` command line.
//!
//! The `echoic` command-line tools. `main` hands the arguments here when the first one names a
//! subcommand; anything else starts the standalone application.

use std::path::PathBuf;
use std::time::Instant;

use crate::adaptation::scenarios::ScenarioConfig;
use crate::corpus::{build_corpus, CorpusConfig};
use crate::train::{train, Augmentation, Objective, ProgressDrawTarget, TrainConfig};
use clap::{CommandFactory, Parser, Subcommand};
use echoic_core::dilated::{DilatedSpec, Pooling};
use echoic_core::listener::adapt::{AdaptConfig, AdaptContrast};
use echoic_core::listener::encoder::Device as ListenerDevice;
use echoic_core::listener::lstm::{Geometry, Optimiser, PeakUnits, SameKind};
use echoic_core::listener::{Activation, Level, Listener, ModelConfig};
use echoic_core::worker::ListenSettings;

mod adapt;
mod report;

use adapt::{adapt_eval, adapt_files};
use report::eval;

/// Parses a number that must be above zero (a temperature).
fn positive_f32(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(_) => Err("must be above zero".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a number from 0 to 1 (a strength).
fn unit_f32(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be from 0 to 1".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Echoic's offline tools.
#[derive(Debug, Parser)]
#[command(name = "echoic", version, about)]
pub struct Cli {
    /// The tool to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The tools. Add a variant here and an arm in [`run`] for each new one.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download Debian packages and build the training corpus and the labelled evaluation set.
    Corpus(CorpusArgs),
    /// Train a listener model on folders of audio (wav, flac, ogg) and write it as safetensors.
    /// Boxed: its many options would make every command as large.
    Train(Box<TrainArgs>),
    /// Run the listener over audio files: one .npy per file and a summary.csv.
    Embed(EmbedArgs),
    /// Measure a model on a labelled folder (`DIR/<class>/<clip>`), beside the mean-spectrum
    /// baseline: 5-NN sound type (clip CV and leave-one-source-out), learned-sound ROC-AUC,
    /// reconstruction, and what the principal axes follow.
    Eval(EvalArgs),
    /// Fine-tune a listener on audio files played one after another (the plugin's Adapt,
    /// offline) and write the adapted model file.
    Adapt(AdaptArgs),
    /// Measure whether adapting helps where it was adapted: drum types across hydrogen kits and
    /// languages across asterisk prompts, learned-sound ROC-AUC before and after, and the
    /// general figures.
    AdaptEval(AdaptEvalArgs),
}

/// How `echoic adapt` and `echoic adapt-eval` adapt (see `AdaptConfig`).
#[derive(Debug, clap::Args)]
pub struct AdaptParams {
    /// AdamW learning rate.
    #[arg(long, default_value_t = AdaptConfig::default().learning_rate)]
    pub learning_rate: f64,
    /// Strength of the pull towards the starting weights (L2-SP λ).
    #[arg(long, default_value_t = AdaptConfig::default().anchor)]
    pub anchor: f64,
    /// Sequences per minibatch.
    #[arg(long, default_value_t = AdaptConfig::default().batch_size)]
    pub batch_size: usize,
    /// Most epochs.
    #[arg(long, default_value_t = AdaptConfig::default().max_epochs)]
    pub epochs: usize,
    /// Stop after this many epochs without a lower held-out loss.
    #[arg(long, default_value_t = AdaptConfig::default().patience)]
    pub patience: usize,
    /// Keep one dilated buffer in this many.
    #[arg(long, default_value_t = AdaptConfig::default().stride)]
    pub stride: usize,
    /// Refit the principal axes on the history's embeddings instead of keeping the base's.
    #[arg(long)]
    pub refit_axes: bool,
    /// Weight of the contrastive loss in the whitened geometry; 0 adapts on reconstruction
    /// alone.
    #[arg(long, default_value_t = AdaptContrast::default().weight)]
    pub contrast_weight: f32,
    /// The contrastive loss's temperature.
    #[arg(long, default_value_t = AdaptContrast::default().temperature)]
    pub contrast_temperature: f32,
    /// A moment's second view is a kept buffer up to this many later.
    #[arg(long, default_value_t = AdaptContrast::default().reach)]
    pub contrast_reach: usize,
    /// Largest spectral tilt of a view, ± dB.
    #[arg(long, default_value_t = AdaptContrast::default().augmentation.tilt_db)]
    pub contrast_tilt_db: f32,
    /// Largest band shift of a view, ± bands.
    #[arg(long, default_value_t = AdaptContrast::default().augmentation.band_shift)]
    pub contrast_band_shift: usize,
    /// Chance that a view gets another moment of the history mixed in as a quiet background.
    #[arg(long, default_value_t = AdaptContrast::default().augmentation.background_probability)]
    pub contrast_background: f32,
    /// Seed of the shuffles and the views.
    #[arg(long, default_value_t = AdaptConfig::default().seed)]
    pub seed: u64,
    /// Share of the change from the starting weights that is kept, 0..=1.
    #[arg(long, default_value_t = AdaptConfig::default().blend)]
    pub blend: f32,
}

impl AdaptParams {
    /// The adaptation these flags ask for.
    fn config(&self) -> AdaptConfig {
        AdaptConfig {
            learning_rate: self.learning_rate,
            anchor: self.anchor,
            batch_size: self.batch_size,
            max_epochs: self.epochs,
            patience: self.patience,
            stride: self.stride,
            refit_axes: self.refit_axes,
            contrast: (self.contrast_weight > 0.0).then_some(AdaptContrast {
                weight: self.contrast_weight,
                temperature: self.contrast_temperature,
                reach: self.contrast_reach,
                augmentation: Augmentation {
                    tilt_db: self.contrast_tilt_db,
                    band_shift: self.contrast_band_shift,
                    background_probability: self.contrast_background,
                    ..AdaptContrast::default().augmentation
                },
            }),
            seed: self.seed,
            blend: self.blend,
        }
    }
}

/// Arguments of `echoic adapt`.
#[derive(Debug, clap::Args)]
pub struct AdaptArgs {
    /// The model file to adapt; the built-in model when absent.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The adapted model file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Rate the audio is decoded (resampled) at before the cochlea, in Hz.
    #[arg(long, default_value_t = 22_050)]
    pub rate: u32,
    /// How to adapt.
    #[command(flatten)]
    pub params: AdaptParams,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Audio files or folders (wav, flac, ogg, mp3, aiff), heard in this order.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// Arguments of `echoic adapt-eval`.
#[derive(Debug, clap::Args)]
pub struct AdaptEvalArgs {
    /// The model file to adapt; the built-in model when absent.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// The extracted Debian packages (hydrogen-drumkits, asterisk-core-sounds-*-g722).
    #[arg(long, default_value = "data/extracted")]
    pub data: PathBuf,
    /// The labelled folder of the general figures.
    #[arg(long, default_value = "data/corpus/eval")]
    pub eval: PathBuf,
    /// Skip the general figures.
    #[arg(long)]
    pub no_general: bool,
    /// Seconds of adaptation history per scenario.
    #[arg(long, default_value_t = ScenarioConfig::default().history_seconds)]
    pub history_seconds: f64,
    /// Most measurement clips per class.
    #[arg(long, default_value_t = ScenarioConfig::default().clips_per_class)]
    pub clips_per_class: usize,
    /// Adaptation runs per scenario, with consecutive seeds from `--seed`; their mean is
    /// reported beside each run's figures.
    #[arg(long, default_value_t = ScenarioConfig::default().runs)]
    pub runs: usize,
    /// How to adapt.
    #[command(flatten)]
    pub params: AdaptParams,
}

/// Which representation `echoic embed` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LayerArg {
    /// The listener's embedding of every frame.
    Embedding,
    /// The gammatone frames in dB.
    Cochleagram,
    /// The flattened dilated buffers in dB.
    Dilated,
}

/// How a dilated buffer's steps pool their frames ([`Pooling`]), for `echoic train`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PoolingArg {
    /// The frame at each step's look-back.
    Pick,
    /// The mean of the frames each step covers.
    Mean,
    /// The per-band maximum of the frames each step covers.
    Max,
}

impl From<PoolingArg> for Pooling {
    fn from(arg: PoolingArg) -> Self {
        match arg {
            PoolingArg::Pick => Pooling::Pick,
            PoolingArg::Mean => Pooling::Mean,
            PoolingArg::Max => Pooling::Max,
        }
    }
}

/// Where `echoic train`'s peak-band cross-entropy reads a frame's loudest band ([`PeakUnits`]).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum PeakUnitsArg {
    /// In dB.
    Db,
    /// In the model's units, as the original Listener's peak-band accuracy counts it.
    Model,
}

impl From<PeakUnitsArg> for PeakUnits {
    fn from(arg: PeakUnitsArg) -> Self {
        match arg {
            PeakUnitsArg::Db => PeakUnits::Decibels,
            PeakUnitsArg::Model => PeakUnits::ModelUnits,
        }
    }
}

/// Arguments of `echoic embed`.
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// A model file; the built-in model when absent.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// What to write per frame.
    #[arg(long, value_enum, default_value = "embedding")]
    pub layer: LayerArg,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Also draw a cochleagram and embedding picture per file.
    #[arg(long)]
    pub png: bool,
    /// Audio files or folders (wav, flac, ogg, mp3).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// Arguments of `echoic eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A model file; the built-in model when absent.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The labelled folder.
    #[arg(default_value = "data/corpus/eval")]
    pub dir: PathBuf,
}

/// Arguments of `echoic corpus`.
#[derive(Debug, clap::Args)]
pub struct CorpusArgs {
    /// Where `train/`, `eval/` and `manifest.csv` are written.
    #[arg(long, default_value = "data/corpus")]
    pub out: PathBuf,
    /// Where downloaded packages, extracted files and intermediate renders are kept.
    #[arg(long, default_value = "data")]
    pub cache: PathBuf,
    /// Cap on the training minutes taken from one package; all of it when not given (training
    /// balances packages by weight instead).
    #[arg(long)]
    pub minutes_per_package: Option<f64>,
    /// Cap on the evaluation clips per class.
    #[arg(long, default_value_t = 120)]
    pub clips_per_class: usize,
    /// Keep every class's clips up to the cap instead of trimming all classes to the smallest.
    #[arg(long)]
    pub unbalanced: bool,
    /// Sample rate of the written files, in Hz.
    #[arg(long, default_value_t = 22050)]
    pub rate: u32,
    /// Do not draw progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Also train on isolated instruments, drum grooves and animals: two General MIDI
    /// SoundFonts played by fluidsynth and Scratch's sound library (4 h more). The shipped
    /// listeners were trained without them.
    #[arg(long)]
    pub with_instruments: bool,
    /// Also train on 0 A.D.'s recorded sounds (`0ad-data`, a 1.4 GB download): music, voices,
    /// animal calls, combat and ambience. The shipped listeners were trained without them.
    #[arg(long)]
    pub with_large_packages: bool,
    /// Also train on two games' recorded animal calls, with their music and effects
    /// (`widelands-data`, `wesnoth-1.16-data`): birds, crickets, frog, wolves, horses and more.
    /// The shipped listeners were trained without them.
    #[arg(long)]
    pub with_animal_calls: bool,
    /// With --with-instruments, also play each SoundFont's drums one type at a time (kick,
    /// snare, hi-hat, cymbal, tom; 31 min in all), for `echoic train --contrast-drum-types`.
    /// The shipped listeners were trained without them.
    #[arg(long, requires = "with_instruments")]
    pub with_drum_hits: bool,
}

/// Arguments of `echoic train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Folders searched recursively for training audio (e.g. data/corpus/train).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The model file to write; checkpoints go to `<stem>.checkpoints/` beside it.
    #[arg(long, default_value = "models/echoic-default.safetensors")]
    pub out: PathBuf,
    /// Most epochs to run (training stops earlier when validation stops improving).
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    pub epochs: usize,
    /// Cap on the sequences held in memory (about 3.2 kB each at the default shape).
    #[arg(long, default_value_t = TrainConfig::default().max_sequences)]
    pub max_sequences: usize,
    /// LSTM cell activation: relu (the original Listener) or tanh.
    #[arg(long, default_value = "relu")]
    pub activation: Activation,
    /// Encoder LSTM sizes, first to last, comma-separated; the last is the embedding size. The
    /// default is the original Listener's; other shapes cost more per embedding.
    #[arg(long, value_delimiter = ',', default_values_t = ModelConfig::default().encoder)]
    pub encoder: Vec<usize>,
    /// Decoder LSTM sizes before the output layer (always one of `n_bands` units).
    #[arg(long, value_delimiter = ',', default_values_t = ModelConfig::default().decoder)]
    pub decoder: Vec<usize>,
    /// The model's display name, stored in the file.
    #[arg(long, default_value = "echoic-default")]
    pub name: String,
    /// Rate the audio is resampled to before the cochlea, in Hz.
    #[arg(long, default_value_t = TrainConfig::default().sample_rate)]
    pub rate: u32,
    /// Sequences per minibatch.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    pub learning_rate: f64,
    /// Keep every N-th usable buffer (neighbours 10 ms apart overlap almost entirely).
    #[arg(long, default_value_t = TrainConfig::default().stride)]
    pub stride: usize,
    /// Stop after this many epochs without a better validation loss.
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    pub patience: usize,
    /// Keep the mean of the weights of the last N epochs instead of the best epoch's (0: the
    /// best epoch's).
    #[arg(long, default_value_t = TrainConfig::default().average_last)]
    pub average_last: usize,
    /// Seed of the initialisation, split and shuffles.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Where to train: cpu (the LSTM engine), cuda or cuda:N (candle on that GPU). The default
    /// is the first CUDA GPU in a `cuda` build that finds one, else the CPU.
    #[arg(long)]
    pub device: Option<ListenerDevice>,
    /// Threads a CPU training step uses: 1, or 2 (each takes half of every batch).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=2))]
    pub threads: u16,
    /// Train with candle's autograd on the CPU instead of the LSTM engine: the reference
    /// implementation, several times slower.
    #[arg(long)]
    pub candle: bool,
    /// The update rule: adamw, or adagrad (the original Listener's; on the CPU engine only).
    #[arg(long, default_value = "adamw", value_parser = ["adamw", "adagrad"])]
    pub optimiser: String,
    /// How each buffer's level reaches the model: absolute dB, or relative to the buffer's own
    /// level (the embedding then describes what sounds, not how loud).
    #[arg(long, default_value = "absolute", value_parser = ["absolute", "relative"])]
    pub level: String,
    /// Package balance of the batches, 0..1: 0 draws packages as the corpus holds them, 1
    /// draws every package alike.
    #[arg(long, default_value_t = TrainConfig::default().package_balance)]
    pub package_balance: f64,
    /// Kind balance of the batches, 0..1, after the packages: 0 draws the kinds read from the
    /// paths (and the files with none) as the package balance leaves them, 1 draws every kind
    /// alike.
    #[arg(long, default_value_t = TrainConfig::default().kind_balance)]
    pub kind_balance: f64,
    /// Augment training buffers on the fly: gain, tilt, pitch shift, mixes and backgrounds.
    #[arg(long)]
    pub augment: bool,
    /// Largest speed change of training buffers, as resampling makes them (0.1: played
    /// between 1/1.1 and 1.1 times as fast; 0: off). Keeps every analysed frame in memory
    /// (about 2.5 GB for 17 hours of audio).
    #[arg(long, default_value_t = TrainConfig::default().speed_change)]
    pub speed_change: f64,
    /// How each step of the dilated buffer turns the frames it covers into one: the frame at
    /// its look-back (the original Listener's, and the default listening settings'), their
    /// mean, or their per-band maximum. Stored in the model file; the plugin listens with it
    /// when the model is chosen.
    #[arg(long, value_enum)]
    pub pooling: Option<PoolingArg>,
    /// Masked reconstruction: the widest run of input bands hidden in every step (0: off).
    #[arg(long, default_value_t = 0)]
    pub mask_bands: usize,
    /// Masked reconstruction: input steps hidden wholly.
    #[arg(long, default_value_t = 0)]
    pub mask_steps: usize,
    /// Extra error weight on each frame's loudest bands in model units (0: plain mean squared
    /// error).
    #[arg(long, default_value_t = 0.0)]
    pub peak_weight: f32,
    /// How many of each frame's loudest bands the peak weight covers.
    #[arg(long, default_value_t = 3)]
    pub peak_bands: usize,
    /// Weight of a cross-entropy that asks each reconstructed frame (read in dB, as a softmax
    /// over bands) to peak in the input's loudest band, as peak-band accuracy counts (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub peak_loss: f32,
    /// Temperature of the peak-band softmax, in dB.
    #[arg(long, default_value_t = 1.0, value_parser = positive_f32)]
    pub peak_temperature: f32,
    /// Where the peak-band cross-entropy reads each frame's loudest band: in dB, or in the
    /// model's units, where the original Listener counted peak-band accuracy.
    #[arg(long, value_enum, default_value_t = PeakUnitsArg::Db)]
    pub peak_units: PeakUnitsArg,
    /// Weight of a contrastive loss that pulls two augmented views of one sound together and
    /// pushes other moments apart (0: off; use with --augment).
    #[arg(long, default_value_t = 0.0)]
    pub contrast_weight: f32,
    /// Temperature of the contrastive loss.
    #[arg(long, default_value_t = 0.2)]
    pub contrast_temperature: f32,
    /// The similarity the contrastive loss sharpens: the embedding's cosine, or the whitened
    /// distance on the principal axes the plugin's learned sounds read (axes refitted every
    /// epoch).
    #[arg(long, default_value = "cosine", value_parser = ["cosine", "whitened"])]
    pub contrast_geometry: String,
    /// How strongly the whitened contrast whitens the principal axes (0..1): 1 divides each
    /// axis by its deviation, as the Axis outputs read them; the learned sounds' own strength
    /// (`outputs::learned::SIMILARITY_WHITENING` in echoic-core) measures as they do.
    #[arg(long, default_value_t = TrainConfig::default().contrast_whitening, value_parser = unit_f32)]
    pub contrast_whitening: f32,
    /// How far apart (seconds) the two views' moments may lie in one file: 0 pairs two views
    /// of the same moment, more pairs a moment with another moment of its recording.
    #[arg(long, default_value_t = 0.0)]
    pub contrast_reach: f32,
    /// Chance (0..1) that a moment's contrastive partner is any moment of its package rather
    /// than of its file.
    #[arg(long, default_value_t = 0.0)]
    pub contrast_package: f32,
    /// Chance (0..1) that the contrastive partner of a moment whose path names its kind of
    /// sound (speech, music, drums, instrument, animal: `voices/`, `music/`, `drum_kick.wav`)
    /// is a moment of another file of that kind.
    #[arg(long, default_value_t = 0.0)]
    pub contrast_kind: f32,
    /// Leave the other moments of a moment's kind of sound out of its contrastive negatives
    /// (false-negative cancellation), so that the contrast does not push one kind apart.
    #[arg(long)]
    pub contrast_cancel_kind: bool,
    /// Make the other moments of a moment's kind of sound its contrastive positives, beside its
    /// partner (the supervised contrast), so that every moment of its kind in the batch draws
    /// it; includes --contrast-cancel-kind.
    #[arg(long)]
    pub contrast_kind_positive: bool,
    /// Make the other moments of a moment's kind of sound its contrastive positives with this
    /// share (0..1) of its target, the partner keeping the rest, so that a big kind does not
    /// swamp the partner as with --contrast-kind-positive; includes --contrast-cancel-kind.
    #[arg(long, value_parser = unit_f32, conflicts_with = "contrast_kind_positive")]
    pub contrast_kind_pull: Option<f32>,
    /// Give drum one-shots whose file name says their drum type (kick, snare, hi-hat, cymbal,
    /// tom) that type as their kind for --contrast-kind's partners and same-kind moments, so
    /// that one type of drum is drawn together and pushed from the others.
    #[arg(long)]
    pub contrast_drum_types: bool,
    /// Continue from this checkpoint (its weights, normalisation and epoch count).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Fine-tune this model file: start from its weights and normalisation, counting epochs
    /// afresh.
    #[arg(long, conflicts_with = "resume")]
    pub init: Option<PathBuf>,
    /// Do not draw progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// Whether `arg` (the first command-line argument) names one of the tools, or asks for help
/// about them.
///
/// Allocates: it builds the clap command to read the subcommand names.
pub fn is_tool_command(arg: &str) -> bool {
    arg == "help"
        || Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == arg || c.get_all_aliases().any(|a| a == arg))
}

/// Parses the command line and runs the tool it names; clap prints usage and exits on bad
/// arguments.
///
/// Allocates freely: offline code.
pub fn run() -> anyhow::Result<()> {
    // Before any thread starts: candle's CPU work stays on the calling thread.
    crate::train::limit_candle_threads();
    let cli = Cli::parse();
    match cli.command {
        Command::Corpus(args) => corpus(args),
        Command::Train(args) => train_listener(*args),
        Command::Embed(args) => embed(args),
        Command::Eval(args) => eval(args),
        Command::Adapt(args) => adapt_files(args),
        Command::AdaptEval(args) => adapt_eval(args),
    }
}

/// The model file a tool uses: the file given, or the one built into the plugin.
pub(super) fn model_bytes(
    path: Option<&PathBuf>,
) -> anyhow::Result<std::borrow::Cow<'static, [u8]>> {
    Ok(match path {
        Some(path) => echoic_core::listener::read_model_file(path)?.into(),
        None => echoic_core::listener::DEFAULT_MODEL.into(),
    })
}

/// The listener a tool embeds with, and a line saying which model runs where.
fn load_listener(path: Option<&PathBuf>) -> anyhow::Result<Listener> {
    let listener = Listener::from_bytes(&model_bytes(path)?)?;
    eprintln!(
        "listener: {} on {}",
        listener.metadata().name,
        listener.device_name()
    );
    Ok(listener)
}

fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    use crate::embed::{audio_files, embed_all, Layer};
    let listener = load_listener(args.model.as_ref())?;
    let layer = match args.layer {
        LayerArg::Embedding => Layer::Embedding,
        LayerArg::Cochleagram => Layer::Cochleagram,
        LayerArg::Dilated => Layer::Dilated,
    };
    let total = audio_files(&args.inputs)?.len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    let (done, errors) = embed_all(
        &listener,
        &args.inputs,
        &args.out,
        layer,
        args.png,
        |path| {
            bar.set_message(path.display().to_string());
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    for file in &done {
        let png = file
            .png
            .as_ref()
            .map(|p| format!(", picture {}", p.display()))
            .unwrap_or_default();
        println!(
            "{}: {} frames -> {}{png}",
            file.input.display(),
            file.frames,
            file.npy.display()
        );
    }
    println!("summary: {}", args.out.join("summary.csv").display());
    for error in &errors {
        eprintln!("error: {error}");
    }
    anyhow::ensure!(
        errors.is_empty() || !done.is_empty(),
        "no input could be read"
    );
    Ok(())
}

/// The training run `echoic train`'s arguments ask for. Allocates.
fn train_config(args: TrainArgs) -> TrainConfig {
    let defaults = TrainConfig::default();
    TrainConfig {
        inputs: args.inputs,
        out: args.out,
        name: args.name,
        sample_rate: args.rate,
        model: ModelConfig {
            activation: args.activation,
            encoder: args.encoder,
            decoder: args.decoder,
            ..defaults.model.clone()
        },
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        max_sequences: args.max_sequences,
        stride: args.stride,
        patience: args.patience,
        average_last: args.average_last,
        seed: args.seed,
        log: !args.quiet,
        device: args.device.unwrap_or(defaults.device),
        threads: usize::from(args.threads),
        candle_reference: args.candle,
        optimiser: match args.optimiser.as_str() {
            "adagrad" => Optimiser::Adagrad,
            _ => Optimiser::AdamW,
        },
        level: match args.level.as_str() {
            "relative" => Level::Relative,
            _ => Level::Absolute,
        },
        package_balance: args.package_balance,
        kind_balance: args.kind_balance,
        augmentation: if args.augment {
            Augmentation::default()
        } else {
            Augmentation::none()
        },
        speed_change: args.speed_change,
        settings: ListenSettings {
            spec: DilatedSpec {
                pooling: args
                    .pooling
                    .map_or(defaults.settings.spec.pooling, Pooling::from),
                ..defaults.settings.spec
            },
            ..defaults.settings
        },
        objective: Objective {
            mask_bands: args.mask_bands,
            mask_steps: args.mask_steps,
            peak_weight: args.peak_weight,
            peak_bands: args.peak_bands,
            peak_loss_weight: args.peak_loss,
            peak_temperature_db: args.peak_temperature,
            peak_units: args.peak_units.into(),
            contrast_weight: args.contrast_weight,
            contrast_temperature: args.contrast_temperature,
            contrast_geometry: match args.contrast_geometry.as_str() {
                "whitened" => Geometry::Whitened,
                _ => Geometry::Cosine,
            },
            contrast_reach_seconds: args.contrast_reach,
            contrast_package_share: args.contrast_package,
            contrast_kind_share: args.contrast_kind,
            contrast_same_kind: match (
                args.contrast_cancel_kind,
                args.contrast_kind_positive,
                args.contrast_kind_pull,
            ) {
                (_, _, Some(share)) => Some(SameKind::Pulled(share)),
                (_, true, None) => Some(SameKind::Positive),
                (true, false, None) => Some(SameKind::Cancelled),
                (false, false, None) => None,
            },
            contrast_drum_types: args.contrast_drum_types,
        },
        contrast_whitening: args.contrast_whitening,
        resume: args.resume,
        init: args.init,
        ..defaults
    }
}

fn train_listener(args: TrainArgs) -> anyhow::Result<()> {
    let quiet = args.quiet;
    let cfg = train_config(args);
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let report = train(&cfg, target)?;
    for (path, error) in &report.failures {
        eprintln!("skipped {}: {error}", path.display());
    }
    println!(
        "{}: {} files ({} validation), {} + {} sequences, {} epochs, best epoch {} \
         (validation loss {:.5}, {:.2} dB RMS), {:.0} s",
        report.out.display(),
        report.files,
        report.validation_files,
        report.train_sequences,
        report.validation_sequences,
        report.epochs.len(),
        report.best_epoch,
        report.best_validation_loss,
        report.validation_rmse_db,
        report.seconds
    );
    Ok(())
}

fn corpus(args: CorpusArgs) -> anyhow::Result<()> {
    let cfg = CorpusConfig {
        out_dir: args.out,
        cache_dir: args.cache,
        train_rate: args.rate,
        max_minutes_per_package: args.minutes_per_package,
        clips_per_class: args.clips_per_class,
        balance_classes: !args.unbalanced,
        progress: !args.quiet,
        with_instruments: args.with_instruments,
        with_large_packages: args.with_large_packages,
        with_animal_calls: args.with_animal_calls,
        with_drum_hits: args.with_drum_hits,
        ..CorpusConfig::default()
    };
    let start = Instant::now();
    let report = build_corpus(&cfg)?;
    println!("{report}");
    println!("took {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
        assert!(is_tool_command("corpus"));
        assert!(is_tool_command("train"));
        assert!(!is_tool_command("-b"));
    }

    #[test]
    fn corpus_flags_parse() {
        let cli = Cli::try_parse_from([
            "echoic",
            "corpus",
            "--out",
            "x",
            "--minutes-per-package",
            "12",
            "--clips-per-class",
            "80",
        ])
        .unwrap();
        let Command::Corpus(a) = cli.command else {
            panic!("not corpus")
        };
        assert_eq!(a.out, PathBuf::from("x"));
        assert_eq!(a.minutes_per_package, Some(12.0));
        assert_eq!(a.clips_per_class, 80);
        assert!(!a.with_drum_hits);
        // Drum hits are played from the instrument packages' SoundFonts, so they need them.
        let drum_hits = |extra: &[&str]| {
            let args = ["echoic", "corpus"].iter().chain(extra);
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Corpus(a) => a.with_drum_hits && a.with_instruments,
                _ => panic!("not corpus"),
            })
        };
        assert!(drum_hits(&["--with-drum-hits"]).is_err());
        assert!(drum_hits(&["--with-instruments", "--with-drum-hits"]).unwrap());
    }

    /// The training configuration `echoic train corpus/train` plus `extra` flags makes.
    fn train_config_with(extra: &[&str]) -> TrainConfig {
        let args = ["echoic", "train", "corpus/train"].iter().chain(extra);
        let Command::Train(a) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not train")
        };
        train_config(*a)
    }

    #[test]
    fn train_pooling_reaches_the_listening_settings() {
        let default = train_config_with(&[]);
        assert_eq!(default.settings, TrainConfig::default().settings);
        assert_eq!(default.settings.spec.pooling, Pooling::Pick);
        for (flag, pooling) in [("mean", Pooling::Mean), ("max", Pooling::Max)] {
            let cfg = train_config_with(&["--pooling", flag]);
            assert_eq!(cfg.settings.spec.pooling, pooling);
            let rest = ListenSettings {
                spec: DilatedSpec {
                    pooling: Pooling::Pick,
                    ..cfg.settings.spec
                },
                ..cfg.settings
            };
            assert_eq!(rest, default.settings, "only the pooling changes");
        }
        assert!(Cli::try_parse_from(["echoic", "train", "x", "--pooling", "sum"]).is_err());
    }

    #[test]
    fn train_drum_types_reach_the_objective_only_when_asked() {
        assert!(!train_config_with(&[]).objective.contrast_drum_types);
        let cfg = train_config_with(&["--contrast-kind", "0.2", "--contrast-drum-types"]);
        assert!(cfg.objective.contrast_drum_types);
        assert_eq!(cfg.objective.contrast_kind_share, 0.2);
    }

    #[test]
    fn train_contrast_whitening_reaches_the_config_within_zero_to_one() {
        assert_eq!(
            train_config_with(&[]).contrast_whitening,
            1.0,
            "full whitening by default"
        );
        assert_eq!(
            train_config_with(&["--contrast-whitening", "0.75"]).contrast_whitening,
            0.75
        );
        for bad in ["1.5", "-0.1", "NaN"] {
            let args = ["echoic", "train", "x", "--contrast-whitening", bad];
            assert!(Cli::try_parse_from(args).is_err(), "{bad}");
        }
    }

    #[test]
    fn adapt_flags_parse() {
        let cli = Cli::try_parse_from([
            "echoic",
            "adapt",
            "--model",
            "m.safetensors",
            "--out",
            "m2.safetensors",
            "--anchor",
            "0.5",
            "--epochs",
            "3",
            "a.wav",
            "b",
        ])
        .unwrap();
        let Command::Adapt(a) = cli.command else {
            panic!("not adapt")
        };
        assert_eq!(a.model, Some(PathBuf::from("m.safetensors")));
        assert_eq!(a.out, PathBuf::from("m2.safetensors"));
        assert_eq!(a.inputs, [PathBuf::from("a.wav"), PathBuf::from("b")]);
        let cfg = a.params.config();
        assert_eq!((cfg.anchor, cfg.max_epochs), (0.5, 3));
        assert_eq!(cfg.learning_rate, AdaptConfig::default().learning_rate);
        assert!(Cli::try_parse_from(["echoic", "adapt", "--out", "x", "--model", "m"]).is_err());
        assert!(Cli::try_parse_from(["echoic", "adapt", "a.wav"]).is_err());
        let cli = Cli::try_parse_from(["echoic", "adapt-eval", "--no-general"]).unwrap();
        let Command::AdaptEval(a) = cli.command else {
            panic!("not adapt-eval")
        };
        assert!(a.no_general);
        assert_eq!(a.runs, 3);
        assert_eq!(a.params.config(), AdaptConfig::default());
        assert!(is_tool_command("adapt") && is_tool_command("adapt-eval"));
    }

    #[test]
    fn train_flags_parse() {
        let cli = Cli::try_parse_from([
            "echoic",
            "train",
            "--epochs",
            "3",
            "--activation",
            "tanh",
            "--max-sequences",
            "500",
            "a",
            "b",
        ])
        .unwrap();
        let Command::Train(a) = cli.command else {
            panic!("not train")
        };
        assert_eq!(a.inputs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(
            (a.epochs, a.max_sequences, a.activation),
            (3, 500, Activation::Tanh)
        );
        assert_eq!(a.out, PathBuf::from("models/echoic-default.safetensors"));
        assert_eq!((a.encoder, a.decoder), (vec![50, 250], vec![50]));
        let Command::Train(wide) = Cli::try_parse_from([
            "echoic",
            "train",
            "--encoder",
            "100,250",
            "--decoder",
            "100",
            "a",
        ])
        .unwrap()
        .command
        else {
            panic!("not train")
        };
        assert_eq!((wide.encoder, wide.decoder), (vec![100, 250], vec![100]));
        assert!(Cli::try_parse_from(["echoic", "train"]).is_err());
        assert!(Cli::try_parse_from(["echoic", "train", "--activation", "sigmoid", "a"]).is_err());
    }
}
