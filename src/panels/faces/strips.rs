//! The bottom: each direction's example strip, favourites and the history.

use egui::RichText;

use super::grid::face_tile;
use super::panel::Action;
use super::state::{FacesPanel, THUMB_SIZE};
use super::thumbs::face_key;
use crate::features::faces::{FaceSpec, Favourite};
use crate::theme::{self, icon, space};

impl FacesPanel {
    pub(super) fn strips_view(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        let tile = egui::vec2(52.0, 52.0);
        let selected_key = self.selected.as_ref().map(face_key);
        theme::section_label(ui, "Favourites");
        let favs: Vec<Favourite> = self.favourites().to_vec();
        egui::ScrollArea::horizontal()
            .id_salt("faces-favourites")
            .auto_shrink([false, true])
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.set_min_height(tile.y);
                    if favs.is_empty() {
                        ui.label(
                            RichText::new(format!(
                                "Star a face ({} Favourite) to keep it here across restarts.",
                                icon::STAR
                            ))
                            .size(12.5)
                            .color(theme::TEXT_FAINT),
                        );
                    }
                    for f in &favs {
                        let label = match f.face.seed {
                            Some(s) => format!("Favourite seed {s}"),
                            None => format!("Favourite {}", f.id),
                        };
                        let r = face_tile(
                            ui,
                            &self.thumbs,
                            &f.face,
                            THUMB_SIZE,
                            tile,
                            selected_key == Some(face_key(&f.face)),
                            &label,
                        );
                        if r.clicked() {
                            actions.push(Action::Select(f.face.clone()));
                        }
                        r.context_menu(|ui| {
                            if ui.button("Add to walk").clicked() {
                                actions.push(Action::AddKey(f.face.clone()));
                                ui.close();
                            }
                            if ui.button("Remove from favourites").clicked() {
                                actions.push(Action::Unstar(f.id));
                                ui.close();
                            }
                        });
                    }
                });
            });
        ui.add_space(space::XS);
        theme::section_label(ui, "History");
        let history: Vec<FaceSpec> = self.history.newest_first().cloned().collect();
        egui::ScrollArea::horizontal()
            .id_salt("faces-history")
            .auto_shrink([false, true])
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.set_min_height(tile.y);
                    if history.is_empty() {
                        ui.label(
                            RichText::new("The last 50 faces you select appear here.")
                                .size(12.5)
                                .color(theme::TEXT_FAINT),
                        );
                    }
                    for (i, face) in history.iter().enumerate() {
                        let label = match face.seed {
                            Some(s) => format!("History {} seed {s}", i + 1),
                            None => format!("History {}", i + 1),
                        };
                        let r = face_tile(
                            ui,
                            &self.thumbs,
                            face,
                            THUMB_SIZE,
                            tile,
                            selected_key == Some(face_key(face)),
                            &label,
                        );
                        if r.clicked() {
                            actions.push(Action::Select(face.clone()));
                        }
                    }
                });
            });
    }
}
