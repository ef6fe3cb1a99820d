//! Echoic's offline toolchain: the `echoic` subcommands and what they run. Everything here is
//! offline: it allocates, reads and writes files, shells out and draws progress bars. It runs
//! the plugin's own pipeline (`echoic-core`) over files, so that what is trained and measured
//! here is what the plugin hears.
//!
//! - [`corpus`]: builds the training corpus and the labelled evaluation set from Debian packages;
//! - [`train`]: trains a listener model (candle autograd and AdamW);
//! - [`evaluation`]: `echoic eval`'s metrics;
//! - [`adaptation`]: `echoic adapt` (fine-tuning on files) and `echoic adapt-eval`;
//! - [`embed`] and [`picture`]: `echoic embed`'s matrices and pictures;
//! - [`offline`]: the pipeline over a decoded file;
//! - [`audio_file`]: decoding, resampling and writing audio files;
//! - [`cli`]: the command line.
#![deny(missing_docs)]

pub mod adaptation;
pub mod audio_file;
pub mod cli;
pub mod corpus;
pub mod embed;
pub mod evaluation;
pub mod offline;
pub mod picture;
pub mod train;
