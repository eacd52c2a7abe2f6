//! The inference engine: one named worker thread that owns the loaded models (and, when the
//! GUI runs, clones of the renderer's wgpu device), fed by a request channel. The GUI, the CLI,
//! the tests and the benchmarks all go through it.
//!
//! Jobs run one at a time in submission order; a request sent while another runs gets
//! [`Event::Queued`] with how many jobs are ahead of it. Every job ends with exactly one of
//! [`Event::Finished`], [`Event::Cancelled`] or [`Event::Failed`].

mod faces;
mod job;
mod lane;
mod messages;
mod style;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use faces::{
    FacesEvent, FacesRequest, LiveWalkRequest, MAX_FACES, MAX_WALK_FRAMES, RENDER_BATCH,
    RenderRequest, WalkRequest,
};
pub use job::{JobHandle, JobId};
pub use lane::{LongJobControl, Stopped};
use messages::Request;
pub use messages::{EngineError, Event, ScorePrompt, ScoreRequest, WriteRequest};
pub use style::{StyleEvent, StyleJob};

use crate::remote::RemoteEndpoint;
use crate::remote::runner::{RemoteJob, RemoteReport, RemoteRunner};

/// Checks a write request's ranges (local and remote alike).
pub(crate) fn validate_write(req: &WriteRequest) -> Result<(), EngineError> {
    if !(1..=4).contains(&req.candidates) {
        return Err(EngineError::InvalidRequest(format!(
            "alternatives must be between 1 and 4 (got {})",
            req.candidates
        )));
    }
    req.params
        .sampling
        .validate()
        .map_err(EngineError::InvalidRequest)?;
    if req.params.max_new_tokens == 0 {
        return Err(EngineError::InvalidRequest(
            "max new tokens must be at least 1".into(),
        ));
    }
    Ok(())
}

/// A panic payload as text.
pub(crate) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    worker::panic_message(panic)
}

use crate::gpu::{Backend, GpuContext};

/// Called after every event so a sleeping UI wakes up (`egui::Context::request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The submitting side of the engine. Dropping it stops the worker.
pub struct Engine {
    /// Replaced when a crashed worker thread is restarted (see [`Engine::heal`]).
    requests: Mutex<Sender<Request>>,
    /// Behind a lock so the engine can be shared between threads (`atelier serve`).
    events: Mutex<Receiver<Event>>,
    /// The network thread for remote jobs, started on first use.
    remote: Mutex<Option<RemoteRunner>>,
    outbox: Outbox,
    next_id: AtomicU64,
    gpu: Option<GpuContext>,
    /// The image models' backend choice, shared with the worker.
    backend: Arc<AtomicU8>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Worker threads started after a crash.
    restarts: AtomicUsize,
}

/// Where events go: the channel, the pending-job count, and the waker.
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: Sender<Event>,
    pending: Arc<AtomicUsize>,
    waker: Option<Waker>,
    /// Jobs not yet finished, so dropping the engine can cancel them.
    live: Arc<Mutex<HashMap<JobId, JobHandle>>>,
}

impl Outbox {
    pub(crate) fn send(&self, event: Event) {
        // The receiver only disappears when the engine is being dropped; nothing to do then.
        let _ = self.tx.send(event);
        if let Some(w) = &self.waker {
            w();
        }
    }

    /// Marks a job finished: it no longer counts as pending.
    pub(crate) fn done(&self, job: JobId) {
        self.pending.fetch_sub(1, Ordering::SeqCst);
        self.forget(job);
    }

    /// Drops a finished job from the jobs to cancel on shutdown.
    fn forget(&self, job: JobId) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&job);
        }
    }
}

impl Engine {
    /// Starts the worker thread ("atelier-inference"). `gpu` is the renderer's device when a
    /// window exists; `None` in the CLI and tests.
    pub fn spawn(gpu: Option<GpuContext>, waker: Option<Waker>) -> Result<Self, EngineError> {
        let (req_tx, req_rx) = channel();
        let (ev_tx, ev_rx) = channel();
        let outbox = Outbox {
            tx: ev_tx,
            pending: Arc::new(AtomicUsize::new(0)),
            waker,
            live: Arc::default(),
        };
        let backend = Arc::new(AtomicU8::new(Backend::default().index()));
        let thread = Self::start_worker(&outbox, gpu.clone(), backend.clone(), req_rx)?;
        Ok(Self {
            requests: Mutex::new(req_tx),
            events: Mutex::new(ev_rx),
            remote: Mutex::new(None),
            outbox,
            next_id: AtomicU64::new(1),
            gpu,
            backend,
            thread: Mutex::new(Some(thread)),
            restarts: AtomicUsize::new(0),
        })
    }

