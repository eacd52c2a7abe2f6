//! `/v1/models`, `/v1/completions` and `/v1/chat/completions` on the local engine, streaming
//! (server-sent events) or not, in the shapes the OpenAI API documents.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::hub::{JobStream, Slot};
use super::stop::StopScanner;
use crate::engine::{Event, WriteRequest};
use crate::models::llm::context::WriteTask;
use crate::models::llm::{ChatMessage, GenerateParams, GeneratedToken, SamplingParams, StopReason};

/// Most alternative choices (`n`) per request: the engine's candidates.
const MAX_N: i64 = 4;
/// Most stop sequences, as in OpenAI's API.
const MAX_STOPS: usize = 4;

/// `GET /v1/models`
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = state
        .models
        .iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": "atelier"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `POST /v1/completions`
pub async fn completions(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (slot, body) = super::admit(&state, body, state.limits.max_body_bytes).await?;
    respond(state, slot, body, Api::Completions).await
}

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    State(state): State<AppState>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let (slot, body) = super::admit(&state, body, state.limits.max_body_bytes).await?;
    respond(state, slot, body, Api::Chat).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Api {
    Completions,
    Chat,
}

/// The request body of both endpoints; unknown fields are ignored, as OpenAI-compatible
/// servers do. Numbers are read wide and range-checked, so `-1` gets a clear message.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Body {
    model: Option<String>,
    prompt: Option<Value>,
    messages: Option<Vec<MessageIn>>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    top_k: Option<i64>,
    min_p: Option<f64>,
    repeat_penalty: Option<f64>,
    repetition_penalty: Option<f64>,
    repeat_last_n: Option<i64>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    seed: Option<i64>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    stop: Option<Value>,
    logprobs: Option<Value>,
    top_logprobs: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct MessageIn {
    role: String,
    #[serde(default)]
    content: Value,
}

/// A checked request.
struct Parsed {
    model_id: String,
    model: PathBuf,
    adapter: Option<crate::models::llm::lora::AdapterSpec>,
    task: WriteTask,
    params: GenerateParams,
    n: usize,
    stream: bool,
    include_usage: bool,
    stops: Vec<String>,
    /// Alternatives per token to return, when asked.
    logprobs: Option<usize>,
}

async fn respond(state: AppState, slot: Slot, body: Bytes, api: Api) -> Result<Response, ApiError> {
    let parsed = parse(&state, &body, api)?;
    let request = WriteRequest {
        model: parsed.model.clone(),
        adapter: parsed.adapter.clone(),
        task: parsed.task.clone(),
        params: parsed.params.clone(),
        candidates: parsed.n,
        forced: Vec::new(),
        remote: None,
    };
    let mut job = slot.submit(|engine| engine.write(request))?;
    // Wait until the prompt is accepted, so a prompt that does not fit is a 400 rather than an
    // error in the middle of a stream.
    let mut early = Vec::new();
    loop {
        match job.next().await {
            Some(Event::Failed { error, .. }) => return Err(error.into()),
            Some(Event::Cancelled { .. }) | None => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "the job was cancelled (the server is shutting down)",
                ));
            }
            Some(
                e @ (Event::PromptReady { .. }
                | Event::Token { .. }
                | Event::CandidateDone { .. }
                | Event::Finished { .. }),
            ) => {
                early.push(e);
                break;
            }
            Some(_) => {}
        }
    }
    let collector = Collector::new(api, &parsed, job.id().0);
    if parsed.stream {
        Ok(stream_response(job, collector, early))
    } else {
        let mut collector = collector;
        let mut out = VecDeque::new();
        let mut pending = early;
        loop {
            for e in pending.drain(..) {
                if let Some(err) = collector.apply(e, &mut out) {
                    return Err(err);
                }
            }
            if collector.stopped_early && !collector.done {
                job.cancel();
            }
            if collector.done {
                break;
            }
            match job.next().await {
                Some(e) => pending.push(e),
                None => break,
            }
        }
        Ok(Json(collector.whole()).into_response())
    }
}

