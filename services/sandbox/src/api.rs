//! The Bot API routes: `/bot{token}/{method}` over GET and POST.
//!
//! Only what Herald needs is emulated, but with Telegram's exact answers so
//! that the real client code paths run: token and method checks, parameter
//! validation, injected faults, then flood control.

use std::io;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use markup::{MAX_TEXT_UTF16, ParseError, ParseMode, Parsed};
use serde_json::{Value, json};

use crate::Sandbox;
use crate::faults::Fault;
use crate::limits::retry_after_secs;
use crate::objects::{self, BotStatus, ChatSetup, ChatType};
use crate::params::Params;
use crate::reply::{self, ApiError, ApiResult};
use crate::state::{Admission, Outgoing};
use crate::{updates, webhooks};

pub(crate) fn routes() -> Router<Sandbox> {
    // A segment cannot be matched as `bot{token}` directly, so the whole
    // segment is captured and the `bot` prefix checked in the handler.
    Router::new().route("/{bot_token}/{method}", get(bot_method).post(bot_method))
}

/// Unknown paths answer like the Bot API does.
pub(crate) async fn not_found() -> Response {
    ApiError::not_found().into_response()
}

/// The bot id: the numeric part of a well-formed token
/// (`<digits>:<at least 20 of [A-Za-z0-9_-]>`).
fn bot_id(token: &str) -> Option<i64> {
    let (id, secret) = token.split_once(':')?;
    let well_formed = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && secret.len() >= 20
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if well_formed { id.parse().ok() } else { None }
}

async fn bot_method(
    State(sandbox): State<Sandbox>,
    path: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Path((segment, method))) = path else {
        return not_found().await;
    };
    let Some(token) = segment.strip_prefix("bot") else {
        return not_found().await;
    };
    let Some(bot_id) = bot_id(token) else {
        tracing::debug!(%method, "rejected a malformed bot token");
        return ApiError::unauthorized().into_response();
    };
    let body = match body {
        Ok(body) => body,
        Err(err) => return ApiError::bad_request(err.body_text()).into_response(),
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let params = match Params::parse_request(uri.query(), content_type, body).await {
        Ok(params) => params,
        Err(err) => return err.into_response(),
    };
    // Telegram matches method names case-insensitively: teloxide sends
    // `SendMessage`, most other clients `sendMessage`.
    let result = match method.to_ascii_lowercase().as_str() {
        "sendmessage" => return send_message(&sandbox, bot_id, &params).await,
        "getme" => Ok(objects::me(bot_id)),
        "getupdates" => updates::get_updates(&sandbox, bot_id, &params).await,
        "getchat" => get_chat(&sandbox, &params),
        "getchatmember" => get_chat_member(&sandbox, bot_id, &params),
        "setwebhook" => webhooks::set_webhook(&sandbox, bot_id, &params),
        "deletewebhook" => webhooks::delete_webhook(&sandbox, bot_id, &params),
        "getwebhookinfo" => webhooks::webhook_info(&sandbox, bot_id),
        "close" | "logout" => Ok(Value::Bool(true)),
        _ => Err(ApiError::not_found()),
    };
    if let Err(err) = &result {
        tracing::debug!(bot_id, %method, status = err.status.as_u16(), "Bot API call failed");
    }
    reply::respond(result)
}

fn get_chat(sandbox: &Sandbox, params: &Params) -> ApiResult {
    let chat_id = params.chat_id()?;
    let state = sandbox.state();
    let setup = state.chat_setup(chat_id);
    if !setup.exists() {
        return Err(ApiError::chat_not_found());
    }
    let chat_type = state.chat_type(chat_id);
    let mut info = objects::chat_full_info(chat_id, chat_type, setup.title.as_deref());
    if let (Some(username), false) = (&setup.username, chat_type == ChatType::Private) {
        info["username"] = username.clone().into();
    }
    Ok(info)
}

/// `getChatMember`: the bot's own standing as set up (`POST /sandbox/chats`); any other user
/// is a plain member.
fn get_chat_member(sandbox: &Sandbox, bot_id: i64, params: &Params) -> ApiResult {
    let chat_id = params.chat_id()?;
    let user_id = params
        .integer("user_id")
        .ok_or_else(|| ApiError::bad_request("user_id is empty"))?;
    let state = sandbox.state();
    let setup = state.chat_setup(chat_id);
    if !setup.exists() {
        return Err(ApiError::chat_not_found());
    }
    if user_id != bot_id {
        return Ok(json!({
            "status": "member",
            "user": { "id": user_id, "is_bot": false, "first_name": "Sandbox user" },
        }));
    }
    let chat_type = state.chat_type(chat_id);
    Ok(objects::bot_member(
        bot_id,
        setup.bot_status(chat_type),
        setup.can_post_messages(chat_type),
    ))
}

