//! Drawing the suggestion tray: the candidates side by side, each word clickable, unsure
//! words marked, with speed and why each stopped.

use egui::text::{CCursor, LayoutJob};
use egui::{Color32, FontId, RichText, Stroke, TextFormat};

use super::suggestions::{
    Candidate, InsertKind, Inspected, Phase, Suggestions, Target, TrayAction,
};
use crate::models::llm::StopReason;
use crate::panels::Tone;
use crate::theme::{self, icon};

/// A pill text and colour for the phase.
pub(super) fn phase_pill(phase: &Phase) -> (String, Tone) {
    match phase {
        Phase::Queued { ahead } => (
            format!(
                "Queued behind {ahead} job{}",
                if *ahead == 1 { "" } else { "s" }
            ),
            Tone::Warn,
        ),
        Phase::Starting => ("Starting…".into(), Tone::Normal),
        Phase::LoadingModel => ("Loading model…".into(), Tone::Normal),
        Phase::Prompting => ("Reading the prompt…".into(), Tone::Normal),
        Phase::Streaming => ("Generating".into(), Tone::Accent),
        Phase::Stopping => ("Stopping…".into(), Tone::Warn),
        Phase::Done => ("Done".into(), Tone::Good),
        Phase::Stopped => ("Stopped".into(), Tone::Warn),
        Phase::Failed(_) => ("Failed".into(), Tone::Bad),
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
        let (text, tone) = phase_pill(&s.phase);
        let color = tone.color();
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

pub(super) fn stop_label(stop: StopReason) -> &'static str {
    match stop {
        StopReason::Eos => "ended",
        StopReason::MaxTokens => "at the limit",
        StopReason::ContextFull => "context full",
        StopReason::Cancelled => "stopped",
    }
}

pub(super) fn candidate_card(
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

pub(super) fn stats_line(c: &Candidate, streaming: bool) -> String {
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
pub(super) const UNSURE: f32 = 0.06;

/// Lays out the candidate's tokens as one wrapped text, each clickable; returns the clicked
/// token and its rect.
pub(super) fn token_text(
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
pub(super) fn hit_token(
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
