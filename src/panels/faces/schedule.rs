//! Asking the worker for what is on screen and not rendered: the grid, the preview, the
//! direction strips and the thumbnails, each request made once per change, the job it
//! replaces cancelled.

use std::collections::HashSet;

use super::state::JobKind;
use super::state::{FacesPanel, PREVIEW_SIZE, STRIP_OFFSETS, THUMB_SIZE};
use super::thumbs::face_key;
use crate::engine::Engine;
use crate::features::faces::{DIRECTION_COUNT, FaceSpec, RenderRequest};

impl FacesPanel {
    pub(super) fn cell_px(&self) -> u32 {
        // Large cells get more pixels so the upscale is the preview filter's, not the GPU's.
        if self.grid <= 3 { 256 } else { 128 }
    }

    pub(super) fn refresh_grid_faces(&mut self) {
        let now = (self.seed, self.grid, self.psi.to_bits());
        if self.grid_for != Some(now) {
            self.grid_for = Some(now);
            self.grid_faces = (0..(self.grid * self.grid) as u64)
                .map(|i| FaceSpec::from_seed(self.seed.wrapping_add(i), self.psi))
                .collect();
        }
    }

    pub(super) fn render(
        &mut self,
        engine: &Engine,
        kind: JobKind,
        faces: Vec<FaceSpec>,
        size: u32,
    ) -> Option<()> {
        if faces.is_empty() {
            return None;
        }
        let keys = faces.iter().map(face_key).collect();
        let handle = engine.faces_render(RenderRequest {
            model: self.model.clone(),
            faces,
            size,
        });
        self.push_job(handle, kind, keys, size);
        Some(())
    }

    /// Submits renders for whatever is on screen and not rendered, replacing stale jobs.
    pub(super) fn request_missing(&mut self, engine: &Engine) {
        // Grid first: it is what the user looks at when the page opens.
        let size = self.cell_px();
        let grid_key = hash_of(&(self.seed, self.grid, self.psi.to_bits(), size));
        if self.requested.grid != Some(grid_key) {
            self.requested.grid = Some(grid_key);
            self.cancel(|k| matches!(k, JobKind::Grid));
            let missing: Vec<FaceSpec> = self
                .grid_faces
                .iter()
                .filter(|f| !self.thumbs.has(face_key(f), size))
                .cloned()
                .collect();
            self.render(engine, JobKind::Grid, missing, size);
        }
        if let Some(sel) = self.selected.clone() {
            let key = face_key(&sel);
            if self.requested.preview != Some(key) {
                self.requested.preview = Some(key);
                self.cancel(|k| matches!(k, JobKind::Preview));
                // Rendered even when a texture is cached: the clipboard needs these pixels.
                if self.preview_image.as_ref().is_none_or(|(k, _)| *k != key) {
                    self.render(engine, JobKind::Preview, vec![sel], PREVIEW_SIZE);
                }
            }
        }
        if !self.directions_asked {
            self.directions_asked = true;
            let handle = engine.faces_directions(self.model.clone());
            self.push_job(handle, JobKind::Directions, Vec::new(), 0);
        }
        if let (Some(sel), Some(dirs)) = (self.selected.clone(), self.directions.clone()) {
            let faces = strip_faces(&sel, dirs.vectors.len());
            let key = face_key(&sel);
            if self.requested.strips != Some(key) {
                self.requested.strips = Some(key);
                self.cancel(|k| matches!(k, JobKind::Strips));
                let missing: Vec<FaceSpec> = faces
                    .into_iter()
                    .flatten()
                    .filter(|f| self.thumbs.get(face_key(f), THUMB_SIZE).is_none())
                    .filter(|f| !self.thumbs.has(face_key(f), THUMB_SIZE))
                    .collect();
                self.render(engine, JobKind::Strips, missing, THUMB_SIZE);
            }
        }
        let mut missing: Vec<FaceSpec> = Vec::new();
        let favs = self.favourites.as_ref().map_or(&[][..], |f| f.items());
        for face in self
            .history
            .newest_first()
            .chain(favs.iter().map(|f| &f.face))
        {
            let k = face_key(face);
            if self.thumbs.get(k, THUMB_SIZE).is_none()
                && !self.thumbs.has(k, THUMB_SIZE)
                && !missing.iter().any(|m| face_key(m) == k)
            {
                missing.push(face.clone());
            }
        }
        let key = hash_of(&missing.iter().map(face_key).collect::<Vec<_>>());
        if !missing.is_empty() && self.requested.thumbs != Some(key) {
            self.requested.thumbs = Some(key);
            self.cancel(|k| matches!(k, JobKind::Thumbs));
            self.render(engine, JobKind::Thumbs, missing, THUMB_SIZE);
        }
    }

