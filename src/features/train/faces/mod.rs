//! Teaching the face generator (the Faces DCGAN) a folder of the user's pictures: fine-tuning
//! the Faces model, or pre-training a new generator of the same architecture from scratch,
//! with DiffAugment for small sets. The math lives in [`crate::models::gan`]; this module owns
//! the job around it: the pictures ([`pictures`]), the loop ([`run`]), checkpoints and resume
//! ([`checkpoint`]), the runs folder ([`runs`]), the exported model ([`model_file`]), the
//! sliced Wasserstein distance that scores a run ([`swd`]); the CLI is `crate::cli::train_faces`.
//!
//! [`run`] is the one entry point: the Train panel runs it on the engine's long-job lane, the
//! CLI calls it directly, and the tests and the benchmark go through the CLI.

pub mod checkpoint;
mod job;
pub mod model_file;
pub mod pictures;
pub mod runs;
mod sheet;
pub mod swd;

use std::path::PathBuf;
use std::sync::Arc;

pub use job::{run, swd_latents};
pub use pictures::{PictureSource, Skipped};
pub use runs::{Curves, RunRecord, RunState};
pub use sheet::contact_sheet;

use crate::models::gan::{AdamConfig, GanShape, StepLosses};

/// Where the generator starts.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StartFrom {
    /// Fine-tune this generator file (the Faces model by default).
    Faces(PathBuf),
    /// Pre-train a new generator, initialised as the discriminator is (DCGAN's init).
    Scratch,
}

/// What a run learns from and how: fixed when the run starts, saved with it, restored on
/// resume.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainSettings {
    /// The pictures.
    pub source: PictureSource,
    /// Transparency is composited onto this colour (RGB).
    pub background: [u8; 3],
    /// Fine-tuning or from scratch.
    pub start: StartFrom,
    /// Pictures per step.
    pub batch: usize,
    /// Adam's learning rate (both networks).
    pub lr: f64,
    /// DiffAugment (color, translation, cutout) on real and generated pictures.
    pub augment: bool,
    /// Seed of everything random (initialisation, batches, latents, augmentation).
    pub seed: u64,
    /// The networks' widths (the Faces model's unless a test asks for a tiny network).
    pub shape: GanShape,
}

impl TrainSettings {
    /// The recipe's defaults for `source`: fine-tune `faces_model`, batch 32, lr 2e-4,
    /// augmentation on, seed 0, white background.
    pub fn new(source: PictureSource, faces_model: PathBuf) -> Self {
        Self {
            source,
            background: [255, 255, 255],
            start: StartFrom::Faces(faces_model),
            batch: 32,
            lr: AdamConfig::default().lr,
            augment: true,
            seed: 0,
            shape: GanShape::FACES,
        }
    }

    /// Adam's settings for this run.
    pub fn adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            ..AdamConfig::default()
        }
    }
}

/// One call of [`run`]: the settings (or the run to resume) and how long and how often.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainFacesConfig {
    /// The run's settings (ignored when resuming: the run's own are used).
    pub settings: TrainSettings,
    /// The run's folder: created for a new run (it must not hold a run yet), read when
    /// resuming.
    pub run_dir: PathBuf,
    /// Continue the run in `run_dir` from its last checkpoint.
    pub resume: bool,
    /// Train until this step (counted from the run's start, so a resumed run goes on to it).
    pub steps: u64,
    /// Write a checkpoint every this many steps (and always at the end or on Stop).
    pub checkpoint_every: u64,
    /// Draw the sample grid every this many steps.
    pub samples_every: u64,
    /// Pictures in the sample grid (a square number is best: 16, 36, 64).
    pub sample_count: usize,
    /// Also export the generator here at the end (`.safetensors`, Faces' tensor names).
    pub export: Option<PathBuf>,
    /// Measure the sliced Wasserstein distance to the pictures every this many steps (and at
    /// step 0 and the end); `None` for never. Its time is not counted as training time.
    pub swd_every: Option<u64>,
    /// The SWD's sizes.
    pub swd: swd::SwdConfig,
}

impl TrainFacesConfig {
    /// A new run of `settings` in `run_dir` for `steps` steps, checkpointing every 100 steps
    /// and drawing 16 samples every 10.
    pub fn new(settings: TrainSettings, run_dir: PathBuf, steps: u64) -> Self {
        Self {
            settings,
            run_dir,
            resume: false,
            steps,
            checkpoint_every: 100,
            samples_every: 10,
            sample_count: 16,
            export: None,
            swd_every: None,
            swd: swd::SwdConfig::default(),
        }
    }
}