/// Telegram's refusal of a message to a chat the bot is not in, or may not post to.
fn refusal(setup: &ChatSetup, chat_type: ChatType) -> Option<ApiError> {
    if !setup.exists() {
        return Some(ApiError::chat_not_found());
    }
    let kind = match chat_type {
        // A person who blocked the bot (its standing `kicked`, see `POST /sandbox/updates`).
        ChatType::Private => {
            return (setup.bot_status == Some(BotStatus::Kicked))
                .then(|| ApiError::forbidden("Forbidden: bot was blocked by the user"));
        }
        ChatType::Group => "group",
        ChatType::Supergroup => "supergroup",
        ChatType::Channel => "channel",
    };
    match setup.bot_status(chat_type) {
        BotStatus::Kicked | BotStatus::Left => Some(ApiError::forbidden(format!(
            "Forbidden: bot was kicked from the {kind} chat"
        ))),
        _ if chat_type == ChatType::Channel && !setup.can_post_messages(chat_type) => Some(
            ApiError::bad_request("need administrator rights in the channel chat"),
        ),
        _ => None,
    }
}

/// A `sendMessage` request that passed validation.
struct SendMessage {
    chat_id: i64,
    text: String,
    parse_mode: Option<String>,
    /// `allow_paid_broadcast`: up to 1000 messages per second for the bot
    /// instead of 30 (the per-chat and per-group limits still apply).
    paid_broadcast: bool,
    /// The text as the recipient sees it, with its entities.
    parsed: Parsed,
}

impl SendMessage {
    /// Telegram's checks, in the Bot API's order: the text and its markup
    /// first, then the chat.
    fn validate(params: &Params) -> Result<Self, ApiError> {
        let text = params.string("text").unwrap_or_default().into_owned();
        let parse_mode = params
            .string("parse_mode")
            .map(|mode| mode.into_owned())
            .filter(|mode| !mode.is_empty());
        let mode = ParseMode::from_param(parse_mode.as_deref().unwrap_or(""))
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        // Parsed, cleaned and trimmed as Telegram does; an empty result is refused.
        let parsed = markup::parse(&text, mode).map_err(|err| match err {
            ParseError::Entities(_) | ParseError::Empty => ApiError::bad_request(err.to_string()),
        })?;
        let chat_id = params.chat_id()?;
        if parsed.utf16_len() > MAX_TEXT_UTF16 {
            return Err(ApiError::bad_request("message is too long"));
        }
        // teloxide sends a JSON boolean, forms send `true`; a value that is
        // not a boolean counts as unset (ordinary limits).
        let paid_broadcast = params.boolean("allow_paid_broadcast").unwrap_or(false);
        Ok(Self {
            chat_id,
            text,
            parse_mode,
            paid_broadcast,
            parsed,
        })
    }
}

