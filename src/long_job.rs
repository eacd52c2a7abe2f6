//! How a job that runs for minutes (training) shares the machine: the control the engine's
//! long-job lane (or the CLI, alone) gives it.
//!
//! A long job runs on its own named thread, inside a rayon pool of its own sized by its core
//! budget, and calls [`LongJobControl::checkpoint`] between units of work of a few tens of
//! milliseconds (a layer, a step). That call returns at once in the common case (two atomic
//! loads), blocks while the user paused the job or while an interactive job (Write, Faces,
//! Style) is queued or running, and says when the job was stopped. Stopping is cooperative, as
//! for every engine job: a flag, never a killed thread, so a job can always save what it has.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The long job was asked to stop (Stop in the UI, Ctrl+C, the engine shutting down).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stopped")]
pub struct Stopped;

/// Shared between the engine, the submitter (pause, resume, stop) and the long job itself.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct LongJobControl {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Shared with the job's engine handle: cancelling the handle stops the job.
    stop: Arc<AtomicBool>,
    paused: AtomicBool,
    /// Interactive jobs queued or running on the worker; the long job waits while it is not 0.
    /// Shared with the engine (one counter for every long job).
    interactive: Arc<AtomicUsize>,
    /// Threads the job may use (its rayon pool's size).
    threads: usize,
    /// Woken on resume, stop, and when the last interactive job ends.
    wake: (Mutex<()>, Condvar),
}

/// How often a waiting job looks again without being woken (a wake-up is only an optimisation:
/// the counters are the truth).
const RECHECK: Duration = Duration::from_millis(20);

impl LongJobControl {
    /// A control for a job that runs alone (the CLI, tests, benchmarks): nothing interactive
    /// to yield to.
    pub fn standalone(threads: usize) -> Self {
        Self::with_parts(threads, Arc::default(), Arc::default())
    }

    /// A control that yields while `interactive` (the engine's count of interactive jobs) is
    /// not zero, and stops when `stop` is set.
    pub(crate) fn with_parts(
        threads: usize,
        interactive: Arc<AtomicUsize>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                stop,
                paused: AtomicBool::new(false),
                interactive,
                threads: threads.max(1),
                wake: (Mutex::new(()), Condvar::new()),
            }),
        }
    }

    /// The job's core budget: the size of the thread pool it runs in.
    pub fn threads(&self) -> usize {
        self.inner.threads
    }

    /// A rayon pool of [`Self::threads`] threads named `name-N`, at a lower scheduling
    /// priority than the rest of the process (Linux: nice 10), so the window and the
    /// interactive jobs get the cores first. Long jobs run their parallel work in it.
    pub fn thread_pool(
        &self,
        name: &str,
    ) -> Result<rayon::ThreadPool, rayon::ThreadPoolBuildError> {
        let name = name.to_string();
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads())
            .thread_name(move |i| format!("{name}-{i}"))
            .start_handler(|_| lower_priority())
            .build()
    }

    /// Asks the job to stop at its next checkpoint (it may save first).
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Pauses the job at its next checkpoint.
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::SeqCst);
    }

    /// Lets a paused job go on.
    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
        self.notify();
    }

    /// Whether [`Self::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst)
    }

    /// Whether the job is paused by the user.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::SeqCst)
    }

    /// Whether the job is currently giving way to an interactive job.
    pub fn is_yielding(&self) -> bool {
        self.inner.interactive.load(Ordering::SeqCst) > 0
    }

    /// Called by the long job between units of work: returns `Err(Stopped)` once stopped,
    /// blocks while paused or while an interactive job is queued or running, else returns at
    /// once.
    pub fn checkpoint(&self) -> Result<(), Stopped> {
        loop {
            if self.is_stopped() {
                return Err(Stopped);
            }
            if !self.is_paused() && !self.is_yielding() {
                return Ok(());
            }
            let (lock, cv) = &self.inner.wake;
            let guard = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A lost wake-up only costs one RECHECK: the loop reads the counters again.
            let _ = cv.wait_timeout(guard, RECHECK);
        }
    }

    /// Wakes a job blocked in [`Self::checkpoint`] (the engine calls it when the last
    /// interactive job ends).
    pub(crate) fn notify(&self) {
        let (lock, cv) = &self.inner.wake;
        let _guard = lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cv.notify_all();
    }
}

/// Lowers the calling thread's scheduling priority (nice 10 on Linux; elsewhere nothing), so
/// a long job takes only the CPU time the window and the interactive jobs leave.
pub(crate) fn lower_priority() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_free_checkpoint_returns_at_once_and_stop_is_seen() {
        let c = LongJobControl::standalone(2);
        assert_eq!(c.threads(), 2);
        assert_eq!(c.checkpoint(), Ok(()));
        c.stop();
        assert_eq!(c.checkpoint(), Err(Stopped));
    }

    #[test]
    fn pause_blocks_until_resume() {
        let c = LongJobControl::standalone(1);
        c.pause();
        let worker = c.clone();
        let t = std::thread::spawn(move || {
            let started = Instant::now();
            worker.checkpoint().map(|()| started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(150));
        c.resume();
        let waited = t.join().expect("thread").expect("not stopped");
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
    }

    #[test]
    fn interactive_jobs_make_it_yield_and_stop_ends_a_wait() {
        let interactive = Arc::new(AtomicUsize::new(1));
        let c = LongJobControl::with_parts(1, interactive.clone(), Arc::default());
        assert!(c.is_yielding());
        let worker = c.clone();
        let t = std::thread::spawn(move || worker.checkpoint());
        std::thread::sleep(Duration::from_millis(80));
        c.stop();
        assert_eq!(t.join().expect("thread"), Err(Stopped));
        interactive.store(0, Ordering::SeqCst);
        assert!(!c.is_yielding());
    }
}
