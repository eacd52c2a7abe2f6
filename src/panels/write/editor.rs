//! The centre: the document editor, its keyboard shortcuts and undo (accepted suggestions
//! included), and where the cursor puts a generation.

use std::ops::Range;

use egui::text::{CCursor, CCursorRange};
use egui::{Key, Modifiers, RichText, TextStyle};

use super::state::DocAction;
use super::state::{GENERATE_SHORTCUT, WritePanel};
use crate::panels::PanelContext;
use crate::store::{ExportFormat, word_count};
use crate::theme::{self, icon, space};

impl WritePanel {
    pub(super) fn keyboard(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        // Consumed before the editor draws, so Ctrl+Enter never inserts a newline.
        if ui.input_mut(|i| i.consume_shortcut(&GENERATE_SHORTCUT)) && !self.is_generating() {
            self.generate(ui.ctx(), cx);
        }
        // Esc closes the word popup first; otherwise it stops. Any modifiers are accepted: a
        // stale Ctrl from Ctrl+Enter must not make Stop ignore the key.
        if self.inspected.is_none()
            && self.is_generating()
            && ui.input_mut(|i| {
                let m = i.modifiers;
                i.consume_key(m, Key::Escape)
            })
        {
            self.stop();
        }
        // With the editor focused, its own undoer handles Ctrl+Z (and sees accepted text, see
        // `accept`). Without focus — e.g. right after clicking Accept elsewhere — do it here.
        let nothing_focused = ui.ctx().memory(|m| m.focused().is_none());
        if nothing_focused {
            let redo = ui.input_mut(|i| {
                i.consume_key(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z)
                    || i.consume_key(Modifiers::COMMAND, Key::Y)
            });
            let undo = !redo && ui.input_mut(|i| i.consume_key(Modifiers::COMMAND, Key::Z));
            if undo || redo {
                self.undo_redo(ui.ctx(), cx, redo);
            }
        }
    }

    pub(super) fn undo_redo(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>, redo: bool) {
        let mut state = egui::TextEdit::load_state(ctx, self.editor_id).unwrap_or_default();
        let mut undoer = state.undoer();
        let text = cx.store.current().text.clone();
        let cursor = state
            .cursor
            .char_range()
            .unwrap_or_else(|| CCursorRange::one(CCursor::end_of_str(&text)));
        let current = (cursor, text);
        let restored = if redo {
            undoer.redo(&current).cloned()
        } else {
            undoer.undo(&current).cloned()
        };
        if let Some((range, text)) = restored {
            cx.store.current_mut().text = text;
            cx.store.mark_changed();
            state.cursor.set_char_range(Some(range));
            self.cursor = Some(range);
            state.set_undoer(undoer);
            egui::TextEdit::store_state(ctx, self.editor_id, state);
            self.focus_editor = true;
        }
    }

    pub(super) fn editor(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let doc_id = cx.store.current().id.clone();
        let text_len = cx.store.current().text.len();
        let words = match &self.words {
            Some((id, len, w)) if *id == doc_id && *len == text_len => *w,
            _ => {
                let w = word_count(&cx.store.current().text);
                self.words = Some((doc_id.clone(), text_len, w));
                w
            }
        };
        ui.add_space(space::XL);
        theme::centered_column(ui, 760.0, |ui| {
            let column = ui.available_width();
            // Header: title, word count, file actions.
            ui.horizontal(|ui| {
                let title_w = (column - 300.0).max(160.0);
                let r = ui.add(
                    egui::TextEdit::singleline(&mut cx.store.current_mut().title)
                        .id_salt("doc-title")
                        .hint_text("Untitled")
                        .font(theme::strong(22.0))
                        .frame(egui::Frame::NONE)
                        .desired_width(title_w),
                );
                let r = r.accessible_name("Document title");
                if r.changed() {
                    cx.store.mark_changed();
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    // A kiosk has no file dialogs (and nothing to save to).
                    if !cx.kiosk {
                        ui.menu_button(format!("Export {}", icon::CARET), |ui| {
                            if ui.button("Markdown (.md)…").clicked() {
                                self.doc_actions
                                    .push(DocAction::Export(ExportFormat::Markdown));
                                ui.close();
                            }
                            if ui.button("Plain text (.txt)…").clicked() {
                                self.doc_actions
                                    .push(DocAction::Export(ExportFormat::PlainText));
                                ui.close();
                            }
                        });
                        if ui
                            .button("Save As…")
                            .on_hover_text(match &cx.store.current().file {
                                Some(p) => {
                                    format!("Saved to {} — Ctrl+S saves there again", p.display())
                                }
                                None => "Save this document to a file of your choice".into(),
                            })
                            .clicked()
                        {
                            self.doc_actions.push(DocAction::SaveAs);
                        }
                    }
                    ui.label(
                        RichText::new(format!(
                            "{} word{}",
                            theme::thousands(words),
                            if words == 1 { "" } else { "s" }
                        ))
                        .color(theme::TEXT_FAINT)
                        .size(12.5),
                    );
                });
            });
            ui.add_space(space::S);
            egui::ScrollArea::vertical()
                .id_salt("editor-scroll")
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    let font = TextStyle::Name("editor".into());
                    let output = egui::TextEdit::multiline(&mut cx.store.current_mut().text)
                        .id(self.editor_id)
                        .font(font)
                        .hint_text("Start writing, or paste a draft…")
                        .frame(egui::Frame::NONE)
                        .desired_width(f32::INFINITY)
                        .desired_rows(18)
                        .lock_focus(true)
                        .show(ui);
                    let response = output.response.response.clone().accessible_name("Document");
                    if response.changed() {
                        cx.store.mark_changed();
                    }
                    if let Some(range) = output.cursor_range {
                        self.cursor = Some(range);
                    }
                    if self.focus_editor {
                        response.request_focus();
                        self.focus_editor = false;
                    }
                    // Mark where a pending suggestion will go, so the tray reads in place.
                    if let Some(s) = &self.suggestions
                        && s.anchor.doc_id == doc_id
                        && s.anchor.snapshot == cx.store.current().text
                    {
                        let galley_pos = output.galley_pos;
                        let r = output
                            .galley
                            .pos_from_cursor(CCursor::new(s.anchor.range.end))
                            .translate(galley_pos.to_vec2());
                        let marker = egui::Rect::from_min_size(
                            r.min + egui::vec2(1.0, 2.0),
                            egui::vec2(3.0, (r.height() - 4.0).max(8.0)),
                        );
                        ui.painter().rect_filled(marker, 1.5, theme::ACCENT);
                    }
                });
        });
    }

    /// The selected character range, if the editor has a non-empty selection.
    pub(super) fn selection(&self, text: &str) -> Option<Range<usize>> {
        let range = self.cursor?.as_sorted_char_range();
        let len = text.chars().count();
        let r = range.start.0.min(len)..range.end.0.min(len);
        (!r.is_empty()).then_some(r)
    }

    /// The insertion point: the cursor (or the end of the document if it was never placed).
    pub(super) fn insertion_point(&self, text: &str) -> usize {
        let len = text.chars().count();
        self.cursor.map_or(len, |c| c.primary.index.0.min(len))
    }
}
