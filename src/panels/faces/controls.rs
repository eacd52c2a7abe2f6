//! The left side: seed, grid size, truncation ψ and the principal-direction sliders (and
//! the notice when the generator is missing).

use egui::RichText;

use super::grid::face_tile;
use super::panel::Action;
use super::schedule::{strip_faces, trim_offsets};
use super::state::JobKind;
use super::state::{FETCH_FACES, FacesPanel, GRID_RANGE, OFFSET_RANGE, STRIP_OFFSETS, THUMB_SIZE};
use crate::features::faces::{DIRECTION_COUNT, PSI_RANGE};
use crate::panels::PanelContext;
use crate::theme::{self, icon, space};

impl FacesPanel {
    pub(super) fn missing_model(&mut self, ui: &mut egui::Ui) {
        ui.add_space(60.0);
        theme::centered_column(ui, 620.0, |ui| {
            ui.label(RichText::new("Faces").font(theme::strong(28.0)));
            ui.label(
                RichText::new("Explore the latent space of a 64×64 DCGAN face generator.")
                    .size(16.0)
                    .color(theme::TEXT_WEAK),
            );
            ui.add_space(space::L);
            theme::notice_frame(theme::WARN).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(
                    RichText::new(format!(
                        "{} The face generator is not installed.",
                        icon::WARNING
                    ))
                    .color(theme::WARN),
                );
                ui.label(
                    RichText::new(format!("Looking for {}", self.model.display()))
                        .size(12.5)
                        .color(theme::TEXT_WEAK),
                );
                ui.horizontal(|ui| {
                    ui.label(RichText::new("Fetch it with").color(theme::TEXT));
                    ui.label(RichText::new(FETCH_FACES).monospace().color(theme::ACCENT));
                    if ui.small_button("Copy").clicked() {
                        ui.ctx().copy_text(FETCH_FACES.into());
                    }
                });
                ui.label(
                    RichText::new(
                        "(run it in the project folder; it downloads gan-face-generate 1.1.1 \
                         from PyPI and checks its SHA-256). The page starts as soon as the file \
                         is there.",
                    )
                    .size(12.5)
                    .color(theme::TEXT_FAINT),
                );
            });
        });
        // Notice the file appearing without the user having to do anything.
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs(2));
    }

    pub(super) fn controls(
        &mut self,
        ui: &mut egui::Ui,
        cx: &PanelContext<'_>,
        actions: &mut Vec<Action>,
    ) {
        ui.spacing_mut().item_spacing.y = 6.0;
        ui.label(RichText::new("Faces").font(theme::strong(20.0)));
        let about = match &self.generator {
            Some(g) => format!(
                "DCGAN · 64×64 · {} parameters · {}",
                theme::thousands(g.parameters),
                g.path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            None => "DCGAN face generator · 64×64 pixels".into(),
        };
        ui.label(RichText::new(about).size(12.0).color(theme::TEXT_FAINT));
        if let Some(err) = cx.engine_error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
        }
        ui.add_space(space::M);

        theme::section_label(ui, "Seed");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let page = (self.grid * self.grid) as u64;
            let r = ui
                .add_enabled(
                    self.seed > 0,
                    egui::Button::new("←").min_size(egui::vec2(32.0, 28.0)),
                )
                .on_hover_text("Previous page of seeds")
                .accessible_name("Previous seeds");
            if r.clicked() {
                self.seed = self.seed.saturating_sub(page);
                actions.push(Action::Changed);
            }
            let r = ui
                .add(
                    egui::DragValue::new(&mut self.seed)
                        .range(0..=u32::MAX as u64)
                        .speed(1.0),
                )
                .on_hover_text("The first seed of the grid; each cell is the next seed")
                .accessible_name("Seed");
            if r.changed() {
                actions.push(Action::Changed);
            }
            let r = ui
                .add(egui::Button::new("→").min_size(egui::vec2(32.0, 28.0)))
                .on_hover_text("Next page of seeds")
                .accessible_name("Next seeds");
            if r.clicked() {
                self.seed = self.seed.saturating_add(page).min(u32::MAX as u64);
                actions.push(Action::Changed);
            }
            if theme::dice_button(ui, "Random seed")
                .on_hover_text("A random seed")
                .clicked()
            {
                self.seed = rand::random::<u32>() as u64;
                actions.push(Action::Changed);
            }
        });
        ui.add_space(space::S);

        theme::section_label(ui, "Grid");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for n in GRID_RANGE {
                let r = ui
                    .add(
                        egui::Button::selectable(self.grid == n, format!("{n}×{n}"))
                            .min_size(egui::vec2(46.0, 28.0)),
                    )
                    .accessible_name(format!("Grid {n} by {n}"));
                if r.clicked() && self.grid != n {
                    self.grid = n;
                    actions.push(Action::Changed);
                }
            }
        });
        ui.add_space(space::S);

        theme::section_label(ui, "Truncation ψ");
        ui.spacing_mut().slider_width = ui.available_width() - 70.0;
        let r = ui
            .add(
                egui::Slider::new(&mut self.psi, PSI_RANGE)
                    .step_by(0.01)
                    .fixed_decimals(2),
            )
            .accessible_name("Truncation psi");
        if r.changed() {
            let psi = self.psi;
            self.set_psi(psi);
        }
        ui.label(
            RichText::new(
                "Scales every latent toward the average face: 0 is the mean face, 1 the faces \
                 as sampled, above 1 more unusual.",
            )
            .size(12.0)
            .color(theme::TEXT_FAINT),
        );
        ui.add_space(space::M);
        self.directions_view(ui, actions);
    }

    pub(super) fn directions_view(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        theme::section_label(ui, "Directions");
        let Some(dirs) = self.directions.clone() else {
            let job = self
                .jobs
                .iter()
                .find(|j| matches!(j.kind.kind, JobKind::Directions));
            match job {
                Some(j) if j.total > 0 => {
                    ui.add(
                        egui::ProgressBar::new(j.done as f32 / j.total as f32)
                            .desired_height(6.0)
                            .fill(theme::ACCENT),
                    );
                    ui.label(
                        RichText::new(
                            "Finding the main directions of variation (PCA over 4,096 random \
                             faces). This runs once; the result is kept on disk.",
                        )
                        .size(12.0)
                        .color(theme::TEXT_FAINT),
                    );
                }
                Some(_) => {
                    ui.label(
                        RichText::new("Loading directions…")
                            .size(12.5)
                            .color(theme::TEXT_WEAK),
                    );
                }
                None => {
                    ui.label(
                        RichText::new("Directions are not available.")
                            .size(12.5)
                            .color(theme::TEXT_WEAK),
                    );
                }
            }
            return;
        };
        let Some(sel) = self.selected.clone() else {
            ui.label(
                RichText::new("Select a face to steer it along the model's main directions.")
                    .size(12.5)
                    .color(theme::TEXT_WEAK),
            );
            return;
        };
        ui.label(
            RichText::new("Each slider moves the selected face along one principal direction (in standard deviations); the strip shows −3σ … +3σ.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        let count = dirs.vectors.len().min(DIRECTION_COUNT);
        let strips = strip_faces(&sel, count);
        let mut offsets = sel.offsets.clone();
        offsets.resize(count, 0.0);
        let mut changed = false;
        for k in 0..count {
            ui.add_space(space::XS);
            ui.horizontal(|ui| {
                let explained = dirs.explained.get(k).copied().unwrap_or(0.0) * 100.0;
                let id = ui
                    .label(RichText::new(format!("{}", k + 1)).font(theme::strong(13.0)))
                    .on_hover_text(format!(
                        "Direction {} explains {explained:.1}% of the variation",
                        k + 1
                    ))
                    .id;
                ui.spacing_mut().slider_width = ui.available_width() - 64.0;
                let r = ui
                    .add(
                        egui::Slider::new(&mut offsets[k], OFFSET_RANGE)
                            .step_by(0.05)
                            .fixed_decimals(2),
                    )
                    .labelled_by(id)
                    .accessible_name(format!("Direction {}", k + 1));
                if r.changed() {
                    changed = true;
                }
                if r.double_clicked() {
                    offsets[k] = 0.0;
                    changed = true;
                }
            });
            // The strip: what this slider does to this face.
            let w = ui.available_width();
            let gap = 3.0;
            let cell = ((w - gap * 6.0) / 7.0).floor();
            ui.horizontal(|ui| {
                ui.spacing_mut().item_spacing.x = gap;
                for (j, face) in strips[k].iter().enumerate() {
                    let o = STRIP_OFFSETS[j];
                    let label = format!("Direction {} at {o:+.0}σ", k + 1);
                    let r = face_tile(
                        ui,
                        &self.thumbs,
                        face,
                        THUMB_SIZE,
                        egui::vec2(cell, cell),
                        (offsets[k] - o).abs() < 0.5,
                        &label,
                    );
                    if r.clicked() {
                        offsets[k] = o;
                        changed = true;
                    }
                }
            });
        }
        if changed {
            if let Some(s) = &mut self.selected {
                s.offsets = trim_offsets(offsets);
            }
            actions.push(Action::Changed);
        }
        if sel.has_offsets()
            && ui
                .button(format!("{} Reset directions", icon::RESET))
                .clicked()
        {
            if let Some(s) = &mut self.selected {
                s.offsets.clear();
            }
            actions.push(Action::Changed);
        }
    }
}
