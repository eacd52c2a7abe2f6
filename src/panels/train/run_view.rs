//! The live run: Pause / Resume / Stop, progress and time left, the sample grid from fixed
//! latents (pictures) or the sample continuation beside the base model's (writing), and the
//! loss curves; when it ended, what it made and where it goes next.

use egui::RichText;

use super::forms::GENERATOR_FILE;
use super::live::{LiveRun, RunEnd, RunKind, duration};
use super::plot;
use super::state::TrainPanel;
use crate::app::page::Page;
use crate::panels::{Command, PanelContext};
use crate::theme;

/// What the user asked of the live run this frame.
enum RunAction {
    Pause,
    Resume,
    Stop,
    OpenInFaces,
    Dismiss,
}

impl TrainPanel {
    /// Draws the live run (the centre of the page while one runs or until dismissed).
    pub(super) fn run_view(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let Some(run) = self.live.as_mut() else {
            return;
        };
        if let Some(grid) = run.new_grid.take() {
            let size = [grid.width() as usize, grid.height() as usize];
            let image = egui::ColorImage::from_rgba_unmultiplied(size, grid.as_raw());
            match &mut self.samples_texture {
                Some(t) => t.set(image, egui::TextureOptions::NEAREST),
                None => {
                    self.samples_texture = Some(ui.ctx().load_texture(
                        "train-samples",
                        image,
                        egui::TextureOptions::NEAREST,
                    ))
                }
            }
        }
        let mut action = None;
        ui.horizontal(|ui| {
            ui.label(RichText::new(run.status_line()).font(theme::strong(15.0)));
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if run.is_running() {
                    if ui.button(format!("{} Stop", theme::icon::STOP)).clicked() {
                        action = Some(RunAction::Stop);
                    }
                    if run.paused {
                        if ui.button(format!("{} Resume", theme::icon::PLAY)).clicked() {
                            action = Some(RunAction::Resume);
                        }
                    } else if ui.button("Pause").clicked() {
                        action = Some(RunAction::Pause);
                    }
                } else {
                    if ui.button("New run").clicked() {
                        action = Some(RunAction::Dismiss);
                    }
                    if run.kind == RunKind::Pictures
                        && run.result.is_some()
                        && ui.add(theme::primary_button("Open in Faces")).clicked()
                    {
                        action = Some(RunAction::OpenInFaces);
                    }
                }
            });
        });
        if run.target > 0 {
            let fraction = run.step as f32 / run.target.max(1) as f32;
            ui.add(
                egui::ProgressBar::new(fraction.clamp(0.0, 1.0))
                    .text(format!("step {} of {}", run.step, run.target)),
            );
        } else if run.is_running() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(&run.phase);
            });
        }
        numbers(ui, run);
        if let Some(RunEnd::Failed(message)) = &run.end {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.label(RichText::new(message.as_str()).color(theme::ERROR));
            });
        }
        if let (Some(path), false) = (&run.result, run.is_running()) {
            let text = match run.kind {
                RunKind::Pictures => format!("The generator: {}", path.display()),
                RunKind::Writing => format!(
                    "The adapter: {} — Write lists it for this model under Adapter",
                    path.display()
                ),
            };
            ui.label(RichText::new(text).color(theme::TEXT_WEAK));
        }
        ui.add_space(theme::space::M);
        match run.kind {
            RunKind::Pictures => {
                ui.horizontal_top(|ui| {
                    if let Some(tex) = &self.samples_texture {
                        ui.vertical(|ui| {
                            let step = run.grid_step.unwrap_or(0);
                            ui.label(
                                RichText::new(format!("Samples after step {step}"))
                                    .color(theme::TEXT_FAINT),
                            );
                            ui.add(
                                egui::Image::new(tex)
                                    .fit_to_exact_size(egui::Vec2::splat(288.0))
                                    .corner_radius(6.0),
                            );
                        });
                    }
                    ui.vertical(|ui| {
                        ui.label(RichText::new("Losses").color(theme::TEXT_FAINT));
                        plot::pair(ui, ["D", "G"], [&run.curves[0], &run.curves[1]], 288.0);
                    });
                });
            }
            RunKind::Writing => {
                ui.label(RichText::new("Loss").color(theme::TEXT_FAINT));
                plot::pair(
                    ui,
                    ["training", "held out"],
                    [&run.curves[0], &run.curves[1]],
                    220.0,
                );
                if let Some(s) = &run.sample {
                    ui.add_space(theme::space::S);
                    ui.label(
                        RichText::new(format!(
                            "After step {}, continuing a held-out passage",
                            s.step
                        ))
                        .color(theme::TEXT_FAINT),
                    );
                    theme::inset().show(ui, |ui| {
                        ui.label(RichText::new(&s.prompt).italics().color(theme::TEXT_WEAK));
                    });
                    ui.columns(2, |cols| {
                        cols[0].label(RichText::new("With the adapter").strong());
                        cols[0].label(&s.adapter);
                        cols[1].label(RichText::new("The base model").strong());
                        cols[1].label(RichText::new(&s.base).color(theme::TEXT_WEAK));
                    });
                }
            }
        }
        if run.is_running() {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(250));
        }
        match action {
            Some(RunAction::Pause) => run.set_paused(true),
            Some(RunAction::Resume) => run.set_paused(false),
            Some(RunAction::Stop) => run.stop(),
            Some(RunAction::OpenInFaces) => {
                if let Some(path) = run.result.clone() {
                    cx.commands.push(Command::OpenIn {
                        page: Page::Faces,
                        path,
                    });
                }
            }
            Some(RunAction::Dismiss) => {
                self.live = None;
                self.samples_texture = None;
            }
            None => {}
        }
    }
}

/// Speed, time left, checkpoint and (writing) perplexity in one row.
fn numbers(ui: &mut egui::Ui, run: &LiveRun) {
    let mut parts = Vec::new();
    match run.kind {
        RunKind::Pictures if run.amount > 0 => parts.push(format!("{} pictures", run.amount)),
        RunKind::Writing if run.amount > 0 => {
            parts.push(format!(
                "{} training tokens, {} held out",
                theme::thousands(run.amount),
                theme::thousands(run.val_tokens)
            ));
            if let Some(e) = run.epoch_seconds {
                parts.push(format!("epoch ≈ {}", duration(e)));
            }
        }
        _ => {}
    }
    if run.speed > 0.0 {
        parts.push(run.speed_text());
        if run.is_running() {
            parts.push(format!("{} left", duration(run.seconds_left)));
        }
    }
    if let Some(step) = run.checkpoint_step {
        parts.push(format!("checkpoint at step {step}"));
    }
    ui.horizontal_wrapped(|ui| {
        ui.label(RichText::new(parts.join(" · ")).color(theme::TEXT_WEAK));
        if let Some((base, now)) = run.perplexity {
            ui.label(RichText::new(format!("perplexity {base:.1} → {now:.1}")).color(theme::OK));
        }
    });
}

/// The generator file of a pictures run's folder.
pub(super) fn generator_of(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(GENERATOR_FILE)
}
