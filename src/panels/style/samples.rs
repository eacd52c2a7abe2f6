//! The pictures a kiosk visitor may restyle (files are shut off there): the kiosk's gallery,
//! as thumbnails made once on a thread ("atelier-kiosk-samples").

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use egui::RichText;

use crate::theme::{self, space};

/// Side of a sample's thumbnail.
const SAMPLE_THUMB: u32 = 96;

/// The kiosk's pictures and their thumbnails.
#[derive(Default)]
pub(super) struct Samples {
    /// The files and their thumbnails, once made (a file that does not decode is left out).
    thumbs: Vec<(PathBuf, egui::TextureHandle)>,
    /// The thumbnails being made.
    loading: Option<Receiver<Vec<(PathBuf, egui::ColorImage)>>>,
    /// The pictures they were made for.
    made_for: Vec<PathBuf>,
}

impl Samples {
    /// Starts making thumbnails for `pictures` unless they are made or being made.
    pub(super) fn ensure(&mut self, pictures: &[PathBuf], ctx: &egui::Context) {
        if self.made_for == pictures {
            return;
        }
        self.made_for = pictures.to_vec();
        self.thumbs.clear();
        let (tx, rx) = std::sync::mpsc::channel();
        let list = pictures.to_vec();
        let wake = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("atelier-kiosk-samples".into())
            .spawn(move || {
                let thumbs = list
                    .into_iter()
                    .filter_map(|p| {
                        let loaded = crate::models::stylenet::image::load(&p).ok()?;
                        let img =
                            crate::models::stylenet::image::fit_within(&loaded.image, SAMPLE_THUMB)
                                .unwrap_or(loaded.image);
                        let color = egui::ColorImage::from_rgb(
                            [img.width() as usize, img.height() as usize],
                            img.as_raw(),
                        );
                        Some((p, color))
                    })
                    .collect();
                let _ = tx.send(thumbs);
                wake.request_repaint();
            });
        match spawned {
            Ok(_) => self.loading = Some(rx),
            Err(e) => tracing::warn!("cannot make the kiosk's sample thumbnails: {e}"),
        }
    }

    fn poll(&mut self, ctx: &egui::Context) {
        if let Some(rx) = &self.loading
            && let Ok(made) = rx.try_recv()
        {
            self.loading = None;
            self.thumbs = made
                .into_iter()
                .enumerate()
                .map(|(i, (p, img))| {
                    let tex = ctx.load_texture(
                        format!("kiosk-sample-{i}"),
                        img,
                        egui::TextureOptions::LINEAR,
                    );
                    (p, tex)
                })
                .collect();
        }
    }

    /// Draws the pictures as buttons under "Pick a picture"; returns the one clicked.
    pub(super) fn picker(&mut self, ui: &mut egui::Ui, pictures: &[PathBuf]) -> Option<PathBuf> {
        self.ensure(pictures, ui.ctx());
        self.poll(ui.ctx());
        ui.label(RichText::new("Pick a picture").color(theme::TEXT_WEAK));
        let mut picked = None;
        ui.horizontal_wrapped(|ui| {
            ui.spacing_mut().item_spacing = egui::vec2(space::S, space::S);
            for (path, tex) in &self.thumbs {
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let size = tex.size_vec2() * (64.0 / tex.size_vec2().max_elem().max(1.0));
                let r = ui
                    .add(egui::Button::image(egui::load::SizedTexture::new(
                        tex.id(),
                        size,
                    )))
                    .on_hover_text(&name)
                    .accessible_name(format!("Restyle the sample picture {name}"));
                if r.clicked() {
                    picked = Some(path.clone());
                }
            }
        });
        picked
    }
}
