//! Remote engines for the Write panel: any OpenAI-compatible server (llama.cpp's llama-server,
//! vLLM, Ollama, LM Studio, or another `atelier serve`) behind the same job interface as the
//! local engine.
//!
//! - [`client`]: the HTTP requests and their server-sent-event streams, every answer read
//!   within a size limit;
//! - [`sse`]: the event-stream format, parsed with a size limit;
//! - [`keystore`]: the API key, in the platform keyring or a private file, never in settings.
//!
//! The engine runs remote jobs on its remote lane (`engine::remote_lane`).

pub mod client;
pub mod keystore;
pub mod sse;

use std::time::Duration;

/// An API key. Its `Debug` form is redacted and it cannot be serialized, so it never reaches
/// a log line or a settings file by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; surrounding whitespace (a pasted newline) is dropped. `None` when empty.
    pub fn new(key: impl AsRef<str>) -> Option<Self> {
        let key = key.as_ref().trim();
        (!key.is_empty()).then(|| Self(key.to_string()))
    }

    /// The key itself, for the `Authorization` header and the key store only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where a remote job goes.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteEndpoint {
    /// The server's base URL, e.g. `http://127.0.0.1:8080` (a trailing `/v1` is accepted).
    pub base_url: String,
    /// The model name the server knows (from `/v1/models`).
    pub model: String,
    /// The key to send; `None` looks it up in the [`keystore`] for this base URL (and sends
    /// none if there is none).
    pub api_key: Option<ApiKey>,
    /// How long to wait for what.
    pub timeouts: Timeouts,
}

/// Network time limits of remote requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// From sending the request to the response headers (a server may queue the job first).
    pub response: Duration,
    /// Between two pieces of a streamed response.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

impl RemoteEndpoint {
    /// An endpoint with default timeouts and the key from the key store.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeouts: Timeouts::default(),
        }
    }

    /// The URL of an API path such as `completions`: `{base}/v1/{path}` (the base may already
    /// end in `/v1`).
    pub fn url(&self, path: &str) -> Result<reqwest::Url, RemoteError> {
        let base = normalize_base_url(&self.base_url)?;
        let joined = format!("{base}/v1/{path}");
        reqwest::Url::parse(&joined).map_err(|e| RemoteError::InvalidUrl {
            url: self.base_url.clone(),
            detail: e.to_string(),
        })
    }
}

/// The canonical form of a base URL as the user typed it: scheme and host required, no
/// trailing slash, no trailing `/v1`. Used as the key store's account name too.
pub fn normalize_base_url(url: &str) -> Result<String, RemoteError> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    let invalid = |detail: &str| RemoteError::InvalidUrl {
        url: url.trim().to_string(),
        detail: detail.to_string(),
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("use an http:// or https:// address"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // A password in the URL would end up in settings and logs: the key field is for that.
        return Err(invalid(
            "put credentials in the API key field, not in the address",
        ));
    }
    Ok(trimmed.to_string())
}

/// Everything that can go wrong talking to a remote engine, phrased for the writer.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The base URL is not usable.
    #[error("the server address '{url}' is not valid: {detail}")]
    InvalidUrl { url: String, detail: String },
    /// Nothing answered (refused, unreachable, DNS, TLS).
    #[error("cannot connect to {url}: {detail}; is the server running?")]
    Connect { url: String, detail: String },
    /// The server took too long.
    #[error("{url} did not answer within {seconds} s ({what})")]
    Timeout {
        url: String,
        seconds: u64,
        what: &'static str,
    },
    /// The server refused the key (HTTP 401/403).
    #[error("{url} refused the request (HTTP {status}): check the API key{}", detail_suffix(.detail))]
    Unauthorized {
        url: String,
        status: u16,
        detail: String,
    },
    /// Any other HTTP error, with the server's own message.
    #[error("{url} answered HTTP {status}: {message}")]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    /// The server's answer was not what the OpenAI API describes.
    #[error("{url} sent a malformed response: {detail}")]
    Malformed { url: String, detail: String },
    /// The server reported an error in the middle of a stream.
    #[error("{url} reported an error while generating: {message}")]
    Stream { url: String, message: String },
    /// The request asks for something a remote engine cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The key store failed.
    #[error("API key store: {0}")]
    KeyStore(String),
    /// The runtime that runs remote jobs could not be started.
    #[error("cannot start the network thread: {0}")]
    Runtime(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_normalize() {
        assert_eq!(
            normalize_base_url(" http://127.0.0.1:8080/v1/ ").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_base_url("https://example.com/api").unwrap(),
            "https://example.com/api"
        );
        assert!(normalize_base_url("").is_err());
        assert!(normalize_base_url("ftp://x").is_err());
        assert!(normalize_base_url("localhost:8080").is_err());
        assert!(normalize_base_url("http://user:pw@host").is_err());
        let ep = RemoteEndpoint::new("http://h:1/v1", "m");
        assert_eq!(
            ep.url("chat/completions").unwrap().as_str(),
            "http://h:1/v1/chat/completions"
        );
    }

    #[test]
    fn keys_are_redacted() {
        let key = ApiKey::new(" sk-secret\n").unwrap();
        assert_eq!(key.expose(), "sk-secret");
        let ep = RemoteEndpoint {
            api_key: Some(key),
            ..RemoteEndpoint::new("http://h", "m")
        };
        assert!(!format!("{ep:?}").contains("sk-secret"));
        assert!(ApiKey::new("  ").is_none());
    }
}
