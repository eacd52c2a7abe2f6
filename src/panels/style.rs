//! Style (coming next): neural style transfer with 26 blendable styles, or any image as style.

use super::preview::{self, PreviewPage};
use super::{Panel, PanelContext};
use crate::store::Page;
use crate::theme;

const PAGE: PreviewPage = PreviewPage {
    title: "Style",
    tagline: "Paint any picture in the manner of another.",
    about: "Neural style transfer redraws a photo with the brushwork, palette and texture of a \
            style. One network knows 26 styles and can blend them in any proportion; a second \
            pair of networks takes any image you give it as the style.",
    features: &[
        (
            "26 styles, blended",
            "Mix styles with sliders — half watercolour, half mosaic — and see the result update \
             as you drag.",
        ),
        (
            "Any image as style",
            "Drop in a painting, a texture or a photo, and use it as the style for another image.",
        ),
        (
            "Strength and size",
            "Choose how strongly the style applies and the output resolution, then export.",
        ),
        (
            "On your GPU",
            "Runs locally through the same engine as Write; nothing leaves your computer.",
        ),
    ],
    models: &[
        (
            "multistyle26.onnx",
            "Style network with 26 built-in styles (blendable)",
        ),
        (
            "arbitrary_predict.onnx",
            "Style predictor: any image to a style vector",
        ),
        (
            "arbitrary_transform.onnx",
            "Style transformer: applies a style vector to a photo",
        ),
    ],
};

/// The Style page.
#[derive(Default)]
pub struct StylePanel;

impl Panel for StylePanel {
    fn name(&self) -> &'static str {
        "Style"
    }

    fn page(&self) -> Page {
        Page::Style
    }

    fn is_preview(&self) -> bool {
        true
    }

    fn show(&mut self, ui: &mut egui::Ui, _cx: &mut PanelContext<'_>) {
        egui::CentralPanel::default()
            .frame(egui::Frame::new().fill(theme::BG))
            .show(ui, |ui| preview::show(ui, &PAGE, paint_swatches));
    }
}

/// Decoration: 26 swatches in two rows, one per built-in style.
fn paint_swatches(painter: &egui::Painter, rect: egui::Rect) {
    let n = 13;
    let gap = 6.0;
    let w = (rect.width() - gap * (n as f32 - 1.0)) / n as f32;
    let h = (rect.height() - gap) / 2.0;
    for row in 0..2 {
        for i in 0..n {
            let k = row * n + i;
            let hue = k as f32 / 26.0;
            let color = egui::ecolor::Hsva::new(hue, 0.38, 0.62, 1.0);
            let min = rect.min + egui::vec2(i as f32 * (w + gap), row as f32 * (h + gap));
            painter.rect_filled(
                egui::Rect::from_min_size(min, egui::vec2(w, h)),
                6.0,
                egui::Color32::from(color).gamma_multiply(0.75),
            );
        }
    }
}
