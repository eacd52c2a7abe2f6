//! The centre: the result (with the divider) or, before a picture is open, the invitation
//! to drop one.

use std::time::Duration;

use egui::RichText;

use super::state::JobKind;
use super::state::{StyleImageSlot, StylePanel};
use crate::panels::PanelContext;
use crate::theme::{self, icon, space};

impl StylePanel {
    pub(super) fn result_view(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let hovering = ui.ctx().input(|i| !i.raw.hovered_files.is_empty());
        if let Some(err) = &self.error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.set_width(ui.available_width());
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
            ui.add_space(space::S);
        }
        let Some(shown) = &self.shown else {
            self.empty_view(ui, hovering, cx);
            return;
        };
        let avail = ui.available_rect_before_wrap();
        let footer = 28.0;
        let room = egui::vec2(avail.width(), (avail.height() - footer).max(64.0));
        let (w, h) = shown.images.content.dimensions();
        let scale = (room.x / w as f32).min(room.y / h as f32);
        let size = egui::vec2(w as f32 * scale, h as f32 * scale);
        // The image and its caption line form one block, centred in the area.
        let top = avail.top() + ((avail.height() - size.y - footer) / 2.0).max(0.0);
        let rect =
            egui::Rect::from_min_size(egui::pos2(avail.center().x - size.x / 2.0, top), size);
        let r = ui.allocate_rect(avail, egui::Sense::click_and_drag());
        if self.split
            && (r.dragged() || r.clicked())
            && let Some(p) = r.interact_pointer_pos()
        {
            self.split_pos = ((p.x - rect.left()) / rect.width()).clamp(0.0, 1.0);
        }
        let split = self.split.then_some(self.split_pos);
        ui.painter()
            .rect_filled(rect.expand(1.0), egui::CornerRadius::same(2), theme::BORDER);
        match cx.render_state {
            Some(rs) => super::finish::paint_gpu(ui, rect, rs, &shown.images, self.finish, split),
            None => self
                .cpu_view
                .paint(ui, rect, &shown.images, self.finish, split),
        }
        let painter = ui.painter();
        if let Some(s) = split {
            let x = rect.left() + rect.width() * s;
            painter.line_segment(
                [egui::pos2(x, rect.top()), egui::pos2(x, rect.bottom())],
                egui::Stroke::new(2.0, egui::Color32::WHITE),
            );
            let c = egui::pos2(x, rect.center().y);
            painter.circle(
                c,
                13.0,
                theme::PANEL,
                egui::Stroke::new(2.0, egui::Color32::WHITE),
            );
            painter.text(
                c,
                egui::Align2::CENTER_CENTER,
                "↔",
                egui::FontId::proportional(14.0),
                theme::TEXT,
            );
            for (text, align, pos) in [
                (
                    "Before",
                    egui::Align2::LEFT_TOP,
                    rect.left_top() + egui::vec2(10.0, 10.0),
                ),
                (
                    "After",
                    egui::Align2::RIGHT_TOP,
                    rect.right_top() + egui::vec2(-10.0, 10.0),
                ),
            ] {
                let galley = painter.layout_no_wrap(
                    text.into(),
                    egui::FontId::proportional(12.0),
                    theme::TEXT,
                );
                let bg = align
                    .anchor_size(pos, galley.size())
                    .expand2(egui::vec2(8.0, 3.0));
                painter.rect_filled(
                    bg,
                    egui::CornerRadius::same(10),
                    egui::Color32::from_black_alpha(150),
                );
                painter.galley(bg.min + egui::vec2(8.0, 3.0), galley, theme::TEXT);
            }
            if r.hovered() {
                ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
            }
        }
        if hovering {
            painter.rect_filled(
                rect,
                egui::CornerRadius::same(2),
                egui::Color32::from_black_alpha(140),
            );
            painter.text(
                rect.center(),
                egui::Align2::CENTER_CENTER,
                "Drop to open",
                theme::strong(18.0),
                theme::TEXT,
            );
        }

