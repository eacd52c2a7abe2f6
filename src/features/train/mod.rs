//! Training and fine-tuning on the user's own material: long jobs that run on the engine's
//! long-job lane (see [`crate::long_job::LongJobControl`]), shared by the Train panel, the
//! `atelier train` CLI, the tests and the benchmarks.

pub mod faces;
pub mod write;

use faces::{TrainFacesConfig, TrainFacesError, TrainFacesEvent, TrainFacesReport};
use write::{TrainWriteConfig, TrainWriteError, TrainWriteEvent, TrainWriteReport};

use crate::long_job::LongJobControl;

/// A training job for the engine's long-job lane.
#[derive(Clone, Debug)]
pub enum TrainRequest {
    /// Teach the face generator a folder of pictures.
    Faces(Box<TrainFacesConfig>),
    /// Train a LoRA adapter on the writer's texts.
    Write(Box<TrainWriteConfig>),
}

/// What a training job reports, in order; the report comes last, before the job's terminal
/// event.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// Progress of a pictures run.
    Faces(TrainFacesEvent),
    /// Progress of a writing run.
    Write(Box<TrainWriteEvent>),
    /// A pictures run ended (reached its target or stopped, with a checkpoint written).
    FacesDone(Box<TrainFacesReport>),
    /// A writing run ended (reached its target or stopped, with a checkpoint written).
    WriteDone(Box<TrainWriteReport>),
}

/// Why a training job failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The pictures run failed.
    #[error(transparent)]
    Faces(#[from] TrainFacesError),
    /// The writing run failed.
    #[error(transparent)]
    Write(#[from] TrainWriteError),
}

impl TrainRequest {
    /// A short name for the job's thread ("train-faces", "train-write").
    pub fn thread_name(&self) -> &'static str {
        match self {
            TrainRequest::Faces(_) => "train-faces",
            TrainRequest::Write(_) => "train-write",
        }
    }

    /// Runs the job to its end on this thread, reporting through `on_event`; returns whether
    /// it was stopped before its target.
    pub fn run(
        self,
        control: &LongJobControl,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<bool, TrainError> {
        match self {
            TrainRequest::Faces(config) => {
                let report = faces::run(&config, control, &mut |e| on_event(TrainEvent::Faces(e)))?;
                let stopped = report.stopped;
                on_event(TrainEvent::FacesDone(Box::new(report)));
                Ok(stopped)
            }
            TrainRequest::Write(config) => {
                let result = write::run(&config, control, &mut |e| {
                    on_event(TrainEvent::Write(Box::new(e)))
                });
                let report = match result {
                    // Stopped while reading or loading: nothing to report or resume yet.
                    Err(TrainWriteError::Stopped) => return Ok(true),
                    r => r?,
                };
                let stopped = report.stopped;
                on_event(TrainEvent::WriteDone(Box::new(report)));
                Ok(stopped)
            }
        }
    }
}
