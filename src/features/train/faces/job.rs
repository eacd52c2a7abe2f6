//! The training loop: open (or resume) the run, load the pictures, build the networks, then
//! step until the target, with samples, checkpoints and the run record along the way.
//!
//! Everything heavy runs inside a rayon pool of the job's core budget
//! ([`LongJobControl::threads`]); the loop itself stays on the caller's thread and calls
//! [`LongJobControl::checkpoint`] between steps, and the step between its layers (so a pause,
//! or giving way to an interactive job, takes effect within one layer: tens of milliseconds).
//!
//! Every random draw derives from the seed and the step ([`crate::models::gan::rng`]), so
//! the same seed, settings, pictures and thread count give the same weights, and a resumed
//! run continues exactly as an uninterrupted one would have.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::checkpoint;
use super::model_file;
use super::pictures::PictureSet;
use super::runs::{self, RunRecord, RunState};
use super::sheet::{contact_sheet, sample_grid, save_png};
use super::swd::SwdReference;
use super::{
    StartFrom, SwdPoint, TrainFacesConfig, TrainFacesError, TrainFacesEvent, TrainFacesReport,
    TrainSettings,
};
use crate::long_job::LongJobControl;
use crate::models::gan::rng::{Rng, fill_normal, permutation};
use crate::models::gan::{
    AugmentParams, Discriminator, GanShape, GanTrainer, Generator, IMAGE_SIZE, Policy, StepAugment,
    StepBatch, StepLosses,
};

/// Largest batch accepted (the discriminator's buffers grow with it: about 4 MB a picture).
pub const MAX_BATCH: usize = 128;
/// Largest sample grid.
pub const MAX_SAMPLES: usize = 64;
/// Generated pictures the SWD compares with the training pictures.
pub const SWD_SAMPLES: usize = 512;

/// The purposes of the random streams: stream `index · 8 + kind`.
mod stream {
    pub const LATENTS: u64 = 0;
    pub const AUGMENT: u64 = 1;
    pub const DATA: u64 = 2;
    pub const INIT_G: u64 = 3;
    pub const INIT_D: u64 = 4;

    /// The stream of `kind` for `index` (a step, an epoch; 0 for the initialisation).
    pub fn id(index: u64, kind: u64) -> u64 {
        index.wrapping_mul(8).wrapping_add(kind)
    }
}

/// Checks what can be checked before any work.
fn validate(config: &TrainFacesConfig) -> Result<(), TrainFacesError> {
    let s = &config.settings;
    let bad = |m: String| Err(TrainFacesError::Settings(m));
    if !config.resume {
        if !(1..=MAX_BATCH).contains(&s.batch) {
            return bad(format!(
                "the batch size must be 1 to {MAX_BATCH} (got {})",
                s.batch
            ));
        }
        if !(s.lr.is_finite() && s.lr > 0.0 && s.lr < 1.0) {
            return bad(format!(
                "the learning rate must be between 0 and 1 (got {})",
                s.lr
            ));
        }
        if matches!(s.start, StartFrom::Faces(_)) && s.shape != GanShape::FACES {
            return bad("fine-tuning the face model needs the Faces widths".into());
        }
    }
    if config.checkpoint_every == 0 || config.samples_every == 0 {
        return bad("checkpoints and samples need an interval of at least one step".into());
    }
    if !(1..=MAX_SAMPLES).contains(&config.sample_count) {
        return bad(format!("the sample grid holds 1 to {MAX_SAMPLES} pictures"));
    }
    if config.swd_every == Some(0) {
        return bad("the SWD interval must be at least one step".into());
    }
    Ok(())
}

/// The picture indices of step `step` (1-based): consecutive slices of a sequence of
/// shuffled epochs, so every picture is seen once per epoch.
fn batch_indices(seed: u64, step: u64, batch: usize, n: usize) -> Vec<usize> {
    let n64 = n.max(1) as u64;
    let start = (step - 1).saturating_mul(batch as u64);
    let (mut epoch, mut pos) = (start / n64, (start % n64) as usize);
    let perm = |e: u64| permutation(&mut Rng::for_stream(seed, stream::id(e, stream::DATA)), n);
    let mut order = perm(epoch);
    let mut out = Vec::with_capacity(batch);
    while out.len() < batch {
        if pos == n {
            epoch += 1;
            pos = 0;
            order = perm(epoch);
        }
        out.push(order[pos]);
        pos += 1;
    }
    out
}

