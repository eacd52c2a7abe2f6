//! The Faces panel: live exploration of the DCGAN face generator's latent space.
//!
//! Left: seed, grid size, truncation ψ and the principal directions (sliders with example
//! strips). Centre: a grid of consecutive seeds that fills in as samples arrive. Right: the
//! selected face, large, with favourite/export actions and the latent walk. Bottom: favourites
//! and the history of selections.
//!
//! The panel holds UI state only. Each frame it compares what is on screen with what is
//! rendered (`thumbs::Thumbs`, keyed by face) and asks the worker for what is missing,
//! cancelling the job it replaces — so dragging ψ never queues stale renders. A live walk
//! occupies the worker until cancelled, so any other change stops it first.

mod export;
mod thumbs;
mod walk;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use egui::RichText;
use image::imageops::FilterType;

pub use export::{FaceExport, PNG_SIZES};
use thumbs::{Thumbs, face_key};
pub use walk::{FPS_CHOICES, MAX_KEYS, Walk, pacing_line};

use super::{Command, Panel, PanelContext};
use crate::engine::{
    Engine, Event, FacesEvent, JobHandle, JobId, LiveWalkRequest, RenderRequest, WalkRequest,
};
use crate::faces::{
    DIRECTION_COUNT, Directions, FaceImage, FaceSpec, Favourite, Favourites, History,
    PREVIEW_FILTER, PSI_RANGE,
};
use crate::models::dcgan::GeneratorInfo;
use crate::store::{Notice, NoticeLevel, Page};
use crate::theme::{self, icon, space};

/// The command that fetches the face generator.
pub const FETCH_FACES: &str = "models/fetch.sh faces";

/// Side of the large preview as rendered by the worker (it is drawn at most this large).
pub const PREVIEW_SIZE: u32 = 512;

/// Side of history, favourite and direction-strip thumbnails: the model's own pixels.
const THUMB_SIZE: u32 = 64;

/// Grid sizes offered (cells per side).
pub const GRID_RANGE: std::ops::RangeInclusive<usize> = 2..=6;

/// Offsets shown in each direction's example strip, in prior standard deviations.
const STRIP_OFFSETS: [f32; 7] = [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0];

/// The range of a direction slider, in prior standard deviations.
const OFFSET_RANGE: std::ops::RangeInclusive<f32> = -3.0..=3.0;

/// What a Faces job of this panel is for.
enum JobKind {
    /// Grid cells.
    Grid,
    /// The selected face at [`PREVIEW_SIZE`].
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

/// A job this panel submitted and has not seen end.
struct Job {
    handle: JobHandle,
    kind: JobKind,
    /// Face keys by sample index (render jobs).
    keys: Vec<u64>,
    /// Side of the samples.
    size: u32,
    /// Samples (or progress units) done, and in all.
    done: usize,
    total: usize,
    started: bool,
}

/// The key of the last request of each kind, so a request is made once per change.
#[derive(Default)]
struct Requested {
    grid: Option<u64>,
    preview: Option<u64>,
    strips: Option<u64>,
    thumbs: Option<u64>,
}

/// The Faces page's UI state.
pub struct FacesPanel {
    model: PathBuf,
    seed: u64,
    grid: usize,
    psi: f32,
    /// The face on the right, with its direction offsets.
    selected: Option<FaceSpec>,
    history: History,
    /// Opened on first draw, in the app's data folder.
    favourites: Option<Favourites>,
    directions: Option<Arc<Directions>>,
    directions_asked: bool,
    thumbs: Thumbs,
    /// The latest preview pixels (for the clipboard).
    preview_image: Option<(u64, FaceImage)>,
    grid_faces: Vec<FaceSpec>,
    grid_for: Option<(u64, usize, u32)>,
    jobs: Vec<Job>,
    requested: Requested,
    walk: Walk,
    generator: Option<GeneratorInfo>,
    /// The latest engine error, shown inline until dismissed.
    error: Option<String>,
    exports: Vec<Receiver<Result<PathBuf, String>>>,
    /// Samples received so far (tests watch re-renders with it).
    samples: u64,
    ctx: Option<egui::Context>,
    /// Play the walk on the next frame (the kiosk's attract loop asks, see [`Self::request_play`]).
    play_requested: bool,
}

impl Default for FacesPanel {
    fn default() -> Self {
        Self {
            model: crate::faces::default_model(),
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
            jobs: Vec::new(),
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

impl Panel for FacesPanel {
    fn name(&self) -> &'static str {
        "Faces"
    }

    fn page(&self) -> Page {
        Page::Faces
    }

    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let ctx = ui.ctx().clone();
        self.ctx = Some(ctx.clone());
        if self.favourites.is_none() {
            let path = cx.store.dir().join("faces").join("favourites.json");
            let (favs, err) = Favourites::open(&path);
            if let Some(e) = err {
                cx.commands.push(Command::Toast(Notice {
                    level: NoticeLevel::Warning,
                    message: e.to_string(),
                }));
            }
            self.favourites = Some(favs);
        }
        self.thumbs.upload(&ctx);
        self.walk.upload(&ctx);
        self.poll_exports(cx);
        self.refresh_grid_faces();

        if !self.model.is_file() {
            egui::CentralPanel::default()
                .frame(egui::Frame::new().fill(theme::BG))
                .show(ui, |ui| self.missing_model(ui));
            return;
        }
        if let Some(engine) = cx.engine
            && !self.walk.is_playing()
        {
            self.request_missing(engine);
        }
        if std::mem::take(&mut self.play_requested) {
            self.play(cx);
        }

        let mut actions = Vec::new();
        egui::Panel::left("faces-controls")
            .resizable(false)
            .exact_size(320.0)
            .frame(theme::side_panel())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("faces-controls-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.controls(ui, cx, &mut actions));
            });
        egui::Panel::right("faces-selected")
            .resizable(false)
            .exact_size(440.0)
            .frame(theme::side_panel())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("faces-selected-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.selected_view(ui, cx, &mut actions));
            });
        egui::Panel::bottom("faces-strips")
            .resizable(false)
            .exact_size(176.0)
            .frame(
                egui::Frame::new()
                    .fill(theme::BG)
                    .inner_margin(egui::Margin::symmetric(space::XL as i8, space::M as i8)),
            )
            .show(ui, |ui| self.strips_view(ui, &mut actions));
        egui::CentralPanel::default()
            .frame(
                egui::Frame::new()
                    .fill(theme::BG)
                    .inner_margin(egui::Margin::same(space::L as i8)),
            )
            .show(ui, |ui| self.grid_view(ui, cx, &mut actions));

