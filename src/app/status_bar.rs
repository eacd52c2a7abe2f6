//! The status bar: where the models run (the window's wgpu adapter, the image backend and
//! where the last image job ran), what each panel says about its work (the Write panel's
//! model and speed, Faces' renders, Style's steps, training), and whether everything is saved.

use egui::RichText;

use crate::panels::{StatusItem, StatusSide};
use crate::theme::{self, icon, space};

/// What the bar shows.
pub struct StatusInfo<'a> {
    /// Every panel's items, in the navigation bar's order.
    pub items: &'a [StatusItem],
    /// Whether everything the user typed is on disk.
    pub saved: bool,
    /// Why saving fails right now, if it does.
    pub save_problem: Option<&'a str>,
    /// Jobs waiting or running on the worker.
    pub pending_jobs: usize,
    /// The wgpu adapter the engine shares with the renderer (`Engine::gpu`), if any.
    pub gpu_adapter: Option<&'a str>,
    /// Where the last image job (Faces, Style) ran: "CPU" or "GPU · adapter".
    pub image_device: Option<&'a str>,
    /// The image models' backend setting (Auto / CPU / GPU), edited here.
    pub backend: &'a mut crate::gpu::Backend,
}

/// Draws the bar's contents (the caller provides the panel).
pub fn show(ui: &mut egui::Ui, info: &mut StatusInfo<'_>) {
    ui.horizontal_centered(|ui| {
        ui.spacing_mut().item_spacing.x = space::M;
        let mut first = true;
        for item in info.items.iter().filter(|i| i.side == StatusSide::Left) {
            if !first {
                separator(ui);
            }
            first = false;
            item_label(ui, item);
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
            match (info.save_problem, info.saved) {
                (Some(problem), _) => {
                    ui.label(small(format!("{} Not saved", icon::WARNING), theme::ERROR))
                        .on_hover_text(problem);
                }
                (None, true) => {
                    ui.label(small(format!("{} Saved", icon::CHECK), theme::TEXT_FAINT));
                }
                (None, false) => {
                    ui.label(small("Saving…".into(), theme::TEXT_WEAK));
                }
            }
            // Right to left: the items go in reverse so they read in their order.
            let right: Vec<&StatusItem> = info
                .items
                .iter()
                .filter(|i| i.side == StatusSide::Right)
                .collect();
            for item in right.iter().rev() {
                separator(ui);
                item_label(ui, item);
            }
            if right.is_empty() {
                separator(ui);
                if info.pending_jobs > 0 {
                    ui.label(small(
                        format!(
                            "{} job{} running",
                            info.pending_jobs,
                            if info.pending_jobs == 1 { "" } else { "s" }
                        ),
                        theme::TEXT_WEAK,
                    ));
                } else {
                    ui.label(small("Ready".into(), theme::TEXT_FAINT));
                }
            }
        });
    });
}

/// One item: an optional dot in its tone, then its text (in the tone, or plain after a dot).
fn item_label(ui: &mut egui::Ui, item: &StatusItem) {
    let color = item.tone.color();
    let response = if item.dot {
        ui.label(small(icon::DOT.into(), color));
        ui.add_space(-space::S);
        ui.label(small(item.text.clone(), theme::TEXT_WEAK))
    } else {
        ui.label(small(item.text.clone(), color))
    };
    if let Some(hover) = &item.hover {
        response.on_hover_text(hover);
    }
}

fn small(t: String, c: egui::Color32) -> RichText {
    RichText::new(t).size(12.0).color(c)
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
