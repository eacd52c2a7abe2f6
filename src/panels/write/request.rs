//! What Generate sends: the task built from the mode, the quick action, the document and the
//! cursor ([`build_task`], pure and tested), and the request submitted to the engine.

use std::ops::Range;

use super::remote::RemotePanel;
use super::state::{InstructAction, POPUP_ALTERNATIVES, WritePanel};
use super::suggestions::{Anchor, InsertKind, Suggestions};
use crate::engine::WriteRequest;
use crate::models::llm::context::WriteTask;
use crate::panels::PanelContext;
use crate::store::WriteMode;

impl WritePanel {
    /// Builds the request from the mode, the cursor and the settings, and submits it.
    pub(super) fn generate(&mut self, ctx: &egui::Context, cx: &mut PanelContext<'_>) {
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
        } else if !self.model.selected.is_file() {
            self.request_error = Some(format!(
                "The model file is missing. Fetch the default models with {}",
                crate::paths::FETCH_COMMAND
            ));
            return;
        }
        let doc = cx.store.current();
        let text = doc.text.clone();
        let mode = if !remote && self.model.lacks_chat_template() {
            WriteMode::Continue
        } else {
            cx.store.settings.mode
        };
        let built = build_task(&TaskInput {
            mode,
            action: self.action,
            text: &text,
            at: self.insertion_point(&text),
            selection: self.selection(&text),
            instruction: cx.store.settings.instruction.trim(),
        });
        let BuiltTask {
            task,
            range,
            kind,
            title,
        } = match built {
            Ok(b) => b,
            Err(message) => {
                self.request_error = Some(message);
                return;
            }
        };
        let mut params = cx.store.settings.params.clone();
        params.logprobs = params.logprobs.max(POPUP_ALTERNATIVES);
        let request = WriteRequest {
            model: self.model.selected.clone(),
            adapter: if remote { None } else { self.adapters.spec() },
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
        self.retire_suggestions();
        let job = engine.write(request.clone());
        tracing::debug!(job = %job.id(), "write request submitted");
        self.suggestions = Some(Suggestions::new(job, request, anchor, title));
        self.inspected = None;
        ctx.request_repaint();
    }
}

/// What the task is built from.
#[derive(Clone, Debug)]
pub(super) struct TaskInput<'a> {
    /// Continue or Instruct (Continue when the model has no chat template).
    pub mode: WriteMode,
    /// Instruct mode's quick action.
    pub action: InstructAction,
    /// The document.
    pub text: &'a str,
    /// Where a continuation or an answer goes, in characters.
    pub at: usize,
    /// The selection, in characters, if any.
    pub selection: Option<Range<usize>>,
    /// The free instruction, trimmed.
    pub instruction: &'a str,
}

/// What Generate asks for, and where its answer goes.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct BuiltTask {
    /// The task for the engine.
    pub task: WriteTask,
    /// The characters the answer replaces (empty: inserted at that point).
    pub range: Range<usize>,
    /// How the answer goes in.
    pub kind: InsertKind,
    /// The tray's title.
    pub title: String,
}

/// Builds the task for the current mode and quick action; `Err` says what the writer must do
/// first (nothing is sent then).
pub(super) fn build_task(input: &TaskInput<'_>) -> Result<BuiltTask, String> {
    let at = input.at;
    let before: String = input.text.chars().take(at).collect();
    let instruction = input.instruction.to_string();
    let (task, range, kind, title) = match (input.mode, input.action) {
        (WriteMode::Continue, _) => {
            if before.trim().is_empty() {
                return Err(
                    "Write something before the cursor first: Continue completes the \
                            text that comes before it."
                        .into(),
                );
            }
            (
                WriteTask::Continue {
                    text: before.clone(),
                },
                at..at,
                InsertKind::Continuation,
                "Continuation".to_string(),
            )
        }
        (WriteMode::Instruct, InstructAction::ContinueInStyle) => {
            if before.trim().is_empty() {
                return Err("Write something before the cursor first, to continue it.".into());
            }
            (
                WriteTask::ContinueInStyle {
                    document: before.clone(),
                },
                at..at,
                InsertKind::Answer,
                "Continue in this style".to_string(),
            )
        }
        (WriteMode::Instruct, InstructAction::RewriteSelection) => {
            let Some(sel) = input.selection.clone() else {
                return Err("Select a passage in the document to rewrite.".into());
            };
            let selection: String = input.text.chars().skip(sel.start).take(sel.len()).collect();
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
                return Err("Type an instruction first.".into());
            }
            let short: String = instruction.chars().take(48).collect();
            (
                WriteTask::Instruct {
                    instruction: instruction.clone(),
                    document: input.text.to_string(),
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
    Ok(BuiltTask {
        task,
        range,
        kind,
        title,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mode: WriteMode, action: InstructAction) -> TaskInput<'static> {
        TaskInput {
            mode,
            action,
            text: "The keeper climbed. The light answered.",
            at: 19,
            selection: None,
            instruction: "",
        }
    }

    #[test]
    fn continue_sends_the_text_before_the_cursor_and_inserts_there() {
        let b = build_task(&input(WriteMode::Continue, InstructAction::Free)).unwrap();
        assert_eq!(
            b.task,
            WriteTask::Continue {
                text: "The keeper climbed.".into()
            }
        );
        assert_eq!(b.range, 19..19);
        assert_eq!(b.kind, InsertKind::Continuation);
    }

    #[test]
    fn continue_in_style_sends_only_the_passage_before_the_cursor() {
        let b = build_task(&input(WriteMode::Instruct, InstructAction::ContinueInStyle)).unwrap();
        assert_eq!(
            b.task,
            WriteTask::ContinueInStyle {
                document: "The keeper climbed.".into()
            }
        );
        assert_eq!(b.range, 19..19);
    }

    #[test]
    fn rewrite_replaces_the_selection_and_needs_one() {
        let mut i = input(WriteMode::Instruct, InstructAction::RewriteSelection);
        assert!(build_task(&i).is_err());
        i.selection = Some(4..10);
        i.instruction = "darker";
        let b = build_task(&i).unwrap();
        assert_eq!(
            b.task,
            WriteTask::Rewrite {
                selection: "keeper".into(),
                instruction: "darker".into()
            }
        );
        assert_eq!(b.range, 4..10);
        assert_eq!(b.kind, InsertKind::Replacement);
    }

    #[test]
    fn empty_inputs_are_refused_with_what_to_do() {
        let mut i = input(WriteMode::Continue, InstructAction::Free);
        i.at = 0;
        assert!(build_task(&i).unwrap_err().contains("before the cursor"));
        let i = input(WriteMode::Instruct, InstructAction::Free);
        assert!(build_task(&i).unwrap_err().contains("instruction"));
        let mut i = input(WriteMode::Instruct, InstructAction::Free);
        i.instruction = "A title, please";
        let b = build_task(&i).unwrap();
        assert_eq!(b.title, "“A title, please”");
        assert_eq!(b.kind, InsertKind::Answer);
    }
}
