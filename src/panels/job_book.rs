//! The jobs a panel submitted and has not seen end, each with what it is for: one book for
//! every panel, so routing, progress and cancellation are written once.

use crate::engine::{Event, JobHandle, JobId};

/// A job a panel submitted, and what the panel knows of it.
pub struct BookedJob<K> {
    /// Its id and cancel flag.
    pub handle: JobHandle,
    /// What it is for (panel-specific).
    pub kind: K,
    /// Steps (samples, tiles) done so far, and in all (0: unknown).
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// Whether the engine has begun it (it may wait behind another panel's job).
    pub started: bool,
}

/// The jobs a panel is waiting on.
pub struct JobBook<K> {
    jobs: Vec<BookedJob<K>>,
}

impl<K> Default for JobBook<K> {
    fn default() -> Self {
        Self { jobs: Vec::new() }
    }
}

/// What the app may ask of any panel's book, whatever its jobs are for.
pub trait Jobs {
    /// Whether `job` is in the book.
    fn owns(&self, job: JobId) -> bool;
    /// Whether no job is waited for.
    fn is_empty(&self) -> bool;
}

impl<K> Jobs for JobBook<K> {
    fn owns(&self, job: JobId) -> bool {
        JobBook::owns(self, job)
    }
    fn is_empty(&self) -> bool {
        JobBook::is_empty(self)
    }
}

/// What the book made of an event.
pub enum Booked<K> {
    /// Not one of this book's jobs.
    Unknown,
    /// The job's state was updated (started); nothing else to do.
    Noted,
    /// An event for the panel to handle, with the job it belongs to.
    Event(Event),
    /// The job ended (finished, cancelled or failed) and left the book.
    Ended {
        /// The job as it was.
        job: BookedJob<K>,
        /// Its failure, if it failed.
        error: Option<crate::engine::EngineError>,
    },
}

impl<K> JobBook<K> {
    /// Records a new job.
    pub fn push(&mut self, handle: JobHandle, kind: K) {
        self.jobs.push(BookedJob {
            handle,
            kind,
            done: 0,
            total: 0,
            started: false,
        });
    }

    /// Whether `job` is in the book.
    pub fn owns(&self, job: JobId) -> bool {
        self.jobs.iter().any(|j| j.handle.id() == job)
    }

    /// The job with this id.
    pub fn get_mut(&mut self, job: JobId) -> Option<&mut BookedJob<K>> {
        self.jobs.iter_mut().find(|j| j.handle.id() == job)
    }

    /// Every job, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &BookedJob<K>> {
        self.jobs.iter()
    }

    /// Whether any job matches.
    pub fn any(&self, pred: impl Fn(&BookedJob<K>) -> bool) -> bool {
        self.jobs.iter().any(pred)
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Cancels every job whose kind matches (their terminal events still arrive).
    pub fn cancel(&mut self, pred: impl Fn(&K) -> bool) {
        for j in self.jobs.iter().filter(|j| pred(&j.kind)) {
            j.handle.cancel();
        }
    }

    /// Cancels every job.
    pub fn cancel_all(&mut self) {
        self.cancel(|_| true);
    }

    /// Takes in an event: `Started` is noted, a terminal event removes the job and hands it
    /// back, anything else of one of the book's jobs is passed on.
    pub fn take(&mut self, event: Event) -> Booked<K> {
        let id = event.job();
        let Some(i) = self.jobs.iter().position(|j| j.handle.id() == id) else {
            return Booked::Unknown;
        };
        match event {
            Event::Started { .. } => {
                self.jobs[i].started = true;
                Booked::Noted
            }
            Event::Finished { .. } | Event::Cancelled { .. } => Booked::Ended {
                job: self.jobs.remove(i),
                error: None,
            },
            Event::Failed { error, .. } => Booked::Ended {
                job: self.jobs.remove(i),
                error: Some(error),
            },
            other => Booked::Event(other),
        }
    }
}
