//! The status bar: which model is loaded, where it runs (the LLM on the CPU; the window on the
//! wgpu adapter), what the current job is doing, and its speed.

use egui::RichText;

use super::ModelState;
use super::model_picker::display_name;
use super::suggestions::{Phase, Suggestions, phase_pill};
use crate::theme::{self, icon, space};

/// What the bar shows besides the model.
pub struct StatusInfo<'a> {
    /// The Write panel's suggestions (job state, speed).
    pub suggestions: Option<&'a Suggestions>,
    /// Whether everything the user typed is on disk.
    pub saved: bool,
    /// Jobs waiting or running in the engine.
    pub pending_jobs: usize,
    /// The wgpu adapter the engine shares with the renderer (`Engine::gpu`), if any.
    pub gpu_adapter: Option<&'a str>,
    /// Where the last image job (Faces, Style) ran: "CPU" or "GPU · adapter".
    pub image_device: Option<&'a str>,
    /// The image models' backend setting (Auto / CPU / GPU), edited here.
    pub backend: &'a mut crate::gpu::Backend,
    /// What Faces or Style work is doing (rendering, directions, walk fps, style steps), if
    /// anything.
    pub faces: Option<&'a str>,
    /// The server Write uses instead of the local model ("host · model"), if any.
    pub remote: Option<&'a str>,
}

/// Draws the bar's contents (the caller provides the panel).
pub fn show(ui: &mut egui::Ui, model: &ModelState, info: &mut StatusInfo<'_>) {
    let small = |t: String, c| RichText::new(t).size(12.0).color(c);
    ui.horizontal_centered(|ui| {
        ui.spacing_mut().item_spacing.x = space::M;
        // Model.
        let queued = model
            .load
            .as_ref()
            .is_some_and(|l| l.ahead > 0 && !l.started);
        let (dot, text) = if let Some(server) = info.remote {
            (theme::OK, format!("Server: {server}"))
        } else if queued {
            (
                theme::WARN,
                format!("{} (queued)", display_name(&model.selected, None)),
            )
        } else if model.is_loading() {
            (
                theme::WARN,
                format!("Loading {}", display_name(&model.selected, None)),
            )
        } else if let Some(info) = &model.loaded {
            (theme::OK, display_name(&info.path, Some(info)))
        } else if model.error.is_some() {
            (theme::ERROR, "Model failed to load".into())
        } else {
            (theme::TEXT_FAINT, "No model loaded".into())
        };
        ui.label(small(icon::DOT.into(), dot));
        ui.add_space(-space::S);
        ui.label(small(text, theme::TEXT_WEAK));
        separator(ui);
        if info.remote.is_some() {
            ui.label(small("LLM on the server".into(), theme::TEXT_WEAK))
                .on_hover_text("Write sends its prompts to the OpenAI-compatible server.");
        } else {
            ui.label(small("LLM on CPU".into(), theme::TEXT_WEAK))
                .on_hover_text("Language models run on this computer's CPU.");
        }
        if let Some(adapter) = info.gpu_adapter {
            separator(ui);
            ui.label(small(format!("GPU: {adapter}"), theme::TEXT_WEAK))
                .on_hover_text("The graphics adapter drawing the window (wgpu).");
        }
        separator(ui);
        let current = *info.backend;
        egui::ComboBox::from_id_salt("image-backend")
            .selected_text(small(
                format!("Images: {}", backend_label(current)),
                theme::TEXT_WEAK,
            ))
            .show_ui(ui, |ui| {
                for b in crate::gpu::Backend::ALL {
                    ui.selectable_value(info.backend, b, backend_label(b));
                }
            })
            .response
            .on_hover_text(
                "Where Faces and Style run. Auto: the GPU when it is a real GPU, the CPU on a \
                 software adapter (slower than the CPU kernels).",
            );
        if let Some(device) = info.image_device {
            ui.label(small(format!("ran on {device}"), theme::TEXT_WEAK))
                .on_hover_text("Where the last Faces or Style job ran.");
        }

        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let (save_text, save_color) = if info.saved {
                (format!("{} Saved", icon::CHECK), theme::TEXT_FAINT)
            } else {
                ("Saving…".to_string(), theme::TEXT_WEAK)
            };
            ui.label(small(save_text, save_color));
            if let Some(f) = info.faces {
                separator(ui);
                ui.label(small(f.to_string(), theme::TEXT_WEAK));
            }
            if let Some(s) = info.suggestions {
                separator(ui);
                if let Some(tps) = s.tokens_per_s() {
                    ui.label(small(format!("{tps:.1} tok/s"), theme::TEXT_WEAK));
                }
                let ttft = s
                    .candidates
                    .iter()
                    .filter_map(|c| c.stats.as_ref())
                    .find(|st| st.generated_tokens > 0)
                    .map(|st| st.time_to_first_token_ms);
                if let Some(ms) = ttft {
                    ui.label(small(format!("first token {ms:.0} ms"), theme::TEXT_WEAK));
                }
                let (text, color) = phase_pill(&s.phase);
                let text = match &s.phase {
                    Phase::Streaming => format!("{text} · {} tokens", s.token_count()),
                    _ => text,
                };
                ui.label(small(text, color));
            } else if info.faces.is_some() {
                // The Faces line above already says what the worker is doing.
            } else if info.pending_jobs > 0 {
                separator(ui);
                ui.label(small(
                    format!(
                        "{} job{} running",
                        info.pending_jobs,
                        if info.pending_jobs == 1 { "" } else { "s" }
                    ),
                    theme::TEXT_WEAK,
                ));
            } else {
                separator(ui);
                ui.label(small("Ready".into(), theme::TEXT_FAINT));
            }
        });
    });
}

fn backend_label(b: crate::gpu::Backend) -> &'static str {
    match b {
        crate::gpu::Backend::Auto => "Auto",
        crate::gpu::Backend::Cpu => "CPU",
        crate::gpu::Backend::Gpu => "GPU",
    }
}

fn separator(ui: &mut egui::Ui) {
    ui.label(RichText::new("·").size(12.0).color(theme::TEXT_FAINT));
}