    fn start_worker(
        outbox: &Outbox,
        gpu: Option<GpuContext>,
        backend: Arc<AtomicU8>,
        requests: Receiver<Request>,
    ) -> Result<std::thread::JoinHandle<()>, EngineError> {
        let worker = worker::Worker::new(outbox.clone(), gpu, backend);
        std::thread::Builder::new()
            .name("atelier-inference".into())
            .spawn(move || worker.run(requests))
            .map_err(EngineError::Spawn)
    }

    /// Restarts the worker thread if it died (a crash outside a job's own guard, which
    /// catches panics inside jobs): every job it held fails with
    /// [`EngineError::WorkerRestarted`], followed by [`Event::WorkerRecovered`], and a new
    /// thread (models reload on first use) takes the next requests. Called before every
    /// submission; the GUI also calls it each frame. Returns whether it restarted the worker.
    pub fn heal(&self) -> bool {
        let Ok(mut thread) = self.thread.lock() else {
            return false;
        };
        if !thread.as_ref().is_some_and(|t| t.is_finished()) {
            return false;
        }
        let message = match thread.take().map(std::thread::JoinHandle::join) {
            Some(Err(panic)) => worker::panic_message(&panic),
            _ => "the worker thread ended".into(),
        };
        tracing::error!("the inference worker crashed ({message}); restarting it");
        let lost: Vec<JobId> = match self.outbox.live.lock() {
            Ok(live) => live.keys().copied().collect(),
            Err(_) => Vec::new(),
        };
        let (tx, rx) = channel();
        match Self::start_worker(&self.outbox, self.gpu.clone(), self.backend.clone(), rx) {
            Ok(t) => *thread = Some(t),
            Err(e) => tracing::error!("{e}"),
        }
        if let Ok(mut requests) = self.requests.lock() {
            *requests = tx;
        }
        self.restarts.fetch_add(1, Ordering::SeqCst);
        for job in lost {
            self.outbox.done(job);
            self.outbox.send(Event::Failed {
                job,
                error: EngineError::WorkerRestarted(message.clone()),
            });
            self.outbox.send(Event::WorkerRecovered {
                job,
                message: message.clone(),
            });
        }
        true
    }