        // Footer: what is on screen, and the running job's progress.
        let footer_rect = egui::Rect::from_min_size(
            egui::pos2(rect.left(), rect.bottom() + 8.0),
            egui::vec2(rect.width().max(360.0), footer - 8.0),
        );
        let job = self.jobs.iter().find(|j| {
            matches!(j.kind.kind, JobKind::Preview | JobKind::Full) && !j.handle.is_cancelled()
        });
        let status = match (job, &self.loading_model) {
            (Some(_), Some(m)) => Some((format!("Loading {m}…"), None)),
            (Some(j), None) if j.kind.kind == JobKind::Full && j.total > 1 => Some((
                format!("Full size: step {} of {}", j.done, j.total),
                Some(j.done as f32 / j.total as f32),
            )),
            (Some(j), None) if j.kind.kind == JobKind::Full => {
                Some(("Rendering full size…".to_string(), None))
            }
            (Some(_), None) => Some(("Rendering preview…".to_string(), None)),
            (None, _) => None,
        };
        let mut child = ui.new_child(egui::UiBuilder::new().max_rect(footer_rect));
        child.horizontal(|ui| {
            let tag = if shown.preview {
                "Preview"
            } else {
                "Full size"
            };
            theme::pill(
                ui,
                tag,
                if shown.preview {
                    theme::WARN
                } else {
                    theme::OK
                },
            );
            let (w, h) = shown.images.content.dimensions();
            ui.label(
                RichText::new(format!("{w}×{h}"))
                    .size(12.0)
                    .color(theme::TEXT_WEAK),
            );
            if let Some((text, fraction)) = status {
                ui.add_space(space::M);
                match fraction {
                    Some(f) => {
                        ui.add(
                            egui::ProgressBar::new(f)
                                .desired_width(220.0)
                                .desired_height(8.0)
                                .fill(theme::ACCENT),
                        );
                    }
                    None => {
                        ui.add(egui::Spinner::new().size(14.0).color(theme::ACCENT));
                    }
                }
                ui.label(RichText::new(text).size(12.0).color(theme::TEXT_WEAK));
            }
        });
        if job.is_some() {
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
    }

    pub(super) fn empty_view(
        &mut self,
        ui: &mut egui::Ui,
        hovering: bool,
        cx: &mut PanelContext<'_>,
    ) {
        let avail = ui.available_rect_before_wrap();
        let zone = avail.shrink(space::XL);
        let stroke_color = if hovering {
            theme::ACCENT
        } else {
            theme::BORDER
        };
        ui.painter().rect(
            zone,
            egui::CornerRadius::same(theme::RADIUS),
            if hovering { theme::SURFACE } else { theme::BG },
            egui::Stroke::new(1.5, stroke_color),
            egui::StrokeKind::Inside,
        );
        let loading = self.content.is_some();
        let mut child = ui.new_child(
            egui::UiBuilder::new()
                .max_rect(egui::Rect::from_center_size(
                    zone.center(),
                    egui::vec2(420.0, 200.0),
                ))
                .layout(egui::Layout::top_down(egui::Align::Center)),
        );
        if loading {
            child.add(egui::Spinner::new().size(28.0).color(theme::ACCENT));
            let text = match &self.loading_model {
                Some(m) => format!("Loading {m}…"),
                None => "Rendering the preview…".into(),
            };
            child.label(RichText::new(text).color(theme::TEXT_WEAK));
            ui.ctx().request_repaint_after(Duration::from_millis(100));
            return;
        }
        if cx.kiosk {
            // Files are shut off on a kiosk: the visitor picks one of its pictures.
            child.label(RichText::new("Pick a picture to restyle").font(theme::strong(22.0)));
            child.add_space(space::M);
            self.sample_picker(&mut child, cx);
            return;
        }
        child.label(RichText::new("Drop a picture here").font(theme::strong(22.0)));
        child.label(
            RichText::new("PNG, JPEG, GIF or WebP · or paste one with Ctrl+V")
                .color(theme::TEXT_WEAK),
        );
        child.add_space(space::M);
        if !cx.kiosk
            && child
                .add(theme::primary_button("Open image…").min_size(egui::vec2(160.0, 34.0)))
                .clicked()
        {
            self.ask_for_picture(StyleImageSlot::Content, cx);
        }
    }
}
