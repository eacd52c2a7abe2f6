//! The Style panel's jobs: what each is for, the engine events that update the panel, and
//! what the status bar says about them.

use std::path::PathBuf;

use super::export::{self, StyleExport};
use super::finish::Stylised;
use super::state::{JobKind, StyleJobInfo, StylePanel, file_label};
use crate::engine::{Event, JobHandle, JobId};
use crate::features::style::{StyleEvent, StyleRequest};
use crate::panels::PanelContext;
use crate::panels::job_book::Booked;

impl StylePanel {
    /// Applies an engine event of one of this panel's jobs.
    pub(super) fn handle_event(&mut self, event: Event) {
        let id = event.job();
        match self.jobs.take(event) {
            Booked::Event(Event::Style { event, .. }) => self.on_style_event(id, event),
            Booked::Ended { job, error } => {
                self.loading_model = None;
                let Some(error) = error else {
                    return;
                };
                if matches!(job.kind.kind, JobKind::Thumb(_)) {
                    self.gallery.failed = true;
                }
                if !job.handle.is_cancelled() {
                    self.error = Some(error.to_string());
                    if matches!(job.kind.kind, JobKind::Preview | JobKind::Full) {
                        // No full result is coming for the export to wait for.
                        self.pending_export = None;
                    }
                }
            }
            Booked::Event(_) | Booked::Noted | Booked::Unknown => {}
        }
    }

    fn on_style_event(&mut self, id: JobId, event: StyleEvent) {
        match event {
            StyleEvent::Loading { path } => self.loading_model = Some(file_label(&path)),
            StyleEvent::Progress { done, total } => {
                if let Some(job) = self.jobs.get_mut(id) {
                    job.done = done;
                    job.total = total;
                }
            }
            StyleEvent::Output(out) => {
                let Some(job) = self.jobs.get_mut(id) else {
                    return;
                };
                if job.handle.is_cancelled() {
                    return;
                }
                let kind = job.kind.kind;
                let request = job.kind.request.clone();
                self.loading_model = None;
                match kind {
                    JobKind::Thumb(index) => {
                        if let Some(ctx) = &self.ctx {
                            self.gallery.insert(index, out.image, ctx);
                        }
                    }
                    JobKind::Preview | JobKind::Full => self.show_result(
                        kind,
                        request,
                        out.content,
                        Stylised::Pixels(out.stylized),
                        (out.notes, out.seconds, out.report.tiles),
                    ),
                }
            }
            StyleEvent::Texture(out) => {
                let Some(job) = self.jobs.get_mut(id) else {
                    return;
                };
                if job.handle.is_cancelled() {
                    return;
                }
                let (kind, request) = (job.kind.kind, job.kind.request.clone());
                self.loading_model = None;
                self.show_result(
                    kind,
                    request,
                    out.content,
                    Stylised::Texture(out.stylized),
                    (out.notes, out.seconds, 1),
                );
            }
        }
    }

    /// What the status bar says while the panel works.
    pub fn status_text(&self) -> Option<String> {
        let job = self
            .jobs
            .iter()
            .find(|j| matches!(j.kind.kind, JobKind::Preview | JobKind::Full))?;
        Some(match (&self.loading_model, job.kind.kind) {
            // One worker runs every model: say so when a Write or Faces job holds it.
            _ if !job.started => "Style: waiting for the running job to finish".into(),
            (Some(m), _) => format!("Style: loading {m}…"),
            (None, JobKind::Full) if job.total > 1 => {
                format!("Style: full size, step {} of {}", job.done, job.total)
            }
            (None, JobKind::Full) => "Style: rendering at full size…".into(),
            _ => "Style: preview…".into(),
        })
    }

    pub(super) fn cancel(&mut self, is_kind: impl Fn(JobKind) -> bool) {
        self.jobs.cancel(|j| is_kind(j.kind));
    }

    pub(super) fn push(&mut self, handle: JobHandle, kind: JobKind, request: Option<StyleRequest>) {
        self.jobs.push(handle, StyleJobInfo { kind, request });
    }

    /// Called by the app with the path the user chose for an export (tests call it directly):
    /// written once the full-resolution result is there.
    pub fn export_to(&mut self, format: StyleExport, path: PathBuf) {
        self.pending_export = Some((format, export::with_extension(path, format)));
        let full_ready = self.shown.as_ref().is_some_and(|s| !s.preview) && !self.is_busy();
        if full_ready {
            self.start_pending_export();
        }
    }

    pub(super) fn start_pending_export(&mut self) {
        let Some(shown) = &self.shown else {
            return;
        };
        if shown.preview {
            return;
        }
        let Some((format, path)) = self.pending_export.take() else {
            return;
        };
        self.exports.push(export::write_in_background(
            shown.images.content.clone(),
            shown.images.stylised.clone(),
            self.gpu_handles.clone(),
            self.finish,
            format,
            path,
            self.ctx.clone(),
        ));
    }

    pub(super) fn poll_exports(&mut self, cx: &mut PanelContext<'_>) {
        crate::panels::poll_exports(&mut self.exports, cx.commands);
    }
}
