//! `atelier serve`: the local engine over the OpenAI-compatible HTTP API, so other Atelier
//! studios (a fleet of kiosks) and any OpenAI client can use this machine's models.
//!
//! - [`conn`]: connections: the accept loop, the connection cap, header, idle and write
//!   timeouts;
//! - [`guard`]: which requests reach a handler: Host and Origin (no DNS rebinding), the
//!   bearer token, the Content-Type a page on another site cannot send;
//! - [`hub`]: one engine shared by all connections, a bounded job queue (429 when full), and
//!   cancellation when a client disconnects;
//! - [`openai`]: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (SSE or whole);
//! - [`images`]: `/v1/images/faces` and `/v1/images/style`, answering PNG;
//! - [`error`]: OpenAI-style JSON errors; [`stop`]: stop sequences over streamed text.
//!
//! It binds to loopback unless told otherwise, and a non-loopback address requires a bearer
//! token. A request takes its queue slot before its body is read, so memory is bounded by
//! `--queue` times the per-request limits however many clients connect. tokio and hyper do
//! the I/O; inference stays on the engine's own worker thread.

pub mod conn;
pub mod error;
pub mod guard;
pub mod hub;
pub mod images;
pub mod openai;
pub mod stop;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use clap::Args;

use error::ApiError;
use hub::Hub;

/// `atelier serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but loopback requires --token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Bearer token clients must send (`Authorization: Bearer …`). Prefer the environment
    /// variable, which other users cannot read from the process list.
    #[arg(long, env = "ATELIER_SERVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A GGUF model to offer (repeatable): a path, or `smollm2` / `gemma3`. Default: the
    /// bundled models that are installed. The first one answers requests that name none.
    #[arg(long = "model", value_name = "GGUF")]
    pub models: Vec<String>,
    /// A LoRA adapter to offer (repeatable), at strength SCALE (0-2, default 1): each served
    /// model it fits is also offered as `<model>+<adapter>`.
    #[arg(long = "lora", value_name = "ADAPTER.gguf[:SCALE]", value_parser = crate::models::llm::lora::AdapterSpec::parse)]
    pub loras: Vec<crate::models::llm::lora::AdapterSpec>,
    /// Jobs accepted at once, running or waiting; more get HTTP 429.
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, default_value_t = 2048)]
    pub max_tokens: usize,
    /// Longest prompt (all messages together), in characters.
    #[arg(long, default_value_t = 32_000)]
    pub max_prompt_chars: usize,
    /// Largest request body of the text endpoints, in KiB.
    #[arg(long, default_value_t = 1024)]
    pub max_body_kib: usize,
    /// Largest image upload (`/v1/images/style`), in MiB.
    #[arg(long, default_value_t = 32)]
    pub max_image_mib: usize,
    /// Most connections open at once. At the cap, the connection that has waited longest for
    /// a request is closed to make room; if all are busy, the new one gets 503.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a connection has to send a request head (from connecting, or from the first
    /// byte of a later request on a kept-alive connection).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_secs)]
    pub header_timeout: Duration,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub idle_timeout: Duration,
    /// Seconds to receive a whole request body (408 after that).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_secs)]
    pub body_timeout: Duration,
    /// Seconds an answer may stay blocked because the client stopped reading (or took less
    /// than 16 KiB in that time); then the connection is closed and its job cancelled.
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_secs)]
    pub write_timeout: Duration,
    /// Kernel send buffer of each connection, in KiB: what a client that stops reading can
    /// make the server hold before the write timeout starts counting (0: the system's
    /// automatic sizing, up to several MiB per connection).
    #[arg(long, default_value_t = 512)]
    pub send_buffer_kib: usize,
    /// Another host name clients may use to reach a server without a token (repeatable), e.g.
    /// a local reverse proxy's. localhost and loopback addresses are always accepted.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
}

/// A duration in seconds (fractions allowed), more than 0 and at most a day.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "{s} s is out of range: give more than 0 and at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What requests may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest `max_tokens`.
    pub max_tokens: usize,
    /// Longest prompt in characters.
    pub max_prompt_chars: usize,
    /// Largest text-endpoint body in bytes.
    pub max_body_bytes: usize,
    /// Largest image upload in bytes.
    pub max_image_bytes: usize,
    /// Most pixels of an uploaded image.
    pub max_image_pixels: u64,
    /// Longest side of a style result.
    pub max_output_side: u32,
    /// Longest wait for a whole request body.
    pub body_timeout: Duration,
}

