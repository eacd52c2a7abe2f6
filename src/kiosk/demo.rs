//! What the attract loop asks a page to do, in the page's own terms: the panels play these
//! with the same calls a visitor's clicks make (see `Panel::demo`).

use std::path::PathBuf;

use crate::features::faces::FaceSpec;

/// One step of a page's demo.
#[derive(Debug)]
pub enum Demo<'a> {
    /// Faces: play a looping latent walk through these keyframes.
    Faces {
        /// The walk's keyframes.
        keys: Vec<FaceSpec>,
    },
    /// Write: put `prompt` in the kiosk's demo document and continue it.
    Write {
        /// The opening to continue.
        prompt: &'a str,
        /// New tokens to generate.
        max_tokens: usize,
        /// The sampling seed (the demo's turn, so each turn differs).
        seed: u64,
        /// The demo document's id, once made (the panel creates it the first time).
        document: &'a mut Option<String>,
    },
    /// Style: start the demo (at a quick output size).
    StyleStart {
        /// Longest side of the results.
        max_side: u32,
    },
    /// Style: restyle `picture` (when it changed) with built-in style `style`.
    StylePair {
        /// A new picture to show, if it changed.
        picture: Option<PathBuf>,
        /// The built-in style.
        style: usize,
    },
}
