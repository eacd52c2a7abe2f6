//! The writing form: the base model, the texts (files and Atelier documents), the adapter's
//! name and the recipe, and the estimate of what the run costs here ([`super::estimate`]).

use std::path::PathBuf;

use egui::RichText;

use super::estimate::Estimate;
use super::state::{MODEL_DIALOG, TEXT_DIALOG, TrainPanel};
use crate::features::train::write::{RANKS, TrainWriteConfig};
use crate::models::llm::lora::LoraTarget;
use crate::panels::{Command, DialogPurpose, PanelContext};
use crate::paths;
use crate::theme;

impl TrainPanel {
    /// The base model the writing run trains: the form's, else the Write panel's, else
    /// SmolLM2.
    pub(super) fn writing_model(&self, cx: &PanelContext<'_>) -> PathBuf {
        self.writing
            .model
            .clone()
            .or_else(|| cx.store.settings.model.clone())
            .unwrap_or_else(|| paths::default_model(paths::SMOLLM2_FILE))
    }

    /// Adds a text file to the writing run.
    pub fn add_text_file(&mut self, path: PathBuf) {
        if !self.writing.files.contains(&path) {
            self.writing.files.push(path);
            self.estimate = Estimate::None;
        }
    }

    /// The writing form.
    pub(super) fn writing_form(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let before = self.writing.clone();
        theme::section_label(ui, "Base model");
        let model = self.writing_model(cx);
        let name = |p: &PathBuf| {
            p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        };
        let mut choices = vec![
            paths::default_model(paths::SMOLLM2_FILE),
            paths::default_model(paths::GEMMA3_FILE),
        ];
        for p in cx
            .store
            .settings
            .recent_models
            .iter()
            .chain(&self.writing.model)
        {
            if !choices.contains(p) {
                choices.push(p.clone());
            }
        }
        let label = ui.label(RichText::new("Model").color(theme::TEXT_WEAK));
        egui::ComboBox::from_id_salt("train-model")
            .selected_text(name(&model))
            .width(ui.available_width() - 12.0)
            .show_ui(ui, |ui| {
                for p in &choices {
                    if ui.selectable_label(*p == model, name(p)).clicked() {
                        self.writing.model = Some(p.clone());
                    }
                }
                if !cx.kiosk && ui.button("Other GGUF file…").clicked() {
                    cx.commands.push(Command::FileDialog {
                        purpose: DialogPurpose::Open,
                        title: "Base model".into(),
                        filters: vec![("GGUF".into(), vec!["gguf".into()])],
                        file_name: None,
                        tag: MODEL_DIALOG,
                    });
                }
            })
            .response
            .labelled_by(label.id);
        ui.add_space(theme::space::S);

        theme::section_label(ui, "Your writing");
        let mut remove = None;
        for (i, f) in self.writing.files.iter().enumerate() {
            ui.horizontal(|ui| {
                if ui.small_button(theme::icon::CROSS).clicked() {
                    remove = Some(i);
                }
                ui.label(RichText::new(name(f)).color(theme::TEXT_WEAK))
                    .on_hover_text(f.display().to_string());
            });
        }
        if let Some(i) = remove {
            self.writing.files.remove(i);
        }
        if !cx.kiosk && ui.button("Add text files…").clicked() {
            cx.commands.push(Command::FileDialog {
                purpose: DialogPurpose::Open,
                title: "Writing to learn from".into(),
                filters: vec![("Text".into(), vec!["txt".into(), "md".into()])],
                file_name: None,
                tag: TEXT_DIALOG,
            });
        }
        let docs: Vec<(String, String)> = cx
            .store
            .documents()
            .iter()
            .filter(|d| !d.text.trim().is_empty())
            .map(|d| (d.id.clone(), d.display_title()))
            .collect();
        if !docs.is_empty() {
            ui.label(RichText::new("Documents").color(theme::TEXT_FAINT));
            for (id, title) in docs {
                let mut on = self.writing.documents.contains(&id);
                if ui.checkbox(&mut on, title).changed() {
                    if on {
                        self.writing.documents.push(id);
                    } else {
                        self.writing.documents.retain(|d| *d != id);
                    }
                }
            }
        }
        ui.label(
            RichText::new("The last 10% of each text is held out to measure progress.")
                .small()
                .color(theme::TEXT_FAINT),
        );
        ui.add_space(theme::space::S);

        theme::section_label(ui, "Adapter");
        ui.horizontal(|ui| {
            let label = ui.label("Name");
            ui.add(
                egui::TextEdit::singleline(&mut self.writing.name)
                    .desired_width(ui.available_width() - 12.0),
            )
            .labelled_by(label.id);
        });
        let w = &mut self.writing;
        egui::Grid::new("train-writing-settings")
            .num_columns(2)
            .spacing([theme::space::M, theme::space::XS])
            .show(ui, |ui| {
                super::fields::row(ui, "Rank", egui::DragValue::new(&mut w.rank).range(RANKS));
                super::fields::row(
                    ui,
                    "Alpha",
                    egui::DragValue::new(&mut w.alpha).range(0.5..=256.0),
                );
                super::fields::row(
                    ui,
                    "Learning rate",
                    egui::DragValue::new(&mut w.lr)
                        .range(1e-6..=1e-1)
                        .speed(1e-4)
                        .max_decimals(6),
                );
                super::fields::row(
                    ui,
                    "Steps",
                    egui::DragValue::new(&mut w.steps).range(0..=1_000_000),
                )
                .on_hover_text("0: one epoch (every training token once, on average)");
                super::fields::row(
                    ui,
                    "Context",
                    egui::DragValue::new(&mut w.context).range(16..=2048),
                );
                super::fields::row(
                    ui,
                    "Batch",
                    egui::DragValue::new(&mut w.batch).range(1..=64),
                );
                super::fields::row(
                    ui,
                    "Validate every",
                    egui::DragValue::new(&mut w.eval_every).range(1..=10_000),
                );
                super::fields::row(
                    ui,
                    "Sample every",
                    egui::DragValue::new(&mut w.sample_every).range(0..=10_000),
                );
                super::fields::row(
                    ui,
                    "Cores",
                    egui::DragValue::new(&mut w.threads).range(1..=super::forms::cores()),
                );
            });
        ui.label(RichText::new("Projections").color(theme::TEXT_FAINT));
        ui.horizontal_wrapped(|ui| {
            for t in LoraTarget::ALL {
                let mut on = w.targets.contains(&t);
                if ui.checkbox(&mut on, t.short_name()).changed() {
                    if on {
                        w.targets.push(t);
                    } else {
                        w.targets.retain(|x| *x != t);
                    }
                }
            }
        });
        if self.writing != before {
            self.estimate = Estimate::None;
        }
    }

