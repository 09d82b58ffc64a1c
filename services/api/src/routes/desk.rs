//! What the desk shows beside the resources themselves: live changes of a workspace, its bots,
//! the operational signals of its deliveries, and (in sandbox mode) what the emulator received
//! from its bots.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, TimeDelta, Utc};
use delivery::queue::stats::{self, Scope};
use domain::{Bot, Chat};
use futures::{Stream, StreamExt};
use schemas::Message;
use schemas::v1::EventEnvelope;
use schemas::v1::event_envelope::Event as Payload;
use serde_json::{Value, json};
use sqlx::Row;
use uuid::Uuid;

use super::directory::{chat_json, opener, workspace};
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// Rows per list of the operations view (the newest first).
const OPERATIONS_ROWS: i64 = 100;

/// `GET /v1/workspaces/{ws}/live`: server-sent events, one `change` per event committed in the
/// workspace, as the relay publishes them (type, stream, aggregate id, and the post it
/// concerns). The desk refetches what it shows; it never rebuilds state from these.
pub async fn live(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let Some(bus) = state.bus.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "live_unavailable",
            "this API runs without NATS; live updates need it (reload to see changes)",
        ));
    };
    let subject = format!("{}.events.*.{ws}.*", bus.names.prefix());
    let subscriber = bus
        .client
        .subscribe(subject)
        .await
        .map_err(ApiError::internal)?;
    let changes = subscriber.filter_map(|message| async move {
        let envelope = EventEnvelope::decode(message.payload).ok()?;
        Some(Ok(Event::default()
            .event("change")
            .json_data(change(&envelope))
            .ok()?))
    });
    Ok(Sse::new(changes).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// What the desk needs to know of an event to refetch the right things.
fn change(envelope: &EventEnvelope) -> Value {
    let post_id = match &envelope.event {
        _ if envelope.aggregate_type == "Post" => Some(envelope.aggregate_id.clone()),
        Some(Payload::PostDelivered(e)) => Some(e.post_id.clone()),
        Some(Payload::DeliveryFailed(e)) => Some(e.post_id.clone()),
        Some(Payload::DeliveryUnknown(e)) => Some(e.post_id.clone()),
        Some(Payload::DeliveryResolved(e)) => Some(e.post_id.clone()),
        _ => None,
    };
    json!({
        "type": envelope.event_type,
        "stream": envelope.aggregate_type.to_lowercase(),
        "id": envelope.aggregate_id,
        "post_id": post_id,
        "sequence": envelope.sequence,
    })
}

/// The ids of the workspace's bots (the row-level security of the identity table shows only
/// this workspace's).
async fn bot_ids(state: &AppState) -> Result<Vec<(Uuid, i64)>, ApiError> {
    sqlx::query_as("SELECT bot_id, telegram_bot_id FROM telegram_bot_identities ORDER BY bot_id")
        .fetch_all(&state.pool)
        .await
        .map_err(ApiError::internal)
}

async fn bots_of(state: &AppState, ws: Uuid) -> Result<Vec<(Uuid, Bot)>, ApiError> {
    let mut bots = Vec::new();
    for (id, _) in bot_ids(state).await? {
        let bot: Bot = state.store.load(id).await?;
        if bot.workspace_id == Some(ws) {
            bots.push((id, bot));
        }
    }
    Ok(bots)
}

/// `GET /v1/workspaces/{ws}/bots`: the workspace's bots (never their tokens).
pub async fn bots(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let bots: Vec<Value> = bots_of(&state, ws)
        .await?
        .iter()
        .map(|(id, bot)| {
            json!({
                "id": id,
                "name": bot.name,
                "telegram_bot_id": bot.telegram_bot_id,
                "paused_reason": bot.paused,
                "hourly_cap": bot.effective_hourly_cap(),
                "allow_paid_broadcast": bot.allow_paid_broadcast,
            })
        })
        .collect();
    Ok(Json(json!({ "bots": bots })))
}

/// `GET /v1/workspaces/{ws}/operations`: what needs a person's attention, each with what to do.
pub async fn operations(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let deliveries = |status: &'static str, since: Option<DateTime<Utc>>| {
        let pool = state.pool.clone();
        async move {
            let rows = sqlx::query(
                "SELECT post_id, chat_id, error, text_preview, updated_at FROM calendar
                  WHERE workspace_id = $1 AND delivery = $2 AND ($3::timestamptz IS NULL OR updated_at >= $3)
                  ORDER BY updated_at DESC LIMIT $4",
            )
            .bind(ws)
            .bind(status)
            .bind(since)
            .bind(OPERATIONS_ROWS)
            .fetch_all(&pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(json!({
                        "post_id": r.try_get::<Uuid, _>("post_id")?,
                        "chat_id": r.try_get::<Uuid, _>("chat_id")?,
                        "reason": r.try_get::<Option<String>, _>("error")?,
                        "text_preview": r.try_get::<String, _>("text_preview")?,
                        "since": r.try_get::<DateTime<Utc>, _>("updated_at")?,
                    }))
                })
                .collect::<sqlx::Result<Vec<Value>>>()
        }
    };
    let now = Utc::now();
    let mut in_doubt = deliveries("unknown", None)
        .await
        .map_err(ApiError::internal)?;
    super::views::open_previews(&state, &mut in_doubt).await?;
    let mut failed = deliveries("failed", Some(now - TimeDelta::days(7)))
        .await
        .map_err(ApiError::internal)?;
    super::views::open_previews(&state, &mut failed).await?;

    let mut paused_bots = Vec::new();
    let mut rate_limited = 0;
    let mut forbidden = 0;
    for (id, bot) in bots_of(&state, ws).await? {
        let window = stats::window(&state.pool, Scope::Bot(bot.telegram_bot_id))
            .await
            .map_err(ApiError::internal)?;
        rate_limited += window.rate_limited;
        forbidden += window.forbidden;
        if let Some(reason) = &bot.paused {
            paused_bots.push(json!({ "bot_id": id, "name": bot.name, "reason": reason }));
        }
    }

    let blocked_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT chat_id FROM chat_list WHERE workspace_id = $1 AND blocked ORDER BY chat_id LIMIT $2",
    )
    .bind(ws)
    .bind(OPERATIONS_ROWS)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::internal)?;
    let mut blocked = Vec::with_capacity(blocked_ids.len());
    for id in blocked_ids {
        blocked.push((id, state.store.load::<Chat>(id).await?));
    }
    let mut chats: Vec<&Chat> = Vec::with_capacity(blocked.len());
    for (_, chat) in &blocked {
        chats.push(chat);
    }
    let open = opener(&state, chats).await?;
    let blocked_chats: Vec<Value> = blocked
        .iter()
        .map(|(id, chat)| chat_json(*id, chat, &open))
        .collect();

    let expired = sqlx::query(
        "SELECT post_id, publish_at, text_preview FROM post_list
          WHERE workspace_id = $1 AND state = 'expired' ORDER BY publish_at DESC LIMIT $2",
    )
    .bind(ws)
    .bind(OPERATIONS_ROWS)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::internal)?;
    let mut expired_approvals = expired
        .iter()
        .map(|r| {
            Ok(json!({
                "post_id": r.try_get::<Uuid, _>("post_id")?,
                "publish_at": r.try_get::<DateTime<Utc>, _>("publish_at")?,
                "text_preview": r.try_get::<String, _>("text_preview")?,
            }))
        })
        .collect::<sqlx::Result<Vec<Value>>>()
        .map_err(ApiError::internal)?;
    super::views::open_previews(&state, &mut expired_approvals).await?;
    let waiting_approval: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM post_list WHERE workspace_id = $1 AND state = 'planned'",
    )
    .bind(ws)
    .fetch_one(&state.pool)
    .await
    .map_err(ApiError::internal)?;

    Ok(Json(json!({
        "in_doubt": in_doubt,
        "in_doubt_advice": "Telegram may or may not have shown these messages: look in the chat, then resolve each as delivered or resend (POST .../deliveries/{chat}/resolve)",
        "failed": failed,
        "failed_advice": "failures of the last 7 days; the reason says whether to fix the chat (bot removed, rights) or the text",
        "rate_limited_last_hour": rate_limited,
        "forbidden_last_hour": forbidden,
        "paused_bots": paused_bots,
        "paused_advice": "a paused bot sends nothing until an admin resumes it: check its token and the chats that refused it",
        "blocked_chats": blocked_chats,
        "blocked_advice": "Herald no longer sends to these chats: add the bot back with the right to post, then reconnect the chat",
        "expired_approvals": expired_approvals,
        "expired_advice": "these posts were not approved before their time; edit the time and ask for approval again",
        "waiting_approval": waiting_approval,
    })))
}

