//! The inference engine, shared by the GUI, the CLI, `serve`, the soak, the tests and the
//! benchmarks. It runs jobs on three kinds of lane:
//!
//! - the **worker** ("atelier-inference", [`worker`]): one thread that owns the loaded models
//!   and runs interactive jobs one at a time in submission order, each through its job family
//!   ([`families`]: write, faces, style; see [`family::JobFamily`]);
//! - the **long-job lane** ([`long_jobs`]): jobs that run for minutes (training), each on a
//!   thread of its own with a core budget, yielding while the worker has jobs
//!   ([`LongJobControl`]);
//! - the **remote lane** ([`remote_lane`]): jobs that run on another server, beside the rest.
//!
//! A request sent while another runs gets [`Event::Queued`] with how many jobs are ahead of
//! it. Every job ends with exactly one of [`Event::Finished`], [`Event::Cancelled`] or
//! [`Event::Failed`]; [`Engine::wait`] waits for that from a thread that may block.

mod error;
mod families;
mod family;
mod job;
mod loaded;
mod long_jobs;
mod messages;
mod outbox;
mod remote_lane;
mod wait;
mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::long_job::{LongJobControl, Stopped};
pub use error::EngineError;
pub use family::Outcome;
pub use job::{JobHandle, JobId};
pub use messages::{Event, ScorePrompt, ScoreRequest, WriteRequest};
pub use outbox::Waker;
pub use wait::WaitError;

use long_jobs::LongJob;
use messages::{Request, Work, WriteJob};
use outbox::{Lane, Outbox};
use remote_lane::{RemoteJob, RemoteReport, RemoteRunner};

use crate::features::faces::{FacesRequest, LiveWalkRequest, RenderRequest, WalkRequest};
use crate::features::style::{StyleJob, StylePass, StyleRequest};
use crate::gpu::{Backend, GpuContext};
use crate::remote::RemoteEndpoint;

/// The submitting side of the engine. Dropping it stops every lane.
pub struct Engine {
    /// Replaced when a crashed worker thread is restarted (see [`Engine::heal`]).
    requests: Mutex<Sender<Request>>,
    /// Behind a lock so the engine can be shared between threads (`atelier serve`).
    events: Mutex<Receiver<Event>>,
    /// The network thread for remote jobs, started on first use.
    remote: Mutex<Option<RemoteRunner>>,
    /// Long jobs' threads, joined on drop.
    long: Mutex<Vec<std::thread::JoinHandle<()>>>,
    outbox: Outbox,
    next_id: AtomicU64,
    gpu: Option<GpuContext>,
    /// The image models' backend choice, shared with the worker.
    backend: Arc<AtomicU8>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Worker threads started after a crash.
    restarts: AtomicUsize,
}

