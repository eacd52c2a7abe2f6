//! Fine-tuning a language model on the writer's own text with LoRA adapters (Hu et al. 2021):
//! the long job behind the Train panel's writing side and `atelier train write`.
//!
//! [`run`] reads the writing ([`text`]), holds the last ~10% of each source's paragraphs out
//! for validation, and trains a rank-r adapter on the chosen projections of every layer
//! ([`crate::models::llm::train`]): each step a batch of random fixed-length chunks of the
//! training text, the mean causal-LM loss, AdamW on A and B. It reports the validation loss
//! before and every few steps, a sample continuation of a held-out passage with and without the
//! adapter, writes atomic checkpoints into a run folder (`<data>/train/runs/<id>/`: `run.json`,
//! `checkpoint.bin`, `adapter.gguf`), and resumes from one. The result is an adapter file in
//! llama.cpp's GGUF LoRA format.

pub mod adapter_file;
pub mod checkpoint;
pub mod text;
mod trainer;

use std::path::PathBuf;

pub use text::{Corpus, SourceSummary, TextSource};
pub use trainer::{
    ADAPTER_FILE, RUN_FILE, Survey, WriteRunEntry, list_runs, resume_config, run, survey,
};

use crate::models::llm::lora::LoraTarget;

/// The recipe: rank 8.
pub const DEFAULT_RANK: usize = 8;
/// Alpha 16 (scale alpha/rank = 2).
pub const DEFAULT_ALPHA: f32 = 16.0;
/// Tokens per chunk.
pub const DEFAULT_CONTEXT: usize = 128;
/// Chunks per step.
pub const DEFAULT_BATCH: usize = 4;
/// AdamW's learning rate.
pub const DEFAULT_LR: f32 = 1e-3;
/// Ranks the settings accept.
pub const RANKS: std::ops::RangeInclusive<usize> = 1..=64;

/// Everything a training run is told (saved in its `run.json`; a resumed run reads it back).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainWriteConfig {
    /// The base model (a llama or gemma3 GGUF).
    pub model: PathBuf,
    /// The writing to learn from.
    pub sources: Vec<TextSource>,
    /// Where to write the finished adapter (besides the run folder's `adapter.gguf`).
    pub out: Option<PathBuf>,
    /// The folder of run folders (`<data>/train/runs`).
    pub runs_dir: PathBuf,
    /// LoRA rank (1–64).
    pub rank: usize,
    /// LoRA alpha (the update is scaled by alpha/rank).
    pub alpha: f32,
    /// The adapted projections.
    pub targets: Vec<LoraTarget>,
    /// Steps to train; `None` with `epochs` `None` means one epoch.
    pub steps: Option<u64>,
    /// Epochs to train (passes over the training tokens' worth of chunks), if `steps` is not
    /// given.
    pub epochs: Option<f64>,
    /// Tokens per chunk.
    pub context: usize,
    /// Chunks per step.
    pub batch: usize,
    /// AdamW's learning rate.
    pub lr: f32,
    /// Seeds the adapter's initialisation and the batches.
    pub seed: u64,
    /// Share of each source's paragraphs held out for validation.
    pub holdout: f64,
    /// Tokens read at most ([`text::DEFAULT_TOKEN_BUDGET`]).
    pub token_budget: usize,
    /// Validate every this many steps (and at the end).
    pub eval_every: u64,
    /// Held-out chunks the validation loss averages over, at most.
    pub val_chunks: usize,
    /// Sample a continuation every this many steps (0: never; the end always).
    pub sample_every: u64,
    /// Tokens of a sample continuation.
    pub sample_tokens: usize,
    /// Write a checkpoint every this many steps (and on stop and at the end).
    pub checkpoint_every: u64,
    /// A run folder to go on with from its checkpoint, instead of starting a new run.
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Writes the run's plan (tokens, held-out chunks, initial A, every step's chunk offsets)
    /// as JSON before training, so the benchmark's PyTorch peer can replay the same run.
    #[serde(skip)]
    pub plan_out: Option<PathBuf>,
}

