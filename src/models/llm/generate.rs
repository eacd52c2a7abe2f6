//! The generation loop shared by the GUI, the CLI, the tests and the benchmarks:
//! `forward → penalties → sample → stream decode`, checking the cancel flag before every token,
//! plus teacher-forced scoring of a given continuation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::sampling::{self, Sampler, SamplingParams};
use super::tokenizer::StreamDecoder;
use super::{Llm, LlmError};

/// What a generation may do.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct GenerateParams {
    /// How the next token is chosen.
    pub sampling: SamplingParams,
    /// Stop after this many new tokens.
    pub max_new_tokens: usize,
    /// How many alternatives to report per generated token (0 = none).
    pub logprobs: usize,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            sampling: SamplingParams::default(),
            max_new_tokens: 200,
            logprobs: 5,
        }
    }
}

/// Another token the model weighed at a position.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TokenAlternative {
    /// Token id.
    pub id: u32,
    /// Its text (lossy for partial characters).
    pub text: String,
    /// Natural-log probability under the model (temperature 1, before penalties).
    pub logprob: f32,
}

/// One generated token as it streams out.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GeneratedToken {
    /// Token id.
    pub id: u32,
    /// The text this token completes (empty while a multi-byte character is pending).
    pub text: String,
    /// Its natural-log probability under the model (temperature 1, before penalties).
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first.
    pub top: Vec<TokenAlternative>,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model produced an end-of-sequence or end-of-turn token.
    Eos,
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The context window is full.
    ContextFull,
    /// The user stopped it.
    Cancelled,
}

/// Timings of one generation.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Seconds spent on the prompt (prefill).
    pub prompt_seconds: f64,
    /// Milliseconds from the start to the first generated token.
    pub time_to_first_token_ms: f64,
    /// Prompt tokens per second.
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second after the first.
    pub decode_tokens_per_s: f64,
    /// Wall time of the whole generation.
    pub total_seconds: f64,
}

/// A finished (or stopped) generation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GenerationResult {
    /// The generated tokens, in order.
    pub tokens: Vec<GeneratedToken>,
    /// Their text.
    pub text: String,
    /// Why it ended.
    pub stop: StopReason,
    /// Timings.
    pub stats: GenerationStats,
}

/// A continuation token scored teacher-forced.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TokenScore {
    /// Token id.
    pub id: u32,
    /// Its text.
    pub text: String,
    /// Natural-log probability of this token given everything before it.
    pub logprob: f32,
    /// The most likely tokens at this position.
    pub top: Vec<TokenAlternative>,
}

/// Prompt input for [`generate`]: token ids already built by [`super::context::build_prompt`].
pub type Prompt = Vec<u32>;

