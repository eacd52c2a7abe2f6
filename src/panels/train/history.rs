//! Earlier runs, read from the runs folder on a named thread (so they survive restarts and a
//! long list never holds a frame): their settings, data, curves and state, with Resume, Open
//! in Faces and Export for pictures runs and the adapter's file for writing runs.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, TryRecvError};

use egui::RichText;

use super::live::Series;
use super::plot::{self, Curve};
use crate::features::train::faces::runs::{self, RunEntry, RunState};
use crate::features::train::write::{WriteRunEntry, list_runs};
use crate::theme;

/// Pictures runs with their last sample grids (decoded on the thread), and writing runs.
type Lists = (
    Vec<(RunEntry, Option<egui::ColorImage>)>,
    Vec<WriteRunEntry>,
);

/// The runs list.
#[derive(Default)]
pub struct RunList {
    pictures: Vec<RunEntry>,
    /// Each pictures run's last sample grid: decoded, then uploaded on first show.
    samples: Vec<Samples>,
    writing: Vec<WriteRunEntry>,
    loading: Option<Receiver<Lists>>,
    /// Whether it was read at least once (it is read on first show and after each run).
    read: bool,
}

/// A run's last sample grid.
enum Samples {
    None,
    Decoded(egui::ColorImage),
    Shown(egui::TextureHandle),
}

/// The last sample grid of a run folder (`samples.png`, a few hundred pixels a side).
fn decode_samples(entry: &RunEntry) -> Option<egui::ColorImage> {
    let img = image::open(entry.samples.as_ref()?).ok()?.to_rgba8();
    Some(egui::ColorImage::from_rgba_unmultiplied(
        [img.width() as usize, img.height() as usize],
        img.as_raw(),
    ))
}

/// What the user asked of an earlier run.
pub(super) enum HistoryAction {
    /// Continue a pictures run to this step.
    ResumePictures(PathBuf, u64),
    /// Continue a writing run.
    ResumeWriting(PathBuf),
    /// Export a pictures run's generator (if needed) and open it in Faces.
    OpenInFaces(PathBuf),
    /// Export a pictures run's generator to a file the user chooses.
    Export(PathBuf),
}

impl RunList {
    /// Runs listed.
    pub fn len(&self) -> usize {
        self.pictures.len() + self.writing.len()
    }

    /// Reads the runs under `root` again (on a thread).
    pub fn refresh(&mut self, root: &Path) {
        let root = root.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("atelier-train-runs".into())
            .spawn(move || {
                let pictures = runs::list(&root)
                    .into_iter()
                    .map(|e| {
                        let samples = decode_samples(&e);
                        (e, samples)
                    })
                    .collect();
                let _ = tx.send((pictures, list_runs(&root)));
            });
        match spawned {
            Ok(_) => self.loading = Some(rx),
            Err(e) => tracing::warn!("cannot list the training runs: {e}"),
        }
        self.read = true;
    }

