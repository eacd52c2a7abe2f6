//! The Style panel: neural style transfer with multistyle26's 26 blendable styles, or any image
//! as the style (the arbitrary-style pair).
//!
//! Left: the content (open, drop or paste an image) and the style (gallery or style image).
//! Centre: the result with a before/after divider. Right: strength, preserve-colour, output
//! size and export.
//!
//! The panel holds UI state only. A change to the content, style or size is debounced
//! ([`DEBOUNCE`]); then a low-resolution preview job is submitted (cancelling the job it
//! replaces) and, when it arrives, the full-resolution job. Strength, preserve-colour and the
//! divider never touch the worker: the shader in `finish` applies them as the view draws.

mod export;
mod finish;
mod gallery;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use egui::RichText;
use image::RgbImage;

pub use export::StyleExport;
pub use finish::SHADER;
use finish::{CpuView, Images, Stylised};
use gallery::{Gallery, THUMB_SIZE};

use super::{Command, Panel, PanelContext};
use crate::engine::{Engine, Event, JobHandle, JobId, StyleEvent};
use crate::models::style::colour::Finish;
use crate::models::style::{MULTISTYLE_FILE, PREDICT_FILE, STYLE_COUNT, StyleMix, TRANSFORM_FILE};
use crate::store::{Page, StyleSettings};
use crate::style::{ImageSource, PREVIEW_SIZE, StyleChoice, StylePass, StyleRequest};
use crate::theme::{self, icon, space};

/// The command that fetches the style networks.
pub const FETCH_STYLE: &str = "models/fetch.sh style";

/// How long after the last change the preview is asked for: dragging a weight slider then
/// asks once when the hand rests, not on every frame.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Results up to this many pixels are converted for the GPU as they are uploaded (a few
/// milliseconds); larger ones on a thread first.
const INLINE_RGBA_PIXELS: u64 = 1 << 20;

/// Output sizes offered (longest side in pixels).
pub const OUTPUT_SIZES: [u32; 4] = [512, 1024, 2048, 4096];

/// Which image a file dialog opened by this panel is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StyleImageSlot {
    /// The picture to restyle.
    Content,
    /// The picture whose style is applied (arbitrary-style model).
    Style,
}

/// Where the style comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StyleMode {
    /// multistyle26's built-in styles, one or a blend.
    Presets,
    /// Any image, through the arbitrary-style pair.
    Image,
}

/// What a Style job of this panel is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JobKind {
    /// The quick low-resolution result; the full one follows when it arrives.
    Preview,
    /// The result at the output size.
    Full,
    /// The gallery thumbnail of one style.
    Thumb(usize),
}

/// A job this panel submitted and has not seen end.
struct Job {
    handle: JobHandle,
    kind: JobKind,
    /// The request, kept so the full pass repeats the preview's exactly.
    request: Option<StyleRequest>,
    done: usize,
    total: usize,
    /// Whether the worker has begun it (it waits while another panel's job runs).
    started: bool,
}

/// An image the user gave, and what to call it.
#[derive(Clone)]
struct Picture {
    source: ImageSource,
    name: String,
}

/// The result on screen.
struct Shown {
    images: Images,
    preview: bool,
    notes: Vec<String>,
    seconds: f64,
    tiles: usize,
}

/// A large result whose RGBA copies are being made on a thread, and what it will show.
struct Readying {
    rx: Receiver<[Vec<u8>; 2]>,
    kind: JobKind,
    shown: Shown,
}

/// The Style page's UI state.
pub struct StylePanel {
    /// Where the panel looks for the networks (to say which are missing).
    models_dir: PathBuf,
    content: Option<Picture>,
    mode: StyleMode,
    /// Chosen presets and their weights (normalised by the engine).
    mix: Vec<(usize, f32)>,
    style_image: Option<Picture>,
    /// A small copy of the content for the Content card, made from the first preview.
    content_thumb: Option<egui::TextureHandle>,
    style_thumb: Option<egui::TextureHandle>,
    style_thumb_rx: Option<Receiver<Option<egui::ColorImage>>>,
    finish: Finish,
    split: bool,
    split_pos: f32,
    max_side: u32,
    jpeg: bool,
    jpeg_quality: u8,
    /// When the request last changed; the preview is asked for [`DEBOUNCE`] later.
    dirty_at: Option<Instant>,
    /// When the change that the next result answers was made (for the latency readout).
    changed_at: Option<Instant>,
    last_latency: Option<Duration>,
    jobs: Vec<Job>,
    /// A large result being converted for the GPU, with what it will show.
    readying: Option<Readying>,
    /// Whether the view draws on the GPU (set each frame from the context).
    gpu: bool,
    /// The renderer's device and queue, for exports of results that stayed on it.
    gpu_handles: Option<(egui_wgpu::wgpu::Device, egui_wgpu::wgpu::Queue)>,
    /// A full pass to submit on the next frame (the preview it follows has arrived).
    full_due: Option<StyleRequest>,
    shown: Option<Shown>,
    generation: u64,
    loading_model: Option<String>,
    /// The latest error, shown inline until the next change.
    error: Option<String>,
    exports: Vec<Receiver<Result<PathBuf, String>>>,
    /// An export waiting for the full-resolution result.
    pending_export: Option<(StyleExport, PathBuf)>,
    gallery: Gallery,
    cpu_view: CpuView,
    previews: u64,
    fulls: u64,
    ctx: Option<egui::Context>,
    /// Whether the saved settings were applied (on the first frame).
    restored: bool,
}

impl Default for StylePanel {
    fn default() -> Self {
        Self {
            models_dir: crate::paths::models_dir(),
            content: None,
            mode: StyleMode::Presets,
            mix: vec![(0, 1.0)],
            style_image: None,
            content_thumb: None,
            style_thumb: None,
            style_thumb_rx: None,
            finish: Finish::default(),
            split: false,
            split_pos: 0.5,
            max_side: 1024,
            jpeg: false,
            jpeg_quality: 90,
            dirty_at: None,
            changed_at: None,
            last_latency: None,
            jobs: Vec::new(),
            full_due: None,
            readying: None,
            gpu: false,
            gpu_handles: None,
            shown: None,
            generation: 0,
            loading_model: None,
            error: None,
            exports: Vec::new(),
            pending_export: None,
            gallery: Gallery::default(),
            cpu_view: CpuView::default(),
            previews: 0,
            fulls: 0,
            ctx: None,
            restored: false,
        }
    }
}

