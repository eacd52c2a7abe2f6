//! Language-model jobs on the worker: loading a GGUF model, generating text, scoring a
//! continuation. The family keeps the models it loaded in a small least-recently-used set
//! ([`LoadedSet`]), so switching between two models does not reload either.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::engine::error::EngineError;
use crate::engine::family::{JobContext, JobFamily, Outcome};
use crate::engine::job::JobHandle;
use crate::engine::loaded::LoadedSet;
use crate::engine::messages::{Event, ScorePrompt, ScoreRequest, WriteJob, WriteRequest};
use crate::engine::outbox::Outbox;
use crate::fsutil::FileStamp;
use crate::models::llm::context::build_prompt;
use crate::models::llm::lora::AdapterSpec;
use crate::models::llm::{GenerateParams, Llm, LlmError, generate};

/// Most bytes of model files kept loaded at once: both default models (98 + 253 MB) fit, a
/// large model stays alone.
const KEEP_BYTES: u64 = 1 << 30;

/// Most language models kept loaded at once.
const KEEP_MODELS: usize = 3;

/// The worker's language models.
pub(crate) struct WriteFamily {
    models: LoadedSet<Llm>,
    /// The model the last job used: switching to another one that is still loaded is
    /// announced with `ModelLoaded` too, so the UI always knows which one is active.
    active: Option<FileStamp>,
}

impl WriteFamily {
    pub(crate) fn new() -> Self {
        Self {
            models: LoadedSet::new(KEEP_BYTES, KEEP_MODELS),
            active: None,
        }
    }
}

impl JobFamily for WriteFamily {
    type Request = WriteJob;

    fn run(&mut self, request: WriteJob, cx: &mut JobContext<'_>) -> Result<Outcome, EngineError> {
        match request {
            WriteJob::Load(path) => {
                // Loading the model again keeps the adapter it runs with.
                let adapter = FileStamp::of(&path)
                    .ok()
                    .and_then(|stamp| self.models.peek(&stamp))
                    .and_then(|l| l.adapter_spec().cloned());
                self.ensure(cx.job, cx.outbox, &path, adapter.as_ref())?;
                Ok(Outcome::Done)
            }
            WriteJob::Generate(request) => self.write(cx.job, cx.outbox, &request),
            WriteJob::Score(request) => self.score(cx.job, cx.outbox, &request),
        }
    }

    fn reset(&mut self) {
        self.models.clear();
        self.active = None;
    }
}

/// Checks a write request's ranges (local and remote alike).
pub(crate) fn validate_write(req: &WriteRequest) -> Result<(), EngineError> {
    if !(1..=4).contains(&req.candidates) {
        return Err(EngineError::InvalidRequest(format!(
            "alternatives must be between 1 and 4 (got {})",
            req.candidates
        )));
    }
    req.params
        .sampling
        .validate()
        .map_err(EngineError::InvalidRequest)?;
    if req.params.max_new_tokens == 0 {
        return Err(EngineError::InvalidRequest(
            "max new tokens must be at least 1".into(),
        ));
    }
    Ok(())
}

impl WriteFamily {
    /// The model in `path` as the file is now with `adapter` applied, loading it unless it is
    /// already loaded (then only the adapter changes, if it differs).
    fn ensure(
        &mut self,
        job: &JobHandle,
        outbox: &Outbox,
        path: &Path,
        adapter: Option<&AdapterSpec>,
    ) -> Result<&mut Llm, EngineError> {
        let stamp = FileStamp::of(path).map_err(|source| LlmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if self.models.get_mut(&stamp).is_none() {
            // Free what must go before reading the new weights.
            self.models.make_room(&stamp, stamp.len);
            outbox.send(Event::ModelLoading {
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
            outbox.send(Event::ModelLoaded {
                job: job.id(),
                info: Box::new(llm.info.clone()),
            });
            let cost = stamp.len;
            self.active = Some(stamp.clone());
            return Ok(self.models.insert(stamp, cost, llm));
        }
        let mut switched = self.active.as_ref() != Some(&stamp);
        let llm = self.models.get_mut(&stamp).ok_or(EngineError::WorkerGone)?;
        let before = llm.info.adapter.clone();
        llm.set_adapter(adapter)?;
        switched |= llm.info.adapter != before;
        if switched {
            outbox.send(Event::ModelLoaded {
                job: job.id(),
                info: Box::new(llm.info.clone()),
            });
            self.active = Some(stamp);
        }
        Ok(llm)
    }

    fn write(
        &mut self,
        job: &JobHandle,
        outbox: &Outbox,
        req: &WriteRequest,
    ) -> Result<Outcome, EngineError> {
        validate_write(req)?;
        let llm = self.ensure(job, outbox, &req.model, req.adapter.as_ref())?;
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

    fn score(
        &mut self,
        job: &JobHandle,
        outbox: &Outbox,
        req: &ScoreRequest,
    ) -> Result<Outcome, EngineError> {
        let llm = self.ensure(job, outbox, &req.model, req.adapter.as_ref())?;
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
        outbox.send(Event::Scored {
            job: job.id(),
            scores,
        });
        Ok(Outcome::Done)
    }
}
