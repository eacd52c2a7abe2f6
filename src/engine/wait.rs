//! Waiting for one job from a thread that can block (the CLI, `serve`'s handlers, the soak,
//! the tests and the benchmarks): see `Engine::wait`.

use std::time::Duration;

use super::error::EngineError;

/// Why a wait for a job ended without the job finishing or being cancelled.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The job failed.
    #[error(transparent)]
    Failed(#[from] EngineError),
    /// No event of any job arrived for this long: the engine stopped answering.
    #[error("the engine sent nothing for {} s", .0.as_secs())]
    Silent(Duration),
}
