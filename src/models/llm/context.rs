//! Turning what the writer asked for into prompt tokens that fit the model's context.
//!
//! When document + instruction exceed the window, the instruction is always kept whole and the
//! document is cut from its start, keeping the end nearest the cursor; the cut is reported (never
//! silent) so the UI can show what the model did not see.

use super::{ChatMessage, Llm, LlmError};

/// What the writer asked for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WriteTask {
    /// Raw completion of `text` (the document up to the cursor). Works with base models.
    Continue {
        /// The text to continue.
        text: String,
    },
    /// A free instruction about the document, answered by an instruct model.
    Instruct {
        /// What to do.
        instruction: String,
        /// The document it is about (may be empty).
        document: String,
    },
    /// Continue the document in its own style, via the chat template.
    ContinueInStyle {
        /// The document up to the cursor.
        document: String,
    },
    /// Rewrite a selected passage.
    Rewrite {
        /// The passage to rewrite.
        selection: String,
        /// How to rewrite it (empty: improve clarity and flow).
        instruction: String,
    },
    /// A raw prompt sent as is (`atelier serve`'s `/v1/completions`): never trimmed; one that
    /// does not fit the context is an error.
    Prompt {
        /// The prompt text.
        text: String,
    },
    /// A whole conversation (`/v1/chat/completions`), rendered with the model's chat template:
    /// never trimmed.
    Chat {
        /// The messages, oldest first.
        messages: Vec<ChatMessage>,
    },
}

impl WriteTask {
    /// Whether the task needs a chat template (an instruct model).
    pub fn needs_chat(&self) -> bool {
        !matches!(self, Self::Continue { .. } | Self::Prompt { .. })
    }

    /// Whether the task must be sent whole (a request from a program) rather than trimmed to
    /// fit the context (a writer's document).
    fn exact(&self) -> bool {
        matches!(self, Self::Prompt { .. } | Self::Chat { .. })
    }

    /// The task as a conversation for a chat API (a remote engine): the same single user
    /// message the local chat template receives. `None` for raw completion tasks.
    pub fn chat_messages(&self) -> Option<Vec<ChatMessage>> {
        if let Self::Chat { messages } = self {
            return Some(messages.clone());
        }
        if !self.needs_chat() {
            return None;
        }
        let (instruction, document) = self.parts();
        Some(vec![ChatMessage::user(chat_content(
            &instruction,
            &document,
        ))])
    }

    /// The text a raw completion continues (`None` for chat tasks).
    pub fn completion_text(&self) -> Option<&str> {
        match self {
            Self::Continue { text } | Self::Prompt { text } => Some(text),
            _ => None,
        }
    }

    /// Whether the task has nothing to work from.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Chat { messages } => messages.iter().all(|m| m.content.trim().is_empty()),
            _ => {
                let (fixed, document) = self.parts();
                fixed.is_empty() && document.trim().is_empty()
            }
        }
    }

    /// (fixed instruction part, document part that may be trimmed from its start)
    fn parts(&self) -> (String, String) {
        match self {
            Self::Continue { text } | Self::Prompt { text } => (String::new(), text.clone()),
            Self::Chat { .. } => (String::new(), String::new()),
            Self::Instruct {
                instruction,
                document,
            } => (instruction.trim().to_string(), document.clone()),
            Self::ContinueInStyle { document } => (CONTINUE_INSTRUCTION.into(), document.clone()),
            Self::Rewrite {
                selection,
                instruction,
            } => {
                let how = if instruction.trim().is_empty() {
                    "Keep its meaning; improve clarity and flow."
                } else {
                    instruction.trim()
                };
                (
                    format!(
                        "Rewrite the passage above. {how} Reply with the rewritten passage only."
                    ),
                    selection.clone(),
                )
            }
        }
    }
}

/// The user's turn of "Continue in this style". Locally the passage then opens the assistant's
/// reply ([`build_prompt`]), so the model writes what follows it rather than restating it (a
/// small instruct model given the passage in the user turn echoes it back, then adds a line).
const CONTINUE_INSTRUCTION: &str =
    "Continue this text in the same style and voice. Write only what comes next.";

/// What was left out to fit the context.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrimReport {
    /// Characters cut from the start of the document.
    pub dropped_chars: usize,
    /// Characters of the document the model saw.
    pub kept_chars: usize,
    /// The model's context window in tokens.
    pub context_tokens: usize,
}

/// A prompt ready for [`super::generate::generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct BuiltPrompt {
    /// Token ids, BOS included where the model wants it.
    pub ids: Vec<u32>,
    /// What was left out, if anything.
    pub trimmed: Option<TrimReport>,
}