/// The latents the SWD samples are drawn from (seeds 0 … [`SWD_SAMPLES`] − 1): the same for
/// every run and for `atelier bench swd`, so scores compare.
pub fn swd_latents(nz: usize) -> Vec<f32> {
    fixed_latents(SWD_SAMPLES, nz)
}

/// The latents of image `i` of a fixed grid: seed `i`'s latent, which for 100 values is the
/// face Faces shows for seed `i`.
fn fixed_latents(count: usize, nz: usize) -> Vec<f32> {
    let mut out = vec![0f32; count * nz];
    for (i, z) in out.chunks_exact_mut(nz).enumerate() {
        fill_normal(&mut Rng::from_seed(i as u64), z);
    }
    out
}

/// A new run's networks.
fn build(settings: &TrainSettings) -> Result<GanTrainer, TrainFacesError> {
    let g = match &settings.start {
        StartFrom::Faces(path) => {
            model_file::load_generator(path, settings.shape).map_err(TrainFacesError::StartModel)?
        }
        StartFrom::Scratch => Generator::random(
            settings.shape,
            &mut Rng::for_stream(settings.seed, stream::id(0, stream::INIT_G)),
        ),
    };
    let d = Discriminator::random(
        settings.shape,
        &mut Rng::for_stream(settings.seed, stream::id(0, stream::INIT_D)),
    );
    Ok(GanTrainer::new(g, d, settings.adam()))
}