/// Generates a continuation of `prompt`, calling `on_token` for every token as it is produced.
/// Checks `cancel` before every forward pass, so a stop takes effect within one token.
pub fn generate(
    llm: &mut Llm,
    prompt: &[u32],
    params: &GenerateParams,
    cancel: &AtomicBool,
    on_token: &mut dyn FnMut(&GeneratedToken),
) -> Result<GenerationResult, LlmError> {
    params.sampling.validate().map_err(LlmError::Tokenizer)?;
    if prompt.is_empty() {
        return Err(LlmError::EmptyPrompt);
    }
    check_ids(llm, prompt)?;
    let started = Instant::now();
    let ctx = llm.model.context_length();
    let eos = llm.tokenizer.eos_ids();
    let mut sampler = Sampler::new(params.sampling.clone());
    let mut decoder = StreamDecoder::new();
    let mut history = prompt.to_vec();
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        ..Default::default()
    };
    let mut first_token_at = None;
    let stop = 'run: {
        if cancel.load(Ordering::Relaxed) {
            break 'run StopReason::Cancelled;
        }
        let mut logits = llm.model.forward(prompt, 0)?;
        stats.prompt_seconds = started.elapsed().as_secs_f64();
        for step in 0..params.max_new_tokens {
            if cancel.load(Ordering::Relaxed) {
                break 'run StopReason::Cancelled;
            }
            if step > 0 {
                if history.len() >= ctx {
                    break 'run StopReason::ContextFull;
                }
                let last = history[history.len() - 1];
                logits = llm.model.forward(&[last], history.len() - 1)?;
                if cancel.load(Ordering::Relaxed) {
                    break 'run StopReason::Cancelled;
                }
            }
            let id = sampler.sample(&logits, &history);
            if eos.contains(&id) {
                break 'run StopReason::Eos;
            }
            let (logprob, top) = describe(llm, &logits, id, params.logprobs);
            let tok = GeneratedToken {
                id,
                text: decoder.push(&llm.tokenizer, id),
                logprob,
                top,
            };
            text.push_str(&tok.text);
            first_token_at.get_or_insert_with(Instant::now);
            on_token(&tok);
            tokens.push(tok);
            history.push(id);
        }
        StopReason::MaxTokens
    };
    let tail = decoder.finish();
    if !tail.is_empty() {
        text.push_str(&tail);
        if let Some(last) = tokens.last_mut() {
            last.text.push_str(&tail);
        }
    }
    let total = started.elapsed().as_secs_f64();
    stats.generated_tokens = tokens.len();
    stats.total_seconds = total;
    if stats.prompt_seconds > 0.0 {
        stats.prompt_tokens_per_s = prompt.len() as f64 / stats.prompt_seconds;
    }
    if let Some(first) = first_token_at {
        stats.time_to_first_token_ms = (first - started).as_secs_f64() * 1e3;
        let decode_secs = first.elapsed().as_secs_f64();
        if tokens.len() > 1 && decode_secs > 0.0 {
            stats.decode_tokens_per_s = (tokens.len() - 1) as f64 / decode_secs;
        }
    }
    Ok(GenerationResult {
        tokens,
        text,
        stop,
        stats,
    })
}

/// Scores `continuation` after `prompt` teacher-forced: the log-probability of each
/// continuation token given everything before it, with the `top_k` alternatives.
pub fn score(
    llm: &mut Llm,
    prompt: &[u32],
    continuation: &[u32],
    top_k: usize,
    cancel: &AtomicBool,
) -> Result<Vec<TokenScore>, LlmError> {
    if prompt.is_empty() {
        return Err(LlmError::EmptyPrompt);
    }
    check_ids(llm, prompt)?;
    check_ids(llm, continuation)?;
    let mut out = Vec::with_capacity(continuation.len());
    let mut logits = llm.model.forward(prompt, 0)?;
    let mut pos = prompt.len();
    for (j, &id) in continuation.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        if j > 0 {
            logits = llm.model.forward(&[continuation[j - 1]], pos)?;
            pos += 1;
        }
        let (logprob, top) = describe(llm, &logits, id, top_k);
        out.push(TokenScore {
            id,
            text: llm.tokenizer.token_text(id),
            logprob,
            top,
        });
    }
    Ok(out)
}

fn check_ids(llm: &Llm, ids: &[u32]) -> Result<(), LlmError> {
    let vocab = llm.tokenizer.vocab_size();
    match ids.iter().find(|&&id| id as usize >= vocab) {
        Some(&id) => Err(LlmError::BadTokenId { id, vocab }),
        None => Ok(()),
    }
}

/// The chosen token's log-probability and the top-k alternatives.
fn describe(llm: &Llm, logits: &[f32], id: u32, k: usize) -> (f32, Vec<TokenAlternative>) {
    let (logprob, top) = sampling::logprob_and_top(logits, id, k);
    let logprob = logprob as f32;
    let top = top
        .into_iter()
        .map(|(id, l)| TokenAlternative {
            id,
            text: llm.tokenizer.token_text(id),
            logprob: l as f32,
        })
        .collect();
    (logprob, top)
}
