//! The Train panel as the app drives it ([`Panel`]): the page's layout, starting and resuming
//! runs on the engine's long-job lane, and routing their events.

use std::path::PathBuf;

use egui::RichText;

use super::history::HistoryAction;
use super::live::{LiveRun, RunKind};
use super::run_view::generator_of;
use super::state::{EXPORT_DIALOG, MODEL_DIALOG, PICTURES_DIALOG, TEXT_DIALOG, Tab, TrainPanel};
use crate::app::notice::{Notice, NoticeLevel};
use crate::app::page::Page;
use crate::engine::{Event, JobId};
use crate::features::train::TrainRequest;
use crate::features::train::faces::pictures::MIN_PICTURES;
use crate::features::train::faces::{PictureSource, TrainFacesConfig, runs};
use crate::features::train::write::resume_config;
use crate::panels::{Command, DialogPurpose, Panel, PanelContext, StatusItem};
use crate::theme;

/// Where this studio's runs live: `<data>/train/runs`.
pub(super) fn runs_root(cx: &PanelContext<'_>) -> PathBuf {
    cx.store.dir().join("train").join("runs")
}

impl Panel for TrainPanel {
    fn name(&self) -> &'static str {
        "Train"
    }

    fn page(&self) -> Page {
        Page::Train
    }

    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        self.take_dropped(ui.ctx(), cx.kiosk);
        self.poll_exports(cx);
        if !self.exports.is_empty() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
        egui::Panel::left("train-controls")
            .resizable(false)
            .exact_size(340.0)
            .frame(theme::side_panel())
            .show(ui, |ui| self.controls(ui, cx));
        let root = runs_root(cx);
        let busy = self.live.as_ref().is_some_and(LiveRun::is_running);
        let more = self.pictures.steps;
        let mut history = None;
        egui::Panel::right("train-runs")
            .resizable(false)
            .exact_size(320.0)
            .frame(theme::side_panel())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("train-runs-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| history = self.runs.show(ui, &root, busy, more));
            });
        egui::CentralPanel::default()
            .frame(
                egui::Frame::new()
                    .fill(theme::BG)
                    .inner_margin(egui::Margin::same(theme::space::XL as i8)),
            )
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("train-centre-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        if self.live.is_some() {
                            self.run_view(ui, cx);
                        } else if self.tab == Tab::Pictures {
                            self.pictures_preview(ui);
                        } else {
                            ui.label(
                                RichText::new(
                                    "Teach the writing assistant your voice: Atelier trains a \
                                     small adapter (LoRA) on your texts while the model stays \
                                     as it is. Write then offers it under Adapter, and \
                                     llama.cpp loads it too.",
                                )
                                .color(theme::TEXT_WEAK),
                            );
                        }
                    });
            });
        if let Some(action) = history {
            self.history_action(action, cx);
        }
    }

    fn owns(&self, job: JobId) -> bool {
        self.live.as_ref().is_some_and(|r| r.job_id() == job)
    }

    fn on_event(&mut self, event: Event, cx: &mut PanelContext<'_>) {
        let Some(run) = self.live.as_mut() else {
            return;
        };
        let terminal = event.is_terminal();
        run.on_event(event);
        if terminal {
            self.runs.refresh(&runs_root(cx));
        }
    }

    fn status(&self, _store: &crate::store::Store) -> Vec<StatusItem> {
        match &self.live {
            Some(run) if run.is_running() => {
                let mut item = StatusItem::right(run.status_line());
                if run.speed > 0.0 {
                    item = item.hover(run.speed_text());
                }
                vec![item]
            }
            _ => Vec::new(),
        }
    }

    fn is_working(&self) -> bool {
        self.live.as_ref().is_some_and(LiveRun::is_running)
    }

    fn stop(&mut self) {
        // A stop writes a checkpoint: closing the studio loses nothing.
        if let Some(run) = self.live.as_mut().filter(|r| r.is_running()) {
            run.stop();
        }
    }

    fn reset(&mut self, _cx: &mut PanelContext<'_>) {
        self.stop();
        *self = Self::default();
    }

    fn file_chosen(&mut self, tag: &'static str, path: PathBuf, cx: &mut PanelContext<'_>) {
        match tag {
            PICTURES_DIALOG => self.set_pictures(PictureSource::Folder(path)),
            TEXT_DIALOG => self.add_text_file(path),
            MODEL_DIALOG => self.writing.model = Some(path),
            EXPORT_DIALOG => {
                if let Some(dir) = self.pending_export.take() {
                    self.export(dir, path, false, cx);
                }
            }
            _ => {}
        }
    }
}

