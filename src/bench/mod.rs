//! `atelier bench …`: each model family's speed measured on exactly the code path the product
//! uses, as JSON for the scripts in `benches/` that run the peers beside it (BENCHMARKS.md).

pub mod faces;
pub mod style;
pub mod write;
