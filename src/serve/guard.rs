//! Which requests reach a handler.
//!
//! - Without a token (the server is then on loopback), the `Host` and any `Origin` must name
//!   localhost, a loopback address or an `--allow-host` name: a web page whose own name was
//!   made to resolve to 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
//! - With a token, the bearer token, compared in constant time.
//! - Every POST declares a Content-Type a web page on another site cannot send without a CORS
//!   preflight (which this server never grants): `application/json`, or an image type for
//!   `/v1/images/style`. `text/plain`, forms and a missing type are refused with 415.
//!
//! Each request is logged as method, path, status and time (never a header).

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// Content types `/v1/images/style` accepts.
const IMAGE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/octet-stream",
];

/// The outer guard: Host and Origin (no token) or the token, and the request log.
pub async fn check(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = match refuse(&state, &req) {
        Some(error) => error.into_response(),
        None => next.run(req).await,
    };
    tracing::info!(
        "{method} {path} {} {:.0} ms",
        resp.status().as_u16(),
        started.elapsed().as_secs_f64() * 1e3
    );
    resp
}

/// Why a request may not go further, if it may not.
fn refuse(state: &AppState, req: &Request) -> Option<ApiError> {
    match &state.token {
        Some(token) => {
            let sent = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or_default();
            (!bool::from(sent.as_bytes().ct_eq(token.as_bytes()))).then(ApiError::unauthorized)
        }
        // The token is what a rebinding page lacks; without one, the names must be ours.
        None => check_names(&state.allowed_hosts, req.uri(), req.headers()).err(),
    }
}

/// The request's Host (or absolute URI) and Origin must name this machine.
fn check_names(allowed: &[String], uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |what: &str, value: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            format!(
                "the {what} '{}' is not this server: without a token it answers only requests \
                 addressed to localhost or a loopback address (a web page on another site \
                 may not use it). Use http://127.0.0.1:PORT, pass --allow-host, or set a token",
                clip(value)
            ),
        )
        .with_code("host_not_allowed")
    };
    if let Some(authority) = uri.authority()
        && !is_local(allowed, authority.host())
    {
        return Err(forbidden("address", authority.as_str()));
    }
    if let Some(host) = headers.get(header::HOST) {
        let text = host.to_str().unwrap_or_default();
        let name = text.parse::<Authority>().ok();
        if !name.is_some_and(|a| is_local(allowed, a.host())) {
            return Err(forbidden("Host", text));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or_default();
        let host = text.parse::<Uri>().ok();
        if !host
            .as_ref()
            .and_then(Uri::host)
            .is_some_and(|h| is_local(allowed, h))
        {
            return Err(forbidden("Origin", text));
        }
    }
    Ok(())
}

/// localhost, a loopback address (`[::1]` in brackets too) or an allowed name.
fn is_local(allowed: &[String], host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.to_canonical().is_loopback();
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || allowed.contains(&name)
}

/// A header value shortened for a message.
fn clip(value: &str) -> String {
    match value.char_indices().nth(100) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

/// For the JSON endpoints: the body must be declared `application/json`.
pub async fn require_json(req: Request, next: Next) -> Response {
    match check_content_type(req.headers(), &["application/json"]) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// For `/v1/images/style`: the body must be declared an image (or octet stream).
pub async fn require_image(req: Request, next: Next) -> Response {
    match check_content_type(req.headers(), IMAGE_TYPES) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// 415 unless the Content-Type (without parameters) is one of `accepted`.
fn check_content_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let sent = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let essence = sent
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if essence.is_some_and(|e| accepted.contains(&e.as_str())) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        format!(
            "send the body with 'Content-Type: {}' (got {})",
            accepted.join("' or '"),
            sent.map_or("none".to_string(), |s| format!("'{}'", clip(s)))
        ),
    )
    .with_code("unsupported_media_type"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn names(host: Option<&str>, origin: Option<&str>) -> Result<(), ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(header::HOST, HeaderValue::from_str(h).unwrap());
        }
        if let Some(o) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        check_names(
            &["studio.lan".into()],
            &Uri::from_static("/v1/models"),
            &headers,
        )
    }

    #[test]
    fn only_local_names_are_accepted_without_a_token() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.2",
            "studio.lan:8080",
        ] {
            assert!(names(Some(ok), None).is_ok(), "{ok}");
        }
        assert!(names(None, None).is_ok());
        for bad in [
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.5:8080",
            "",
        ] {
            let e = names(Some(bad), None).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{bad}");
        }
        assert!(names(Some("localhost"), Some("http://localhost:3000")).is_ok());
        for bad in ["https://evil.example", "null"] {
            assert!(names(Some("localhost"), Some(bad)).is_err(), "{bad}");
        }
        let absolute = Uri::from_static("http://evil.example/v1/models");
        assert!(check_names(&[], &absolute, &HeaderMap::new()).is_err());
    }

    #[test]
    fn content_types_a_page_can_send_freely_are_refused() {
        let with = |t: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(t) = t {
                h.insert(header::CONTENT_TYPE, HeaderValue::from_str(t).unwrap());
            }
            check_content_type(&h, &["application/json"])
        };
        assert!(with(Some("application/json")).is_ok());
        assert!(with(Some("Application/JSON; charset=utf-8")).is_ok());
        for bad in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let e = with(bad).unwrap_err();
            assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad:?}");
        }
    }
}
