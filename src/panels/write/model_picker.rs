//! The model picker: the bundled models, the ones found on disk and the recent ones, with
//! what the selected one is and why it failed.

use std::path::{Path, PathBuf};

use egui::RichText;

use super::model::{ModelPick, ModelState};
use crate::models::llm::ModelInfo;
use crate::models::llm::discover::DiscoveredModel;

use crate::paths;
use crate::theme::{self, icon};

/// A readable name for a model file: the defaults by their product names, loaded models by
/// their GGUF name, anything else by file name.
pub fn display_name(path: &Path, loaded: Option<&ModelInfo>) -> String {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or_default();
    if file == paths::SMOLLM2_FILE {
        return "SmolLM2 135M Instruct".into();
    }
    if file == paths::GEMMA3_FILE {
        return "Gemma 3 270M (base)".into();
    }
    if let Some(info) = loaded.filter(|i| i.path == path) {
        return info.name.clone();
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// One row of the picker.
pub(super) fn model_row(
    ui: &mut egui::Ui,
    selected: bool,
    title: &str,
    detail: &str,
    enabled: bool,
) -> egui::Response {
    ui.add_enabled(
        enabled,
        egui::Button::selectable(
            selected,
            (
                RichText::new(title).color(theme::TEXT),
                egui::Atom::grow(),
                RichText::new(detail).color(theme::TEXT_FAINT).size(12.0),
            ),
        )
        .min_size(egui::vec2(ui.available_width(), 28.0)),
    )
}

/// The picker: a combo box with the defaults, discovered and recent models, and "Open GGUF…";
/// beneath it the state of the chosen model (loaded, loading, missing, failed).
pub fn show(
    ui: &mut egui::Ui,
    state: &ModelState,
    recent: &[PathBuf],
    picks: &mut Vec<ModelPick>,
    kiosk: bool,
) {
    let selected_name = display_name(&state.selected, state.loaded.as_ref());
    let label = ui.label(RichText::new("Model").color(theme::TEXT_WEAK));
    let combo = egui::ComboBox::from_id_salt("model-picker")
        .selected_text(selected_name)
        .width(ui.available_width())
        .height(420.0)
        .show_ui(ui, |ui| {
            ui.set_min_width(320.0);
            theme::section_label(ui, "Included");
            for (file, kind) in [
                (paths::SMOLLM2_FILE, "instruct · default"),
                (paths::GEMMA3_FILE, "completion"),
            ] {
                let path = paths::default_model(file);
                let exists = path.is_file();
                let detail = if exists {
                    kind.to_string()
                } else {
                    "missing".to_string()
                };
                let r = model_row(
                    ui,
                    state.selected == path,
                    &display_name(&path, None),
                    &detail,
                    exists,
                )
                .on_disabled_hover_text(format!(
                    "{file} is not in {}. Fetch the default models with {}",
                    paths::models_dir().display(),
                    paths::FETCH_COMMAND
                ));
                if r.clicked() {
                    picks.push(ModelPick::Load(path));
                }
            }
            let defaults = [
                paths::default_model(paths::SMOLLM2_FILE),
                paths::default_model(paths::GEMMA3_FILE),
            ];
            let found: Vec<&DiscoveredModel> = state
                .discovered
                .iter()
                .filter(|m| !defaults.contains(&m.path))
                .collect();
            ui.add_space(theme::space::XS);
            theme::section_label(ui, "On this computer");
            if state.discovering {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(RichText::new("Looking for GGUF models…").color(theme::TEXT_WEAK));
                });
            } else if found.is_empty() {
                ui.label(
                    RichText::new(
                        "No other GGUF models in the Hugging Face cache, LM Studio or Ollama.",
                    )
                    .color(theme::TEXT_FAINT)
                    .size(12.0),
                );
            }
            for m in found {
                let detail = format!("{} · {}", m.source.label(), theme::human_bytes(m.size));
                let r = model_row(ui, state.selected == m.path, &m.name, &detail, true)
                    .on_hover_text(m.path.display().to_string());
                if r.clicked() {
                    picks.push(ModelPick::Load(m.path.clone()));
                }
            }
            let recent: Vec<&PathBuf> = recent
                .iter()
                .filter(|p| {
                    !defaults.contains(p) && !state.discovered.iter().any(|m| &m.path == *p)
                })
                .collect();
            if !recent.is_empty() {
                ui.add_space(theme::space::XS);
                theme::section_label(ui, "Recent");
                for p in recent {
                    let r = model_row(
                        ui,
                        state.selected == **p,
                        &display_name(p, state.loaded.as_ref()),
                        "file",
                        true,
                    )
                    .on_hover_text(p.display().to_string());
                    if r.clicked() {
                        picks.push(ModelPick::Load(p.clone()));
                    }
                }
            }
            ui.separator();
            ui.horizontal(|ui| {
                if !kiosk && ui.button("Open GGUF…").clicked() {
                    picks.push(ModelPick::OpenDialog);
                    ui.close();
                }
                if ui
                    .add_enabled(
                        !state.discovering,
                        egui::Button::new(format!("{} Search again", icon::REGENERATE)),
                    )
                    .clicked()
                {
                    picks.push(ModelPick::Refresh);
                }
            });
        });
    combo.response.labelled_by(label.id);
    status_line(ui, state);
}

/// One line under the picker: what the chosen model is doing.
pub(super) fn status_line(ui: &mut egui::Ui, state: &ModelState) {
    let small = |t: String, c| RichText::new(t).size(12.0).color(c);
    if !state.selected.as_os_str().is_empty() && !state.selected.is_file() {
        let file = state
            .selected
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        theme::notice_frame(theme::WARN).show(ui, |ui| {
            ui.label(small(
                format!(
                    "{} {file} is missing. Fetch the default models with:",
                    icon::WARNING
                ),
                theme::WARN,
            ));
            ui.add(egui::Label::new(
                RichText::new(paths::FETCH_COMMAND)
                    .monospace()
                    .color(theme::TEXT),
            ));
        });
        return;
    }
    if let Some(err) = state.selected_error() {
        theme::notice_frame(theme::ERROR).show(ui, |ui| {
            ui.add(
                egui::Label::new(small(
                    format!("{} Could not load: {err}", icon::WARNING),
                    theme::ERROR,
                ))
                .wrap(),
            );
        });
        return;
    }
    if let Some(load) = &state.load
        && load.ahead > 0
        && !load.started
    {
        ui.label(small(
            format!(
                "Queued behind {} job{} — loads when the current one ends",
                load.ahead,
                if load.ahead == 1 { "" } else { "s" }
            ),
            theme::WARN,
        ));
        return;
    }
    if state.is_loading() {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(small("Loading model…".into(), theme::TEXT_WEAK));
        });
        return;
    }
    match state.selected_info() {
        Some(info) => {
            let chat = if info.has_chat_template {
                "chat template"
            } else {
                "no chat template"
            };
            ui.label(small(
                format!(
                    "{} {} · {} ctx · {} · {}",
                    icon::DOT,
                    info.architecture_label(),
                    theme::thousands(info.context_length),
                    theme::human_bytes(info.file_size),
                    chat
                ),
                theme::TEXT_FAINT,
            ));
        }
        None => {
            ui.label(small("Loads on first use".into(), theme::TEXT_FAINT));
        }
    }
}

/// Short labels for model info.
pub(super) trait InfoLabel {
    fn architecture_label(&self) -> String;
}

impl InfoLabel for ModelInfo {
    fn architecture_label(&self) -> String {
        // Which engine runs it matters for speed (the native decoder needs AVX-512 VNNI).
        format!("{:?} ({})", self.architecture, self.backend)
    }
}