    pub(super) fn on_screen_keys(&self) -> HashSet<u64> {
        let mut keep: HashSet<u64> = self.grid_faces.iter().map(face_key).collect();
        keep.extend(self.history.newest_first().map(face_key));
        keep.extend(self.favourites().iter().map(|f| face_key(&f.face)));
        keep.extend(self.walk.keys.iter().map(face_key));
        if let Some(sel) = &self.selected {
            keep.insert(face_key(sel));
            if let Some(d) = &self.directions {
                keep.extend(
                    strip_faces(sel, d.vectors.len())
                        .iter()
                        .flatten()
                        .map(face_key),
                );
            }
        }
        keep
    }
}

/// The faces of each direction's example strip: the selected face with that direction's
/// offset replaced by each of [`STRIP_OFFSETS`] (the other edits kept).
pub(super) fn strip_faces(base: &FaceSpec, directions: usize) -> Vec<Vec<FaceSpec>> {
    let n = directions.min(DIRECTION_COUNT);
    (0..n)
        .map(|k| {
            STRIP_OFFSETS
                .iter()
                .map(|&o| {
                    let mut f = base.clone();
                    let mut offsets = f.offsets.clone();
                    offsets.resize(n, 0.0);
                    offsets[k] = o;
                    f.offsets = trim_offsets(offsets);
                    f
                })
                .collect()
        })
        .collect()
}

/// Drops trailing zero offsets, so an untouched slider leaves a face equal to the plain one
/// (favourites compare faces exactly).
pub(super) fn trim_offsets(mut offsets: Vec<f32>) -> Vec<f32> {
    while offsets.last() == Some(&0.0) {
        offsets.pop();
    }
    offsets
}

pub(super) fn hash_of(v: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_replace_one_offset_and_keep_the_rest() {
        let mut base = FaceSpec::from_seed(3, 0.7);
        base.offsets = vec![0.0, 1.5];
        let strips = strip_faces(&base, 8);
        assert_eq!(strips.len(), 8);
        assert!(strips.iter().all(|s| s.len() == STRIP_OFFSETS.len()));
        assert_eq!(strips[0][0].offsets, vec![-3.0, 1.5]);
        // Direction 2 at 0σ is the face without that edit; trailing zeros are dropped.
        assert_eq!(strips[1][3].offsets, Vec::<f32>::new());
        assert_eq!(strips[1][3], FaceSpec::from_seed(3, 0.7));
        assert_eq!(strips[2][6].offsets, vec![0.0, 1.5, 3.0]);
    }

    #[test]
    fn face_keys_ignore_trailing_zero_offsets() {
        let a = FaceSpec::from_seed(5, 0.8);
        let mut b = a.clone();
        b.offsets = vec![0.0, 0.0];
        assert_eq!(face_key(&a), face_key(&b));
        b.offsets = vec![0.0, 0.1];
        assert_ne!(face_key(&a), face_key(&b));
        assert_ne!(face_key(&a), face_key(&FaceSpec::from_seed(5, 0.9)));
    }
}
