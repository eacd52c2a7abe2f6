//! The training loop: prepare (tokenizer, writing, f32 model), then steps of random chunks
//! with validation, samples and checkpoints between them, in a thread pool of the job's core
//! budget, yielding at every layer through [`LongJobControl::checkpoint`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::checkpoint::{self, RunState};
use super::text::{self, Corpus, SourceSummary};
use super::{TrainWriteConfig, TrainWriteError, TrainWriteEvent, TrainWriteReport, adapter_file};
use crate::long_job::LongJobControl;
use crate::models::llm::GgufTokenizer;
use crate::models::llm::train::{
    AdamW, AdamWConfig, Interrupted, Lora, LoraShapeError, TrainModel, Workspace,
};

/// The run record's file name in a run folder.
pub const RUN_FILE: &str = "run.json";
/// The adapter's file name in a run folder.
pub const ADAPTER_FILE: &str = "adapter.gguf";
/// Held-out tokens a sample continues.
const SAMPLE_PROMPT: usize = 32;
/// The least held-out text validation works with.
const MIN_VAL_TOKENS: usize = 16;

/// What the user sees before pressing Train: how much text and how long an epoch takes here.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Survey {
    /// Training tokens.
    pub train_tokens: usize,
    /// Held-out tokens.
    pub val_tokens: usize,
    /// Per source.
    pub sources: Vec<SourceSummary>,
    /// Whether the token budget stopped the reading early.
    pub truncated: bool,
    /// Steps in one epoch.
    pub steps_per_epoch: u64,
    /// Measured estimate of one epoch, in seconds.
    pub epoch_seconds: f64,
}

/// The record of a run (`run.json`): its settings, its text and how far it got.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct RunRecord {
    config: TrainWriteConfig,
    architecture: String,
    train_tokens: usize,
    val_tokens: usize,
    sources: Vec<SourceSummary>,
    truncated: bool,
    /// `running`, `stopped`, `finished` or `diverged`.
    status: String,
    step: u64,
    steps_total: u64,
    base_val_loss: f64,
    val_curve: Vec<(u64, f64)>,
    train_curve: Vec<(u64, f64)>,
    adapter: Option<PathBuf>,
}

/// A writing run as the Train panel's runs list shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteRunEntry {
    /// Its folder.
    pub dir: PathBuf,
    /// Its settings.
    pub config: TrainWriteConfig,
    /// `running` (or ended without saying: resumable), `stopped`, `finished` or `diverged`.
    pub status: String,
    /// Steps done (at the last record).
    pub step: u64,
    /// Steps it trains to.
    pub steps_total: u64,
    /// Training tokens.
    pub train_tokens: usize,
    /// The base model's validation perplexity.
    pub base_perplexity: f64,
    /// The last validation perplexity with the adapter, if measured.
    pub perplexity: Option<f64>,
    /// Training loss per step, for the list's small plot.
    pub train_curve: Vec<(u64, f64)>,
    /// The adapter written, if any.
    pub adapter: Option<PathBuf>,
}

/// Every writing run under `root` (folders whose `run.json` is a writing run's), newest
/// first; other folders (pictures runs, damaged records) are left out.
pub fn list_runs(root: &Path) -> Vec<WriteRunEntry> {
    let mut out: Vec<(std::time::SystemTime, WriteRunEntry)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let path = e.path().join(RUN_FILE);
            // Records are small; a huge file is not a record of ours.
            let meta = std::fs::metadata(&path).ok()?;
            if meta.len() > 64 << 20 {
                return None;
            }
            let record: RunRecord = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            Some((
                modified,
                WriteRunEntry {
                    dir: e.path(),
                    perplexity: record.val_curve.last().map(|&(_, l)| l.exp()),
                    base_perplexity: record.base_val_loss.exp(),
                    config: record.config,
                    status: record.status,
                    step: record.step,
                    steps_total: record.steps_total,
                    train_tokens: record.train_tokens,
                    train_curve: record.train_curve,
                    adapter: record.adapter,
                },
            ))
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    out.into_iter().map(|(_, e)| e).collect()
}

