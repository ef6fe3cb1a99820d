//! Echoic's listening pipeline, free of any plugin-framework type so that the plugin, the
//! command-line tools and the tests all run this one implementation.

pub mod cochlea;
pub mod denormals;
pub mod dilated;
pub mod erb;
pub mod frame;
pub mod memory;
pub mod ring;

pub mod audio_file;
pub mod corpus;
pub mod display;
pub mod embed;
pub mod evaluation;
pub mod listener;
pub mod listening;
pub mod offline;
pub mod outputs;
pub mod picture;
pub mod pipeline;
pub mod worker;
