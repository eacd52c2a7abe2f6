//! The remote lane: the thread that runs remote jobs ("atelier-remote"): a single-threaded tokio runtime for
//! network I/O (no inference happens here), fed by the engine. Remote jobs report through the
//! same events as local ones and do not queue behind local jobs.

use std::sync::Arc;

use futures_util::FutureExt;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::error::EngineError;
use super::families::write::validate_write;
use super::job::{JobHandle, JobId};
use super::messages::{Event, WriteRequest};
use super::worker::panic_message;
use crate::models::llm::LlmError;
use crate::remote::client::{self, http_client};
use crate::remote::keystore::KeyStore;
use crate::remote::{ApiKey, RemoteEndpoint, RemoteError};

/// A remote job.
pub(crate) enum RemoteJob {
    /// Generate text on the request's endpoint.
    Write {
        job: JobHandle,
        request: Box<WriteRequest>,
        endpoint: RemoteEndpoint,
    },
    /// List the endpoint's models (answered with [`Event::RemoteModels`]).
    Models {
        job: JobHandle,
        endpoint: RemoteEndpoint,
    },
}

impl RemoteJob {
    fn job(&self) -> &JobHandle {
        match self {
            RemoteJob::Write { job, .. } | RemoteJob::Models { job, .. } => job,
        }
    }
}

/// How the engine reports a remote job's events: the same outbox as the worker's.
pub(crate) type Report = Arc<dyn Fn(RemoteReport) + Send + Sync>;

/// What a remote job tells the engine.
pub(crate) enum RemoteReport {
    /// An event of the job.
    Event(Event),
    /// The job ended (its terminal event follows): it no longer counts as pending.
    Done(JobId),
}

/// The running thread; dropping it lets the thread finish (after cancelled jobs end).
pub(crate) struct RemoteRunner {
    tx: UnboundedSender<RemoteJob>,
}

impl RemoteRunner {
    /// Starts the "atelier-remote" thread.
    pub(crate) fn start(report: Report) -> Result<Self, RemoteError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        let (tx, mut rx) = unbounded_channel::<RemoteJob>();
        std::thread::Builder::new()
            .name("atelier-remote".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let mut running = tokio::task::JoinSet::new();
                    while let Some(job) = rx.recv().await {
                        running.spawn(run(job, report.clone()));
                        // Reap finished jobs so the set does not grow over a long session.
                        while running.try_join_next().is_some() {}
                    }
                    // The engine is gone: its jobs were cancelled; let them wind down.
                    while running.join_next().await.is_some() {}
                });
            })
            .map_err(|e| RemoteError::Runtime(e.to_string()))?;
        Ok(Self { tx })
    }

    /// Queues a job; false when the thread has ended.
    pub(crate) fn submit(&self, job: RemoteJob) -> bool {
        self.tx.send(job).is_ok()
    }
}

async fn run(job: RemoteJob, report: Report) {
    let handle = job.job().clone();
    let id = handle.id();
    let send = |e: Event| report(RemoteReport::Event(e));
    send(Event::Started { job: id });
    let outcome = std::panic::AssertUnwindSafe(execute(job, &send))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| Err(EngineError::Panicked(panic_message(&panic))));
    report(RemoteReport::Done(id));
    send(match outcome {
        Ok(()) if handle.is_cancelled() => Event::Cancelled { job: id },
        Ok(()) => Event::Finished { job: id },
        // Not logged here: whoever receives the failure shows and logs it, once.
        Err(error) => Event::Failed { job: id, error },
    });
}

async fn execute(job: RemoteJob, send: &(dyn Fn(Event) + Send + Sync)) -> Result<(), EngineError> {
    match job {
        RemoteJob::Models { job, endpoint } => {
            let http = http_client(&endpoint.timeouts)?;
            let key = resolve_key(&endpoint).await?;
            let call = client::Call {
                http: &http,
                endpoint: &endpoint,
                key: key.as_ref(),
            };
            let models = client::list_models(&call).await?;
            send(Event::RemoteModels {
                job: job.id(),
                models,
            });
            Ok(())
        }
        RemoteJob::Write {
            job,
            request,
            mut endpoint,
        } => {
            validate_write(&request)?;
            if !request.forced.is_empty() {
                return Err(RemoteError::Unsupported(
                    "swapping a word and continuing from it needs the local engine: a remote server continues from text, not from token ids".into(),
                )
                .into());
            }
            if request.task.is_empty() {
                return Err(LlmError::EmptyPrompt.into());
            }
            let http = http_client(&endpoint.timeouts)?;
            let key = resolve_key(&endpoint).await?;
            if endpoint.model.trim().is_empty() {
                // No model chosen yet: the server's first one, as its own UI would.
                let call = client::Call {
                    http: &http,
                    endpoint: &endpoint,
                    key: key.as_ref(),
                };
                let models = client::list_models(&call).await?;
                endpoint.model = models.into_iter().next().ok_or_else(|| {
                    RemoteError::Unsupported(format!(
                        "{} offers no models (GET /v1/models is empty)",
                        endpoint.base_url
                    ))
                })?;
            }
            let call = client::Call {
                http: &http,
                endpoint: &endpoint,
                key: key.as_ref(),
            };
            let mut params = request.params.clone();
            for candidate in 0..request.candidates {
                let seed = params.sampling.seed.wrapping_add(candidate as u64);
                let id = job.id();
                let mut on_token = |token: &crate::models::llm::GeneratedToken| {
                    send(Event::Token {
                        job: id,
                        candidate,
                        token: token.clone(),
                    })
                };
                let result = loop {
                    let attempt = client::generate(
                        &call,
                        &request.task,
                        &params,
                        seed,
                        job.flag(),
                        &mut on_token,
                    )
                    .await;
                    match attempt {
                        // Some servers refuse log-probabilities (llama-cpp-python without
                        // logits_all answers 500): the text matters more than the
                        // alternatives, so ask once more without them.
                        Err(RemoteError::Http { status, .. })
                            if params.logprobs > 0 && matches!(status, 400 | 422 | 500 | 501) =>
                        {
                            tracing::info!(
                                "the server refused log-probabilities (HTTP {status}); asking without them"
                            );
                            params.logprobs = 0;
                        }
                        other => break other?,
                    }
                };
                send(Event::CandidateDone {
                    job: id,
                    candidate,
                    result: Box::new(result),
                });
                if job.is_cancelled() {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// The endpoint's key, or the one saved for its address (the keyring may block briefly).
async fn resolve_key(endpoint: &RemoteEndpoint) -> Result<Option<ApiKey>, RemoteError> {
    if let Some(k) = &endpoint.api_key {
        return Ok(Some(k.clone()));
    }
    let base = endpoint.base_url.clone();
    tokio::task::spawn_blocking(move || KeyStore::open().load(&base))
        .await
        .map_err(|e| RemoteError::KeyStore(e.to_string()))?
}
