//! The popup of one generated word: the alternatives the model weighed, with probabilities,
//! to swap one in.

use egui::{FontId, RichText};

use super::suggestions::{Inspected, Suggestions};
use crate::models::llm::TokenAlternative;

use crate::theme::{self, icon};

/// Shows whitespace in a token so " the", "the" and "\n" look different in the popup.
pub fn visible_token(text: &str) -> String {
    if text.is_empty() {
        return "∅".into();
    }
    text.chars()
        .map(|ch| match ch {
            ' ' => '␣',
            '\n' => '↵',
            '\t' => '→',
            c => c,
        })
        .collect()
}

/// What happened to the token popup this frame.
#[derive(Clone, Debug, PartialEq)]
pub enum PopupOutcome {
    /// Still open.
    Open,
    /// Closed (click outside, Esc, or the token is gone).
    Close,
    /// The user picked this alternative.
    Swap(TokenAlternative),
}

/// The popup listing the alternatives the model weighed at one token. `just_opened`: the click
/// that opened it happened this frame (so it is not a click outside).
pub fn token_popup(
    ctx: &egui::Context,
    s: &Suggestions,
    at: Inspected,
    just_opened: bool,
) -> PopupOutcome {
    let Some(token) = s
        .candidates
        .get(at.candidate)
        .and_then(|c| c.tokens.get(at.token))
    else {
        return PopupOutcome::Close;
    };
    let mut chosen = None;
    let area = egui::Area::new(egui::Id::unique("token-popup"))
        .order(egui::Order::Foreground)
        .fixed_pos(at.rect.left_bottom() + egui::vec2(0.0, 6.0))
        .constrain(true)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style())
                .inner_margin(egui::Margin::same(12))
                .show(ui, |ui| {
                    ui.set_width(280.0);
                    ui.horizontal(|ui| {
                        ui.label(
                            RichText::new(visible_token(&token.text))
                                .font(theme::strong(15.0))
                                .color(theme::ACCENT),
                        );
                        let likely = if token.logprob.is_nan() {
                            "probability not reported".to_string()
                        } else {
                            format!("{:.1}% likely", token.logprob.exp() * 100.0)
                        };
                        ui.label(RichText::new(likely).color(theme::TEXT_WEAK).size(12.0));
                    });
                    // Remote tokens have no ids: alternatives are shown by text, and swapping
                    // (which continues from token ids) needs the local engine.
                    let remote = s.request.remote.is_some();
                    let same = |a: &TokenAlternative| {
                        if remote {
                            a.text == token.text
                        } else {
                            a.id == token.id
                        }
                    };
                    ui.label(
                        RichText::new("What the model weighed here:")
                            .color(theme::TEXT_FAINT)
                            .size(12.0),
                    );
                    ui.add_space(2.0);
                    let mut alts: Vec<TokenAlternative> = token.top.clone();
                    if !alts.iter().any(same) && !token.logprob.is_nan() {
                        alts.push(TokenAlternative {
                            id: token.id,
                            text: token.text.clone(),
                            logprob: token.logprob,
                        });
                    }
                    for alt in &alts {
                        let is_current = same(alt);
                        let p = alt.logprob.exp();
                        let row = alt_row(ui, alt, p, is_current);
                        if row.clicked() && !is_current && !remote {
                            chosen = Some(alt.clone());
                        }
                    }
                    ui.add_space(4.0);
                    let note = if remote {
                        "Swapping a word needs the local engine: a server continues from text, \
                         not from the model's tokens."
                    } else {
                        "Picking another word keeps the text up to it and rewrites the rest."
                    };
                    ui.label(RichText::new(note).color(theme::TEXT_FAINT).size(11.5));
                });
        });
    let clicked_outside = !just_opened
        && ctx.input(|i| i.pointer.any_click())
        && ctx
            .input(|i| i.pointer.interact_pos())
            .is_some_and(|p| !area.response.rect.contains(p) && !at.rect.contains(p));
    if let Some(alt) = chosen {
        return PopupOutcome::Swap(alt);
    }
    if clicked_outside || ctx.input(|i| i.key_pressed(egui::Key::Escape)) {
        return PopupOutcome::Close;
    }
    PopupOutcome::Open
}

pub(super) fn alt_row(
    ui: &mut egui::Ui,
    alt: &TokenAlternative,
    p: f32,
    is_current: bool,
) -> egui::Response {
    let height = 26.0;
    let (rect, response) = ui.allocate_exact_size(
        egui::vec2(ui.available_width(), height),
        egui::Sense::click(),
    );
    let label = if is_current {
        format!("“{}” (chosen, {:.1}%)", alt.text, p * 100.0)
    } else {
        format!("Use “{}” ({:.1}%)", alt.text, p * 100.0)
    };
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, label.clone()));
    if ui.is_rect_visible(rect) {
        let painter = ui.painter();
        if response.hovered() && !is_current {
            painter.rect_filled(rect, 4.0, theme::SURFACE_HI);
        }
        // Probability bar behind the text.
        let bar = egui::Rect::from_min_size(
            rect.min + egui::vec2(0.0, height - 4.0),
            egui::vec2(rect.width() * p.clamp(0.0, 1.0), 3.0),
        );
        painter.rect_filled(
            bar,
            1.5,
            if is_current {
                theme::ACCENT
            } else {
                theme::TEXT_FAINT
            },
        );
        let text_color = if is_current {
            theme::ACCENT
        } else {
            theme::TEXT
        };
        let mark = if is_current { icon::CHECK } else { " " };
        painter.text(
            rect.left_center() + egui::vec2(4.0, -2.0),
            egui::Align2::LEFT_CENTER,
            format!("{mark} {}", visible_token(&alt.text)),
            FontId::proportional(14.0),
            text_color,
        );
        painter.text(
            rect.right_center() + egui::vec2(-4.0, -2.0),
            egui::Align2::RIGHT_CENTER,
            format!("{:.1}%", p * 100.0),
            FontId::monospace(12.0),
            theme::TEXT_WEAK,
        );
    }
    if !is_current {
        ui.ctx().set_cursor_icon(if response.hovered() {
            egui::CursorIcon::PointingHand
        } else {
            egui::CursorIcon::Default
        });
    }
    response
}