/// Fails early (before any training) when `path` cannot be written: its folder cannot be
/// created, or is read-only or full.
fn probe_writable(path: &Path) -> Result<(), TrainFacesError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    crate::fsutil::probe_writable(dir).map_err(|source| {
        TrainFacesError::Export(model_file::ModelFileError::Write {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Recent step times, for the speed and the time left.
struct Pace {
    /// (training seconds, wall seconds) of the last steps.
    recent: VecDeque<(f64, f64)>,
}

impl Pace {
    const WINDOW: usize = 20;

    fn push(&mut self, train: f64, wall: f64) {
        if self.recent.len() == Self::WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back((train, wall));
    }

    fn samples_per_s(&self, batch: usize) -> f64 {
        let t: f64 = self.recent.iter().map(|r| r.0).sum();
        if t > 0.0 {
            self.recent.len() as f64 * batch as f64 / t
        } else {
            0.0
        }
    }

    fn seconds_left(&self, steps_left: u64) -> f64 {
        let n = self.recent.len().max(1) as f64;
        self.recent.iter().map(|r| r.1).sum::<f64>() / n * steps_left as f64
    }
}

/// Runs a training job (see the module docs): a new run, or the run in `config.run_dir`
/// continued from its last checkpoint when `config.resume`. Events go to `on_event` as they
/// happen. A stop ([`LongJobControl::stop`]) writes a checkpoint and returns `Ok` with
/// `stopped: true`.
pub fn run(
    config: &TrainFacesConfig,
    control: &LongJobControl,
    on_event: &mut dyn FnMut(TrainFacesEvent),
) -> Result<TrainFacesReport, TrainFacesError> {
    validate(config)?;
    if let Some(out) = &config.export {
        probe_writable(out)?;
    }
    // The job's core budget, at a lower priority than the window and the interactive jobs.
    let pool = control
        .thread_pool("atelier-train-faces")
        .map_err(|e| TrainFacesError::Threads(e.to_string()))?;
    let dir = &config.run_dir;
    let (mut record, resumed) = if config.resume {
        crate::fsutil::remove_stale_temp_files(dir);
        let mut record = RunRecord::load(dir)?;
        let loaded = checkpoint::latest(dir, record.settings.adam())?;
        record.settings = loaded.settings.clone();
        record.truncate(loaded.step);
        record.step = loaded.step;
        record.checkpoint = loaded
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        (record, Some(loaded))
    } else {
        runs::create(dir)?;
        (
            RunRecord::new(dir, config.settings.clone(), config.steps),
            None,
        )
    };
    record.target = config.steps;
    record.state = RunState::Running;
    let result = train(config, control, on_event, &pool, &mut record, resumed);
    if let Err(e) = &result {
        record.state = RunState::Failed(e.to_string());
        // The error itself is what the caller shows; a record that cannot be written now
        // (the same full disk, say) only loses the word "failed".
        if let Err(save) = record.save(dir) {
            tracing::warn!("{save}");
        }
    }
    result
}

fn train(
    config: &TrainFacesConfig,
    control: &LongJobControl,
    on_event: &mut dyn FnMut(TrainFacesEvent),
    pool: &rayon::ThreadPool,
    record: &mut RunRecord,
    resumed: Option<checkpoint::Loaded>,
) -> Result<TrainFacesReport, TrainFacesError> {
    let started = Instant::now();
    let dir = &config.run_dir;
    let settings = record.settings.clone();
    let set = pool.install(|| PictureSet::load(&settings.source, settings.background))?;
    record.pictures = set.len();
    record.skipped = set.skipped.len();
    record.save(dir)?;
    let (mut trainer, mut step) = match resumed {
        Some(l) => (l.trainer, l.step),
        None => (build(&settings)?, 0),
    };
    let mut checkpoints = Vec::new();
    let mut last_checkpoint = record.checkpoint.as_ref().map(|_| step);
    if last_checkpoint.is_none() {
        // A run stopped before its first checkpoint can still be resumed.
        let path = checkpoint::save(dir, step, &trainer, &settings)?;
        record.checkpoint = Some(checkpoint::file_name(step));
        record.save(dir)?;
        checkpoints.push(path);
        last_checkpoint = Some(step);
    }
    on_event(TrainFacesEvent::Started {
        run_dir: dir.clone(),
        settings: Box::new(settings.clone()),
        pictures: set.len(),
        skipped: set.skipped.clone(),
        contact_sheet: Arc::new(contact_sheet(&set)),
        step,
        target: config.steps,
        curves: Arc::new(record.curves.clone()),
    });

    let nz = settings.shape.nz;
    let batch = settings.batch;
    let grid_latents = fixed_latents(config.sample_count, nz);
    let swd = config.swd_every.map(|_| {
        let mut all = Vec::new();
        set.batch(&(0..set.len()).collect::<Vec<_>>(), &mut all);
        (
            pool.install(|| SwdReference::new(&all, config.swd)),
            swd_latents(nz),
        )
    });
    let measure = |trainer: &GanTrainer, step: u64, record: &mut RunRecord| -> Option<f64> {
        let (reference, latents) = swd.as_ref()?;
        let value = pool.install(|| reference.distance(&trainer.g.forward_eval(latents)).0);
        record.swd.retain(|p| p.step != step);
        record.swd.push(SwdPoint { step, swd: value });
        Some(value)
    };
    if step == 0
        && let Some(value) = measure(&trainer, 0, record)
    {
        on_event(TrainFacesEvent::Swd { step: 0, value });
    }

    let policy = settings.augment.then_some(Policy::ALL);
    let mut real = Vec::with_capacity(batch * IMAGE_SIZE * IMAGE_SIZE * 3);
    let mut latents = vec![0f32; batch * nz];
    let mut pace = Pace {
        recent: VecDeque::new(),
    };
    let mut train_seconds = 0.0;
    let mut last_losses: Option<StepLosses> = None;
    let mut stopped = false;
    let first_step = step;
    while step < config.steps {
        if control.checkpoint().is_err() {
            stopped = true;
            break;
        }
        let wall = Instant::now();
        let s = step + 1;
        set.batch(
            &batch_indices(settings.seed, s, batch, set.len()),
            &mut real,
        );
        fill_normal(
            &mut Rng::for_stream(settings.seed, stream::id(s, stream::LATENTS)),
            &mut latents,
        );
        let augment = policy.map(|p| {
            let mut rng = Rng::for_stream(settings.seed, stream::id(s, stream::AUGMENT));
            let mut draw = || AugmentParams::draw_batch(&mut rng, p, IMAGE_SIZE, batch);
            StepAugment {
                real: draw(),
                fake: draw(),
                generator: draw(),
            }
        });
        let t0 = Instant::now();
        let result = pool.install(|| {
            trainer.step(
                &StepBatch {
                    real: &real,
                    latents: &latents,
                    augment: augment.as_ref(),
                },
                &mut || control.checkpoint().is_err(),
            )
        });
        let dt = t0.elapsed().as_secs_f64();
        let Ok(losses) = result? else {
            stopped = true;
            break;
        };
        step = s;
        train_seconds += dt;
        record.train_seconds += dt;
        last_losses = Some(losses);
        record.curves.push(s, losses.d(), losses.g);
        if s % config.samples_every == 0 || s == config.steps {
            let grid = Arc::new(sample_grid(
                &pool.install(|| trainer.g.forward_eval(&grid_latents)),
            ));
            match save_png(&grid, &dir.join(runs::SAMPLES_FILE)) {
                Ok(()) => record.samples_step = Some(s),
                Err(e) => tracing::warn!("cannot save the samples of {}: {e}", dir.display()),
            }
            on_event(TrainFacesEvent::Samples { step: s, grid });
        }
        if let Some(every) = config.swd_every
            && (s % every == 0 || s == config.steps)
            && let Some(value) = measure(&trainer, s, record)
        {
            on_event(TrainFacesEvent::Swd { step: s, value });
        }
        if s % config.checkpoint_every == 0 && s < config.steps {
            let path = save_checkpoint(dir, s, &trainer, record)?;
            on_event(TrainFacesEvent::Checkpoint {
                step: s,
                path: path.clone(),
            });
            checkpoints.push(path);
            last_checkpoint = Some(s);
        }
        pace.push(dt, wall.elapsed().as_secs_f64());
        on_event(TrainFacesEvent::Step {
            step: s,
            losses,
            samples_per_s: pace.samples_per_s(batch),
            seconds_left: pace.seconds_left(config.steps - s),
        });
    }

    // The end, reached or stopped: the last step's checkpoint, the record, the export.
    if last_checkpoint != Some(step) {
        let path = save_checkpoint(dir, step, &trainer, record)?;
        on_event(TrainFacesEvent::Checkpoint {
            step,
            path: path.clone(),
        });
        checkpoints.push(path);
    }
    let mut exported = None;
    if let Some(out) = &config.export {
        model_file::export(&trainer.g, out).map_err(TrainFacesError::Export)?;
        record.exported = Some(out.clone());
        exported = Some(out.clone());
        on_event(TrainFacesEvent::Exported { path: out.clone() });
    }
    record.state = if step >= config.steps {
        RunState::Finished
    } else {
        RunState::Stopped
    };
    record.save(dir)?;
    let steps_run = step - first_step;
    Ok(TrainFacesReport {
        run_dir: dir.clone(),
        step,
        steps_run,
        seconds: started.elapsed().as_secs_f64(),
        train_seconds,
        samples_per_s: if train_seconds > 0.0 {
            steps_run as f64 * batch as f64 / train_seconds
        } else {
            0.0
        },
        final_losses: last_losses,
        checkpoints,
        exported,
        stopped,
        threads: control.threads(),
        pictures: set.len(),
        skipped: set.skipped.len(),
        batch,
        swd: record.swd.clone(),
        peak_rss_mb: crate::measure::memory_kib("VmHWM:").map(|k| k as f64 / 1024.0),
    })
}

/// Writes the checkpoint after `step`, then the record pointing at it.
fn save_checkpoint(
    dir: &Path,
    step: u64,
    trainer: &GanTrainer,
    record: &mut RunRecord,
) -> Result<PathBuf, TrainFacesError> {
    let path = checkpoint::save(dir, step, trainer, &record.settings)?;
    record.step = step;
    record.checkpoint = Some(checkpoint::file_name(step));
    record.save(dir)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_walk_through_shuffled_epochs() {
        let n = 10;
        let mut seen = Vec::new();
        for step in 1..=5 {
            let b = batch_indices(3, step, 4, n);
            assert_eq!(b.len(), 4);
            seen.extend(b);
        }
        // Steps 1–5 of 4 cover epochs 0 and 1 exactly (20 indices).
        let mut first: Vec<usize> = seen[..10].to_vec();
        let mut second: Vec<usize> = seen[10..].to_vec();
        first.sort_unstable();
        second.sort_unstable();
        assert_eq!(first, (0..10).collect::<Vec<_>>());
        assert_eq!(second, (0..10).collect::<Vec<_>>());
        assert_eq!(batch_indices(3, 2, 4, n), batch_indices(3, 2, 4, n));
        assert_eq!(
            fixed_latents(2, 100)[..100],
            crate::features::faces::latent_for_seed(0)[..]
        );
    }
}
