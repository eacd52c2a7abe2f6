//! The Write panel: a writer's assistant around a plain document editor.
//!
//! Left: the document list. Centre: the editor, and under it the suggestion tray
//! ([`super::suggestions`]). Right: the assistant — model, mode (Continue / Instruct with quick
//! actions), alternatives, Generate/Stop, sampling.
//!
//! The document is only changed by the writer: typing, or accepting a suggestion. Accepting
//! pushes the previous text onto the editor's own undo history, so Ctrl+Z undoes an accepted
//! generation like any edit (egui's undoer never sees programmatic edits by itself).

use std::ops::Range;

use egui::text::{CCursor, CCursorRange};
use egui::{FontId, Key, KeyboardShortcut, Modifiers, RichText, TextStyle};

use super::remote::RemotePanel;
use super::suggestions::{
    self, Anchor, InsertKind, Inspected, PopupOutcome, Suggestions, TrayAction,
};
use super::{Command, Panel, PanelContext, model_picker, sampling};
use crate::engine::{Event, JobId, WriteRequest};
use crate::models::llm::context::WriteTask;
use crate::store::{ExportFormat, Page, WriteMode, word_count};
use crate::theme::{self, icon, space};

/// Ctrl+Enter: generate.
pub const GENERATE_SHORTCUT: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);

/// How many alternatives per token the UI asks for (the popup lists them).
const POPUP_ALTERNATIVES: usize = 8;

/// The quick actions of Instruct mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InstructAction {
    /// Continue the document in its own style and voice.
    #[default]
    ContinueInStyle,
    /// Rewrite the selected passage.
    RewriteSelection,
    /// Follow a free instruction.
    Free,
}

impl InstructAction {
    fn label(self) -> &'static str {
        match self {
            Self::ContinueInStyle => "Continue in this style",
            Self::RewriteSelection => "Rewrite the selection",
            Self::Free => "Free instruction",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::ContinueInStyle => {
                "Writes what comes next at the cursor, in the document's voice."
            }
            Self::RewriteSelection => "Rewrites the selected passage; the instruction says how.",
            Self::Free => "Anything: a title, a summary, ideas. The answer goes in at the cursor.",
        }
    }
}

/// The Write panel's UI state (the document itself lives in the store).
pub struct WritePanel {
    editor_id: egui::Id,
    /// The editor's last known cursor/selection (kept while focus is elsewhere).
    cursor: Option<CCursorRange>,
    suggestions: Option<Suggestions>,
    inspected: Option<Inspected>,
    /// The frame the popup was opened in (its opening click is not a click outside).
    inspected_since: u64,
    action: InstructAction,
    /// A problem with the request itself (nothing was sent), shown under Generate.
    request_error: Option<String>,
    /// (document id, text length, words) so counting runs only when the text changes.
    words: Option<(String, usize, usize)>,
    focus_editor: bool,
    /// Generate on the next frame (the kiosk's attract loop asks, see
    /// [`Self::request_generate`]).
    generate_requested: bool,
    /// The remote engine's settings section.
    remote: RemotePanel,
}

impl Default for WritePanel {
    fn default() -> Self {
        Self {
            editor_id: egui::Id::unique("write-document"),
            cursor: None,
            suggestions: None,
            inspected: None,
            inspected_since: 0,
            action: InstructAction::default(),
            request_error: None,
            words: None,
            focus_editor: true,
            generate_requested: false,
            remote: RemotePanel::default(),
        }
    }
}

