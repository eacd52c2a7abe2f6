//! Where a job's events go: the engine's one event channel, the count of pending worker jobs
//! (which long jobs yield to) and the UI's waker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use super::job::{JobHandle, JobId};
use super::messages::Event;

/// Which lane runs a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// The worker thread (interactive jobs).
    Worker,
    /// The long-job lane (training).
    Long,
    /// The remote lane (another server).
    Remote,
}

/// Called after every event so a sleeping UI wakes up (`egui::Context::request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// Where events go: the channel, the pending-job count, and the waker. Cheap to clone; every
/// thread of the engine (worker, long jobs, network) holds one.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: Sender<Event>,
    /// Worker jobs submitted and not yet ended: the "interactive" jobs long jobs yield to.
    pub(crate) pending: Arc<AtomicUsize>,
    waker: Option<Waker>,
    /// Jobs not yet finished and their lanes, so dropping the engine can cancel them and a
    /// restarted worker can fail the jobs it lost.
    live: Arc<Mutex<HashMap<JobId, (JobHandle, Lane)>>>,
}

impl Outbox {
    pub(crate) fn new(tx: Sender<Event>, waker: Option<Waker>) -> Self {
        Self {
            tx,
            pending: Arc::new(AtomicUsize::new(0)),
            waker,
            live: Arc::default(),
        }
    }

    /// Sends an event and wakes the UI.
    pub(crate) fn send(&self, event: Event) {
        // The receiver only disappears when the engine is being dropped; nothing to do then.
        let _ = self.tx.send(event);
        if let Some(w) = &self.waker {
            w();
        }
    }

    /// Records a new job so that dropping the engine can cancel it.
    pub(crate) fn record(&self, job: &JobHandle, lane: Lane) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(job.id(), (job.clone(), lane));
        }
    }

    /// Marks a worker job finished: it no longer counts as pending.
    pub(crate) fn done(&self, job: JobId) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
        self.forget(job);
    }

    /// Drops a finished job from the jobs to cancel on shutdown.
    pub(crate) fn forget(&self, job: JobId) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&job);
        }
    }

    /// The jobs still running or queued, on one lane or (`None`) on all.
    pub(crate) fn live_jobs(&self, lane: Option<Lane>) -> Vec<JobHandle> {
        match self.live.lock() {
            Ok(live) => live
                .values()
                .filter(|(_, l)| lane.is_none_or(|lane| *l == lane))
                .map(|(job, _)| job.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}