        for a in actions {
            self.apply(a, cx, &ctx);
        }
        if self.walk.is_playing() && !self.walk.control.is_paused() {
            // Show each frame the worker writes: repaint at the walk's rate while it plays.
            ctx.request_repaint_after(std::time::Duration::from_secs_f32(1.0 / self.walk.fps));
        }
        let keep = self.on_screen_keys();
        self.thumbs.trim(&keep);
    }
}

/// Something the user did, applied after the panel has drawn.
enum Action {
    /// Select a face (recorded in the history).
    Select(FaceSpec),
    /// Star or unstar the selected face.
    ToggleStar,
    /// Remove a favourite by id.
    Unstar(u64),
    /// Add a face to the walk's keyframes.
    AddKey(FaceSpec),
    /// Remove keyframe i.
    RemoveKey(usize),
    /// Start the live walk.
    Play,
    /// Stop the live walk.
    Stop,
    /// Ask where to export, then export.
    Export(FaceExport),
    /// Copy the selected face's preview image to the clipboard.
    Copy,
    /// Something changed that needs the worker: stop the walk.
    Changed,
}

impl FacesPanel {
    // -------------------------------------------------------------------------------------
    // Engine events

    /// Whether this panel submitted `job` (the app routes engine events by job id).
    pub fn owns(&self, job: JobId) -> bool {
        self.jobs.iter().any(|j| j.handle.id() == job)
    }

    /// Applies an engine event of one of this panel's jobs.
    pub fn on_event(&mut self, event: Event) {
        let id = event.job();
        let Some(i) = self.jobs.iter().position(|j| j.handle.id() == id) else {
            return;
        };
        match event {
            Event::Started { .. } => self.jobs[i].started = true,
            Event::Faces { event, .. } => self.on_faces_event(i, event),
            Event::Finished { .. } | Event::Cancelled { .. } => self.job_ended(i),
            Event::Failed { error, .. } => {
                tracing::warn!("faces job {id} failed: {error}");
                self.error = Some(error.to_string());
                self.job_ended(i);
            }
            _ => {}
        }
    }

    fn on_faces_event(&mut self, i: usize, event: FacesEvent) {
        match event {
            FacesEvent::Loaded(info) => self.generator = Some(*info),
            FacesEvent::Sample { index, image } => {
                self.samples += 1;
                let job = &mut self.jobs[i];
                job.done = job.done.max(index + 1);
                if let JobKind::Export { frames, .. } = &mut job.kind {
                    if let Some(slot) = frames.get_mut(index) {
                        *slot = Some(image);
                    }
                    return;
                }
                let Some(&key) = job.keys.get(index) else {
                    return;
                };
                if matches!(job.kind, JobKind::Preview) {
                    self.preview_image = Some((key, image.clone()));
                }
                let size = job.size;
                self.thumbs.insert(key, size, image);
            }
            FacesEvent::Progress { done, total } => {
                let job = &mut self.jobs[i];
                job.done = done;
                job.total = total;
            }
            FacesEvent::Directions { directions, .. } => self.directions = Some(directions),
            FacesEvent::WalkFrame {
                frame,
                position,
                pixels,
            } => {
                self.walk.frames = frame;
                self.walk.position = position;
                self.walk.showing = true;
                if pixels.is_some() {
                    self.walk.pending = pixels;
                }
            }
            FacesEvent::Pacing(stats) => self.walk.pacing = Some(stats),
        }
    }

    fn job_ended(&mut self, i: usize) {
        let job = self.jobs.remove(i);
        match job.kind {
            JobKind::Walk
                if self
                    .walk
                    .job
                    .as_ref()
                    .is_some_and(|w| w.id() == job.handle.id()) =>
            {
                self.walk.job = None;
                self.walk.showing = false;
            }
            JobKind::Export { what, path, frames } if !job.handle.is_cancelled() => {
                let frames: Vec<FaceImage> = frames.into_iter().flatten().collect();
                if !frames.is_empty() {
                    self.exports.push(export::write_in_background(
                        what,
                        path,
                        frames,
                        self.ctx.clone(),
                    ));
                }
            }
            _ => {}
        }
    }

