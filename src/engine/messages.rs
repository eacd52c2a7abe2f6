//! What the UI and the CLI send to the worker, and what comes back.

use std::path::PathBuf;

use super::error::EngineError;
use super::job::{JobHandle, JobId};
use crate::features::faces::{FacesEvent, FacesRequest};
use crate::features::style::{StyleEvent, StyleJob};
use crate::features::train::TrainEvent;
use crate::models::llm::context::{TrimReport, WriteTask};
use crate::models::llm::lora::AdapterSpec;
use crate::models::llm::{GenerateParams, GeneratedToken, GenerationResult, ModelInfo, TokenScore};

/// A text generation job.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WriteRequest {
    /// The GGUF model to run (loaded on first use, then kept).
    pub model: PathBuf,
    /// A LoRA adapter to run the model with (`None`: the base model alone).
    #[serde(default)]
    pub adapter: Option<AdapterSpec>,
    /// What to write.
    pub task: WriteTask,
    /// Sampling and limits.
    pub params: GenerateParams,
    /// How many alternative candidates to generate (1–4); candidate i uses seed + i.
    pub candidates: usize,
    /// Tokens already accepted after the prompt (e.g. up to a swapped-in alternative):
    /// the generation continues after them.
    pub forced: Vec<u32>,
    /// Run on this OpenAI-compatible server instead of the local model (`model` is then
    /// unused). Never serialized: it may carry an API key.
    #[serde(skip)]
    pub remote: Option<crate::remote::RemoteEndpoint>,
}

/// The prompt of a scoring job.
#[derive(Clone, Debug, PartialEq)]
pub enum ScorePrompt {
    /// Text, tokenized as the model expects (BOS where the GGUF says so).
    Text(String),
    /// Exact token ids.
    Ids(Vec<u32>),
}

/// A teacher-forced scoring job.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreRequest {
    /// The GGUF model.
    pub model: PathBuf,
    /// A LoRA adapter to run the model with (`None`: the base model alone).
    pub adapter: Option<AdapterSpec>,
    /// What comes before the continuation.
    pub prompt: ScorePrompt,
    /// The tokens to score.
    pub continuation: Vec<u32>,
    /// Alternatives to report per position.
    pub top_k: usize,
}

/// What one worker job does: a request of one of the worker's job families.
pub(crate) enum Work {
    /// A language-model job (load, generate, score).
    Write(WriteJob),
    /// A Faces job (render, directions, walk, live walk); see [`FacesRequest`].
    Faces(Box<FacesRequest>),
    /// A Style job (preview or full resolution); see [`StyleJob`].
    Style(Box<StyleJob>),
}

/// A language-model job.
pub(crate) enum WriteJob {
    /// Load (or switch to) a language model.
    Load(PathBuf),
    /// Generate text.
    Generate(Box<WriteRequest>),
    /// Score a continuation teacher-forced.
    Score(Box<ScoreRequest>),
}

/// Requests to the worker thread.
pub(crate) enum Request {
    /// Run a job.
    Job {
        /// Its id and cancel flag.
        job: JobHandle,
        /// What it does.
        work: Work,
    },
    /// Finish the current job's cleanup and exit the thread.
    Shutdown,
}

/// Events from the engine, in the order they happen for each job.
#[derive(Debug)]
pub enum Event {
    /// The request was accepted; `ahead` jobs run before it (0: it starts now).
    Queued { job: JobId, ahead: usize },
    /// The job began running on the worker.
    Started { job: JobId },
    /// A model file is being loaded for this job.
    ModelLoading { job: JobId, path: PathBuf },
    /// A model finished loading, or one still loaded became the active one again (no
    /// `ModelLoading` before it then).
    ModelLoaded { job: JobId, info: Box<ModelInfo> },
    /// The prompt is built; `trimmed` says what was left out to fit the context.
    PromptReady {
        job: JobId,
        prompt_tokens: usize,
        trimmed: Option<TrimReport>,
    },
    /// One generated token of candidate `candidate`.
    Token {
        job: JobId,
        candidate: usize,
        token: GeneratedToken,
    },
    /// Candidate `candidate` finished (its result holds timings and why it stopped).
    CandidateDone {
        job: JobId,
        candidate: usize,
        result: Box<GenerationResult>,
    },
    /// Teacher-forced scores, one per continuation token.
    Scored { job: JobId, scores: Vec<TokenScore> },
    /// The models a remote server offers (answer to [`super::Engine::remote_models`]).
    RemoteModels { job: JobId, models: Vec<String> },
    /// Where an image job's model runs: "CPU" or `"GPU · <adapter>"` (for the status bar and
    /// the CLI).
    Backend { job: JobId, device: String },
    /// Progress and results of a Faces job; see [`FacesEvent`].
    Faces { job: JobId, event: FacesEvent },
    /// Progress and result of a Style job; see [`StyleEvent`].
    Style { job: JobId, event: StyleEvent },
    /// Progress and report of a training job (long-job lane); see [`TrainEvent`].
    Train { job: JobId, event: Box<TrainEvent> },
    /// The job finished normally.
    Finished { job: JobId },
    /// The job was stopped by its cancel flag (partial output was already delivered).
    Cancelled { job: JobId },
    /// The job failed; the message is for the user and was logged once by the engine.
    Failed { job: JobId, error: EngineError },
    /// Sent after a job's [`Event::Failed`] when the job crashed (panicked) inside the worker:
    /// the worker caught it, dropped every model (they may be half-updated) and carries on;
    /// models reload on their next use. The GUI shows it and reloads the language model.
    WorkerRecovered { job: JobId, message: String },
}

impl Event {
    /// The job this event belongs to.
    pub fn job(&self) -> JobId {
        match self {
            Event::Queued { job, .. }
            | Event::Started { job }
            | Event::ModelLoading { job, .. }
            | Event::ModelLoaded { job, .. }
            | Event::PromptReady { job, .. }
            | Event::Token { job, .. }
            | Event::CandidateDone { job, .. }
            | Event::Scored { job, .. }
            | Event::RemoteModels { job, .. }
            | Event::Backend { job, .. }
            | Event::Faces { job, .. }
            | Event::Style { job, .. }
            | Event::Train { job, .. }
            | Event::Finished { job }
            | Event::Cancelled { job }
            | Event::Failed { job, .. }
            | Event::WorkerRecovered { job, .. } => *job,
        }
    }

    /// Whether this is the last event of its job.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::Finished { .. } | Event::Cancelled { .. } | Event::Failed { .. }
        )
    }
}
