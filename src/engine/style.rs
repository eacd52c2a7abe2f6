//! Style jobs on the worker thread: the worker owns the style models ([`StyleModels`], loaded
//! on first use and kept) and runs [`crate::style::run`] for the panel, the CLI, the tests and
//! the benchmark alike. Progress arrives per step (statistics pass, each tile); the cancel flag
//! is polled between tiles and layers, so a stale preview stops as soon as a newer one is asked
//! for.

use super::messages::{EngineError, Event};
use super::{JobHandle, Outbox};
use crate::gpu::{Backend, CPU_LABEL, Devices};
use crate::models::style::StyleError;
use crate::style::{
    GpuStyleOutput, ImageSource, StyleModels, StyleOutput, StylePass, StyleRequest,
};

/// A Style job: one request run as a quick preview or at full resolution.
#[derive(Clone, Debug)]
pub struct StyleJob {
    /// What to restyle and how.
    pub request: StyleRequest,
    /// Preview (small, whole image) or full (output size, tiled when large).
    pub pass: StylePass,
    /// For the window's view: on the window's own device, leave a result that fits one tile
    /// there as a texture ([`StyleEvent::Texture`]) instead of reading it back.
    pub to_texture: bool,
}

/// What a Style job reports.
#[derive(Debug)]
pub enum StyleEvent {
    /// A model file is being loaded for this job (first use).
    Loading {
        /// The ONNX file.
        path: std::path::PathBuf,
    },
    /// `done` of `total` steps (normalisation statistics, then each tile) are finished.
    Progress {
        /// Steps done.
        done: usize,
        /// Steps in all.
        total: usize,
    },
    /// The result (sent once, just before [`Event::Finished`]).
    Output(Box<StyleOutput>),
    /// A result for the window's view computed on the window's own GPU, left there as a
    /// texture for the panel to show (sent instead of [`StyleEvent::Output`], once).
    Texture(Box<GpuStyleOutput>),
}

/// How a style job ended, before it becomes a terminal event.
pub(crate) enum StyleOutcome {
    Done,
    Cancelled,
}

/// The worker's style state.
pub(crate) struct StyleWorker {
    models: StyleModels,
}

impl StyleWorker {
    pub(crate) fn new() -> Self {
        Self {
            models: StyleModels::new(crate::paths::models_dir()),
        }
    }

    /// Drops the loaded models (after a panic they may be half-built); the next job reloads.
    pub(crate) fn reset(&mut self) {
        self.models = StyleModels::new(crate::paths::models_dir());
    }

    pub(crate) fn handle(
        &mut self,
        job: &JobHandle,
        req: StyleJob,
        outbox: &Outbox,
        devices: &mut Devices,
        backend: Backend,
    ) -> Result<StyleOutcome, EngineError> {
        let id = job.id();
        let send = |event: StyleEvent| outbox.send(Event::Style { job: id, event });
        // An unreadable picture fails before a GPU device is opened (the decoded image is
        // cached, so the job does not read it twice).
        if let ImageSource::File(_) = &req.request.content {
            self.models.image(&req.request.content)?;
        }
        let mut gpu = devices.select(backend).map_err(StyleError::from)?;
        outbox.send(Event::Backend {
            job: id,
            device: gpu.as_ref().map_or(CPU_LABEL.into(), |r| r.label()),
        });
        for path in self.models.to_load(&req.request.style) {
            send(StyleEvent::Loading { path });
        }
        let mut progress = |done: usize, total: usize| send(StyleEvent::Progress { done, total });
        let cancel = || job.is_cancelled();
        // A result for the window's view stays on the window's device: the panel's finish
        // shader samples the texture, so nothing is read back (an export reads it back once).
        if let (true, Some(rt)) = (req.to_texture, gpu.as_mut())
            && rt.is_window
        {
            match crate::style::run_to_texture(
                &mut self.models,
                &req.request,
                req.pass,
                &mut progress,
                &cancel,
                rt,
            ) {
                Ok(Some(out)) => {
                    if job.is_cancelled() {
                        return Ok(StyleOutcome::Cancelled);
                    }
                    progress(1, 1);
                    send(StyleEvent::Texture(Box::new(out)));
                    return Ok(StyleOutcome::Done);
                }
                // Too large for the device's limits: tiles blended on the CPU, below.
                Ok(None) => {}
                Err(StyleError::Cancelled) => return Ok(StyleOutcome::Cancelled),
                Err(e) => return Err(e.into()),
            }
        }
        match crate::style::run(
            &mut self.models,
            &req.request,
            req.pass,
            &mut progress,
            &cancel,
            gpu,
        ) {
            Ok(out) => {
                if job.is_cancelled() {
                    return Ok(StyleOutcome::Cancelled);
                }
                send(StyleEvent::Output(Box::new(out)));
                Ok(StyleOutcome::Done)
            }
            Err(StyleError::Cancelled) => Ok(StyleOutcome::Cancelled),
            Err(e) => Err(e.into()),
        }
    }
}
