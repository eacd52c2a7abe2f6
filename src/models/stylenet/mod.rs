//! Neural style transfer: the two style networks ported from their ONNX files, the tiling
//! that runs them on images of any size, image loading/saving, and the colour operations the
//! Style panel applies on top (CPU reference versions of its WGSL shader).
//!
//! - [`multistyle::Multistyle26`]: 26 built-in styles, blendable ([`StyleMix`]).
//! - [`StylePredictor`] + [`arbitrary::StyleTransform`]: any image as the style.
//! - [`tile_plan`]: whole images while they fit the memory budget, the tiles beyond.
//! - [`tiling`]: overlapping tiles with feathered blending, instance-norm statistics shared
//!   by all tiles, bounded memory.
//! - [`colour`]: strength (blend with the original) and preserve-colour (luminance transfer).
//! - [`image`]: loading with EXIF orientation and decompression-bomb limits; PNG/JPEG export.

pub mod arbitrary;
pub mod colour;
mod direct;
pub mod image;
mod mobilenet;
pub mod multistyle;
pub mod ops;
pub mod planes;
mod pointwise;
pub mod predictor;
pub mod tile_plan;
pub mod tiling;

use std::path::{Path, PathBuf};

pub use arbitrary::StyleTransform;
pub use multistyle::Multistyle26;
pub use ops::FeatureMap;
pub use predictor::StylePredictor;

use crate::models::onnx::OnnxError;

/// Number of built-in styles in multistyle26.
pub const STYLE_COUNT: usize = 26;

/// File name of the 26-style network.
pub const MULTISTYLE_FILE: &str = "multistyle26.onnx";
/// File name of the arbitrary-style predictor.
pub const PREDICT_FILE: &str = "arbitrary_predict.onnx";
/// File name of the arbitrary-style transform.
pub const TRANSFORM_FILE: &str = "arbitrary_transform.onnx";

/// Side of the square the arbitrary model's style image is resized to (as in the reference).
pub const STYLE_IMAGE_SIZE: u32 = 256;

/// Everything that can go wrong in style transfer; each message says what and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StyleError {
    /// A model file could not be read or parsed.
    #[error(transparent)]
    Model(#[from] OnnxError),
    /// A model file is missing.
    #[error("the style model {} is missing: run models/fetch.sh style", path.display())]
    MissingModel {
        /// The expected file.
        path: PathBuf,
    },
    /// A model file parses but is not the network this port implements.
    #[error("{} is not the expected network: {what}", path.display())]
    Architecture {
        /// The file.
        path: PathBuf,
        /// What differs.
        what: String,
    },
    /// An input file does not exist or cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// An input file is empty.
    #[error("{} is empty (0 bytes), not an image", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// An input file is not in an image format Atelier reads.
    #[error("{} is not an image Atelier can read (PNG, JPEG, GIF or WebP)", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// An image file is damaged or cut short.
    #[error("{} is damaged or incomplete: {reason}", path.display())]
    CorruptImage {
        /// The file.
        path: PathBuf,
        /// The decoder's explanation.
        reason: String,
    },
    /// An image's header claims more pixels than Atelier decodes (a decompression bomb, or
    /// simply too large).
    #[error(
        "{} claims to be {width}×{height} pixels, more than the {max_side}-pixel side / {max_mp}-megapixel limit; \
         downscale it with an image editor first",
        path.display()
    )]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Width from the header.
        width: u32,
        /// Height from the header.
        height: u32,
        /// The side limit.
        max_side: u32,
        /// The pixel-count limit in megapixels.
        max_mp: u64,
    },
    /// The output could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A parameter or input is out of range.
    #[error("{0}")]
    BadInput(String),
    /// The device running the network failed (the GPU ports convert their errors into
    /// this, so the networks themselves need not know about GPUs).
    #[error(transparent)]
    Device(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The job's cancel flag was set.
    #[error("cancelled")]
    Cancelled,
}

impl StyleError {
    /// An architecture mismatch in `path`.
    pub fn architecture(path: &Path, what: impl Into<String>) -> Self {
        Self::Architecture {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Returns `Err(Cancelled)` when the job's flag is set; called between layers and tiles.
pub fn check_cancel(cancel: &(dyn Fn() -> bool + Sync)) -> Result<(), StyleError> {
    if cancel() {
        Err(StyleError::Cancelled)
    } else {
        Ok(())
    }
}

/// A blend of multistyle26's styles: non-negative weights, normalised to sum to 1 (so
/// `3:1,11:1` is the same half-and-half mix as `3:0.5,11:0.5`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StyleMix {
    weights: Vec<f32>,
}

impl StyleMix {
    /// One style, fully.
    pub fn single(index: usize) -> Result<Self, StyleError> {
        Self::from_pairs(&[(index, 1.0)])
    }

    /// `(style index, weight)` pairs; indexes 0–25, weights ≥ 0, not all zero. Repeated
    /// indexes add up.
    pub fn from_pairs(pairs: &[(usize, f32)]) -> Result<Self, StyleError> {
        let mut weights = vec![0.0f32; STYLE_COUNT];
        for &(i, w) in pairs {
            if i >= STYLE_COUNT {
                return Err(StyleError::BadInput(format!(
                    "style {i} does not exist: styles are numbered 0 to {}",
                    STYLE_COUNT - 1
                )));
            }
            if !(w.is_finite() && w >= 0.0) {
                return Err(StyleError::BadInput(format!(
                    "style weight {w} for style {i} must be a number ≥ 0"
                )));
            }
            weights[i] += w;
        }
        let total: f32 = weights.iter().sum();
        if total <= 0.0 {
            return Err(StyleError::BadInput(
                "the style weights are all zero".into(),
            ));
        }
        weights.iter_mut().for_each(|w| *w /= total);
        Ok(Self { weights })
    }

    /// Parses `3:0.5,11:0.5` (or a bare index, `19`, for one style).
    pub fn parse(text: &str) -> Result<Self, StyleError> {
        let bad = |part: &str| {
            StyleError::BadInput(format!(
                "cannot read style mix entry `{part}`: write STYLE:WEIGHT pairs, e.g. 3:0.5,11:0.5"
            ))
        };
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (i, w) = match part.split_once(':') {
                Some((i, w)) => (i.trim(), w.trim()),
                None => (part, "1"),
            };
            let i: usize = i.parse().map_err(|_| bad(part))?;
            let w: f32 = w.parse().map_err(|_| bad(part))?;
            pairs.push((i, w));
        }
        if pairs.is_empty() {
            return Err(bad(text));
        }
        Self::from_pairs(&pairs)
    }

    /// The 26 weights (summing to 1).
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_normalise() {
        let m = StyleMix::parse("3:1, 11:1").unwrap();
        assert_eq!(m.weights()[3], 0.5);
        assert_eq!(m.weights()[11], 0.5);
        assert_eq!(
            StyleMix::parse("19").unwrap(),
            StyleMix::single(19).unwrap()
        );
        for bad in ["26", "3:-1", "3:0", "x:1", "", "3:abc"] {
            assert!(StyleMix::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