    /// The Estimate button and what it measured (above Train).
    pub(super) fn estimate_row(&mut self, ui: &mut egui::Ui, cx: &PanelContext<'_>) {
        let ready = !self.writing.files.is_empty() || !self.writing.documents.is_empty();
        let running = matches!(self.estimate, Estimate::Running(_));
        if ui
            .add_enabled(ready && !running, egui::Button::new("Estimate"))
            .on_hover_text("Reads the writing and times one step here")
            .clicked()
        {
            let config = self.writing_config(cx);
            self.estimate = Estimate::start(config, self.writing.threads);
        }
        self.estimate_view(ui);
    }

    /// The configuration of the next writing run.
    pub(super) fn writing_config(&self, cx: &PanelContext<'_>) -> TrainWriteConfig {
        let data = cx.store.dir().to_path_buf();
        self.writing.config(
            self.writing_model(cx),
            &data,
            &super::panel::runs_root(cx),
            // The data folder's adapters/, where Write looks (also with --data-dir).
            &data.join("adapters"),
        )
    }

    fn estimate_view(&mut self, ui: &mut egui::Ui) {
        self.estimate.poll();
        match &self.estimate {
            Estimate::None => {}
            Estimate::Running(_) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the writing and timing a step…");
                });
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_millis(200));
            }
            Estimate::Failed(m) => {
                ui.colored_label(theme::ERROR, m);
            }
            Estimate::Ready(s) => {
                ui.label(format!(
                    "{} training tokens, {} held out{}",
                    theme::thousands(s.train_tokens),
                    theme::thousands(s.val_tokens),
                    if s.truncated {
                        " (the reading stopped at the token budget)"
                    } else {
                        ""
                    }
                ));
                ui.label(format!(
                    "One epoch: {} steps, about {} here",
                    s.steps_per_epoch,
                    super::live::duration(s.epoch_seconds)
                ));
            }
        }
    }
}