/// `GET /v1/workspaces/{ws}/sandbox/messages`: what the sandbox emulator received from this
/// workspace's bots, oldest first. Only in sandbox mode: a real Bot API keeps no such record.
pub async fn sandbox_messages(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    workspace(&state, &ws).await?;
    let base = sandbox_base(&state)?;
    let client = sandbox_client()?;
    let mut messages = Vec::new();
    for (_, telegram_bot_id) in bot_ids(&state).await? {
        let url = base
            .join(&format!("sandbox/messages?bot_id={telegram_bot_id}"))
            .map_err(ApiError::internal)?;
        let answer: Value = client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(ApiError::internal)?
            .json()
            .await
            .map_err(ApiError::internal)?;
        if let Some(list) = answer["messages"].as_array() {
            messages.extend(list.iter().cloned());
        }
    }
    messages.sort_by(|a, b| {
        a["received_at"]
            .as_str()
            .cmp(&b["received_at"].as_str())
            .then(a["message_id"].as_i64().cmp(&b["message_id"].as_i64()))
    });
    Ok(Json(json!({ "messages": messages })))
}

/// The sandbox's base URL, when Herald runs against it.
fn sandbox_base(state: &AppState) -> Result<&url::Url, ApiError> {
    match (state.sandbox, state.telegram_api.as_ref()) {
        (true, Some(base)) => Ok(base),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_sandbox",
            "Herald talks to a real Bot API: there is no sandbox here; look in the chats themselves",
        )),
    }
}

fn sandbox_client() -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(ApiError::internal)
}

/// `POST /v1/workspaces/{ws}/sandbox/chats`: tells the sandbox about a group or channel (its
/// type, title, whether the bot may post), as `POST /sandbox/chats` does, so that the desk can
/// connect it without a second origin. Sandbox mode only.
pub async fn sandbox_chat(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiJson(body): ApiJson<Value>,
) -> Result<StatusCode, ApiError> {
    workspace(&state, &ws).await?;
    let base = sandbox_base(&state)?;
    let url = base.join("sandbox/chats").map_err(ApiError::internal)?;
    let answer = sandbox_client()?
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(ApiError::internal)?;
    if answer.status().is_success() {
        return Ok(StatusCode::NO_CONTENT);
    }
    let value: Value = answer.json().await.unwrap_or(Value::Null);
    let message = value["error"]["message"]
        .as_str()
        .unwrap_or("the sandbox refused the chat")
        .to_owned();
    Err(ApiError::invalid("invalid_sandbox_chat", message))
}
