//! The suggestions of one generation: candidates streaming in token by token, where they
//! go in the document, and the job's phase.

use std::ops::Range;
use std::time::Instant;

use crate::engine::{Event, JobHandle, JobId, WriteRequest};
use crate::models::llm::context::TrimReport;
use crate::models::llm::{
    GeneratedToken, GenerationResult, GenerationStats, StopReason, TokenAlternative,
};

/// How accepted text goes into the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertKind {
    /// Raw continuation: inserted verbatim at the cursor.
    Continuation,
    /// A chat answer: inserted at the cursor, separated by a space (or paragraph) if needed.
    Answer,
    /// A rewrite: replaces the selected range.
    Replacement,
}

/// Where in which document a suggestion belongs.
#[derive(Clone, Debug, PartialEq)]
pub struct Anchor {
    /// The document it was requested for.
    pub doc_id: String,
    /// The document's text when it was requested (to follow later edits).
    pub snapshot: String,
    /// Character range it replaces (empty: an insertion point).
    pub range: Range<usize>,
    /// How it is inserted.
    pub kind: InsertKind,
}

impl Anchor {
    /// The last words before the insertion point, for the in-place preview.
    pub fn context_tail(&self, max_chars: usize) -> String {
        let before: Vec<char> = self.snapshot.chars().take(self.range.start).collect();
        let start = before.len().saturating_sub(max_chars);
        let mut tail: String = before[start..].iter().collect();
        if start > 0 {
            // Start at a word boundary so the preview does not open mid-word.
            if let Some(sp) = tail.find(char::is_whitespace) {
                tail = tail[sp..].trim_start().to_string();
            }
            tail.insert(0, '…');
        }
        tail
    }

    /// The selected text a rewrite replaces.
    pub fn selected_text(&self) -> String {
        self.snapshot
            .chars()
            .skip(self.range.start)
            .take(self.range.len())
            .collect()
    }
}

/// One candidate's tokens as they stream in.
#[derive(Clone, Debug, Default)]
pub struct Candidate {
    /// The tokens, forced ones first.
    pub tokens: Vec<GeneratedToken>,
    /// Their concatenated text.
    pub text: String,
    /// Character offset of each token in `text`.
    pub starts: Vec<usize>,
    /// How many leading tokens were forced (kept from before a swap).
    pub forced: usize,
    /// Timings, once the candidate is done.
    pub stats: Option<GenerationStats>,
    /// Why it ended, once it is done.
    pub stop: Option<StopReason>,
    /// When its first new token arrived (for a live tokens/s).
    pub first_token_at: Option<Instant>,
    /// New tokens received since it (re)started.
    pub received: usize,
}

impl Candidate {
    fn push(&mut self, token: GeneratedToken) {
        self.starts.push(self.text.chars().count());
        self.text.push_str(&token.text);
        self.tokens.push(token);
        self.first_token_at.get_or_insert_with(Instant::now);
        self.received += 1;
    }

    fn rebuild_text(&mut self) {
        self.text.clear();
        self.starts.clear();
        let mut chars = 0;
        for t in &self.tokens {
            self.starts.push(chars);
            chars += t.text.chars().count();
            self.text.push_str(&t.text);
        }
    }

    /// Replaces the streamed tokens with the engine's final list (it may have flushed a
    /// partial character into the last token).
    fn finish(&mut self, result: GenerationResult) {
        self.tokens.truncate(self.forced);
        self.tokens.extend(result.tokens);
        self.rebuild_text();
        self.stats = Some(result.stats);
        self.stop = Some(result.stop);
    }

    /// Whether it has ended (done, stopped or never started because the job ended).
    pub fn is_done(&self) -> bool {
        self.stop.is_some()
    }

    /// Tokens per second: final when done, live while streaming.
    pub fn tokens_per_s(&self) -> Option<f64> {
        if let Some(s) = &self.stats {
            return (s.decode_tokens_per_s > 0.0).then_some(s.decode_tokens_per_s);
        }
        let first = self.first_token_at?;
        let secs = first.elapsed().as_secs_f64();
        (self.received > 1 && secs > 0.0).then(|| (self.received - 1) as f64 / secs)
    }

    /// The token whose text covers character `ch` of `text`.
    pub fn token_at_char(&self, ch: usize) -> Option<usize> {
        let i = self.starts.partition_point(|&s| s <= ch);
        let mut i = i.checked_sub(1)?;
        // Skip tokens with no text of their own (a partial character).
        while i > 0 && self.tokens[i].text.is_empty() {
            i -= 1;
        }
        Some(i)
    }
}

/// Which candidates the running job feeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Every candidate (job candidate i → slot i).
    All,
    /// One slot (a swap regenerates one candidate from a chosen token).
    One(usize),
}

/// Where the job stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Waiting behind other jobs.
    Queued {
        /// Jobs ahead of it.
        ahead: usize,
    },
    /// Submitted, about to start.
    Starting,
    /// Reading the model file.
    LoadingModel,
    /// Reading the prompt (prefill).
    Prompting,
    /// Tokens are arriving.
    Streaming,
    /// Stop was pressed; waiting for the worker to confirm (within one token).
    Stopping,
    /// All candidates finished.
    Done,
    /// Stopped by the user; partial text is kept.
    Stopped,
    /// The job failed; the document was not touched.
    Failed(String),
}

