//! The centre: the grid of consecutive seeds, filling in as samples arrive.

use egui::RichText;

use super::panel::Action;
use super::state::FacesPanel;
use super::thumbs::{Thumbs, face_key};
use crate::features::faces::FaceSpec;
use crate::panels::PanelContext;
use crate::theme::{self, icon, space};

impl FacesPanel {
    pub(super) fn grid_view(
        &mut self,
        ui: &mut egui::Ui,
        cx: &PanelContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        if let Some(err) = self.error.clone() {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.add(
                        egui::Label::new(
                            RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR),
                        )
                        .wrap(),
                    );
                    if ui
                        .add(egui::Button::new(icon::CROSS).frame(false).small())
                        .accessible_name("Dismiss error")
                        .clicked()
                    {
                        self.error = None;
                    }
                });
            });
            ui.add_space(space::S);
        }
        if cx.engine.is_none() {
            return;
        }
        let n = self.grid;
        let count = n * n;
        let filled = self.grid_filled();
        let header = 28.0;
        let avail = ui.available_size();
        let side = (avail.x.min(avail.y - header - space::S)).max(160.0);
        theme::centered_column(ui, side, |ui| {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!(
                        "Seeds {}–{}",
                        self.seed,
                        self.seed + count as u64 - 1
                    ))
                    .font(theme::strong(15.0)),
                );
                ui.label(
                    RichText::new(format!("ψ {:.2}", self.psi))
                        .size(13.0)
                        .color(theme::TEXT_WEAK),
                );
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let text = if filled < count {
                        format!("{filled}/{count} rendered")
                    } else {
                        "Click a face to select it".into()
                    };
                    ui.label(RichText::new(text).size(12.5).color(theme::TEXT_FAINT));
                });
            });
            let gap = 6.0;
            let cell = ((side - gap * (n as f32 - 1.0)) / n as f32).floor();
            let size = self.cell_px();
            let selected_key = self.selected.as_ref().map(face_key);
            egui::Grid::new("faces-grid")
                .spacing([gap, gap])
                .show(ui, |ui| {
                    for r in 0..n {
                        for c in 0..n {
                            let i = r * n + c;
                            let Some(face) = self.grid_faces.get(i) else {
                                continue;
                            };
                            let seed = self.seed + i as u64;
                            let is_selected = selected_key.is_some_and(|k| {
                                self.selected
                                    .as_ref()
                                    .is_some_and(|s| s.seed == Some(seed) && k == face_key(s))
                                    || k == face_key(face)
                            });
                            let resp = face_tile(
                                ui,
                                &self.thumbs,
                                face,
                                size,
                                egui::vec2(cell, cell),
                                is_selected,
                                &format!("Seed {seed}"),
                            );
                            if cell >= 90.0 {
                                let p = resp.rect.left_bottom() + egui::vec2(6.0, -6.0);
                                let galley = ui.painter().layout_no_wrap(
                                    seed.to_string(),
                                    egui::FontId::proportional(11.0),
                                    theme::TEXT,
                                );
                                let bg = egui::Rect::from_min_size(
                                    p - egui::vec2(0.0, galley.size().y + 2.0),
                                    galley.size() + egui::vec2(8.0, 2.0),
                                );
                                ui.painter().rect_filled(
                                    bg,
                                    4.0,
                                    egui::Color32::from_black_alpha(150),
                                );
                                ui.painter().galley(
                                    bg.min + egui::vec2(4.0, 1.0),
                                    galley,
                                    theme::TEXT,
                                );
                            }
                            if resp.clicked() {
                                actions.push(Action::Select(face.clone()));
                            }
                            let face = face.clone();
                            resp.context_menu(|ui| {
                                if ui.button("Add to walk").clicked() {
                                    actions.push(Action::AddKey(face.clone()));
                                    ui.close();
                                }
                            });
                        }
                        ui.end_row();
                    }
                });
        });
    }
}

/// A clickable face: its texture (or a placeholder while it renders), rounded, outlined in
/// the accent when selected. `label` is its accessible name.
pub(super) fn face_tile(
    ui: &mut egui::Ui,
    thumbs: &Thumbs,
    face: &FaceSpec,
    size: u32,
    display: egui::Vec2,
    selected: bool,
    label: &str,
) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(display, egui::Sense::click());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, ui.is_enabled(), label));
    if !ui.is_rect_visible(rect) {
        return response;
    }
    let radius = if display.x >= 80.0 { 6.0 } else { 4.0 };
    match thumbs.get(face_key(face), size) {
        Some(tex) => {
            egui::Image::from_texture(egui::load::SizedTexture::new(tex.id(), display))
                .corner_radius(radius)
                .paint_at(ui, rect);
        }
        None => {
            ui.painter().rect_filled(rect, radius, theme::SURFACE);
        }
    }
    let stroke = if selected {
        Some(egui::Stroke::new(2.5, theme::ACCENT))
    } else if response.hovered() {
        Some(egui::Stroke::new(1.5, theme::TEXT_WEAK))
    } else {
        None
    };
    if let Some(s) = stroke {
        ui.painter()
            .rect_stroke(rect, radius, s, egui::StrokeKind::Inside);
    }
    response
}
