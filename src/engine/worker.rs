//! The worker thread's loop ("atelier-inference"): owns the job families (and so every loaded
//! model), runs one job at a time, turns every outcome — including a panic — into events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::Receiver;

use super::error::EngineError;
use super::families::faces::FacesFamily;
use super::families::style::StyleFamily;
use super::families::write::WriteFamily;
use super::family::{JobContext, JobFamily, Outcome};
use super::job::JobHandle;
use super::messages::{Event, Request, Work, WriteJob};
use super::outbox::Outbox;
use crate::gpu::{Backend, Devices, GpuContext};

/// State owned by the inference thread.
pub(crate) struct Worker {
    outbox: Outbox,
    /// The devices image models may run on (the renderer's, or a headless one) and what is
    /// uploaded to them.
    devices: Devices,
    /// The user's backend choice, read at the start of every image job.
    backend: Arc<AtomicU8>,
    write: WriteFamily,
    faces: FacesFamily,
    style: StyleFamily,
}

impl Worker {
    pub(crate) fn new(outbox: Outbox, gpu: Option<GpuContext>, backend: Arc<AtomicU8>) -> Self {
        Self {
            outbox,
            devices: Devices::new(gpu),
            backend,
            write: WriteFamily::new(),
            faces: FacesFamily::new(),
            style: StyleFamily::new(),
        }
    }

    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        while let Ok(req) = requests.recv() {
            let Request::Job { job, work } = req else {
                break;
            };
            let id = job.id();
            if debug_panic(&work, "-thread") {
                // Test hook: a crash outside the per-job guard ends the thread, and the engine
                // starts a new one on the next request (see `Engine::heal`).
                panic!("debug panic outside a job (ATELIER_DEBUG_PANIC)");
            }
            let mut panicked = None;
            let result = if job.is_cancelled() {
                // Cancelled while queued: skip it without loading anything.
                Ok(Outcome::Cancelled)
            } else {
                self.outbox.send(Event::Started { job: id });
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(&job, work)))
                    .unwrap_or_else(|panic| {
                        // The models may be half-updated (KV cache): drop them; the next job
                        // reloads.
                        self.reset();
                        let message = panic_message(&panic);
                        panicked = Some(message.clone());
                        Err(EngineError::Panicked(message))
                    })
            };
            self.outbox.done(id);
            // Not logged here: whoever receives the failure shows and logs it, once.
            self.outbox.send(match result {
                Ok(Outcome::Done) => Event::Finished { job: id },
                Ok(Outcome::Cancelled) => Event::Cancelled { job: id },
                Err(error) => Event::Failed { job: id, error },
            });
            if let Some(message) = panicked {
                tracing::error!(job = %id, "the worker recovered from a crash; models dropped");
                self.outbox
                    .send(Event::WorkerRecovered { job: id, message });
            }
        }
    }

    fn reset(&mut self) {
        self.write.reset();
        self.faces.reset();
        self.style.reset();
        self.devices.reset_models();
    }

    fn handle(&mut self, job: &JobHandle, work: Work) -> Result<Outcome, EngineError> {
        if debug_panic(&work, "") {
            panic!("debug panic inside a job (ATELIER_DEBUG_PANIC)");
        }
        let backend = Backend::from_index(self.backend.load(Ordering::Relaxed));
        let mut cx = JobContext {
            job,
            outbox: &self.outbox,
            devices: &mut self.devices,
            backend,
        };
        match work {
            Work::Write(request) => self.write.run(request, &mut cx),
            Work::Faces(request) => on_backend(&mut self.faces, *request, &mut cx),
            Work::Style(request) => on_backend(&mut self.style, *request, &mut cx),
        }
    }
}

/// Runs an image job on the chosen backend. When the GPU fails (device lost, out of memory)
/// the device is dropped; under Auto the job then runs again on the CPU.
fn on_backend<F: JobFamily>(
    family: &mut F,
    request: F::Request,
    cx: &mut JobContext<'_>,
) -> Result<Outcome, EngineError>
where
    F::Request: Clone,
{
    match family.run(request.clone(), cx) {
        Err(e) => {
            let Some(gpu) = e.gpu_failure() else {
                return Err(e);
            };
            cx.devices.failed(gpu);
            if cx.backend == Backend::Auto {
                cx.backend = Backend::Cpu;
                family.run(request, cx)
            } else {
                Err(e)
            }
        }
        ok => ok,
    }
}

/// Test hook for the self-healing tests: with `ATELIER_DEBUG_PANIC=MARKER` in the
/// environment, a Write job whose text contains `MARKER` + `suffix` panics (`""` inside the
/// job's guard, `"-thread"` outside it). Without the variable nothing is checked.
fn debug_panic(work: &Work, suffix: &str) -> bool {
    let Some(marker) = std::env::var_os("ATELIER_DEBUG_PANIC") else {
        return false;
    };
    let Work::Write(WriteJob::Generate(request)) = work else {
        return false;
    };
    let needle = format!("{}{suffix}", marker.to_string_lossy());
    let text = serde_json::to_string(&request.task).unwrap_or_default();
    // "-thread" contains the plain marker too: the plain check skips it.
    text.contains(&needle) && (!suffix.is_empty() || !text.contains(&format!("{needle}-thread")))
}

/// A panic payload as text.
pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
