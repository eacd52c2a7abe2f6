//! The headless command line: the same engine as the GUI, driven from a terminal or a script.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{Engine, Event, ScorePrompt, ScoreRequest, WriteRequest};
use crate::models::llm::context::WriteTask;
use crate::models::llm::{GenerateParams, GenerationResult, SamplingParams, gguf};
use crate::paths;

/// Atelier: a creative studio that runs generative models locally.
#[derive(Debug, Parser)]
#[command(name = "atelier", version, about, long_about = None)]
pub struct Cli {
    /// With no command, the studio window opens.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Model the Write panel starts with (GUI only).
    #[arg(long, global = false)]
    pub model: Option<PathBuf>,
    /// Log filter (e.g. "info", "atelier=debug"); also read from RUST_LOG. Default: warnings.
    #[arg(long)]
    pub log: Option<String>,
    /// Where the image models (faces, style) run: auto takes the GPU when the adapter is a
    /// real GPU and the CPU otherwise (a software rasterizer is slower than the CPU kernels);
    /// gpu forces it (any adapter, software included). The language model stays on the CPU.
    /// Default: auto, or the studio's saved setting.
    #[arg(long, global = true, value_enum)]
    pub backend: Option<crate::gpu::Backend>,
    /// Trade-show mode: fullscreen, large type, an attract loop when idle, a reset to a clean
    /// state after a longer idle time, no file dialogs, quit only with the configured keys
    /// (default Ctrl+Shift+Q). Also on when the settings say `"kiosk": true`.
    #[arg(long)]
    pub kiosk: bool,
    /// The kiosk configuration (TOML; see the README). Default: kiosk.toml in the data folder,
    /// else built-in defaults. Implies --kiosk.
    #[arg(long, value_name = "PATH")]
    pub kiosk_config: Option<PathBuf>,
}

/// The `--backend` of this process's headless command (set once by [`run`]).
static BACKEND: std::sync::OnceLock<crate::gpu::Backend> = std::sync::OnceLock::new();

/// The backend the headless command runs the image models on (`--backend`, default auto).
pub fn backend() -> crate::gpu::Backend {
    BACKEND.get().copied().unwrap_or_default()
}

/// A headless engine (no window: the GPU, when chosen, is a device of its own) on
/// [`backend`].
pub fn headless_engine() -> anyhow::Result<Engine> {
    let engine = Engine::spawn(None, None)?;
    engine.set_backend(backend());
    Ok(engine)
}

impl Cli {
    /// The log filter to use when neither `--log` nor RUST_LOG says. Headless commands print a
    /// failed job's error themselves as their one `error:` line, so the worker's own record of
    /// it is left out there (it is handled once, by whoever shows it).
    pub fn default_log_filter(&self) -> &str {
        match (&self.log, &self.command) {
            (Some(f), _) => f,
            // A server reports its address and each request.
            (None, Some(Command::Serve(_))) => "warn,atelier=info,atelier::engine::worker=off",
            (None, Some(_)) => "warn,atelier::engine::worker=off,atelier::remote::runner=off",
            (None, None) => "warn",
        }
    }
}

/// Headless commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate text with a local LLM; streams text to stdout and speed to stderr.
    Write(WriteArgs),
    /// Score a given continuation teacher-forced (log-probabilities per token).
    Score(ScoreArgs),
    /// Print the token ids of a text as a JSON array.
    Tokenize(TokenizeArgs),
    /// Generate faces with the DCGAN: one face, a grid of seeds, or a looping walk as a GIF.
    Faces(crate::faces::cli::FacesArgs),
    /// Restyle a photo with one of 26 built-in styles, a blend of them, or any painting.
    Style(crate::style::cli::StyleArgs),
    /// List the models Atelier knows about (bundled and discovered), or fetch the defaults.
    Models(ModelsArgs),
    /// Serve the local engine over the OpenAI-compatible HTTP API (and PNG image endpoints)
    /// for other studios and OpenAI clients; see the README.
    Serve(crate::serve::ServeArgs),
    /// Drive all three models in a loop for a while, printing memory (RSS) and job latency
    /// over time, to check that nothing grows; see BENCHMARKS.md.
    Soak(crate::soak::SoakArgs),
    /// Benchmarks (same code path as the studio); see BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Fine-tune a model on your own material; see the README's "Training".
    #[command(subcommand)]
    Train(TrainCommand),
}