impl TrainWriteConfig {
    /// The recipe on `model` and `sources`: rank 8, alpha 16, all seven projections,
    /// 4 chunks of 128 tokens, lr 1e-3, one epoch.
    pub fn new(model: PathBuf, sources: Vec<TextSource>) -> Self {
        Self {
            model,
            sources,
            out: None,
            runs_dir: crate::paths::data_dir().join("train").join("runs"),
            rank: DEFAULT_RANK,
            alpha: DEFAULT_ALPHA,
            targets: LoraTarget::ALL.to_vec(),
            steps: None,
            epochs: None,
            context: DEFAULT_CONTEXT,
            batch: DEFAULT_BATCH,
            lr: DEFAULT_LR,
            seed: 0,
            holdout: 0.1,
            token_budget: text::DEFAULT_TOKEN_BUDGET,
            eval_every: 50,
            val_chunks: 16,
            sample_every: 100,
            sample_tokens: 24,
            checkpoint_every: 25,
            resume: None,
            plan_out: None,
        }
    }

    /// Checks the settings before anything is loaded.
    pub fn validate(&self) -> Result<(), TrainWriteError> {
        let bad = |what: String| Err(TrainWriteError::Setting(what));
        if !RANKS.contains(&self.rank) {
            return bad(format!(
                "the rank must be {} to {}, not {}",
                RANKS.start(),
                RANKS.end(),
                self.rank
            ));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!(
                "alpha must be a positive number, not {}",
                self.alpha
            ));
        }
        if self.targets.is_empty() {
            return bad("choose at least one projection to adapt".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "the learning rate must be a positive number, not {}",
                self.lr
            ));
        }
        if !(2..=4096).contains(&self.context) {
            return bad(format!(
                "the context must be 2 to 4096 tokens, not {}",
                self.context
            ));
        }
        if !(1..=256).contains(&self.batch) {
            return bad(format!(
                "the batch must be 1 to 256 chunks, not {}",
                self.batch
            ));
        }
        if self.steps == Some(0) {
            return bad("train at least one step".into());
        }
        if let Some(e) = self.epochs
            && !(e.is_finite() && e > 0.0)
        {
            return bad(format!("epochs must be a positive number, not {e}"));
        }
        if !(0.0..0.9).contains(&self.holdout) {
            return bad(format!(
                "the held-out share must be 0 to 0.9, not {}",
                self.holdout
            ));
        }
        if self.sources.is_empty() {
            return Err(TrainWriteError::NoText);
        }
        Ok(())
    }
}

/// What a run tells its watcher, in order: `Preparing`, `Started`, the base model's
/// `Validation` (and a `Sample`), then `Step`s with `Validation`, `Sample` and `Checkpoint`
/// now and then.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainWriteEvent {
    /// Loading the model or reading the writing (a short phrase for a status line).
    Preparing {
        /// What is happening.
        what: String,
    },
    /// Everything is loaded: the token counts and the time an epoch will take on this machine.
    Started {
        /// The run folder.
        run_dir: PathBuf,
        /// Training tokens.
        train_tokens: usize,
        /// Held-out tokens.
        val_tokens: usize,
        /// Per source.
        sources: Vec<SourceSummary>,
        /// Whether the token budget stopped the reading early.
        truncated: bool,
        /// Steps in one epoch (training tokens / (batch × context)).
        steps_per_epoch: u64,
        /// Steps this run trains to.
        steps_total: u64,
        /// Measured estimate of one epoch, in seconds.
        epoch_seconds: f64,
        /// The step a resumed run starts from (0 for a new run).
        start_step: u64,
        /// Trainable parameters (A and B).
        parameters: usize,
    },
    /// A training step finished.
    Step {
        /// Steps done.
        step: u64,
        /// Steps this run trains to.
        steps_total: u64,
        /// The step's mean training loss.
        loss: f64,
        /// Training tokens per second (recent average).
        tokens_per_second: f64,
        /// Estimated seconds until the last step.
        seconds_left: f64,
    },
    /// The held-out loss was measured.
    Validation {
        /// After this many steps (0: the base model).
        step: u64,
        /// Mean next-token loss on the held-out text.
        loss: f64,
        /// `exp(loss)`.
        perplexity: f64,
        /// The base model's perplexity on the same text.
        base_perplexity: f64,
    },
    /// A continuation of a held-out passage with the adapter, beside the base model's.
    Sample {
        /// After this many steps.
        step: u64,
        /// The held-out passage it continues.
        prompt: String,
        /// With the adapter (greedy).
        adapter_text: String,
        /// Without it (greedy).
        base_text: String,
    },
    /// A checkpoint was written (the run can resume from here).
    Checkpoint {
        /// Steps it holds.
        step: u64,
        /// The file.
        path: PathBuf,
    },
}

