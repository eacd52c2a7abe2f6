//! The OpenAI-compatible HTTP API, client side: `/v1/models`, and streamed
//! `/v1/completions` (Continue mode) and `/v1/chat/completions` (Instruct) turned into the
//! same token events the local engine sends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::sse::SseParser;
use super::{ApiKey, RemoteEndpoint, RemoteError, Timeouts};
use crate::models::llm::context::WriteTask;
use crate::models::llm::{
    GenerateParams, GeneratedToken, GenerationResult, GenerationStats, StopReason, TokenAlternative,
};

/// The id remote tokens carry: servers send text, not their vocabulary's ids.
pub const REMOTE_TOKEN_ID: u32 = u32::MAX;

/// How often a waiting stream looks at the job's cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// Largest `/v1/models` answer read (a long list with metadata is a few hundred KiB).
pub const MAX_MODEL_LIST_BYTES: usize = 8 << 20;
/// How much of an error answer is read (only its first lines are shown).
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;
/// Largest streamed event (a chunk with 20 alternatives per token is a few KiB).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Text bytes a stream may bring per requested token, beyond a fixed allowance: more is a
/// server that ignores `max_tokens`.
const MAX_TEXT_PER_TOKEN: usize = 256;
/// Events a stream may bring per requested token (role, text, finish and usage chunks).
const MAX_EVENTS_PER_TOKEN: usize = 8;

/// Where and how a request goes: the HTTP client, the endpoint and its key.
pub struct Call<'a> {
    /// The client (see [`http_client`]).
    pub http: &'a reqwest::Client,
    /// The server and model.
    pub endpoint: &'a RemoteEndpoint,
    /// The bearer key, if any.
    pub key: Option<&'a ApiKey>,
}

/// An HTTP client (rustls) with the endpoint's connect timeout.
pub fn http_client(timeouts: &Timeouts) -> Result<reqwest::Client, RemoteError> {
    // One process-wide TLS provider (ring); a second install attempt is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .user_agent(concat!("atelier/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| RemoteError::Runtime(error_chain(&e)))
}

/// The model names the server offers (`GET /v1/models`), in its order.
pub async fn list_models(call: &Call<'_>) -> Result<Vec<String>, RemoteError> {
    let (http, ep, key) = (call.http, call.endpoint, call.key);
    let url = ep.url("models")?;
    let mut req = http.get(url);
    if let Some(k) = key {
        req = req.bearer_auth(k.expose());
    }
    let resp = send(ep, req).await?;
    let (bytes, complete) =
        read_capped(ep, resp, MAX_MODEL_LIST_BYTES, "reading the model list").await?;
    if !complete {
        return Err(malformed(
            ep,
            format!(
                "the model list is larger than {} MiB",
                MAX_MODEL_LIST_BYTES >> 20
            ),
        ));
    }
    let body: Value = serde_json::from_slice(&bytes)
        .map_err(|e| malformed(ep, format!("the model list is not JSON ({e})")))?;
    let data = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed(ep, "the model list has no \"data\" array".into()))?;
    Ok(data
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}

/// The API path and JSON body of one generation of `task` (one candidate, `seed`).
pub fn request_body(
    model: &str,
    task: &WriteTask,
    params: &GenerateParams,
    seed: u64,
) -> (&'static str, Value) {
    let s = &params.sampling;
    let mut body = json!({
        "model": model,
        "max_tokens": params.max_new_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": s.temperature,
        "top_p": s.top_p,
        "seed": seed,
        // Not in OpenAI's own API, but understood by the local servers Atelier talks to
        // (llama.cpp, vLLM, Ollama, LM Studio, atelier serve); sent always so that a value
        // the writer disabled is not replaced by the server's default.
        "top_k": s.top_k,
        "min_p": s.min_p,
        "repeat_penalty": s.repeat_penalty,
        "repetition_penalty": s.repeat_penalty,
        "repeat_last_n": s.repeat_last_n,
    });
    let path = match task.chat_messages() {
        Some(messages) => {
            body["messages"] = json!(messages);
            if params.logprobs > 0 {
                body["logprobs"] = json!(true);
                body["top_logprobs"] = json!(params.logprobs.min(20));
            }
            "chat/completions"
        }
        None => {
            body["prompt"] = json!(task.completion_text().unwrap_or_default());
            if params.logprobs > 0 {
                body["logprobs"] = json!(params.logprobs.min(5));
            }
            "completions"
        }
    };
    (path, body)
}

