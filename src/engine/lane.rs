//! The long-job lane's control: how a job that runs for minutes (training) shares the machine
//! with the interactive jobs on the worker.
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
    stop: AtomicBool,
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
const RECHECK: Duration = Duration::from_millis(50);

impl LongJobControl {
    /// A control for a job that runs alone (the CLI, tests, benchmarks): nothing interactive
    /// to yield to.
    pub fn standalone(threads: usize) -> Self {
        Self::with_interactive(threads, Arc::default())
    }

    /// A control that yields while `interactive` (the engine's count of interactive jobs) is
    /// not zero.
    pub(crate) fn with_interactive(threads: usize, interactive: Arc<AtomicUsize>) -> Self {
        Self {
            inner: Arc::new(Inner {
                stop: AtomicBool::new(false),
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
            let guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // A lost wake-up only costs one RECHECK: the loop reads the counters again.
            let _ = cv.wait_timeout(guard, RECHECK);
        }
    }

    /// Wakes a job blocked in [`Self::checkpoint`] (the engine calls it when the last
    /// interactive job ends).
    pub(crate) fn notify(&self) {
        let (lock, cv) = &self.inner.wake;
        let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cv.notify_all();
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
        let c = LongJobControl::with_interactive(1, interactive.clone());
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
