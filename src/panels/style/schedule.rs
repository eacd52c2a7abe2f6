//! Asking the worker: a preview a moment after each change (debounced, the stale job
//! cancelled), then the full-size pass, and the gallery's thumbnails while idle.

use super::gallery::THUMB_SIZE;
use super::state::JobKind;
use super::state::{DEBOUNCE, StyleMode, StylePanel};
use crate::engine::Engine;
use crate::features::style::{ImageSource, PREVIEW_SIZE, StyleChoice, StylePass, StyleRequest};
use crate::models::stylenet::{MULTISTYLE_FILE, StyleMix};

impl StylePanel {
    pub(super) fn request(&self) -> Option<StyleRequest> {
        let content = self.content.as_ref()?.source.clone();
        let style = match self.mode {
            StyleMode::Presets => StyleChoice::Preset(StyleMix::from_pairs(&self.mix).ok()?),
            StyleMode::Image => StyleChoice::Image(self.style_image.as_ref()?.source.clone()),
        };
        let mut req = StyleRequest::new(content, style);
        req.max_size = Some(self.max_side);
        req.tiles = self.tiles;
        Some(req)
    }

    /// Submits what is due: the debounced preview, else a missing gallery thumbnail.
    pub(super) fn schedule(&mut self, engine: &Engine, ctx: &egui::Context) {
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
        let busy = self.jobs.any(|j| {
            matches!(
                j.kind.kind,
                JobKind::Preview | JobKind::Full | JobKind::Thumb(_)
            ) && !j.handle.is_cancelled()
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
    pub(super) fn engine_for_full(&mut self, engine: &Engine) {
        if let Some(req) = self.full_due.take() {
            let handle = engine.style_for_view(req.clone(), StylePass::Full);
            self.push(handle, JobKind::Full, Some(req));
        }
    }

    pub(super) fn submit_full(&mut self, req: StyleRequest) {
        self.full_due = Some(req);
        if let Some(ctx) = &self.ctx {
            ctx.request_repaint();
        }
    }
}
