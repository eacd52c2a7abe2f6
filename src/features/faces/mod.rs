//! Faces: exploring the latent space of the DCGAN face generator
//! ([`crate::models::dcgan`]).
//!
//! This module owns everything about faces that is not the network itself, shared by the
//! worker, the panel, the CLI and the tests:
//! - [`latent`]: seed → latent (documented, deterministic), truncation ψ, slerp, looping walks;
//! - [`directions`]: GANSpace principal directions and their on-disk cache;
//! - [`favourites`]: starred faces (persisted atomically) and the selection history;
//! - [`render`]: pixels, the preview upscaling filter, grids, PNG and GIF;
//! - [`walk`]: the live walk's shared controls and frame-pacing meter;
//! - [`job`]: what a Faces job asks for and reports (the engine runs it).
//!
//! A face is a [`FaceSpec`]: a raw latent plus how it is edited. What the generator sees is
//! `ψ·z + Σₖ αₖ·dₖ` ([`FaceSpec::effective_latent`]): truncation first, then the direction
//! offsets in prior standard deviations, so a slider moves a face by the same amount whatever
//! its ψ.

pub mod directions;
pub mod favourites;
pub mod job;
pub mod latent;
pub mod render;
pub mod walk;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use directions::{DIRECTION_COUNT, Directions, DirectionsCache};
pub use favourites::{Favourite, Favourites, History};
pub use job::{
    FacesEvent, FacesRequest, LiveWalkRequest, MAX_FACES, MAX_WALK_FRAMES, RENDER_BATCH,
    RenderRequest, WalkRequest,
};
pub use latent::{latent_for_seed, slerp, truncate, walk_point};
pub use render::{FaceImage, PREVIEW_FILTER};
pub use walk::{PacingStats, WalkControl};

use crate::models::dcgan::{DcganError, Generator, IMAGE_VALUES, LATENT_DIM};

/// The file name of the default generator in the models folder.
pub const DEFAULT_MODEL_FILE: &str = "dcgan-weights.tar";

/// The truncation range the panel and the CLI accept.
pub const PSI_RANGE: std::ops::RangeInclusive<f32> = 0.0..=1.5;

/// The default generator: `<models dir>/dcgan-weights.tar`.
pub fn default_model() -> PathBuf {
    crate::paths::default_model(DEFAULT_MODEL_FILE)
}

/// Why a faces operation failed. Messages are for the user and name what to fix.
#[derive(Debug, thiserror::Error)]
pub enum FacesError {
    /// Loading or running the generator failed.
    #[error(transparent)]
    Model(#[from] DcganError),
    /// A latent vector is malformed (length, non-finite values, unreadable file).
    #[error("invalid latent: {0}")]
    BadLatent(String),
    /// Direction offsets are malformed or more than the directions available.
    #[error("invalid direction offsets: {0}")]
    BadOffsets(String),
    /// Truncation outside [`PSI_RANGE`].
    #[error("truncation ψ must be between 0 and 1.5 (got {0})")]
    BadPsi(f32),
    /// A request's parameters are out of range.
    #[error("{0}")]
    InvalidRequest(String),
    /// The GPU backend failed (no adapter, out of memory, device lost).
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    /// A file could not be read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The favourites file did not parse; it was moved aside (when possible).
    #[error(
        "the favourites file {} is damaged ({reason}); {}",
        path.display(),
        match backup {
            Some(b) => format!("it was moved to {} and favourites start empty", b.display()),
            None => "favourites start empty".into(),
        }
    )]
    CorruptFavourites {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
        /// Where the damaged file now is.
        backup: Option<PathBuf>,
    },
    /// An image could not be encoded or written.
    #[error("cannot write {}: {reason}", path.display())]
    Image {
        /// The output file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// A face: where it is in latent space and how it was edited. Favourites and history store
/// these; render requests carry them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaceSpec {
    /// The untruncated latent, 100 values (e.g. [`latent_for_seed`]).
    pub latent: Vec<f32>,
    /// The seed it came from, if any (for display; `latent` is what renders).
    pub seed: Option<u64>,
    /// Truncation ψ in [0, 1.5].
    pub psi: f32,
    /// Offsets along the principal [`Directions`], in prior standard deviations; may be
    /// shorter than [`DIRECTION_COUNT`] (the rest are zero), empty for none.
    #[serde(default)]
    pub offsets: Vec<f32>,
}

impl FaceSpec {
    /// The face of a seed at truncation `psi`, unedited.
    pub fn from_seed(seed: u64, psi: f32) -> Self {
        Self {
            latent: latent_for_seed(seed),
            seed: Some(seed),
            psi,
            offsets: Vec::new(),
        }
    }

    /// A face from an explicit latent.
    pub fn from_latent(latent: Vec<f32>, psi: f32) -> Result<Self, FacesError> {
        let f = Self {
            latent,
            seed: None,
            psi,
            offsets: Vec::new(),
        };
        f.validate()?;
        Ok(f)
    }