/// `atelier train …`
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Teach a language model the voice of your writing: a LoRA adapter (llama.cpp's GGUF
    /// format) trained on your texts.
    Write(crate::train::write::cli::TrainWriteArgs),
}

/// `atelier bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Model load, prompt processing and decode speed, peak RSS of the Write models.
    Write(crate::bench::WriteBenchArgs),
    /// DCGAN single-sample latency, batch throughput and live-walk frame pacing.
    Faces(crate::bench::FacesBenchArgs),
    /// Style network latency (multistyle26, arbitrary-style transform and predictor).
    Style(crate::style::bench::StyleBenchArgs),
}

/// Prompt mode of `atelier write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Raw completion of the prompt (works with base models).
    Continue,
    /// The prompt is an instruction, wrapped in the model's chat template.
    Instruct,
}

/// `atelier write`
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The prompt text.
    #[arg(long, conflicts_with = "prompt_file")]
    pub prompt: Option<String>,
    /// Read the prompt from a file.
    #[arg(long)]
    pub prompt_file: Option<PathBuf>,
    /// continue: raw completion; instruct: chat template.
    #[arg(long, value_enum, default_value_t = Mode::Continue)]
    pub mode: Mode,
    /// A GGUF file, or `smollm2` / `gemma3` for the defaults (default smollm2). With
    /// --remote: the server's model name (default: its first).
    #[arg(long)]
    pub model: Option<String>,
    /// Generate on an OpenAI-compatible server instead, e.g. `http://127.0.0.1:8080`
    /// (llama-server, vLLM, Ollama, `atelier serve`). The API key comes from the
    /// ATELIER_API_KEY environment variable, else from the key the studio saved for this
    /// address.
    #[arg(long, value_name = "URL")]
    pub remote: Option<String>,
    /// Random seed (same seed + settings + model = same text).
    #[arg(long, default_value_t = SamplingParams::default().seed)]
    pub seed: u64,
    /// Temperature; 0 is greedy.
    #[arg(long, default_value_t = SamplingParams::default().temperature)]
    pub temperature: f32,
    /// Top-k (0 disables).
    #[arg(long, default_value_t = SamplingParams::default().top_k)]
    pub top_k: usize,
    /// Top-p (1 disables).
    #[arg(long, default_value_t = SamplingParams::default().top_p)]
    pub top_p: f32,
    /// Min-p (0 disables).
    #[arg(long, default_value_t = SamplingParams::default().min_p)]
    pub min_p: f32,
    /// Repetition penalty (1 disables).
    #[arg(long, default_value_t = SamplingParams::default().repeat_penalty)]
    pub repeat_penalty: f32,
    /// Window of the repetition penalty, in tokens.
    #[arg(long, default_value_t = SamplingParams::default().repeat_last_n)]
    pub repeat_last_n: usize,
    /// Maximum new tokens.
    #[arg(long, default_value_t = GenerateParams::default().max_new_tokens)]
    pub max_tokens: usize,
    /// Number of alternative candidates (1–4).
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Print one JSON object (token ids, text, timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Add each token's log-probability and the top-K alternatives to the JSON.
    #[arg(long, default_value_t = 0)]
    pub logprobs: usize,
}

/// `atelier score`
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// A GGUF file, or `smollm2` / `gemma3`.
    #[arg(long)]
    pub model: String,
    /// The prompt text (tokenized with BOS where the model wants it).
    #[arg(long, required_unless_present = "prompt_ids")]
    pub prompt: Option<String>,
    /// The prompt as a JSON array of token ids (exact; no BOS added).
    #[arg(long)]
    pub prompt_ids: Option<String>,
    /// The continuation to score, as a JSON array of token ids.
    #[arg(long)]
    pub continuation_ids: String,
    /// Alternatives to report per position.
    #[arg(long, default_value_t = 5)]
    pub logprobs: usize,
    /// Print JSON (the only output format; accepted for symmetry with `write`).
    #[arg(long)]
    pub json: bool,
}