/// Thumbnails are drawn smaller than their pixels: mipmaps keep them from shimmering.
fn thumb_options() -> egui::TextureOptions {
    egui::TextureOptions {
        mipmap_mode: Some(egui::TextureFilter::Linear),
        ..egui::TextureOptions::LINEAR
    }
}

fn file_label(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn is_image_path(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg" | "gif" | "webp"))
}

impl Panel for StylePanel {
    fn name(&self) -> &'static str {
        "Style"
    }

    fn page(&self) -> Page {
        Page::Style
    }

    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let ctx = ui.ctx().clone();
        self.ctx = Some(ctx.clone());
        self.gallery
            .open(cx.store.dir().join("style").join("thumbs"), &ctx);
        self.gallery.poll(&ctx);
        self.gpu = cx.render_state.is_some();
        if self.gpu_handles.is_none() {
            self.gpu_handles = cx
                .render_state
                .map(|rs| (rs.device.clone(), rs.queue.clone()));
        }
        if !self.restored {
            self.restored = true;
            self.restore(&cx.store.settings.style.clone());
        }
        self.poll_readying();
        self.poll_style_thumb(&ctx);
        self.poll_exports(cx);
        self.take_input(&ctx);
        if let Some(engine) = cx.engine {
            self.schedule(engine, &ctx);
        }

        egui::Panel::left("style-controls")
            .resizable(false)
            .exact_size(340.0)
            .frame(theme::side_panel())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("style-controls-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.controls(ui, cx));
            });
        egui::Panel::right("style-finish")
            .resizable(false)
            .exact_size(300.0)
            .frame(theme::side_panel())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("style-finish-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.finish_controls(ui, cx));
            });
        egui::CentralPanel::default()
            .frame(
                egui::Frame::new()
                    .fill(theme::BG)
                    .inner_margin(egui::Margin::same(space::XL as i8)),
            )
            .show(ui, |ui| self.result_view(ui, cx));
        // Mirrored every frame: the store saves (atomically, debounced) only when it changed.
        let settings = self.settings();
        if cx.store.settings.style != settings {
            cx.store.settings.style = settings;
        }
    }
}

