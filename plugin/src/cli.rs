//! The `echoic` command-line tools. `main` hands the arguments here when the first one names a
//! subcommand; anything else starts the standalone application.

use std::path::PathBuf;
use std::time::Instant;

use clap::{CommandFactory, Parser, Subcommand};
use echoic_core::corpus::{build_corpus, CorpusConfig};

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
    /// Cap on the training minutes taken from one package.
    #[arg(long, default_value_t = 30.0)]
    pub minutes_per_package: f64,
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
    let cli = Cli::parse();
    match cli.command {
        Command::Corpus(args) => corpus(args),
    }
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
        let Command::Corpus(a) = cli.command;
        assert_eq!(a.out, PathBuf::from("x"));
        assert_eq!(a.minutes_per_package, 12.0);
        assert_eq!(a.clips_per_class, 80);
    }
}
