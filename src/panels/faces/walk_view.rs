//! The latent walk's controls and live view.

use egui::RichText;

use super::grid::face_tile;
use super::panel::Action;
use super::state::{FacesPanel, THUMB_SIZE};
use super::walk::{FPS_CHOICES, MAX_KEYS, pacing_line};
use crate::panels::PanelContext;
use crate::theme::{self, icon, space};

impl FacesPanel {
    pub(super) fn walk_view(
        &mut self,
        ui: &mut egui::Ui,
        cx: &PanelContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        theme::section_label(ui, "Latent walk");
        let keys = self.walk.keys.len();
        if keys == 0 {
            ui.label(
                RichText::new(
                    "Add 2–8 keyframes (select a face, then + Keyframe, or right-click a face) \
                     and play a looping walk that glides between them.",
                )
                .size(12.5)
                .color(theme::TEXT_WEAK),
            );
        }
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for (i, key) in self.walk.keys.iter().enumerate() {
                let label = match key.seed {
                    Some(s) => format!("Keyframe {} (seed {s})", i + 1),
                    None => format!("Keyframe {}", i + 1),
                };
                let r = face_tile(
                    ui,
                    &self.thumbs,
                    key,
                    THUMB_SIZE,
                    egui::vec2(44.0, 44.0),
                    false,
                    &label,
                )
                .on_hover_text("Click to remove from the walk");
                if r.clicked() {
                    actions.push(Action::RemoveKey(i));
                }
            }
        });
        let playing = self.walk.is_playing();
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            if playing {
                if ui.button(format!("{} Stop", icon::STOP)).clicked() {
                    actions.push(Action::Stop);
                }
                let paused = self.walk.control.is_paused();
                if ui
                    .button(if paused {
                        format!("{} Resume", icon::PLAY)
                    } else {
                        "Pause".to_string()
                    })
                    .clicked()
                {
                    self.walk.control.set_paused(!paused);
                }
            } else {
                let r = ui
                    .add_enabled(
                        (2..=MAX_KEYS).contains(&keys) && cx.engine.is_some(),
                        theme::primary_button(&format!("{} Play walk", icon::PLAY)),
                    )
                    .on_disabled_hover_text("Needs 2 to 8 keyframes");
                if r.clicked() {
                    actions.push(Action::Play);
                }
            }
            ui.label(RichText::new("fps").size(12.0).color(theme::TEXT_WEAK));
            for fps in FPS_CHOICES {
                let r = ui
                    .add(egui::Button::selectable(
                        self.walk.fps == fps,
                        format!("{fps:.0}"),
                    ))
                    .accessible_name(format!("{fps:.0} frames per second"));
                if r.clicked() && self.walk.fps != fps {
                    self.walk.fps = fps;
                    if playing {
                        actions.push(Action::Play);
                    }
                }
            }
        });
        ui.spacing_mut().slider_width = ui.available_width() - 130.0;
        let mut speed = self.walk.control.speed();
        let r = ui
            .add(
                egui::Slider::new(&mut speed, 0.05..=2.0)
                    .text("keys/s")
                    .fixed_decimals(2),
            )
            .accessible_name("Walk speed");
        if r.changed() {
            self.walk.control.set_speed(speed);
        }
        if keys >= 2 {
            let mut pos = if playing {
                self.walk.position
            } else {
                self.walk.control.position()
            };
            let r = ui
                .add(
                    egui::Slider::new(&mut pos, 0.0..=keys as f64)
                        .text("position")
                        .fixed_decimals(2),
                )
                .accessible_name("Walk position");
            if r.changed() {
                self.walk.control.seek(pos.rem_euclid(keys as f64));
            }
        }
        if let Some(p) = &self.walk.pacing {
            ui.label(
                RichText::new(pacing_line(p))
                    .size(11.5)
                    .color(theme::TEXT_WEAK),
            )
            .on_hover_text(
                "Measured on the worker as each frame reaches the texture: intervals between \
                 frames (p50, p95; jitter = p95 − p50), and the time to render, upscale and \
                 upload one frame.",
            );
        } else if playing {
            ui.label(
                RichText::new("Starting…")
                    .size(11.5)
                    .color(theme::TEXT_FAINT),
            );
        }
    }
}
