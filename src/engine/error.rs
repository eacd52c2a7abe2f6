//! What can go wrong with an engine job: every failure arrives as [`super::Event::Failed`]
//! carrying one of these, never as a crash.

use crate::features::faces::FacesError;
use crate::gpu::GpuError;
use crate::models::llm::LlmError;
use crate::models::stylenet::StyleError;

/// Errors reported by the engine. The engine does not log them: whoever receives the
/// [`super::Event::Failed`] shows it and logs it, once.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model failed (bad file, bad prompt, inference error).
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A request's parameters were out of range.
    #[error("{0}")]
    InvalidRequest(String),
    /// The face generator failed (bad file, bad latent, bad request).
    #[error(transparent)]
    Faces(#[from] FacesError),
    /// Style transfer failed (bad image, missing model, bad request).
    #[error(transparent)]
    Style(#[from] StyleError),
    /// A training run failed (its last checkpoint is kept).
    #[error(transparent)]
    Train(#[from] crate::features::train::TrainError),
    /// The job panicked inside the worker; the worker survived and dropped its models.
    #[error("internal error while running the job ({0}); the model will be reloaded")]
    Panicked(String),
    /// The worker thread crashed while this job was queued or running; a new one was started.
    #[error("the inference worker crashed ({0}) and was restarted; run the job again")]
    WorkerRestarted(String),
    /// A remote engine failed (unreachable, refused, malformed answer).
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    /// The worker thread is gone.
    #[error("the inference worker has stopped")]
    WorkerGone,
    /// A thread of the engine could not be started.
    #[error("cannot start an engine thread: {0}")]
    Spawn(std::io::Error),
}

impl EngineError {
    /// The GPU failure behind this error, if the job failed because the GPU did (out of
    /// memory, device lost): the worker then drops the device and, under Auto, runs the job
    /// again on the CPU.
    pub fn gpu_failure(&self) -> Option<&GpuError> {
        match self {
            EngineError::Faces(FacesError::Gpu(g)) => Some(g),
            EngineError::Style(e) => crate::gpu::style_gpu_failure(e),
            _ => None,
        }
    }
}