fn parse(state: &AppState, body: &[u8], api: Api) -> Result<Parsed, ApiError> {
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body is not valid JSON for this endpoint: {e}"))
    })?;
    let model = state.find_model(b.model.as_deref())?;
    let limits = &state.limits;
    let task = match api {
        Api::Completions => {
            if b.messages.is_some() {
                return Err(ApiError::bad_request(
                    "'messages' belongs to /v1/chat/completions; /v1/completions takes 'prompt'",
                ));
            }
            let text = match b.prompt {
                Some(Value::String(s)) => s,
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                    a[0].as_str().unwrap_or_default().to_string()
                }
                Some(Value::Array(_)) => {
                    return Err(ApiError::bad_request(
                        "'prompt' must be one string (batches and token arrays are not supported)",
                    ));
                }
                Some(_) => return Err(ApiError::bad_request("'prompt' must be a string")),
                None => return Err(ApiError::bad_request("'prompt' is required")),
            };
            check_length(text.chars().count(), limits.max_prompt_chars)?;
            WriteTask::Prompt { text }
        }
        Api::Chat => {
            let Some(messages) = b.messages else {
                return Err(ApiError::bad_request("'messages' is required"));
            };
            if messages.is_empty() {
                return Err(ApiError::bad_request("'messages' is empty"));
            }
            let messages = messages
                .into_iter()
                .map(message)
                .collect::<Result<Vec<_>, _>>()?;
            check_length(
                messages.iter().map(|m| m.content.chars().count()).sum(),
                limits.max_prompt_chars,
            )?;
            WriteTask::Chat { messages }
        }
    };
    if task.is_empty() {
        return Err(ApiError::bad_request("the prompt is empty"));
    }
    let default_max = match api {
        Api::Completions => 16,
        Api::Chat => 512.min(limits.max_tokens as i64),
    };
    let max_tokens = b
        .max_completion_tokens
        .or(b.max_tokens)
        .unwrap_or(default_max);
    if max_tokens < 1 || max_tokens as u64 > limits.max_tokens as u64 {
        return Err(ApiError::bad_request(format!(
            "'max_tokens' must be between 1 and {} (got {max_tokens})",
            limits.max_tokens
        )));
    }
    let n = b.n.unwrap_or(1);
    if !(1..=MAX_N).contains(&n) {
        return Err(ApiError::bad_request(format!(
            "'n' must be between 1 and {MAX_N} (got {n})"
        )));
    }
    for (name, v) in [
        ("frequency_penalty", b.frequency_penalty),
        ("presence_penalty", b.presence_penalty),
    ] {
        if v.is_some_and(|v| v != 0.0) {
            return Err(ApiError::bad_request(format!(
                "'{name}' is not supported: use 'repeat_penalty' (llama.cpp's multiplicative penalty)"
            )));
        }
    }
    let non_negative = |name: &str, v: Option<i64>, default: i64| -> Result<usize, ApiError> {
        let v = v.unwrap_or(default);
        usize::try_from(v)
            .map_err(|_| ApiError::bad_request(format!("'{name}' must be ≥ 0 (got {v})")))
    };
    let sampling = SamplingParams {
        temperature: b.temperature.unwrap_or(1.0) as f32,
        top_k: non_negative("top_k", b.top_k, 0)?,
        top_p: b.top_p.unwrap_or(1.0) as f32,
        min_p: b.min_p.unwrap_or(0.0) as f32,
        repeat_penalty: b.repeat_penalty.or(b.repetition_penalty).unwrap_or(1.0) as f32,
        repeat_last_n: non_negative("repeat_last_n", b.repeat_last_n, 64)?,
        seed: match b.seed {
            Some(s) => s as u64,
            None => rand::random(),
        },
    };
    sampling.validate().map_err(ApiError::bad_request)?;
    let stops = match b.stop {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::bad_request(
                    "'stop' must be a string or a list of strings",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(ApiError::bad_request(
                "'stop' must be a string or a list of strings",
            ));
        }
    };
    let stops: Vec<String> = stops.into_iter().filter(|s| !s.is_empty()).collect();
    if stops.len() > MAX_STOPS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_STOPS} stop sequences"
        )));
    }
    if !stops.is_empty() && n > 1 {
        return Err(ApiError::bad_request("stop sequences work with n = 1 only"));
    }
    let logprobs = match (api, b.logprobs) {
        (_, None | Some(Value::Null) | Some(Value::Bool(false))) => None,
        (Api::Chat, Some(Value::Bool(true))) => {
            Some(non_negative("top_logprobs", b.top_logprobs, 0)?.min(20))
        }
        (Api::Completions, Some(Value::Number(k))) => match k.as_i64() {
            Some(k @ 0..=5) => Some(k as usize),
            _ => {
                return Err(ApiError::bad_request(
                    "'logprobs' must be an integer from 0 to 5",
                ));
            }
        },
        (Api::Chat, _) => return Err(ApiError::bad_request("'logprobs' must be true or false")),
        (Api::Completions, _) => {
            return Err(ApiError::bad_request(
                "'logprobs' must be an integer from 0 to 5",
            ));
        }
    };
    Ok(Parsed {
        model_id: model.id.clone(),
        model: model.path.clone(),
        adapter: model.adapter.clone(),
        task,
        params: GenerateParams {
            sampling,
            max_new_tokens: max_tokens as usize,
            logprobs: logprobs.unwrap_or(0),
        },
        n: n as usize,
        stream: b.stream.unwrap_or(false),
        include_usage: b.stream_options.is_some_and(|o| o.include_usage),
        stops,
        logprobs,
    })
}

