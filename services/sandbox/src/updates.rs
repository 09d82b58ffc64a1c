//! Updates: what people and chats do to a bot, queued per bot and handed out by `getUpdates`
//! as Telegram does (ids increasing per bot, `offset` confirms everything before it, long
//! polls wake when an update arrives). Tests and humans inject them with
//! `POST /sandbox/updates`: a message (`/start`, `/stop`, any text) from a person, or a change
//! of the bot's standing in a chat (`my_chat_member`: blocked, kicked, made administrator),
//! which the sandbox also applies to the chat, so later sends meet the new standing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::Sandbox;
use crate::objects::{self, BotStatus, ChatSetup, ChatType};
use crate::params::Params;
use crate::reply::{ApiError, ApiResult};

/// Telegram's cap on the long-polling timeout of `getUpdates`.
const MAX_POLL_SECS: u64 = 50;
/// Telegram's cap on updates per `getUpdates` answer.
const MAX_LIMIT: usize = 100;
/// The first update id of a bot (Telegram starts somewhere positive, then counts up by one).
const FIRST_UPDATE_ID: i64 = 100_001;

/// Every bot's pending updates.
#[derive(Default)]
pub(crate) struct Updates {
    pub(crate) queues: Mutex<HashMap<i64, Queue>>,
    pub(crate) arrived: Notify,
    /// Ids of the messages people send (the bots' own messages are counted in `State`).
    incoming_messages: AtomicI64,
}

#[derive(Default)]
pub(crate) struct Queue {
    next_id: i64,
    pub(crate) pending: VecDeque<Value>,
    /// Where updates are pushed instead of waiting for `getUpdates` (`setWebhook`).
    pub(crate) webhook: Option<crate::webhooks::Webhook>,
    /// A pusher task is running for this bot.
    pub(crate) pushing: bool,
}

impl Updates {
    /// Queues `update` (without its id) for `bot_id`; returns the id it got.
    pub(crate) fn push(&self, bot_id: i64, mut update: Value) -> i64 {
        let id = {
            let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
            let queue = queues.entry(bot_id).or_default();
            let id = queue.next_id.max(FIRST_UPDATE_ID);
            queue.next_id = id + 1;
            update["update_id"] = id.into();
            queue.pending.push_back(update);
            id
        };
        self.arrived.notify_waiters();
        id
    }

    /// Drops the updates before `offset` (confirmed), then returns up to `limit` of the rest.
    fn take(&self, bot_id: i64, offset: Option<i64>, limit: usize) -> Vec<Value> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(queue) = queues.get_mut(&bot_id) else {
            return Vec::new();
        };
        if let Some(offset) = offset {
            while queue
                .pending
                .front()
                .is_some_and(|u| u["update_id"].as_i64().unwrap_or(0) < offset)
            {
                queue.pending.pop_front();
            }
        }
        queue.pending.iter().take(limit).cloned().collect()
    }

    fn webhook_set(&self, bot_id: i64) -> bool {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.get(&bot_id).is_some_and(|q| q.webhook.is_some())
    }

    /// Updates not yet confirmed by the bot.
    pub(crate) fn pending(&self, bot_id: i64) -> usize {
        let queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        queues.get(&bot_id).map_or(0, |q| q.pending.len())
    }
}

