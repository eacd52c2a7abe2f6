//! The suggestion tray under the editor: streamed candidates side by side, each accepted into
//! the document with one click, with every generated word clickable to see the alternatives the
//! model weighed (and swap one in).
//!
//! Why a tray rather than inline ghost text: the document must stay untouched until the writer
//! accepts, alternatives need room side by side, and words must be clickable — none of which an
//! `egui::TextEdit` can host inside its own text. The tray shows the last words before the cursor
//! in grey followed by the suggestion, so it still reads as a continuation in place.

use std::ops::Range;
use std::time::Instant;

use egui::text::{CCursor, LayoutJob};
use egui::{Color32, FontId, RichText, Stroke, TextFormat};

use crate::engine::{Event, JobHandle, JobId, WriteRequest};
use crate::models::llm::context::TrimReport;
use crate::models::llm::{
    GeneratedToken, GenerationResult, GenerationStats, StopReason, TokenAlternative,
};
use crate::theme::{self, icon};

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

/// A pill text and colour for the phase.
pub fn phase_pill(phase: &Phase) -> (String, Color32) {
    match phase {
        Phase::Queued { ahead } => (
            format!(
                "Queued behind {ahead} job{}",
                if *ahead == 1 { "" } else { "s" }
            ),
            theme::WARN,
        ),
        Phase::Starting => ("Starting…".into(), theme::TEXT_WEAK),
        Phase::LoadingModel => ("Loading model…".into(), theme::TEXT_WEAK),
        Phase::Prompting => ("Reading the prompt…".into(), theme::TEXT_WEAK),
        Phase::Streaming => ("Generating".into(), theme::ACCENT),
        Phase::Stopping => ("Stopping…".into(), theme::WARN),
        Phase::Done => ("Done".into(), theme::OK),
        Phase::Stopped => ("Stopped".into(), theme::WARN),
        Phase::Failed(_) => ("Failed".into(), theme::ERROR),
    }
}

/// Draws the tray; returns what the user did.
pub fn show(
    ui: &mut egui::Ui,
    s: &Suggestions,
    inspected: Option<Inspected>,
    editor_font: &FontId,
) -> Option<TrayAction> {
    let mut action = None;
    // Header: what was asked, where it stands, and the job controls.
    ui.horizontal(|ui| {
        ui.label(RichText::new(&s.title).font(theme::strong(14.0)));
        let (text, color) = phase_pill(&s.phase);
        theme::pill(ui, &text, color);
        // A spinner while nothing visible moves; once tokens stream, they are the progress.
        if s.is_running() && !matches!(s.phase, Phase::Stopping | Phase::Streaming) {
            ui.spinner();
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui
                .button(format!("{} Discard", icon::CROSS))
                .on_hover_text("Close the suggestions; the document stays as it is")
                .clicked()
            {
                action = Some(TrayAction::Discard);
            }
            if s.is_running() {
                if ui
                    .add_enabled(
                        s.phase != Phase::Stopping,
                        egui::Button::new(format!("{} Stop", icon::STOP)),
                    )
                    .on_hover_text("Stop generating (Esc)")
                    .clicked()
                {
                    action = Some(TrayAction::Stop);
                }
            } else if ui
                .button(format!("{} Regenerate", icon::REGENERATE))
                .on_hover_text("Ask again with the current settings (a new seed unless greedy)")
                .clicked()
            {
                action = Some(TrayAction::Regenerate);
            }
        });
    });

    if let Some(t) = &s.trimmed {
        theme::notice_frame(theme::WARN).show(ui, |ui| {
            ui.add(
                egui::Label::new(
                    RichText::new(format!(
                        "{} The first {} characters of the document were left out to fit the \
                         model's {}-token context.",
                        icon::WARNING,
                        theme::thousands(t.dropped_chars),
                        theme::thousands(t.context_tokens)
                    ))
                    .color(theme::WARN)
                    .size(12.5),
                )
                .wrap(),
            );
        });
    }
    if let Phase::Failed(err) = &s.phase {
        theme::notice_frame(theme::ERROR).show(ui, |ui| {
            ui.add(
                egui::Label::new(
                    RichText::new(format!("{} {err}", icon::WARNING))
                        .color(theme::ERROR)
                        .size(12.5),
                )
                .wrap(),
            );
            ui.label(
                RichText::new("The document was not changed.")
                    .color(theme::TEXT_WEAK)
                    .size(12.0),
            );
        });
    }
    if s.anchor.kind == InsertKind::Replacement {
        let sel = s.anchor.selected_text();
        let preview: String = sel.chars().take(160).collect();
        ui.label(
            RichText::new(format!(
                "Replaces: “{}{}”",
                preview.trim(),
                if sel.chars().count() > 160 { "…" } else { "" }
            ))
            .color(theme::TEXT_FAINT)
            .size(12.0),
        );
    }

    let n = s.candidates.len();
    let show_context = s.anchor.kind == InsertKind::Continuation;
    if show_context && n > 1 {
        ui.label(
            RichText::new(s.anchor.context_tail(140))
                .color(theme::TEXT_FAINT)
                .size(13.0),
        );
    }
    ui.add_space(theme::space::XS);
    egui::ScrollArea::vertical()
        .id_salt("tray-scroll")
        .auto_shrink([false, false])
        .stick_to_bottom(s.is_running())
        .show(ui, |ui| {
            ui.columns(n, |cols| {
                for (i, col) in cols.iter_mut().enumerate() {
                    let context = (show_context && n == 1).then(|| s.anchor.context_tail(220));
                    let a = candidate_card(col, s, i, context.as_deref(), inspected, editor_font);
                    if a.is_some() {
                        action = a;
                    }
                }
            });
            if s.candidates.iter().any(|c| !c.tokens.is_empty()) {
                ui.label(
                    RichText::new(
                        "Click any word to see what else the model considered. Underlined words \
                         were close calls.",
                    )
                    .size(11.5)
                    .color(theme::TEXT_FAINT),
                );
            }
        });
    action
}

