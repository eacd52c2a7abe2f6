//! The window's chrome around the pages: the navigation bar, the toasts in the corner and the
//! kiosk's invitation banner.

use std::time::Duration;

use egui::RichText;

use crate::app::notice::{Notice, NoticeLevel};
use crate::app::page::Page;
use crate::theme::{self, icon, space};

/// A message in the corner.
pub(crate) struct Toast {
    /// What it says.
    pub notice: Notice,
    /// When it appeared (egui time, seconds), set on first draw.
    pub shown_at: Option<f64>,
}

/// Adds a toast unless the same message is already showing.
pub(crate) fn push_toast(toasts: &mut Vec<Toast>, notice: Notice) {
    if !toasts.iter().any(|t| t.notice == notice) {
        toasts.push(Toast {
            notice,
            shown_at: None,
        });
    }
}

/// Draws the navigation bar: one tab per page in `pages` (in order), `current` selected.
/// Returns the page the user clicked, if any.
pub(crate) fn top_bar(
    ui: &mut egui::Ui,
    pages: &[(Page, &'static str)],
    current: Page,
) -> Option<Page> {
    let mut clicked = None;
    egui::Panel::top("top-bar")
        .resizable(false)
        .exact_size(48.0)
        .frame(
            egui::Frame::new()
                .fill(theme::PANEL)
                .inner_margin(egui::Margin::symmetric(space::L as i8, 0)),
        )
        .show(ui, |ui| {
            ui.horizontal_centered(|ui| {
                let (r, _) = ui.allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::hover());
                ui.painter().circle_filled(r.center(), 6.0, theme::ACCENT);
                ui.label(RichText::new("Atelier").font(theme::strong(17.0)));
                ui.add_space(space::XL);
                for &(page, name) in pages {
                    let selected = page == current;
                    let text = RichText::new(name).font(if selected {
                        theme::strong(14.0)
                    } else {
                        egui::FontId::proportional(14.0)
                    });
                    let text = if selected {
                        text.color(theme::TEXT)
                    } else {
                        text.color(theme::TEXT_WEAK)
                    };
                    let r = ui.add(
                        egui::Button::new(text)
                            .frame_when_inactive(selected)
                            .selected(false)
                            .fill(if selected {
                                theme::SURFACE
                            } else {
                                egui::Color32::TRANSPARENT
                            })
                            .min_size(egui::vec2(64.0, 30.0)),
                    );
                    if selected {
                        let y = r.rect.bottom() + 7.0;
                        ui.painter().line_segment(
                            [
                                egui::pos2(r.rect.left() + 10.0, y),
                                egui::pos2(r.rect.right() - 10.0, y),
                            ],
                            egui::Stroke::new(2.0, theme::ACCENT),
                        );
                    }
                    if r.clicked() {
                        clicked = Some(page);
                    }
                }
            });
        });
    clicked
}

/// Draws the toasts in the corner and drops those whose time is up (errors stay until
/// dismissed).
pub(crate) fn draw_toasts(toasts: &mut Vec<Toast>, ctx: &egui::Context) {
    let now = ctx.input(|i| i.time);
    toasts.retain(|t| {
        let life = match t.notice.level {
            NoticeLevel::Info => 6.0,
            NoticeLevel::Warning => 14.0,
            NoticeLevel::Error => f64::INFINITY,
        };
        t.shown_at.is_none_or(|s| now - s < life)
    });
    if toasts.is_empty() {
        return;
    }
    let mut close = None;
    egui::Area::new(egui::Id::unique("toasts"))
        .order(egui::Order::Foreground)
        .anchor(egui::Align2::RIGHT_BOTTOM, egui::vec2(-space::L, -40.0))
        .show(ctx, |ui| {
            ui.set_max_width(380.0);
            for (i, t) in toasts.iter_mut().enumerate() {
                t.shown_at.get_or_insert(now);
                let color = match t.notice.level {
                    NoticeLevel::Info => theme::TEXT_WEAK,
                    NoticeLevel::Warning => theme::WARN,
                    NoticeLevel::Error => theme::ERROR,
                };
                egui::Frame::popup(ui.style())
                    .inner_margin(egui::Margin::same(12))
                    .show(ui, |ui| {
                        ui.horizontal_top(|ui| {
                            let mark = match t.notice.level {
                                NoticeLevel::Info => icon::CHECK,
                                _ => icon::WARNING,
                            };
                            ui.label(RichText::new(mark).color(color));
                            ui.add(
                                egui::Label::new(
                                    RichText::new(&t.notice.message)
                                        .size(13.0)
                                        .color(theme::TEXT),
                                )
                                .wrap(),
                            );
                            if ui
                                .add(egui::Button::new(icon::CROSS).frame(false).small())
                                .accessible_name("Dismiss message")
                                .clicked()
                            {
                                close = Some(i);
                            }
                        });
                    });
            }
        });
    if let Some(i) = close {
        toasts.remove(i);
    }
    ctx.request_repaint_after(Duration::from_millis(500));
}

/// The invitation shown over the attract loop's demos.
pub(crate) fn attract_banner(ctx: &egui::Context) {
    egui::Area::new(egui::Id::unique("kiosk-attract-banner"))
        .order(egui::Order::Foreground)
        .anchor(egui::Align2::CENTER_BOTTOM, egui::vec2(0.0, -56.0))
        .interactable(false)
        .show(ctx, |ui| {
            egui::Frame::popup(ui.style())
                .fill(theme::ACCENT)
                .inner_margin(egui::Margin::symmetric(28, 14))
                .show(ui, |ui| {
                    ui.label(
                        RichText::new("Touch anywhere to try it yourself")
                            .font(theme::strong(22.0))
                            .color(theme::ON_ACCENT),
                    );
                });
        });
}
