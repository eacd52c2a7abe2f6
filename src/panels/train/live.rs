//! The run in progress as the page shows it: built from the engine's events, drawn by
//! [`super::run_view`]. Pure state, so the event handling is tested without a window.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::{Event, JobHandle, JobId, LongJobControl};
use crate::features::train::TrainEvent;
use crate::features::train::faces::TrainFacesEvent;
use crate::features::train::write::TrainWriteEvent;

/// Which kind of run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// Pictures → the face generator.
    Pictures,
    /// Writing → a LoRA adapter.
    Writing,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEnd {
    /// It reached its last step.
    Finished,
    /// The user stopped it (a checkpoint was written: it can be resumed).
    Stopped,
    /// It failed; the message says why and what to do (the last checkpoint is kept).
    Failed(String),
}

/// A plotted series: its points (step, value).
pub type Series = Vec<(f64, f64)>;

/// A sample continuation of a held-out passage (writing runs).
#[derive(Clone, Debug, PartialEq)]
pub struct TextSample {
    /// After this step.
    pub step: u64,
    /// The passage it continues.
    pub prompt: String,
    /// With the adapter.
    pub adapter: String,
    /// The base model's.
    pub base: String,
}

/// The run in progress, or the last one.
pub struct LiveRun {
    /// Pictures or writing.
    pub kind: RunKind,
    /// The engine's job.
    pub job: JobHandle,
    /// Pause, resume, stop.
    pub control: LongJobControl,
    /// Its folder, once known.
    pub run_dir: Option<PathBuf>,
    /// What it is doing before the first step ("loading the model…").
    pub phase: String,
    /// Steps done.
    pub step: u64,
    /// The step it trains to.
    pub target: u64,
    /// Whether the user paused it.
    pub paused: bool,
    /// Loss curves: D and G (pictures), or training and validation loss (writing).
    pub curves: [Series; 2],
    /// Pictures/s or tokens/s.
    pub speed: f64,
    /// Estimated seconds to the target.
    pub seconds_left: f64,
    /// The newest sample grid, not yet uploaded as a texture.
    pub new_grid: Option<Arc<image::RgbaImage>>,
    /// The step of the newest sample grid.
    pub grid_step: Option<u64>,
    /// The training pictures (pictures runs).
    pub contact_sheet: Option<Arc<image::RgbaImage>>,
    /// Usable pictures (pictures runs) or training tokens (writing runs).
    pub amount: usize,
    /// Held-out tokens (writing runs).
    pub val_tokens: usize,
    /// Measured estimate of one epoch, in seconds (writing runs).
    pub epoch_seconds: Option<f64>,
    /// Validation perplexity: the base model's and the newest (writing runs).
    pub perplexity: Option<(f64, f64)>,
    /// The newest sample continuation (writing runs).
    pub sample: Option<TextSample>,
    /// The newest checkpoint's step.
    pub checkpoint_step: Option<u64>,
    /// The generator or adapter written at the end.
    pub result: Option<PathBuf>,
    /// How it ended (`None` while it runs).
    pub end: Option<RunEnd>,
}

impl LiveRun {
    /// A run just submitted.
    pub fn new(kind: RunKind, job: JobHandle, control: LongJobControl) -> Self {
        Self {
            kind,
            job,
            control,
            run_dir: None,
            phase: "waiting for the training thread".into(),
            step: 0,
            target: 0,
            paused: false,
            curves: [Vec::new(), Vec::new()],
            speed: 0.0,
            seconds_left: 0.0,
            new_grid: None,
            grid_step: None,
            contact_sheet: None,
            amount: 0,
            val_tokens: 0,
            epoch_seconds: None,
            perplexity: None,
            sample: None,
            checkpoint_step: None,
            result: None,
            end: None,
        }
    }

    /// The engine's id of the run's job.
    pub fn job_id(&self) -> JobId {
        self.job.id()
    }

