//! The training commands' side of the engine: a [`TrainRequest`] runs on the engine's
//! long-job lane, exactly as the Train panel starts it, and its progress comes back as
//! [`TrainEvent`]s. The first Ctrl+C stops the run the way the panel's Stop does (it writes a
//! checkpoint and reports).

use crate::engine::{Engine, Event, WaitError};
use crate::features::train::{TrainEvent, TrainRequest};
use crate::long_job::LongJobControl;

/// Runs `request` to its end (or its stop) with a budget of `threads` cores, handing each
/// progress event to `on_event`; the report is the last of them (none when a writing run was
/// stopped before its first step). A failed run's error keeps the trainer's message.
pub fn run(
    request: TrainRequest,
    threads: usize,
    mut on_event: impl FnMut(TrainEvent),
) -> anyhow::Result<()> {
    let engine = Engine::spawn(None, None)?;
    let (job, control) = engine.train(request, threads);
    stop_on_ctrl_c(&control);
    engine.wait(job.id(), crate::headless::IDLE, |event| {
        if let Event::Train { event, .. } = event {
            on_event(*event);
        }
        Ok::<(), WaitError>(())
    })?;
    Ok(())
}

/// Stops the job on the first Ctrl+C (it checkpoints and reports); the default handling (end
/// the process) comes back only when the process ends, so a stop is always clean.
fn stop_on_ctrl_c(control: &LongJobControl) {
    let control = control.clone();
    let spawned = std::thread::Builder::new()
        .name("atelier-train-ctrl-c".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if tokio::signal::ctrl_c().await.is_ok() {
                    control.stop();
                }
            });
        });
    if let Err(e) = spawned {
        tracing::warn!("Ctrl+C will end the process without a checkpoint: {e}");
    }
}