/// Reads the settings a run folder was started with (for `--resume`).
pub fn resume_config(dir: &Path) -> Result<TrainWriteConfig, TrainWriteError> {
    let path = dir.join(RUN_FILE);
    let bad = |detail: String| TrainWriteError::RunFolder {
        path: dir.to_path_buf(),
        detail,
    };
    let bytes = std::fs::read(&path).map_err(|e| bad(format!("cannot read {RUN_FILE}: {e}")))?;
    let record: RunRecord =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("{RUN_FILE} is damaged: {e}")))?;
    let mut config = record.config;
    config.resume = Some(dir.to_path_buf());
    Ok(config)
}

/// The tokenizer, the writing and the model, loaded.
struct Prepared {
    tokenizer: GgufTokenizer,
    corpus: Corpus,
    model: TrainModel,
    /// Held-out chunks of `val_len` tokens, concatenated.
    val_chunks: Vec<u32>,
    val_len: usize,
    /// The token every chunk starts with, where the model wants one (Gemma's `<bos>`: Write
    /// starts every prompt with it, and without it Gemma 3's perplexity is in the thousands).
    bos: Option<u32>,
}

impl Prepared {
    /// Text tokens in a chunk of `len` (one fewer where chunks start with BOS).
    fn text_len(&self, len: usize) -> usize {
        len - usize::from(self.bos.is_some())
    }

    /// Appends the chunk of `len` tokens whose text starts at `start` of `text`.
    fn push_chunk(&self, text: &[u32], start: usize, len: usize, out: &mut Vec<u32>) {
        out.extend(self.bos);
        out.extend_from_slice(&text[start..start + self.text_len(len)]);
    }

    /// The largest start of a training chunk of `len` tokens.
    fn max_start(&self, len: usize) -> usize {
        self.corpus.train.len() - self.text_len(len)
    }
}

fn prepare(
    config: &TrainWriteConfig,
    control: &LongJobControl,
    on_event: &mut dyn FnMut(TrainWriteEvent),
) -> Result<Prepared, TrainWriteError> {
    config.validate()?;
    let status = |what: &str| TrainWriteEvent::Preparing { what: what.into() };
    on_event(status("reading the tokenizer"));
    let (content, _, _) = crate::models::llm::gguf::open(&config.model)?;
    let tokenizer = GgufTokenizer::from_gguf(&content)?;
    drop(content);
    on_event(status("reading and tokenising the writing"));
    let pause = || control.checkpoint();
    let corpus = text::read_corpus(
        &config.sources,
        &tokenizer,
        config.token_budget,
        config.holdout,
        &pause,
    )
    .map_err(|e| match e {
        text::TextError::Stopped => TrainWriteError::Stopped,
        e => e.into(),
    })?;
    if corpus.train.is_empty() && corpus.val.is_empty() {
        return Err(TrainWriteError::NoText);
    }
    let bos = tokenizer.bos_id().filter(|_| tokenizer.add_bos());
    let bos_len = usize::from(bos.is_some());
    if corpus.train.len() + bos_len < config.context || corpus.val.len() < MIN_VAL_TOKENS {
        return Err(TrainWriteError::TooLittleText {
            train: corpus.train.len(),
            val: corpus.val.len(),
            context: config.context,
            need_train: config.context,
        });
    }
    on_event(status("loading the model as 32-bit floats"));
    control.checkpoint().map_err(|_| TrainWriteError::Stopped)?;
    let model = TrainModel::load(&config.model)?;
    let val_len = config.context.min(corpus.val.len() + bos_len);
    let mut p = Prepared {
        tokenizer,
        corpus,
        model,
        val_chunks: Vec::new(),
        val_len,
        bos,
    };
    // Held-out chunks: windows of the context length, evenly spread over the held-out text.
    let body = p.text_len(val_len);
    let windows = p.corpus.val.len() / body;
    let count = config.val_chunks.clamp(1, windows);
    let mut val_chunks = Vec::with_capacity(count * val_len);
    for i in 0..count {
        p.push_chunk(
            &p.corpus.val,
            i * windows / count * body,
            val_len,
            &mut val_chunks,
        );
    }
    p.val_chunks = val_chunks;
    Ok(p)
}

fn thread_pool(control: &LongJobControl) -> Result<rayon::ThreadPool, TrainWriteError> {
    control
        .thread_pool("atelier-train-write")
        .map_err(|e| TrainWriteError::Threads(e.to_string()))
}

