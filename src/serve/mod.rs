//! `atelier serve`: the local engine over the OpenAI-compatible HTTP API, so other Atelier
//! studios (a fleet of kiosks) and any OpenAI client can use this machine's models.
//!
//! - [`hub`]: one engine shared by all connections, a bounded job queue (429 when full), and
//!   cancellation when a client disconnects;
//! - [`openai`]: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (SSE or whole);
//! - [`images`]: `/v1/images/faces` and `/v1/images/style`, answering PNG;
//! - [`error`]: OpenAI-style JSON errors; [`stop`]: stop sequences over streamed text.
//!
//! It binds to loopback unless told otherwise, and a non-loopback address requires a bearer
//! token. tokio and axum do the I/O; inference stays on the engine's own worker thread.

pub mod error;
pub mod hub;
pub mod images;
pub mod openai;
pub mod stop;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use subtle::ConstantTimeEq;

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
    #[arg(long = "lora", value_name = "ADAPTER.gguf[:SCALE]", value_parser = crate::cli::parse_lora)]
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
    let models = with_adapters(served_models(&args.models)?, &args.loras)?;
    let engine = crate::cli::headless_engine()?;
    let hub = Hub::start(engine, args.queue).context("cannot start the event thread")?;
    let state = AppState {
        hub,
        models: Arc::new(models),
        limits: Limits {
            max_tokens: args.max_tokens.max(1),
            max_prompt_chars: args.max_prompt_chars.max(1),
            max_body_bytes: args.max_body_kib.max(1) * 1024,
            max_image_bytes: args.max_image_mib.max(1) * 1024 * 1024,
            max_image_pixels: 40_000_000,
            max_output_side: 4096,
        },
        token,
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
            "serving on http://{addr}, token {}, queue {}",
            if state.token.is_some() {
                "required"
            } else {
                "off"
            },
            args.queue
        );
        let app = router(state);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
                eprintln!("shutting down");
            })
            .await
            .context("the server stopped")
    })
}

/// How much of an over-limit body is read (and dropped) so the client, still sending, can
/// read the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 16 << 20;

/// Reads a request body of at most `limit` bytes. A larger one is refused with 413; up to
/// `DRAIN_LIMIT` more of it is read and discarded first, so the answer reaches the client.
pub async fn read_body(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    use futures_util::StreamExt;
    let too_large = |size: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("the request body is {size}; this endpoint accepts at most {limit} bytes"),
        )
    };
    let mut stream = body.into_data_stream();
    let mut data = Vec::new();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
        total += chunk.len();
        if total > limit {
            if total > limit + DRAIN_LIMIT {
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
            .filter(|n| crate::cli::resolve_model(n).is_ok())
            .map(String::from)
            .collect()
    } else {
        names.to_vec()
    };
    for name in &requested {
        let path = crate::cli::resolve_model(name)?;
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

/// The routes, limits and authentication.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/images/faces", post(images::faces))
        .route("/v1/images/style", post(images::style))
        // Handlers read bodies with `read_body`, which applies each endpoint's own limit.
        .layer(DefaultBodyLimit::disable())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Checks the bearer token (in constant time) when the server has one, and logs each request
/// (method, path, status, time: never a header).
async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = check_token(&state, req, next).await;
    tracing::info!(
        "{method} {path} {} {:.0} ms",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    resp
}

async fn check_token(state: &AppState, req: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let sent = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !bool::from(sent.as_bytes().ct_eq(token.as_bytes())) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
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