/// `getUpdates`: the updates at or after `offset`, waiting up to `timeout` seconds for one.
pub(crate) async fn get_updates(sandbox: &Sandbox, bot_id: i64, params: &Params) -> ApiResult {
    let timeout = params
        .integer("timeout")
        .and_then(|secs| u64::try_from(secs).ok())
        .unwrap_or(0)
        .min(MAX_POLL_SECS);
    let offset = params.integer("offset");
    let limit = params
        .integer("limit")
        .and_then(|l| usize::try_from(l).ok())
        .filter(|l| *l > 0)
        .unwrap_or(MAX_LIMIT)
        .min(MAX_LIMIT);
    let updates = &sandbox.shared.updates;
    if updates.webhook_set(bot_id) {
        return Err(ApiError::conflict(
            "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let mut stopping = sandbox.shared.stopping.subscribe();
    loop {
        // Registered before looking, so an update pushed in between still wakes this poll.
        let arrived = updates.arrived.notified();
        let found = updates.take(bot_id, offset, limit);
        if !found.is_empty() || tokio::time::Instant::now() >= deadline || *stopping.borrow() {
            return Ok(Value::Array(found));
        }
        tokio::select! {
            () = arrived => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = stopping.wait_for(|stopping| *stopping) => {}
        }
    }
}

pub(crate) fn routes() -> Router<Sandbox> {
    Router::new().route("/sandbox/updates", post(inject))
}

/// `POST /sandbox/updates`: one of
/// * `{"bot_id", "message": {"chat_id", "text", "first_name"?, "username"?}}`: a person
///   writes to the bot in their private chat;
/// * `{"bot_id", "my_chat_member": {"chat_id", "status", "can_post_messages"?, "type"?}}`: the
///   bot's standing in a chat changed (`kicked` in a private chat: the person blocked the bot;
///   `member` again: unblocked; `left`, `kicked`, `member`, `administrator` in groups and
///   channels);
/// * `{"bot_id", "update": {...}}`: any update as Telegram would send it, without `update_id`.
///
/// Answers `{"update_id": n}`.
#[derive(Deserialize)]
struct Injection {
    bot_id: i64,
    message: Option<NewMessage>,
    my_chat_member: Option<MemberChange>,
    update: Option<Value>,
}

#[derive(Deserialize)]
struct NewMessage {
    chat_id: i64,
    text: String,
    first_name: Option<String>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct MemberChange {
    chat_id: i64,
    status: BotStatus,
    can_post_messages: Option<bool>,
    #[serde(rename = "type")]
    chat_type: Option<ChatType>,
}

fn invalid(message: impl std::fmt::Display) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": { "code": "invalid_update", "message": message.to_string() } })),
    )
        .into_response()
}

async fn inject(State(sandbox): State<Sandbox>, body: axum::body::Bytes) -> Response {
    let injection: Injection = match serde_json::from_slice(&body) {
        Ok(injection) => injection,
        Err(error) => return invalid(error),
    };
    let now = chrono::Utc::now().timestamp();
    let update = match (
        injection.message,
        injection.my_chat_member,
        injection.update,
    ) {
        (Some(message), None, None) => {
            if message.chat_id <= 0 {
                return invalid(
                    "a message comes from a person: chat_id must be a user's id (positive)",
                );
            }
            message_update(&sandbox, message, now)
        }
        (None, Some(change), None) => member_update(&sandbox, injection.bot_id, change, now),
        (None, None, Some(update)) if update.is_object() => update,
        _ => return invalid("give exactly one of message, my_chat_member or update (an object)"),
    };
    let update_id = sandbox.shared.updates.push(injection.bot_id, update);
    (StatusCode::OK, Json(json!({ "update_id": update_id }))).into_response()
}

fn person(user_id: i64, first_name: Option<&str>, username: Option<&str>) -> Value {
    let mut user = json!({
        "id": user_id,
        "is_bot": false,
        "first_name": first_name.unwrap_or("Sandbox user"),
    });
    if let Some(username) = username {
        user["username"] = username.into();
    }
    user
}

fn message_update(sandbox: &Sandbox, message: NewMessage, now: i64) -> Value {
    let from = person(
        message.chat_id,
        message.first_name.as_deref(),
        message.username.as_deref(),
    );
    let mut chat = objects::chat(message.chat_id, ChatType::Private, None);
    chat["first_name"] = from["first_name"].clone();
    let mut text = json!({
        "message_id": sandbox.shared.updates.incoming_messages.fetch_add(1, Ordering::Relaxed) + 1,
        "from": from,
        "chat": chat,
        "date": now,
        "text": message.text,
    });
    // Telegram marks a leading command (`/start payload`) as a bot_command entity.
    if message.text.starts_with('/') {
        let command = message.text.split_whitespace().next().unwrap_or("");
        let length: usize = command.chars().map(char::len_utf16).sum();
        text["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": length }]);
    }
    json!({ "message": text })
}

fn member_update(sandbox: &Sandbox, bot_id: i64, change: MemberChange, now: i64) -> Value {
    let chat_type = change
        .chat_type
        .unwrap_or_else(|| sandbox.state().chat_type(change.chat_id));
    let old = {
        let state = sandbox.state();
        let setup = state.chat_setup(change.chat_id);
        (
            setup.bot_status(chat_type),
            setup.can_post_messages(chat_type),
        )
    };
    sandbox.set_chat(
        change.chat_id,
        ChatSetup {
            chat_type: change.chat_type,
            bot_status: Some(change.status),
            can_post_messages: change.can_post_messages,
            ..ChatSetup::default()
        },
    );
    let can_post = change.can_post_messages.unwrap_or(true);
    // In a private chat the person is who changed it; elsewhere an administrator did.
    let actor = if chat_type == ChatType::Private {
        change.chat_id
    } else {
        1
    };
    let title = sandbox.state().chat_setup(change.chat_id).title;
    json!({
        "my_chat_member": {
            "chat": objects::chat(change.chat_id, chat_type, title.as_deref()),
            "from": person(actor, None, None),
            "date": now,
            "old_chat_member": objects::bot_member(bot_id, old.0, old.1),
            "new_chat_member": objects::bot_member(bot_id, change.status, can_post),
        }
    })
}