    /// Whether it is still running (paused counts).
    pub fn is_running(&self) -> bool {
        self.end.is_none()
    }

    /// Pauses or resumes it.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if paused {
            self.control.pause();
        } else {
            self.control.resume();
        }
    }

    /// Asks it to stop: it writes a checkpoint and ends.
    pub fn stop(&mut self) {
        self.control.resume();
        self.control.stop();
        self.phase = "stopping: writing a checkpoint".into();
    }

    /// Applies one engine event of this run's job.
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::Started { .. } => self.phase = "preparing".into(),
            Event::Train { event, .. } => self.on_train(*event),
            Event::Finished { .. } => self.end = Some(RunEnd::Finished),
            Event::Cancelled { .. } => self.end = Some(RunEnd::Stopped),
            // The app logs failures; the page shows them.
            Event::Failed { error, .. } => self.end = Some(RunEnd::Failed(error.to_string())),
            _ => {}
        }
        if self.end.is_some() {
            self.paused = false;
        }
    }

    fn on_train(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Faces(e) => self.on_faces(e),
            TrainEvent::Write(e) => self.on_write(*e),
            TrainEvent::FacesDone(report) => {
                self.step = report.step;
                self.result = report.exported.clone();
            }
            TrainEvent::WriteDone(report) => {
                self.step = report.steps;
                self.result = Some(report.adapter.clone());
            }
        }
    }

    fn on_faces(&mut self, event: TrainFacesEvent) {
        match event {
            TrainFacesEvent::Started {
                run_dir,
                pictures,
                contact_sheet,
                step,
                target,
                curves,
                ..
            } => {
                self.run_dir = Some(run_dir);
                self.amount = pictures;
                self.contact_sheet = Some(contact_sheet);
                self.step = step;
                self.target = target;
                self.phase = "training".into();
                let points = |v: &[f32]| -> Series {
                    curves
                        .step
                        .iter()
                        .zip(v)
                        .map(|(&s, &l)| (s as f64, f64::from(l)))
                        .collect()
                };
                self.curves = [points(&curves.d), points(&curves.g)];
            }
            TrainFacesEvent::Step {
                step,
                losses,
                samples_per_s,
                seconds_left,
            } => {
                self.step = step;
                self.speed = samples_per_s;
                self.seconds_left = seconds_left;
                self.curves[0].push((step as f64, f64::from(losses.d())));
                self.curves[1].push((step as f64, f64::from(losses.g)));
            }
            TrainFacesEvent::Samples { step, grid } => {
                self.grid_step = Some(step);
                self.new_grid = Some(grid);
            }
            TrainFacesEvent::Checkpoint { step, .. } => self.checkpoint_step = Some(step),
            TrainFacesEvent::Swd { .. } => {}
            TrainFacesEvent::Exported { path } => self.result = Some(path),
        }
    }

    fn on_write(&mut self, event: TrainWriteEvent) {
        match event {
            TrainWriteEvent::Preparing { what } => self.phase = what,
            TrainWriteEvent::Started {
                run_dir,
                train_tokens,
                val_tokens,
                steps_total,
                epoch_seconds,
                start_step,
                ..
            } => {
                self.run_dir = Some(run_dir);
                self.amount = train_tokens;
                self.val_tokens = val_tokens;
                self.target = steps_total;
                self.step = start_step;
                self.epoch_seconds = Some(epoch_seconds);
                self.phase = "training".into();
            }
            TrainWriteEvent::Step {
                step,
                steps_total,
                loss,
                tokens_per_second,
                seconds_left,
            } => {
                self.step = step;
                self.target = steps_total;
                self.speed = tokens_per_second;
                self.seconds_left = seconds_left;
                self.curves[0].push((step as f64, loss));
            }
            TrainWriteEvent::Validation {
                step,
                loss,
                perplexity,
                base_perplexity,
            } => {
                self.curves[1].push((step as f64, loss));
                self.perplexity = Some((base_perplexity, perplexity));
            }
            TrainWriteEvent::Sample {
                step,
                prompt,
                adapter_text,
                base_text,
            } => {
                self.sample = Some(TextSample {
                    step,
                    prompt,
                    adapter: adapter_text,
                    base: base_text,
                });
            }
            TrainWriteEvent::Checkpoint { step, .. } => self.checkpoint_step = Some(step),
        }
    }

    /// One line for the status bar.
    pub fn status_line(&self) -> String {
        let what = match self.kind {
            RunKind::Pictures => "Training pictures",
            RunKind::Writing => "Training writing",
        };
        match &self.end {
            Some(RunEnd::Finished) => format!("{what}: finished at step {}", self.step),
            Some(RunEnd::Stopped) => format!("{what}: stopped at step {}", self.step),
            Some(RunEnd::Failed(_)) => format!("{what}: failed"),
            None if self.paused => format!("{what}: paused at step {}", self.step),
            None if self.target == 0 => format!("{what}: {}", self.phase),
            None => format!(
                "{what}: step {}/{} · {} left",
                self.step,
                self.target,
                duration(self.seconds_left)
            ),
        }
    }

    /// The speed with its unit.
    pub fn speed_text(&self) -> String {
        match self.kind {
            RunKind::Pictures => format!("{:.1} pictures/s", self.speed),
            RunKind::Writing => format!("{:.0} tokens/s", self.speed),
        }
    }
}