fn stop_label(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Eos => "ended",
        StopReason::MaxTokens => "at the limit",
        StopReason::ContextFull => "context full",
        StopReason::Cancelled => "stopped",
    }
}

fn candidate_card(
    ui: &mut egui::Ui,
    s: &Suggestions,
    i: usize,
    context: Option<&str>,
    inspected: Option<Inspected>,
    editor_font: &FontId,
) -> Option<TrayAction> {
    let c = &s.candidates[i];
    let n = s.candidates.len();
    let mut action = None;
    let feeding = s.is_running() && (s.target == Target::All || s.target == Target::One(i));
    let streaming_here = feeding && !c.is_done();
    theme::card().show(ui, |ui| {
        ui.set_width(ui.available_width());
        if n > 1 {
            ui.label(
                RichText::new(format!("Alternative {}", i + 1))
                    .font(theme::strong(12.5))
                    .color(theme::TEXT_WEAK),
            );
        }
        let inspected_token = inspected.filter(|x| x.candidate == i).map(|x| x.token);
        if c.tokens.is_empty() {
            let waiting = if streaming_here {
                "Writing…"
            } else if c.is_done() {
                "Nothing was generated."
            } else {
                "Waiting…"
            };
            if let Some(ctx) = context {
                ui.label(
                    RichText::new(ctx)
                        .font(editor_font.clone())
                        .color(theme::TEXT_FAINT),
                );
            }
            ui.label(RichText::new(waiting).italics().color(theme::TEXT_FAINT));
        } else if let Some((token, rect)) =
            token_text(ui, c, context, inspected_token, streaming_here, editor_font)
        {
            action = Some(TrayAction::Inspect {
                candidate: i,
                token,
                rect,
            });
        }
        ui.add_space(theme::space::S);
        ui.horizontal(|ui| {
            let can_accept = !c.text.trim().is_empty() && !streaming_here;
            let label = if n > 1 {
                format!("Accept alternative {}", i + 1)
            } else {
                "Accept".to_string()
            };
            let r = ui
                .add_enabled(
                    can_accept,
                    theme::primary_button(&format!("{} Accept", icon::CHECK)),
                )
                .accessible_name(label)
                .on_hover_text("Insert this text into the document (Ctrl+Z undoes it)");
            if r.clicked() {
                action = Some(TrayAction::Accept(i));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let mut stats = stats_line(c, streaming_here);
                if c.forced > 0 {
                    stats = format!("edited at word {} · {stats}", c.forced);
                }
                ui.add(
                    egui::Label::new(RichText::new(stats).size(11.5).color(theme::TEXT_FAINT))
                        .truncate(),
                );
            });
        });
    });
    action
}

fn stats_line(c: &Candidate, streaming: bool) -> String {
    let mut parts = Vec::new();
    if let Some(st) = &c.stats
        && st.generated_tokens > 0
    {
        parts.push(format!("first token {:.0} ms", st.time_to_first_token_ms));
    }
    if let Some(tps) = c.tokens_per_s() {
        parts.push(format!("{tps:.1} tok/s"));
    }
    if !c.tokens.is_empty() {
        parts.push(format!("{} tokens", c.tokens.len()));
    }
    if let Some(stop) = c.stop
        && !streaming
    {
        parts.push(stop_label(stop).to_string());
    }
    parts.join(" · ")
}