impl Panel for WritePanel {
    fn name(&self) -> &'static str {
        "Write"
    }

    fn page(&self) -> Page {
        Page::Write
    }

    fn show(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        if std::mem::take(&mut self.generate_requested) && !self.is_generating() {
            self.generate(ui.ctx(), cx);
        }
        self.keyboard(ui, cx);
        egui::Panel::left("write-documents")
            .resizable(false)
            .exact_size(232.0)
            .frame(
                egui::Frame::new()
                    .fill(theme::PANEL)
                    .inner_margin(egui::Margin::same(space::M as i8)),
            )
            .show(ui, |ui| self.documents(ui, cx));
        egui::Panel::right("write-assistant")
            .resizable(false)
            .exact_size(348.0)
            .frame(theme::side_panel())
            .show(ui, |ui| {
                egui::ScrollArea::vertical()
                    .id_salt("assistant-scroll")
                    .auto_shrink([false, false])
                    .show(ui, |ui| self.assistant(ui, cx));
            });
        if self.suggestions.is_some() {
            egui::Panel::bottom("write-tray")
                .resizable(true)
                .default_size(380.0)
                .min_size(160.0)
                .max_size((ui.available_height() * 0.7).max(200.0))
                .frame(
                    egui::Frame::new()
                        .fill(theme::BG)
                        .inner_margin(egui::Margin::symmetric(space::XL as i8, space::M as i8)),
                )
                .show(ui, |ui| self.tray(ui, cx));
        }
        egui::CentralPanel::default()
            .frame(egui::Frame::new().fill(theme::BG))
            .show(ui, |ui| self.editor(ui, cx));
        self.token_popup(ui, cx);
    }
}

impl WritePanel {
    /// Whether this panel's job is `job` (the app routes engine events by job id).
    pub fn owns(&self, job: JobId) -> bool {
        self.suggestions.as_ref().is_some_and(|s| s.job_id() == job) || self.remote.owns(job)
    }

    /// Applies an engine event of this panel's job.
    pub fn on_event(&mut self, event: Event) {
        if self.remote.owns(event.job()) {
            self.remote.on_event(event);
            return;
        }
        if let Some(s) = &mut self.suggestions
            && s.job_id() == event.job()
        {
            s.on_event(event);
        }
    }

    /// The suggestions on screen, if any (for the status bar and tests).
    pub fn suggestions(&self) -> Option<&Suggestions> {
        self.suggestions.as_ref()
    }

    /// Whether a generation is queued or running.
    pub fn is_generating(&self) -> bool {
        self.suggestions
            .as_ref()
            .is_some_and(Suggestions::is_running)
    }

    /// The texts of the candidates on screen (for tests and the status bar).
    pub fn candidate_texts(&self) -> Vec<String> {
        self.suggestions
            .as_ref()
            .map(|s| s.candidates.iter().map(|c| c.text.clone()).collect())
            .unwrap_or_default()
    }

    /// The cursor the next request will use (None: the end of the document).
    pub fn set_cursor(&mut self, ctx: &egui::Context, range: CCursorRange) {
        self.cursor = Some(range);
        let mut state = egui::TextEdit::load_state(ctx, self.editor_id).unwrap_or_default();
        state.cursor.set_char_range(Some(range));
        egui::TextEdit::store_state(ctx, self.editor_id, state);
    }

    /// Generates at the cursor on the next frame, as the Generate button does.
    pub fn request_generate(&mut self) {
        self.generate_requested = true;
    }

    /// Stops the running job, if any (Esc, the Stop button).
    pub fn stop(&mut self) {
        if let Some(s) = &mut self.suggestions {
            s.stop();
        }
    }

