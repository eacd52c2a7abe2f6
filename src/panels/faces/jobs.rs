//! The Faces panel's jobs: what each is for, the engine events that update the panel, and
//! what the status bar says about them.

use std::path::PathBuf;

use super::export::{self, FaceExport};
use super::state::{FacesJob, FacesPanel, JobKind};
use crate::engine::{Engine, Event, JobHandle};
use crate::features::faces::{FaceImage, FacesEvent, RenderRequest, WalkRequest};
use crate::panels::PanelContext;
use crate::panels::job_book::{Booked, BookedJob};

impl FacesPanel {
    /// Applies an engine event of one of this panel's jobs.
    pub(super) fn handle_event(&mut self, event: Event, cx: &mut PanelContext<'_>) {
        let id = event.job();
        match self.jobs.take(event) {
            Booked::Event(Event::Faces { event, .. }) => self.on_faces_event(id, event, cx),
            Booked::Ended { job, error } => {
                if let Some(error) = error {
                    self.error = Some(error.to_string());
                }
                self.job_ended(job);
            }
            Booked::Event(_) | Booked::Noted | Booked::Unknown => {}
        }
    }

    fn on_faces_event(
        &mut self,
        id: crate::engine::JobId,
        event: FacesEvent,
        cx: &mut PanelContext<'_>,
    ) {
        match event {
            FacesEvent::Loaded(info) => self.generator = Some(*info),
            FacesEvent::Sample { index, image } => {
                self.samples += 1;
                let Some(job) = self.jobs.get_mut(id) else {
                    return;
                };
                job.done = job.done.max(index + 1);
                if let JobKind::Export { frames, .. } = &mut job.kind.kind {
                    if let Some(slot) = frames.get_mut(index) {
                        *slot = Some(image);
                    }
                    return;
                }
                let Some(&key) = job.kind.keys.get(index) else {
                    return;
                };
                if matches!(job.kind.kind, JobKind::Preview) {
                    // The other pages may use the selected face (Style takes it as a style).
                    let name = self
                        .selected
                        .as_ref()
                        .and_then(|s| s.seed)
                        .map_or_else(|| "Face".to_string(), |s| format!("Face, seed {s}"));
                    cx.shared.selected_face = Some((image.clone(), name));
                    self.preview_image = Some((key, image.clone()));
                }
                let size = job.kind.size;
                self.thumbs.insert(key, size, image);
            }
            FacesEvent::Progress { done, total } => {
                if let Some(job) = self.jobs.get_mut(id) {
                    job.done = done;
                    job.total = total;
                }
            }
            FacesEvent::Directions { directions, .. } => self.directions = Some(directions),
            FacesEvent::WalkFrame {
                frame,
                position,
                pixels,
            } => {
                self.walk.frames = frame;
                self.walk.position = position;
                self.walk.showing = true;
                if pixels.is_some() {
                    self.walk.pending = pixels;
                }
            }
            FacesEvent::Pacing(stats) => self.walk.pacing = Some(stats),
        }
    }

    fn job_ended(&mut self, job: BookedJob<FacesJob>) {
        match job.kind.kind {
            JobKind::Walk
                if self
                    .walk
                    .job
                    .as_ref()
                    .is_some_and(|w| w.id() == job.handle.id()) =>
            {
                self.walk.job = None;
                self.walk.showing = false;
            }
            JobKind::Export { what, path, frames } if !job.handle.is_cancelled() => {
                let frames: Vec<FaceImage> = frames.into_iter().flatten().collect();
                if !frames.is_empty() {
                    self.exports.push(export::write_in_background(
                        what,
                        path,
                        frames,
                        self.ctx.clone(),
                    ));
                }
            }
            _ => {}
        }
    }

    pub(super) fn push_job(&mut self, handle: JobHandle, kind: JobKind, keys: Vec<u64>, size: u32) {
        let total = match &kind {
            JobKind::Export { frames, .. } => frames.len(),
            _ => keys.len(),
        };
        self.jobs
            .push(handle.clone(), FacesJob { kind, keys, size });
        if let Some(job) = self.jobs.get_mut(handle.id()) {
            job.total = total;
        }
    }

