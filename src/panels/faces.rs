//! Faces (coming next): exploring the latent space of a 64×64 DCGAN face generator.

use super::preview::{self, PreviewPage};
use super::{Panel, PanelContext};
use crate::store::Page;
use crate::theme;

const PAGE: PreviewPage = PreviewPage {
    title: "Faces",
    tagline: "Wander through the imagination of a face generator.",
    about: "A DCGAN (a deep convolutional generative adversarial network) turns a point in a \
            100-dimensional latent space into a 64×64 portrait. Nearby points give similar faces, \
            so moving through the space changes a face smoothly — age, light, pose, expression.",
    features: &[
        (
            "A grid of faces",
            "Generate a sheet of faces from random latent points; every face is reproducible \
             from its seed.",
        ),
        (
            "Walk between two faces",
            "Pick two faces and interpolate between their latent vectors to watch one become \
             the other, frame by frame.",
        ),
        (
            "Steer and keep",
            "Nudge a face along directions in the latent space with sliders, and keep the ones \
             you like as favourites.",
        ),
        (
            "On your GPU",
            "Runs locally through the same engine as Write, drawing straight into the window's \
             textures.",
        ),
    ],
    models: &[(
        "dcgan-weights.tar",
        "DCGAN generator weights (64×64 faces, latent size 100)",
    )],
};

/// The Faces page.
#[derive(Default)]
pub struct FacesPanel;

impl Panel for FacesPanel {
    fn name(&self) -> &'static str {
        "Faces"
    }

    fn page(&self) -> Page {
        Page::Faces
    }

    fn is_preview(&self) -> bool {
        true
    }

    fn show(&mut self, ui: &mut egui::Ui, _cx: &mut PanelContext<'_>) {
        egui::CentralPanel::default()
            .frame(egui::Frame::new().fill(theme::BG))
            .show(ui, |ui| preview::show(ui, &PAGE, paint_latent_grid));
    }
}

/// Decoration: a soft grid of tiles whose tints drift across it, like a latent walk.
fn paint_latent_grid(painter: &egui::Painter, rect: egui::Rect) {
    let cols = 12;
    let rows = 3;
    let gap = 8.0;
    let size = ((rect.width() - gap * (cols as f32 - 1.0)) / cols as f32)
        .min((rect.height() - gap * (rows as f32 - 1.0)) / rows as f32);
    for r in 0..rows {
        for c in 0..cols {
            let t = (c as f32 + r as f32 * 0.7) / (cols as f32 + rows as f32);
            let color = lerp(theme::SURFACE_HI, theme::ACCENT, (t * 0.8).powf(1.6));
            let min = rect.min + egui::vec2(c as f32 * (size + gap), r as f32 * (size + gap));
            let tile = egui::Rect::from_min_size(min, egui::vec2(size, size));
            painter.rect_filled(tile, 8.0, color.gamma_multiply(0.35 + 0.5 * t));
            painter.circle_filled(
                tile.center() - egui::vec2(0.0, size * 0.08),
                size * 0.2,
                theme::BG.gamma_multiply(0.35),
            );
        }
    }
}

fn lerp(a: egui::Color32, b: egui::Color32, t: f32) -> egui::Color32 {
    let t = t.clamp(0.0, 1.0);
    let m = |x: u8, y: u8| (x as f32 + (y as f32 - x as f32) * t).round() as u8;
    egui::Color32::from_rgb(m(a.r(), b.r()), m(a.g(), b.g()), m(a.b(), b.b()))
}
