//! What every job family shares: how a job ends ([`Outcome`]), what it gets while it runs
//! ([`JobContext`]) and the [`JobFamily`] trait the worker runs it through.
//!
//! A family (write, faces, style) owns its loaded models and runs one request at a time on the
//! worker thread. Jobs that run for minutes are not a family: they are long jobs, on a lane of
//! their own (`super::long_jobs`).

use super::error::EngineError;
use super::job::JobHandle;
use super::outbox::Outbox;
use crate::gpu::{Backend, Devices};

/// How a job ended when it did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It ran to the end.
    Done,
    /// Its cancel flag stopped it (whatever it produced so far was already sent).
    Cancelled,
}

/// What a job gets from the worker while it runs.
pub(crate) struct JobContext<'a> {
    /// The job: its id and cancel flag.
    pub job: &'a JobHandle,
    /// Where its events go.
    pub outbox: &'a Outbox,
    /// The devices image models may run on, and what is uploaded to them.
    pub devices: &'a mut Devices,
    /// Where the user wants image models to run (read once per job).
    pub backend: Backend,
}

/// A family of jobs on the worker.
pub(crate) trait JobFamily {
    /// What one job of this family asks for.
    type Request;

    /// Runs one job to its end. A failure becomes [`Event::Failed`]; a panic is caught by the
    /// worker, which then calls [`Self::reset`].
    fn run(
        &mut self,
        request: Self::Request,
        cx: &mut JobContext<'_>,
    ) -> Result<Outcome, EngineError>;

    /// Drops every loaded model: after a panic they may be half-updated. The next job
    /// reloads what it needs.
    fn reset(&mut self);
}