/// What a finished (or stopped) run did.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainWriteReport {
    /// The run folder (resume from it with `--resume`).
    pub run_dir: PathBuf,
    /// The adapter file written (the run folder's `adapter.gguf`, or `out`).
    pub adapter: PathBuf,
    /// Steps done in total.
    pub steps: u64,
    /// Whether the run was stopped before its last step.
    pub stopped: bool,
    /// Training tokens.
    pub train_tokens: usize,
    /// Held-out tokens.
    pub val_tokens: usize,
    /// Training tokens per second over this session's steps.
    pub tokens_per_second: f64,
    /// Seconds this session spent training.
    pub seconds: f64,
    /// Validation perplexity of the base model.
    pub val_perplexity_before: f64,
    /// Validation perplexity with the adapter, as last measured.
    pub val_perplexity_after: f64,
    /// The step it was measured at (a stopped run may have trained past its last validation;
    /// 0: only the base model was measured).
    pub val_perplexity_step: u64,
    /// The last step's training loss.
    pub final_train_loss: Option<f64>,
    /// The median step's seconds in this session (training only, no validation or samples).
    pub median_step_seconds: f64,
}

/// Why a run could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum TrainWriteError {
    /// A setting is out of range.
    #[error("{0}")]
    Setting(String),
    /// No writing was given, or it holds no text.
    #[error(
        "there is no text to learn from: give .txt or .md files or documents with some writing in them"
    )]
    NoText,
    /// Too little text for one chunk of training and one of validation.
    #[error(
        "the writing is too short: {train} training and {val} held-out tokens, but a context of {context} needs at least {need_train} and 16; add more text or lower --context"
    )]
    TooLittleText {
        train: usize,
        val: usize,
        context: usize,
        need_train: usize,
    },
    /// The model could not be loaded for training.
    #[error(transparent)]
    Model(#[from] crate::models::llm::train::TrainModelError),
    /// The tokenizer could not be read from the model.
    #[error("{0}")]
    Tokenizer(#[from] crate::models::llm::LlmError),
    /// The writing could not be read.
    #[error(transparent)]
    Text(#[from] text::TextError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// The run folder or its record could not be written or read.
    #[error("run folder {}: {detail}", path.display())]
    RunFolder { path: PathBuf, detail: String },
    /// A resumed run's text or model is not the one it was trained on.
    #[error("cannot resume {}: {detail}", path.display())]
    Resume { path: PathBuf, detail: String },
    /// The adapter could not be saved.
    #[error("cannot write the adapter {}: {source}", path.display())]
    Adapter {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    #[error(
        "the loss became {loss} at step {step}: training diverged (the learning rate {lr} is probably too high). The last good checkpoint ({}) is kept; resume it with a lower --lr",
        checkpoint.as_ref().map_or("none yet".to_string(), |p| p.display().to_string())
    )]
    Diverged {
        step: u64,
        loss: f64,
        lr: f32,
        checkpoint: Option<PathBuf>,
    },
    /// The training threads could not start.
    #[error("cannot start the training threads: {0}")]
    Threads(String),
    /// The job was stopped before training started (nothing to checkpoint yet).
    #[error("stopped before training started")]
    Stopped,
    /// A pass failed for a reason other than a stop (a bug, reported rather than panicking).
    #[error("training failed: {0}")]
    Pass(String),
}
