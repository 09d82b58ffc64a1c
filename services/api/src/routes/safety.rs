//! Safety stats per bot and per chat: what was sent in the last hour, the caps in force, whether
//! more may be sent now and when, recent 429/403 answers, and the circuit breaker. Computed from
//! delivery's attempt log (through `delivery::queue::stats`) and the aggregates, so they hold
//! across delivery workers.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, TimeDelta, Utc};
use delivery::queue::stats::{self, Scope, Window};
use domain::{Bot, Chat, limits};
use serde_json::{Value, json};
use uuid::Uuid;

use super::directory::{chat_of, workspace};
use crate::extract::{ApiPath, parse_id};
use crate::{ApiError, AppState};

/// Share of an hourly cap at which stats carry a warning.
const WARN_AT: f64 = 0.8;

async fn window(state: &AppState, scope: Scope) -> Result<Window, ApiError> {
    stats::window(&state.pool, scope)
        .await
        .map_err(ApiError::internal)
}

fn warning(sent: i64, cap: u32) -> Option<String> {
    (sent as f64 >= WARN_AT * cap as f64).then(|| format!("{sent} of the hourly cap of {cap} used"))
}

pub async fn bot(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let id = parse_id(&id, "bot id")?;
    let bot: Bot = state.store.load(id).await?;
    if bot.workspace_id != Some(ws) {
        return Err(ApiError::not_found("bot"));
    }
    let w = window(&state, Scope::Bot(bot.telegram_bot_id)).await?;
    let now = Utc::now();
    let cap = bot.effective_hourly_cap();
    let telegram = limits::TELEGRAM;
    let per_second = i64::from(if bot.allow_paid_broadcast {
        telegram.per_paid_bot.max
    } else {
        telegram.per_bot.max
    });
    let next_free = if bot.paused.is_some() {
        None
    } else if w.sent_last_hour >= cap as i64 {
        w.oldest_in_hour.map(|t| t + TimeDelta::hours(1))
    } else if w.sent_last_second >= per_second {
        Some(now + TimeDelta::seconds(1))
    } else {
        Some(now)
    };
    Ok(Json(json!({
        "bot_id": id,
        "sent_last_hour": w.sent_last_hour,
        "hourly_cap": cap,
        "hourly_cap_is_default": bot.hourly_cap.is_none(),
        "telegram_limit_per_second": per_second,
        "allow_paid_broadcast": bot.allow_paid_broadcast,
        "can_send_now": next_free.is_some_and(|t| t <= now),
        "next_free_slot": next_free,
        "rate_limited_last_hour": w.rate_limited,
        "forbidden_last_hour": w.forbidden,
        "circuit_breaker": if bot.paused.is_some() { "open" } else { "closed" },
        "paused_reason": bot.paused,
        "warning": warning(w.sent_last_hour, cap),
    })))
}

pub async fn chat(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, chat): (Uuid, Chat) = chat_of(&state, ws, &id).await?;
    let bot: Bot = match chat.bot_id {
        Some(bot_id) => state.store.load(bot_id).await?,
        None => Bot::default(),
    };
    let w = window(&state, Scope::Chat(id)).await?;
    let now = Utc::now();
    let cap = chat.effective_hourly_cap();
    let group = chat.telegram_chat_id < 0;
    let reachable = !chat.opted_out && chat.blocked.is_none() && bot.paused.is_none();
    let mut next_free = reachable.then_some(now);
    let mut later = |t: Option<DateTime<Utc>>| {
        if let (Some(slot), Some(t)) = (next_free.as_mut(), t) {
            *slot = (*slot).max(t);
        }
    };
    let telegram = limits::TELEGRAM;
    later(
        w.last_sent
            .map(|t| t + TimeDelta::seconds(telegram.per_chat.per_secs as i64)),
    );
    if group && w.sent_last_minute >= i64::from(telegram.per_group.max) {
        later(
            w.oldest_in_minute
                .map(|t| t + TimeDelta::seconds(telegram.per_group.per_secs as i64)),
        );
    }
    if w.sent_last_hour >= cap as i64 {
        later(w.oldest_in_hour.map(|t| t + TimeDelta::hours(1)));
    }
    let state_word = if chat.opted_out {
        "opted_out"
    } else if chat.blocked.is_some() {
        "blocked"
    } else if bot.paused.is_some() {
        "bot_paused"
    } else {
        "reachable"
    };
    Ok(Json(json!({
        "chat_id": id,
        "telegram_chat_id": chat.telegram_chat_id,
        "kind": if group { "group_or_channel" } else { "private" },
        "sent_last_hour": w.sent_last_hour,
        "sent_last_minute": w.sent_last_minute,
        "hourly_cap": cap,
        "hourly_cap_is_default": chat.hourly_cap.is_none(),
        "telegram_limit": if group {
            format!("{} per minute, {} per second", telegram.per_group.max, telegram.per_chat.max)
        } else {
            format!("{} per second", telegram.per_chat.max)
        },
        "telegram_hourly_max": limits::telegram_chat_hourly_max(chat.telegram_chat_id),
        "can_send_now": next_free.is_some_and(|t| t <= now),
        "next_free_slot": next_free,
        "rate_limited_last_hour": w.rate_limited,
        "forbidden_last_hour": w.forbidden,
        "state": state_word,
        "blocked_reason": chat.blocked,
        "circuit_breaker": if bot.paused.is_some() { "open" } else { "closed" },
        "warning": warning(w.sent_last_hour, cap),
    })))
}
