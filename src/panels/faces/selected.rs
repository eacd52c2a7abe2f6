//! The right side: the selected face, large, with favourite, copy and export actions.

use egui::RichText;
use image::imageops::FilterType;

use super::export::{FaceExport, PNG_SIZES};
use super::panel::Action;
use super::state::{FacesPanel, PREVIEW_SIZE};
use super::thumbs::face_key;
use super::walk::MAX_KEYS;
use crate::features::faces::PREVIEW_FILTER;
use crate::panels::PanelContext;
use crate::theme::{self, icon, space};

impl FacesPanel {
    pub(super) fn selected_view(
        &mut self,
        ui: &mut egui::Ui,
        cx: &PanelContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.spacing_mut().item_spacing.y = 6.0;
        let side = ui.available_width().min(PREVIEW_SIZE as f32).floor();
        let walk_tex = if self.walk.showing {
            self.walk.texture_id()
        } else {
            None
        };
        ui.horizontal(|ui| {
            theme::section_label(
                ui,
                if walk_tex.is_some() {
                    "Latent walk"
                } else {
                    "Selected"
                },
            );
            if let Some(sel) = &self.selected
                && walk_tex.is_none()
            {
                let mut bits = Vec::new();
                if let Some(s) = sel.seed {
                    bits.push(format!("seed {s}"));
                }
                bits.push(format!("ψ {:.2}", sel.psi));
                let edits = sel.offsets.iter().filter(|o| **o != 0.0).count();
                if edits > 0 {
                    bits.push(format!(
                        "{edits} direction edit{}",
                        if edits == 1 { "" } else { "s" }
                    ));
                }
                ui.label(
                    RichText::new(bits.join(" · "))
                        .size(12.5)
                        .color(theme::TEXT_WEAK),
                );
            }
        });
        let (rect, _) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
        let tex = match (walk_tex, &self.selected) {
            (Some(id), _) => Some(id),
            (None, Some(sel)) => self.thumbs.get(face_key(sel), PREVIEW_SIZE).map(|t| t.id()),
            (None, None) => None,
        };
        match tex {
            Some(id) => {
                egui::Image::from_texture(egui::load::SizedTexture::new(id, rect.size()))
                    .corner_radius(theme::RADIUS)
                    .paint_at(ui, rect);
            }
            None => {
                ui.painter()
                    .rect_filled(rect, theme::RADIUS, theme::SURFACE);
                ui.painter().text(
                    rect.center(),
                    egui::Align2::CENTER_CENTER,
                    if self.selected.is_some() {
                        "Rendering…"
                    } else {
                        "Click a face in the grid"
                    },
                    egui::FontId::proportional(14.0),
                    theme::TEXT_FAINT,
                );
            }
        }
        ui.label(
            RichText::new(format!(
                "The model draws 64×64 pixels; this view is upscaled {}× with {}.",
                PREVIEW_SIZE / 64,
                filter_name(PREVIEW_FILTER)
            ))
            .size(11.5)
            .color(theme::TEXT_FAINT),
        )
        .on_hover_text(
            "Catmull–Rom is bicubic: sharper than bilinear, without the pixel blocks of nearest \
             neighbour or the halos Lanczos rings around high-contrast edges like eyes.",
        );

        // Actions on the selected face.
        let has_sel = self.selected.is_some();
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let starred = match (&self.selected, &self.favourites) {
                (Some(s), Some(f)) => f.find(s).is_some(),
                _ => false,
            };
            let (text, color) = if starred {
                (format!("{} Starred", icon::STAR), theme::ACCENT)
            } else {
                (format!("{} Favourite", icon::STAR), theme::TEXT)
            };
            let r = ui
                .add_enabled(has_sel, egui::Button::new(RichText::new(text).color(color)))
                .on_hover_text(if starred {
                    "Remove from favourites"
                } else {
                    "Keep this face (seed, ψ and direction edits) across restarts"
                });
            if r.clicked() {
                actions.push(Action::ToggleStar);
            }
            let r = ui
                .add_enabled(
                    has_sel && self.walk.keys.len() < MAX_KEYS,
                    egui::Button::new(format!("{} Keyframe", icon::PLUS)),
                )
                .on_hover_text("Add this face to the latent walk");
            if r.clicked()
                && let Some(s) = &self.selected
            {
                actions.push(Action::AddKey(s.clone()));
            }
            // A kiosk has no file dialogs.
            if !cx.kiosk {
                ui.menu_button(format!("Export {}", icon::CARET), |ui| {
                    for s in PNG_SIZES {
                        if ui
                            .add_enabled(has_sel, egui::Button::new(format!("PNG {s}×{s}…")))
                            .clicked()
                        {
                            actions.push(Action::Export(FaceExport::Png(s)));
                            ui.close();
                        }
                    }
                    if ui
                        .add_enabled(
                            self.walk.keys.len() >= 2,
                            egui::Button::new("Walk as animated GIF…"),
                        )
                        .clicked()
                    {
                        actions.push(Action::Export(FaceExport::Gif));
                        ui.close();
                    }
                    ui.separator();
                    if ui
                        .add_enabled(
                            self.preview_image.is_some() && has_sel,
                            egui::Button::new("Copy image"),
                        )
                        .on_hover_text(
                            "Copies the 512×512 preview (where the system clipboard takes images)",
                        )
                        .clicked()
                    {
                        actions.push(Action::Copy);
                        ui.close();
                    }
                });
            }
        });
        ui.add_space(space::M);
        self.walk_view(ui, cx, actions);
    }
}

/// The filter's name for people.
pub(super) fn filter_name(f: FilterType) -> &'static str {
    match f {
        FilterType::Nearest => "nearest neighbour",
        FilterType::Triangle => "bilinear filtering",
        FilterType::CatmullRom => "Catmull–Rom (bicubic)",
        FilterType::Gaussian => "a Gaussian filter",
        FilterType::Lanczos3 => "Lanczos3",
    }
}