    fn poll(&mut self, root: &Path) {
        if !self.read {
            self.refresh(root);
        }
        if let Some(rx) = &self.loading {
            match rx.try_recv() {
                Ok((pictures, writing)) => {
                    (self.pictures, self.samples) = pictures
                        .into_iter()
                        .map(|(e, s)| (e, s.map_or(Samples::None, Samples::Decoded)))
                        .unzip();
                    self.writing = writing;
                    self.loading = None;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.loading = None,
            }
        }
    }

    /// Draws the list; `busy` while a run is live (nothing can be resumed then) and `more`
    /// steps for a finished pictures run that is continued.
    pub(super) fn show(
        &mut self,
        ui: &mut egui::Ui,
        root: &Path,
        busy: bool,
        more: u64,
    ) -> Option<HistoryAction> {
        self.poll(root);
        let mut action = None;
        theme::section_label(ui, "Runs");
        if self.len() == 0 {
            ui.label(RichText::new("No runs yet.").color(theme::TEXT_FAINT));
        }
        for (i, entry) in self.pictures.iter().enumerate() {
            let r = &entry.record;
            if let Some(Samples::Decoded(_)) = self.samples.get(i)
                && let Samples::Decoded(image) =
                    std::mem::replace(&mut self.samples[i], Samples::None)
            {
                self.samples[i] = Samples::Shown(ui.ctx().load_texture(
                    format!("train-run-samples-{i}"),
                    image,
                    egui::TextureOptions::LINEAR,
                ));
            }
            theme::card().show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(format!("Pictures · {}", r.id)).strong());
                    ui.label(state_text(&r.state, r.step, r.target));
                });
                ui.label(
                    RichText::new(format!(
                        "{} pictures from {} · batch {} · lr {} · {}",
                        r.pictures,
                        r.settings.source.describe(),
                        r.settings.batch,
                        r.settings.lr,
                        match r.settings.start {
                            crate::features::train::faces::StartFrom::Scratch => "from scratch",
                            _ => "from the face model",
                        }
                    ))
                    .small()
                    .color(theme::TEXT_WEAK),
                );
                let d: Series = curve(&r.curves.step, &r.curves.d);
                let g: Series = curve(&r.curves.step, &r.curves.g);
                ui.horizontal(|ui| {
                    if let Some(Samples::Shown(tex)) = self.samples.get(i) {
                        ui.add(
                            egui::Image::new(tex)
                                .fit_to_exact_size(egui::Vec2::splat(64.0))
                                .corner_radius(4.0),
                        )
                        .on_hover_text(format!(
                            "The last samples (step {})",
                            r.samples_step.unwrap_or(r.step)
                        ));
                    }
                    ui.vertical(|ui| plot::pair(ui, ["D", "G"], [&d, &g], 64.0));
                });
                ui.horizontal_wrapped(|ui| {
                    let resumable = r.checkpoint.is_some();
                    let target = if r.step < r.target {
                        r.target
                    } else {
                        r.step + more
                    };
                    let label = if r.step < r.target {
                        "Resume".to_string()
                    } else {
                        format!("Train {more} more")
                    };
                    if ui
                        .add_enabled(!busy && resumable, egui::Button::new(label))
                        .clicked()
                    {
                        action = Some(HistoryAction::ResumePictures(entry.dir.clone(), target));
                    }
                    if ui
                        .add_enabled(resumable, egui::Button::new("Open in Faces"))
                        .clicked()
                    {
                        action = Some(HistoryAction::OpenInFaces(entry.dir.clone()));
                    }
                    if ui
                        .add_enabled(resumable, egui::Button::new("Export…"))
                        .clicked()
                    {
                        action = Some(HistoryAction::Export(entry.dir.clone()));
                    }
                });
            });
        }
        for entry in &self.writing {
            theme::card().show(ui, |ui| {
                ui.set_width(ui.available_width());
                let id = entry
                    .dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(format!("Writing · {id}")).strong());
                    ui.label(format!(
                        "{} · step {}/{}",
                        entry.status, entry.step, entry.steps_total
                    ));
                });
                let model = entry
                    .config
                    .model
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ppl = entry.perplexity.map_or_else(String::new, |p| {
                    format!(" · perplexity {:.1} → {p:.1}", entry.base_perplexity)
                });
                ui.label(
                    RichText::new(format!(
                        "{model} · rank {} · {} tokens{ppl}",
                        entry.config.rank,
                        theme::thousands(entry.train_tokens)
                    ))
                    .small()
                    .color(theme::TEXT_WEAK),
                );
                let loss: Series = entry
                    .train_curve
                    .iter()
                    .map(|&(s, l)| (s as f64, l))
                    .collect();
                plot::show(
                    ui,
                    &[Curve {
                        name: "training",
                        color: theme::ACCENT,
                        points: &loss,
                    }],
                    64.0,
                );
                ui.horizontal_wrapped(|ui| {
                    let resumable = entry.status != "finished" && entry.step < entry.steps_total;
                    if ui
                        .add_enabled(!busy && resumable, egui::Button::new("Resume"))
                        .clicked()
                    {
                        action = Some(HistoryAction::ResumeWriting(entry.dir.clone()));
                    }
                });
                if let Some(adapter) = &entry.adapter {
                    ui.add(
                        egui::Label::new(
                            RichText::new(adapter.display().to_string())
                                .small()
                                .color(theme::TEXT_FAINT),
                        )
                        .wrap(),
                    );
                }
            });
        }
        action
    }
}

fn curve(steps: &[u64], values: &[f32]) -> Series {
    steps
        .iter()
        .zip(values)
        .map(|(&s, &v)| (s as f64, f64::from(v)))
        .collect()
}

fn state_text(state: &RunState, step: u64, target: u64) -> String {
    match state {
        RunState::Running => format!("interrupted at step {step}/{target} (resumable)"),
        RunState::Stopped => format!("stopped at step {step}/{target}"),
        RunState::Finished => format!("finished, {step} steps"),
        RunState::Failed(why) => format!("failed at step {step}: {why}"),
    }
}
