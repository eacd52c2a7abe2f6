//! `atelier write`, `atelier score` and `atelier tokenize`: the language models from the
//! command line, on the same engine jobs as the Write panel.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use crate::engine::{Engine, Event, ScorePrompt, ScoreRequest, WriteRequest};
use crate::models::llm::context::WriteTask;
use crate::models::llm::lora::AdapterSpec;
use crate::models::llm::{GenerateParams, GenerationResult, SamplingParams, gguf};

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
    /// Apply a LoRA adapter (llama.cpp's GGUF LoRA format) at strength SCALE (0-2,
    /// default 1).
    #[arg(long, value_name = "ADAPTER.gguf[:SCALE]", value_parser = AdapterSpec::parse, conflicts_with = "remote")]
    pub lora: Option<AdapterSpec>,
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
    /// Apply a LoRA adapter at strength SCALE (0-2, default 1).
    #[arg(long, value_name = "ADAPTER.gguf[:SCALE]", value_parser = AdapterSpec::parse)]
    pub lora: Option<AdapterSpec>,
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

/// Runs `atelier write`.
pub fn write(a: WriteArgs) -> anyhow::Result<()> {
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
            crate::headless::resolve_llm(a.model.as_deref().unwrap_or("smollm2"))?,
            None,
        ),
    };
    let engine = Engine::spawn(None, None)?;
    let job = engine.write(WriteRequest {
        model,
        adapter: a.lora.clone(),
        task,
        params,
        candidates: a.n,
        forced: Vec::new(),
        remote,
    });
    let mut results: Vec<GenerationResult> = Vec::new();
    let mut load_seconds = None;
    let mut model_name = String::new();
    let mut adapter = None;
    let mut trimmed = None;
    let stdout = std::io::stdout();
    engine.wait(job.id(), crate::headless::IDLE, |ev| {
        match ev {
            Event::ModelLoaded { info, .. } => {
                load_seconds = Some(info.load_seconds);
                model_name = info.name.clone();
                if let Some(applied) = &info.adapter {
                    eprintln!(
                        "{} ({}, rank {})",
                        applied.label(),
                        applied.method,
                        applied.rank
                    );
                }
                adapter = info.adapter.clone();
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
            Event::Token { token, .. } if !a.json => {
                if a.n > 1 && token.text.is_empty() {
                    return Ok(());
                }
                let mut out = stdout.lock();
                let _ = write!(out, "{}", token.text);
                let _ = out.flush();
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
            _ => {}
        }
        anyhow::Ok(())
    })?;
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
        out["adapter"] = serde_json::to_value(&adapter).unwrap_or_default();
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

/// Runs `atelier score`.
pub fn score(a: ScoreArgs) -> anyhow::Result<()> {
    let model = crate::headless::resolve_llm(&a.model)?;
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
        adapter: a.lora.clone(),
        prompt,
        continuation,
        top_k: a.logprobs,
    });
    engine.wait(job.id(), crate::headless::IDLE, |ev| {
        if let Event::Scored { scores, .. } = ev {
            let total: f64 = scores.iter().map(|s| s.logprob as f64).sum();
            println!(
                "{}",
                serde_json::to_string(&serde_json::json!({
                    "tokens": scores,
                    "total_logprob": total,
                }))?
            );
        }
        anyhow::Ok(())
    })?;
    Ok(())
}

/// Runs `atelier tokenize`.
pub fn tokenize(a: TokenizeArgs) -> anyhow::Result<()> {
    let path = crate::headless::resolve_llm(&a.model)?;
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