impl Engine {
    /// Starts the worker thread ("atelier-inference"). `gpu` is the renderer's device when a
    /// window exists; `None` in the CLI and tests.
    pub fn spawn(gpu: Option<GpuContext>, waker: Option<Waker>) -> Result<Self, EngineError> {
        let (req_tx, req_rx) = channel();
        let (ev_tx, ev_rx) = channel();
        let outbox = Outbox::new(ev_tx, waker);
        let backend = Arc::new(AtomicU8::new(Backend::default().index()));
        let thread = Self::start_worker(&outbox, gpu.clone(), backend.clone(), req_rx)?;
        Ok(Self {
            requests: Mutex::new(req_tx),
            events: Mutex::new(ev_rx),
            remote: Mutex::new(None),
            long: Mutex::new(Vec::new()),
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
        let (tx, rx) = channel();
        match Self::start_worker(&self.outbox, self.gpu.clone(), self.backend.clone(), rx) {
            Ok(t) => *thread = Some(t),
            Err(e) => tracing::error!("{e}"),
        }
        if let Ok(mut requests) = self.requests.lock() {
            *requests = tx;
        }
        self.restarts.fetch_add(1, Ordering::SeqCst);
        // Only the worker's jobs were lost: long and remote jobs run on threads of their own.
        for job in self.outbox.live_jobs(Some(Lane::Worker)) {
            let job = job.id();
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
        self.submit(Work::Write(WriteJob::Load(path)))
    }

    /// Starts a text generation: on the worker, or on the request's remote server (those run
    /// on the remote lane, beside local jobs rather than behind them).
    pub fn write(&self, request: WriteRequest) -> JobHandle {
        match request.remote.clone() {
            Some(endpoint) => self.submit_remote(|job| RemoteJob::Write {
                job,
                request: Box::new(request),
                endpoint,
            }),
            None => self.submit(Work::Write(WriteJob::Generate(Box::new(request)))),
        }
    }

    /// Lists a remote server's models: [`Event::RemoteModels`], or a failure that says why.
    pub fn remote_models(&self, endpoint: RemoteEndpoint) -> JobHandle {
        self.submit_remote(|job| RemoteJob::Models { job, endpoint })
    }

    /// Scores a continuation teacher-forced.
    pub fn score(&self, request: ScoreRequest) -> JobHandle {
        self.submit(Work::Write(WriteJob::Score(Box::new(request))))
    }

    /// Loads (or switches to) a face generator without rendering; emits
    /// [`crate::features::faces::FacesEvent::Loaded`] when it actually loads.
    pub fn load_faces(&self, model: PathBuf) -> JobHandle {
        self.faces(FacesRequest::Load { model })
    }

    /// Renders faces; one [`crate::features::faces::FacesEvent::Sample`] per face, in batches
    /// of [`crate::features::faces::RENDER_BATCH`], so a grid fills in as samples finish.
    /// Cancel it when the grid changes.
    pub fn faces_render(&self, request: RenderRequest) -> JobHandle {
        self.faces(FacesRequest::Render(request))
    }

    /// Loads the principal directions (disk cache) or computes and caches them, sending
    /// progress meanwhile and then the directions.
    pub fn faces_directions(&self, model: PathBuf) -> JobHandle {
        self.faces(FacesRequest::Directions { model })
    }

    /// Renders a looping walk's frames (export); one sample per frame.
    pub fn faces_walk(&self, request: WalkRequest) -> JobHandle {
        self.faces(FacesRequest::Walk(request))
    }

    /// Plays a walk live until the handle is cancelled: frames go into the request's texture
    /// (or arrive as pixels), following its [`crate::features::faces::WalkControl`]. It
    /// occupies the worker while it plays: cancel it before submitting other work.
    pub fn faces_live_walk(&self, request: LiveWalkRequest) -> JobHandle {
        self.faces(FacesRequest::LiveWalk(request))
    }

    /// Submits any Faces job.
    pub fn faces(&self, request: FacesRequest) -> JobHandle {
        self.submit(Work::Faces(Box::new(request)))
    }

    /// Runs a style transfer: progress per step, then the output.
    /// Cancel a stale preview's handle before asking for the next one.
    pub fn style(&self, request: StyleRequest, pass: StylePass) -> JobHandle {
        self.submit_style(request, pass, false)
    }

    /// [`Engine::style`] for the window's view: on the window's own GPU a result that fits one
    /// tile stays there as a texture; elsewhere, as `style`.
    pub fn style_for_view(&self, request: StyleRequest, pass: StylePass) -> JobHandle {
        self.submit_style(request, pass, true)
    }

    fn submit_style(&self, request: StyleRequest, pass: StylePass, to_texture: bool) -> JobHandle {
        self.submit(Work::Style(Box::new(StyleJob {
            request,
            pass,
            to_texture,
        })))
    }

    /// Starts a training run on the long-job lane with a budget of `threads` cores: its
    /// progress comes as [`Event::Train`], it yields while Write, Faces or Style jobs run, and
    /// the control pauses, resumes and stops it (a stop writes a checkpoint first and ends
    /// the job with [`Event::Cancelled`] after its report).
    pub fn train(
        &self,
        request: crate::features::train::TrainRequest,
        threads: usize,
    ) -> (JobHandle, LongJobControl) {
        self.start_long(Box::new(request), threads)
    }

    /// Starts a long job on the long-job lane with a budget of `threads` cores; the returned
    /// control pauses, resumes and stops it (cancelling the handle stops it too).
    pub(crate) fn start_long(
        &self,
        job: Box<dyn LongJob>,
        threads: usize,
    ) -> (JobHandle, LongJobControl) {
        let handle = self.new_job(Lane::Long);
        let control = long_jobs::control_for(&handle, threads, self.outbox.pending.clone());
        self.outbox.send(Event::Queued {
            job: handle.id(),
            ahead: 0,
        });
        match long_jobs::spawn(job, handle.clone(), control.clone(), self.outbox.clone()) {
            Ok(thread) => {
                if let Ok(mut long) = self.long.lock() {
                    long.retain(|t| !t.is_finished());
                    long.push(thread);
                }
            }
            Err(error) => {
                self.outbox.forget(handle.id());
                self.outbox.send(Event::Failed {
                    job: handle.id(),
                    error,
                });
            }
        }
        (handle, control)
    }

    /// The next event, if one is waiting (for the UI's frame loop).
    pub fn try_recv(&self) -> Option<Event> {
        self.events.lock().ok()?.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event (for threads that route several jobs'
    /// events themselves, such as `serve`'s hub; one job: [`Self::wait`]).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.lock().ok()?.recv_timeout(timeout).ok()
    }

    /// Waits for `job` to end, handing each of its events before the last to `on_event`
    /// (events of other jobs are dropped: use it where this thread waits for one job at a
    /// time). `idle` bounds the time between two events. A failure of the job is
    /// `Err(WaitError::Failed)`; an error from `on_event` ends the wait (the job goes on
    /// unless the caller cancels it).
    pub fn wait<E: From<WaitError>>(
        &self,
        job: JobId,
        idle: Duration,
        mut on_event: impl FnMut(Event) -> Result<(), E>,
    ) -> Result<Outcome, E> {
        loop {
            let Some(event) = self.recv_timeout(idle) else {
                return Err(WaitError::Silent(idle).into());
            };
            if event.job() != job {
                continue;
            }
            match event {
                Event::Finished { .. } => return Ok(Outcome::Done),
                Event::Cancelled { .. } => return Ok(Outcome::Cancelled),
                Event::Failed { error, .. } => return Err(WaitError::Failed(error).into()),
                other => on_event(other)?,
            }
        }
    }

    /// Worker jobs submitted and not yet finished.
    pub fn pending(&self) -> usize {
        self.outbox.pending.load(Ordering::SeqCst)
    }

    /// The GPU context the worker holds, if any (for the status bar).
    pub fn gpu(&self) -> Option<&GpuContext> {
        self.gpu.as_ref()
    }

    /// A new job on `lane`, recorded so that dropping the engine can cancel it.
    fn new_job(&self, lane: Lane) -> JobHandle {
        let job = JobHandle::new(JobId(self.next_id.fetch_add(1, Ordering::Relaxed)));
        self.outbox.record(&job, lane);
        job
    }

    fn submit_remote(&self, make: impl FnOnce(JobHandle) -> RemoteJob) -> JobHandle {
        let job = self.new_job(Lane::Remote);
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

    fn submit(&self, work: Work) -> JobHandle {
        self.heal();
        let job = self.new_job(Lane::Worker);
        let ahead = self.outbox.pending.fetch_add(1, Ordering::SeqCst);
        self.outbox.send(Event::Queued {
            job: job.id(),
            ahead,
        });
        let sent = match self.requests.lock() {
            Ok(requests) => requests
                .send(Request::Job {
                    job: job.clone(),
                    work,
                })
                .is_ok(),
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
        // Cancel everything first so the joins wait one token (or one training step) at
        // most, not a whole job; a long job saves a checkpoint as it stops.
        for job in self.outbox.live_jobs(None) {
            job.cancel();
        }
        if let Ok(requests) = self.requests.lock() {
            let _ = requests.send(Request::Shutdown);
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
        if let Ok(mut long) = self.long.lock() {
            for t in long.drain(..) {
                let _ = t.join();
            }
        }
    }
}