/// Builds the prompt for `task`, leaving room for `max_new_tokens` (at most half the window).
pub fn build_prompt(
    llm: &Llm,
    task: &WriteTask,
    max_new_tokens: usize,
) -> Result<BuiltPrompt, LlmError> {
    let (fixed, document) = task.parts();
    if task.needs_chat() && llm.chat_template.is_none() {
        return Err(LlmError::Template(format!(
            "{} has no chat template (it is a base model): use Continue mode, or open an instruct model",
            llm.info.name
        )));
    }
    if task.is_empty() {
        return Err(LlmError::EmptyPrompt);
    }
    let ctx = llm.model.context_length();
    if task.exact() {
        let ids = match task {
            WriteTask::Chat { messages } => chat_render(llm, messages)?,
            _ => {
                let mut ids = bos(llm);
                ids.extend(llm.tokenizer.encode(&document, false)?);
                ids
            }
        };
        // The reply needs at least one position.
        if ids.len() >= ctx {
            return Err(LlmError::PromptTooLong {
                needed: ids.len(),
                available: ctx - 1,
            });
        }
        return Ok(BuiltPrompt { ids, trimmed: None });
    }
    let budget = ctx - max_new_tokens.min(ctx / 2);
    let render = |doc: &str| -> Result<Vec<u32>, LlmError> {
        if matches!(task, WriteTask::ContinueInStyle { .. }) {
            // The passage is the start of the model's own reply: it can only go on from it.
            let mut ids = chat_ids(llm, &fixed, "")?;
            ids.extend(llm.tokenizer.encode(doc, false)?);
            Ok(ids)
        } else if task.needs_chat() {
            chat_ids(llm, &fixed, doc)
        } else {
            let mut ids = bos(llm);
            ids.extend(llm.tokenizer.encode(doc, false)?);
            Ok(ids)
        }
    };
    let ids = render(&document)?;
    if ids.len() <= budget {
        return Ok(BuiltPrompt { ids, trimmed: None });
    }
    let overhead = render("")?.len();
    if overhead >= budget {
        return Err(LlmError::PromptTooLong {
            needed: overhead,
            available: budget,
        });
    }
    // Keep the end of the document: cut at a token boundary, then snap to a character
    // boundary and re-check, since re-tokenizing a suffix can shift by a token or two.
    let doc_ids = llm.tokenizer.encode(&document, false)?;
    let mut keep_tokens = (budget - overhead).min(doc_ids.len());
    for _ in 0..16 {
        let dropped = &doc_ids[..doc_ids.len() - keep_tokens];
        let dropped_bytes: usize = dropped
            .iter()
            .map(|&id| llm.tokenizer.token_bytes(id).len())
            .sum();
        let mut cut = dropped_bytes.min(document.len());
        while !document.is_char_boundary(cut) {
            cut += 1;
        }
        let kept = &document[cut..];
        let ids = render(kept)?;
        if ids.len() <= budget {
            return Ok(BuiltPrompt {
                ids,
                trimmed: Some(TrimReport {
                    dropped_chars: document[..cut].chars().count(),
                    kept_chars: kept.chars().count(),
                    context_tokens: ctx,
                }),
            });
        }
        keep_tokens = keep_tokens.saturating_sub((ids.len() - budget).max(8));
    }
    Err(LlmError::PromptTooLong {
        needed: ids.len(),
        available: budget,
    })
}

fn bos(llm: &Llm) -> Vec<u32> {
    match (llm.tokenizer.add_bos(), llm.tokenizer.bos_id()) {
        (true, Some(b)) => vec![b],
        _ => Vec::new(),
    }
}

/// The one user message a writer's chat task becomes.
fn chat_content(instruction: &str, document: &str) -> String {
    match (document.trim().is_empty(), instruction.is_empty()) {
        (true, _) => instruction.to_string(),
        (false, true) => document.to_string(),
        // The instruction goes last: small models follow what they read most recently.
        (false, false) => format!("{document}\n\n---\n{instruction}"),
    }
}

fn chat_ids(llm: &Llm, instruction: &str, document: &str) -> Result<Vec<u32>, LlmError> {
    chat_render(
        llm,
        &[ChatMessage::user(chat_content(instruction, document))],
    )
}

fn chat_render(llm: &Llm, messages: &[ChatMessage]) -> Result<Vec<u32>, LlmError> {
    let Some(t) = &llm.chat_template else {
        return Err(LlmError::Template("no chat template".into()));
    };
    let text = t.render(messages)?;
    let mut ids = Vec::new();
    // Add BOS unless the template already wrote it.
    if t.bos_token().is_empty() || !text.starts_with(t.bos_token()) {
        ids = bos(llm);
    }
    ids.extend(llm.tokenizer.encode(&text, true)?);
    Ok(ids)
}
