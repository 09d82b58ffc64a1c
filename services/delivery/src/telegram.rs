//! Sending through the Bot API with teloxide, and sorting every answer into what Herald may do
//! next. The rule (Telegram has no idempotency key): retry only when Telegram answered with an
//! error or the request provably never left; anything else is in doubt.

use std::time::Duration;

use domain::ParseMode;
use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::payloads::SendMessageSetters;
use teloxide::prelude::Requester;
use teloxide::types::ChatId;

/// How long one Bot API call may take before its outcome is in doubt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// What a send attempt means for delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum SendResult {
    Sent {
        message_id: i32,
    },
    /// 429: Telegram asks this chat to wait.
    RetryAfter(Duration),
    /// Telegram refused for good (chat not found, bad markup, too long, no rights...).
    Permanent(String),
    /// 403: the bot was blocked or kicked, or the user is deactivated; the chat is unreachable.
    Blocked(String),
    /// 401: the token was revoked or is wrong; the bot must stop.
    Unauthorized,
    /// The group became a supergroup with this new chat id.
    Migrated(i64),
    /// Safe to retry: Telegram answered with a server error, or the connection never opened.
    Transient(String),
    /// The request may have reached Telegram, but no usable answer came back.
    InDoubt(String),
}

/// Builds a teloxide bot for `token`, talking to `api_url` (the real Bot API or the sandbox).
pub fn bot(token: &str, api_url: &url::Url) -> anyhow::Result<teloxide::Bot> {
    let client = teloxide::net::default_reqwest_settings()
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    Ok(teloxide::Bot::with_client(token, client).set_api_url(api_url.clone()))
}

/// Sends one text message and classifies the outcome.
pub async fn send_text(
    bot: &teloxide::Bot,
    chat_id: i64,
    text: &str,
    parse_mode: Option<ParseMode>,
    paid_broadcast: bool,
) -> SendResult {
    let mut request = bot.send_message(ChatId(chat_id), text);
    if paid_broadcast {
        request = request.allow_paid_broadcast(true);
    }
    if let Some(mode) = parse_mode {
        request = request.parse_mode(match mode {
            ParseMode::Html => teloxide::types::ParseMode::Html,
            ParseMode::MarkdownV2 => teloxide::types::ParseMode::MarkdownV2,
        });
    }
    match request.await {
        Ok(message) => SendResult::Sent {
            message_id: message.id.0,
        },
        Err(error) => classify(&error),
    }
}

/// Sorts a teloxide error into a [`SendResult`].
pub fn classify(error: &RequestError) -> SendResult {
    match error {
        RequestError::RetryAfter(seconds) => SendResult::RetryAfter(seconds.duration()),
        RequestError::MigrateToChatId(to) => SendResult::Migrated(to.0),
        RequestError::Api(ApiError::InvalidToken) => SendResult::Unauthorized,
        RequestError::Api(
            api @ (ApiError::BotBlocked
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::BotKickedFromChannel
            | ApiError::UserDeactivated),
        ) => SendResult::Blocked(api.to_string()),
        RequestError::Api(ApiError::Unknown(description))
            if description.starts_with("Forbidden") =>
        {
            SendResult::Blocked(description.clone())
        }
        RequestError::Api(ApiError::Unknown(description)) if is_server_error(description) => {
            SendResult::Transient(description.clone())
        }
        RequestError::Api(api) => SendResult::Permanent(api.to_string()),
        RequestError::Network(e) if e.is_connect() => {
            SendResult::Transient(format!("connection failed: {e}"))
        }
        RequestError::Network(e) if e.is_timeout() => {
            SendResult::InDoubt("no answer from Telegram before the timeout".into())
        }
        RequestError::Network(_) => {
            SendResult::InDoubt("the connection broke before Telegram's answer arrived".into())
        }
        RequestError::InvalidJson { .. } => {
            SendResult::InDoubt("Telegram's answer could not be read".into())
        }
        RequestError::Io(_) => {
            SendResult::InDoubt("input/output error while waiting for Telegram's answer".into())
        }
    }
}

/// Telegram's 5xx descriptions (teloxide reports them as unknown API errors).
fn is_server_error(description: &str) -> bool {
    [
        "Internal Server Error",
        "Bad Gateway",
        "Service Unavailable",
        "Gateway Timeout",
    ]
    .iter()
    .any(|s| description.contains(s))
}
