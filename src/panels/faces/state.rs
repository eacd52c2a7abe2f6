//! The Faces page's UI state and what the app, the kiosk and the tests read or set.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use super::export::FaceExport;
use super::thumbs::{Thumbs, face_key};
use super::walk::{self, MAX_KEYS, Walk};
use crate::features::faces::{
    Directions, FaceImage, FaceSpec, Favourite, Favourites, History, LiveWalkRequest, PSI_RANGE,
};
use crate::models::dcgan::GeneratorInfo;
use crate::panels::PanelContext;
use crate::panels::job_book::JobBook;

/// The command that fetches the face generator.
pub const FETCH_FACES: &str = "models/fetch.sh faces";

/// Side of the large preview as rendered by the worker (it is drawn at most this large).
pub const PREVIEW_SIZE: u32 = 512;

/// Side of history, favourite and direction-strip thumbnails: the model's own pixels.
pub(super) const THUMB_SIZE: u32 = 64;

/// Grid sizes offered (cells per side).
pub const GRID_RANGE: std::ops::RangeInclusive<usize> = 2..=6;

/// Offsets shown in each direction's example strip, in prior standard deviations.
pub(super) const STRIP_OFFSETS: [f32; 7] = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0];

/// The range of a direction slider, in prior standard deviations.
pub(super) const OFFSET_RANGE: std::ops::RangeInclusive<f32> = -3.0..=3.0;

/// What a Faces job of this panel is for.
pub(super) enum JobKind {
    /// Grid cells.
    Grid,
    /// The selected face at [`super::PREVIEW_SIZE`].
    Preview,
    /// The direction example strips of the selected face.
    Strips,
    /// History and favourite thumbnails.
    Thumbs,
    /// Loading or computing the principal directions.
    Directions,
    /// The live walk.
    Walk,
    /// Pixels for an export; written to `path` when the job finishes.
    Export {
        /// What is exported.
        what: FaceExport,
        /// Where it goes.
        path: PathBuf,
        /// Frames as they arrive, by index.
        frames: Vec<Option<FaceImage>>,
    },
}

/// A job's purpose and what its samples are.
pub(super) struct FacesJob {
    /// What it is for.
    pub kind: JobKind,
    /// Face keys by sample index (render jobs).
    pub keys: Vec<u64>,
    /// Side of the samples.
    pub size: u32,
}

/// The key of the last request of each kind, so a request is made once per change.
#[derive(Default)]
pub(super) struct Requested {
    pub(super) grid: Option<u64>,
    pub(super) preview: Option<u64>,
    pub(super) strips: Option<u64>,
    pub(super) thumbs: Option<u64>,
}

/// The Faces page's UI state.
pub struct FacesPanel {
    pub(super) model: PathBuf,
    pub(super) seed: u64,
    pub(super) grid: usize,
    pub(super) psi: f32,
    /// The face on the right, with its direction offsets.
    pub(super) selected: Option<FaceSpec>,
    pub(super) history: History,
    /// Opened on first draw, in the app's data folder.
    pub(super) favourites: Option<Favourites>,
    pub(super) directions: Option<Arc<Directions>>,
    pub(super) directions_asked: bool,
    pub(super) thumbs: Thumbs,
    /// The latest preview pixels (for the clipboard).
    pub(super) preview_image: Option<(u64, FaceImage)>,
    pub(super) grid_faces: Vec<FaceSpec>,
    pub(super) grid_for: Option<(u64, usize, u32)>,
    pub(super) jobs: JobBook<FacesJob>,
    /// The export whose save dialog is open.
    pub(super) pending_export: Option<FaceExport>,
    pub(super) requested: Requested,
    pub(super) walk: Walk,
    pub(super) generator: Option<GeneratorInfo>,
    /// The latest engine error, shown inline until dismissed.
    pub(super) error: Option<String>,
    pub(super) exports: Vec<Receiver<Result<PathBuf, String>>>,
    /// Samples received so far (tests watch re-renders with it).
    pub(super) samples: u64,
    pub(super) ctx: Option<egui::Context>,
    /// Play the walk on the next frame (the kiosk's attract loop asks, see [`Self::request_play`]).
    pub(super) play_requested: bool,
}

impl Default for FacesPanel {
    fn default() -> Self {
        Self {
            model: crate::features::faces::default_model(),
            seed: 0,
            grid: 4,
            psi: 0.8,
            selected: None,
            history: History::default(),
            favourites: None,
            directions: None,
            directions_asked: false,
            thumbs: Thumbs::default(),
            preview_image: None,
            grid_faces: Vec::new(),
            grid_for: None,
            jobs: JobBook::default(),
            pending_export: None,
            requested: Requested::default(),
            walk: Walk::default(),
            generator: None,
            error: None,
            exports: Vec::new(),
            samples: 0,
            ctx: None,
            play_requested: false,
        }
    }
}

impl FacesPanel {
    /// The selected face, if any.
    pub fn selected(&self) -> Option<&FaceSpec> {
        self.selected.as_ref()
    }

    /// The first seed of the grid.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Cells per side of the grid.
    pub fn grid_size(&self) -> usize {
        self.grid
    }

