//! The suggestion tray's actions: accept a candidate into the document (undoable), swap in
//! another word and continue from it, regenerate.

use std::ops::Range;

use egui::text::{CCursor, CCursorRange};
use egui::{FontId, TextStyle};

use super::remote::RemotePanel;
use super::state::WritePanel;
use super::suggestions::{InsertKind, Inspected, Suggestions, TrayAction};
use super::token_popup::PopupOutcome;
use crate::panels::PanelContext;

impl WritePanel {
    pub(super) fn tray(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let Some(s) = &self.suggestions else {
            return;
        };
        let font = ui
            .style()
            .text_styles
            .get(&TextStyle::Name("editor".into()))
            .cloned()
            .unwrap_or_else(|| FontId::proportional(16.0));
        match super::tray::show(ui, s, self.inspected, &font) {
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

    pub(super) fn token_popup(&mut self, ui: &mut egui::Ui, cx: &mut PanelContext<'_>) {
        let (Some(at), Some(s)) = (self.inspected, &self.suggestions) else {
            return;
        };
        let just_opened = self.inspected_since == ui.ctx().cumulative_pass_nr();
        match super::token_popup::token_popup(ui.ctx(), s, at, just_opened) {
            PopupOutcome::Close => self.inspected = None,
            PopupOutcome::Open => {}
            PopupOutcome::Swap(alt) => {
                self.inspected = None;
                self.swap(cx, at.candidate, at.token, &alt);
            }
        }
    }

    /// Truncates candidate `slot` at `token`, swaps in `alt`, and regenerates from there.
    pub(super) fn swap(
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

    pub(super) fn regenerate(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>) {
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
    pub(super) fn accept(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>, i: usize) {
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
pub(super) fn shape_insertion(
    before: &str,
    suggestion: &str,
    after: &str,
    kind: InsertKind,
) -> String {
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
}
