//! The server's side of the engine: one [`Engine`] shared by every connection, its events
//! routed to the request that submitted each job, and a bounded queue whose [`Slot`]s a
//! request takes before it reads its body. A request whose client goes away drops its
//! [`JobStream`], which cancels the job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;
use crate::engine::{Engine, Event, JobHandle, JobId};

/// The shared engine and its routing table.
pub struct Hub {
    engine: Engine,
    routes: Mutex<HashMap<JobId, UnboundedSender<Event>>>,
    slots: Arc<Semaphore>,
    queue: usize,
}

impl Hub {
    /// Wraps `engine`, accepting at most `queue` jobs at once (running or waiting), and starts
    /// the thread that routes its events ("atelier-serve-events").
    pub fn start(engine: Engine, queue: usize) -> std::io::Result<Arc<Self>> {
        let hub = Arc::new(Self {
            engine,
            routes: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(queue)),
            queue,
        });
        let weak = Arc::downgrade(&hub);
        std::thread::Builder::new()
            .name("atelier-serve-events".into())
            .spawn(move || route_events(&weak))?;
        Ok(hub)
    }

    /// Takes a queue slot (429 when the queue is full). A request takes it before reading
    /// its body, so bodies are read and decoded for at most `queue` requests at once.
    pub fn reserve(self: &Arc<Self>) -> Result<Slot, ApiError> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::busy(self.queue))?;
        Ok(Slot {
            hub: self.clone(),
            permit,
        })
    }

    /// Takes a slot and submits a job in it: `submit` is given the engine and returns the
    /// job's handle. 429 when full.
    pub fn submit(
        self: &Arc<Self>,
        submit: impl FnOnce(&Engine) -> JobHandle,
    ) -> Result<JobStream, ApiError> {
        self.reserve()?.submit(submit)
    }

    /// Jobs accepted and not yet ended.
    pub fn in_flight(&self) -> usize {
        self.queue - self.slots.available_permits()
    }
}

/// A queue slot held by a request that has not submitted its job yet; dropping it frees
/// the slot.
pub struct Slot {
    hub: Arc<Hub>,
    permit: OwnedSemaphorePermit,
}

impl Slot {
    /// Submits the job that will hold this slot until it ends: `submit` is given the engine
    /// and returns the job's handle.
    pub fn submit(self, submit: impl FnOnce(&Engine) -> JobHandle) -> Result<JobStream, ApiError> {
        let (tx, rx) = unbounded_channel();
        // The routing lock is held across the submission so the job's first event cannot
        // arrive before its route exists.
        let mut routes = self
            .hub
            .routes
            .lock()
            .map_err(|_| ApiError::from(crate::engine::EngineError::WorkerGone))?;
        let job = submit(&self.hub.engine);
        routes.insert(job.id(), tx);
        drop(routes);
        tracing::debug!(
            job = %job.id(),
            "job accepted: {} of {} queue slots taken",
            self.hub.in_flight(),
            self.hub.queue
        );
        Ok(JobStream {
            rx,
            guard: JobGuard {
                job,
                hub: self.hub,
                ended: false,
                _permit: self.permit,
            },
        })
    }
}

/// The events of one job, in order, ending with its terminal event.
pub struct JobStream {
    rx: UnboundedReceiver<Event>,
    guard: JobGuard,
}

impl JobStream {
    /// The next event; `None` after the terminal one.
    pub async fn next(&mut self) -> Option<Event> {
        if self.guard.ended {
            return None;
        }
        let event = self.rx.recv().await;
        match &event {
            Some(e) if e.is_terminal() => self.guard.ended = true,
            None => self.guard.ended = true,
            _ => {}
        }
        event
    }

    /// Stops the job (its terminal event still arrives).
    pub fn cancel(&self) {
        self.guard.job.cancel();
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.guard.job.id()
    }
}

/// Cancels the job when the request is dropped before the job ended (the client left), and
/// frees the queue slot either way.
struct JobGuard {
    job: JobHandle,
    hub: Arc<Hub>,
    ended: bool,
    _permit: OwnedSemaphorePermit,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        if !self.ended {
            tracing::info!(job = %self.job.id(), "client went away: cancelling its job");
            self.job.cancel();
        }
        if let Ok(mut routes) = self.hub.routes.lock() {
            routes.remove(&self.job.id());
        }
    }
}

/// Moves engine events to the requests that wait for them, until the hub is dropped.
fn route_events(hub: &Weak<Hub>) {
    loop {
        let Some(hub) = hub.upgrade() else { return };
        let Some(event) = hub.engine.recv_timeout(Duration::from_millis(50)) else {
            continue;
        };
        if let Ok(routes) = hub.routes.lock()
            && let Some(tx) = routes.get(&event.job())
        {
            // A closed receiver means the request already ended; nothing to deliver.
            let _ = tx.send(event);
        }
    }
}