    /// The truncation ψ of the grid and the selection.
    pub fn psi(&self) -> f32 {
        self.psi
    }

    /// Sets ψ as the slider does (the grid and the preview re-render).
    pub fn set_psi(&mut self, psi: f32) {
        self.psi = psi.clamp(*PSI_RANGE.start(), *PSI_RANGE.end());
        if let Some(s) = &mut self.selected {
            s.psi = self.psi;
        }
        self.walk.stop();
    }

    /// How many grid cells show their face at full resolution.
    pub fn grid_filled(&self) -> usize {
        let size = self.cell_px();
        self.grid_faces
            .iter()
            .filter(|f| self.thumbs.has(face_key(f), size))
            .count()
    }

    /// Whether the preview shows the selected face at [`PREVIEW_SIZE`].
    pub fn preview_ready(&self) -> bool {
        self.selected.as_ref().is_some_and(|s| {
            self.preview_image
                .as_ref()
                .is_some_and(|(k, _)| *k == face_key(s))
        })
    }

    /// The selected face's preview pixels and seed, once rendered (the Style panel can use
    /// it as a style image).
    pub fn selected_image(&self) -> Option<(&FaceImage, Option<u64>)> {
        if !self.preview_ready() {
            return None;
        }
        let seed = self.selected.as_ref().and_then(|s| s.seed);
        self.preview_image.as_ref().map(|(_, img)| (img, seed))
    }

    /// Samples received from the worker so far.
    pub fn samples_received(&self) -> u64 {
        self.samples
    }

    /// The starred faces.
    pub fn favourites(&self) -> &[Favourite] {
        self.favourites.as_ref().map_or(&[], |f| f.items())
    }

    /// The selection history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The principal directions, once loaded.
    pub fn directions(&self) -> Option<&Directions> {
        self.directions.as_deref()
    }

    /// The live walk's state.
    pub fn walk(&self) -> &Walk {
        &self.walk
    }

    /// The latest engine error shown in the panel.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Sets the walk's keyframes (2–8 are needed to play).
    pub fn set_walk_keys(&mut self, keys: Vec<FaceSpec>) {
        self.walk.stop();
        self.walk.keys = keys.into_iter().take(MAX_KEYS).collect();
    }

    /// The generator file the grid draws from.
    pub fn model(&self) -> &std::path::Path {
        &self.model
    }

    /// Uses another generator file (same architecture); tests point it at a missing file.
    pub fn set_model(&mut self, path: PathBuf) {
        self.walk.stop();
        self.model = path;
        self.requested = Requested::default();
        self.directions = None;
        self.directions_asked = false;
        self.generator = None;
    }

    /// Back to a fresh panel (kiosk reset): every job is cancelled; the walk's texture, which
    /// is registered with the renderer, is kept for the next walk.
    pub fn reset_state(&mut self) {
        self.walk.stop();
        self.jobs.cancel_all();
        let output = self.walk.output.take();
        let model = std::mem::take(&mut self.model);
        *self = Self::default();
        self.walk.output = output;
        self.model = model;
    }

    /// Plays the walk through the current keyframes on the next frame, as the Play button does.
    pub fn request_play(&mut self) {
        self.play_requested = true;
    }

    /// Stops the live walk (leaving the page, exit, or another job needs the worker).
    pub fn stop_walk(&mut self) {
        self.walk.stop();
    }

    pub(super) fn select(&mut self, face: FaceSpec) {
        self.walk.stop();
        if (face.psi - self.psi).abs() > f32::EPSILON {
            // ψ is one control for the grid and the selection: a favourite brings its own.
            self.psi = face.psi;
        }
        self.history.push(face.clone());
        self.selected = Some(face);
    }

    /// Selects grid cell `index` (as a click does).
    pub fn select_cell(&mut self, index: usize) {
        if let Some(face) = self.grid_faces.get(index).cloned() {
            self.select(face);
        }
    }

    /// Stars the selected face, or unstars it if it is starred.
    pub fn toggle_star(&mut self) {
        let (Some(face), Some(favs)) = (&self.selected, &mut self.favourites) else {
            return;
        };
        let result = match favs.find(face) {
            Some(id) => favs.remove(id).map(|_| ()),
            None => favs.add(face.clone()).map(|_| ()),
        };
        if let Err(e) = result {
            self.error = Some(e.to_string());
        }
    }

    pub(super) fn play(&mut self, cx: &mut PanelContext<'_>) {
        let Some(engine) = cx.engine else {
            return;
        };
        if !(2..=MAX_KEYS).contains(&self.walk.keys.len()) {
            return;
        }
        self.walk.stop();
        let texture = cx.render_state.and_then(|rs| self.walk.gpu_texture(rs));
        let handle = engine.faces_live_walk(LiveWalkRequest {
            model: self.model.clone(),
            keyframes: self.walk.keys.clone(),
            control: self.walk.control.clone(),
            texture,
            size: walk::WALK_PIXELS,
            fps: self.walk.fps,
        });
        self.walk.job = Some(handle.clone());
        self.walk.frames = 0;
        self.walk.pacing = None;
        self.walk.showing = false;
        self.push_job(handle, JobKind::Walk, Vec::new(), 0);
    }
}