/// `atelier tokenize`
#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// A GGUF file, or `smollm2` / `gemma3`.
    #[arg(long)]
    pub model: String,
    /// Recognise special-token text such as `<|im_start|>`.
    #[arg(long)]
    pub special: bool,
    /// Add BOS where the model wants it.
    #[arg(long)]
    pub bos: bool,
    /// The text.
    pub text: String,
}

/// `atelier models`
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// `list` (default) or `fetch`.
    #[arg(default_value = "list")]
    pub action: String,
}

/// The bundled models, each with whether it is installed (for `--help` and `--version`).
pub fn bundled_models_help() -> String {
    use crate::models::style::{MULTISTYLE_FILE, PREDICT_FILE, TRANSFORM_FILE};
    let mut text = format!(
        "Bundled models (fetched into {} by {}):",
        paths::models_dir().display(),
        paths::FETCH_COMMAND
    );
    for (panel, file, what) in [
        (
            "Write",
            paths::SMOLLM2_FILE,
            "SmolLM2-135M-Instruct Q4_1, default, instruct",
        ),
        (
            "Write",
            paths::GEMMA3_FILE,
            "Gemma 3 270M base Q4_K_M, completion",
        ),
        (
            "Faces",
            crate::faces::DEFAULT_MODEL_FILE,
            "DCGAN 64x64 face generator",
        ),
        ("Style", MULTISTYLE_FILE, "multistyle26, 26 built-in styles"),
        ("Style", PREDICT_FILE, "arbitrary-style predictor"),
        ("Style", TRANSFORM_FILE, "arbitrary-style transform"),
    ] {
        let state = if paths::default_model(file).is_file() {
            "installed"
        } else {
            "missing"
        };
        text.push_str(&format!("\n  {panel}: {file} ({what}) [{state}]"));
    }
    text.push_str(&format!(
        "\nLogs: {} (rotated at {} MB)",
        crate::logs::log_dir()
            .join(crate::logs::FILE_NAME)
            .display(),
        crate::logs::MAX_BYTES / (1024 * 1024)
    ));
    text
}

/// What `--version` prints: the version and the bundled models.
pub fn long_version() -> String {
    format!("{}\n{}", env!("CARGO_PKG_VERSION"), bundled_models_help())
}

/// Resolves `smollm2` / `gemma3` to the bundled files, anything else to a path; a missing
/// bundled model names the command that fetches it.
pub fn resolve_model(name: &str) -> anyhow::Result<PathBuf> {
    let path = match name {
        "smollm2" | "default" => paths::default_model(paths::SMOLLM2_FILE),
        "gemma3" => paths::default_model(paths::GEMMA3_FILE),
        other => PathBuf::from(other),
    };
    if !path.exists() {
        if matches!(name, "smollm2" | "default" | "gemma3") {
            bail!(
                "the default model {} is missing: run {} to fetch it",
                path.display(),
                paths::FETCH_COMMAND
            );
        }
        bail!("model file {} does not exist", path.display());
    }
    Ok(path)
}

/// Runs a headless command.
pub fn run(cmd: Command, backend: Option<crate::gpu::Backend>) -> anyhow::Result<()> {
    let _ = BACKEND.set(backend.unwrap_or_default());
    match cmd {
        Command::Write(a) => write(a),
        Command::Score(a) => score(a),
        Command::Tokenize(a) => tokenize(a),
        Command::Faces(a) => crate::faces::cli::run(a),
        Command::Style(a) => crate::style::cli::run(a),
        Command::Bench(BenchCommand::Style(a)) => crate::style::bench::run(&a),
        Command::Models(a) => models(a),
        Command::Soak(a) => crate::soak::run(&a),
        Command::Serve(a) => crate::serve::run(&a),
        Command::Train(TrainCommand::Write(a)) => crate::train::write::cli::run(a),
        Command::Bench(BenchCommand::Write(a)) => {
            let report = crate::bench::run_write_bench(&a)?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", crate::bench::summary_text(&report));
            }
            Ok(())
        }
        Command::Bench(BenchCommand::Faces(a)) => {
            let report = crate::bench::run_faces_bench(&a)?;
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", crate::faces::bench::summary_text(&report));
            }
            Ok(())
        }
    }
}

