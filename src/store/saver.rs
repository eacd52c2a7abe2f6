//! The autosave thread ("atelier-autosave"): writes files atomically in submission order, off
//! the UI thread, and reports every result back, so the store keeps a change unsaved until it
//! is really on disk.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use crate::fsutil::atomic_write;

/// Work for the autosave thread.
enum SaveJob {
    /// Write these bytes atomically.
    Write { path: PathBuf, bytes: Vec<u8> },
    /// Reply once everything before this was written.
    Flush(Sender<()>),
}

/// How one queued write went.
pub(crate) struct SaveResult {
    /// The file.
    pub path: PathBuf,
    /// `Err` with the reason when it was not written (the old version is intact).
    pub result: std::io::Result<()>,
}

/// The running thread; dropping it finishes the queue first.
pub(crate) struct Saver {
    jobs: Option<Sender<SaveJob>>,
    results: Receiver<SaveResult>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Saver {
    pub(crate) fn spawn() -> Self {
        let (job_tx, job_rx) = channel::<SaveJob>();
        let (result_tx, result_rx) = channel();
        let thread = std::thread::Builder::new()
            .name("atelier-autosave".into())
            .spawn(move || {
                while let Ok(job) = job_rx.recv() {
                    match job {
                        SaveJob::Write { path, bytes } => {
                            let result = atomic_write(&path, &bytes);
                            let _ = result_tx.send(SaveResult { path, result });
                        }
                        SaveJob::Flush(reply) => {
                            let _ = reply.send(());
                        }
                    }
                }
            });
        match thread {
            Ok(thread) => Self {
                jobs: Some(job_tx),
                results: result_rx,
                thread: Some(thread),
            },
            Err(e) => {
                // Without the thread, the store writes synchronously.
                tracing::warn!("cannot start the autosave thread ({e}); saving on the UI thread");
                Self {
                    jobs: None,
                    results: result_rx,
                    thread: None,
                }
            }
        }
    }

    /// Queues a write; false when there is no thread to take it (write it yourself).
    pub(crate) fn queue(&self, path: PathBuf, bytes: Vec<u8>) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|j| j.send(SaveJob::Write { path, bytes }).is_ok())
    }

    /// The results that arrived since the last call.
    pub(crate) fn results(&self) -> Vec<SaveResult> {
        self.results.try_iter().collect()
    }

    /// Waits until every queued write is done (its result is then waiting in
    /// [`Self::results`]).
    pub(crate) fn flush(&self) {
        if let Some(jobs) = &self.jobs {
            let (tx, rx) = channel();
            if jobs.send(SaveJob::Flush(tx)).is_ok() {
                let _ = rx.recv_timeout(Duration::from_secs(10));
            }
        }
    }
}

impl Drop for Saver {
    fn drop(&mut self) {
        self.jobs = None; // closes the channel: the thread finishes its queue and exits
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
