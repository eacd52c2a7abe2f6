//! The Style panel as the app drives it ([`Panel`]): the page's layout.

use std::path::PathBuf;

use super::state::{CONTENT_DIALOG, EXPORT_DIALOG, STYLE_DIALOG, StylePanel};
use crate::app::page::Page;
use crate::engine::Event;
use crate::kiosk::demo::Demo;
use crate::panels::job_book::Jobs;
use crate::panels::{Panel, PanelContext, StatusItem};
use crate::theme::{self, space};

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
        self.take_input(&ctx, cx.kiosk);
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

    fn jobs(&self) -> Option<&dyn Jobs> {
        Some(&self.jobs)
    }

    fn on_event(&mut self, event: Event, _cx: &mut PanelContext<'_>) {
        self.handle_event(event);
    }

    fn status(&self, _store: &crate::store::Store) -> Vec<StatusItem> {
        self.status_text()
            .map(StatusItem::right)
            .into_iter()
            .collect()
    }

    fn stop(&mut self) {
        self.jobs.cancel_all();
    }

    fn reset(&mut self, _cx: &mut PanelContext<'_>) {
        self.jobs.cancel_all();
        *self = Self::default();
    }

    fn file_chosen(&mut self, tag: &'static str, path: PathBuf, _cx: &mut PanelContext<'_>) {
        match tag {
            CONTENT_DIALOG => self.set_content_path(path),
            STYLE_DIALOG => self.set_style_image(path),
            EXPORT_DIALOG => {
                if let Some(format) = self.export_format.take() {
                    self.export_to(format, path);
                }
            }
            _ => {}
        }
    }

    fn open(&mut self, path: PathBuf, _cx: &mut PanelContext<'_>) -> bool {
        self.set_content_path(path);
        true
    }

    fn demo(&mut self, demo: Demo<'_>, _cx: &mut PanelContext<'_>) {
        match demo {
            Demo::StyleStart { max_side } => self.set_max_side(max_side),
            Demo::StylePair { picture, style } => {
                if let Some(path) = picture {
                    self.set_content_path(path);
                }
                self.select_style(style);
            }
            _ => {}
        }
    }

    fn save(&mut self, cx: &mut PanelContext<'_>) {
        cx.store.settings.style = self.settings();
    }
}
