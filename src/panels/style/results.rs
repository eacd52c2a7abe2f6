//! Results arriving from the worker: as pixels (converted for the GPU inline or, when large,
//! on a thread) or as a texture that stayed on the window's GPU.

use std::sync::Arc;

use image::RgbImage;

use super::finish::{Images, Stylised};
use super::state::JobKind;
use super::state::{INLINE_RGBA_PIXELS, Readying, Shown, StylePanel, thumb_options};
use crate::features::style::{PREVIEW_SIZE, StyleRequest};

impl StylePanel {
    /// Shows a preview or full result (and asks for the full pass a preview leads to).
    pub(super) fn show_result(
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
            let small = crate::models::stylenet::image::fit_within(&content, 112)
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
    pub(super) fn present(&mut self, kind: JobKind, mut shown: Shown) {
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
    pub(super) fn ready_in_background(&mut self, kind: JobKind, mut shown: Shown) {
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
                let _ = tx.send([
                    super::finish::to_rgba(&content),
                    super::finish::to_rgba(&stylised),
                ]);
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

    pub(super) fn poll_readying(&mut self) {
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
}