/// A new adapter as the settings say, its A drawn from the run's seed.
fn fresh_lora(p: &Prepared, c: &TrainWriteConfig) -> Result<Lora, LoraShapeError> {
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    Lora::new(&p.model, c.rank, c.alpha, &c.targets, &mut rng)
}

fn steps_per_epoch(config: &TrainWriteConfig, train_tokens: usize) -> u64 {
    (train_tokens as u64)
        .div_ceil((config.batch * config.context) as u64)
        .max(1)
}

/// Times one forward and backward pass over one chunk: the seconds per training token.
fn seconds_per_token(
    p: &Prepared,
    config: &TrainWriteConfig,
    control: &LongJobControl,
    pool: &rayon::ThreadPool,
) -> Result<f64, TrainWriteError> {
    let lora = fresh_lora(p, config).map_err(|e| TrainWriteError::Setting(e.to_string()))?;
    let mut grads = lora.zero_grads();
    let mut ws = Workspace::default();
    let mut tokens = Vec::with_capacity(config.context);
    p.push_chunk(&p.corpus.train, 0, config.context, &mut tokens);
    let started = Instant::now();
    let pause = || control.checkpoint();
    pool.install(|| {
        p.model
            .loss_and_grads(&lora, &tokens, 1, &mut grads, &mut ws, &pause)
    })
    .map_err(pass_error)?;
    Ok(started.elapsed().as_secs_f64() / config.context as f64)
}

/// Reads the writing and the model and measures a step: what the Train panel shows before
/// training starts.
pub fn survey(
    config: &TrainWriteConfig,
    control: &LongJobControl,
) -> Result<Survey, TrainWriteError> {
    let pool = thread_pool(control)?;
    let p = prepare(config, control, &mut |_| {})?;
    let per_token = seconds_per_token(&p, config, control, &pool)?;
    Ok(Survey {
        train_tokens: p.corpus.train.len(),
        val_tokens: p.corpus.val.len(),
        sources: p.corpus.sources.clone(),
        truncated: p.corpus.truncated,
        steps_per_epoch: steps_per_epoch(config, p.corpus.train.len()),
        epoch_seconds: per_token * p.corpus.train.len() as f64,
    })
}

fn pass_error(e: Interrupted) -> TrainWriteError {
    TrainWriteError::Pass(e.to_string())
}

/// Trains an adapter as `config` says, reporting through `on_event` (called on this thread);
/// the passes run in a thread pool of `control.threads()` and yield at its checkpoints. A stop
/// writes a checkpoint and returns the report with `stopped: true`.
pub fn run(
    config: &TrainWriteConfig,
    control: &LongJobControl,
    on_event: &mut dyn FnMut(TrainWriteEvent),
) -> Result<TrainWriteReport, TrainWriteError> {
    Session::start(config, control, on_event)?.train(on_event)
}

/// A run in progress.
struct Session<'a> {
    config: &'a TrainWriteConfig,
    control: &'a LongJobControl,
    /// The passes' threads (the job's core budget).
    pool: rayon::ThreadPool,
    p: Prepared,
    dir: PathBuf,
    lora: Lora,
    opt: AdamW,
    rng: ChaCha8Rng,
    state: RunState,
    steps_total: u64,
    ws: Workspace,
    sample_prompt: Vec<u32>,
    base_sample: Option<String>,
    last_checkpoint: Option<PathBuf>,
}

/// How a phase of the loop ended early.
enum Halt {
    Stopped,
    Failed(TrainWriteError),
}

impl From<Interrupted> for Halt {
    fn from(e: Interrupted) -> Self {
        match e {
            Interrupted::Stopped => Halt::Stopped,
            other => Halt::Failed(pass_error(other)),
        }
    }
}

impl From<TrainWriteError> for Halt {
    fn from(e: TrainWriteError) -> Self {
        Halt::Failed(e)
    }
}

fn new_run_dir(runs: &Path, model: &Path) -> Result<PathBuf, TrainWriteError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stem: String = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    for n in 0..1000 {
        let name = if n == 0 {
            format!("{secs}-{stem}")
        } else {
            format!("{secs}-{stem}-{n}")
        };
        let dir = runs.join(name);
        match std::fs::create_dir_all(runs).and_then(|()| std::fs::create_dir(&dir)) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(TrainWriteError::RunFolder {
                    path: dir,
                    detail: e.to_string(),
                });
            }
        }
    }
    Err(TrainWriteError::RunFolder {
        path: runs.to_path_buf(),
        detail: "no free run name".into(),
    })
}

