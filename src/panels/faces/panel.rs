//! The Faces panel as the app drives it ([`Panel`]): the page's layout, and the user's
//! actions applied after it has drawn.

use std::path::PathBuf;

use super::export::FaceExport;
use super::state::FacesPanel;
use super::walk::MAX_KEYS;
use crate::app::notice::{Notice, NoticeLevel};
use crate::app::page::Page;
use crate::engine::Event;
use crate::features::faces::{FaceSpec, Favourites};
use crate::kiosk::demo::Demo;
use crate::panels::job_book::Jobs;
use crate::panels::{Command, DialogPurpose, Panel, PanelContext, StatusItem};
use crate::theme::{self, space};

/// The tag of the export dialog (the export waits in `pending_export`).
const EXPORT_DIALOG: &str = "export";

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
                cx.toast(Notice {
                    level: NoticeLevel::Warning,
                    message: e.to_string(),
                });
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

    fn jobs(&self) -> Option<&dyn Jobs> {
        Some(&self.jobs)
    }

    fn on_event(&mut self, event: Event, cx: &mut PanelContext<'_>) {
        self.handle_event(event, cx);
    }

    fn status(&self, _store: &crate::store::Store) -> Vec<StatusItem> {
        self.status_text()
            .map(StatusItem::right)
            .into_iter()
            .collect()
    }

    fn stop(&mut self) {
        self.walk.stop();
    }

    fn hidden(&mut self) {
        // A live walk occupies the worker: leaving the page frees it for the others.
        self.walk.stop();
    }

    fn reset(&mut self, cx: &mut PanelContext<'_>) {
        self.reset_state();
        cx.shared.selected_face = None;
    }

    fn file_chosen(&mut self, tag: &'static str, path: PathBuf, cx: &mut PanelContext<'_>) {
        if tag == EXPORT_DIALOG
            && let Some(what) = self.pending_export.take()
        {
            self.export_to(cx.engine, what, path);
        }
    }

    fn open(&mut self, path: PathBuf, _cx: &mut PanelContext<'_>) -> bool {
        self.set_model(path);
        true
    }

    fn demo(&mut self, demo: Demo<'_>, _cx: &mut PanelContext<'_>) {
        if let Demo::Faces { keys } = demo {
            self.set_walk_keys(keys);
            self.request_play();
        }
    }
}

/// Something the user did, applied after the panel has drawn.
pub(super) enum Action {
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
    pub(super) fn apply(&mut self, action: Action, cx: &mut PanelContext<'_>, ctx: &egui::Context) {
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
                let (name, ext) = what.filter();
                self.pending_export = Some(what);
                cx.commands.push(Command::FileDialog {
                    purpose: DialogPurpose::Save,
                    title: what.title(),
                    filters: vec![(name.into(), vec![ext.into()])],
                    file_name: Some(what.file_name(self.selected.as_ref().and_then(|s| s.seed))),
                    tag: EXPORT_DIALOG,
                });
            }
            Action::Copy => {
                if let Some((_, image)) = &self.preview_image {
                    ctx.copy_image(super::thumbs::color_image(image));
                    cx.toast(Notice {
                        level: NoticeLevel::Info,
                        message: format!(
                            "Copied the face ({}×{}) to the clipboard.",
                            image.width, image.height
                        ),
                    });
                }
            }
            Action::Changed => self.walk.stop(),
        }
    }
}
