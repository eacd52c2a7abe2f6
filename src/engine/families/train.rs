//! Training on the long-job lane: a [`TrainRequest`] runs on a thread of its own with its core
//! budget, its progress going out as [`Event::Train`], so the worker stays free for Write,
//! Faces and Style while a run takes minutes.

use crate::engine::error::EngineError;
use crate::engine::family::Outcome;
use crate::engine::long_jobs::{LongJob, LongReport};
use crate::engine::messages::Event;
use crate::features::train::TrainRequest;
use crate::long_job::LongJobControl;

impl LongJob for TrainRequest {
    fn thread_name(&self) -> String {
        TrainRequest::thread_name(self).to_string()
    }

    fn run(
        self: Box<Self>,
        control: &LongJobControl,
        report: &LongReport<'_>,
    ) -> Result<Outcome, EngineError> {
        let job = report.job();
        let stopped = (*self).run(control, &mut |event| {
            report.send(Event::Train {
                job,
                event: Box::new(event),
            })
        })?;
        Ok(if stopped {
            Outcome::Cancelled
        } else {
            Outcome::Done
        })
    }
}
