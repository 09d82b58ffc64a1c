//! The Bot API answer envelope: `{"ok":true,"result":…}` or
//! `{"ok":false,"error_code":N,"description":"…","parameters":{…}}` with the
//! matching HTTP status, which is what clients (teloxide included) key their
//! error handling on.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// A Bot API error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) description: String,
    pub(crate) parameters: Option<Parameters>,
}

/// `ResponseParameters`: only present when the client can act on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parameters {
    RetryAfter(u32),
    MigrateToChatId(i64),
}

impl ApiError {
    fn new(status: StatusCode, description: impl Into<String>) -> Self {
        Self {
            status,
            description: description.into(),
            parameters: None,
        }
    }

    /// 400 "Bad Request: {detail}".
    pub(crate) fn bad_request(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, format!("Bad Request: {detail}"))
    }

    pub(crate) fn chat_not_found() -> Self {
        Self::bad_request("chat not found")
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    pub(crate) fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, description)
    }

    pub(crate) fn conflict(detail: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::CONFLICT, format!("Conflict: {detail}"))
    }

    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }

    pub(crate) fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
    }

    pub(crate) fn too_many_requests(retry_after: u32) -> Self {
        Self {
            parameters: Some(Parameters::RetryAfter(retry_after)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too Many Requests: retry after {retry_after}"),
            )
        }
    }

    pub(crate) fn migrated(to_chat_id: i64) -> Self {
        Self {
            parameters: Some(Parameters::MigrateToChatId(to_chat_id)),
            ..Self::bad_request("group chat was upgraded to a supergroup chat")
        }
    }

    fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("ok".to_owned(), Value::Bool(false));
        body.insert("error_code".to_owned(), json!(self.status.as_u16()));
        body.insert("description".to_owned(), json!(self.description));
        match self.parameters {
            Some(Parameters::RetryAfter(secs)) => {
                body.insert("parameters".to_owned(), json!({ "retry_after": secs }));
            }
            Some(Parameters::MigrateToChatId(id)) => {
                body.insert("parameters".to_owned(), json!({ "migrate_to_chat_id": id }));
            }
            None => {}
        }
        Value::Object(body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The result of a Bot API method.
pub(crate) type ApiResult = Result<Value, ApiError>;

/// Wraps a method result in the envelope.
pub(crate) fn respond(result: ApiResult) -> Response {
    match result {
        Ok(value) => Json(json!({ "ok": true, "result": value })).into_response(),
        Err(err) => err.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_match_telegram() {
        assert_eq!(
            ApiError::too_many_requests(3).body(),
            json!({
                "ok": false,
                "error_code": 429,
                "description": "Too Many Requests: retry after 3",
                "parameters": { "retry_after": 3 },
            })
        );
        assert_eq!(
            ApiError::migrated(-1_001_234_567_890).body(),
            json!({
                "ok": false,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": { "migrate_to_chat_id": -1_001_234_567_890_i64 },
            })
        );
        // No empty `parameters`: teloxide would fail to parse it.
        assert_eq!(
            ApiError::unauthorized().body(),
            json!({ "ok": false, "error_code": 401, "description": "Unauthorized" })
        );
    }
}
