//! The panel's face textures: every rendered face (grid cells, history, favourites, direction
//! strips, the preview) keyed by what it shows and at which size, so a face rendered once is
//! never rendered again while it stays on screen.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use crate::features::faces::{FaceImage, FaceSpec};

/// Identifies a face by what the generator sees: its latent, ψ and direction offsets
/// (trailing zero offsets ignored, so an untouched slider is the same face).
pub fn face_key(face: &FaceSpec) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in &face.latent {
        v.to_bits().hash(&mut h);
    }
    face.psi.to_bits().hash(&mut h);
    let used = face
        .offsets
        .iter()
        .rposition(|o| *o != 0.0)
        .map_or(0, |i| i + 1);
    for o in &face.offsets[..used] {
        o.to_bits().hash(&mut h);
    }
    h.finish()
}

/// An egui image of a face image.
pub fn color_image(image: &FaceImage) -> egui::ColorImage {
    egui::ColorImage::from_rgba_unmultiplied(
        [image.width as usize, image.height as usize],
        &image.rgba,
    )
}

/// Rendered faces waiting to become textures, and the textures.
#[derive(Default)]
pub struct Thumbs {
    pub(super) textures: HashMap<(u64, u32), egui::TextureHandle>,
    /// Images that arrived from the worker since the last frame (events are drained without
    /// an egui context; textures are made when the panel draws).
    pub(super) pending: Vec<((u64, u32), FaceImage)>,
}

/// Above this many textures, the ones not on screen are dropped.
const KEEP: usize = 400;

impl Thumbs {
    /// Queues a rendered face for upload.
    pub fn insert(&mut self, key: u64, size: u32, image: FaceImage) {
        self.pending.push(((key, size), image));
    }

    /// Uploads what arrived.
    pub fn upload(&mut self, ctx: &egui::Context) {
        for ((key, size), image) in self.pending.drain(..) {
            let tex = ctx.load_texture(
                format!("face-{key:016x}-{size}"),
                color_image(&image),
                egui::TextureOptions::LINEAR,
            );
            self.textures.insert((key, size), tex);
        }
    }

    /// Whether the face is rendered (or on its way) at exactly this size.
    pub fn has(&self, key: u64, size: u32) -> bool {
        self.textures.contains_key(&(key, size))
            || self.pending.iter().any(|(k, _)| *k == (key, size))
    }

    /// The face at `size`, else at any size it was rendered at (largest first), for showing
    /// something while the right size renders.
    pub fn get(&self, key: u64, size: u32) -> Option<&egui::TextureHandle> {
        self.textures.get(&(key, size)).or_else(|| {
            [512, 256, 128, 64]
                .iter()
                .find_map(|s| self.textures.get(&(key, *s)))
        })
    }

    /// Drops textures of faces not in `keep` once there are many.
    pub fn trim(&mut self, keep: &HashSet<u64>) {
        if self.textures.len() > KEEP {
            self.textures.retain(|(k, _), _| keep.contains(k));
        }
    }
}
