//! Echoic's listening pipeline, free of any plugin-framework type so that the plugin, the
//! command-line tools and the tests all run this one implementation.

pub mod cochlea;
pub mod denormals;
pub mod erb;
pub mod frame;
pub mod dilated;
pub mod memory;
pub mod ring;

pub mod audio_file;
pub mod corpus;
pub mod pipeline;
pub mod worker;
pub mod offline;
pub mod listener;
pub mod evaluation;
pub mod outputs;
pub mod embed;
pub mod picture;
pub mod listening;
pub mod display;