fn check_length(chars: usize, max: usize) -> Result<(), ApiError> {
    if chars > max {
        return Err(ApiError::bad_request(format!(
            "the prompt has {chars} characters; this server accepts at most {max}"
        ))
        .with_code("context_length_exceeded"));
    }
    Ok(())
}

/// A chat message; content as a string or as text parts.
fn message(m: MessageIn) -> Result<ChatMessage, ApiError> {
    if !matches!(
        m.role.as_str(),
        "system" | "user" | "assistant" | "developer"
    ) {
        return Err(ApiError::bad_request(format!(
            "message role '{}' is not supported (system, user, assistant)",
            m.role
        )));
    }
    let content = match m.content {
        Value::String(s) => s,
        Value::Null => String::new(),
        Value::Array(parts) => {
            let mut text = String::new();
            for p in parts {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::bad_request(
                            "only text content parts are supported",
                        ));
                    }
                }
            }
            text
        }
        _ => return Err(ApiError::bad_request("message content must be a string")),
    };
    let role = if m.role == "developer" {
        "system".into()
    } else {
        m.role
    };
    Ok(ChatMessage { role, content })
}

/// Turns a job's events into API output: chunks for a stream, or one whole response.
struct Collector {
    api: Api,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    logprobs: Option<usize>,
    choices: Vec<Choice>,
    prompt_tokens: usize,
    /// The job ended (or a stop sequence ended it).
    done: bool,
    /// A stop sequence matched: the cancellation that follows is the normal end.
    stopped_early: bool,
}

#[derive(Default)]
struct Choice {
    text: String,
    scanner: StopScanner,
    finish: Option<&'static str>,
    tokens: Vec<GeneratedToken>,
    completion_tokens: usize,
    started: bool,
}

impl Collector {
    fn new(api: Api, p: &Parsed, job: u64) -> Self {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let prefix = match api {
            Api::Completions => "cmpl",
            Api::Chat => "chatcmpl",
        };
        Self {
            api,
            id: format!("{prefix}-{job}-{:08x}", rand::random::<u32>()),
            created,
            model: p.model_id.clone(),
            include_usage: p.include_usage,
            logprobs: p.logprobs,
            choices: (0..p.n)
                .map(|_| Choice {
                    scanner: StopScanner::new(p.stops.clone()),
                    ..Default::default()
                })
                .collect(),
            prompt_tokens: 0,
            done: false,
            stopped_early: false,
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.api, chunk) {
            (Api::Completions, _) => "text_completion",
            (Api::Chat, false) => "chat.completion",
            (Api::Chat, true) => "chat.completion.chunk",
        }
    }

