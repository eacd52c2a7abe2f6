//! Job identity and cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Identifies one request to the engine; events carry it so the UI can route them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The submitter's handle on a job: its id and a cancel flag the worker checks every token or
/// step. A flag rather than a message, because a message would queue behind the running job.
#[derive(Clone, Debug)]
pub struct JobHandle {
    id: JobId,
    cancel: Arc<AtomicBool>,
}

impl JobHandle {
    pub(crate) fn new(id: JobId) -> Self {
        Self {
            id,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// Asks the worker to stop this job (or skip it if it has not started).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    pub(crate) fn flag(&self) -> &AtomicBool {
        &self.cancel
    }

    /// The cancel flag itself, for a long job's control to share.
    pub(crate) fn flag_arc(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }
}
