//! The right side: strength, preserve-colour, the before/after divider, output size and
//! export.

use egui::RichText;

use super::export::StyleExport;
use super::state::{EXPORT_DIALOG, OUTPUT_SIZES, StylePanel};
use crate::panels::{Command, DialogPurpose, PanelContext};
use crate::theme::{self, icon, space};

impl StylePanel {
    pub(super) fn finish_controls(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.spacing_mut().item_spacing.y = 6.0;
        theme::section_label(ui, "Finish");
        ui.spacing_mut().slider_width = ui.available_width() - 64.0;
        ui.label(RichText::new("Strength").color(theme::TEXT));
        let mut percent = self.finish.strength * 100.0;
        let r = ui
            .add(
                egui::Slider::new(&mut percent, 0.0..=100.0)
                    .step_by(1.0)
                    .suffix("%")
                    .fixed_decimals(0),
            )
            .accessible_name("Strength");
        if r.changed() {
            self.set_strength(percent / 100.0);
        }
        ui.checkbox(
            &mut self.finish.preserve_colour,
            "Preserve original colours",
        )
        .on_hover_text("Keep the photo's colours and take only light and texture from the style");
        ui.checkbox(&mut self.split, "Before / after divider")
            .on_hover_text("Drag the divider across the image to compare");
        ui.label(
            RichText::new("Applied on the GPU as you drag: no re-render.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        ui.add_space(space::M);

        theme::section_label(ui, "Output size");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for side in OUTPUT_SIZES {
                let r = ui
                    .add(
                        egui::Button::selectable(self.max_side == side, format!("{side}"))
                            .min_size(egui::vec2(56.0, 28.0)),
                    )
                    .on_hover_text(format!("Longest side at most {side} pixels"))
                    .accessible_name(format!("Output {side} pixels"));
                if r.clicked() {
                    self.set_max_side(side);
                }
            }
        });
        ui.label(
            RichText::new("Longest side in pixels; large outputs run in tiles.")
                .size(12.0)
                .color(theme::TEXT_FAINT),
        );
        ui.add_space(space::M);

        // A kiosk has no file dialogs.
        if !cx.kiosk {
            self.export_controls(ui, cx);
        }

        theme::section_label(ui, "Result");
        match &self.shown {
            Some(s) => {
                let (w, h) = s.images.content.dimensions();
                let what = if s.preview { "Preview" } else { "Full size" };
                ui.label(RichText::new(format!("{what} · {w}×{h}")).color(theme::TEXT));
                let mut line = format!("rendered in {:.2} s", s.seconds);
                if s.tiles > 1 {
                    line.push_str(&format!(" · {} tiles", s.tiles));
                }
                ui.label(RichText::new(line).size(12.0).color(theme::TEXT_WEAK));
                if let Some(l) = self.last_latency {
                    ui.label(
                        RichText::new(format!(
                            "preview {:.0} ms after the last change",
                            l.as_secs_f64() * 1000.0
                        ))
                        .size(12.0)
                        .color(theme::TEXT_WEAK),
                    );
                }
                for n in &s.notes {
                    ui.label(
                        RichText::new(format!("{} {n}", icon::DOT))
                            .size(12.0)
                            .color(theme::TEXT_FAINT),
                    );
                }
            }
            None => {
                ui.label(RichText::new("Nothing rendered yet").color(theme::TEXT_FAINT));
            }
        }
    }

    /// Format, quality and the Export button.
    pub(super) fn export_controls(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        theme::section_label(ui, "Export");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            for (jpeg, label) in [(false, "PNG"), (true, "JPEG")] {
                if ui
                    .add(
                        egui::Button::selectable(self.jpeg == jpeg, label)
                            .min_size(egui::vec2(56.0, 28.0)),
                    )
                    .clicked()
                {
                    self.jpeg = jpeg;
                }
            }
        });
        if self.jpeg {
            // A label above, not `Slider::text`: beside the slider it overflows the panel.
            ui.label(RichText::new("Quality").size(12.0).color(theme::TEXT_WEAK));
            ui.add(egui::Slider::new(&mut self.jpeg_quality, 1..=100))
                .on_hover_text("JPEG quality: 90 is visually lossless for most pictures")
                .accessible_name("JPEG quality");
        }
        let format = if self.jpeg {
            StyleExport::Jpeg(self.jpeg_quality)
        } else {
            StyleExport::Png
        };
        let can = self.shown.is_some() && self.pending_export.is_none();
        let r = ui
            .add_enabled(
                can,
                theme::primary_button(&format!(
                    "{} Export {}…",
                    icon::EXPORT,
                    if self.jpeg { "JPEG" } else { "PNG" }
                ))
                .min_size(egui::vec2(ui.available_width(), 32.0)),
            )
            .on_hover_text("Saves the full-resolution result with the strength and colours shown");
        if r.clicked() {
            let stem = self
                .content
                .as_ref()
                .map(|c| {
                    std::path::Path::new(&c.name)
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "image".into())
                })
                .unwrap_or_else(|| "image".into());
            self.export_format = Some(format);
            cx.commands.push(Command::FileDialog {
                purpose: DialogPurpose::Save,
                title: "Export the styled picture".into(),
                filters: vec![(format.filter_name().into(), vec![format.extension().into()])],
                file_name: Some(format.file_name(&stem)),
                tag: EXPORT_DIALOG,
            });
        }
        if self.pending_export.is_some() {
            ui.label(
                RichText::new("Export waits for the full-size result…")
                    .size(12.0)
                    .color(theme::TEXT_WEAK),
            );
        }
        ui.add_space(space::M);
    }
}
