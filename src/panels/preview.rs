//! The shared layout of pages that are designed but not built yet ("coming next"): what the
//! page will do, in plain words, and whether its model files are already on disk. Nothing on
//! such a page pretends to work.

use egui::RichText;

use crate::theme::{self, icon, space};

/// What a coming page says about itself.
pub struct PreviewPage {
    /// Page title.
    pub title: &'static str,
    /// One-line promise.
    pub tagline: &'static str,
    /// A paragraph on how it works.
    pub about: &'static str,
    /// What the writer/designer will be able to do.
    pub features: &'static [(&'static str, &'static str)],
    /// Model files (in `models/`) the page will run, with a short description each.
    pub models: &'static [(&'static str, &'static str)],
}

/// Draws a coming-next page centred in `ui`; `art` paints a small decorative header.
pub fn show(ui: &mut egui::Ui, page: &PreviewPage, art: impl FnOnce(&egui::Painter, egui::Rect)) {
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.add_space(40.0);
            theme::centered_column(ui, 680.0, |ui| {
                let column = ui.available_width();
                let (rect, _) =
                    ui.allocate_exact_size(egui::vec2(column, 120.0), egui::Sense::hover());
                art(ui.painter(), rect);
                ui.add_space(space::L);
                ui.horizontal(|ui| {
                    ui.label(RichText::new(page.title).font(theme::strong(28.0)));
                    theme::pill(ui, &format!("{} Coming next", icon::STAR), theme::ACCENT);
                });
                ui.label(
                    RichText::new(page.tagline)
                        .size(17.0)
                        .color(theme::TEXT_WEAK),
                );
                ui.add_space(space::M);
                ui.add(
                    egui::Label::new(RichText::new(page.about).size(14.5).color(theme::TEXT))
                        .wrap(),
                );
                ui.add_space(space::L);
                theme::section_label(ui, "What it will do");
                for (head, body) in page.features {
                    theme::card().show(ui, |ui| {
                        ui.set_width(ui.available_width());
                        ui.label(RichText::new(*head).font(theme::strong(14.0)));
                        ui.add(
                            egui::Label::new(
                                RichText::new(*body).color(theme::TEXT_WEAK).size(13.0),
                            )
                            .wrap(),
                        );
                    });
                }
                ui.add_space(space::L);
                theme::section_label(ui, "Models");
                for (file, what) in page.models {
                    let path = crate::paths::models_dir().join(file);
                    let (state, color) = match std::fs::metadata(&path) {
                        Ok(m) => (
                            format!("{} on disk · {}", icon::CHECK, theme::human_bytes(m.len())),
                            theme::OK,
                        ),
                        Err(_) => (
                            format!("missing · run {}", crate::paths::FETCH_COMMAND),
                            theme::WARN,
                        ),
                    };
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(*file).monospace().color(theme::TEXT));
                        ui.label(RichText::new(state).size(12.0).color(color));
                    });
                    ui.label(RichText::new(*what).size(12.5).color(theme::TEXT_FAINT));
                }
                ui.add_space(space::L);
                ui.label(
                    RichText::new(
                        "This page describes what is being built. Nothing on it runs yet; \
                             Write is ready today.",
                    )
                    .italics()
                    .size(12.5)
                    .color(theme::TEXT_FAINT),
                );
                ui.add_space(space::XL);
            });
        });
}
