//! `atelier train write`: LoRA fine-tuning from the command line, as the Train panel runs it
//! (the engine's long-job lane, [`super::train_job`]), with a progress bar on stderr and a JSON
//! report on request.
//! Ctrl+C stops at the next layer, writes a checkpoint and reports; `--resume` goes on.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::features::train::write::{
    TextSource, TrainWriteConfig, TrainWriteError, TrainWriteEvent,
};
use crate::features::train::{TrainEvent, TrainRequest};
use crate::models::llm::lora::LoraTarget;

/// `atelier train write`
#[derive(Debug, Args)]
pub struct TrainWriteArgs {
    /// The base model: a GGUF file, or `smollm2` / `gemma3` for the defaults (not needed with
    /// --resume).
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<String>,
    /// Plain-text or Markdown files to learn from.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub text: Vec<PathBuf>,
    /// Atelier documents to learn from, by id (the file names in the data folder's
    /// `documents/`).
    #[arg(long, num_args = 1.., value_name = "ID")]
    pub document: Vec<String>,
    /// Where to write the adapter (llama.cpp GGUF LoRA); the run folder keeps a copy.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// LoRA rank (1-64).
    #[arg(long, default_value_t = crate::features::train::write::DEFAULT_RANK)]
    pub rank: usize,
    /// LoRA alpha (updates are scaled by alpha / rank).
    #[arg(long, default_value_t = crate::features::train::write::DEFAULT_ALPHA)]
    pub alpha: f32,
    /// Projections to adapt, comma-separated: q,k,v,o,gate,up,down.
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
    pub targets: Vec<String>,
    /// Training steps (default: one epoch).
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<u64>,
    /// Epochs (passes over the training text's worth of chunks).
    #[arg(long)]
    pub epochs: Option<f64>,
    /// Tokens per chunk.
    #[arg(long, default_value_t = crate::features::train::write::DEFAULT_CONTEXT)]
    pub context: usize,
    /// Chunks per step.
    #[arg(long, default_value_t = crate::features::train::write::DEFAULT_BATCH)]
    pub batch: usize,
    /// AdamW learning rate (with --resume: a new one, e.g. after a divergence).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Seeds the adapter's initialisation and the batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Go on with the run in this folder from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Validate (and report perplexity) every N steps.
    #[arg(long, default_value_t = 50)]
    pub eval_every: u64,
    /// Held-out chunks the validation loss averages over, at most.
    #[arg(long, default_value_t = 16)]
    pub val_chunks: usize,
    /// Print a sample continuation every N steps (0: only at the end... and not at all with
    /// --json).
    #[arg(long, default_value_t = 100)]
    pub sample_every: u64,
    /// Write a checkpoint every N steps.
    #[arg(long, default_value_t = 25)]
    pub checkpoint_every: u64,
    /// Tokens of text read at most (the rest of a long file is not read).
    #[arg(long, default_value_t = crate::features::train::write::text::DEFAULT_TOKEN_BUDGET)]
    pub token_budget: usize,
    /// The folder of run folders (default: the data folder's train/runs).
    #[arg(long, value_name = "DIR")]
    pub runs_dir: Option<PathBuf>,
    /// Write the run's plan (tokens, held-out chunks, initial A, each step's chunk offsets) as
    /// JSON before training, for the benchmark's PyTorch peer to replay.
    #[arg(long, value_name = "FILE", hide = true)]
    pub dump_plan: Option<PathBuf>,
    /// Print one JSON report on stdout (steps, tokens/s, validation perplexity before and
    /// after, peak memory).
    #[arg(long)]
    pub json: bool,
}

fn parse_targets(names: &[String]) -> anyhow::Result<Vec<LoraTarget>> {
    names
        .iter()
        .map(|n| {
            let n = n.trim();
            LoraTarget::ALL
                .into_iter()
                .find(|t| t.short_name() == n)
                .with_context(|| {
                    format!("unknown projection '{n}': use q, k, v, o, gate, up, down")
                })
        })
        .collect()
}

