//! The worker thread's loop: owns the models, runs one job at a time, turns every outcome —
//! including a panic — into events.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::Receiver;

use super::faces::{FacesOutcome, FacesWorker};
use super::messages::{EngineError, Event, Request, ScorePrompt, ScoreRequest, WriteRequest};
use super::style::{StyleOutcome, StyleWorker};
use super::{JobHandle, Outbox};
use crate::faces::FacesError;
use crate::gpu::{Backend, Devices, GpuContext};
use crate::models::llm::context::build_prompt;
use crate::models::llm::lora::AdapterSpec;
use crate::models::llm::{GenerateParams, Llm, LlmError, generate};
use crate::models::style::StyleError;

/// State owned by the inference thread.
pub(crate) struct Worker {
    outbox: Outbox,
    /// The devices image models may run on (the renderer's, or a headless one) and what is
    /// uploaded to them.
    devices: Devices,
    /// The user's backend choice, read at the start of every image job.
    backend: Arc<AtomicU8>,
    llm: Option<Llm>,
    /// The face generator and its directions (loaded on first use).
    faces: FacesWorker,
    /// The style networks (loaded on first use).
    style: StyleWorker,
}

/// How a job ended, before it becomes a terminal event.
enum Outcome {
    Done,
    Cancelled,
}

