//! The pictures form: the folder (or dropped files), their contact sheet as they will be
//! trained on ([`super::preview`]), and the run's settings.

use egui::RichText;

use super::forms::Start;
use super::preview::Preview;
use super::state::{PICTURES_DIALOG, TrainPanel};
use crate::features::train::faces::PictureSource;
use crate::features::train::faces::pictures::MIN_PICTURES;
use crate::panels::{Command, DialogPurpose, PanelContext};
use crate::theme;

impl TrainPanel {
    /// Uses `source` for the next pictures run and loads its contact sheet.
    pub fn set_pictures(&mut self, source: PictureSource) {
        self.pictures.source = Some(source.clone());
        self.preview = Preview::load(source, self.pictures.background);
    }

    /// Files or a folder dropped on the page (not in the kiosk).
    pub(super) fn take_dropped(&mut self, ctx: &egui::Context, kiosk: bool) {
        let dropped: Vec<std::path::PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        if dropped.is_empty() || kiosk {
            return;
        }
        self.tab = super::state::Tab::Pictures;
        let source = match dropped.as_slice() {
            [one] if one.is_dir() => PictureSource::Folder(one.clone()),
            _ => PictureSource::Files(dropped),
        };
        self.set_pictures(source);
    }

    /// The pictures form.
    pub(super) fn pictures_form(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        theme::section_label(ui, "Pictures");
        let described = self
            .pictures
            .source
            .as_ref()
            .map_or_else(|| "No pictures chosen".to_string(), PictureSource::describe);
        ui.label(RichText::new(described).color(theme::TEXT_WEAK));
        ui.horizontal(|ui| {
            if !cx.kiosk && ui.button("Choose folder…").clicked() {
                cx.commands.push(Command::FileDialog {
                    purpose: DialogPurpose::Folder,
                    title: "Pictures to train on".into(),
                    filters: Vec::new(),
                    file_name: None,
                    tag: PICTURES_DIALOG,
                });
            }
            ui.label(RichText::new("or drop files here").color(theme::TEXT_FAINT));
        });
        ui.label(
            RichText::new(
                "PNG, JPEG or WebP of any size: each is centre-cropped to a square and resized \
                 to 64×64, the size the generator draws.",
            )
            .small()
            .color(theme::TEXT_FAINT),
        );
        ui.horizontal(|ui| {
            let label = ui.label("Transparent parts on");
            let mut colour = self.pictures.background;
            if ui
                .color_edit_button_srgb(&mut colour)
                .labelled_by(label.id)
                .changed()
            {
                self.pictures.background = colour;
                if let Some(source) = self.pictures.source.clone() {
                    self.preview = Preview::load(source, colour);
                }
            }
        });
        ui.add_space(theme::space::S);

        theme::section_label(ui, "Start from");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.pictures.start, Start::Faces, "The face model")
                .on_hover_text("Fine-tune the Faces generator: quickest to a good result");
            ui.selectable_value(&mut self.pictures.start, Start::Scratch, "Scratch")
                .on_hover_text(
                    "A new generator of the same architecture (needs thousands of steps)",
                );
        });
        ui.add_space(theme::space::S);

        theme::section_label(ui, "Settings");
        let f = &mut self.pictures;
        egui::Grid::new("train-pictures-settings")
            .num_columns(2)
            .spacing([theme::space::M, theme::space::XS])
            .show(ui, |ui| {
                super::fields::row(
                    ui,
                    "Steps",
                    egui::DragValue::new(&mut f.steps).range(1..=100_000),
                );
                super::fields::row(
                    ui,
                    "Batch",
                    egui::DragValue::new(&mut f.batch).range(1..=128),
                );
                super::fields::row(
                    ui,
                    "Learning rate",
                    egui::DragValue::new(&mut f.lr)
                        .range(1e-6..=1e-2)
                        .speed(1e-5)
                        .max_decimals(6),
                );
                super::fields::row(
                    ui,
                    "Checkpoint every",
                    egui::DragValue::new(&mut f.checkpoint_every).range(1..=10_000),
                );
                super::fields::row(
                    ui,
                    "Samples every",
                    egui::DragValue::new(&mut f.samples_every).range(1..=1_000),
                );
                super::fields::row(
                    ui,
                    "Cores",
                    egui::DragValue::new(&mut f.threads).range(1..=super::forms::cores()),
                );
                super::fields::row(ui, "Seed", egui::DragValue::new(&mut f.seed));
            });
        ui.checkbox(&mut f.augment, "Augmentation for small sets")
            .on_hover_text(
                "DiffAugment: colour, translation and cutout on real and generated pictures \
                 alike; without it a GAN memorises a small set",
            );
    }

    /// The contact sheet and what was skipped (the centre of the page before a run).
    pub(super) fn pictures_preview(&mut self, ui: &mut egui::Ui) {
        self.preview.poll();
        match &mut self.preview {
            Preview::Empty => {
                ui.label(
                    RichText::new(
                        "Choose a folder of your pictures — sketches, logos, emoji — or drop \
                         them here. The generator learns to draw them; then explore it in Faces.",
                    )
                    .color(theme::TEXT_WEAK),
                );
            }
            Preview::Loading(_) => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the pictures…");
                });
                ui.ctx()
                    .request_repaint_after(std::time::Duration::from_millis(100));
            }
            Preview::Failed(message) => {
                theme::notice_frame(theme::ERROR).show(ui, |ui| {
                    ui.label(RichText::new(message.as_str()).color(theme::ERROR));
                });
            }
            Preview::Loaded(loaded) => {
                if let Some(sheet) = loaded.sheet.take() {
                    loaded.texture = Some(ui.ctx().load_texture(
                        "train-contact-sheet",
                        sheet,
                        egui::TextureOptions::NEAREST,
                    ));
                }
                ui.label(
                    RichText::new(format!(
                        "{} pictures, as they will be trained on (64×64){}",
                        loaded.count,
                        if loaded.count > 256 {
                            " — the first 256 shown"
                        } else {
                            ""
                        }
                    ))
                    .color(theme::TEXT_WEAK),
                );
                if loaded.count < MIN_PICTURES {
                    ui.colored_label(
                        theme::ERROR,
                        format!("Training needs at least {MIN_PICTURES} pictures."),
                    );
                }
                if !loaded.skipped.is_empty() {
                    egui::CollapsingHeader::new(
                        RichText::new(format!("{} files skipped", loaded.skipped.len()))
                            .color(theme::WARN),
                    )
                    .id_salt("train-skipped")
                    .show(ui, |ui| {
                        for s in loaded.skipped.iter().take(200) {
                            ui.label(RichText::new(&s.reason).small().color(theme::TEXT_WEAK));
                        }
                    });
                }
                if let Some(tex) = &loaded.texture {
                    let side = ui.available_width().min(512.0);
                    let aspect = tex.size()[1] as f32 / tex.size()[0].max(1) as f32;
                    ui.add(
                        egui::Image::new(tex)
                            .fit_to_exact_size(egui::Vec2::new(side, side * aspect))
                            .corner_radius(6.0),
                    );
                }
            }
        }
    }
}
