//! The Style page's UI state and what the app, the kiosk and the tests read or set.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use image::RgbImage;

use super::export::StyleExport;
use super::finish::{CpuView, Images, Stylised};
use super::gallery::Gallery;
use super::samples::Samples;
use crate::app::notice::{Notice, NoticeLevel};
use crate::features::style::{ImageSource, StyleRequest};
use crate::models::stylenet::STYLE_COUNT;
use crate::models::stylenet::colour::Finish;
use crate::models::stylenet::tiling::TileOptions;
use crate::panels::job_book::JobBook;
use crate::panels::{Command, DialogPurpose, PanelContext};
use crate::store::StyleSettings;

/// The tags of the panel's file dialogs.
pub(super) const CONTENT_DIALOG: &str = "content";
pub(super) const STYLE_DIALOG: &str = "style";
pub(super) const EXPORT_DIALOG: &str = "export";

/// The command that fetches the style networks.
pub const FETCH_STYLE: &str = "models/fetch.sh style";

/// How long after the last change the preview is asked for: dragging a weight slider then
/// asks once when the hand rests, not on every frame.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Results up to this many pixels are converted for the GPU as they are uploaded (a few
/// milliseconds); larger ones on a thread first.
pub(super) const INLINE_RGBA_PIXELS: u64 = 1 << 20;

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
pub(super) enum StyleMode {
    /// multistyle26's built-in styles, one or a blend.
    Presets,
    /// Any image, through the arbitrary-style pair.
    Image,
}

/// An image the user gave, and what to call it.
#[derive(Clone)]
pub(super) struct Picture {
    pub(super) source: ImageSource,
    pub(super) name: String,
}

/// What a Style job of this panel is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobKind {
    /// The quick low-resolution result; the full one follows when it arrives.
    Preview,
    /// The result at the output size.
    Full,
    /// The gallery thumbnail of one style.
    Thumb(usize),
}

/// A job's purpose, and its request (kept so the full pass repeats the preview's exactly).
pub(super) struct StyleJobInfo {
    /// What it is for.
    pub kind: JobKind,
    /// The request it ran.
    pub request: Option<StyleRequest>,
}

/// The result on screen.
pub(super) struct Shown {
    pub(super) images: Images,
    pub(super) preview: bool,
    pub(super) notes: Vec<String>,
    pub(super) seconds: f64,
    pub(super) tiles: usize,
}

/// A large result whose RGBA copies are being made on a thread, and what it will show.
pub(super) struct Readying {
    pub(super) rx: Receiver<[Vec<u8>; 2]>,
    pub(super) kind: JobKind,
    pub(super) shown: Shown,
}

/// The Style page's UI state.
pub struct StylePanel {
    /// Where the panel looks for the networks (to say which are missing).
    pub(super) models_dir: PathBuf,
    pub(super) content: Option<Picture>,
    pub(super) mode: StyleMode,
    /// Chosen presets and their weights (normalised by the engine).
    pub(super) mix: Vec<(usize, f32)>,
    pub(super) style_image: Option<Picture>,
    /// A small copy of the content for the Content card, made from the first preview.
    pub(super) content_thumb: Option<egui::TextureHandle>,
    pub(super) style_thumb: Option<egui::TextureHandle>,
    pub(super) style_thumb_rx: Option<Receiver<Option<egui::ColorImage>>>,
    pub(super) finish: Finish,
    pub(super) split: bool,
    pub(super) split_pos: f32,
    pub(super) max_side: u32,
    /// How large results are split: whole while they fit the memory budget (not saved).
    pub(super) tiles: TileOptions,
    pub(super) jpeg: bool,
    pub(super) jpeg_quality: u8,
    /// When the request last changed; the preview is asked for [`DEBOUNCE`] later.
    pub(super) dirty_at: Option<Instant>,
    /// When the change that the next result answers was made (for the latency readout).
    pub(super) changed_at: Option<Instant>,
    pub(super) last_latency: Option<Duration>,
    pub(super) jobs: JobBook<StyleJobInfo>,
    /// A large result being converted for the GPU, with what it will show.
    pub(super) readying: Option<Readying>,
    /// Whether the view draws on the GPU (set each frame from the context).
    pub(super) gpu: bool,
    /// The renderer's device and queue, for exports of results that stayed on it.
    pub(super) gpu_handles: Option<(egui_wgpu::wgpu::Device, egui_wgpu::wgpu::Queue)>,
    /// A full pass to submit on the next frame (the preview it follows has arrived).
    pub(super) full_due: Option<StyleRequest>,
    pub(super) shown: Option<Shown>,
    pub(super) generation: u64,
    pub(super) loading_model: Option<String>,
    /// The latest error, shown inline until the next change.
    pub(super) error: Option<String>,
    pub(super) exports: Vec<Receiver<Result<PathBuf, String>>>,
    /// An export waiting for the full-resolution result.
    pub(super) pending_export: Option<(StyleExport, PathBuf)>,
    /// The format of the export whose save dialog is open.
    pub(super) export_format: Option<StyleExport>,
    pub(super) gallery: Gallery,
    pub(super) cpu_view: CpuView,
    pub(super) previews: u64,
    pub(super) fulls: u64,
    pub(super) ctx: Option<egui::Context>,
    /// Whether the saved settings were applied (on the first frame).
    pub(super) restored: bool,
    /// The kiosk's pictures, offered instead of file dialogs there.
    pub(super) samples: Samples,
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
            tiles: TileOptions::default(),
            jpeg: false,
            jpeg_quality: 90,
            dirty_at: None,
            changed_at: None,
            last_latency: None,
            jobs: JobBook::default(),
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
            export_format: None,
            gallery: Gallery::default(),
            cpu_view: CpuView::default(),
            previews: 0,
            fulls: 0,
            ctx: None,
            restored: false,
            samples: Samples::default(),
        }
    }
}

