//! The estimate of a writing run before it starts: the same reading and one timed training
//! pass the run begins with, measured on a named thread at a lower priority.

use std::sync::mpsc::{Receiver, TryRecvError};

use crate::features::train::write::{Survey, TrainWriteConfig, survey};
use crate::long_job::LongJobControl;

/// The estimate of the next writing run.
#[derive(Default)]
pub enum Estimate {
    /// Not asked for (or the form changed since).
    #[default]
    None,
    /// Measuring on a thread.
    Running(Receiver<Result<Survey, String>>),
    /// Measured.
    Ready(Survey),
    /// Could not be measured: why (no text, a model that cannot be trained…).
    Failed(String),
}

impl Estimate {
    /// Measures `config` on a thread (the same reading and one timed pass a run starts with).
    pub fn start(config: TrainWriteConfig, threads: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("atelier-train-estimate".into())
            .spawn(move || {
                crate::long_job::lower_priority();
                let control = LongJobControl::standalone(threads);
                let _ = tx.send(survey(&config, &control).map_err(|e| e.to_string()));
            });
        match spawned {
            Ok(_) => Estimate::Running(rx),
            Err(e) => Estimate::Failed(format!("cannot start the estimate: {e}")),
        }
    }

    pub(super) fn poll(&mut self) {
        if let Estimate::Running(rx) = self {
            *self = match rx.try_recv() {
                Ok(Ok(s)) => Estimate::Ready(s),
                Ok(Err(m)) => Estimate::Failed(m),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => Estimate::Failed("the estimate stopped".into()),
            };
        }
    }
}