/// `sendMessage`: validation, then fault rules, then rate limits.
async fn send_message(sandbox: &Sandbox, bot_id: i64, params: &Params) -> Response {
    let request = match SendMessage::validate(params) {
        Ok(request) => request,
        Err(err) => {
            tracing::debug!(bot_id, status = err.status.as_u16(), "sendMessage rejected");
            return err.into_response();
        }
    };
    let chat_id = request.chat_id;
    let refused = {
        let state = sandbox.state();
        refusal(&state.chat_setup(chat_id), state.chat_type(chat_id))
    };
    if let Some(err) = refused {
        tracing::debug!(
            bot_id,
            status = err.status.as_u16(),
            "sendMessage refused: no rights"
        );
        return err.into_response();
    }
    let fault = {
        let mut state = sandbox.state();
        let fault = state.faults.take(bot_id, chat_id);
        if fault.is_some() {
            state.stats.faults_injected += 1;
        }
        fault
    };
    let mut admission = if sandbox.shared.enforce_limits {
        Admission::Limited
    } else {
        Admission::Unlimited
    };
    let mut drop_answer = false;
    if let Some(fault) = fault {
        tracing::debug!(bot_id, chat_id, ?fault, "injecting fault");
        let err = match fault {
            Fault::Latency { ms } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                None
            }
            Fault::AcceptThenDrop => {
                if admission == Admission::Limited {
                    admission = Admission::Forced;
                }
                drop_answer = true;
                None
            }
            Fault::RetryAfter { retry_after } => {
                sandbox.state().stats.rate_limited += 1;
                Some(ApiError::too_many_requests(retry_after))
            }
            Fault::ServerError => Some(ApiError::internal()),
            Fault::Forbidden { description } => Some(ApiError::forbidden(description)),
            Fault::ChatNotFound => Some(ApiError::chat_not_found()),
            Fault::Migrate { to_chat_id } => Some(ApiError::migrated(to_chat_id)),
            Fault::Unauthorized => Some(ApiError::unauthorized()),
        };
        if let Some(err) = err {
            return err.into_response();
        }
    }

    let outgoing = Outgoing {
        bot_id,
        chat_id,
        text: &request.text,
        parse_mode: request.parse_mode.as_deref(),
        paid_broadcast: request.paid_broadcast,
        parsed: &request.parsed,
    };
    let (accepted, chat_type) = {
        let mut state = sandbox.state();
        let accepted = state.accept(&outgoing, admission, Instant::now());
        (accepted, state.chat_type(chat_id))
    };
    let received = match accepted {
        Ok(received) => received,
        Err(wait) => {
            let retry_after = retry_after_secs(wait);
            tracing::debug!(bot_id, chat_id, retry_after, "sendMessage rate limited");
            return ApiError::too_many_requests(retry_after).into_response();
        }
    };
    tracing::debug!(
        bot_id,
        chat_id,
        message_id = received.message_id,
        paid_broadcast = received.paid_broadcast,
        "sendMessage accepted"
    );
    if drop_answer {
        return broken_answer();
    }
    let message = objects::text_message(
        bot_id,
        chat_id,
        chat_type,
        received.message_id,
        received.received_at,
        &request.parsed,
    );
    reply::respond(Ok(message))
}

/// A 200 whose body breaks off mid-JSON: hyper aborts the connection when
/// the body stream fails, so the client gets a transport error after the
/// message was recorded — the "did it go out?" case.
fn broken_answer() -> Response {
    let chunks: [Result<Bytes, io::Error>; 2] = [
        Ok(Bytes::from_static(b"{\"ok\":true,\"result\":{")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "sandbox fault: accept_then_drop",
        )),
    ];
    let mut response = Body::from_stream(futures::stream::iter(chunks)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_format() {
        assert_eq!(
            bot_id("123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Some(123_456)
        );
        assert_eq!(bot_id("1:abcdefghij-_KLMNOPQRST"), Some(1));
        assert_eq!(bot_id("123456:short"), None);
        assert_eq!(bot_id(":AAAAAAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(bot_id("12a:AAAAAAAAAAAAAAAAAAAAAAAA"), None);
        assert_eq!(bot_id("12:AAAAAAAAAAAAAAAAAAAAAAA!"), None);
        assert_eq!(bot_id("123456"), None);
        assert_eq!(
            bot_id("99999999999999999999:AAAAAAAAAAAAAAAAAAAAAAAA"),
            None
        );
    }

    fn validate(body: Value) -> Result<SendMessage, ApiError> {
        let body = body.to_string();
        let params = Params::parse(None, Some("application/json"), body.as_bytes())?;
        SendMessage::validate(&params)
    }

    #[test]
    fn send_message_validation() {
        let err = |body| validate(body).err().map(|err| err.description);
        assert_eq!(
            err(json!({"chat_id": 1})).as_deref(),
            Some("Bad Request: message text is empty")
        );
        assert_eq!(
            err(json!({"chat_id": 1, "text": "  \n"})).as_deref(),
            Some("Bad Request: message text is empty")
        );
        assert_eq!(
            err(json!({"chat_id": 1, "text": "<b></b>", "parse_mode": "HTML"})).as_deref(),
            Some("Bad Request: message text is empty")
        );
        assert_eq!(
            err(json!({"chat_id": 1, "text": "x", "parse_mode": "bbcode"})).as_deref(),
            Some("Bad Request: unsupported parse_mode")
        );
        assert_eq!(
            err(json!({"chat_id": "@news", "text": "x"})).as_deref(),
            Some("Bad Request: chat not found")
        );
        assert_eq!(
            err(json!({"chat_id": 1, "text": "a".repeat(4097)})).as_deref(),
            Some("Bad Request: message is too long")
        );
        // Markup does not count towards the length.
        let text = format!("<b>{}</b>", "a".repeat(4096));
        let ok = validate(json!({"chat_id": 1, "text": text, "parse_mode": "html"}));
        assert_eq!(ok.map(|m| m.parsed.utf16_len()).ok(), Some(4096));
    }
}