/// Runs one streamed generation, calling `on_token` for every piece of text as it arrives.
/// The cancel flag is watched while waiting, so Stop closes the connection at once.
pub async fn generate(
    call: &Call<'_>,
    task: &WriteTask,
    params: &GenerateParams,
    seed: u64,
    cancel: &AtomicBool,
    on_token: &mut (dyn FnMut(&GeneratedToken) + Send),
) -> Result<GenerationResult, RemoteError> {
    let (http, ep, key) = (call.http, call.endpoint, call.key);
    let started = Instant::now();
    let (path, body) = request_body(&ep.model, task, params, seed);
    let chat = path.starts_with("chat");
    let mut req = http.post(ep.url(path)?).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k.expose());
    }
    let mut tokens: Vec<GeneratedToken> = Vec::new();
    let mut text = String::new();
    let mut stats = GenerationStats::default();
    let mut first_token_at = None;
    let mut usage_tokens = None;
    let stop = 'run: {
        let resp = tokio::select! {
            r = send(ep, req) => r?,
            () = cancelled(cancel) => break 'run StopReason::Cancelled,
        };
        let mut resp = resp;
        let mut sse = SseParser::new(MAX_EVENT_BYTES);
        let max_events = params
            .max_new_tokens
            .saturating_mul(MAX_EVENTS_PER_TOKEN)
            .saturating_add(1024);
        let max_text = params
            .max_new_tokens
            .saturating_mul(MAX_TEXT_PER_TOKEN)
            .saturating_add(64 << 10);
        let mut events = 0usize;
        let mut finish = None;
        loop {
            let Some(event) = sse.next_event() else {
                let next = tokio::select! {
                    n = tokio::time::timeout(ep.timeouts.idle, resp.chunk()) => n,
                    () = cancelled(cancel) => break 'run StopReason::Cancelled,
                };
                match next {
                    Err(_) => {
                        return Err(timeout(ep, ep.timeouts.idle, "waiting for the next token"));
                    }
                    // Some servers close the stream without the final "[DONE]".
                    Ok(Ok(None)) => match finish {
                        Some(f) => break 'run f,
                        None => {
                            return Err(malformed(
                                ep,
                                "the stream ended before the server said the generation was done"
                                    .into(),
                            ));
                        }
                    },
                    Ok(Err(e)) => {
                        return Err(malformed(
                            ep,
                            format!("the event stream broke: {}", error_chain(&e)),
                        ));
                    }
                    Ok(Ok(Some(bytes))) => {
                        sse.feed(&bytes).map_err(|e| malformed(ep, e.to_string()))?;
                        continue;
                    }
                }
            };
            events += 1;
            if events > max_events || text.len() > max_text {
                return Err(malformed(
                    ep,
                    format!(
                        "the stream goes on past the {} tokens asked for ({events} events, {} bytes of text)",
                        params.max_new_tokens,
                        text.len()
                    ),
                ));
            }
            let data = event.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                break 'run finish.unwrap_or(StopReason::Eos);
            }
            let chunk: Value = serde_json::from_str(data).map_err(|_| {
                malformed(
                    ep,
                    format!("a stream event is not JSON: {}", clip(data, 120)),
                )
            })?;
            if let Some(message) = error_message(&chunk) {
                return Err(RemoteError::Stream {
                    url: ep.base_url.clone(),
                    message,
                });
            }
            if let Some(n) = chunk
                .pointer("/usage/completion_tokens")
                .and_then(Value::as_u64)
            {
                usage_tokens = Some(n as usize);
                if let Some(p) = chunk
                    .pointer("/usage/prompt_tokens")
                    .and_then(Value::as_u64)
                {
                    stats.prompt_tokens = p as usize;
                }
            }
            let Some(choices) = chunk.get("choices").and_then(Value::as_array) else {
                if chunk.get("usage").is_some() {
                    continue;
                }
                return Err(malformed(
                    ep,
                    format!("a stream event has no choices: {}", clip(data, 120)),
                ));
            };
            let Some(choice) = choices.first() else {
                continue; // the usage-only chunk of stream_options
            };
            let piece = if chat {
                choice.pointer("/delta/content").and_then(Value::as_str)
            } else {
                choice.get("text").and_then(Value::as_str)
            };
            if let Some(piece) = piece.filter(|p| !p.is_empty()) {
                for token in split_tokens(piece, choice, chat) {
                    first_token_at.get_or_insert_with(Instant::now);
                    text.push_str(&token.text);
                    on_token(&token);
                    tokens.push(token);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                finish = Some(match reason {
                    "length" => StopReason::MaxTokens,
                    _ => StopReason::Eos,
                });
            }
        }
    };
    stats.generated_tokens = usage_tokens.unwrap_or(tokens.len());
    stats.total_seconds = started.elapsed().as_secs_f64();
    if let Some(first) = first_token_at {
        stats.time_to_first_token_ms = (first - started).as_secs_f64() * 1e3;
        stats.prompt_seconds = (first - started).as_secs_f64();
        let decode = first.elapsed().as_secs_f64();
        if stats.generated_tokens > 1 && decode > 0.0 {
            stats.decode_tokens_per_s = (stats.generated_tokens - 1) as f64 / decode;
        }
    }
    if stats.prompt_seconds > 0.0 && stats.prompt_tokens > 0 {
        stats.prompt_tokens_per_s = stats.prompt_tokens as f64 / stats.prompt_seconds;
    }
    Ok(GenerationResult {
        tokens,
        text,
        stop,
        stats,
    })
}

