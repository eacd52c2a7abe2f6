//! Atelier: a desktop creative studio that runs generative models locally.
//!
//! The library holds everything the GUI, the headless CLI, the tests and the benchmarks share:
//! one inference engine (a named worker thread), the model families, and the stores that keep
//! the user's work.

pub mod app;
pub mod bench;
pub mod cli;
pub mod engine;
pub mod features;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod gpu;
pub mod headless;
pub mod kiosk;
pub mod logs;
pub mod long_job;
pub mod measure;
pub mod models;
pub mod panels;
pub mod paths;
pub mod remote;
pub mod serve;
pub mod soak;
pub mod store;
pub mod theme;