    // -------------------------------------------------------------------------------------
    // State the app and the tests read

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
    pub fn reset(&mut self) {
        self.walk.stop();
        for j in &self.jobs {
            j.handle.cancel();
        }
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

    /// What the status bar says about Faces work, if anything is happening.
    pub fn status(&self) -> Option<String> {
        if self.walk.is_playing() {
            return Some(match &self.walk.pacing {
                Some(p) if p.mean_interval_ms > 0.0 => {
                    format!("Faces: walk {:.0} fps", 1000.0 / p.mean_interval_ms)
                }
                _ => "Faces: walk starting".into(),
            });
        }
        let active: Vec<&Job> = self
            .jobs
            .iter()
            .filter(|j| !j.handle.is_cancelled())
            .collect();
        // One worker runs every model: say so when a Write or Style job holds it.
        if !active.is_empty() && active.iter().all(|j| !j.started) {
            return Some("Faces: waiting for the running job to finish".into());
        }
        if let Some(j) = active
            .iter()
            .find(|j| matches!(j.kind, JobKind::Export { .. }))
        {
            return Some(format!("Faces: exporting {}/{}", j.done, j.total));
        }
        if let Some(j) = active
            .iter()
            .find(|j| matches!(j.kind, JobKind::Directions))
        {
            return Some(if j.total > 0 {
                format!(
                    "Faces: directions {:.0}%",
                    100.0 * j.done as f32 / j.total as f32
                )
            } else {
                "Faces: loading directions".into()
            });
        }
        let (done, total) = active
            .iter()
            .filter(|j| {
                matches!(
                    j.kind,
                    JobKind::Grid | JobKind::Preview | JobKind::Strips | JobKind::Thumbs
                )
            })
            .fold((0, 0), |(d, t), j| (d + j.done, t + j.total));
        if total > 0 {
            let queued = active.iter().all(|j| !j.started);
            return Some(if queued {
                "Faces: queued".into()
            } else {
                format!("Faces: rendering {done}/{total}")
            });
        }
        None
    }

    /// Called by the app with the path the user chose for an export.
    pub fn export_to(&mut self, engine: Option<&Engine>, what: FaceExport, path: PathBuf) {
        let Some(engine) = engine else {
            return;
        };
        self.walk.stop();
        match what {
            FaceExport::Png(size) => {
                let Some(face) = self.selected.clone() else {
                    return;
                };
                let handle = engine.faces_render(RenderRequest {
                    model: self.model.clone(),
                    faces: vec![face],
                    size,
                });
                self.push_job(handle, export_kind(what, path, 1), Vec::new(), size);
            }
            FaceExport::Gif => {
                if self.walk.keys.len() < 2 {
                    return;
                }
                let frames = gif_frames(self.walk.keys.len(), self.walk.control.speed());
                let handle = engine.faces_walk(WalkRequest {
                    model: self.model.clone(),
                    keyframes: self.walk.keys.clone(),
                    frames,
                    size: 256,
                });
                self.push_job(handle, export_kind(what, path, frames), Vec::new(), 256);
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Asking the worker for what is missing

    fn cell_px(&self) -> u32 {
        // Large cells get more pixels so the upscale is the preview filter's, not the GPU's.
        if self.grid <= 3 { 256 } else { 128 }
    }

    fn refresh_grid_faces(&mut self) {
        let now = (self.seed, self.grid, self.psi.to_bits());
        if self.grid_for != Some(now) {
            self.grid_for = Some(now);
            self.grid_faces = (0..(self.grid * self.grid) as u64)
                .map(|i| FaceSpec::from_seed(self.seed.wrapping_add(i), self.psi))
                .collect();
        }
    }

    fn push_job(&mut self, handle: JobHandle, kind: JobKind, keys: Vec<u64>, size: u32) {
        let total = match &kind {
            JobKind::Export { frames, .. } => frames.len(),
            _ => keys.len(),
        };
        self.jobs.push(Job {
            handle,
            kind,
            keys,
            size,
            done: 0,
            total,
            started: false,
        });
    }

    /// Cancels the running jobs of a kind (they are being replaced).
    fn cancel(&mut self, is_kind: impl Fn(&JobKind) -> bool) {
        for j in self.jobs.iter().filter(|j| is_kind(&j.kind)) {
            j.handle.cancel();
        }
    }

    fn render(
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
    fn request_missing(&mut self, engine: &Engine) {
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

    fn on_screen_keys(&self) -> HashSet<u64> {
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

    // -------------------------------------------------------------------------------------
    // Actions

    fn select(&mut self, face: FaceSpec) {
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

    fn apply(&mut self, action: Action, cx: &mut PanelContext<'_>, ctx: &egui::Context) {
        match action {
            Action::Select(face) => self.select(face),
            Action::ToggleStar => self.toggle_star(),
            Action::Unstar(id) => {
                if let Some(favs) = &mut self.favourites
                    && let Err(e) = favs.remove(id)
                {
                    self.error = Some(e.to_string());
                }
            }
            Action::AddKey(face) => {
                self.walk.stop();
                if self.walk.keys.len() < MAX_KEYS {
                    self.walk.keys.push(face);
                }
            }
            Action::RemoveKey(i) => {
                self.walk.stop();
                if i < self.walk.keys.len() {
                    self.walk.keys.remove(i);
                }
            }
            Action::Play => self.play(cx),
            Action::Stop => self.walk.stop(),
            Action::Export(what) => {
                self.walk.stop();
                cx.commands.push(Command::FacesExportDialog {
                    what,
                    seed: self.selected.as_ref().and_then(|s| s.seed),
                });
            }
            Action::Copy => {
                if let Some((_, image)) = &self.preview_image {
                    ctx.copy_image(thumbs::color_image(image));
                    cx.commands.push(Command::Toast(Notice {
                        level: NoticeLevel::Info,
                        message: format!(
                            "Copied the face ({}×{}) to the clipboard.",
                            image.width, image.height
                        ),
                    }));
                }
            }
            Action::Changed => self.walk.stop(),
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

    fn play(&mut self, cx: &mut PanelContext<'_>) {
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

    fn poll_exports(&mut self, cx: &mut PanelContext<'_>) {
        super::poll_exports(&mut self.exports, cx.commands);
    }

    // -------------------------------------------------------------------------------------
    // Drawing

    fn missing_model(&mut self, ui: &mut egui::Ui) {
        ui.add_space(60.0);
        theme::centered_column(ui, 620.0, |ui| {
            ui.label(RichText::new("Faces").font(theme::strong(28.0)));
            ui.label(
                RichText::new("Explore the latent space of a 64×64 DCGAN face generator.")
                    .size(16.0)
                    .color(theme::TEXT_WEAK),
            );
            ui.add_space(space::L);
            theme::notice_frame(theme::WARN).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(
                    RichText::new(format!(
                        "{} The face generator is not installed.",
                        icon::WARNING
                    ))
                    .color(theme::WARN),
                );
                ui.label(
                    RichText::new(format!("Looking for {}", self.model.display()))
                        .size(12.5)
                        .color(theme::TEXT_WEAK),
                );
                ui.horizontal(|ui| {
                    ui.label(RichText::new("Fetch it with").color(theme::TEXT));
                    ui.label(RichText::new(FETCH_FACES).monospace().color(theme::ACCENT));
                    if ui.small_button("Copy").clicked() {
                        ui.ctx().copy_text(FETCH_FACES.into());
                    }
                });
                ui.label(
                    RichText::new(
                        "(run it in the project folder; it downloads gan-face-generate 1.1.1 \
                         from PyPI and checks its SHA-256). The page starts as soon as the file \
                         is there.",
                    )
                    .size(12.5)
                    .color(theme::TEXT_FAINT),
                );
            });
        });
        // Notice the file appearing without the user having to do anything.
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs(2));
    }

    fn controls(&mut self, ui: &mut egui::Ui, cx: &PanelContext<'_>, actions: &mut Vec<Action>) {
        ui.spacing_mut().item_spacing.y = 6.0;
        ui.label(RichText::new("Faces").font(theme::strong(20.0)));
        let about = match &self.generator {
            Some(g) => format!(
                "DCGAN · 64×64 · {} parameters · {}",
                theme::thousands(g.parameters),
                g.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            None => "DCGAN face generator · 64×64 pixels".into(),
        };
        ui.label(RichText::new(about).size(12.0).color(theme::TEXT_FAINT));
        if let Some(err) = cx.engine_error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
        }
        ui.add_space(space::M);

        theme::section_label(ui, "Seed");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let page = (self.grid * self.grid) as u64;
            let r = ui
                .add_enabled(
                    self.seed > 0,
                    egui::Button::new("←").min_size(egui::vec2(32.0, 28.0)),
                )
                .on_hover_text("Previous page of seeds")
                .accessible_name("Previous seeds");
            if r.clicked() {
                self.seed = self.seed.saturating_sub(page);
                actions.push(Action::Changed);
            }
            let r = ui
                .add(
                    egui::DragValue::new(&mut self.seed)
                        .range(0..=u32::MAX as u64)
                        .speed(1.0),
                )
                .on_hover_text("The first seed of the grid; each cell is the next seed")
                .accessible_name("Seed");
            if r.changed() {
                actions.push(Action::Changed);
            }
            let r = ui
                .add(egui::Button::new("→").min_size(egui::vec2(32.0, 28.0)))
                .on_hover_text("Next page of seeds")
                .accessible_name("Next seeds");
            if r.clicked() {
                self.seed = self.seed.saturating_add(page).min(u32::MAX as u64);
                actions.push(Action::Changed);
            }
            if theme::dice_button(ui, "Random seed")
                .on_hover_text("A random seed")
                .clicked()
            {
                self.seed = rand::random::<u32>() as u64;
                actions.push(Action::Changed);
            }
        });
        ui.add_space(space::S);

        theme::section_label(ui, "Grid");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for n in GRID_RANGE {
                let r = ui
                    .add(
                        egui::Button::selectable(self.grid == n, format!("{n}×{n}"))
                            .min_size(egui::vec2(46.0, 28.0)),
                    )
                    .accessible_name(format!("Grid {n} by {n}"));
                if r.clicked() && self.grid != n {
                    self.grid = n;
                    actions.push(Action::Changed);
                }
            }
        });
        ui.add_space(space::S);

        theme::section_label(ui, "Truncation ψ");
        ui.spacing_mut().slider_width = ui.available_width() - 70.0;
        let r = ui
            .add(
                egui::Slider::new(&mut self.psi, PSI_RANGE)
                    .step_by(0.01)
                    .fixed_decimals(2),
            )
            .accessible_name("Truncation psi");
        if r.changed() {
            let psi = self.psi;
            self.set_psi(psi);
        }
        ui.label(
            RichText::new(
                "Scales every latent toward the average face: 0 is the mean face, 1 the faces \
                 as sampled, above 1 more unusual.",
            )
            .size(12.0)
            .color(theme::TEXT_FAINT),
        );
        ui.add_space(space::M);
        self.directions_view(ui, actions);
    }

    fn directions_view(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        theme::section_label(ui, "Directions");
        let Some(dirs) = self.directions.clone() else {
            let job = self
                .jobs
                .iter()
                .find(|j| matches!(j.kind, JobKind::Directions));
            match job {
                Some(j) if j.total > 0 => {
                    ui.add(
                        egui::ProgressBar::new(j.done as f32 / j.total as f32)
                            .desired_height(6.0)
                            .fill(theme::ACCENT),
                    );
                    ui.label(
                        RichText::new(
                            "Finding the main directions of variation (PCA over 4,096 random \
                             faces). This runs once; the result is kept on disk.",
                        )
                        .size(12.0)
                        .color(theme::TEXT_FAINT),
                    );
                }
                Some(_) => {
                    ui.label(
                        RichText::new("Loading directions…")
                            .size(12.5)
                            .color(theme::TEXT_WEAK),
                    );
                }
                None => {
                    ui.label(
                        RichText::new("Directions are not available.")
                            .size(12.5)
                            .color(theme::TEXT_WEAK),
                    );
                }
            }
            return;
        };
        let Some(sel) = self.selected.clone() else {
            ui.label(
                RichText::new("Select a face to steer it along the model's main directions.")
                    .size(12.5)
                    .color(theme::TEXT_WEAK),
            );
            return;
        };
        ui.label(
            RichText::new("Each slider moves the selected face along one principal direction (in standard deviations); the strip shows −3σ … +3σ.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        let count = dirs.vectors.len().min(DIRECTION_COUNT);
        let strips = strip_faces(&sel, count);
        let mut offsets = sel.offsets.clone();
        offsets.resize(count, 0.0);
        let mut changed = false;
        for k in 0..count {
            ui.add_space(space::XS);
            ui.horizontal(|ui| {
                let explained = dirs.explained.get(k).copied().unwrap_or(0.0) * 100.0;
                let id = ui
                    .label(RichText::new(format!("{}", k + 1)).font(theme::strong(13.0)))
                    .on_hover_text(format!(
                        "Direction {} explains {explained:.1}% of the variation",
                        k + 1
                    ))
                    .id;
                ui.spacing_mut().slider_width = ui.available_width() - 64.0;
                let r = ui
                    .add(
                        egui::Slider::new(&mut offsets[k], OFFSET_RANGE)
                            .step_by(0.05)
                            .fixed_decimals(2),
                    )
                    .labelled_by(id)
                    .accessible_name(format!("Direction {}", k + 1));
                if r.changed() {
                    changed = true;
                }
                if r.double_clicked() {
                    offsets[k] = 0.0;
                    changed = true;
                }
            });
            // The strip: what this slider does to this face.
            let w = ui.available_width();
            let gap = 3.0;
            let cell = ((w - gap * 6.0) / 7.0).floor();
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing.x = gap;
                for (j, face) in strips[k].iter().enumerate() {
                    let o = STRIP_OFFSETS[j];
                    let label = format!("Direction {} at {o:+.0}σ", k + 1);
                    let r = face_tile(
                        ui,
                        &self.thumbs,
                        face,
                        THUMB_SIZE,
                        egui::vec2(cell, cell),
                        (offsets[k] - o).abs() < 0.5,
                        &label,
                    );
                    if r.clicked() {
                        offsets[k] = o;
                        changed = true;
                    }
                }
            });
        }
        if changed {
            if let Some(s) = &mut self.selected {
                s.offsets = trim_offsets(offsets);
            }
            actions.push(Action::Changed);
        }
        if sel.has_offsets()
            && ui
                .button(format!("{} Reset directions", icon::RESET))
                .clicked()
        {
            if let Some(s) = &mut self.selected {
                s.offsets.clear();
            }
            actions.push(Action::Changed);
        }
    }

    fn grid_view(&mut self, ui: &mut egui::Ui, cx: &PanelContext<'_>, actions: &mut Vec<Action>) {
        if let Some(err) = self.error.clone() {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.add(
                        egui::Label::new(
                            RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR),
                        )
                        .wrap(),
                    );
                    if ui
                        .add(egui::Button::new(icon::CROSS).frame(false).small())
                        .accessible_name("Dismiss error")
                        .clicked()
                    {
                        self.error = None;
                    }
                });
            });
            ui.add_space(space::S);
        }
        if cx.engine.is_none() {
            return;
        }
        let n = self.grid;
        let count = n * n;
        let filled = self.grid_filled();
        let header = 28.0;
        let avail = ui.available_size();
        let side = (avail.x.min(avail.y - header - space::S)).max(160.0);
        theme::centered_column(ui, side, |ui| {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!(
                        "Seeds {}–{}",
                        self.seed,
                        self.seed + count as u64 - 1
                    ))
                    .font(theme::strong(15.0)),
                );
                ui.label(
                    RichText::new(format!("ψ {:.2}", self.psi))
                        .size(13.0)
                        .color(theme::TEXT_WEAK),
                );
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let text = if filled < count {
                        format!("{filled}/{count} rendered")
                    } else {
                        "Click a face to select it".into()
                    };
                    ui.label(RichText::new(text).size(12.5).color(theme::TEXT_FAINT));
                });
            });
            let gap = 6.0;
            let cell = ((side - gap * (n as f32 - 1.0)) / n as f32).floor();
            let size = self.cell_px();
            let selected_key = self.selected.as_ref().map(face_key);
            egui::Grid::new("faces-grid")
                .spacing([gap, gap])
                .show(ui, |ui| {
                    for r in 0..n {
                        for c in 0..n {
                            let i = r * n + c;
                            let Some(face) = self.grid_faces.get(i) else {
                                continue;
                            };
                            let seed = self.seed + i as u64;
                            let is_selected = selected_key.is_some_and(|k| {
                                self.selected
                                    .as_ref()
                                    .is_some_and(|s| s.seed == Some(seed) && k == face_key(s))
                                    || k == face_key(face)
                            });
                            let resp = face_tile(
                                ui,
                                &self.thumbs,
                                face,
                                size,
                                egui::vec2(cell, cell),
                                is_selected,
                                &format!("Seed {seed}"),
                            );
                            if cell >= 90.0 {
                                let p = resp.rect.left_bottom() + egui::vec2(6.0, -6.0);
                                let galley = ui.painter().layout_no_wrap(
                                    seed.to_string(),
                                    egui::FontId::proportional(11.0),
                                    theme::TEXT,
                                );
                                let bg = egui::Rect::from_min_size(
                                    p - egui::vec2(0.0, galley.size().y + 2.0),
                                    galley.size() + egui::vec2(8.0, 2.0),
                                );
                                ui.painter().rect_filled(
                                    bg,
                                    4.0,
                                    egui::Color32::from_black_alpha(150),
                                );
                                ui.painter().galley(
                                    bg.min + egui::vec2(4.0, 1.0),
                                    galley,
                                    theme::TEXT,
                                );
                            }
                            if resp.clicked() {
                                actions.push(Action::Select(face.clone()));
                            }
                            let face = face.clone();
                            resp.context_menu(|ui| {
                                if ui.button("Add to walk").clicked() {
                                    actions.push(Action::AddKey(face.clone()));
                                    ui.close();
                                }
                            });
                        }
                        ui.end_row();
                    }
                });
        });
    }

    fn selected_view(
        &mut self,
        ui: &mut egui::Ui,
        cx: &PanelContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.spacing_mut().item_spacing.y = 6.0;
        let side = ui.available_width().min(PREVIEW_SIZE as f32).floor();
        let walk_tex = if self.walk.showing {
            self.walk.texture_id()
        } else {
            None
        };
        ui.horizontal(|ui| {
            theme::section_label(
                ui,
                if walk_tex.is_some() {
                    "Latent walk"
                } else {
                    "Selected"
                },
            );
            if let Some(sel) = &self.selected
                && walk_tex.is_none()
            {
                let mut bits = Vec::new();
                if let Some(s) = sel.seed {
                    bits.push(format!("seed {s}"));
                }
                bits.push(format!("ψ {:.2}", sel.psi));
                let edits = sel.offsets.iter().filter(|o| **o != 0.0).count();
                if edits > 0 {
                    bits.push(format!(
                        "{edits} direction edit{}",
                        if edits == 1 { "" } else { "s" }
                    ));
                }
                ui.label(
                    RichText::new(bits.join(" · "))
                        .size(12.5)
                        .color(theme::TEXT_WEAK),
                );
            }
        });
        let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
        let tex = match (walk_tex, &self.selected) {
            (Some(id), _) => Some(id),
            (None, Some(sel)) => self.thumbs.get(face_key(sel), PREVIEW_SIZE).map(|t| t.id()),
            (None, None) => None,
        };
        match tex {
            Some(id) => {
                egui::Image::from_texture(egui::load::SizedTexture::new(id, rect.size()))
                    .corner_radius(theme::RADIUS)
                    .paint_at(ui, rect);
            }
            None => {
                ui.painter()
                    .rect_filled(rect, theme::RADIUS, theme::SURFACE);
                ui.painter().text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    if self.selected.is_some() {
                        "Rendering…"
                    } else {
                        "Click a face in the grid"
                    },
                    egui::FontId::proportional(14.0),
                    theme::TEXT_FAINT,
                );
            }
        }
        ui.label(
            RichText::new(format!(
                "The model draws 64×64 pixels; this view is upscaled {}× with {}.",
                PREVIEW_SIZE / 64,
                filter_name(PREVIEW_FILTER)
            ))
            .size(11.5)
            .color(theme::TEXT_FAINT),
        )
        .on_hover_text(
            "Catmull–Rom is bicubic: sharper than bilinear, without the pixel blocks of nearest \
             neighbour or the halos Lanczos rings around high-contrast edges like eyes.",
        );

        // Actions on the selected face.
        let has_sel = self.selected.is_some();
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let starred = match (&self.selected, &self.favourites) {
                (Some(s), Some(f)) => f.find(s).is_some(),
                _ => false,
            };
            let (text, color) = if starred {
                (format!("{} Starred", icon::STAR), theme::ACCENT)
            } else {
                (format!("{} Favourite", icon::STAR), theme::TEXT)
            };
            let r = ui
                .add_enabled(has_sel, egui::Button::new(RichText::new(text).color(color)))
                .on_hover_text(if starred {
                    "Remove from favourites"
                } else {
                    "Keep this face (seed, ψ and direction edits) across restarts"
                });
            if r.clicked() {
                actions.push(Action::ToggleStar);
            }
            let r = ui
                .add_enabled(
                    has_sel && self.walk.keys.len() < MAX_KEYS,
                    egui::Button::new(format!("{} Keyframe", icon::PLUS)),
                )
                .on_hover_text("Add this face to the latent walk");
            if r.clicked()
                && let Some(s) = &self.selected
            {
                actions.push(Action::AddKey(s.clone()));
            }
            // A kiosk has no file dialogs.
            if !cx.kiosk {
                ui.menu_button(format!("Export {}", icon::CARET), |ui| {
                    for s in PNG_SIZES {
                        if ui
                            .add_enabled(has_sel, egui::Button::new(format!("PNG {s}×{s}…")))
                            .clicked()
                        {
                            actions.push(Action::Export(FaceExport::Png(s)));
                            ui.close();
                        }
                    }
                    if ui
                        .add_enabled(
                            self.walk.keys.len() >= 2,
                            egui::Button::new("Walk as animated GIF…"),
                        )
                        .clicked()
                    {
                        actions.push(Action::Export(FaceExport::Gif));
                        ui.close();
                    }
                    ui.separator();
                    if ui
                        .add_enabled(
                            self.preview_image.is_some() && has_sel,
                            egui::Button::new("Copy image"),
                        )
                        .on_hover_text(
                            "Copies the 512×512 preview (where the system clipboard takes images)",
                        )
                        .clicked()
                    {
                        actions.push(Action::Copy);
                        ui.close();
                    }
                });
            }
        });
        ui.add_space(space::M);
        self.walk_view(ui, cx, actions);
    }

    fn walk_view(&mut self, ui: &mut egui::Ui, cx: &PanelContext<'_>, actions: &mut Vec<Action>) {
        theme::section_label(ui, "Latent walk");
        let keys = self.walk.keys.len();
        if keys == 0 {
            ui.label(
                RichText::new(
                    "Add 2–8 keyframes (select a face, then + Keyframe, or right-click a face) \
                     and play a looping walk that glides between them.",
                )
                .size(12.5)
                .color(theme::TEXT_WEAK),
            );
        }
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for (i, key) in self.walk.keys.iter().enumerate() {
                let label = match key.seed {
                    Some(s) => format!("Keyframe {} (seed {s})", i + 1),
                    None => format!("Keyframe {}", i + 1),
                };
                let r = face_tile(
                    ui,
                    &self.thumbs,
                    key,
                    THUMB_SIZE,
                    egui::vec2(44.0, 44.0),
                    false,
                    &label,
                )
                .on_hover_text("Click to remove from the walk");
                if r.clicked() {
                    actions.push(Action::RemoveKey(i));
                }
            }
        });
        let playing = self.walk.is_playing();
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            if playing {
                if ui.button(format!("{} Stop", icon::STOP)).clicked() {
                    actions.push(Action::Stop);
                }
                let paused = self.walk.control.is_paused();
                if ui
                    .button(if paused {
                        format!("{} Resume", icon::PLAY)
                    } else {
                        "Pause".to_string()
                    })
                    .clicked()
                {
                    self.walk.control.set_paused(!paused);
                }
            } else {
                let r = ui
                    .add_enabled(
                        (2..=MAX_KEYS).contains(&keys) && cx.engine.is_some(),
                        theme::primary_button(&format!("{} Play walk", icon::PLAY)),
                    )
                    .on_disabled_hover_text("Needs 2 to 8 keyframes");
                if r.clicked() {
                    actions.push(Action::Play);
                }
            }
            ui.label(RichText::new("fps").size(12.0).color(theme::TEXT_WEAK));
            for fps in FPS_CHOICES {
                let r = ui
                    .add(egui::Button::selectable(
                        self.walk.fps == fps,
                        format!("{fps:.0}"),
                    ))
                    .accessible_name(format!("{fps:.0} frames per second"));
                if r.clicked() && self.walk.fps != fps {
                    self.walk.fps = fps;
                    if playing {
                        actions.push(Action::Play);
                    }
                }
            }
        });
        ui.spacing_mut().slider_width = ui.available_width() - 130.0;
        let mut speed = self.walk.control.speed();
        let r = ui
            .add(
                egui::Slider::new(&mut speed, 0.05..=2.0)
                    .text("keys/s")
                    .fixed_decimals(2),
            )
            .accessible_name("Walk speed");
        if r.changed() {
            self.walk.control.set_speed(speed);
        }
        if keys >= 2 {
            let mut pos = if playing {
                self.walk.position
            } else {
                self.walk.control.position()
            };
            let r = ui
                .add(
                    egui::Slider::new(&mut pos, 0.0..=keys as f64)
                        .text("position")
                        .fixed_decimals(2),
                )
                .accessible_name("Walk position");
            if r.changed() {
                self.walk.control.seek(pos.rem_euclid(keys as f64));
            }
        }
        if let Some(p) = &self.walk.pacing {
            ui.label(
                RichText::new(pacing_line(p))
                    .size(11.5)
                    .color(theme::TEXT_WEAK),
            )
            .on_hover_text(
                "Measured on the worker as each frame reaches the texture: intervals between \
                 frames (p50, p95; jitter = p95 − p50), and the time to render, upscale and \
                 upload one frame.",
            );
        } else if playing {
            ui.label(
                RichText::new("Starting…")
                    .size(11.5)
                    .color(theme::TEXT_FAINT),
            );
        }
    }

    fn strips_view(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let tile = egui::vec2(52.0, 52.0);
        let selected_key = self.selected.as_ref().map(face_key);
        theme::section_label(ui, "Favourites");
        let favs: Vec<Favourite> = self.favourites().to_vec();
        egui::ScrollArea::horizontal()
            .id_salt("faces-favourites")
            .auto_shrink([false, true])
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.set_min_height(tile.y);
                    if favs.is_empty() {
                        ui.label(
                            RichText::new(format!(
                                "Star a face ({} Favourite) to keep it here across restarts.",
                                icon::STAR
                            ))
                            .size(12.5)
                            .color(theme::TEXT_FAINT),
                        );
                    }
                    for f in &favs {
                        let label = match f.face.seed {
                            Some(s) => format!("Favourite seed {s}"),
                            None => format!("Favourite {}", f.id),
                        };
                        let r = face_tile(
                            ui,
                            &self.thumbs,
                            &f.face,
                            THUMB_SIZE,
                            tile,
                            selected_key == Some(face_key(&f.face)),
                            &label,
                        );
                        if r.clicked() {
                            actions.push(Action::Select(f.face.clone()));
                        }
                        r.context_menu(|ui| {
                            if ui.button("Add to walk").clicked() {
                                actions.push(Action::AddKey(f.face.clone()));
                                ui.close();
                            }
                            if ui.button("Remove from favourites").clicked() {
                                actions.push(Action::Unstar(f.id));
                                ui.close();
                            }
                        });
                    }
                });
            });
        ui.add_space(space::XS);
        theme::section_label(ui, "History");
        let history: Vec<FaceSpec> = self.history.newest_first().cloned().collect();
        egui::ScrollArea::horizontal()
            .id_salt("faces-history")
            .auto_shrink([false, true])
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.set_min_height(tile.y);
                    if history.is_empty() {
                        ui.label(
                            RichText::new("The last 50 faces you select appear here.")
                                .size(12.5)
                                .color(theme::TEXT_FAINT),
                        );
                    }
                    for (i, face) in history.iter().enumerate() {
                        let label = match face.seed {
                            Some(s) => format!("History {} seed {s}", i + 1),
                            None => format!("History {}", i + 1),
                        };
                        let r = face_tile(
                            ui,
                            &self.thumbs,
                            face,
                            THUMB_SIZE,
                            tile,
                            selected_key == Some(face_key(face)),
                            &label,
                        );
                        if r.clicked() {
                            actions.push(Action::Select(face.clone()));
                        }
                    }
                });
            });
    }
}