/// The tokens of one streamed piece: one per entry of the chunk's log-probabilities when
/// they spell the piece exactly, else the whole piece as one token without probabilities.
fn split_tokens(piece: &str, choice: &Value, chat: bool) -> Vec<GeneratedToken> {
    let whole = || {
        vec![GeneratedToken {
            id: REMOTE_TOKEN_ID,
            text: piece.to_string(),
            logprob: f32::NAN,
            top: Vec::new(),
        }]
    };
    let parsed = if chat {
        chat_logprobs(choice)
    } else {
        completion_logprobs(choice)
    };
    match parsed {
        Some(tokens) if tokens.iter().map(|t| t.text.as_str()).collect::<String>() == piece => {
            tokens
        }
        _ => whole(),
    }
}

/// `choices[].logprobs.content[]` of a chat chunk.
fn chat_logprobs(choice: &Value) -> Option<Vec<GeneratedToken>> {
    let content = choice.pointer("/logprobs/content")?.as_array()?;
    content
        .iter()
        .map(|entry| {
            let top = entry
                .get("top_logprobs")
                .and_then(Value::as_array)
                .map(|alts| {
                    alts.iter()
                        .filter_map(|a| {
                            Some(TokenAlternative {
                                id: REMOTE_TOKEN_ID,
                                text: a.get("token")?.as_str()?.to_string(),
                                logprob: a.get("logprob")?.as_f64()? as f32,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(GeneratedToken {
                id: REMOTE_TOKEN_ID,
                text: entry.get("token")?.as_str()?.to_string(),
                logprob: entry.get("logprob")?.as_f64()? as f32,
                top,
            })
        })
        .collect()
}

/// `choices[].logprobs.{tokens, token_logprobs, top_logprobs}` of a completion chunk.
fn completion_logprobs(choice: &Value) -> Option<Vec<GeneratedToken>> {
    let lp = choice.get("logprobs")?;
    let texts = lp.get("tokens")?.as_array()?;
    let values = lp.get("token_logprobs")?.as_array()?;
    let tops = lp.get("top_logprobs").and_then(Value::as_array);
    if texts.len() != values.len() || texts.is_empty() {
        return None;
    }
    texts
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (t, v))| {
            let mut top: Vec<TokenAlternative> = tops
                .and_then(|tops| tops.get(i))
                .and_then(Value::as_object)
                .map(|alts| {
                    alts.iter()
                        .filter_map(|(text, l)| {
                            Some(TokenAlternative {
                                id: REMOTE_TOKEN_ID,
                                text: text.clone(),
                                logprob: l.as_f64()? as f32,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            top.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
            Some(GeneratedToken {
                id: REMOTE_TOKEN_ID,
                text: t.as_str()?.to_string(),
                logprob: v.as_f64()? as f32,
                top,
            })
        })
        .collect()
}

/// Sends a request, waiting at most the response timeout for the headers; an HTTP error
/// status becomes a [`RemoteError`] with the server's own message.
async fn send(
    ep: &RemoteEndpoint,
    req: reqwest::RequestBuilder,
) -> Result<reqwest::Response, RemoteError> {
    let resp = tokio::time::timeout(ep.timeouts.response, req.send())
        .await
        .map_err(|_| timeout(ep, ep.timeouts.response, "waiting for the response"))?
        .map_err(|e| transport_error(ep, &e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // The start of the body is enough for the message, whatever the server sends.
    let body = read_capped(ep, resp, MAX_ERROR_BODY_BYTES, "reading the error")
        .await
        .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| error_message(&v))
        .unwrap_or_else(|| {
            let text = clip(body.trim(), 200);
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                text
            }
        });
    let url = ep.base_url.clone();
    Err(match status.as_u16() {
        401 | 403 => RemoteError::Unauthorized {
            url,
            status: status.as_u16(),
            detail: message,
        },
        code => RemoteError::Http {
            url,
            status: code,
            message,
        },
    })
}

/// At most `limit` bytes of a response body, each piece within the idle timeout, and whether
/// that was all of it. Nothing beyond `limit` is read (the connection is dropped).
async fn read_capped(
    ep: &RemoteEndpoint,
    mut resp: reqwest::Response,
    limit: usize,
    what: &'static str,
) -> Result<(Vec<u8>, bool), RemoteError> {
    let mut bytes = Vec::new();
    loop {
        let chunk = tokio::time::timeout(ep.timeouts.idle, resp.chunk())
            .await
            .map_err(|_| timeout(ep, ep.timeouts.idle, what))?
            .map_err(|e| malformed(ep, format!("{what}: {}", error_chain(&e))))?;
        let Some(chunk) = chunk else {
            return Ok((bytes, true));
        };
        let room = limit.saturating_sub(bytes.len());
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok((bytes, false));
        }
        bytes.extend_from_slice(&chunk);
    }
}

/// The message of an error body: OpenAI's `{"error": {"message"}}`, `{"error": "…"}`,
/// FastAPI's `{"detail": …}` (llama-cpp-python) or `{"message": …}`.
fn error_message(v: &Value) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    match v.get("error") {
        Some(Value::Object(e)) => e.get("message").and_then(text),
        Some(e @ Value::String(_)) => text(e),
        _ => v.get("detail").and_then(text).or_else(|| {
            v.get("message")
                .and_then(text)
                .filter(|_| v.get("choices").is_none())
        }),
    }
}

fn transport_error(ep: &RemoteEndpoint, e: &reqwest::Error) -> RemoteError {
    if e.is_timeout() {
        return timeout(ep, ep.timeouts.connect, "connecting");
    }
    RemoteError::Connect {
        url: ep.base_url.clone(),
        detail: error_chain(e),
    }
}

/// The innermost cause of an error (e.g. "Connection refused (os error 111)"), which says
/// more than reqwest's outer "error sending request".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

fn timeout(ep: &RemoteEndpoint, limit: Duration, what: &'static str) -> RemoteError {
    RemoteError::Timeout {
        url: ep.base_url.clone(),
        seconds: limit.as_secs().max(1),
        what,
    }
}

fn malformed(ep: &RemoteEndpoint, detail: String) -> RemoteError {
    RemoteError::Malformed {
        url: ep.base_url.clone(),
        detail,
    }
}

fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Resolves when the flag is set.
async fn cancelled(flag: &AtomicBool) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::llm::ChatMessage;

    #[test]
    fn continue_maps_to_completions_and_instruct_to_chat() {
        let params = GenerateParams::default();
        let (path, body) = request_body(
            "m",
            &WriteTask::Continue {
                text: "Once".into(),
            },
            &params,
            7,
        );
        assert_eq!(path, "completions");
        assert_eq!(body["prompt"], "Once");
        assert_eq!(body["seed"], 7);
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], params.max_new_tokens);
        assert_eq!(body["top_k"], params.sampling.top_k);
        assert_eq!(body["logprobs"], 5);
        let (path, body) = request_body(
            "m",
            &WriteTask::Instruct {
                instruction: "Shorter.".into(),
                document: "A long text.".into(),
            },
            &params,
            7,
        );
        assert_eq!(path, "chat/completions");
        let messages: Vec<ChatMessage> = serde_json::from_value(body["messages"].clone()).unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].role, "user");
        assert!(messages[0].content.ends_with("Shorter."));
        assert_eq!(body["top_logprobs"], 5);
    }

    #[test]
    fn error_bodies_give_the_servers_message() {
        let m = |s: &str| error_message(&serde_json::from_str(s).unwrap());
        assert_eq!(
            m(r#"{"error":{"message":"model not found","type":"x"}}"#).as_deref(),
            Some("model not found")
        );
        assert_eq!(m(r#"{"error":"busy"}"#).as_deref(), Some("busy"));
        assert_eq!(m(r#"{"detail":"bad"}"#).as_deref(), Some("bad"));
        assert_eq!(m(r#"{"choices":[]}"#), None);
    }

    #[test]
    fn logprobs_split_a_piece_into_tokens() {
        let choice = json!({"text": "Hello world", "logprobs": {
            "tokens": ["Hello", " world"], "token_logprobs": [-0.1, -0.5],
            "top_logprobs": [{"Hello": -0.1, "Hi": -2.5}, {" world": -0.5}]}});
        let t = split_tokens("Hello world", &choice, false);
        assert_eq!(t.len(), 2);
        assert_eq!(t[1].text, " world");
        assert_eq!(t[0].top[1].text, "Hi");
        // Pieces the log-probabilities do not spell stay whole.
        let t = split_tokens("Hello there", &choice, false);
        assert_eq!(t.len(), 1);
        assert!(t[0].logprob.is_nan());
        let chat = json!({"delta": {"content": "Hi"}, "logprobs": {"content": [
            {"token": "Hi", "logprob": -0.2, "top_logprobs": [{"token": "Hi", "logprob": -0.2}]}]}});
        let t = split_tokens("Hi", &chat, true);
        assert_eq!((t.len(), t[0].top.len()), (1, 1));
    }
}