/// Probability below which a word is underlined as "the model was unsure here".
const UNSURE: f32 = 0.06;

/// Lays out the candidate's tokens as one wrapped text, each clickable; returns the clicked
/// token and its rect.
fn token_text(
    ui: &mut egui::Ui,
    c: &Candidate,
    context: Option<&str>,
    inspected: Option<usize>,
    streaming: bool,
    font: &FontId,
) -> Option<(usize, egui::Rect)> {
    let width = ui.available_width();
    let context_chars = context.map_or(0, |t| t.chars().count());
    let build = |hover: Option<usize>| -> LayoutJob {
        let mut job = LayoutJob::default();
        job.wrap.max_width = width;
        if let Some(ctx) = context {
            job.append(
                ctx,
                0.0,
                TextFormat::simple(font.clone(), theme::TEXT_FAINT),
            );
        }
        for (k, t) in c.tokens.iter().enumerate() {
            let mut f = TextFormat::simple(font.clone(), theme::TEXT);
            if k < c.forced {
                f.color = Color32::from_rgb(0xf6, 0xc9, 0xb4);
            }
            if Some(k) == inspected {
                f.background = theme::ACCENT.gamma_multiply(0.35);
            } else if Some(k) == hover {
                f.background = theme::SURFACE_HI;
            }
            // Underline the word, not the space before it.
            let word_start = t.text.len() - t.text.trim_start().len();
            let (space, word) = t.text.split_at(word_start);
            if !space.is_empty() {
                job.append(space, 0.0, f.clone());
            }
            if t.logprob.exp() < UNSURE {
                f.underline = Stroke::new(1.0, theme::WARN.gamma_multiply(0.35));
            }
            job.append(word, 0.0, f);
        }
        job
    };
    let galley = ui.fonts_mut(|f| f.layout_job(build(None)));
    let (rect, response) = ui.allocate_exact_size(galley.size(), egui::Sense::click());
    let full_text = c.text.clone();
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, full_text.clone()));
    let hit = |pos: egui::Pos2| hit_token(&galley, rect, context_chars, c, pos);
    let hovered = response.hover_pos().and_then(hit);
    let clicked = if response.clicked() {
        response.interact_pointer_pos().and_then(hit)
    } else {
        None
    };
    let galley = if hovered.is_some() {
        ui.fonts_mut(|f| f.layout_job(build(hovered)))
    } else {
        galley
    };
    let painter = ui.painter();
    painter.galley(rect.min, galley.clone(), theme::TEXT);
    if streaming {
        let end = galley.pos_from_cursor(galley.end());
        let caret = egui::Rect::from_min_size(
            rect.min + end.min.to_vec2() + egui::vec2(2.0, 2.0),
            egui::vec2(7.0, end.height() - 4.0),
        );
        let t = ui.input(|i| i.time);
        let alpha = 0.45 + 0.35 * (t * 4.0).sin() as f32;
        painter.rect_filled(caret, 1.0, theme::ACCENT.gamma_multiply(alpha));
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_millis(60));
    }
    if hovered.is_some() {
        ui.ctx().set_cursor_icon(egui::CursorIcon::PointingHand);
    }
    let token = clicked?;
    // The rect of the clicked token, for placing the popup under it.
    let start = context_chars + c.starts[token];
    let end = start + c.tokens[token].text.chars().count().max(1);
    let a = galley.pos_from_cursor(CCursor::new(start));
    let b = galley.pos_from_cursor(CCursor::new(end));
    let token_rect = if (a.min.y - b.min.y).abs() < 1.0 {
        egui::Rect::from_min_max(a.min, b.max)
    } else {
        a
    }
    .translate(rect.min.to_vec2());
    Some((token, token_rect))
}

/// The token under `pos` in a laid-out candidate (`context_chars` of grey context come first).
fn hit_token(
    galley: &egui::Galley,
    rect: egui::Rect,
    context_chars: usize,
    c: &Candidate,
    pos: egui::Pos2,
) -> Option<usize> {
    let local = pos - rect.min;
    let cursor = galley.cursor_from_pos(local);
    let mut ch = cursor.index.0;
    // The cursor sits between characters; take the one under the pointer.
    let at = galley.pos_from_cursor(cursor);
    if local.x < at.min.x && ch > 0 {
        ch -= 1;
    }
    ch.checked_sub(context_chars)
        .and_then(|ch| c.token_at_char(ch))
}

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

fn alt_row(ui: &mut egui::Ui, alt: &TokenAlternative, p: f32, is_current: bool) -> egui::Response {
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

#[cfg(test)]
mod tests {
    use super::*;

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
                    show(ui, s, None, &font);
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