/// A clickable face: its texture (or a placeholder while it renders), rounded, outlined in
/// the accent when selected. `label` is its accessible name.
fn face_tile(
    ui: &mut egui::Ui,
    thumbs: &Thumbs,
    face: &FaceSpec,
    size: u32,
    display: egui::Vec2,
    selected: bool,
    label: &str,
) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(display, egui::Sense::click());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, ui.is_enabled(), label));
    if !ui.is_rect_visible(rect) {
        return response;
    }
    let radius = if display.x >= 80.0 { 6.0 } else { 4.0 };
    match thumbs.get(face_key(face), size) {
        Some(tex) => {
            egui::Image::from_texture(egui::load::SizedTexture::new(tex.id(), display))
                .corner_radius(radius)
                .paint_at(ui, rect);
        }
        None => {
            ui.painter().rect_filled(rect, radius, theme::SURFACE);
        }
    }
    let stroke = if selected {
        Some(egui::Stroke::new(2.5, theme::ACCENT))
    } else if response.hovered() {
        Some(egui::Stroke::new(1.5, theme::TEXT_WEAK))
    } else {
        None
    };
    if let Some(s) = stroke {
        ui.painter()
            .rect_stroke(rect, radius, s, egui::StrokeKind::Inside);
    }
    response
}