/// A model the server offers.
#[derive(Clone, Debug)]
pub struct ServedModel {
    /// Its name in the API (the file name without `.gguf`).
    pub id: String,
    /// Other accepted names (`smollm2`, `gemma3`).
    pub aliases: Vec<String>,
    /// The GGUF file.
    pub path: PathBuf,
    /// The LoRA adapter it runs with (`<model>+<adapter>` ids).
    pub adapter: Option<crate::models::llm::lora::AdapterSpec>,
}

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    hub: Arc<Hub>,
    models: Arc<Vec<ServedModel>>,
    limits: Limits,
    token: Option<Arc<str>>,
    /// Host names accepted besides localhost and loopback addresses (lowercase).
    allowed_hosts: Arc<Vec<String>>,
    /// One uploaded image decoded at a time: decoding needs up to 1 GiB, and the engine runs
    /// one job at a time anyway.
    decoding: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The model a request names (the first one when it names none); 404 otherwise.
    fn find_model(&self, name: Option<&str>) -> Result<&ServedModel, ApiError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let found = match name {
            None => self.models.first(),
            Some(n) => self.models.iter().find(|m| {
                m.id == n || m.aliases.iter().any(|a| a == n) || m.path.to_str() == Some(n)
            }),
        };
        found.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "model '{}' is not served here; GET /v1/models lists: {}",
                    name.unwrap_or_default(),
                    self.models
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .with_code("model_not_found")
        })
    }
}

/// Runs `atelier serve` until Ctrl+C.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let token = args
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Arc::<str>::from);
    check_bind(args.bind, token.is_some())?;
    if args.queue == 0 {
        bail!("--queue must be at least 1");
    }
    if args.max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    let max_connections = conn::fit_connections_to_fd_limit(args.max_connections);
    let models = with_adapters(served_models(&args.models)?, &args.loras)?;
    let engine = crate::headless::engine()?;
    let hub = Hub::start(engine, args.queue).context("cannot start the event thread")?;
    let state = AppState {
        hub,
        models: Arc::new(models),
        limits: Limits {
            max_tokens: args.max_tokens.max(1),
            max_prompt_chars: args.max_prompt_chars.max(1),
            max_body_bytes: args.max_body_kib.max(1).saturating_mul(1024),
            max_image_bytes: args.max_image_mib.max(1).saturating_mul(1024 * 1024),
            max_image_pixels: 40_000_000,
            max_output_side: 4096,
            body_timeout: args.body_timeout,
        },
        token,
        allowed_hosts: Arc::new(
            args.allow_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        ),
        decoding: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    let connections = conn::ConnLimits {
        max_connections,
        header: args.header_timeout,
        idle: args.idle_timeout,
        write: args.write_timeout,
        send_buffer: args.send_buffer_kib.saturating_mul(1024),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("atelier-serve")
        .enable_all()
        .build()
        .context("cannot start the server runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.bind)
            .await
            .with_context(|| format!("cannot listen on {}", args.bind))?;
        let addr = listener.local_addr()?;
        let names: Vec<&str> = state.models.iter().map(|m| m.id.as_str()).collect();
        // The first line of stdout names the address (scripts and tests read the port).
        println!(
            "Atelier serving http://{addr} (models: {})",
            names.join(", ")
        );
        tracing::info!(
            "serving on http://{addr}, token {}, queue {}, at most {max_connections} connections",
            if state.token.is_some() {
                "required"
            } else {
                "off"
            },
            args.queue
        );
        let app = router(state);
        conn::serve(listener, app, connections, async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("shutting down");
        })
        .await;
        anyhow::Ok(())
    })
}

/// How much of an over-limit body is read (and dropped) so the client, still sending, can
/// read the 413 (or 429) instead of a reset connection.
const DRAIN_LIMIT: usize = 16 << 20;

/// Takes a queue slot, then reads the request body (at most `limit` bytes, within the body
/// timeout). Nothing of the body is held before the slot is: with the queue full, the body
/// is read and dropped (so the client sees the 429) without being kept.
pub async fn admit(
    state: &AppState,
    body: axum::body::Body,
    limit: usize,
) -> Result<(hub::Slot, axum::body::Bytes), ApiError> {
    let slot = match state.hub.reserve() {
        Ok(slot) => slot,
        Err(busy) => {
            discard_body(body, limit, state.limits.body_timeout).await;
            return Err(busy);
        }
    };
    let bytes = read_body(body, limit, state.limits.body_timeout).await?;
    Ok((slot, bytes))
}

/// Reads a request body of at most `limit` bytes within `timeout` (408 after it). A larger
/// one is refused with 413; up to `DRAIN_LIMIT` more of it is read and discarded first, so
/// the answer reaches the client.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
    timeout: Duration,
) -> Result<axum::body::Bytes, ApiError> {
    use futures_util::StreamExt;
    let too_large = |size: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is {size}; this endpoint accepts at most {limit} bytes"),
        )
    };
    let read = async {
        let mut stream = body.into_data_stream();
        let mut data = Vec::new();
        let mut total = 0usize;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
            total = total.saturating_add(chunk.len());
            if total > limit {
                if total > limit.saturating_add(DRAIN_LIMIT) {
                    return Err(too_large(format!("over {total} bytes")));
                }
                continue;
            }
            data.extend_from_slice(&chunk);
        }
        if total > limit {
            return Err(too_large(format!("{total} bytes")));
        }
        Ok(data.into())
    };
    tokio::time::timeout(timeout, read).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        )
    })?
}

