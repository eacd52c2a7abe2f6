//! API errors as OpenAI-style JSON bodies: `{"error": {"message", "type", "code"}}` with the
//! right status, so every client library shows the message.
//!
//! No message reveals where the server keeps its files: the data, models, home, working and
//! temporary folders are replaced by a label (`<models>/x.gguf`), and in server errors and
//! the engine's messages any other absolute path is cut to its file name (`…/x.gguf`). The
//! full message of a server error goes to the server's log.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::EngineError;
use crate::models::llm::LlmError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// For the person reading it.
    pub message: String,
    /// OpenAI's error type (`invalid_request_error`, `authentication_error`, ...).
    pub kind: &'static str,
    /// A machine-readable code (`model_not_found`, ...), if any.
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// Any status, with a type.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: redact_paths(&message.into(), status.is_server_error()),
            kind,
            code: None,
        }
    }

    /// With a machine-readable code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 401: no or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing or invalid bearer token: send 'Authorization: Bearer <token>'",
        )
        .with_code("invalid_api_key")
    }

    /// 429: the job queue is full.
    pub fn busy(queue: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!("the server is busy ({queue} jobs queued or running); retry shortly"),
        )
        .with_code("queue_full")
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.code}})
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let message = redact_paths(&e.to_string(), true);
        match e {
            EngineError::InvalidRequest(_)
            | EngineError::Llm(
                LlmError::EmptyPrompt
                | LlmError::PromptTooLong { .. }
                | LlmError::BadTokenId { .. }
                | LlmError::Template(_),
            )
            | EngineError::Faces(
                crate::features::faces::FacesError::BadLatent(_)
                | crate::features::faces::FacesError::BadOffsets(_)
                | crate::features::faces::FacesError::BadPsi(_)
                | crate::features::faces::FacesError::InvalidRequest(_),
            )
            | EngineError::Style(
                crate::models::stylenet::StyleError::BadInput(_)
                | crate::models::stylenet::StyleError::NotAnImage { .. }
                | crate::models::stylenet::StyleError::EmptyFile { .. }
                | crate::models::stylenet::StyleError::CorruptImage { .. }
                | crate::models::stylenet::StyleError::ImageTooLarge { .. },
            ) => Self::bad_request(message),
            _ => {
                tracing::warn!("a request failed: {e}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
            }
        }
    }
}

/// The server's folders and their labels, longest first (so a folder inside another gets
/// its own label).
static FOLDERS: LazyLock<Vec<(String, &'static str)>> = LazyLock::new(|| {
    let mut folders: Vec<(String, &'static str)> = [
        (Some(crate::paths::data_dir()), "<data>"),
        (Some(crate::paths::models_dir()), "<models>"),
        (std::env::current_dir().ok(), "<cwd>"),
        (Some(std::env::temp_dir()), "<tmp>"),
        (
            directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()),
            "<home>",
        ),
    ]
    .into_iter()
    .filter_map(|(dir, label)| {
        let dir = dir?;
        // The canonical form too: messages may name a file through a symlink's target.
        let canonical = std::fs::canonicalize(&dir).ok();
        Some(
            [Some(dir), canonical]
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    let text = d.to_str()?.trim_end_matches(['/', '\\']).to_string();
                    // "/" or "C:" alone would match everything.
                    (text.len() > 3).then_some((text, label))
                })
                .collect::<Vec<_>>(),
        )
    })
    .flatten()
    .collect();
    folders.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
    folders
});

/// `message` with the server's folders replaced by labels and, when `all` is set, every other
/// absolute path cut to its file name.
pub fn redact_paths(message: &str, all: bool) -> String {
    let mut out = message.to_string();
    for (folder, label) in FOLDERS.iter() {
        if out.contains(folder.as_str()) {
            out = replace_folder(&out, folder, label);
        }
    }
    if all {
        shorten_absolute_paths(&out)
    } else {
        out
    }
}

/// `text` with each occurrence of `folder` that is a whole folder (not `/home2` for `/home`)
/// replaced by `label`.
fn replace_folder(text: &str, folder: &str, label: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(folder) {
        let after = &rest[at + folder.len()..];
        let mut next = after.chars();
        let whole = match next.next() {
            None => true,
            // A full stop ends a sentence; `/home.old` is another folder.
            Some('.') => next.next().is_none_or(char::is_whitespace),
            Some(c) => !(c.is_alphanumeric() || "_-~".contains(c)),
        };
        out.push_str(&rest[..at]);
        out.push_str(if whole { label } else { folder });
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Every absolute path (`/a/b/c`, `C:\a\b`) cut to `…/` and its last component.
fn shorten_absolute_paths(text: &str) -> String {
    let ends = |c: char| c.is_whitespace() || "'\"`()[]{}<>,;".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_path_start(rest) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let len = tail.find(ends).unwrap_or(tail.len());
        // A sentence's full stop or colon after the path is not part of it.
        let path = tail[..len].trim_end_matches(['.', ':']);
        let parts: Vec<&str> = path.split(['/', '\\']).filter(|p| !p.is_empty()).collect();
        match parts.last() {
            Some(name) if parts.len() >= 2 => {
                out.push_str("…/");
                out.push_str(name);
            }
            _ => out.push_str(path),
        }
        rest = &tail[path.len()..];
    }
    out.push_str(rest);
    out
}

/// Where the next absolute path begins: a `/`, `\` or drive letter (`C:\`) at the start
/// of a word.
fn find_path_start(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let word_start = |i: usize| {
        i == 0 || {
            let prev = bytes[i - 1];
            prev.is_ascii_whitespace() || b"'\"`([{<=".contains(&prev)
        }
    };
    (0..bytes.len()).find(|&i| {
        word_start(i)
            && (bytes[i] == b'/'
                || bytes[i] == b'\\'
                || (bytes[i].is_ascii_alphabetic()
                    && bytes.get(i + 1) == Some(&b':')
                    && matches!(bytes.get(i + 2), Some(b'\\' | b'/'))))
    })
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut resp = (status, axum::Json(self.body())).into_response();
        match status {
            StatusCode::TOO_MANY_REQUESTS => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_cut_to_their_file_names() {
        assert_eq!(
            shorten_absolute_paths("cannot read /srv/x/model.gguf: permission denied"),
            "cannot read …/model.gguf: permission denied"
        );
        assert_eq!(
            shorten_absolute_paths("file '/a/b/c.onnx'. And C:\\Users\\me\\m.gguf."),
            "file '…/c.onnx'. And …/m.gguf."
        );
        // A lone root-level name, relative paths and URLs' paths after a scheme stay.
        assert_eq!(
            shorten_absolute_paths("/v1 models/x.gguf"),
            "/v1 models/x.gguf"
        );
        assert_eq!(shorten_absolute_paths(""), "");
    }

    #[test]
    fn only_whole_folders_are_replaced() {
        assert_eq!(
            replace_folder(
                "/srv/a/x /srv/ab /srv/a.old /srv/a. /srv/a",
                "/srv/a",
                "<m>"
            ),
            "<m>/x /srv/ab /srv/a.old <m>. <m>"
        );
    }

    #[test]
    fn the_servers_folders_become_labels() {
        let models = crate::paths::models_dir();
        let msg = format!("missing {}", models.join("x.gguf").display());
        let out = redact_paths(&msg, false);
        assert!(!out.contains(models.to_str().unwrap()), "{out}");
        let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", msg);
        assert!(!e.body().to_string().contains(models.to_str().unwrap()));
    }
}
