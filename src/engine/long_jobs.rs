//! The long-job lane: jobs that run for minutes (training) on a thread of their own, so the
//! worker stays free for Write, Faces and Style.
//!
//! Each long job gets a named thread at a lower scheduling priority than the rest of the
//! process, and runs its parallel work in the pool [`LongJobControl::thread_pool`] builds (the
//! job's core budget, also at a lower priority), so the window's frames and the worker's jobs
//! get the cores first; it yields at every [`LongJobControl::checkpoint`] while an interactive
//! job is queued or running. It reports through the engine's one event channel,
//! like every job, and ends with exactly one terminal event.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::error::EngineError;
use super::family::Outcome;
use super::job::{JobHandle, JobId};
use super::messages::Event;
use super::outbox::Outbox;
use super::worker::panic_message;
use crate::long_job::{LongJobControl, lower_priority};

/// A job for the long-job lane.
pub(crate) trait LongJob: Send + 'static {
    /// What its thread is called, after "atelier-" (e.g. "train-faces").
    fn thread_name(&self) -> String;

    /// Runs the job to its end on the lane's thread (its parallel work in
    /// `control.thread_pool`). It calls `control.checkpoint()` between units of work of tens of
    /// milliseconds, and reports through `report`.
    fn run(
        self: Box<Self>,
        control: &LongJobControl,
        report: &LongReport<'_>,
    ) -> Result<Outcome, EngineError>;
}

/// How a long job sends its events.
pub(crate) struct LongReport<'a> {
    job: JobId,
    outbox: &'a Outbox,
}

impl LongReport<'_> {
    /// The job's id.
    pub(crate) fn job(&self) -> JobId {
        self.job
    }

    /// Sends an event of this job.
    pub(crate) fn send(&self, event: Event) {
        self.outbox.send(event);
    }
}

/// A control for a new long job: stopping it is cancelling `handle`, and it yields while the
/// worker has jobs (`pending`).
pub(crate) fn control_for(
    handle: &JobHandle,
    threads: usize,
    pending: Arc<AtomicUsize>,
) -> LongJobControl {
    LongJobControl::with_parts(threads, pending, handle.flag_arc())
}

/// Starts `job` on a thread of its own; its events (`Started` first, one terminal event last)
/// go to `outbox`.
pub(crate) fn spawn(
    job: Box<dyn LongJob>,
    handle: JobHandle,
    control: LongJobControl,
    outbox: Outbox,
) -> Result<std::thread::JoinHandle<()>, EngineError> {
    let name = format!("atelier-{}", job.thread_name());
    std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            lower_priority();
            let id = handle.id();
            outbox.send(Event::Started { job: id });
            let report = LongReport {
                job: id,
                outbox: &outbox,
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job.run(&control, &report)
            }))
            .unwrap_or_else(|panic| Err(EngineError::Panicked(panic_message(&panic))));
            outbox.forget(id);
            // Not logged here: whoever receives the failure shows and logs it, once.
            outbox.send(match result {
                Ok(Outcome::Done) => Event::Finished { job: id },
                Ok(Outcome::Cancelled) => Event::Cancelled { job: id },
                Err(error) => Event::Failed { job: id, error },
            });
        })
        .map_err(EngineError::Spawn)
}
