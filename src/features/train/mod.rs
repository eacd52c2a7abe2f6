//! Training and fine-tuning on the user's own material: long jobs that run on the engine's
//! long-job lane (see [`crate::long_job::LongJobControl`]), shared by the Train panel, the
//! `atelier train` CLI, the tests and the benchmarks.

pub mod faces;
pub mod write;