    /// Cancels the running jobs of a kind (they are being replaced).
    pub(super) fn cancel(&mut self, is_kind: impl Fn(&JobKind) -> bool) {
        self.jobs.cancel(|j| is_kind(&j.kind));
    }

    /// What the status bar says about Faces work, if anything is happening.
    pub fn status_text(&self) -> Option<String> {
        if self.walk.is_playing() {
            return Some(match &self.walk.pacing {
                Some(p) if p.mean_interval_ms > 0.0 => {
                    format!("Faces: walk {:.0} fps", 1000.0 / p.mean_interval_ms)
                }
                _ => "Faces: walk starting".into(),
            });
        }
        let active: Vec<&BookedJob<FacesJob>> = self
            .jobs
            .iter()
            .filter(|j| !j.handle.is_cancelled())
            .collect();
        // One worker runs every model: say so when a Write or Style job holds it.
        if !active.is_empty() && active.iter().all(|j| !j.started) {
            return Some("Faces: waiting for the running job to finish".into());
        }
        if let Some(j) = active
            .iter()
            .find(|j| matches!(j.kind.kind, JobKind::Export { .. }))
        {
            return Some(format!("Faces: exporting {}/{}", j.done, j.total));
        }
        if let Some(j) = active
            .iter()
            .find(|j| matches!(j.kind.kind, JobKind::Directions))
        {
            return Some(if j.total > 0 {
                format!(
                    "Faces: directions {:.0}%",
                    100.0 * j.done as f32 / j.total as f32
                )
            } else {
                "Faces: loading directions".into()
            });
        }
        let (done, total) = active
            .iter()
            .filter(|j| {
                matches!(
                    j.kind.kind,
                    JobKind::Grid | JobKind::Preview | JobKind::Strips | JobKind::Thumbs
                )
            })
            .fold((0, 0), |(d, t), j| (d + j.done, t + j.total));
        if total > 0 {
            let queued = active.iter().all(|j| !j.started);
            return Some(if queued {
                "Faces: queued".into()
            } else {
                format!("Faces: rendering {done}/{total}")
            });
        }
        None
    }

    /// Exports the selected face or the walk to `path` (the path the save dialog returned;
    /// tests call it directly).
    pub fn export_to(&mut self, engine: Option<&Engine>, what: FaceExport, path: PathBuf) {
        let Some(engine) = engine else {
            return;
        };
        self.walk.stop();
        match what {
            FaceExport::Png(size) => {
                let Some(face) = self.selected.clone() else {
                    return;
                };
                let handle = engine.faces_render(RenderRequest {
                    model: self.model.clone(),
                    faces: vec![face],
                    size,
                });
                self.push_job(handle, export_kind(what, path, 1), Vec::new(), size);
            }
            FaceExport::Gif => {
                if self.walk.keys.len() < 2 {
                    return;
                }
                let frames = gif_frames(self.walk.keys.len(), self.walk.control.speed());
                let handle = engine.faces_walk(WalkRequest {
                    model: self.model.clone(),
                    keyframes: self.walk.keys.clone(),
                    frames,
                    size: 256,
                });
                self.push_job(handle, export_kind(what, path, frames), Vec::new(), 256);
            }
        }
    }

    pub(super) fn poll_exports(&mut self, cx: &mut PanelContext<'_>) {
        crate::panels::poll_exports(&mut self.exports, cx.commands);
    }
}

/// Frames of an exported walk: one loop at the current speed and [`export::GIF_FPS`].
pub(super) fn gif_frames(keys: usize, speed: f32) -> usize {
    let per_key = (export::GIF_FPS / speed.abs().max(0.05)).round() as usize;
    (keys * per_key).clamp(2, 600)
}

fn export_kind(what: FaceExport, path: PathBuf, frames: usize) -> JobKind {
    JobKind::Export {
        what,
        path,
        frames: vec![None; frames],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_loops_once_at_the_walk_speed() {
        assert_eq!(gif_frames(3, 0.5), 150);
        assert_eq!(gif_frames(8, 0.05), 600);
    }
}
