use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::{DomainError, ErrorKind};
use serde_json::{Map, Value, json};
use store::CommandError;

/// Every error the API returns: a status, a stable machine-readable code, a human sentence.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Machine-readable facts beside `code` and `message` (e.g. the id of an existing chat).
    pub fields: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Map::new(),
        }
    }
    /// Adds a machine-readable field to the error object (beside `code` and `message`).
    pub fn with_field(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found in this workspace"),
        )
    }
    /// A failure that is not the caller's fault. Details go to the log, not to the caller.
    /// Running out of database connections is overload, not a fault: 503, retry shortly.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        let error = error.to_string();
        // sqlx's `PoolTimedOut`, which reaches here as text through the event store's errors.
        if error.contains("pool timed out while waiting for an open connection") {
            tracing::warn!("the API's database connections are all busy; answering 503");
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "Herald is too busy to handle the request now; it was not applied, retry in a few seconds",
            );
        }
        tracing::error!(%error, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Herald failed to handle the request; it was not applied, retry later",
        )
    }
}

impl ApiError {
    /// The error object (`code`, `message` and any fields), as it appears under `"error"`.
    pub fn to_json(&self) -> Value {
        let mut error = self.fields.clone();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        Value::Object(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.to_json() });
        (self.status, Json(body)).into_response()
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        let status = match error.kind() {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        };
        Self::new(status, error.code(), error.to_string())
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Domain(e) => e.into(),
            CommandError::Conflict => Self::new(
                StatusCode::CONFLICT,
                "concurrent_modification",
                error.to_string(),
            ),
            CommandError::Store(e) => Self::internal(e),
            CommandError::ChatAlreadyConnected {
                existing_chat_id, ..
            } => Self::new(
                StatusCode::CONFLICT,
                "chat_already_connected",
                error.to_string(),
            )
            .with_field("existing_chat_id", existing_chat_id.to_string()),
            // The holder may be another workspace's bot: name neither it nor its workspace
            // (handlers that know the caller's workspace say more, see `bot_already_registered`).
            CommandError::BotAlreadyRegistered {
                telegram_bot_id, ..
            } => bot_already_registered(telegram_bot_id, None),
        }
    }
}

/// 409 for a token of a Telegram bot that is registered already. `existing` is the registered
/// bot when it is in the caller's workspace; another workspace's is never named.
pub fn bot_already_registered(telegram_bot_id: i64, existing: Option<domain::Id>) -> ApiError {
    const CODE: &str = "bot_already_registered";
    match existing {
        Some(id) => ApiError::new(
            StatusCode::CONFLICT,
            CODE,
            format!(
                "Telegram bot {telegram_bot_id} is already registered in this workspace as bot {id}; \
                 to give it a new token use PUT .../bots/{id}/token"
            ),
        )
        .with_field("existing_bot_id", id.to_string()),
        None => ApiError::new(
            StatusCode::CONFLICT,
            CODE,
            format!(
                "Telegram bot {telegram_bot_id} is already registered elsewhere; a Telegram bot \
                 can be registered once"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_connections_is_503_busy_and_other_failures_are_500() {
        let busy = ApiError::internal(sqlx::Error::PoolTimedOut);
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        );
        let through_the_store =
            ApiError::from(CommandError::Store(sqlx::Error::PoolTimedOut.to_string()));
        assert_eq!(through_the_store.status, StatusCode::SERVICE_UNAVAILABLE);
        let other = ApiError::internal("disk on fire");
        assert_eq!(
            (other.status, other.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
    }
}