/// The faces of each direction's example strip: the selected face with that direction's
/// offset replaced by each of [`STRIP_OFFSETS`] (the other edits kept).
fn strip_faces(base: &FaceSpec, directions: usize) -> Vec<Vec<FaceSpec>> {
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
fn trim_offsets(mut offsets: Vec<f32>) -> Vec<f32> {
    while offsets.last() == Some(&0.0) {
        offsets.pop();
    }
    offsets
}

/// Frames of an exported walk: one loop at the current speed and [`export::GIF_FPS`].
fn gif_frames(keys: usize, speed: f32) -> usize {
    let per_key = (export::GIF_FPS / speed.abs().max(0.05)).round() as usize;
    (keys * per_key).clamp(2, 600)
}

fn export_kind(what: FaceExport, path: PathBuf, frames: usize) -> JobKind {
    JobKind::Export {
        what,
        path,
        frames: vec![None; frames],
    }
}

fn hash_of(v: &impl std::hash::Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// The filter's name for people.
fn filter_name(f: FilterType) -> &'static str {
    match f {
        FilterType::Nearest => "nearest neighbour",
        FilterType::Triangle => "bilinear filtering",
        FilterType::CatmullRom => "Catmull–Rom (bicubic)",
        FilterType::Gaussian => "a Gaussian filter",
        FilterType::Lanczos3 => "Lanczos3",
    }
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

    #[test]
    fn gif_loops_once_at_the_walk_speed() {
        assert_eq!(gif_frames(3, 0.5), 150);
        assert_eq!(gif_frames(8, 0.05), 600);
    }
}