impl<'a> Session<'a> {
    fn start(
        config: &'a TrainWriteConfig,
        control: &'a LongJobControl,
        on_event: &mut dyn FnMut(TrainWriteEvent),
    ) -> Result<Self, TrainWriteError> {
        let pool = thread_pool(control)?;
        let p = prepare(config, control, on_event)?;
        let fingerprint = p.corpus.fingerprint();
        let arch = p.model.architecture().gguf_name().to_string();
        let (dir, lora, opt, state) = match &config.resume {
            Some(dir) => {
                // A run killed while writing a checkpoint left its temporary file (the size of
                // the adapter and AdamW's moments); the previous checkpoint is whole.
                crate::fsutil::remove_stale_temp_files(dir);
                let (state, adapter, mut opt) = checkpoint::load(dir)?;
                let resume_err = |detail: String| TrainWriteError::Resume {
                    path: dir.clone(),
                    detail,
                };
                if state.fingerprint != fingerprint {
                    return Err(resume_err(
                        "the writing is not the text this run was trained on (a file changed or is missing)".into(),
                    ));
                }
                let lora =
                    Lora::from_adapter(&p.model, adapter).map_err(|e| resume_err(e.to_string()))?;
                if !opt.fits(&lora) {
                    return Err(resume_err(
                        "the optimiser state does not match the adapter".into(),
                    ));
                }
                // A resumed run may be given another learning rate (after a divergence).
                opt.config.lr = config.lr;
                (dir.clone(), lora, opt, state)
            }
            None => {
                let dir = new_run_dir(&config.runs_dir, &config.model)?;
                let lora =
                    fresh_lora(&p, config).map_err(|e| TrainWriteError::Setting(e.to_string()))?;
                let adamw = AdamWConfig {
                    lr: config.lr,
                    ..AdamWConfig::default()
                };
                let opt = AdamW::new(adamw, &lora);
                let state = RunState {
                    step: 0,
                    rng_seed: config.seed,
                    rng_word_pos: "0".into(),
                    adamw,
                    adamw_step: 0,
                    fingerprint,
                    base_val_loss: f64::NAN,
                    train_curve: Vec::new(),
                    val_curve: Vec::new(),
                    seconds: 0.0,
                    architecture: arch,
                    alpha: config.alpha,
                    pairs: lora
                        .adapter()
                        .pairs
                        .iter()
                        .map(|p| (p.layer, p.target, p.rank, p.n_in, p.n_out))
                        .collect(),
                };
                (dir, lora, opt, state)
            }
        };
        let mut rng = ChaCha8Rng::seed_from_u64(state.rng_seed.wrapping_add(1));
        rng.set_word_pos(state.rng_word_pos.parse().unwrap_or(0));
        let spe = steps_per_epoch(config, p.corpus.train.len());
        let steps_total = config
            .steps
            .unwrap_or_else(|| (config.epochs.unwrap_or(1.0) * spe as f64).ceil().max(1.0) as u64);
        let sample_prompt = p.val_chunks[..SAMPLE_PROMPT.min(p.val_len / 2).max(1)].to_vec();
        let last_checkpoint = config.resume.as_ref().map(|d| d.join(checkpoint::FILE));
        if let Some(path) = &config.plan_out {
            write_plan(path, config, &p, &lora, &rng, steps_total)?;
        }
        Ok(Self {
            config,
            control,
            pool,
            p,
            dir,
            lora,
            opt,
            rng,
            state,
            steps_total,
            ws: Workspace::default(),
            sample_prompt,
            base_sample: None,
            last_checkpoint,
        })
    }

    /// Mean held-out loss, with the adapter or without.
    fn validate(&mut self, with_adapter: bool) -> Result<f64, Interrupted> {
        let (mut sum, mut n) = (0f64, 0usize);
        let chunk = self.p.val_len * self.config.batch;
        let control = self.control;
        let pause = || control.checkpoint();
        let lora = with_adapter.then_some(&self.lora);
        for tokens in self.p.val_chunks.chunks(chunk) {
            let seqs = tokens.len() / self.p.val_len;
            let (model, ws) = (&self.p.model, &mut self.ws);
            let (s, c) = self
                .pool
                .install(|| model.eval_loss(lora, tokens, seqs, ws, &pause))?;
            sum += s;
            n += c;
        }
        Ok(sum / n.max(1) as f64)
    }

