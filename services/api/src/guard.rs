//! Middleware every request passes: the whole-request timeout, the body deadline extractors
//! honour, and a last line that gives any error response without Herald's JSON shape (a
//! rejection from axum itself) that shape.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;
use crate::server::Limits;

/// What body extractors need to know about this request's limits (a request extension).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The body must have arrived by then.
    pub deadline: tokio::time::Instant,
    pub bytes: usize,
}

/// Answers 503 `request_timeout` when the request is not done within the limit. Dropping the
/// handler rolls back a transaction it has open; one already committing may still commit, so
/// the message tells the caller to look before retrying a command.
pub async fn request_timeout(
    State(limits): State<Limits>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = tokio::time::Instant::now();
    request.extensions_mut().insert(BodyLimits {
        deadline: started + limits.body_read_timeout,
        bytes: limits.body_bytes,
    });
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match tokio::time::timeout_at(started + limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(%method, %path, timeout = ?limits.request_timeout, "request timed out");
            let command = method != Method::GET && method != Method::HEAD;
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "Herald did not finish the request within {} s{}",
                    limits.request_timeout.as_secs_f64(),
                    if command {
                        "; the command may or may not have been applied: read the resource before retrying"
                    } else {
                        "; retry later"
                    }
                ),
            )
            .into_response()
        }
    }
}

/// On a bulk endpoint (with axum's `DefaultBodyLimit` raised on its route): the larger limit,
/// for extractors and their error message.
pub async fn bulk_body(State(bytes): State<usize>, mut request: Request, next: Next) -> Response {
    if let Some(limits) = request.extensions_mut().get_mut::<BodyLimits>() {
        limits.bytes = bytes;
    }
    next.run(request).await
}

/// Gives an error response that is not JSON (axum's own plain-text or empty rejections) the
/// `{"error":{"code","message"}}` shape, keeping its status and headers (e.g. `Allow`).
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's rejection texts are short sentences about the request; anything else is replaced.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && !status.is_server_error());
    let message = text.unwrap_or_else(|| {
        format!(
            "{}: {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        )
    });
    if status.is_server_error() {
        tracing::error!(
            status = status.as_u16(),
            "an error response without a body was turned into JSON"
        );
    }
    let fresh = ApiError::new(status, code_for(status), message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

/// A stable code for a status when nothing more specific is known.
pub fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::REQUEST_TIMEOUT => "body_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::LENGTH_REQUIRED => "length_required",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

/// 405 with the JSON shape (axum adds the `Allow` header).
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on this path; see the Allow header and GET /v1/openapi.json"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn plain_text_and_empty_errors_get_the_json_shape() {
        let plain = (StatusCode::BAD_REQUEST, "Invalid URL: bad segment").into_response();
        let response = json_errors(plain).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body(response).await,
            serde_json::json!({"error": {"code": "bad_request", "message": "Invalid URL: bad segment"}})
        );

        let mut empty = StatusCode::METHOD_NOT_ALLOWED.into_response();
        empty
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        let response = json_errors(empty).await;
        assert_eq!(response.headers()[header::ALLOW], "GET", "headers kept");
        let value = body(response).await;
        assert_eq!(value["error"]["code"], "method_not_allowed");
        assert_eq!(value["error"]["message"], "405: Method Not Allowed");

        // A server error's text is not passed on.
        let internal = (StatusCode::INTERNAL_SERVER_ERROR, "panic at foo.rs:1").into_response();
        let value = body(json_errors(internal).await).await;
        assert_eq!(value["error"]["code"], "internal");
        assert!(!value.to_string().contains("foo.rs"));
    }

    #[tokio::test]
    async fn json_and_successful_responses_pass_untouched() {
        let ok = (StatusCode::OK, "fine").into_response();
        let response = json_errors(ok).await;
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), 64)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"fine");
        let error = ApiError::not_found("post").into_response();
        let value = body(json_errors(error).await).await;
        assert_eq!(value["error"]["code"], "not_found");
    }
}
