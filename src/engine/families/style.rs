//! Style jobs on the worker thread: the worker owns the style models ([`StyleModels`], loaded
//! on first use and kept) and runs [`crate::features::style::run`] for the panel, the CLI, the tests and
//! the benchmark alike. Progress arrives per step (statistics pass, each tile); the cancel flag
//! is polled between tiles and layers, so a stale preview stops as soon as a newer one is asked
//! for.

use crate::engine::error::EngineError;
use crate::engine::family::{JobContext, JobFamily, Outcome};
use crate::engine::messages::Event;
use crate::features::style::{ImageSource, StyleEvent, StyleJob, StyleModels};
use crate::gpu::CPU_LABEL;
use crate::models::stylenet::StyleError;

/// The worker's Style family: the style networks, loaded on first use and kept.
pub(crate) struct StyleFamily {
    models: StyleModels,
}

impl StyleFamily {
    pub(crate) fn new() -> Self {
        Self {
            models: StyleModels::new(crate::paths::models_dir()),
        }
    }
}

impl JobFamily for StyleFamily {
    type Request = StyleJob;

    fn reset(&mut self) {
        self.models = StyleModels::new(crate::paths::models_dir());
    }

    fn run(&mut self, req: StyleJob, cx: &mut JobContext<'_>) -> Result<Outcome, EngineError> {
        let (job, outbox, devices, backend) = (cx.job, cx.outbox, &mut *cx.devices, cx.backend);
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
            match crate::features::style::run_to_texture(
                &mut self.models,
                &req.request,
                req.pass,
                &mut progress,
                &cancel,
                rt,
            ) {
                Ok(Some(out)) => {
                    if job.is_cancelled() {
                        return Ok(Outcome::Cancelled);
                    }
                    progress(1, 1);
                    send(StyleEvent::Texture(Box::new(out)));
                    return Ok(Outcome::Done);
                }
                // Too large for the device's limits: tiles blended on the CPU, below.
                Ok(None) => {}
                Err(StyleError::Cancelled) => return Ok(Outcome::Cancelled),
                Err(e) => return Err(e.into()),
            }
        }
        match crate::features::style::run(
            &mut self.models,
            &req.request,
            req.pass,
            &mut progress,
            &cancel,
            gpu,
        ) {
            Ok(out) => {
                if job.is_cancelled() {
                    return Ok(Outcome::Cancelled);
                }
                send(StyleEvent::Output(Box::new(out)));
                Ok(Outcome::Done)
            }
            Err(StyleError::Cancelled) => Ok(Outcome::Cancelled),
            Err(e) => Err(e.into()),
        }
    }
}