    /// A greedy continuation of the held-out prompt.
    fn sample(&mut self, with_adapter: bool) -> Result<String, Interrupted> {
        let mut tokens = self.sample_prompt.clone();
        let control = self.control;
        let pause = || control.checkpoint();
        let lora = with_adapter.then_some(&self.lora);
        for _ in 0..self.config.sample_tokens {
            let (model, ws) = (&self.p.model, &mut self.ws);
            let logits = self
                .pool
                .install(|| model.next_logits(lora, &tokens, ws, &pause))?;
            let next = logits
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 { (i, v) } else { best }
                })
                .0 as u32;
            if self.p.tokenizer.is_eog(next) {
                break;
            }
            tokens.push(next);
        }
        Ok(self.p.tokenizer.decode(&tokens[self.sample_prompt.len()..]))
    }

    fn emit_sample(
        &mut self,
        on_event: &mut dyn FnMut(TrainWriteEvent),
    ) -> Result<(), Interrupted> {
        if self.base_sample.is_none() {
            self.base_sample = Some(self.sample(false)?);
        }
        let adapter_text = self.sample(true)?;
        on_event(TrainWriteEvent::Sample {
            step: self.state.step,
            prompt: self.p.tokenizer.decode(&self.sample_prompt),
            adapter_text,
            base_text: self.base_sample.clone().unwrap_or_default(),
        });
        Ok(())
    }

    fn emit_validation(
        &mut self,
        on_event: &mut dyn FnMut(TrainWriteEvent),
    ) -> Result<(), Interrupted> {
        let loss = self.validate(true)?;
        self.state.val_curve.push((self.state.step, loss));
        on_event(TrainWriteEvent::Validation {
            step: self.state.step,
            loss,
            perplexity: loss.exp(),
            base_perplexity: self.state.base_val_loss.exp(),
        });
        Ok(())
    }

    fn record(&self, status: &str) -> Result<(), TrainWriteError> {
        let record = RunRecord {
            config: self.config.clone(),
            architecture: self.state.architecture.clone(),
            train_tokens: self.p.corpus.train.len(),
            val_tokens: self.p.corpus.val.len(),
            sources: self.p.corpus.sources.clone(),
            truncated: self.p.corpus.truncated,
            status: status.into(),
            step: self.state.step,
            steps_total: self.steps_total,
            base_val_loss: self.state.base_val_loss,
            val_curve: self.state.val_curve.clone(),
            train_curve: self.state.train_curve.clone(),
            adapter: Some(self.dir.join(ADAPTER_FILE)),
        };
        let path = self.dir.join(RUN_FILE);
        let bad = |detail: String| TrainWriteError::RunFolder {
            path: self.dir.clone(),
            detail,
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|e| bad(e.to_string()))?;
        crate::fsutil::atomic_write(&path, &json)
            .map_err(|e| bad(format!("cannot write {RUN_FILE}: {e}")))
    }

    fn save_checkpoint(
        &mut self,
        status: &str,
        on_event: &mut dyn FnMut(TrainWriteEvent),
    ) -> Result<(), TrainWriteError> {
        self.state.rng_word_pos = self.rng.get_word_pos().to_string();
        self.state.adamw = self.opt.config;
        self.state.adamw_step = self.opt.step;
        let path = checkpoint::save(&self.dir, &self.state, self.lora.adapter(), &self.opt)?;
        let adapter = self.dir.join(ADAPTER_FILE);
        adapter_file::save(&adapter, self.lora.adapter()).map_err(|source| {
            TrainWriteError::Adapter {
                path: adapter,
                source,
            }
        })?;
        self.record(status)?;
        self.last_checkpoint = Some(path.clone());
        on_event(TrainWriteEvent::Checkpoint {
            step: self.state.step,
            path,
        });
        Ok(())
    }

    fn train(
        mut self,
        on_event: &mut dyn FnMut(TrainWriteEvent),
    ) -> Result<TrainWriteReport, TrainWriteError> {
        let per_token = seconds_per_token(&self.p, self.config, self.control, &self.pool);
        let start_step = self.state.step;
        on_event(TrainWriteEvent::Started {
            run_dir: self.dir.clone(),
            train_tokens: self.p.corpus.train.len(),
            val_tokens: self.p.corpus.val.len(),
            sources: self.p.corpus.sources.clone(),
            truncated: self.p.corpus.truncated,
            steps_per_epoch: steps_per_epoch(self.config, self.p.corpus.train.len()),
            steps_total: self.steps_total,
            epoch_seconds: per_token
                .as_ref()
                .map_or(f64::NAN, |s| s * self.p.corpus.train.len() as f64),
            start_step,
            parameters: self.lora.parameter_count(),
        });
        self.record("running")?;
        let mut timing = Timing::default();
        let outcome = self.steps(on_event, &mut timing);
        let status = match &outcome {
            Ok(()) => "finished",
            Err(Halt::Stopped) => "stopped",
            Err(Halt::Failed(TrainWriteError::Diverged { .. })) => {
                // The last good checkpoint stays; only the record says what happened.
                let _ = self.record("diverged");
                "diverged"
            }
            Err(Halt::Failed(_)) => "failed",
        };
        match outcome {
            Ok(()) | Err(Halt::Stopped) => {}
            Err(Halt::Failed(e)) => return Err(e),
        }
        self.save_checkpoint(status, on_event)?;
        let mut adapter = self.dir.join(ADAPTER_FILE);
        if status == "finished"
            && let Some(out) = &self.config.out
        {
            adapter_file::save(out, self.lora.adapter()).map_err(|source| {
                TrainWriteError::Adapter {
                    path: out.clone(),
                    source,
                }
            })?;
            adapter = out.clone();
        }
        let (after_step, after) = self
            .state
            .val_curve
            .last()
            .copied()
            .unwrap_or((0, self.state.base_val_loss));
        Ok(TrainWriteReport {
            run_dir: self.dir.clone(),
            adapter,
            steps: self.state.step,
            stopped: status == "stopped",
            train_tokens: self.p.corpus.train.len(),
            val_tokens: self.p.corpus.val.len(),
            tokens_per_second: timing.tokens as f64 / timing.seconds.max(1e-9),
            seconds: timing.seconds,
            val_perplexity_before: self.state.base_val_loss.exp(),
            val_perplexity_after: after.exp(),
            val_perplexity_step: after_step,
            final_train_loss: self.state.train_curve.last().map(|&(_, l)| l),
            median_step_seconds: timing.median(),
        })
    }

    fn steps(
        &mut self,
        on_event: &mut dyn FnMut(TrainWriteEvent),
        timing: &mut Timing,
    ) -> Result<(), Halt> {
        if self.state.val_curve.is_empty() {
            let base = self.validate(false)?;
            self.state.base_val_loss = base;
            self.state.val_curve.push((0, base));
            on_event(TrainWriteEvent::Validation {
                step: 0,
                loss: base,
                perplexity: base.exp(),
                base_perplexity: base.exp(),
            });
        }
        if self.config.sample_every > 0 {
            self.emit_sample(on_event)?;
        }
        let (context, batch) = (self.config.context, self.config.batch);
        let mut grads = self.lora.zero_grads();
        let mut tokens = Vec::with_capacity(context * batch);
        let mut last_validated = self.state.val_curve.last().map_or(0, |&(s, _)| s);
        while self.state.step < self.steps_total {
            self.control.checkpoint().map_err(|_| Halt::Stopped)?;
            let started = Instant::now();
            // The batch is drawn from a clone so a stopped step leaves the stream where the
            // checkpoint says it is.
            let mut rng = self.rng.clone();
            tokens.clear();
            let max_start = self.p.max_start(context);
            for _ in 0..batch {
                let s = rng.random_range(0..=max_start);
                self.p
                    .push_chunk(&self.p.corpus.train, s, context, &mut tokens);
            }
            grads.clear();
            let control = self.control;
            let pause = || control.checkpoint();
            let (model, lora, ws) = (&self.p.model, &self.lora, &mut self.ws);
            let loss = self
                .pool
                .install(|| model.loss_and_grads(lora, &tokens, batch, &mut grads, ws, &pause))?;
            let step = self.state.step + 1;
            if !loss.is_finite() {
                return Err(self.diverged(step, loss));
            }
            self.opt.update(&mut self.lora, &grads);
            if !self.lora.is_finite() {
                return Err(self.diverged(step, f64::NAN));
            }
            self.rng = rng;
            self.state.step = step;
            self.state.train_curve.push((step, loss));
            let secs = started.elapsed().as_secs_f64();
            self.state.seconds += secs;
            timing.add(secs, (context * batch) as u64);
            on_event(TrainWriteEvent::Step {
                step,
                steps_total: self.steps_total,
                loss,
                tokens_per_second: timing.recent_rate(),
                seconds_left: timing.recent_seconds_per_step() * (self.steps_total - step) as f64,
            });
            let last = step == self.steps_total;
            if step.is_multiple_of(self.config.eval_every.max(1)) || last {
                self.emit_validation(on_event)?;
                last_validated = step;
            }
            let every = self.config.sample_every;
            if every > 0 && (step.is_multiple_of(every) || last) {
                self.emit_sample(on_event)?;
            }
            if step.is_multiple_of(self.config.checkpoint_every.max(1)) && !last {
                self.save_checkpoint("running", on_event)?;
            }
        }
        if last_validated != self.state.step {
            self.emit_validation(on_event)?;
        }
        Ok(())
    }

    fn diverged(&self, step: u64, loss: f64) -> Halt {
        Halt::Failed(TrainWriteError::Diverged {
            step,
            loss,
            lr: self.opt.config.lr,
            checkpoint: self.last_checkpoint.clone(),
        })
    }
}