impl Phase {
    /// Whether the job is still going.
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            Phase::Queued { .. }
                | Phase::Starting
                | Phase::LoadingModel
                | Phase::Prompting
                | Phase::Streaming
                | Phase::Stopping
        )
    }
}

/// A set of suggestions for one request, and the job feeding it.
pub struct Suggestions {
    /// The job currently feeding it (a swap replaces it).
    pub job: JobHandle,
    /// Which slots that job feeds.
    pub target: Target,
    /// Where the job stands.
    pub phase: Phase,
    /// The request for all candidates (Regenerate and swaps start from it).
    pub request: WriteRequest,
    /// Where it goes in the document.
    pub anchor: Anchor,
    /// The candidates, side by side.
    pub candidates: Vec<Candidate>,
    /// What was left out of the prompt to fit the context.
    pub trimmed: Option<TrimReport>,
    /// Prompt length in tokens.
    pub prompt_tokens: Option<usize>,
    /// What was asked ("Continue", "Rewrite the selection"…).
    pub title: String,
}

impl Suggestions {
    /// Starts tracking `job` for `request`.
    pub fn new(job: JobHandle, request: WriteRequest, anchor: Anchor, title: String) -> Self {
        let n = request.candidates.max(1);
        Self {
            job,
            target: Target::All,
            phase: Phase::Starting,
            request,
            anchor,
            candidates: vec![Candidate::default(); n],
            trimmed: None,
            prompt_tokens: None,
            title,
        }
    }

    /// The id of the job feeding it.
    pub fn job_id(&self) -> JobId {
        self.job.id()
    }

    /// Whether tokens may still arrive.
    pub fn is_running(&self) -> bool {
        self.phase.is_running()
    }

    /// Asks the worker to stop (takes effect within one token).
    pub fn stop(&mut self) {
        if self.is_running() {
            self.job.cancel();
            self.phase = Phase::Stopping;
        }
    }

    fn slot(&self, candidate: usize) -> usize {
        match self.target {
            Target::All => candidate,
            Target::One(i) => i,
        }
    }

    /// Applies an event of this suggestion's job.
    pub fn on_event(&mut self, event: Event) {
        let stopping = self.phase == Phase::Stopping;
        match event {
            Event::Queued { ahead, .. } if !stopping => {
                self.phase = if ahead > 0 {
                    Phase::Queued { ahead }
                } else {
                    Phase::Starting
                };
            }
            Event::Started { .. } if !stopping => self.phase = Phase::Starting,
            Event::ModelLoading { .. } if !stopping => self.phase = Phase::LoadingModel,
            Event::ModelLoaded { .. } if !stopping => self.phase = Phase::Prompting,
            Event::PromptReady {
                prompt_tokens,
                trimmed,
                ..
            } => {
                self.prompt_tokens = Some(prompt_tokens);
                self.trimmed = trimmed;
                if !stopping {
                    self.phase = Phase::Prompting;
                }
            }
            Event::Token {
                candidate, token, ..
            } => {
                let slot = self.slot(candidate);
                if let Some(c) = self.candidates.get_mut(slot) {
                    c.push(token);
                }
                if !stopping {
                    self.phase = Phase::Streaming;
                }
            }
            Event::CandidateDone {
                candidate, result, ..
            } => {
                let slot = self.slot(candidate);
                if let Some(c) = self.candidates.get_mut(slot) {
                    c.finish(*result);
                }
            }
            Event::Finished { .. } => {
                self.phase = Phase::Done;
                self.close_unfinished();
            }
            Event::Cancelled { .. } => {
                self.phase = Phase::Stopped;
                self.close_unfinished();
            }
            Event::Failed { error, .. } => {
                self.phase = Phase::Failed(error.to_string());
                self.close_unfinished();
            }
            _ => {}
        }
    }

    fn close_unfinished(&mut self) {
        let target = self.target;
        for (i, c) in self.candidates.iter_mut().enumerate() {
            let fed = target == Target::All || target == Target::One(i);
            if fed && c.stop.is_none() {
                c.stop = Some(StopReason::Cancelled);
            }
        }
    }

    /// Keeps candidate `slot` up to token `token`, replaced by `alt`, and returns the request
    /// that continues after it (the caller submits it and calls [`Self::attach_swap`]).
    pub fn swap_request(
        &mut self,
        slot: usize,
        token: usize,
        alt: &TokenAlternative,
    ) -> Option<WriteRequest> {
        let c = self.candidates.get_mut(slot)?;
        let original = c.tokens.get(token)?.clone();
        c.tokens.truncate(token);
        c.tokens.push(GeneratedToken {
            id: alt.id,
            text: alt.text.clone(),
            logprob: alt.logprob,
            top: original.top,
        });
        c.forced = c.tokens.len();
        c.rebuild_text();
        c.stats = None;
        c.stop = None;
        c.first_token_at = None;
        c.received = 0;
        let mut request = self.request.clone();
        request.candidates = 1;
        request.forced = c.tokens.iter().map(|t| t.id).collect();
        // Keep this candidate's own random stream (the engine gives candidate i seed + i).
        request.params.sampling.seed = request.params.sampling.seed.wrapping_add(slot as u64);
        Some(request)
    }