fn write(a: WriteArgs) -> anyhow::Result<()> {
    let prompt = match (&a.prompt, &a.prompt_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read prompt file {}", f.display()))?,
        (None, None) => bail!("give a prompt with --prompt TEXT or --prompt-file FILE"),
    };
    let task = match a.mode {
        Mode::Continue => WriteTask::Continue { text: prompt },
        Mode::Instruct => WriteTask::Instruct {
            instruction: prompt,
            document: String::new(),
        },
    };
    let params = GenerateParams {
        sampling: SamplingParams {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            min_p: a.min_p,
            repeat_penalty: a.repeat_penalty,
            repeat_last_n: a.repeat_last_n,
            seed: a.seed,
        },
        max_new_tokens: a.max_tokens,
        logprobs: a.logprobs,
    };
    let (model, remote) = match &a.remote {
        Some(url) => {
            let mut endpoint = crate::remote::RemoteEndpoint::new(
                url.clone(),
                a.model.clone().unwrap_or_default(),
            );
            crate::remote::normalize_base_url(url)?;
            endpoint.api_key = std::env::var("ATELIER_API_KEY")
                .ok()
                .and_then(crate::remote::ApiKey::new);
            (PathBuf::new(), Some(endpoint))
        }
        None => (
            resolve_model(a.model.as_deref().unwrap_or("smollm2"))?,
            None,
        ),
    };
    let engine = Engine::spawn(None, None)?;
    let job = engine.write(WriteRequest {
        model,
        task,
        params,
        candidates: a.n,
        forced: Vec::new(),
        remote,
    });
    let mut results: Vec<GenerationResult> = Vec::new();
    let mut load_seconds = None;
    let mut model_name = String::new();
    let mut trimmed = None;
    let stdout = std::io::stdout();
    loop {
        let Some(ev) = engine.recv_timeout(Duration::from_secs(600)) else {
            bail!("the engine stopped answering");
        };
        if ev.job() != job.id() {
            continue;
        }
        match ev {
            Event::ModelLoaded { info, .. } => {
                load_seconds = Some(info.load_seconds);
                model_name = info.name.clone();
            }
            Event::PromptReady { trimmed: t, .. } => {
                if let Some(t) = &t {
                    eprintln!(
                        "note: the first {} characters of the prompt were left out to fit the {}-token context",
                        t.dropped_chars, t.context_tokens
                    );
                }
                trimmed = t;
            }
            Event::Token {
                candidate, token, ..
            } if !a.json => {
                let mut out = stdout.lock();
                if a.n > 1 && token.text.is_empty() {
                    continue;
                }
                let _ = write!(out, "{}", token.text);
                let _ = out.flush();
                let _ = candidate;
            }
            Event::CandidateDone {
                candidate, result, ..
            } => {
                if !a.json {
                    println!();
                    let _ = stdout.lock().flush();
                    eprintln!(
                        "[{}] {} tokens, first token {:.0} ms, {:.1} tok/s decode, {:.1} tok/s prompt ({} tokens), stop: {:?}",
                        candidate + 1,
                        result.stats.generated_tokens,
                        result.stats.time_to_first_token_ms,
                        result.stats.decode_tokens_per_s,
                        result.stats.prompt_tokens_per_s,
                        result.stats.prompt_tokens,
                        result.stop
                    );
                    if a.n > 1 && candidate + 1 < a.n {
                        println!("---");
                    }
                }
                results.push(*result);
            }
            Event::Failed { error, .. } => return Err(error.into()),
            Event::Cancelled { .. } | Event::Finished { .. } => break,
            _ => {}
        }
    }
    if a.json {
        let cand = |r: &GenerationResult| {
            let mut o = serde_json::json!({
                "token_ids": r.tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
                "text": r.text,
                "stop": r.stop,
                "timings": r.stats,
            });
            if a.logprobs > 0 {
                o["logprobs"] = serde_json::to_value(&r.tokens).unwrap_or_default();
            }
            o
        };
        let mut out = match results.first() {
            Some(r) => cand(r),
            None => serde_json::json!({}),
        };
        out["model"] = model_name.into();
        out["load_seconds"] = load_seconds.into();
        out["trimmed"] = serde_json::to_value(&trimmed).unwrap_or_default();
        if a.n > 1 {
            out["candidates"] = results.iter().map(cand).collect();
        }
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(())
}

fn parse_ids(what: &str, json: &str) -> anyhow::Result<Vec<u32>> {
    serde_json::from_str::<Vec<u32>>(json)
        .with_context(|| format!("{what} must be a JSON array of token ids, e.g. [28, 260]"))
}

fn score(a: ScoreArgs) -> anyhow::Result<()> {
    let model = resolve_model(&a.model)?;
    let prompt = match (&a.prompt_ids, &a.prompt) {
        (Some(ids), _) => ScorePrompt::Ids(parse_ids("--prompt-ids", ids)?),
        (None, Some(t)) => ScorePrompt::Text(t.clone()),
        (None, None) => bail!("give --prompt TEXT or --prompt-ids JSON"),
    };
    let continuation = parse_ids("--continuation-ids", &a.continuation_ids)?;
    if continuation.is_empty() {
        bail!("--continuation-ids is empty: nothing to score");
    }
    let engine = Engine::spawn(None, None)?;
    let job = engine.score(ScoreRequest {
        model,
        prompt,
        continuation,
        top_k: a.logprobs,
    });
    loop {
        let Some(ev) = engine.recv_timeout(Duration::from_secs(600)) else {
            bail!("the engine stopped answering");
        };
        if ev.job() != job.id() {
            continue;
        }
        match ev {
            Event::Scored { scores, .. } => {
                let total: f64 = scores.iter().map(|s| s.logprob as f64).sum();
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({
                        "tokens": scores,
                        "total_logprob": total,
                    }))?
                );
            }
            Event::Failed { error, .. } => return Err(error.into()),
            Event::Finished { .. } | Event::Cancelled { .. } => return Ok(()),
            _ => {}
        }
    }
}

