//! API errors as OpenAI-style JSON bodies: `{"error": {"message", "type", "code"}}` with the
//! right status, so every client library shows the message.

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
            message: message.into(),
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
        let message = e.to_string();
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
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message),
        }
    }
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