impl StylePanel {
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
            Event::Style { event, .. } => self.on_style_event(i, event),
            Event::Started { .. } => self.jobs[i].started = true,
            Event::Finished { .. } | Event::Cancelled { .. } => {
                self.jobs.remove(i);
                self.loading_model = None;
            }
            Event::Failed { error, .. } => {
                let job = self.jobs.remove(i);
                self.loading_model = None;
                tracing::warn!("style job {id} failed: {error}");
                if matches!(job.kind, JobKind::Thumb(_)) {
                    self.gallery.failed = true;
                }
                if !job.handle.is_cancelled() {
                    self.error = Some(error.to_string());
                    if matches!(job.kind, JobKind::Preview | JobKind::Full) {
                        // No full result is coming for the export to wait for.
                        self.pending_export = None;
                    }
                }
            }
            _ => {}
        }
    }

    fn on_style_event(&mut self, i: usize, event: StyleEvent) {
        match event {
            StyleEvent::Loading { path } => self.loading_model = Some(file_label(&path)),
            StyleEvent::Progress { done, total } => {
                self.jobs[i].done = done;
                self.jobs[i].total = total;
            }
            StyleEvent::Output(out) => {
                let job = &self.jobs[i];
                if job.handle.is_cancelled() {
                    return;
                }
                let kind = job.kind;
                let request = job.request.clone();
                self.loading_model = None;
                match kind {
                    JobKind::Thumb(index) => {
                        if let Some(ctx) = &self.ctx {
                            self.gallery.insert(index, out.image, ctx);
                        }
                    }
                    JobKind::Preview | JobKind::Full => self.show_result(
                        kind,
                        request,
                        out.content,
                        Stylised::Pixels(out.stylized),
                        (out.notes, out.seconds, out.report.tiles),
                    ),
                }
            }
            StyleEvent::Texture(out) => {
                let job = &self.jobs[i];
                if job.handle.is_cancelled() {
                    return;
                }
                let (kind, request) = (job.kind, job.request.clone());
                self.loading_model = None;
                self.show_result(
                    kind,
                    request,
                    out.content,
                    Stylised::Texture(out.stylized),
                    (out.notes, out.seconds, 1),
                );
            }
        }
    }

    /// Shows a preview or full result (and asks for the full pass a preview leads to).
    fn show_result(
        &mut self,
        kind: JobKind,
        request: Option<StyleRequest>,
        content: Arc<RgbImage>,
        stylised: Stylised,
        (notes, seconds, tiles): (Vec<String>, f64, usize),
    ) {
        let (w, h) = content.dimensions();
        // A picture that fit the preview whole is already at full size.
        let fits = w.max(h) < PREVIEW_SIZE.min(self.max_side);
        let preview = kind == JobKind::Preview && !fits;
        if self.content_thumb.is_none()
            && let Some(ctx) = &self.ctx
        {
            // Previews are at most 384 pixels: shrinking one costs well under
            // a millisecond here.
            let small = crate::models::style::image::fit_within(&content, 112)
                .unwrap_or_else(|| (*content).clone());
            self.content_thumb = Some(ctx.load_texture(
                "style-content-thumb",
                egui::ColorImage::from_rgb(
                    [small.width() as usize, small.height() as usize],
                    small.as_raw(),
                ),
                thumb_options(),
            ));
        }
        let shown = Shown {
            images: Images {
                generation: 0,
                content,
                stylised,
                rgba: None,
            },
            preview,
            notes,
            seconds,
            tiles,
        };
        if preview && let Some(req) = request {
            self.submit_full(req);
        }
        if self.gpu && u64::from(w) * u64::from(h) > INLINE_RGBA_PIXELS {
            self.ready_in_background(kind, shown);
        } else {
            self.present(kind, shown);
        }
    }

    /// Puts a result on screen.
    fn present(&mut self, kind: JobKind, mut shown: Shown) {
        self.generation += 1;
        shown.images.generation = self.generation;
        if let Some(t) = self.changed_at.take() {
            self.last_latency = Some(t.elapsed());
        }
        let preview = shown.preview;
        self.shown = Some(shown);
        if kind == JobKind::Preview {
            self.previews += 1;
        } else {
            self.fulls += 1;
        }
        if !preview {
            self.start_pending_export();
        }
    }

    /// Converts a large result to RGBA on a named thread (a 4096² pair takes a noticeable
    /// fraction of a second), keeping the previous result on screen meanwhile.
    fn ready_in_background(&mut self, kind: JobKind, mut shown: Shown) {
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = self.ctx.clone();
        let content = shown.images.content.clone();
        let Stylised::Pixels(stylised) = shown.images.stylised.clone() else {
            // A texture is already on the GPU: nothing to convert.
            self.present(kind, shown);
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("atelier-style-ready".into())
            .spawn(move || {
                let _ = tx.send([finish::to_rgba(&content), finish::to_rgba(&stylised)]);
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            });
        match spawned {
            Ok(_) => self.readying = Some(Readying { rx, kind, shown }),
            Err(e) => {
                tracing::warn!("converting on the UI thread: {e}");
                shown.images.rgba = None;
                self.present(kind, shown);
            }
        }
    }

    fn poll_readying(&mut self) {
        let Some(r) = &self.readying else {
            return;
        };
        let rgba = match r.rx.try_recv() {
            Ok(rgba) => Some(Arc::new(rgba)),
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            // The thread died: the upload converts instead.
            Err(std::sync::mpsc::TryRecvError::Disconnected) => None,
        };
        if let Some(mut r) = self.readying.take() {
            r.shown.images.rgba = rgba;
            self.present(r.kind, r.shown);
        }
    }

    // -------------------------------------------------------------------------------------
    // State the app and the tests read or set

    /// Opens `path` as the content image (what the dialog, drag and drop and tests use).
    pub fn set_content_path(&mut self, path: PathBuf) {
        let name = file_label(&path);
        self.set_content(ImageSource::File(path), name);
    }

    /// Uses decoded pixels (a pasted image) as the content.
    pub fn set_content_pixels(&mut self, pixels: RgbImage, name: &str) {
        self.set_content(ImageSource::Pixels(Arc::new(pixels)), name.to_string());
    }

    fn set_content(&mut self, source: ImageSource, name: String) {
        self.content = Some(Picture { source, name });
        self.shown = None;
        self.content_thumb = None;
        self.changed();
    }

    /// Uses the image at `path` as the style (the arbitrary-style model).
    pub fn set_style_image(&mut self, path: PathBuf) {
        let name = file_label(&path);
        self.load_style_thumb(path.clone());
        self.style_image = Some(Picture {
            source: ImageSource::File(path),
            name,
        });
        self.mode = StyleMode::Image;
        self.changed();
    }

    /// Uses decoded pixels (the Faces selection) as the style image.
    pub fn set_style_pixels(&mut self, pixels: RgbImage, name: &str) {
        if let Some(ctx) = &self.ctx {
            let small = crate::models::style::image::fit_within(&pixels, 160)
                .unwrap_or_else(|| pixels.clone());
            self.style_thumb = Some(ctx.load_texture(
                "style-image",
                egui::ColorImage::from_rgb(
                    [small.width() as usize, small.height() as usize],
                    small.as_raw(),
                ),
                thumb_options(),
            ));
        }
        self.style_thumb_rx = None;
        self.style_image = Some(Picture {
            source: ImageSource::Pixels(Arc::new(pixels)),
            name: name.to_string(),
        });
        self.mode = StyleMode::Image;
        self.changed();
    }

    /// Selects one built-in style (0–25), replacing any blend.
    pub fn select_style(&mut self, index: usize) {
        let same = self.mode == StyleMode::Presets && self.mix == [(index, 1.0)];
        if index < STYLE_COUNT && !same {
            self.mix = vec![(index, 1.0)];
            self.mode = StyleMode::Presets;
            self.changed();
        }
    }

    /// Adds a built-in style to the blend, or removes it if it is in (the last one stays).
    pub fn toggle_blend(&mut self, index: usize) {
        if index >= STYLE_COUNT {
            return;
        }
        let switched = self.mode != StyleMode::Presets;
        self.mode = StyleMode::Presets;
        if let Some(k) = self.mix.iter().position(|(i, _)| *i == index) {
            if self.mix.len() == 1 {
                // The last style stays: no style is not a request.
                if switched {
                    self.changed();
                }
                return;
            }
            self.mix.remove(k);
        } else {
            self.mix.push((index, 1.0));
        }
        self.changed();
    }

    /// The chosen styles and their (unnormalised) weights.
    pub fn mix(&self) -> &[(usize, f32)] {
        &self.mix
    }

    /// Sets the strength (0 = the original, 1 = fully stylised); applied by the shader.
    pub fn set_strength(&mut self, strength: f32) {
        self.finish.strength = strength.clamp(0.0, 1.0);
    }

    /// The finish the view applies.
    pub fn finish(&self) -> Finish {
        self.finish
    }

    /// Turns preserve-original-colours on or off.
    pub fn set_preserve_colour(&mut self, on: bool) {
        self.finish.preserve_colour = on;
    }

    /// Shows or hides the before/after divider, at `position` across the image (0..1).
    pub fn set_split(&mut self, on: bool, position: f32) {
        self.split = on;
        self.split_pos = position.clamp(0.0, 1.0);
    }

    /// Sets the output's longest side.
    pub fn set_max_side(&mut self, side: u32) {
        if side != self.max_side {
            self.max_side = side.max(1);
            self.changed();
        }
    }

    /// Size of the result on screen, and whether it is the preview.
    pub fn result(&self) -> Option<((u32, u32), bool)> {
        self.shown
            .as_ref()
            .map(|s| (s.images.content.dimensions(), s.preview))
    }

    /// Whether the result on screen stayed on the GPU as a texture (a preview computed on the
    /// window's own device), rather than arriving as pixels.
    pub fn result_is_texture(&self) -> bool {
        self.shown
            .as_ref()
            .is_some_and(|s| matches!(s.images.stylised, Stylised::Texture(_)))
    }

    /// Preview results received so far.
    pub fn previews_received(&self) -> u64 {
        self.previews
    }

    /// Full-resolution results received so far.
    pub fn fulls_received(&self) -> u64 {
        self.fulls
    }

    /// Time from the last change to its first result.
    pub fn last_latency(&self) -> Option<Duration> {
        self.last_latency
    }

    /// Gallery thumbnails shown.
    pub fn thumbnails_ready(&self) -> usize {
        self.gallery.ready()
    }

    /// Whether a preview or full job is waiting or running (or due after the debounce).
    pub fn is_busy(&self) -> bool {
        self.dirty_at.is_some()
            || self.full_due.is_some()
            || self.readying.is_some()
            || self
                .jobs
                .iter()
                .any(|j| matches!(j.kind, JobKind::Preview | JobKind::Full))
    }

    /// Whether an export is being written or waits for the full result.
    pub fn is_exporting(&self) -> bool {
        !self.exports.is_empty() || self.pending_export.is_some()
    }

    /// The error shown inline, if any.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// Called by the app with the file a dialog returned for `slot`.
    pub fn open_path(&mut self, slot: StyleImageSlot, path: PathBuf) {
        match slot {
            StyleImageSlot::Content => self.set_content_path(path),
            StyleImageSlot::Style => self.set_style_image(path),
        }
    }

    /// Called by the app with the path the user chose for an export (tests call it directly):
    /// written once the full-resolution result is there.
    pub fn export_to(&mut self, format: StyleExport, path: PathBuf) {
        self.pending_export = Some((format, export::with_extension(path, format)));
        let full_ready = self.shown.as_ref().is_some_and(|s| !s.preview) && !self.is_busy();
        if full_ready {
            self.start_pending_export();
        }
    }

    /// Cancels the panel's jobs (leaving the page, closing the app).
    pub fn stop(&mut self) {
        for j in &self.jobs {
            j.handle.cancel();
        }
    }

    /// What the status bar says while the panel works.
    pub fn status(&self) -> Option<String> {
        let job = self
            .jobs
            .iter()
            .find(|j| matches!(j.kind, JobKind::Preview | JobKind::Full))?;
        Some(match (&self.loading_model, job.kind) {
            // One worker runs every model: say so when a Write or Faces job holds it.
            _ if !job.started => "Style: waiting for the running job to finish".into(),
            (Some(m), _) => format!("Style: loading {m}…"),
            (None, JobKind::Full) if job.total > 1 => {
                format!("Style: full size, step {} of {}", job.done, job.total)
            }
            (None, JobKind::Full) => "Style: rendering at full size…".into(),
            _ => "Style: preview…".into(),
        })
    }

    // -------------------------------------------------------------------------------------
    // Asking the worker

    fn model_present(&self, file: &str) -> bool {
        self.models_dir.join(file).is_file()
    }

    /// Looks for the networks in `dir` (tests show the missing-model notice with it; the
    /// engine keeps loading from [`crate::paths::models_dir`]).
    pub fn set_models_dir(&mut self, dir: PathBuf) {
        self.models_dir = dir;
    }

    /// Applies saved settings; pictures whose files are gone are skipped.
    fn restore(&mut self, s: &StyleSettings) {
        self.mix = s.mix.clone();
        self.finish = Finish {
            strength: s.strength,
            preserve_colour: s.preserve_colour,
        };
        self.split = s.split;
        self.max_side = s.max_side;
        self.jpeg = s.jpeg;
        self.jpeg_quality = s.jpeg_quality;
        if let Some(p) = s.style_image.as_ref().filter(|p| p.is_file()) {
            self.set_style_image(p.clone());
        }
        if !(s.use_style_image && self.style_image.is_some()) {
            self.mode = StyleMode::Presets;
        }
        if let Some(p) = s.content.as_ref().filter(|p| p.is_file()) {
            self.set_content_path(p.clone());
        }
    }

    /// What is saved of the panel's state.
    fn settings(&self) -> StyleSettings {
        let file = |p: &Option<Picture>| match p.as_ref().map(|p| &p.source) {
            Some(ImageSource::File(path)) => Some(path.clone()),
            _ => None,
        };
        StyleSettings {
            content: file(&self.content),
            style_image: file(&self.style_image),
            use_style_image: self.mode == StyleMode::Image,
            mix: self.mix.clone(),
            strength: self.finish.strength,
            preserve_colour: self.finish.preserve_colour,
            split: self.split,
            max_side: self.max_side,
            jpeg: self.jpeg,
            jpeg_quality: self.jpeg_quality,
        }
    }

    fn changed(&mut self) {
        let now = Instant::now();
        self.dirty_at = Some(now);
        self.changed_at = Some(now);
        self.error = None;
        self.readying = None;
        // Changes from the app (a dialog's path, the Faces selection) come between frames.
        if let Some(ctx) = &self.ctx {
            ctx.request_repaint_after(DEBOUNCE);
        }
        self.cancel(|k| matches!(k, JobKind::Preview | JobKind::Full));
    }

    fn cancel(&mut self, is_kind: impl Fn(JobKind) -> bool) {
        for j in self.jobs.iter().filter(|j| is_kind(j.kind)) {
            j.handle.cancel();
        }
    }

    fn request(&self) -> Option<StyleRequest> {
        let content = self.content.as_ref()?.source.clone();
        let style = match self.mode {
            StyleMode::Presets => StyleChoice::Preset(StyleMix::from_pairs(&self.mix).ok()?),
            StyleMode::Image => StyleChoice::Image(self.style_image.as_ref()?.source.clone()),
        };
        let mut req = StyleRequest::new(content, style);
        req.max_size = Some(self.max_side);
        Some(req)
    }

    /// Submits what is due: the debounced preview, else a missing gallery thumbnail.
    fn schedule(&mut self, engine: &Engine, ctx: &egui::Context) {
        self.engine_for_full(engine);
        if let Some(t) = self.dirty_at {
            let wait = DEBOUNCE.saturating_sub(t.elapsed());
            if !wait.is_zero() {
                ctx.request_repaint_after(wait);
                return;
            }
            self.dirty_at = None;
            if let Some(req) = self.request() {
                let handle = engine.style_for_view(
                    req.clone(),
                    StylePass::Preview {
                        max_side: PREVIEW_SIZE,
                    },
                );
                self.push(handle, JobKind::Preview, Some(req));
            }
        }
        let busy = self.jobs.iter().any(|j| {
            matches!(j.kind, JobKind::Preview | JobKind::Full | JobKind::Thumb(_))
                && !j.handle.is_cancelled()
        });
        if !busy && self.model_present(MULTISTYLE_FILE) {
            let next = self.gallery.next_missing();
            if let (Some(index), Some(source)) = (next, next.and(self.gallery.source()))
                && let Ok(mix) = StyleMix::single(index)
            {
                let mut req =
                    StyleRequest::new(ImageSource::Pixels(source), StyleChoice::Preset(mix));
                req.max_size = Some(THUMB_SIZE);
                let handle = engine.style(req, StylePass::Full);
                self.push(handle, JobKind::Thumb(index), None);
            }
        }
    }

    /// Full passes wait for an engine reference: keep the request until the next frame.
    fn engine_for_full(&mut self, engine: &Engine) {
        if let Some(req) = self.full_due.take() {
            let handle = engine.style_for_view(req.clone(), StylePass::Full);
            self.push(handle, JobKind::Full, Some(req));
        }
    }

    fn submit_full(&mut self, req: StyleRequest) {
        self.full_due = Some(req);
        if let Some(ctx) = &self.ctx {
            ctx.request_repaint();
        }
    }

    fn push(&mut self, handle: JobHandle, kind: JobKind, request: Option<StyleRequest>) {
        self.jobs.push(Job {
            handle,
            kind,
            request,
            done: 0,
            total: 0,
            started: false,
        });
    }

    fn start_pending_export(&mut self) {
        let Some(shown) = &self.shown else {
            return;
        };
        if shown.preview {
            return;
        }
        let Some((format, path)) = self.pending_export.take() else {
            return;
        };
        self.exports.push(export::write_in_background(
            shown.images.content.clone(),
            shown.images.stylised.clone(),
            self.gpu_handles.clone(),
            self.finish,
            format,
            path,
            self.ctx.clone(),
        ));
    }

    fn poll_exports(&mut self, cx: &mut PanelContext<'_>) {
        super::poll_exports(&mut self.exports, cx.commands);
    }

    /// Loads a small preview of the style image on a named thread.
    fn load_style_thumb(&mut self, path: PathBuf) {
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("atelier-style-image".into())
            .spawn(move || {
                let thumb = crate::models::style::image::load(&path).ok().map(|l| {
                    let img =
                        crate::models::style::image::fit_within(&l.image, 160).unwrap_or(l.image);
                    egui::ColorImage::from_rgb(
                        [img.width() as usize, img.height() as usize],
                        img.as_raw(),
                    )
                });
                let _ = tx.send(thumb);
                if let Some(ctx) = ctx {
                    ctx.request_repaint();
                }
            });
        if spawned.is_ok() {
            self.style_thumb = None;
            self.style_thumb_rx = Some(rx);
        }
    }

    fn poll_style_thumb(&mut self, ctx: &egui::Context) {
        if let Some(rx) = &self.style_thumb_rx
            && let Ok(img) = rx.try_recv()
        {
            // A file that does not decode gets its error from the style job itself.
            self.style_thumb = img.map(|i| ctx.load_texture("style-image", i, thumb_options()));
            self.style_thumb_rx = None;
        }
    }

    /// Dropped files and pasted images become the content.
    fn take_input(&mut self, ctx: &egui::Context) {
        let (dropped, pasted) = ctx.input(|i| {
            let dropped: Vec<PathBuf> = i
                .raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect();
            let pasted: Vec<egui::Event> = i
                .events
                .iter()
                .filter(|e| matches!(e, egui::Event::PasteImage(_) | egui::Event::Paste(_)))
                .cloned()
                .collect();
            (dropped, pasted)
        });
        if let Some(path) = dropped.into_iter().next() {
            self.set_content_path(path);
        }
        for e in pasted {
            match e {
                // egui-winit reads the clipboard (arboard, image-data) when Ctrl+V finds no
                // text, and hands over the pixels; nothing here touches the clipboard.
                egui::Event::PasteImage(img) => {
                    let [w, h] = img.size;
                    let rgb: Vec<u8> = img
                        .pixels
                        .iter()
                        .flat_map(|c| {
                            let [r, g, b, _] = c.to_srgba_unmultiplied();
                            [r, g, b]
                        })
                        .collect();
                    if let Some(pixels) = RgbImage::from_raw(w as u32, h as u32, rgb) {
                        self.set_content_pixels(pixels, "Pasted image");
                    }
                }
                // A copied file arrives as its path (or a file:// URI) in text.
                egui::Event::Paste(text) => {
                    let line = text.lines().next().unwrap_or_default().trim();
                    let path = PathBuf::from(line.strip_prefix("file://").unwrap_or(line));
                    if is_image_path(&path) && path.is_file() {
                        self.set_content_path(path);
                    }
                }
                _ => {}
            }
        }
    }

    // -------------------------------------------------------------------------------------
    // Drawing

    fn model_notice(&self, ui: &mut egui::Ui, what: &str, files: &[&str]) {
        theme::notice_frame(theme::WARN).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(
                RichText::new(format!("{} {what} not installed.", icon::WARNING))
                    .color(theme::WARN),
            );
            for f in files {
                ui.label(
                    RichText::new(format!("Looking for {}", self.models_dir.join(f).display()))
                        .size(12.0)
                        .color(theme::TEXT_WEAK),
                );
            }
            // The command on its own line: with its label it is wider than the panel.
            ui.label(RichText::new("Fetch with").color(theme::TEXT));
            ui.horizontal(|ui| {
                ui.label(RichText::new(FETCH_STYLE).monospace().color(theme::ACCENT));
                if ui.small_button("Copy").clicked() {
                    ui.ctx().copy_text(FETCH_STYLE.into());
                }
            });
        });
        ui.ctx().request_repaint_after(Duration::from_secs(2));
    }

    fn controls(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.spacing_mut().item_spacing.y = 6.0;
        ui.label(RichText::new("Style").font(theme::strong(20.0)));
        ui.label(
            RichText::new("Neural style transfer · 26 styles, or any image")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        if let Some(err) = cx.engine_error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
        }
        ui.add_space(space::M);

        theme::section_label(ui, "Content");
        theme::card().show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal_top(|ui| {
                if let Some(t) = &self.content_thumb {
                    ui.add(
                        egui::Image::new(t)
                            .fit_to_exact_size(egui::vec2(64.0, 64.0))
                            .maintain_aspect_ratio(true)
                            .corner_radius(4),
                    );
                }
                ui.vertical(|ui| {
                    ui.spacing_mut().item_spacing.y = 4.0;
                    match &self.content {
                        Some(c) => {
                            ui.add(
                                egui::Label::new(RichText::new(&c.name).color(theme::TEXT))
                                    .truncate(),
                            );
                            let size = self
                                .shown
                                .as_ref()
                                .filter(|s| !s.preview)
                                .map(|s| s.images.content.dimensions());
                            let line = match size {
                                Some((w, h)) => format!("{w}×{h} output"),
                                None => "Rendering…".into(),
                            };
                            ui.label(RichText::new(line).size(12.0).color(theme::TEXT_WEAK));
                        }
                        None => {
                            ui.label(RichText::new("No picture yet").color(theme::TEXT_WEAK));
                        }
                    }
                    let label = if self.content.is_some() {
                        "Open another…"
                    } else {
                        "Open image…"
                    };
                    if !cx.kiosk && ui.button(label).clicked() {
                        cx.commands
                            .push(Command::StyleOpenDialog(StyleImageSlot::Content));
                    }
                });
            });
            ui.label(
                RichText::new("or drop a file anywhere, or paste with Ctrl+V")
                    .size(12.0)
                    .color(theme::TEXT_FAINT),
            );
        });
        ui.add_space(space::M);

        theme::section_label(ui, "Style");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for (mode, label) in [
                (StyleMode::Presets, "Built-in styles"),
                (StyleMode::Image, "From an image"),
            ] {
                let r = ui.add(
                    egui::Button::selectable(self.mode == mode, label)
                        .min_size(egui::vec2(0.0, 28.0)),
                );
                if r.clicked() && self.mode != mode {
                    self.mode = mode;
                    self.changed();
                }
            }
        });
        ui.add_space(space::XS);
        match self.mode {
            StyleMode::Presets => self.presets_view(ui),
            StyleMode::Image => self.style_image_view(ui, cx),
        }
    }

    fn presets_view(&mut self, ui: &mut egui::Ui) {
        if !self.model_present(MULTISTYLE_FILE) {
            self.model_notice(ui, "The 26-style network is", &[MULTISTYLE_FILE]);
            return;
        }
        let cols = 5;
        let gap = space::XS + 2.0;
        let side = ((ui.available_width() - gap * (cols as f32 - 1.0)) / cols as f32).floor();
        let mut clicked = None;
        egui::Grid::new("style-gallery")
            .spacing(egui::vec2(gap, gap))
            .show(ui, |ui| {
                for i in 0..STYLE_COUNT {
                    let (rect, r) =
                        ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::click());
                    // Numbered from 0, as `atelier style --style N` and the model number them.
                    let r = r.on_hover_text(format!(
                        "Style {i}: click to use it, Ctrl+click to blend it in"
                    ));
                    r.widget_info(|| {
                        egui::WidgetInfo::selected(
                            egui::Role::Button,
                            true,
                            self.mix.iter().any(|(k, _)| *k == i),
                            format!("Style {i}"),
                        )
                    });
                    let chosen = self.mix.iter().any(|(k, _)| *k == i);
                    let painter = ui.painter();
                    let radius = egui::CornerRadius::same(6);
                    match self.gallery.texture(i) {
                        Some(t) => {
                            egui::Image::new(t).corner_radius(radius).paint_at(ui, rect);
                        }
                        None => {
                            painter.rect_filled(rect, radius, theme::SURFACE);
                            painter.text(
                                rect.center(),
                                egui::Align2::CENTER_CENTER,
                                format!("{i}"),
                                egui::FontId::proportional(12.0),
                                theme::TEXT_FAINT,
                            );
                        }
                    }
                    let stroke = if chosen {
                        egui::Stroke::new(2.0, theme::ACCENT)
                    } else if r.hovered() {
                        egui::Stroke::new(1.0, theme::TEXT_WEAK)
                    } else {
                        egui::Stroke::new(1.0, theme::BORDER)
                    };
                    ui.painter()
                        .rect_stroke(rect, radius, stroke, egui::StrokeKind::Inside);
                    if r.clicked() {
                        clicked = Some((i, ui.input(|inp| inp.modifiers.command)));
                    }
                    if (i + 1) % cols == 0 {
                        ui.end_row();
                    }
                }
            });
        match clicked {
            Some((i, true)) => self.toggle_blend(i),
            Some((i, false)) => self.select_style(i),
            None => {}
        }
        let ready = self.gallery.ready();
        if ready < STYLE_COUNT && !self.gallery.failed {
            ui.label(
                RichText::new(format!("Rendering thumbnails… {ready} of {STYLE_COUNT}"))
                    .size(12.0)
                    .color(theme::TEXT_FAINT),
            );
        }
        ui.add_space(space::S);

        // The blend: one weight per chosen style.
        let blend = self.mix.len() > 1;
        theme::section_label(ui, if blend { "Blend" } else { "Chosen" });
        let total: f32 = self
            .mix
            .iter()
            .map(|(_, w)| *w)
            .sum::<f32>()
            .max(f32::EPSILON);
        let mut remove = None;
        let mut changed = false;
        ui.spacing_mut().slider_width = (ui.available_width() - 150.0).max(60.0);
        for (k, (index, weight)) in self.mix.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                if let Some(t) = self.gallery.texture(*index) {
                    ui.add(
                        egui::Image::new(t)
                            .fit_to_exact_size(egui::vec2(28.0, 28.0))
                            .corner_radius(4),
                    );
                }
                ui.label(RichText::new(format!("Style {index}")).color(theme::TEXT));
                if blend {
                    let r = ui
                        .add(
                            egui::Slider::new(weight, 0.0..=1.0)
                                .show_value(false)
                                .step_by(0.01),
                        )
                        .accessible_name(format!("Weight of style {index}"));
                    changed |= r.changed();
                    ui.label(
                        RichText::new(format!("{:.0}%", *weight / total * 100.0))
                            .size(12.0)
                            .color(theme::TEXT_WEAK),
                    );
                    if ui
                        .add(egui::Button::new(icon::CROSS).frame(false).small())
                        .accessible_name(format!("Remove style {index}"))
                        .clicked()
                    {
                        remove = Some(k);
                    }
                }
            });
        }
        if let Some(k) = remove {
            self.mix.remove(k);
            changed = true;
        }
        if self.mix.iter().all(|(_, w)| *w <= 0.0) {
            // All weights at zero is no style at all: keep the last one in.
            if let Some(first) = self.mix.first_mut() {
                first.1 = 0.01;
            }
        }
        if changed {
            self.changed();
        }
        ui.label(
            RichText::new("Ctrl+click more thumbnails to blend styles.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
    }

    fn style_image_view(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        if !(self.model_present(PREDICT_FILE) && self.model_present(TRANSFORM_FILE)) {
            self.model_notice(
                ui,
                "The arbitrary-style networks are",
                &[PREDICT_FILE, TRANSFORM_FILE],
            );
            return;
        }
        theme::card().show(ui, |ui| {
            ui.set_width(ui.available_width());
            match &self.style_image {
                Some(p) => {
                    if let Some(t) = &self.style_thumb {
                        ui.add(
                            egui::Image::new(t)
                                .max_size(egui::vec2(ui.available_width(), 160.0))
                                .corner_radius(6),
                        );
                    }
                    ui.label(RichText::new(&p.name).color(theme::TEXT));
                }
                None => {
                    ui.label(
                        RichText::new(
                            "Any picture works as a style: a painting, a texture, a photo.",
                        )
                        .color(theme::TEXT_WEAK),
                    );
                }
            }
            // Stacked, full width: side by side they are wider than the panel.
            let wide = egui::vec2(ui.available_width(), 28.0);
            if !cx.kiosk
                && ui
                    .add(egui::Button::new("Choose style image…").min_size(wide))
                    .clicked()
            {
                cx.commands
                    .push(Command::StyleOpenDialog(StyleImageSlot::Style));
            }
            if ui
                .add(egui::Button::new("Use the selected face").min_size(wide))
                .on_hover_text("The face selected on the Faces page")
                .clicked()
            {
                cx.commands.push(Command::StyleUseFace);
            }
        });
    }

    /// Format, quality and the Export button.
    fn export_controls(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        theme::section_label(ui, "Export");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for (jpeg, label) in [(false, "PNG"), (true, "JPEG")] {
                if ui
                    .add(
                        egui::Button::selectable(self.jpeg == jpeg, label)
                            .min_size(egui::vec2(56.0, 28.0)),
                    )
                    .clicked()
                {
                    self.jpeg = jpeg;
                }
            }
        });
        if self.jpeg {
            // A label above, not `Slider::text`: beside the slider it overflows the panel.
            ui.label(RichText::new("Quality").size(12.0).color(theme::TEXT_WEAK));
            ui.add(egui::Slider::new(&mut self.jpeg_quality, 1..=100))
                .on_hover_text("JPEG quality: 90 is visually lossless for most pictures")
                .accessible_name("JPEG quality");
        }
        let format = if self.jpeg {
            StyleExport::Jpeg(self.jpeg_quality)
        } else {
            StyleExport::Png
        };
        let can = self.shown.is_some() && self.pending_export.is_none();
        let r = ui
            .add_enabled(
                can,
                theme::primary_button(&format!(
                    "{} Export {}…",
                    icon::EXPORT,
                    if self.jpeg { "JPEG" } else { "PNG" }
                ))
                .min_size(egui::vec2(ui.available_width(), 32.0)),
            )
            .on_hover_text("Saves the full-resolution result with the strength and colours shown");
        if r.clicked() {
            let stem = self
                .content
                .as_ref()
                .map(|c| {
                    std::path::Path::new(&c.name)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "image".into())
                })
                .unwrap_or_else(|| "image".into());
            cx.commands.push(Command::StyleExportDialog {
                format,
                file_name: format.file_name(&stem),
            });
        }
        if self.pending_export.is_some() {
            ui.label(
                RichText::new("Export waits for the full-size result…")
                    .size(12.0)
                    .color(theme::TEXT_WEAK),
            );
        }
        ui.add_space(space::M);
    }

    fn finish_controls(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.spacing_mut().item_spacing.y = 6.0;
        theme::section_label(ui, "Finish");
        ui.spacing_mut().slider_width = ui.available_width() - 64.0;
        ui.label(RichText::new("Strength").color(theme::TEXT));
        let mut percent = self.finish.strength * 100.0;
        let r = ui
            .add(
                egui::Slider::new(&mut percent, 0.0..=100.0)
                    .step_by(1.0)
                    .suffix("%")
                    .fixed_decimals(0),
            )
            .accessible_name("Strength");
        if r.changed() {
            self.set_strength(percent / 100.0);
        }
        ui.checkbox(
            &mut self.finish.preserve_colour,
            "Preserve original colours",
        )
        .on_hover_text("Keep the photo's colours and take only light and texture from the style");
        ui.checkbox(&mut self.split, "Before / after divider")
            .on_hover_text("Drag the divider across the image to compare");
        ui.label(
            RichText::new("Applied on the GPU as you drag: no re-render.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        ui.add_space(space::M);

        theme::section_label(ui, "Output size");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for side in OUTPUT_SIZES {
                let r = ui
                    .add(
                        egui::Button::selectable(self.max_side == side, format!("{side}"))
                            .min_size(egui::vec2(56.0, 28.0)),
                    )
                    .on_hover_text(format!("Longest side at most {side} pixels"))
                    .accessible_name(format!("Output {side} pixels"));
                if r.clicked() {
                    self.set_max_side(side);
                }
            }
        });
        ui.label(
            RichText::new("Longest side in pixels; large outputs run in tiles.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        ui.add_space(space::M);

        // A kiosk has no file dialogs.
        if !cx.kiosk {
            self.export_controls(ui, cx);
        }

        theme::section_label(ui, "Result");
        match &self.shown {
            Some(s) => {
                let (w, h) = s.images.content.dimensions();
                let what = if s.preview { "Preview" } else { "Full size" };
                ui.label(RichText::new(format!("{what} · {w}×{h}")).color(theme::TEXT));
                let mut line = format!("rendered in {:.2} s", s.seconds);
                if s.tiles > 1 {
                    line.push_str(&format!(" · {} tiles", s.tiles));
                }
                ui.label(RichText::new(line).size(12.0).color(theme::TEXT_WEAK));
                if let Some(l) = self.last_latency {
                    ui.label(
                        RichText::new(format!(
                            "preview {:.0} ms after the last change",
                            l.as_secs_f64() * 1000.0
                        ))
                        .size(12.0)
                        .color(theme::TEXT_WEAK),
                    );
                }
                for n in &s.notes {
                    ui.label(
                        RichText::new(format!("{} {n}", icon::DOT))
                            .size(12.0)
                            .color(theme::TEXT_FAINT),
                    );
                }
            }
            None => {
                ui.label(RichText::new("Nothing rendered yet").color(theme::TEXT_FAINT));
            }
        }
    }

    fn result_view(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let hovering = ui.ctx().input(|i| !i.raw.hovered_files.is_empty());
        if let Some(err) = &self.error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
            ui.add_space(space::S);
        }
        let Some(shown) = &self.shown else {
            self.empty_view(ui, hovering, cx);
            return;
        };
        let avail = ui.available_rect_before_wrap();
        let footer = 28.0;
        let room = egui::vec2(avail.width(), (avail.height() - footer).max(64.0));
        let (w, h) = shown.images.content.dimensions();
        let scale = (room.x / w as f32).min(room.y / h as f32);
        let size = egui::vec2(w as f32 * scale, h as f32 * scale);
        // The image and its caption line form one block, centred in the area.
        let top = avail.top() + ((avail.height() - size.y - footer) / 2.0).max(0.0);
        let rect =
            egui::Rect::from_min_size(egui::pos2(avail.center().x - size.x / 2.0, top), size);
        let r = ui.allocate_rect(avail, egui::Sense::click_and_drag());
        if self.split
            && (r.dragged() || r.clicked())
            && let Some(p) = r.interact_pointer_pos()
        {
            self.split_pos = ((p.x - rect.left()) / rect.width()).clamp(0.0, 1.0);
        }
        let split = self.split.then_some(self.split_pos);
        ui.painter()
            .rect_filled(rect.expand(1.0), egui::CornerRadius::same(2), theme::BORDER);
        match cx.render_state {
            Some(rs) => finish::paint_gpu(ui, rect, rs, &shown.images, self.finish, split),
            None => self
                .cpu_view
                .paint(ui, rect, &shown.images, self.finish, split),
        }
        let painter = ui.painter();
        if let Some(s) = split {
            let x = rect.left() + rect.width() * s;
            painter.line_segment(
                [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
                egui::Stroke::new(2.0, egui::Color32::WHITE),
            );
            let c = egui::pos2(x, rect.center().y);
            painter.circle(
                c,
                13.0,
                theme::PANEL,
                egui::Stroke::new(2.0, egui::Color32::WHITE),
            );
            painter.text(
                c,
                egui::Align2::CENTER_CENTER,
                "↔",
                egui::FontId::proportional(14.0),
                theme::TEXT,
            );
            for (text, align, pos) in [
                (
                    "Before",
                    egui::Align2::LEFT_TOP,
                    rect.left_top() + egui::vec2(10.0, 10.0),
                ),
                (
                    "After",
                    egui::Align2::RIGHT_TOP,
                    rect.right_top() + egui::vec2(-10.0, 10.0),
                ),
            ] {
                let galley = painter.layout_no_wrap(
                    text.into(),
                    egui::FontId::proportional(12.0),
                    theme::TEXT,
                );
                let bg = align
                    .anchor_size(pos, galley.size())
                    .expand2(egui::vec2(8.0, 3.0));
                painter.rect_filled(
                    bg,
                    egui::CornerRadius::same(10),
                    egui::Color32::from_black_alpha(150),
                );
                painter.galley(bg.min + egui::vec2(8.0, 3.0), galley, theme::TEXT);
            }
            if r.hovered() {
                ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
            }
        }
        if hovering {
            painter.rect_filled(
                rect,
                egui::CornerRadius::same(2),
                egui::Color32::from_black_alpha(140),
            );
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Drop to open",
                theme::strong(18.0),
                theme::TEXT,
            );
        }

        // Footer: what is on screen, and the running job's progress.
        let footer_rect = egui::Rect::from_min_size(
            egui::pos2(rect.left(), rect.bottom() + 8.0),
            egui::vec2(rect.width().max(360.0), footer - 8.0),
        );
        let job = self.jobs.iter().find(|j| {
            matches!(j.kind, JobKind::Preview | JobKind::Full) && !j.handle.is_cancelled()
        });
        let status = match (job, &self.loading_model) {
            (Some(_), Some(m)) => Some((format!("Loading {m}…"), None)),
            (Some(j), None) if j.kind == JobKind::Full && j.total > 1 => Some((
                format!("Full size: step {} of {}", j.done, j.total),
                Some(j.done as f32 / j.total as f32),
            )),
            (Some(j), None) if j.kind == JobKind::Full => {
                Some(("Rendering full size…".to_string(), None))
            }
            (Some(_), None) => Some(("Rendering preview…".to_string(), None)),
            (None, _) => None,
        };
        let mut child = ui.new_child(egui::UiBuilder::new().max_rect(footer_rect));
        child.horizontal(|ui| {
            let tag = if shown.preview {
                "Preview"
            } else {
                "Full size"
            };
            theme::pill(
                ui,
                tag,
                if shown.preview {
                    theme::WARN
                } else {
                    theme::OK
                },
            );
            let (w, h) = shown.images.content.dimensions();
            ui.label(
                RichText::new(format!("{w}×{h}"))
                    .size(12.0)
                    .color(theme::TEXT_WEAK),
            );
            if let Some((text, fraction)) = status {
                ui.add_space(space::M);
                match fraction {
                    Some(f) => {
                        ui.add(
                            egui::ProgressBar::new(f)
                                .desired_width(220.0)
                                .desired_height(8.0)
                                .fill(theme::ACCENT),
                        );
                    }
                    None => {
                        ui.add(egui::Spinner::new().size(14.0).color(theme::ACCENT));
                    }
                }
                ui.label(RichText::new(text).size(12.0).color(theme::TEXT_WEAK));
            }
        });
        if job.is_some() {
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
    }

    fn empty_view(&mut self, ui: &mut egui::Ui, hovering: bool, cx: &mut PanelContext<'_>) {
        let avail = ui.available_rect_before_wrap();
        let zone = avail.shrink(space::XL);
        let stroke_color = if hovering {
            theme::ACCENT
        } else {
            theme::BORDER
        };
        ui.painter().rect(
            zone,
            egui::CornerRadius::same(theme::RADIUS),
            if hovering { theme::SURFACE } else { theme::BG },
            egui::Stroke::new(1.5, stroke_color),
            egui::StrokeKind::Inside,
        );
        let loading = self.content.is_some();
        let mut child = ui.new_child(
            egui::UiBuilder::new()
                .max_rect(egui::Rect::from_center_size(
                    zone.center(),
                    egui::vec2(420.0, 200.0),
                ))
                .layout(egui::Layout::top_down(egui::Align::Center)),
        );
        if loading {
            child.add(egui::Spinner::new().size(28.0).color(theme::ACCENT));
            let text = match &self.loading_model {
                Some(m) => format!("Loading {m}…"),
                None => "Rendering the preview…".into(),
            };
            child.label(RichText::new(text).color(theme::TEXT_WEAK));
            ui.ctx().request_repaint_after(Duration::from_millis(100));
            return;
        }
        child.label(RichText::new("Drop a picture here").font(theme::strong(22.0)));
        child.label(
            RichText::new("PNG, JPEG, GIF or WebP · or paste one with Ctrl+V")
                .color(theme::TEXT_WEAK),
        );
        child.add_space(space::M);
        if !cx.kiosk
            && child
                .add(theme::primary_button("Open image…").min_size(egui::vec2(160.0, 34.0)))
                .clicked()
        {
            cx.commands
                .push(Command::StyleOpenDialog(StyleImageSlot::Content));
        }
    }
}