impl Worker {
    pub(crate) fn new(outbox: Outbox, gpu: Option<GpuContext>, backend: Arc<AtomicU8>) -> Self {
        Self {
            outbox,
            devices: Devices::new(gpu),
            backend,
            llm: None,
            faces: FacesWorker::new(),
            style: StyleWorker::new(),
        }
    }

    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        while let Ok(req) = requests.recv() {
            let job = match &req {
                Request::Shutdown => break,
                Request::LoadLlm { job, .. }
                | Request::Write { job, .. }
                | Request::Score { job, .. }
                | Request::Faces { job, .. }
                | Request::Style { job, .. } => job.clone(),
            };
            let id = job.id();
            if debug_panic(&req, "-thread") {
                // Test hook: a crash outside the per-job guard ends the thread, and the engine
                // starts a new one on the next request (see `Engine::submit`).
                panic!("debug panic outside a job (ATELIER_DEBUG_PANIC)");
            }
            let mut panicked = None;
            let result = if job.is_cancelled() {
                // Cancelled while queued: skip it without loading anything.
                Ok(Outcome::Cancelled)
            } else {
                self.outbox.send(Event::Started { job: id });
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.handle(req)))
                    .unwrap_or_else(|panic| {
                        // The model may be half-updated (KV cache): drop it; the next job reloads.
                        self.llm = None;
                        self.faces.reset();
                        self.style.reset();
                        self.devices.reset_models();
                        let message = panic_message(&panic);
                        panicked = Some(message.clone());
                        Err(EngineError::Panicked(message))
                    })
            };
            self.outbox.done(id);
            let event = match result {
                Ok(Outcome::Done) => Event::Finished { job: id },
                Ok(Outcome::Cancelled) => Event::Cancelled { job: id },
                Err(error) => {
                    tracing::error!(job = %id, "{error}");
                    Event::Failed { job: id, error }
                }
            };
            self.outbox.send(event);
            if let Some(message) = panicked {
                tracing::error!(job = %id, "the worker recovered from a crash; models dropped");
                self.outbox
                    .send(Event::WorkerRecovered { job: id, message });
            }
        }
    }

    fn handle(&mut self, req: Request) -> Result<Outcome, EngineError> {
        if debug_panic(&req, "") {
            panic!("debug panic inside a job (ATELIER_DEBUG_PANIC)");
        }
        match req {
            Request::Shutdown => Ok(Outcome::Done),
            Request::LoadLlm { job, path } => {
                // Loading the model again keeps the adapter it runs with.
                let adapter = self
                    .llm
                    .as_ref()
                    .filter(|l| l.info.path == path)
                    .and_then(|l| l.adapter_spec().cloned());
                self.ensure_llm(&job, &path, adapter.as_ref())?;
                Ok(Outcome::Done)
            }
            Request::Write { job, request } => self.write(&job, &request),
            Request::Score { job, request } => self.score(&job, &request),
            Request::Faces { job, request } => {
                let outcome = self.on_backend(|worker, backend| {
                    worker.faces.handle(
                        &job,
                        (*request).clone(),
                        &worker.outbox,
                        &mut worker.devices,
                        backend,
                    )
                })?;
                Ok(match outcome {
                    FacesOutcome::Done => Outcome::Done,
                    FacesOutcome::Cancelled => Outcome::Cancelled,
                })
            }
            Request::Style { job, request } => {
                let outcome = self.on_backend(|worker, backend| {
                    worker.style.handle(
                        &job,
                        (*request).clone(),
                        &worker.outbox,
                        &mut worker.devices,
                        backend,
                    )
                })?;
                Ok(match outcome {
                    StyleOutcome::Done => Outcome::Done,
                    StyleOutcome::Cancelled => Outcome::Cancelled,
                })
            }
        }
    }

    /// Runs an image job on the chosen backend. When the GPU fails (device lost, out of
    /// memory) the device is dropped; under Auto the job then runs again on the CPU.
    fn on_backend<T>(
        &mut self,
        mut run: impl FnMut(&mut Self, Backend) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let backend = self.backend();
        match run(self, backend) {
            Err(e) => {
                let gpu = match &e {
                    EngineError::Faces(FacesError::Gpu(g))
                    | EngineError::Style(StyleError::Gpu(g)) => g,
                    _ => return Err(e),
                };
                self.devices.failed(gpu);
                if backend == Backend::Auto {
                    run(self, Backend::Cpu)
                } else {
                    Err(e)
                }
            }
            ok => ok,
        }
    }

    /// The backend the user chose (see [`super::Engine::set_backend`]).
    fn backend(&self) -> Backend {
        Backend::from_index(self.backend.load(Ordering::Relaxed))
    }

    /// Makes `path` with `adapter` the loaded model, loading it if another (or none) is
    /// loaded, or applying the adapter if only that differs.
    fn ensure_llm(
        &mut self,
        job: &JobHandle,
        path: &Path,
        adapter: Option<&AdapterSpec>,
    ) -> Result<&mut Llm, EngineError> {
        if let Some(llm) = self.llm.as_mut().filter(|l| l.info.path == path) {
            let before = llm.info.adapter.clone();
            llm.set_adapter(adapter)?;
            if llm.info.adapter != before {
                self.outbox.send(Event::ModelLoaded {
                    job: job.id(),
                    info: Box::new(llm.info.clone()),
                });
            }
        }
        let loaded = self.llm.as_ref().is_some_and(|l| l.info.path == path);
        if !loaded {
            self.llm = None; // free the old weights before reading the new ones
            self.outbox.send(Event::ModelLoading {
                job: job.id(),
                path: path.to_path_buf(),
            });
            let llm = Llm::load_with_adapter(path, adapter)?;
            tracing::info!(
                "loaded {} ({:?}) in {:.2}s",
                llm.info.name,
                llm.info.architecture,
                llm.info.load_seconds
            );
            self.outbox.send(Event::ModelLoaded {
                job: job.id(),
                info: Box::new(llm.info.clone()),
            });
            self.llm = Some(llm);
        }
        self.llm.as_mut().ok_or(EngineError::WorkerGone)
    }

    fn write(&mut self, job: &JobHandle, req: &WriteRequest) -> Result<Outcome, EngineError> {
        super::validate_write(req)?;
        let outbox = self.outbox.clone();
        let llm = self.ensure_llm(job, &req.model, req.adapter.as_ref())?;
        let built = build_prompt(llm, &req.task, req.params.max_new_tokens)?;
        let mut prompt = built.ids;
        prompt.extend_from_slice(&req.forced);
        if prompt.len() >= llm.model.context_length() {
            return Err(LlmError::PromptTooLong {
                needed: prompt.len(),
                available: llm.model.context_length(),
            }
            .into());
        }
        outbox.send(Event::PromptReady {
            job: job.id(),
            prompt_tokens: prompt.len(),
            trimmed: built.trimmed,
        });
        for candidate in 0..req.candidates {
            let mut params: GenerateParams = req.params.clone();
            params.sampling.seed = params.sampling.seed.wrapping_add(candidate as u64);
            let id = job.id();
            let result = generate(llm, &prompt, &params, job.flag(), &mut |token| {
                outbox.send(Event::Token {
                    job: id,
                    candidate,
                    token: token.clone(),
                })
            })?;
            outbox.send(Event::CandidateDone {
                job: id,
                candidate,
                result: Box::new(result),
            });
            if job.flag().load(Ordering::Relaxed) {
                return Ok(Outcome::Cancelled);
            }
        }
        Ok(Outcome::Done)
    }

    fn score(&mut self, job: &JobHandle, req: &ScoreRequest) -> Result<Outcome, EngineError> {
        let llm = self.ensure_llm(job, &req.model, req.adapter.as_ref())?;
        let prompt = match &req.prompt {
            ScorePrompt::Ids(ids) => ids.clone(),
            ScorePrompt::Text(text) => {
                let mut ids = match (llm.tokenizer.add_bos(), llm.tokenizer.bos_id()) {
                    (true, Some(b)) => vec![b],
                    _ => Vec::new(),
                };
                ids.extend(llm.tokenizer.encode(text, false)?);
                ids
            }
        };
        if prompt.len() + req.continuation.len() > llm.model.context_length() {
            return Err(LlmError::PromptTooLong {
                needed: prompt.len() + req.continuation.len(),
                available: llm.model.context_length(),
            }
            .into());
        }
        let scores = crate::models::llm::generate::score(
            llm,
            &prompt,
            &req.continuation,
            req.top_k,
            job.flag(),
        )?;
        if job.is_cancelled() {
            return Ok(Outcome::Cancelled);
        }
        self.outbox.send(Event::Scored {
            job: job.id(),
            scores,
        });
        Ok(Outcome::Done)
    }
}

/// Test hook for the self-healing tests: with `ATELIER_DEBUG_PANIC=MARKER` in the
/// environment, a Write job whose text contains `MARKER` + `suffix` panics (`""` inside the
/// job's guard, `"-thread"` outside it). Without the variable nothing is checked.
fn debug_panic(req: &Request, suffix: &str) -> bool {
    let Some(marker) = std::env::var_os("ATELIER_DEBUG_PANIC") else {
        return false;
    };
    let Request::Write { request, .. } = req else {
        return false;
    };
    let needle = format!("{}{suffix}", marker.to_string_lossy());
    let text = serde_json::to_string(&request.task).unwrap_or_default();
    // "-thread" contains the plain marker too: the plain check skips it.
    text.contains(&needle) && (!suffix.is_empty() || !text.contains(&format!("{needle}-thread")))
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}
