//! The sampling controls of the Write panel: temperature (0 = greedy), top-k, top-p, min-p,
//! repetition penalty and its window, seed (with a dice), max new tokens, and a reset.

use egui::{RichText, Slider};

use crate::models::llm::{GenerateParams, SamplingParams};
use crate::theme::{self, icon};

/// A label for a control, with an explanation on hover; returns its id for `labelled_by`.
fn row_label(ui: &mut egui::Ui, text: &str, help: &str) -> egui::Id {
    ui.label(RichText::new(text).color(theme::TEXT_WEAK))
        .on_hover_text(help)
        .id
}

/// Draws the controls; returns whether anything changed.
pub fn show(ui: &mut egui::Ui, params: &mut GenerateParams) -> bool {
    let before = params.clone();
    let s: &mut SamplingParams = &mut params.sampling;
    // Leave room for the label column, the value box and the scroll bar.
    let slider_width = (ui.available_width() - 175.0).max(90.0);
    ui.spacing_mut().slider_width = slider_width;
    egui::Grid::new("sampling-grid")
        .num_columns(2)
        .spacing([theme::space::S, theme::space::XS])
        .show(ui, |ui| {
            let id = row_label(
                ui,
                "Temperature",
                "How adventurous the choice of each word is. 0 always takes the most likely \
                 token (greedy), so the same prompt gives the same text.",
            );
            ui.add(
                Slider::new(&mut s.temperature, 0.0..=2.0)
                    .step_by(0.05)
                    .fixed_decimals(2),
            )
            .labelled_by(id);
            ui.end_row();

            let id = row_label(
                ui,
                "Top-k",
                "Only the k most likely tokens are considered. 0 turns it off.",
            );
            ui.add(Slider::new(&mut s.top_k, 0..=200)).labelled_by(id);
            ui.end_row();

            let id = row_label(
                ui,
                "Top-p",
                "Only the most likely tokens whose probabilities add up to p are considered. \
                 1 turns it off.",
            );
            ui.add(
                Slider::new(&mut s.top_p, 0.05..=1.0)
                    .step_by(0.01)
                    .fixed_decimals(2),
            )
            .labelled_by(id);
            ui.end_row();

            let id = row_label(
                ui,
                "Min-p",
                "Tokens less likely than min-p times the most likely one are dropped. \
                 0 turns it off.",
            );
            ui.add(
                Slider::new(&mut s.min_p, 0.0..=0.5)
                    .step_by(0.01)
                    .fixed_decimals(2),
            )
            .labelled_by(id);
            ui.end_row();

            let id = row_label(
                ui,
                "Repetition",
                "Penalty on tokens used recently, against loops. 1 turns it off.",
            );
            ui.add(
                Slider::new(&mut s.repeat_penalty, 1.0..=2.0)
                    .step_by(0.01)
                    .fixed_decimals(2),
            )
            .labelled_by(id);
            ui.end_row();

            let id = row_label(
                ui,
                "Window",
                "How many recent tokens the repetition penalty looks at.",
            );
            ui.add(
                egui::DragValue::new(&mut s.repeat_last_n)
                    .range(0..=2048)
                    .speed(1.0)
                    .suffix(" tokens"),
            )
            .labelled_by(id);
            ui.end_row();

            let id = row_label(
                ui,
                "Seed",
                "Starts the random stream: the same seed and settings give the same text. \
                 Alternative n uses seed + n − 1.",
            );
            ui.horizontal(|ui| {
                ui.add(egui::DragValue::new(&mut s.seed).speed(1.0))
                    .labelled_by(id);
                if theme::dice_button(ui, "Random seed")
                    .on_hover_text("Pick a random seed")
                    .clicked()
                {
                    s.seed = rand::random::<u32>() as u64;
                }
            });
            ui.end_row();

            let id = row_label(
                ui,
                "Max tokens",
                "The longest suggestion, in tokens (a token is about ¾ of a word).",
            );
            ui.add(Slider::new(&mut params.max_new_tokens, 1..=1024).logarithmic(true))
                .labelled_by(id);
            ui.end_row();
        });
    ui.add_space(theme::space::XS);
    let is_default = *params == GenerateParams::default();
    if ui
        .add_enabled(
            !is_default,
            egui::Button::new(format!("{} Reset to defaults", icon::RESET)),
        )
        .on_hover_text(defaults_summary())
        .clicked()
    {
        *params = GenerateParams::default();
    }
    *params != before
}

/// The defaults in words, for the reset button's tooltip.
fn defaults_summary() -> String {
    let d = GenerateParams::default();
    let s = &d.sampling;
    format!(
        "Temperature {}, top-k {}, top-p {}, min-p {}, repetition {} over {} tokens, seed {}, \
         {} tokens",
        s.temperature,
        s.top_k,
        s.top_p,
        s.min_p,
        s.repeat_penalty,
        s.repeat_last_n,
        s.seed,
        d.max_new_tokens
    )
}
