//! `/sandbox/*`: a small JSON API to see what the bots sent and to steer
//! the emulator (faults, chat types) from outside the process — from a
//! test written in another language, or a human with curl.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::faults::FaultRule;
use crate::objects::{BotStatus, ChatSetup, ChatType};
use crate::{ReceivedMessage, Sandbox, SandboxStats};

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new()
        .route(
            "/sandbox/messages",
            get(list_messages).delete(clear_messages),
        )
        .route("/sandbox/stats", get(stats))
        .route(
            "/sandbox/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/sandbox/chats", post(set_chat))
}

/// `{"error":{"code":…,"message":…}}` with 400.
fn invalid(code: &str, message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": { "code": code, "message": message.to_string() } })),
    )
        .into_response()
}

/// Reads an optional integer filter; an empty value means no filter.
fn filter(query: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    match query.get(key).map(|value| value.trim()) {
        None | Some("") => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| format!("{key} must be an integer")),
    }
}

/// `GET /sandbox/messages?chat_id=&bot_id=` → `{"messages":[…]}`.
async fn list_messages(
    State(sandbox): State<Sandbox>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (chat_id, bot_id) = match (filter(&query, "chat_id"), filter(&query, "bot_id")) {
        (Ok(chat_id), Ok(bot_id)) => (chat_id, bot_id),
        (Err(message), _) | (_, Err(message)) => return invalid("invalid_query", message),
    };
    let messages: Vec<ReceivedMessage> = sandbox.state().messages(chat_id, bot_id);
    Json(json!({ "messages": messages })).into_response()
}

async fn clear_messages(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.clear_messages();
    StatusCode::NO_CONTENT
}

async fn stats(State(sandbox): State<Sandbox>) -> Json<SandboxStats> {
    Json(sandbox.stats())
}

async fn list_faults(State(sandbox): State<Sandbox>) -> Response {
    Json(json!({ "faults": sandbox.faults() })).into_response()
}

/// `POST /sandbox/faults` with a [`FaultRule`]. The body is read as JSON
/// whatever its content type, so `curl -d '{…}'` works.
async fn add_fault(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultRule>(&body) {
        Ok(rule) if rule.times == 0 => invalid("invalid_fault", "times must be at least 1"),
        Ok(rule) => {
            sandbox.inject(rule);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => invalid("invalid_fault", err),
    }
}

async fn clear_faults(State(sandbox): State<Sandbox>) -> StatusCode {
    sandbox.clear_faults();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatOverride {
    chat_id: i64,
    #[serde(rename = "type")]
    chat_type: Option<ChatType>,
    title: Option<String>,
    username: Option<String>,
    bot_status: Option<BotStatus>,
    can_post_messages: Option<bool>,
    exists: Option<bool>,
}

/// `POST /sandbox/chats` with `{"chat_id":…}` and any of `"type"` (private, group,
/// supergroup, channel), `"title"`, `"username"` (a public chat's), `"bot_status"` (administrator, member, left, kicked),
/// `"can_post_messages"`, `"exists"`: what `getChat`, `getChatMember` and `sendMessage` then
/// answer for that chat.
async fn set_chat(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<ChatOverride>(&body) {
        Ok(chat) => {
            let setup = ChatSetup {
                chat_type: chat.chat_type,
                title: chat.title,
                username: chat.username.map(|u| u.trim_start_matches('@').to_owned()),
                bot_status: chat.bot_status,
                can_post_messages: chat.can_post_messages,
                exists: chat.exists,
            };
            sandbox.set_chat(chat.chat_id, setup);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => invalid("invalid_chat", err),
    }
}