/// "3 min", "45 s", "1 h 20 min".
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "—".into();
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gan::StepLosses;

    fn run() -> LiveRun {
        let job = JobHandle::new(JobId(3));
        let control = LongJobControl::standalone(1);
        LiveRun::new(RunKind::Pictures, job, control)
    }

    fn train(event: TrainEvent) -> Event {
        Event::Train {
            job: JobId(3),
            event: Box::new(event),
        }
    }

    #[test]
    fn steps_extend_the_curves_and_the_end_is_kept() {
        let mut r = run();
        for step in 1..=3 {
            r.on_event(train(TrainEvent::Faces(TrainFacesEvent::Step {
                step,
                losses: StepLosses {
                    d_real: 0.5,
                    d_fake: 0.25,
                    g: 2.0,
                },
                samples_per_s: 60.0,
                seconds_left: 90.0,
            })));
        }
        assert_eq!(r.curves[0], vec![(1.0, 0.75), (2.0, 0.75), (3.0, 0.75)]);
        assert_eq!(r.curves[1].len(), 3);
        assert_eq!(r.step, 3);
        r.target = 10;
        assert!(r.status_line().contains("step 3/10"), "{}", r.status_line());
        r.set_paused(true);
        assert!(r.status_line().contains("paused"));
        r.on_event(Event::Cancelled { job: JobId(3) });
        assert_eq!(r.end, Some(RunEnd::Stopped));
        assert!(!r.paused);
        assert!(!r.is_running());
    }

    #[test]
    fn writing_events_fill_perplexity_and_samples() {
        let mut r = run();
        r.kind = RunKind::Writing;
        r.on_event(train(TrainEvent::Write(Box::new(
            TrainWriteEvent::Validation {
                step: 0,
                loss: 4.0,
                perplexity: 54.6,
                base_perplexity: 54.6,
            },
        ))));
        r.on_event(train(TrainEvent::Write(Box::new(
            TrainWriteEvent::Sample {
                step: 5,
                prompt: "p".into(),
                adapter_text: "a".into(),
                base_text: "b".into(),
            },
        ))));
        assert_eq!(r.perplexity, Some((54.6, 54.6)));
        assert_eq!(r.sample.as_ref().map(|s| s.step), Some(5));
        assert_eq!(r.curves[1], vec![(0.0, 4.0)]);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(42.0), "42 s");
        assert_eq!(duration(185.0), "3 min");
        assert_eq!(duration(4800.0), "1 h 20 min");
        assert_eq!(duration(f64::NAN), "—");
    }
}
