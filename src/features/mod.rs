//! The features: what the studio does with each model family, apart from the network itself
//! and from any front end (faces, style, and training on the user's own material) — shared by the engine's job families, the panels, the CLI, `serve`,
//! the tests and the benchmarks. Nothing here knows about threads, the UI or the command line.

pub mod faces;
pub mod style;
pub mod train;