    fn keyboard(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
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

    fn undo_redo(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>, redo: bool) {
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

    // ---------------------------------------------------------------------------------------
    // Documents

    fn documents(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.horizontal(|ui| {
            theme::section_label(ui, "Documents");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .add(egui::Button::new(format!("{} New", icon::PLUS)).small())
                    .on_hover_text("New document (Ctrl+N)")
                    .clicked()
                {
                    cx.commands.push(Command::NewDocument);
                }
            });
        });
        ui.add_space(space::XS);
        let current = cx.store.current().id.clone();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        egui::ScrollArea::vertical()
            .id_salt("documents-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                ui.spacing_mut().item_spacing.y = 2.0;
                for doc in cx.store.documents() {
                    let selected = doc.id == current;
                    let mut title = doc.display_title();
                    if title.chars().count() > 26 {
                        title =
                            format!("{}…", title.chars().take(25).collect::<String>().trim_end());
                    }
                    let mut job = egui::text::LayoutJob::default();
                    job.append(
                        &title,
                        0.0,
                        egui::TextFormat::simple(
                            if selected {
                                theme::strong(13.5)
                            } else {
                                FontId::proportional(13.5)
                            },
                            theme::TEXT,
                        ),
                    );
                    job.append(
                        &format!("\n{}", relative_time(now, doc.modified)),
                        0.0,
                        egui::TextFormat::simple(FontId::proportional(11.5), theme::TEXT_FAINT),
                    );
                    let r = ui
                        .add(
                            egui::Button::selectable(selected, job)
                                .min_size(egui::vec2(ui.available_width(), 40.0)),
                        )
                        .accessible_name(format!("Open document {}", doc.display_title()));
                    if r.clicked() && !selected {
                        cx.commands.push(Command::OpenDocument(doc.id.clone()));
                    }
                    let id = doc.id.clone();
                    r.context_menu(|ui| {
                        if ui.button("Move to trash").clicked() {
                            cx.commands.push(Command::DeleteDocument(id.clone()));
                            ui.close();
                        }
                    });
                }
            });
    }

    /// Called by the app when another document is opened: suggestions belong to the old one.
    pub fn document_switched(&mut self) {
        if let Some(s) = &mut self.suggestions {
            s.stop();
        }
        self.suggestions = None;
        self.inspected = None;
        self.cursor = None;
        self.words = None;
        self.request_error = None;
        self.focus_editor = true;
    }

    // ---------------------------------------------------------------------------------------
    // Editor

    fn editor(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
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
                                cx.commands.push(Command::Export(ExportFormat::Markdown));
                                ui.close();
                            }
                            if ui.button("Plain text (.txt)…").clicked() {
                                cx.commands.push(Command::Export(ExportFormat::PlainText));
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
                            cx.commands.push(Command::SaveAs);
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

    // ---------------------------------------------------------------------------------------
    // Assistant

    fn assistant(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        ui.spacing_mut().item_spacing.y = 6.0;
        if let Some(err) = cx.engine_error {
            theme::notice_frame(theme::ERROR).show(ui, |ui| {
                ui.label(RichText::new(format!("{} {err}", icon::WARNING)).color(theme::ERROR));
            });
        }
        // Visitors at a kiosk do not reconfigure the engine: it is set in the settings file.
        if !cx.kiosk {
            RemotePanel::engine_choice(ui, &mut cx.store.settings.remote);
        }
        let remote = cx.store.settings.remote.enabled;
        if remote && cx.kiosk {
            ui.label(
                RichText::new(format!("Writing on {}", cx.store.settings.remote.base_url))
                    .color(theme::TEXT_WEAK),
            );
        } else if remote {
            self.remote
                .show(ui, &mut cx.store.settings.remote, cx.engine);
        } else {
            model_picker::show(
                ui,
                cx.model,
                &cx.store.settings.recent_models,
                cx.commands,
                cx.kiosk,
            );
        }
        ui.add_space(space::S);

        // Mode.
        theme::section_label(ui, "Mode");
        let chat_missing = !remote && cx.model.lacks_chat_template();
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let w = (ui.available_width() - space::XS) / 2.0;
            let settings = &mut cx.store.settings;
            for (mode, label) in [
                (WriteMode::Continue, "Continue"),
                (WriteMode::Instruct, "Instruct"),
            ] {
                let enabled = !(mode == WriteMode::Instruct && chat_missing);
                let r = ui
                    .add_enabled(
                        enabled,
                        egui::Button::selectable(settings.mode == mode, label)
                            .min_size(egui::vec2(w, 30.0)),
                    )
                    .on_disabled_hover_text(
                        "This model has no chat template (it is a base model): it can only \
                         continue text.",
                    );
                if r.clicked() {
                    settings.mode = mode;
                }
            }
        });
        let mode = if chat_missing {
            WriteMode::Continue
        } else {
            cx.store.settings.mode
        };
        match mode {
            WriteMode::Continue => {
                ui.label(
                    RichText::new(
                        "Continues the document from the cursor: the text before it is the \
                         prompt. Works with any model.",
                    )
                    .color(theme::TEXT_WEAK)
                    .size(12.5),
                );
                if chat_missing {
                    let name =
                        model_picker::display_name(&cx.model.selected, cx.model.loaded.as_ref());
                    theme::notice_frame(theme::TEXT_WEAK).show(ui, |ui| {
                        ui.add(
                            egui::Label::new(
                                RichText::new(format!(
                                    "{name} is a base model without a chat template, so \
                                     Instruct is off. Choose SmolLM2 135M Instruct for \
                                     instructions."
                                ))
                                .color(theme::TEXT_WEAK)
                                .size(12.0),
                            )
                            .wrap(),
                        );
                    });
                }
            }
            WriteMode::Instruct => self.instruct_actions(ui, cx),
        }

        ui.add_space(space::S);
        theme::section_label(ui, "Alternatives");
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = space::XS;
            let w = (ui.available_width() - 3.0 * space::XS) / 4.0;
            for n in 1..=4usize {
                let r = ui
                    .add(
                        egui::Button::selectable(cx.store.settings.candidates == n, n.to_string())
                            .min_size(egui::vec2(w, 28.0)),
                    )
                    .accessible_name(format!("{n} alternative{}", if n == 1 { "" } else { "s" }));
                if r.clicked() {
                    cx.store.settings.candidates = n;
                }
            }
        });

        ui.add_space(space::S);
        self.generate_button(ui, cx, mode);

        ui.add_space(space::M);
        let open = cx.store.settings.show_sampling;
        let header =
            egui::CollapsingHeader::new(RichText::new("Sampling").font(theme::strong(13.0)))
                .id_salt("sampling-header")
                .default_open(open)
                .show(ui, |ui| {
                    sampling::show(ui, &mut cx.store.settings.params);
                });
        let now_open = header.body_returned.is_some();
        if now_open != open {
            cx.store.settings.show_sampling = now_open;
        }
    }

    fn instruct_actions(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        for action in [
            InstructAction::ContinueInStyle,
            InstructAction::RewriteSelection,
            InstructAction::Free,
        ] {
            let selected = self.action == action;
            let mut job = egui::text::LayoutJob::default();
            job.append(
                action.label(),
                0.0,
                egui::TextFormat::simple(
                    if selected {
                        theme::strong(13.5)
                    } else {
                        FontId::proportional(13.5)
                    },
                    theme::TEXT,
                ),
            );
            job.append(
                &format!("\n{}", action.help()),
                0.0,
                egui::TextFormat::simple(FontId::proportional(11.5), theme::TEXT_FAINT),
            );
            job.wrap.max_width = ui.available_width() - 24.0;
            let r = ui.add(
                egui::Button::selectable(selected, job)
                    .wrap()
                    .min_size(egui::vec2(ui.available_width(), 40.0)),
            );
            let r = r.accessible_name(action.label());
            if r.clicked() {
                self.action = action;
                self.request_error = None;
            }
        }
        if self.action != InstructAction::ContinueInStyle {
            let hint = match self.action {
                InstructAction::RewriteSelection => {
                    "How? e.g. more vivid, shorter, in the past tense"
                }
                _ => "e.g. Suggest a title for this story",
            };
            let label = ui.label(
                RichText::new("Instruction")
                    .color(theme::TEXT_WEAK)
                    .size(12.5),
            );
            let r = ui.add(
                egui::TextEdit::multiline(&mut cx.store.settings.instruction)
                    .id_salt("instruction")
                    .hint_text(hint)
                    .desired_rows(3)
                    .desired_width(f32::INFINITY),
            );
            r.labelled_by(label.id);
        }
        if self.action == InstructAction::RewriteSelection {
            let sel = self.selection(&cx.store.current().text);
            let text = match sel {
                Some(r) => format!("{} characters selected", theme::thousands(r.len())),
                None => "Select a passage in the document first.".into(),
            };
            ui.label(RichText::new(text).color(theme::TEXT_FAINT).size(12.0));
        }
    }

    fn generate_button(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>, mode: WriteMode) {
        let full = egui::vec2(ui.available_width(), 36.0);
        if self.is_generating() {
            let stopping = self
                .suggestions
                .as_ref()
                .is_some_and(|s| s.phase == suggestions::Phase::Stopping);
            let r = ui
                .add_enabled(
                    !stopping,
                    egui::Button::new(
                        RichText::new(format!("{}  Stop", icon::STOP)).font(theme::strong(14.0)),
                    )
                    .shortcut_text("Esc")
                    .min_size(full),
                )
                .accessible_name("Stop");
            if r.clicked() {
                self.stop();
            }
        } else {
            let label = match mode {
                WriteMode::Continue => "Continue",
                WriteMode::Instruct => "Generate",
            };
            let r = ui
                .add_enabled(
                    cx.engine.is_some(),
                    theme::primary_button(&format!("{}  {label}", icon::PLAY))
                        .shortcut_text(
                            RichText::new("Ctrl+Enter").color(theme::ON_ACCENT.gamma_multiply(0.7)),
                        )
                        .min_size(full),
                )
                .accessible_name("Generate");
            if r.clicked() {
                self.generate(ui.ctx(), cx);
            }
        }
        if let Some(err) = &self.request_error {
            ui.add(
                egui::Label::new(
                    RichText::new(format!("{} {err}", icon::WARNING))
                        .color(theme::WARN)
                        .size(12.5),
                )
                .wrap(),
            );
        }
    }

    /// The selected character range, if the editor has a non-empty selection.
    fn selection(&self, text: &str) -> Option<Range<usize>> {
        let range = self.cursor?.as_sorted_char_range();
        let len = text.chars().count();
        let r = range.start.0.min(len)..range.end.0.min(len);
        (!r.is_empty()).then_some(r)
    }

    /// The insertion point: the cursor (or the end of the document if it was never placed).
    fn insertion_point(&self, text: &str) -> usize {
        let len = text.chars().count();
        self.cursor.map_or(len, |c| c.primary.index.0.min(len))
    }

    /// Builds the request from the mode, the cursor and the settings, and submits it.
    fn generate(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>) {
        self.request_error = None;
        let Some(engine) = cx.engine else {
            self.request_error = Some("The inference engine is not running.".into());
            return;
        };
        let remote = cx.store.settings.remote.enabled;
        if remote {
            if let Err(e) = crate::remote::normalize_base_url(&cx.store.settings.remote.base_url) {
                self.request_error = Some(e.to_string());
                return;
            }
        } else if !cx.model.selected.is_file() {
            self.request_error = Some(format!(
                "The model file is missing. Fetch the default models with {}",
                crate::paths::FETCH_COMMAND
            ));
            return;
        }
        let doc = cx.store.current();
        let text = doc.text.clone();
        let at = self.insertion_point(&text);
        let before: String = text.chars().take(at).collect();
        let mode = if !remote && cx.model.lacks_chat_template() {
            WriteMode::Continue
        } else {
            cx.store.settings.mode
        };
        let instruction = cx.store.settings.instruction.trim().to_string();
        let (task, range, kind, title) = match (mode, self.action) {
            (WriteMode::Continue, _) => {
                if before.trim().is_empty() {
                    self.request_error = Some(
                        "Write something before the cursor first: Continue completes the text \
                         that comes before it."
                            .into(),
                    );
                    return;
                }
                (
                    WriteTask::Continue { text: before },
                    at..at,
                    InsertKind::Continuation,
                    "Continuation".to_string(),
                )
            }
            (WriteMode::Instruct, InstructAction::ContinueInStyle) => {
                if before.trim().is_empty() {
                    self.request_error =
                        Some("Write something before the cursor first, to continue it.".into());
                    return;
                }
                (
                    WriteTask::ContinueInStyle { document: before },
                    at..at,
                    InsertKind::Answer,
                    "Continue in this style".to_string(),
                )
            }
            (WriteMode::Instruct, InstructAction::RewriteSelection) => {
                let Some(sel) = self.selection(&text) else {
                    self.request_error =
                        Some("Select a passage in the document to rewrite.".into());
                    return;
                };
                let selection: String = text.chars().skip(sel.start).take(sel.len()).collect();
                (
                    WriteTask::Rewrite {
                        selection,
                        instruction: instruction.clone(),
                    },
                    sel,
                    InsertKind::Replacement,
                    "Rewrite of the selection".to_string(),
                )
            }
            (WriteMode::Instruct, InstructAction::Free) => {
                if instruction.is_empty() {
                    self.request_error = Some("Type an instruction first.".into());
                    return;
                }
                let short: String = instruction.chars().take(48).collect();
                (
                    WriteTask::Instruct {
                        instruction: instruction.clone(),
                        document: text.clone(),
                    },
                    at..at,
                    InsertKind::Answer,
                    format!(
                        "“{}{}”",
                        short,
                        if instruction.chars().count() > 48 {
                            "…"
                        } else {
                            ""
                        }
                    ),
                )
            }
        };
        let mut params = cx.store.settings.params.clone();
        params.logprobs = params.logprobs.max(POPUP_ALTERNATIVES);
        let request = WriteRequest {
            model: cx.model.selected.clone(),
            adapter: None,
            task,
            params,
            candidates: cx.store.settings.candidates.clamp(1, 4),
            forced: Vec::new(),
            remote: remote.then(|| RemotePanel::endpoint(&cx.store.settings.remote)),
        };
        let anchor = Anchor {
            doc_id: doc.id.clone(),
            snapshot: text,
            range,
            kind,
        };
        if let Some(old) = &mut self.suggestions {
            old.stop();
        }
        let job = engine.write(request.clone());
        tracing::debug!(job = %job.id(), "write request submitted");
        self.suggestions = Some(Suggestions::new(job, request, anchor, title));
        self.inspected = None;
        ctx.request_repaint();
    }

    // ---------------------------------------------------------------------------------------
    // Tray

    fn tray(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let Some(s) = &self.suggestions else {
            return;
        };
        let font = ui
            .style()
            .text_styles
            .get(&TextStyle::Name("editor".into()))
            .cloned()
            .unwrap_or_else(|| FontId::proportional(16.0));
        match suggestions::show(ui, s, self.inspected, &font) {
            Some(TrayAction::Accept(i)) => self.accept(ui.ctx(), cx, i),
            Some(TrayAction::Stop) => self.stop(),
            Some(TrayAction::Regenerate) => self.regenerate(ui.ctx(), cx),
            Some(TrayAction::Discard) => {
                self.stop();
                self.suggestions = None;
                self.inspected = None;
                self.focus_editor = true;
            }
            Some(TrayAction::Inspect {
                candidate,
                token,
                rect,
            }) => {
                let same = self
                    .inspected
                    .is_some_and(|x| x.candidate == candidate && x.token == token);
                self.inspected_since = ui.ctx().cumulative_pass_nr();
                self.inspected = (!same).then_some(Inspected {
                    candidate,
                    token,
                    rect,
                });
            }
            None => {}
        }
    }

    fn token_popup(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let (Some(at), Some(s)) = (self.inspected, &self.suggestions) else {
            return;
        };
        let just_opened = self.inspected_since == ui.ctx().cumulative_pass_nr();
        match suggestions::token_popup(ui.ctx(), s, at, just_opened) {
            PopupOutcome::Close => self.inspected = None,
            PopupOutcome::Open => {}
            PopupOutcome::Swap(alt) => {
                self.inspected = None;
                self.swap(cx, at.candidate, at.token, &alt);
            }
        }
    }

    /// Truncates candidate `slot` at `token`, swaps in `alt`, and regenerates from there.
    fn swap(
        &mut self,
        cx: &mut PanelContext<'_>,
        slot: usize,
        token: usize,
        alt: &crate::models::llm::TokenAlternative,
    ) {
        let Some(engine) = cx.engine else {
            return;
        };
        let Some(s) = &mut self.suggestions else {
            return;
        };
        // One job at a time: stop whatever still runs before continuing from the new word.
        s.stop();
        let Some(request) = s.swap_request(slot, token, alt) else {
            return;
        };
        let job = engine.write(request);
        s.attach_swap(job, slot);
    }

    fn regenerate(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>) {
        let Some(engine) = cx.engine else {
            return;
        };
        let Some(old) = self.suggestions.take() else {
            return;
        };
        let mut request = old.request.clone();
        let settings = &mut cx.store.settings;
        // Same text and cursor, current settings; a fresh seed so sampling gives new text
        // (greedy decoding is deterministic and gives the same text again).
        let last_seed = request.params.sampling.seed;
        let logprobs = request.params.logprobs;
        request.params = settings.params.clone();
        request.params.logprobs = logprobs;
        if request.params.sampling.temperature > 0.0 && request.params.sampling.seed == last_seed {
            let seed = rand::random::<u32>() as u64;
            settings.params.sampling.seed = seed;
            request.params.sampling.seed = seed;
        }
        request.candidates = settings.candidates.clamp(1, 4);
        request.forced.clear();
        request.remote = settings
            .remote
            .enabled
            .then(|| RemotePanel::endpoint(&settings.remote));
        let job = engine.write(request.clone());
        self.suggestions = Some(Suggestions::new(job, request, old.anchor, old.title));
        self.inspected = None;
        ctx.request_repaint();
    }

    /// Inserts candidate `i` into the document, recording an undo point first.
    fn accept(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>, i: usize) {
        let Some(s) = &mut self.suggestions else {
            return;
        };
        let Some(candidate) = s.candidates.get(i) else {
            return;
        };
        let suggestion = candidate.text.clone();
        let doc = cx.store.current();
        if doc.id != s.anchor.doc_id {
            self.request_error = Some("These suggestions belong to another document.".into());
            return;
        }
        let old_text = doc.text.clone();
        let Some(range) = rebase_range(&s.anchor.snapshot, &old_text, s.anchor.range.clone())
        else {
            self.request_error = Some(
                "The text around the cursor changed since the request; generate again.".into(),
            );
            return;
        };
        if s.anchor.kind == InsertKind::Replacement {
            let now: String = old_text
                .chars()
                .skip(range.start)
                .take(range.len())
                .collect();
            if now != s.anchor.selected_text() {
                self.request_error = Some(
                    "The selected passage was edited since the request; rewrite again.".into(),
                );
                return;
            }
        }
        s.stop();
        let before: String = old_text.chars().take(range.start).collect();
        let after: String = old_text.chars().skip(range.end).collect();
        let insert = shape_insertion(&before, &suggestion, &after, s.anchor.kind);
        let new_text = format!("{before}{insert}{after}");
        let end = range.start + insert.chars().count();

        // Record the old and new states in the editor's own undo history.
        let mut state = egui::TextEdit::load_state(ctx, self.editor_id).unwrap_or_default();
        let old_cursor = state
            .cursor
            .char_range()
            .unwrap_or_else(|| CCursorRange::one(CCursor::new(range.start)));
        let new_cursor = CCursorRange::one(CCursor::new(end));
        let mut undoer = state.undoer();
        undoer.add_undo(&(old_cursor, old_text));
        undoer.add_undo(&(new_cursor, new_text.clone()));
        state.set_undoer(undoer);
        state.cursor.set_char_range(Some(new_cursor));
        egui::TextEdit::store_state(ctx, self.editor_id, state);

        cx.store.current_mut().text = new_text;
        cx.store.mark_changed();
        self.cursor = Some(new_cursor);
        self.suggestions = None;
        self.inspected = None;
        self.focus_editor = true;
    }
}