    /// How many times [`Self::heal`] restarted the worker thread.
    pub fn restarts(&self) -> usize {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Chooses where the image models (Faces, Style) run from the next job on: see
    /// [`Backend`]. The language model is not affected.
    pub fn set_backend(&self, backend: Backend) {
        self.backend.store(backend.index(), Ordering::Relaxed);
    }

    /// The current backend choice.
    pub fn backend(&self) -> Backend {
        Backend::from_index(self.backend.load(Ordering::Relaxed))
    }

    /// Loads (or switches to) a language model.
    pub fn load_llm(&self, path: PathBuf) -> JobHandle {
        self.submit(|job| Request::LoadLlm { job, path })
    }

    /// Starts a text generation: on the worker, or on the request's remote server (those run
    /// on the network thread, beside local jobs rather than behind them).
    pub fn write(&self, request: WriteRequest) -> JobHandle {
        match request.remote.clone() {
            Some(endpoint) => self.submit_remote(|job| RemoteJob::Write {
                job,
                request: Box::new(request),
                endpoint,
            }),
            None => self.submit(|job| Request::Write {
                job,
                request: Box::new(request),
            }),
        }
    }

    /// Lists a remote server's models: [`Event::RemoteModels`], or a failure that says why.
    pub fn remote_models(&self, endpoint: RemoteEndpoint) -> JobHandle {
        self.submit_remote(|job| RemoteJob::Models { job, endpoint })
    }

    /// Scores a continuation teacher-forced.
    pub fn score(&self, request: ScoreRequest) -> JobHandle {
        self.submit(|job| Request::Score {
            job,
            request: Box::new(request),
        })
    }

    /// Loads (or switches to) a face generator without rendering; emits
    /// [`FacesEvent::Loaded`] when it actually loads.
    pub fn load_faces(&self, model: PathBuf) -> JobHandle {
        self.faces(FacesRequest::Load { model })
    }

    /// Renders faces; one [`FacesEvent::Sample`] per face, in batches of [`RENDER_BATCH`], so a
    /// grid fills in as samples finish. Cancel it when the grid changes.
    pub fn faces_render(&self, request: RenderRequest) -> JobHandle {
        self.faces(FacesRequest::Render(request))
    }

    /// Loads the principal directions (disk cache) or computes and caches them, sending
    /// [`FacesEvent::Progress`] meanwhile and then [`FacesEvent::Directions`].
    pub fn faces_directions(&self, model: PathBuf) -> JobHandle {
        self.faces(FacesRequest::Directions { model })
    }

    /// Renders a looping walk's frames (export); one [`FacesEvent::Sample`] per frame.
    pub fn faces_walk(&self, request: WalkRequest) -> JobHandle {
        self.faces(FacesRequest::Walk(request))
    }

    /// Plays a walk live until the handle is cancelled: frames go into the request's texture
    /// (or arrive as pixels), following its [`crate::faces::WalkControl`]. It occupies the
    /// worker while it plays: cancel it before submitting other work.
    pub fn faces_live_walk(&self, request: LiveWalkRequest) -> JobHandle {
        self.faces(FacesRequest::LiveWalk(request))
    }

    /// Submits any Faces job.
    pub fn faces(&self, request: FacesRequest) -> JobHandle {
        self.submit(|job| Request::Faces {
            job,
            request: Box::new(request),
        })
    }

    /// Runs a style transfer: [`StyleEvent::Progress`] per step, then [`StyleEvent::Output`].
    /// Cancel a stale preview's handle before asking for the next one.
    pub fn style(
        &self,
        request: crate::style::StyleRequest,
        pass: crate::style::StylePass,
    ) -> JobHandle {
        self.submit_style(request, pass, false)
    }

    /// [`Engine::style`] for the window's view: on the window's own GPU a result that fits one
    /// tile stays there as a texture ([`StyleEvent::Texture`]); elsewhere, as `style`.
    pub fn style_for_view(
        &self,
        request: crate::style::StyleRequest,
        pass: crate::style::StylePass,
    ) -> JobHandle {
        self.submit_style(request, pass, true)
    }

    fn submit_style(
        &self,
        request: crate::style::StyleRequest,
        pass: crate::style::StylePass,
        to_texture: bool,
    ) -> JobHandle {
        self.submit(|job| Request::Style {
            job,
            request: Box::new(StyleJob {
                request,
                pass,
                to_texture,
            }),
        })
    }

    /// The next event, if one is waiting (for the UI's frame loop).
    pub fn try_recv(&self) -> Option<Event> {
        self.events.lock().ok()?.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event (for the CLI and tests).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.lock().ok()?.recv_timeout(timeout).ok()
    }

    /// Jobs submitted and not yet finished.
    pub fn pending(&self) -> usize {
        self.outbox.pending.load(Ordering::SeqCst)
    }

    /// The GPU context the worker holds, if any (for the status bar).
    pub fn gpu(&self) -> Option<&GpuContext> {
        self.gpu.as_ref()
    }

    /// A new job, recorded so that dropping the engine can cancel it.
    fn new_job(&self) -> JobHandle {
        let job = JobHandle::new(JobId(self.next_id.fetch_add(1, Ordering::Relaxed)));
        if let Ok(mut live) = self.outbox.live.lock() {
            live.insert(job.id(), job.clone());
        }
        job
    }

    fn submit_remote(&self, make: impl FnOnce(JobHandle) -> RemoteJob) -> JobHandle {
        let job = self.new_job();
        self.outbox.send(Event::Queued {
            job: job.id(),
            ahead: 0,
        });
        let failed = match self.remote.lock() {
            Ok(mut runner) => {
                if runner.is_none() {
                    let outbox = self.outbox.clone();
                    let report = Arc::new(move |r: RemoteReport| match r {
                        RemoteReport::Event(e) => outbox.send(e),
                        RemoteReport::Done(id) => outbox.forget(id),
                    });
                    match RemoteRunner::start(report) {
                        Ok(r) => *runner = Some(r),
                        Err(e) => tracing::error!("{e}"),
                    }
                }
                match runner.as_ref() {
                    Some(r) => !r.submit(make(job.clone())),
                    None => true,
                }
            }
            Err(_) => true,
        };
        if failed {
            self.outbox.forget(job.id());
            self.outbox.send(Event::Failed {
                job: job.id(),
                error: EngineError::Remote(crate::remote::RemoteError::Runtime(
                    "the network thread is not running".into(),
                )),
            });
        }
        job
    }

    fn submit(&self, make: impl FnOnce(JobHandle) -> Request) -> JobHandle {
        self.heal();
        let job = self.new_job();
        let ahead = self.outbox.pending.fetch_add(1, Ordering::SeqCst);
        self.outbox.send(Event::Queued {
            job: job.id(),
            ahead,
        });
        let sent = match self.requests.lock() {
            Ok(requests) => requests.send(make(job.clone())).is_ok(),
            Err(_) => false,
        };
        if !sent {
            self.outbox.done(job.id());
            self.outbox.send(Event::Failed {
                job: job.id(),
                error: EngineError::WorkerGone,
            });
        }
        job
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Cancel everything first so the join waits one token at most, not a whole job.
        if let Ok(live) = self.outbox.live.lock() {
            live.values().for_each(JobHandle::cancel);
        }
        if let Ok(requests) = self.requests.lock() {
            let _ = requests.send(Request::Shutdown);
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}
