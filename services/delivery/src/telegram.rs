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

/// What Telegram says about a chat and the bot in it (`getChat`, and `getChatMember` for the
/// bot in groups and channels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatCheck {
    /// `private`, `group`, `supergroup` or `channel`.
    pub kind: &'static str,
    /// The group's or channel's title; never a person's name (private chats have none here).
    pub title: Option<String>,
    /// Why the bot may not post there, when it may not.
    pub cannot_post: Option<String>,
    /// A public group's or channel's @username (never asked of a private chat).
    pub username: Option<String>,
}

/// Why a chat could not be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// Telegram answered: no such chat, or the bot has no access to it (its description).
    Refused(String),
    /// Telegram could not be asked (network, 5xx, 429): try again later.
    Unavailable(String),
}

/// Asks Telegram whether the bot (user id `bot_user_id`) is in chat `chat_id` and may post
/// there.
pub async fn check_chat(
    bot: &teloxide::Bot,
    chat_id: i64,
    bot_user_id: i64,
) -> Result<ChatCheck, CheckError> {
    let failed = |error: RequestError| match classify(&error) {
        SendResult::Permanent(why) | SendResult::Blocked(why) => CheckError::Refused(why),
        SendResult::Unauthorized => {
            CheckError::Refused("Telegram does not accept the bot's token".into())
        }
        SendResult::Migrated(to) => CheckError::Refused(format!(
            "the group became a supergroup with id {to}; connect that id"
        )),
        SendResult::RetryAfter(after) => {
            CheckError::Unavailable(format!("Telegram asks to wait {}s", after.as_secs()))
        }
        SendResult::Transient(why) | SendResult::InDoubt(why) => CheckError::Unavailable(why),
        SendResult::Sent { .. } => CheckError::Unavailable("unexpected answer".into()),
    };
    let info = bot.get_chat(ChatId(chat_id)).await.map_err(failed)?;
    let kind = if info.is_private() {
        "private"
    } else if info.is_channel() {
        "channel"
    } else if info.is_supergroup() {
        "supergroup"
    } else {
        "group"
    };
    if kind == "private" {
        return Ok(ChatCheck {
            kind,
            title: None,
            cannot_post: None,
            username: None,
        });
    }
    let user = teloxide::types::UserId(u64::try_from(bot_user_id).unwrap_or_default());
    let member = bot
        .get_chat_member(ChatId(chat_id), user)
        .await
        .map_err(failed)?;
    Ok(ChatCheck {
        kind,
        title: info.title().map(str::to_owned),
        cannot_post: posting_refusal(&member.kind, kind),
        username: info.username().map(str::to_owned),
    })
}

/// Why the bot may not post in a group or channel of type `kind`, given where it stands there
/// (`None`: it may). One rule for the periodic check and for the bot's `my_chat_member` updates.
pub fn posting_refusal(member: &teloxide::types::ChatMemberKind, kind: &str) -> Option<String> {
    use teloxide::types::ChatMemberKind;
    match (member, kind) {
        (ChatMemberKind::Left | ChatMemberKind::Banned(_), _) => {
            Some(format!("the bot is not a member of this {kind}; add it"))
        }
        (member, "channel") if !member.can_post_messages() => Some(
            "the bot is not an administrator allowed to post messages in this channel; grant it that right"
                .to_owned(),
        ),
        (ChatMemberKind::Restricted(restricted), _) if !restricted.can_send_messages => Some(
            format!("the bot may not send messages in this {kind}; lift its restriction"),
        ),
        _ => None,
    }
}

/// Telegram's type of a chat: `private`, `group`, `supergroup` or `channel`.
pub fn chat_kind(chat: &teloxide::types::Chat) -> &'static str {
    if chat.is_private() {
        "private"
    } else if chat.is_channel() {
        "channel"
    } else if chat.is_supergroup() {
        "supergroup"
    } else {
        "group"
    }
}