/// What a run tells its watcher, in order. Cheap to clone: images are shared.
#[derive(Clone, Debug)]
pub enum TrainFacesEvent {
    /// The pictures are loaded and the networks ready; training starts at `step + 1`.
    Started {
        /// The run's folder.
        run_dir: PathBuf,
        /// The run's settings (the resumed run's own when resuming).
        settings: Box<TrainSettings>,
        /// Usable pictures.
        pictures: usize,
        /// Files that were skipped, with reasons.
        skipped: Vec<Skipped>,
        /// All pictures (up to 256) as they are trained on: 64×64 tiles.
        contact_sheet: Arc<image::RgbaImage>,
        /// Steps already done (0 for a new run).
        step: u64,
        /// The step the run trains to.
        target: u64,
        /// Loss curves so far (empty for a new run), for the plot.
        curves: Arc<Curves>,
    },
    /// One step is done.
    Step {
        /// Its number (1-based).
        step: u64,
        /// Its losses.
        losses: StepLosses,
        /// Training speed over the last steps (pictures per second, D and G steps).
        samples_per_s: f64,
        /// Estimated time to the target step at that speed.
        seconds_left: f64,
    },
    /// A grid of samples from the fixed latents (the seeds 0, 1, … Faces shows), drawn with
    /// BatchNorm's running statistics as Faces will draw them.
    Samples {
        /// After this step.
        step: u64,
        /// The grid (64×64 tiles).
        grid: Arc<image::RgbaImage>,
    },
    /// A checkpoint was written (atomically; a previous one is kept).
    Checkpoint {
        /// After this step.
        step: u64,
        /// The file.
        path: PathBuf,
    },
    /// The sliced Wasserstein distance of the samples to the pictures (when asked).
    Swd {
        /// After this step.
        step: u64,
        /// The distance (lower is closer).
        value: f64,
    },
    /// The generator was exported.
    Exported {
        /// The file.
        path: PathBuf,
    },
}

/// The SWD measured after a step.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SwdPoint {
    /// The step (0: before training).
    pub step: u64,
    /// The distance.
    pub swd: f64,
}

/// What a call of [`run`] did (the CLI's `--json`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainFacesReport {
    /// The run's folder.
    pub run_dir: PathBuf,
    /// The step reached.
    pub step: u64,
    /// Steps done by this call.
    pub steps_run: u64,
    /// Wall time of this call.
    pub seconds: f64,
    /// Time spent in training steps only (no loading, samples, checkpoints or SWD).
    pub train_seconds: f64,
    /// Pictures per second through the D and G steps (`steps_run × batch / train_seconds`).
    pub samples_per_s: f64,
    /// The last step's losses.
    pub final_losses: Option<StepLosses>,
    /// Checkpoints written by this call.
    pub checkpoints: Vec<PathBuf>,
    /// The exported generator, if asked.
    pub exported: Option<PathBuf>,
    /// Whether the run was stopped before its target.
    pub stopped: bool,
    /// The thread budget it ran with.
    pub threads: usize,
    /// Pictures trained on.
    pub pictures: usize,
    /// Files skipped.
    pub skipped: usize,
    /// Batch size.
    pub batch: usize,
    /// SWD measurements, if asked.
    pub swd: Vec<SwdPoint>,
    /// The process's peak memory (RSS), in MiB, where the platform says.
    pub peak_rss_mb: Option<f64>,
}

/// Why a run could not start or go on. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrainFacesError {
    /// The pictures are unusable.
    #[error(transparent)]
    Pictures(#[from] pictures::PicturesError),
    /// The starting generator could not be read.
    #[error("cannot start from the face model: {0}")]
    StartModel(#[source] model_file::ModelFileError),
    /// A checkpoint could not be written or none could be read.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The runs folder could not be created, read or written.
    #[error(transparent)]
    Run(#[from] runs::RunError),
    /// The export failed.
    #[error(transparent)]
    Export(model_file::ModelFileError),
    /// A setting is out of range.
    #[error("{0}")]
    Settings(String),
    /// The training step failed (diverged, or a bad batch).
    #[error(transparent)]
    Trainer(#[from] crate::models::gan::TrainerError),
    /// The job's thread pool could not be started.
    #[error("cannot start the training threads: {0}")]
    Threads(String),
}
