//! The long-job lane: jobs that run for minutes (training) on a thread of their own, so the
//! worker stays free for Write, Faces and Style.
//!
//! Each long job gets a named thread and a rayon pool of its core budget, both at a lower
//! scheduling priority than the rest of the process (so the window's frames and the worker's
//! jobs get the cores first), and yields at every [`LongJobControl::checkpoint`] while an
//! interactive job is queued or running. It reports through the engine's one event channel,
//! like every job, and ends with exactly one terminal event.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::error::EngineError;
use super::family::Outcome;
use super::job::{JobHandle, JobId};
use super::lane::LongJobControl;
use super::messages::Event;
use super::outbox::Outbox;
use super::worker::panic_message;

/// A job for the long-job lane.
pub(crate) trait LongJob: Send + 'static {
    /// What its thread is called, after "atelier-" (e.g. "train-faces").
    fn thread_name(&self) -> String;

    /// Runs the job to its end on the lane's thread, inside a rayon pool of
    /// `control.threads()` threads. It calls `control.checkpoint()` between units of work of
    /// tens of milliseconds, and reports through `report`.
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
    let pool_name = name.clone();
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
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(control.threads())
                .thread_name(move |i| format!("{pool_name}-{i}"))
                .start_handler(|_| lower_priority())
                .build();
            let result = match pool {
                Ok(pool) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pool.install(|| job.run(&control, &report))
                }))
                .unwrap_or_else(|panic| Err(EngineError::Panicked(panic_message(&panic)))),
                Err(e) => Err(EngineError::Spawn(std::io::Error::other(e))),
            };
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

/// Lowers the calling thread's scheduling priority (nice 10 on Linux; elsewhere nothing), so
/// a long job takes only the CPU time the window and the interactive jobs leave.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; on Linux a thread id names one
        // thread for PRIO_PROCESS. A failure only leaves the priority as it was.
        unsafe {
            let tid = libc::gettid();
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        }
    }
}