/// Separates an answer from the text around it the way a writer would: a space within a
/// paragraph; chat answers lose surrounding blank lines. Continuations go in verbatim.
fn shape_insertion(before: &str, suggestion: &str, after: &str, kind: InsertKind) -> String {
    match kind {
        InsertKind::Continuation => suggestion.to_string(),
        InsertKind::Replacement => suggestion.trim().to_string(),
        InsertKind::Answer => {
            let body = suggestion.trim();
            let mut out = String::new();
            if before.chars().last().is_some_and(|c| !c.is_whitespace()) {
                out.push(' ');
            }
            out.push_str(body);
            if after.chars().next().is_some_and(|c| !c.is_whitespace()) {
                out.push(' ');
            }
            out
        }
    }
}

/// Follows an edit made since a request: maps `range` (characters of `old`) into `new`.
/// Edits entirely before or after the range shift or keep it; an edit that overlaps it
/// returns `None`.
pub fn rebase_range(old: &str, new: &str, range: Range<usize>) -> Option<Range<usize>> {
    if old == new {
        return Some(range);
    }
    let o: Vec<char> = old.chars().collect();
    let n: Vec<char> = new.chars().collect();
    let prefix = o.iter().zip(&n).take_while(|(a, b)| a == b).count();
    let max_suffix = o.len().min(n.len()) - prefix;
    let suffix = o
        .iter()
        .rev()
        .zip(n.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let changed_old = prefix..o.len() - suffix;
    // An edit at or after the end (including typing right at an insertion point) keeps it.
    if changed_old.start >= range.end {
        return Some(range);
    }
    // An edit entirely before the start shifts it.
    if changed_old.end <= range.start {
        let delta = n.len() as isize - o.len() as isize;
        let shift = |x: usize| (x as isize + delta).max(0) as usize;
        return Some(shift(range.start)..shift(range.end));
    }
    None
}

fn relative_time(now: u64, then: u64) -> String {
    let secs = now.saturating_sub(then);
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        86_400..=172_799 => "yesterday".into(),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebase_follows_edits_elsewhere() {
        // Edit after the anchor: unchanged.
        assert_eq!(rebase_range("abc def", "abc defgh", 3..3), Some(3..3));
        // Edit before the anchor: shifted.
        assert_eq!(rebase_range("abc def", "XXabc def", 3..3), Some(5..5));
        assert_eq!(rebase_range("abc def", "bc def", 4..7), Some(3..6));
        // Edit inside a selection: refused.
        assert_eq!(rebase_range("abc def", "abc dXf", 4..7), None);
        // Typing right at an insertion point after it was requested keeps the old point.
        assert_eq!(rebase_range("abc", "abcd", 3..3), Some(3..3));
    }

    #[test]
    fn answers_are_separated_but_continuations_are_verbatim() {
        assert_eq!(
            shape_insertion("end.", " more", "", InsertKind::Continuation),
            " more"
        );
        assert_eq!(
            shape_insertion("end.", "\n\nAnswer here.\n", "", InsertKind::Answer),
            " Answer here."
        );
        assert_eq!(
            shape_insertion("end. ", "Answer", "Next", InsertKind::Answer),
            "Answer "
        );
        assert_eq!(
            shape_insertion("a ", "  New words. ", " b", InsertKind::Replacement),
            "New words."
        );
    }

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative_time(100, 90), "just now");
        assert_eq!(relative_time(1000, 100), "15 min ago");
        assert_eq!(relative_time(200_000, 0), "2 days ago");
    }
}