    /// Whether any direction offset is non-zero (rendering then needs the directions).
    pub fn has_offsets(&self) -> bool {
        self.offsets.iter().any(|o| *o != 0.0)
    }

    /// Checks the latent, ψ and the offsets.
    pub fn validate(&self) -> Result<(), FacesError> {
        latent::check_latent(&self.latent)?;
        if !(self.psi.is_finite() && PSI_RANGE.contains(&self.psi)) {
            return Err(FacesError::BadPsi(self.psi));
        }
        if self.offsets.len() > DIRECTION_COUNT {
            return Err(FacesError::BadOffsets(format!(
                "{} offsets given, at most {DIRECTION_COUNT}",
                self.offsets.len()
            )));
        }
        if self.offsets.iter().any(|o| !o.is_finite()) {
            return Err(FacesError::BadOffsets(
                "an offset is not a finite number".into(),
            ));
        }
        Ok(())
    }

    /// What the generator sees: `ψ·z + Σₖ αₖ·dₖ`. `directions` is needed only when an offset
    /// is non-zero.
    pub fn effective_latent(
        &self,
        directions: Option<&Directions>,
    ) -> Result<Vec<f32>, FacesError> {
        self.validate()?;
        let mut z = truncate(&self.latent, self.psi);
        if self.has_offsets() {
            let d = directions.ok_or_else(|| {
                FacesError::BadOffsets("the directions are not computed yet".into())
            })?;
            d.apply(&mut z, &self.offsets)?;
        }
        Ok(z)
    }
}

/// A face generator on either backend: the CPU [`Generator`] or its GPU upload
/// ([`crate::gpu::dcgan::GpuGenerator`]).
pub trait FaceGenerator {
    /// `B × 100` effective latents to `B × [3][64][64]` values in [-1, 1].
    fn generate(&mut self, latents: &[f32]) -> Result<Vec<f32>, FacesError>;
}

impl FaceGenerator for Generator {
    fn generate(&mut self, latents: &[f32]) -> Result<Vec<f32>, FacesError> {
        Ok(self.forward(latents)?)
    }
}

impl FaceGenerator for crate::gpu::dcgan::GpuGenerator {
    fn generate(&mut self, latents: &[f32]) -> Result<Vec<f32>, FacesError> {
        if !latents.len().is_multiple_of(LATENT_DIM) || latents.iter().any(|v| !v.is_finite()) {
            return Err(FacesError::BadLatent(format!(
                "{} values, not whole finite vectors of {LATENT_DIM}",
                latents.len()
            )));
        }
        Ok(self.forward(latents)?)
    }
}

/// Renders faces in one batch: effective latents → generator → 64×64 RGBA images.
pub fn render_batch<G: FaceGenerator + ?Sized>(
    generator: &mut G,
    faces: &[FaceSpec],
    directions: Option<&Directions>,
) -> Result<Vec<FaceImage>, FacesError> {
    let mut z = Vec::with_capacity(faces.len() * LATENT_DIM);
    for f in faces {
        z.extend(f.effective_latent(directions)?);
    }
    render_latents(generator, &z)
}

/// Renders effective latents (`B × 100` values) to 64×64 RGBA images.
pub fn render_latents<G: FaceGenerator + ?Sized>(
    generator: &mut G,
    z: &[f32],
) -> Result<Vec<FaceImage>, FacesError> {
    let out = generator.generate(z)?;
    Ok(out
        .chunks_exact(IMAGE_VALUES)
        .map(FaceImage::from_model_output)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validation() {
        assert!(FaceSpec::from_seed(1, 0.7).validate().is_ok());
        assert!(matches!(
            FaceSpec::from_seed(1, 1.6).validate(),
            Err(FacesError::BadPsi(_))
        ));
        assert!(FaceSpec::from_latent(vec![0.0; 99], 1.0).is_err());
        let mut f = FaceSpec::from_seed(1, 1.0);
        f.offsets = vec![0.0; DIRECTION_COUNT + 1];
        assert!(f.validate().is_err());
    }

    #[test]
    fn effective_latent_truncates_then_offsets() {
        let mut f = FaceSpec::from_seed(3, 0.5);
        let z = f.effective_latent(None).unwrap();
        assert_eq!(z, truncate(&f.latent, 0.5));
        f.offsets = vec![2.0];
        assert!(f.effective_latent(None).is_err(), "offsets need directions");
        let mut e = vec![0f32; LATENT_DIM];
        e[0] = 1.0;
        let d = Directions {
            vectors: vec![e],
            explained: vec![1.0],
            samples: 1,
        };
        let z2 = f.effective_latent(Some(&d)).unwrap();
        assert!((z2[0] - (z[0] + 2.0)).abs() < 1e-6);
        assert_eq!(z2[1..], z[1..]);
    }
}