impl StylePanel {
    /// Opens `path` as the content image (what the dialog, drag and drop and tests use).
    pub fn set_content_path(&mut self, path: PathBuf) {
        let name = file_label(&path);
        self.set_content(ImageSource::File(path), name);
    }

    /// Uses decoded pixels (a pasted image) as the content.
    pub fn set_content_pixels(&mut self, pixels: RgbImage, name: &str) {
        self.set_content(ImageSource::Pixels(Arc::new(pixels)), name.to_string());
    }

    pub(super) fn set_content(&mut self, source: ImageSource, name: String) {
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
            let small = crate::models::stylenet::image::fit_within(&pixels, 160)
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

    /// Sets how large results are split (the default chooses from the memory budget; tests
    /// force tiles on small pictures with an explicit tile).
    pub fn set_tile_options(&mut self, tiles: TileOptions) {
        if tiles != self.tiles {
            self.tiles = tiles;
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
                .any(|j| matches!(j.kind.kind, JobKind::Preview | JobKind::Full))
    }

    /// The name of the picture being restyled, if any.
    pub fn content_name(&self) -> Option<&str> {
        self.content.as_ref().map(|c| c.name.as_str())
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

    /// Cancels the panel's jobs (leaving the page, closing the app).
    pub fn stop(&mut self) {
        self.jobs.cancel_all();
    }

    pub(super) fn model_present(&self, file: &str) -> bool {
        self.models_dir.join(file).is_file()
    }

    /// Looks for the networks in `dir` (tests show the missing-model notice with it; the
    /// engine keeps loading from [`crate::paths::models_dir`]).
    pub fn set_models_dir(&mut self, dir: PathBuf) {
        self.models_dir = dir;
    }

    /// Applies saved settings; pictures whose files are gone are skipped.
    pub(super) fn restore(&mut self, s: &StyleSettings) {
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
    pub(super) fn settings(&self) -> StyleSettings {
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

    pub(super) fn changed(&mut self) {
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

    /// Asks the app for a picture for `slot` (the file dialog answers in `file_chosen`).
    pub(super) fn ask_for_picture(&mut self, slot: StyleImageSlot, cx: &mut PanelContext<'_>) {
        cx.commands.push(Command::FileDialog {
            purpose: DialogPurpose::Open,
            title: match slot {
                StyleImageSlot::Content => "Open a picture to restyle",
                StyleImageSlot::Style => "Open a picture to use as the style",
            }
            .into(),
            filters: vec![(
                "Images".into(),
                ["png", "jpg", "jpeg", "gif", "webp"]
                    .map(String::from)
                    .to_vec(),
            )],
            file_name: None,
            tag: match slot {
                StyleImageSlot::Content => CONTENT_DIALOG,
                StyleImageSlot::Style => STYLE_DIALOG,
            },
        });
    }

    /// Uses the face selected on the Faces page as the style image.
    pub fn use_selected_face(&mut self, cx: &mut PanelContext<'_>) {
        let Some((face, name)) = &cx.shared.selected_face else {
            cx.toast(Notice {
                level: NoticeLevel::Info,
                message: "Select a face on the Faces page first.".into(),
            });
            return;
        };
        let rgb: Vec<u8> = face
            .rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        match RgbImage::from_raw(face.width, face.height, rgb) {
            Some(img) => self.set_style_pixels(img, &name.clone()),
            None => tracing::warn!("the face preview has the wrong number of bytes"),
        }
    }
}

/// Thumbnails are drawn smaller than their pixels: mipmaps keep them from shimmering.
pub(super) fn thumb_options() -> egui::TextureOptions {
    egui::TextureOptions {
        mipmap_mode: Some(egui::TextureFilter::Linear),
        ..egui::TextureOptions::LINEAR
    }
}

pub(super) fn file_label(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

pub(super) fn is_image_path(path: &std::path::Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .is_some_and(|e| matches!(e.as_str(), "png" | "jpg" | "jpeg" | "gif" | "webp"))
}