/// Reads and drops a body (at most `limit` plus `DRAIN_LIMIT` bytes, within `timeout`), one
/// chunk at a time.
async fn discard_body(body: axum::body::Body, limit: usize, timeout: Duration) {
    use futures_util::StreamExt;
    let drain = async {
        let mut stream = body.into_data_stream();
        let mut total = 0usize;
        while let Some(Ok(chunk)) = stream.next().await {
            total = total.saturating_add(chunk.len());
            if total > limit.saturating_add(DRAIN_LIMIT) {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(timeout, drain).await;
}

/// Refuses a non-loopback address without a token: anyone on the network could use the
/// machine's models (and its CPU) otherwise.
pub fn check_bind(bind: SocketAddr, has_token: bool) -> anyhow::Result<()> {
    if !bind.ip().is_loopback() && !has_token {
        bail!(
            "refusing to serve on {bind} without a token: anyone who can reach it could use this machine. \
             Pass --token (or set ATELIER_SERVE_TOKEN), or bind to 127.0.0.1"
        );
    }
    Ok(())
}

/// The models to offer: `--model` values, or the bundled ones that are installed.
fn served_models(names: &[String]) -> anyhow::Result<Vec<ServedModel>> {
    let mut out = Vec::new();
    let requested: Vec<String> = if names.is_empty() {
        ["smollm2", "gemma3"]
            .into_iter()
            .filter(|n| crate::headless::resolve_llm(n).is_ok())
            .map(String::from)
            .collect()
    } else {
        names.to_vec()
    };
    for name in &requested {
        let path = crate::headless::resolve_llm(name)?;
        if !crate::models::llm::discover::is_gguf(&path) {
            bail!("{} is not a GGUF model", path.display());
        }
        let id = path
            .file_name()
            .map(|f| f.to_string_lossy().trim_end_matches(".gguf").to_string())
            .unwrap_or_else(|| name.clone());
        let aliases = match name.as_str() {
            "smollm2" | "gemma3" => vec![name.clone()],
            _ => Vec::new(),
        };
        out.push(ServedModel {
            id,
            aliases,
            path,
            adapter: None,
        });
    }
    if out.is_empty() {
        bail!(
            "no language model to serve: run {} or pass --model PATH",
            crate::paths::FETCH_COMMAND
        );
    }
    Ok(out)
}

/// Adds `<model>+<adapter>` for every adapter and each model it fits; an adapter that fits
/// none of them is an error naming why (from the first model's check).
fn with_adapters(
    models: Vec<ServedModel>,
    loras: &[crate::models::llm::lora::AdapterSpec],
) -> anyhow::Result<Vec<ServedModel>> {
    use crate::models::llm::lora::{BaseShapes, gguf::read_header};
    let mut out = models.clone();
    for spec in loras {
        let mut first_error = None;
        for m in &models {
            let (content, _, _) = crate::models::llm::gguf::open(&m.path)?;
            match read_header(&spec.path, Some(&BaseShapes::from_content(&content))) {
                Ok(_) => out.push(ServedModel {
                    id: format!("{}+{}", m.id, spec.name()),
                    aliases: m
                        .aliases
                        .iter()
                        .map(|a| format!("{a}+{}", spec.name()))
                        .collect(),
                    path: m.path.clone(),
                    adapter: Some(spec.clone()),
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if !out.iter().any(|m| m.adapter.as_ref() == Some(spec))
            && let Some(e) = first_error
        {
            bail!(
                "--lora {}: fits none of the served models: {e}",
                spec.path.display()
            );
        }
    }
    Ok(out)
}

/// The routes, limits and the request guards ([`guard`]).
pub fn router(state: AppState) -> Router {
    let json = || middleware::from_fn(guard::require_json);
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions).layer(json()))
        .route(
            "/v1/chat/completions",
            post(openai::chat_completions).layer(json()),
        )
        .route("/v1/images/faces", post(images::faces).layer(json()))
        .route(
            "/v1/images/style",
            post(images::style).layer(middleware::from_fn(guard::require_image)),
        )
        // Handlers read bodies with `read_body`, which applies each endpoint's own limit.
        .layer(DefaultBodyLimit::disable())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard::check))
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!(
            "no endpoint {} {}; see /v1/models, /v1/completions, /v1/chat/completions, /v1/images/faces, /v1/images/style",
            req.method(),
            req.uri().path()
        ),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_loopback_needs_a_token() {
        assert!(check_bind("127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_bind("[::1]:8080".parse().unwrap(), false).is_ok());
        let err = check_bind("0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
        assert!(err.to_string().contains("--token"));
        assert!(check_bind("0.0.0.0:8080".parse().unwrap(), true).is_ok());
    }
}
