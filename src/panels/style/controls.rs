//! The left side: the content picture and the style (the gallery of presets or a style
//! image).

use std::time::Duration;

use egui::RichText;

use super::state::{FETCH_STYLE, StyleImageSlot, StyleMode, StylePanel};
use crate::models::stylenet::{MULTISTYLE_FILE, PREDICT_FILE, STYLE_COUNT, TRANSFORM_FILE};
use crate::panels::PanelContext;
use crate::theme::{self, icon, space};

impl StylePanel {
    pub(super) fn model_notice(&self, ui: &mut egui::Ui, what: &str, files: &[&str]) {
        theme::notice_frame(theme::WARN).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(
                RichText::new(format!("{} {what} not installed.", icon::WARNING))
                    .color(theme::WARN),
            );
            for f in files {
                ui.label(
                    RichText::new(format!("Looking for {}", self.models_dir.join(f).display()))
                        .size(12.0)
                        .color(theme::TEXT_WEAK),
                );
            }
            // The command on its own line: with its label it is wider than the panel.
            ui.label(RichText::new("Fetch with").color(theme::TEXT));
            ui.horizontal(|ui| {
                ui.label(RichText::new(FETCH_STYLE).monospace().color(theme::ACCENT));
                if ui.small_button("Copy").clicked() {
                    ui.ctx().copy_text(FETCH_STYLE.into());
                }
            });
        });
        ui.ctx().request_repaint_after(Duration::from_secs(2));
    }

    pub(super) fn controls(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.spacing_mut().item_spacing.y = 6.0;
        ui.label(RichText::new("Style").font(theme::strong(20.0)));
        ui.label(
            RichText::new("Neural style transfer · 26 styles, or any image")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        if let Some(err) = cx.engine_error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
        }
        ui.add_space(space::M);

        theme::section_label(ui, "Content");
        theme::card().show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal_top(|ui| {
                if let Some(t) = &self.content_thumb {
                    ui.add(
                        egui::Image::new(t)
                            .fit_to_exact_size(egui::vec2(64.0, 64.0))
                            .maintain_aspect_ratio(true)
                            .corner_radius(4),
                    );
                }
                ui.vertical(|ui| {
                    ui.spacing_mut().item_spacing.y = 4.0;
                    match &self.content {
                        Some(c) => {
                            ui.add(
                                egui::Label::new(RichText::new(&c.name).color(theme::TEXT))
                                    .truncate(),
                            );
                            let size = self
                                .shown
                                .as_ref()
                                .filter(|s| !s.preview)
                                .map(|s| s.images.content.dimensions());
                            let line = match size {
                                Some((w, h)) => format!("{w}×{h} output"),
                                None => "Rendering…".into(),
                            };
                            ui.label(RichText::new(line).size(12.0).color(theme::TEXT_WEAK));
                        }
                        None => {
                            ui.label(RichText::new("No picture yet").color(theme::TEXT_WEAK));
                        }
                    }
                    let label = if self.content.is_some() {
                        "Open another…"
                    } else {
                        "Open image…"
                    };
                    if !cx.kiosk && ui.button(label).clicked() {
                        self.ask_for_picture(StyleImageSlot::Content, cx);
                    }
                });
            });
            if !cx.kiosk {
                ui.label(
                    RichText::new("or drop a file anywhere, or paste with Ctrl+V")
                        .size(12.0)
                        .color(theme::TEXT_FAINT),
                );
            }
        });
        self.sample_picker(ui, cx);
        ui.add_space(space::M);

        theme::section_label(ui, "Style");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for (mode, label) in [
                (StyleMode::Presets, "Built-in styles"),
                (StyleMode::Image, "From an image"),
            ] {
                let r = ui.add(
                    egui::Button::selectable(self.mode == mode, label)
                        .min_size(egui::vec2(0.0, 28.0)),
                );
                if r.clicked() && self.mode != mode {
                    self.mode = mode;
                    self.changed();
                }
            }
        });
        ui.add_space(space::XS);
        match self.mode {
            StyleMode::Presets => self.presets_view(ui),
            StyleMode::Image => self.style_image_view(ui, cx),
        }
    }

    pub(super) fn presets_view(&mut self, ui: &mut egui::Ui) {
        if !self.model_present(MULTISTYLE_FILE) {
            self.model_notice(ui, "The 26-style network is", &[MULTISTYLE_FILE]);
            return;
        }
        let cols = 5;
        let gap = space::XS + 2.0;
        let side = ((ui.available_width() - gap * (cols as f32 - 1.0)) / cols as f32).floor();
        let mut clicked = None;
        egui::Grid::new("style-gallery")
            .spacing(egui::vec2(gap, gap))
            .show(ui, |ui| {
                for i in 0..STYLE_COUNT {
                    let (rect, r) =
                        ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::click());
                    // Numbered from 0, as `atelier style --style N` and the model number them.
                    let r = r.on_hover_text(format!(
                        "Style {i}: click to use it, Ctrl+click to blend it in"
                    ));
                    r.widget_info(|| {
                        egui::WidgetInfo::selected(
                            egui::Role::Button,
                            true,
                            self.mix.iter().any(|(k, _)| *k == i),
                            format!("Style {i}"),
                        )
                    });
                    let chosen = self.mix.iter().any(|(k, _)| *k == i);
                    let painter = ui.painter();
                    let radius = egui::CornerRadius::same(6);
                    match self.gallery.texture(i) {
                        Some(t) => {
                            egui::Image::new(t).corner_radius(radius).paint_at(ui, rect);
                        }
                        None => {
                            painter.rect_filled(rect, radius, theme::SURFACE);
                            painter.text(
                                rect.center(),
                                egui::Align2::CENTER_CENTER,
                                format!("{i}"),
                                egui::FontId::proportional(12.0),
                                theme::TEXT_FAINT,
                            );
                        }
                    }
                    let stroke = if chosen {
                        egui::Stroke::new(2.0, theme::ACCENT)
                    } else if r.hovered() {
                        egui::Stroke::new(1.0, theme::TEXT_WEAK)
                    } else {
                        egui::Stroke::new(1.0, theme::BORDER)
                    };
                    ui.painter()
                        .rect_stroke(rect, radius, stroke, egui::StrokeKind::Inside);
                    if r.clicked() {
                        clicked = Some((i, ui.input(|inp| inp.modifiers.command)));
                    }
                    if (i + 1) % cols == 0 {
                        ui.end_row();
                    }
                }
            });
        match clicked {
            Some((i, true)) => self.toggle_blend(i),
            Some((i, false)) => self.select_style(i),
            None => {}
        }
        let ready = self.gallery.ready();
        if ready < STYLE_COUNT && !self.gallery.failed {
            ui.label(
                RichText::new(format!("Rendering thumbnails… {ready} of {STYLE_COUNT}"))
                    .size(12.0)
                    .color(theme::TEXT_FAINT),
            );
        }
        ui.add_space(space::S);

        // The blend: one weight per chosen style.
        let blend = self.mix.len() > 1;
        theme::section_label(ui, if blend { "Blend" } else { "Chosen" });
        let total: f32 = self
            .mix
            .iter()
            .map(|(_, w)| *w)
            .sum::<f32>()
            .max(f32::EPSILON);
        let mut remove = None;
        let mut changed = false;
        ui.spacing_mut().slider_width = (ui.available_width() - 150.0).max(60.0);
        for (k, (index, weight)) in self.mix.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                if let Some(t) = self.gallery.texture(*index) {
                    ui.add(
                        egui::Image::new(t)
                            .fit_to_exact_size(egui::vec2(28.0, 28.0))
                            .corner_radius(4),
                    );
                }
                ui.label(RichText::new(format!("Style {index}")).color(theme::TEXT));
                if blend {
                    let r = ui
                        .add(
                            egui::Slider::new(weight, 0.0..=1.0)
                                .show_value(false)
                                .step_by(0.01),
                        )
                        .accessible_name(format!("Weight of style {index}"));
                    changed |= r.changed();
                    ui.label(
                        RichText::new(format!("{:.0}%", *weight / total * 100.0))
                            .size(12.0)
                            .color(theme::TEXT_WEAK),
                    );
                    if ui
                        .add(egui::Button::new(icon::CROSS).frame(false).small())
                        .accessible_name(format!("Remove style {index}"))
                        .clicked()
                    {
                        remove = Some(k);
                    }
                }
            });
        }
        if let Some(k) = remove {
            self.mix.remove(k);
            changed = true;
        }
        if self.mix.iter().all(|(_, w)| *w <= 0.0) {
            // All weights at zero is no style at all: keep the last one in.
            if let Some(first) = self.mix.first_mut() {
                first.1 = 0.01;
            }
        }
        if changed {
            self.changed();
        }
        ui.label(
            RichText::new("Ctrl+click more thumbnails to blend styles.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
    }

    pub(super) fn style_image_view(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        if !(self.model_present(PREDICT_FILE) && self.model_present(TRANSFORM_FILE)) {
            self.model_notice(
                ui,
                "The arbitrary-style networks are",
                &[PREDICT_FILE, TRANSFORM_FILE],
            );
            return;
        }
        theme::card().show(ui, |ui| {
            ui.set_width(ui.available_width());
            match &self.style_image {
                Some(p) => {
                    if let Some(t) = &self.style_thumb {
                        ui.add(
                            egui::Image::new(t)
                                .max_size(egui::vec2(ui.available_width(), 160.0))
                                .corner_radius(6),
                        );
                    }
                    ui.label(RichText::new(&p.name).color(theme::TEXT));
                }
                None => {
                    ui.label(
                        RichText::new(
                            "Any picture works as a style: a painting, a texture, a photo.",
                        )
                        .color(theme::TEXT_WEAK),
                    );
                }
            }
            // Stacked, full width: side by side they are wider than the panel.
            let wide = egui::vec2(ui.available_width(), 28.0);
            if !cx.kiosk
                && ui
                    .add(egui::Button::new("Choose style image…").min_size(wide))
                    .clicked()
            {
                self.ask_for_picture(StyleImageSlot::Style, cx);
            }
            if ui
                .add(egui::Button::new("Use the selected face").min_size(wide))
                .on_hover_text("The face selected on the Faces page")
                .clicked()
            {
                self.use_selected_face(cx);
            }
        });
    }

    /// In a kiosk: the kiosk's pictures to pick as the content (the only way a visitor
    /// chooses a picture there). Nothing outside a kiosk.
    pub(super) fn sample_picker(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        if !cx.kiosk || cx.samples.is_empty() {
            return;
        }
        if let Some(path) = self.samples.picker(ui, cx.samples) {
            self.set_content_path(path);
        }
    }
}