    /// Applies one event; chunks to stream go to `out`. Returns an error only for a failure.
    fn apply(&mut self, event: Event, out: &mut VecDeque<Value>) -> Option<ApiError> {
        match event {
            Event::PromptReady { prompt_tokens, .. } => self.prompt_tokens = prompt_tokens,
            Event::Token {
                candidate, token, ..
            } => {
                let c = self.choices.get_mut(candidate)?;
                if c.finish.is_some() {
                    return None;
                }
                let first = !c.started;
                c.started = true;
                c.completion_tokens += 1;
                let (text, hit) = c.scanner.push(&token.text);
                c.text.push_str(&text);
                let lp = self.logprobs.map(|_| token.clone());
                if let Some(t) = &lp {
                    c.tokens.push(t.clone());
                }
                if first && self.api == Api::Chat {
                    out.push_back(self.chunk(
                        candidate,
                        json!({"role": "assistant", "content": ""}),
                        None,
                        None,
                    ));
                }
                if !text.is_empty() || lp.is_some() {
                    out.push_back(self.chunk(candidate, self.delta(&text), None, lp.as_ref()));
                }
                if hit {
                    let c = &mut self.choices[candidate];
                    c.finish = Some("stop");
                    self.stopped_early = true;
                    out.push_back(self.chunk(candidate, self.delta(""), Some("stop"), None));
                }
            }
            Event::CandidateDone {
                candidate, result, ..
            } => {
                let c = self.choices.get_mut(candidate)?;
                if c.finish.is_some() {
                    return None;
                }
                let rest = c.scanner.finish();
                c.text.push_str(&rest);
                c.completion_tokens = result.stats.generated_tokens;
                let reason = match result.stop {
                    StopReason::MaxTokens | StopReason::ContextFull => "length",
                    _ => "stop",
                };
                c.finish = Some(reason);
                if self.api == Api::Chat && !c.started {
                    c.started = true;
                    out.push_back(self.chunk(
                        candidate,
                        json!({"role": "assistant", "content": ""}),
                        None,
                        None,
                    ));
                }
                if !rest.is_empty() {
                    out.push_back(self.chunk(candidate, self.delta(&rest), None, None));
                }
                out.push_back(self.chunk(candidate, self.delta(""), Some(reason), None));
            }
            Event::Finished { .. } => self.finish(out),
            Event::Cancelled { .. } if self.stopped_early => self.finish(out),
            Event::Cancelled { .. } => {
                self.done = true;
                return Some(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "the job was cancelled (the server is shutting down)",
                ));
            }
            Event::Failed { error, .. } => {
                self.done = true;
                return Some(error.into());
            }
            _ => {}
        }
        None
    }

    fn finish(&mut self, out: &mut VecDeque<Value>) {
        self.done = true;
        if self.include_usage {
            let mut chunk = self.chunk_base();
            chunk["choices"] = json!([]);
            chunk["usage"] = self.usage();
            out.push_back(chunk);
        }
    }

    fn usage(&self) -> Value {
        let completion: usize = self.choices.iter().map(|c| c.completion_tokens).sum();
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        })
    }

    fn chunk_base(&self) -> Value {
        json!({"id": self.id, "object": self.object(true), "created": self.created, "model": self.model})
    }

    fn delta(&self, text: &str) -> Value {
        match self.api {
            Api::Chat if text.is_empty() => json!({}),
            Api::Chat => json!({"content": text}),
            Api::Completions => json!(text),
        }
    }

    /// One streamed chunk for choice `index`.
    fn chunk(
        &self,
        index: usize,
        delta: Value,
        finish: Option<&str>,
        token: Option<&GeneratedToken>,
    ) -> Value {
        let mut choice = match self.api {
            Api::Chat => json!({"index": index, "delta": delta, "finish_reason": finish}),
            Api::Completions => json!({"index": index, "text": delta, "finish_reason": finish}),
        };
        choice["logprobs"] = match token {
            Some(t) => self.logprobs_json(std::slice::from_ref(t)),
            None => Value::Null,
        };
        let mut chunk = self.chunk_base();
        chunk["choices"] = json!([choice]);
        chunk
    }

    /// Log-probabilities in the endpoint's format.
    fn logprobs_json(&self, tokens: &[GeneratedToken]) -> Value {
        let k = self.logprobs.unwrap_or(0);
        match self.api {
            Api::Chat => json!({"content": tokens.iter().map(|t| json!({
                "token": t.text,
                "logprob": t.logprob,
                "bytes": t.text.as_bytes(),
                "top_logprobs": t.top.iter().take(k).map(|a| json!({
                    "token": a.text, "logprob": a.logprob, "bytes": a.text.as_bytes()
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>()}),
            Api::Completions => {
                let mut offset = 0;
                let offsets: Vec<usize> = tokens
                    .iter()
                    .map(|t| {
                        let o = offset;
                        offset += t.text.len();
                        o
                    })
                    .collect();
                json!({
                    "tokens": tokens.iter().map(|t| t.text.clone()).collect::<Vec<_>>(),
                    "token_logprobs": tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
                    "top_logprobs": tokens.iter().map(|t| t.top.iter().take(k)
                        .map(|a| (a.text.clone(), json!(a.logprob)))
                        .collect::<serde_json::Map<_, _>>()).collect::<Vec<_>>(),
                    "text_offset": offsets,
                })
            }
        }
    }

    /// The whole (non-streamed) response.
    fn whole(&self) -> Value {
        let choices: Vec<Value> = self
            .choices
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let logprobs = if self.logprobs.is_some() {
                    self.logprobs_json(&c.tokens)
                } else {
                    Value::Null
                };
                match self.api {
                    Api::Chat => json!({
                        "index": i,
                        "message": {"role": "assistant", "content": c.text},
                        "finish_reason": c.finish.unwrap_or("stop"),
                        "logprobs": logprobs,
                    }),
                    Api::Completions => json!({
                        "index": i,
                        "text": c.text,
                        "finish_reason": c.finish.unwrap_or("stop"),
                        "logprobs": logprobs,
                    }),
                }
            })
            .collect();
        json!({
            "id": self.id,
            "object": self.object(false),
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(),
        })
    }
}

/// The SSE response: chunks as the engine produces them, then `[DONE]`. Dropping it (the
/// client disconnected) drops the job stream, which cancels the job.
fn stream_response(job: JobStream, collector: Collector, early: Vec<Event>) -> Response {
    struct State {
        job: JobStream,
        collector: Collector,
        out: VecDeque<Value>,
        early: VecDeque<Event>,
        finished: bool,
    }
    let state = State {
        job,
        collector,
        out: VecDeque::new(),
        early: early.into(),
        finished: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(chunk) = s.out.pop_front() {
                let event = SseEvent::default().data(chunk.to_string());
                return Some((Ok::<_, Infallible>(event), s));
            }
            if s.finished {
                return None;
            }
            if s.collector.done {
                s.finished = true;
                return Some((Ok(SseEvent::default().data("[DONE]")), s));
            }
            let event = match s.early.pop_front() {
                Some(e) => Some(e),
                None => s.job.next().await,
            };
            let Some(event) = event else {
                s.finished = true;
                continue;
            };
            if let Some(err) = s.collector.apply(event, &mut s.out) {
                // Headers are sent: the error goes in the stream, as OpenAI servers do.
                s.out.push_back(err.body());
                s.finished = true;
            }
            if s.collector.stopped_early && !s.collector.done {
                // A stop sequence matched: end the job now rather than generate unseen text.
                s.job.cancel();
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
