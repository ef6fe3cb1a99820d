//! Echoic's run time: everything the plugin runs, free of plugin-framework types, so that the
//! plugin, the offline tools (`echoic-tools`) and the tests all run this one implementation.
//!
//! The modules are grouped by the thread they run on:
//!
//! - **the audio thread** (allocation-, lock- and syscall-free): [`cochlea`], [`denormals`],
//!   [`pipeline`] (the audio front), [`ring`] (its producer end), and the MIDI emitters of
//!   [`outputs::cc`];
//! - **the worker**, one per instance: [`worker`], [`memory`], [`dilated`], [`listener`],
//!   [`listening`], [`outputs`] and [`display`] (the feed the editor reads);
//! - **shared facts** any thread may use: [`frame`], [`erb`], [`pca`] and [`rng`].
//!
//! Each module's first line says where it runs.
#![deny(missing_docs)]

pub mod cochlea;
pub mod denormals;
pub mod pipeline;
pub mod ring;

pub mod dilated;
pub mod display;
pub mod listener;
pub mod listening;
pub mod memory;
pub mod outputs;
pub mod worker;

pub mod erb;
pub mod frame;
pub mod pca;
pub mod rng;
