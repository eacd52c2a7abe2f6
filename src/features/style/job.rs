//! The vocabulary of Style jobs: what the panel, the CLI, `serve` and the tests ask the
//! engine for, and what a Style job reports. The engine's Style family
//! (`engine::families::style`) runs them.

use super::{GpuStyleOutput, StyleOutput, StylePass, StyleRequest};

/// A Style job: one request run as a quick preview or at full resolution.
#[derive(Clone, Debug)]
pub struct StyleJob {
    /// What to restyle and how.
    pub request: StyleRequest,
    /// Preview (small, whole image) or full (output size, tiled when large).
    pub pass: StylePass,
    /// For the window's view: on the window's own device, leave a result that fits one tile
    /// there as a texture ([`StyleEvent::Texture`]) instead of reading it back.
    pub to_texture: bool,
}

/// What a Style job reports.
#[derive(Debug)]
pub enum StyleEvent {
    /// A model file is being loaded for this job (first use).
    Loading {
        /// The ONNX file.
        path: std::path::PathBuf,
    },
    /// `done` of `total` steps (normalisation statistics, then each tile) are finished.
    Progress {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// The result (sent once, just before `Event::Finished`).
    Output(Box<StyleOutput>),
    /// A result for the window's view computed on the window's own GPU, left there as a
    /// texture for the panel to show (sent instead of [`StyleEvent::Output`], once).
    Texture(Box<GpuStyleOutput>),
}