fn tokenize(a: TokenizeArgs) -> anyhow::Result<()> {
    let path = resolve_model(&a.model)?;
    let (content, _file, _) = gguf::open(&path)?;
    let tok = crate::models::llm::GgufTokenizer::from_gguf(&content)?;
    let mut ids = match (a.bos && tok.add_bos(), tok.bos_id()) {
        (true, Some(b)) => vec![b],
        _ => Vec::new(),
    };
    ids.extend(tok.encode(&a.text, a.special)?);
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}

fn models(a: ModelsArgs) -> anyhow::Result<()> {
    match a.action.as_str() {
        "list" => {
            for (label, file) in [
                ("Write (default)", paths::SMOLLM2_FILE),
                ("Write (completion)", paths::GEMMA3_FILE),
            ] {
                let p = paths::default_model(file);
                let state = if p.exists() { "ok" } else { "missing" };
                println!("{label:20} {state:8} {}", p.display());
            }
            for m in crate::models::llm::discover::find_models() {
                if m.source == crate::models::llm::discover::ModelSource::Bundled {
                    continue;
                }
                println!(
                    "{:20} {:>6} MB {} ({})",
                    m.source.label(),
                    m.size / 1_000_000,
                    m.name,
                    m.path.display()
                );
            }
            Ok(())
        }
        "fetch" => {
            let script = paths::models_dir().join("fetch.sh");
            let status = std::process::Command::new("bash")
                .arg(&script)
                .status()
                .with_context(|| format!("cannot run {}", script.display()))?;
            if !status.success() {
                bail!("{} failed", script.display());
            }
            Ok(())
        }
        other => {
            bail!("unknown action '{other}': use `atelier models list` or `atelier models fetch`")
        }
    }
}