fn config_from(args: &TrainWriteArgs) -> anyhow::Result<TrainWriteConfig> {
    if let Some(dir) = &args.resume {
        let mut c = crate::features::train::write::resume_config(dir)?;
        if let Some(steps) = args.steps {
            c.steps = Some(steps);
            c.epochs = None;
        }
        if let Some(lr) = args.lr {
            c.lr = lr;
        }
        if args.out.is_some() {
            c.out.clone_from(&args.out);
        }
        return Ok(c);
    }
    let model = crate::headless::resolve_llm(args.model.as_deref().unwrap_or("smollm2"))?;
    let data = crate::paths::data_dir();
    let sources = args
        .text
        .iter()
        .map(|p| TextSource::File { path: p.clone() })
        .chain(args.document.iter().map(|id| TextSource::Document {
            data_dir: data.clone(),
            id: id.clone(),
        }))
        .collect();
    let mut c = TrainWriteConfig::new(model, sources);
    c.out.clone_from(&args.out);
    if let Some(dir) = &args.runs_dir {
        c.runs_dir.clone_from(dir);
    }
    c.rank = args.rank;
    c.alpha = args.alpha;
    c.targets = parse_targets(&args.targets)?;
    c.steps = args.steps;
    c.epochs = args.epochs;
    c.context = args.context;
    c.batch = args.batch;
    c.lr = args.lr.unwrap_or(crate::features::train::write::DEFAULT_LR);
    c.seed = args.seed;
    c.eval_every = args.eval_every;
    c.val_chunks = args.val_chunks;
    c.sample_every = if args.json { 0 } else { args.sample_every };
    c.checkpoint_every = args.checkpoint_every;
    c.token_budget = args.token_budget;
    c.plan_out.clone_from(&args.dump_plan);
    Ok(c)
}

/// Runs `atelier train write`.
pub fn run(args: TrainWriteArgs) -> anyhow::Result<()> {
    let config = config_from(&args)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} step {pos}/{len} [{bar:30}] {msg} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let quiet = args.json;
    // The bar draws only on a terminal; logs and pipes get the same lines plainly.
    let say = |line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
    let on_event = |e: TrainWriteEvent| match e {
        TrainWriteEvent::Preparing { what } => bar.set_message(what),
        TrainWriteEvent::Started {
            run_dir,
            train_tokens,
            val_tokens,
            steps_total,
            epoch_seconds,
            start_step,
            truncated,
            ..
        } => {
            bar.set_length(steps_total);
            bar.set_position(start_step);
            say(format!(
                "run {}: {train_tokens} training and {val_tokens} held-out tokens{}; one epoch takes about {:.0} min here",
                run_dir.display(),
                if truncated {
                    " (token budget reached: the rest was not read)"
                } else {
                    ""
                },
                epoch_seconds / 60.0
            ));
        }
        TrainWriteEvent::Step {
            step,
            loss,
            tokens_per_second,
            ..
        } => {
            bar.set_position(step);
            bar.set_message(format!("loss {loss:.3}, {tokens_per_second:.0} tokens/s"));
        }
        TrainWriteEvent::Validation {
            step,
            perplexity,
            base_perplexity,
            ..
        } => say(format!(
            "step {step}: validation perplexity {perplexity:.2} (base model {base_perplexity:.2})"
        )),
        TrainWriteEvent::Sample {
            step,
            prompt,
            adapter_text,
            base_text,
        } if !quiet => say(format!(
            "step {step} sample\n  prompt:  {}\n  adapter: {}\n  base:    {}",
            one_line(&prompt),
            one_line(&adapter_text),
            one_line(&base_text)
        )),
        TrainWriteEvent::Sample { .. } => {}
        TrainWriteEvent::Checkpoint { .. } => {}
    };
    let mut report = None;
    let ran = super::train_job::run(
        TrainRequest::Write(Box::new(config)),
        threads,
        |e| match e {
            TrainEvent::Write(e) => on_event(*e),
            TrainEvent::WriteDone(r) => report = Some(r),
            TrainEvent::Faces(_) | TrainEvent::FacesDone(_) => {}
        },
    );
    bar.finish_and_clear();
    ran?;
    // Stopped while reading or loading: nothing was trained, so there is nothing to resume.
    let report = report.ok_or(TrainWriteError::Stopped)?;
    if args.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(peak) = crate::measure::memory_kib("VmHWM:") {
            v["peak_rss_mb"] = serde_json::json!(peak as f64 * 1024.0 / 1e6);
        }
        println!("{v}");
    } else {
        // A stopped run may have trained past its last validation: say when it was measured.
        let measured = match report.val_perplexity_step {
            s if s == report.steps => String::new(),
            0 => " (not measured since the start)".to_owned(),
            s => format!(" (at step {s})"),
        };
        println!(
            "{} after {} steps: validation perplexity {:.2} -> {:.2}{measured}, {:.0} tokens/s; adapter {}{}",
            if report.stopped { "stopped" } else { "done" },
            report.steps,
            report.val_perplexity_before,
            report.val_perplexity_after,
            report.tokens_per_second,
            report.adapter.display(),
            if report.stopped {
                format!(" (resume with --resume {})", report.run_dir.display())
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