impl TrainPanel {
    /// The left column: the tabs and the form (scrolling), and below them, always in view,
    /// the Train button with what stands in its way.
    fn controls(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        egui::Panel::bottom("train-actions")
            .frame(egui::Frame::new().inner_margin(egui::Margin {
                top: theme::space::S as i8,
                ..Default::default()
            }))
            .show(ui, |ui| self.actions(ui, cx));
        egui::ScrollArea::vertical()
            .id_salt("train-controls-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut self.tab, Tab::Pictures, "Pictures");
                    ui.selectable_value(&mut self.tab, Tab::Writing, "Writing");
                });
                ui.add_space(theme::space::S);
                match self.tab {
                    Tab::Pictures => self.pictures_form(ui, cx),
                    Tab::Writing => self.writing_form(ui, cx),
                }
            });
    }

    /// Estimate (writing), Train, and the problems that stop a start.
    fn actions(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        if self.tab == Tab::Writing {
            self.estimate_row(ui, cx);
        }
        let running = self.live.as_ref().is_some_and(LiveRun::is_running);
        let ready = match self.tab {
            Tab::Pictures => self.picture_count().is_some_and(|n| n >= MIN_PICTURES),
            Tab::Writing => !self.writing.files.is_empty() || !self.writing.documents.is_empty(),
        };
        let train = ui
            .add_enabled(
                ready && !running && cx.engine.is_some(),
                theme::primary_button(&format!("{} Train", theme::icon::PLAY)),
            )
            .on_disabled_hover_text(if running {
                "A run is in progress: stop it first"
            } else {
                "Choose what to learn from first"
            });
        if train.clicked() {
            match self.tab {
                Tab::Pictures => self.start_pictures(cx),
                Tab::Writing => self.start_writing(cx),
            }
        }
        if let Some(problem) = &self.problem {
            ui.colored_label(theme::ERROR, problem);
        }
        if let Some(e) = cx.engine_error {
            ui.colored_label(theme::ERROR, e);
        }
    }

    /// Starts a pictures run from the form.
    pub fn start_pictures(&mut self, cx: &mut PanelContext<'_>) {
        let Some(config) = self.pictures.config(&runs_root(cx)) else {
            self.problem = Some("Choose the pictures first.".into());
            return;
        };
        self.submit(
            RunKind::Pictures,
            TrainRequest::Faces(Box::new(config)),
            self.pictures.threads,
            cx,
        );
    }

    /// Starts a writing run from the form.
    pub fn start_writing(&mut self, cx: &mut PanelContext<'_>) {
        let config = self.writing_config(cx);
        if let Some(dir) = config.out.as_ref().and_then(|p| p.parent())
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            self.problem = Some(format!("cannot create {}: {e}", dir.display()));
            return;
        }
        self.submit(
            RunKind::Writing,
            TrainRequest::Write(Box::new(config)),
            self.writing.threads,
            cx,
        );
    }

    fn submit(
        &mut self,
        kind: RunKind,
        request: TrainRequest,
        threads: usize,
        cx: &mut PanelContext<'_>,
    ) {
        let Some(engine) = cx.engine else {
            self.problem = Some("The engine is not running.".into());
            return;
        };
        if self.live.as_ref().is_some_and(LiveRun::is_running) {
            self.problem = Some("A run is in progress: stop it first.".into());
            return;
        }
        self.problem = None;
        self.samples_texture = None;
        let (job, control) = engine.train(request, threads.max(1));
        self.live = Some(LiveRun::new(kind, job, control));
    }

    fn history_action(&mut self, action: HistoryAction, cx: &mut PanelContext<'_>) {
        match action {
            HistoryAction::ResumePictures(dir, target) => {
                let Some(source) = self
                    .pictures
                    .source
                    .clone()
                    .or_else(|| runs::RunRecord::load(&dir).ok().map(|r| r.settings.source))
                else {
                    return;
                };
                let mut config = TrainFacesConfig::new(
                    crate::features::train::faces::TrainSettings::new(
                        source,
                        crate::features::faces::default_model(),
                    ),
                    dir.clone(),
                    target,
                );
                config.resume = true;
                config.checkpoint_every = self.pictures.checkpoint_every.max(1);
                config.samples_every = self.pictures.samples_every.max(1);
                config.export = Some(generator_of(&dir));
                self.submit(
                    RunKind::Pictures,
                    TrainRequest::Faces(Box::new(config)),
                    self.pictures.threads,
                    cx,
                );
            }
            HistoryAction::ResumeWriting(dir) => match resume_config(&dir) {
                Ok(config) => self.submit(
                    RunKind::Writing,
                    TrainRequest::Write(Box::new(config)),
                    self.writing.threads,
                    cx,
                ),
                Err(e) => self.problem = Some(e.to_string()),
            },
            HistoryAction::OpenInFaces(dir) => {
                let out = generator_of(&dir);
                self.export(dir, out, true, cx);
            }
            HistoryAction::Export(dir) => {
                if cx.kiosk {
                    return;
                }
                self.pending_export = Some(dir);
                cx.commands.push(Command::FileDialog {
                    purpose: DialogPurpose::Save,
                    title: "Export the generator".into(),
                    filters: vec![("safetensors".into(), vec!["safetensors".into()])],
                    file_name: Some("generator.safetensors".into()),
                    tag: EXPORT_DIALOG,
                });
            }
        }
    }

    /// Writes the generator of the run in `dir` (its newest checkpoint) to `out` on a named
    /// thread; then opens it in Faces if `open`.
    fn export(&mut self, dir: PathBuf, out: PathBuf, open: bool, cx: &mut PanelContext<'_>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("atelier-train-export".into())
            .spawn(move || {
                crate::long_job::lower_priority();
                let result = runs::export_run(&dir, &out)
                    .map(|_| (out, open))
                    .map_err(|e| e.to_string());
                let _ = tx.send(result);
            });
        match spawned {
            Ok(_) => self.exports.push(rx),
            Err(e) => cx.toast(Notice {
                level: NoticeLevel::Error,
                message: format!("cannot start the export: {e}"),
            }),
        }
    }

    fn poll_exports(&mut self, cx: &mut PanelContext<'_>) {
        use std::sync::mpsc::TryRecvError;
        let mut done = Vec::new();
        self.exports.retain(|rx| match rx.try_recv() {
            Ok(result) => {
                done.push(result);
                false
            }
            Err(TryRecvError::Empty) => true,
            Err(TryRecvError::Disconnected) => false,
        });
        for result in done {
            match result {
                Ok((path, true)) => cx.commands.push(Command::OpenIn {
                    page: Page::Faces,
                    path,
                }),
                Ok((path, false)) => cx.toast(Notice {
                    level: NoticeLevel::Info,
                    message: format!("Exported to {}", path.display()),
                }),
                Err(message) => cx.toast(Notice {
                    level: NoticeLevel::Error,
                    message,
                }),
            }
        }
    }
}