/// The run's plan as JSON, for a peer to replay the same run (see
/// [`TrainWriteConfig::plan_out`]).
fn write_plan(
    path: &Path,
    config: &TrainWriteConfig,
    p: &Prepared,
    lora: &Lora,
    rng: &ChaCha8Rng,
    steps: u64,
) -> Result<(), TrainWriteError> {
    let mut rng = rng.clone();
    let max_start = p.max_start(config.context);
    let batches: Vec<Vec<usize>> = (0..steps)
        .map(|_| {
            (0..config.batch)
                .map(|_| rng.random_range(0..=max_start))
                .collect()
        })
        .collect();
    let a: Vec<_> = lora
        .adapter()
        .pairs
        .iter()
        .map(|p| serde_json::json!({"layer": p.layer, "target": p.target.gguf_name(), "a": p.a}))
        .collect();
    let plan = serde_json::json!({
        "architecture": p.model.architecture().gguf_name(),
        "rank": config.rank,
        "alpha": config.alpha,
        "targets": config.targets.iter().map(|t| t.gguf_name()).collect::<Vec<_>>(),
        "lr": config.lr,
        "context": config.context,
        "batch": config.batch,
        "train": p.corpus.train,
        "val_chunks": p.val_chunks,
        "val_len": p.val_len,
        "bos": p.bos,
        "batches": batches,
        "init_a": a,
    });
    let bytes = serde_json::to_vec(&plan).map_err(|e| TrainWriteError::RunFolder {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    crate::fsutil::atomic_write(path, &bytes).map_err(|e| TrainWriteError::RunFolder {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Step times, for tokens/s and time left.
#[derive(Default)]
struct Timing {
    seconds: f64,
    tokens: u64,
    recent: std::collections::VecDeque<(f64, u64)>,
    all: Vec<f64>,
}

impl Timing {
    const WINDOW: usize = 10;

    fn add(&mut self, secs: f64, tokens: u64) {
        self.all.push(secs);
        self.seconds += secs;
        self.tokens += tokens;
        self.recent.push_back((secs, tokens));
        if self.recent.len() > Self::WINDOW {
            self.recent.pop_front();
        }
    }

    fn recent_rate(&self) -> f64 {
        let (s, t) = self
            .recent
            .iter()
            .fold((0.0, 0u64), |(s, t), &(a, b)| (s + a, t + b));
        t as f64 / s.max(1e-9)
    }

    fn median(&self) -> f64 {
        let mut v = self.all.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn recent_seconds_per_step(&self) -> f64 {
        let s: f64 = self.recent.iter().map(|&(a, _)| a).sum();
        s / self.recent.len().max(1) as f64
    }
}