    /// Makes `job` (a swap for `slot`) the one feeding this suggestion.
    pub fn attach_swap(&mut self, job: JobHandle, slot: usize) {
        self.job = job;
        self.target = Target::One(slot);
        self.phase = Phase::Starting;
    }

    /// Best tokens/s across candidates (live while streaming).
    pub fn tokens_per_s(&self) -> Option<f64> {
        self.candidates
            .iter()
            .filter_map(Candidate::tokens_per_s)
            .reduce(f64::max)
    }

    /// Tokens generated so far across candidates.
    pub fn token_count(&self) -> usize {
        self.candidates.iter().map(|c| c.tokens.len()).sum()
    }
}

/// What the user did in the tray.
#[derive(Clone, Debug, PartialEq)]
pub enum TrayAction {
    /// Insert candidate `i` into the document.
    Accept(usize),
    /// Stop the running job.
    Stop,
    /// Run the request again (new seed unless greedy).
    Regenerate,
    /// Close the tray without touching the document.
    Discard,
    /// Open the alternatives of a token.
    Inspect {
        /// Candidate slot.
        candidate: usize,
        /// Token index.
        token: usize,
        /// Where the token is on screen (the popup opens under it).
        rect: egui::Rect,
    },
}

/// The word the token popup is open on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inspected {
    /// Candidate slot.
    pub candidate: usize,
    /// Token index.
    pub token: usize,
    /// Screen rect of the token.
    pub rect: egui::Rect,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme;
    use egui::FontId;

    fn tok(id: u32, text: &str) -> GeneratedToken {
        GeneratedToken {
            id,
            text: text.into(),
            logprob: -0.1,
            top: vec![],
        }
    }

    #[test]
    fn maps_characters_to_tokens() {
        let mut c = Candidate::default();
        for (i, t) in [" The", "", " sea", "."].iter().enumerate() {
            c.push(tok(i as u32, t));
        }
        assert_eq!(c.text, " The sea.");
        assert_eq!(c.token_at_char(0), Some(0));
        assert_eq!(c.token_at_char(3), Some(0));
        // Char 4 starts " sea" (token 2); the empty token 1 is skipped.
        assert_eq!(c.token_at_char(4), Some(2));
        assert_eq!(c.token_at_char(8), Some(3));
    }

    #[test]
    fn a_trimmed_prompt_is_announced_and_tokens_stream_into_their_slot() {
        use crate::engine::{JobHandle, JobId};
        use crate::models::llm::GenerateParams;
        use crate::models::llm::context::WriteTask;
        use egui_kittest::kittest::Queryable;

        let job = JobHandle::new(JobId(7));
        let request = WriteRequest {
            model: "m.gguf".into(),
            adapter: None,
            task: WriteTask::Continue { text: "x".into() },
            params: GenerateParams::default(),
            candidates: 2,
            forced: vec![],
            remote: None,
        };
        let anchor = Anchor {
            doc_id: "d".into(),
            snapshot: "x".into(),
            range: 1..1,
            kind: InsertKind::Continuation,
        };
        let mut s = Suggestions::new(job, request, anchor, "Continuation".into());
        s.on_event(Event::Queued {
            job: JobId(7),
            ahead: 2,
        });
        assert_eq!(s.phase, Phase::Queued { ahead: 2 });
        s.on_event(Event::PromptReady {
            job: JobId(7),
            prompt_tokens: 4000,
            trimmed: Some(TrimReport {
                dropped_chars: 12_345,
                kept_chars: 100,
                context_tokens: 8192,
            }),
        });
        s.on_event(Event::Token {
            job: JobId(7),
            candidate: 1,
            token: tok(5, " waves"),
        });
        assert_eq!(s.candidates[1].text, " waves");
        assert!(s.candidates[0].text.is_empty());
        let font = FontId::proportional(16.0);
        let mut harness = egui_kittest::Harness::builder()
            .with_size(egui::vec2(900.0, 500.0))
            .with_context_setup(theme::install)
            .build_ui_state(
                |ui, s: &mut Suggestions| {
                    super::super::tray::show(ui, s, None, &font);
                },
                s,
            );
        harness.run_ok();
        let want = "The first 12,345 characters of the document were left out to fit the \
                    model's 8,192-token context.";
        assert!(harness.query_all_by_label_contains(want).next().is_some());
    }

    #[test]
    fn context_tail_starts_at_a_word() {
        let a = Anchor {
            doc_id: "d".into(),
            snapshot: "alpha beta gamma delta".into(),
            range: 22..22,
            kind: InsertKind::Continuation,
        };
        assert_eq!(a.context_tail(100), "alpha beta gamma delta");
        assert_eq!(a.context_tail(9), "…delta");
    }
}
