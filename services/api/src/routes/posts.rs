//! Planning, approving, rejecting, cancelling and reading posts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::{DeliveryStatus, Id, ParseMode, Post, PostCommand, PostState, Resolution};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::directory::workspace;
use crate::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery, parse_id};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub struct NewPost {
    chat_ids: Vec<String>,
    text: String,
    #[serde(default)]
    parse_mode: Option<String>,
    publish_at: String,
}

pub async fn plan(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewPost>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = workspace(&state, &ws).await?;
    let chat_ids = body
        .chat_ids
        .iter()
        .map(|id| parse_id(id, "chat_ids entry"))
        .collect::<Result<Vec<_>, _>>()?;
    let parse_mode = match body.parse_mode.as_deref() {
        None => None,
        Some("HTML") => Some(ParseMode::Html),
        Some("MarkdownV2") => Some(ParseMode::MarkdownV2),
        Some(other) => {
            return Err(ApiError::invalid(
                "invalid_parse_mode",
                format!(
                    "parse_mode {other:?} is not supported; use \"HTML\" or \"MarkdownV2\", or leave it out"
                ),
            ));
        }
    };
    let publish_at = DateTime::parse_from_rfc3339(&body.publish_at)
        .map_err(|_| {
            ApiError::invalid(
                "invalid_publish_at",
                format!(
                    "publish_at {:?} is not an RFC 3339 time such as 2026-12-01T09:00:00Z",
                    body.publish_at
                ),
            )
        })?
        .to_utc();
    let id = Id::now_v7();
    let command = PostCommand::Plan {
        workspace_id: ws,
        chat_ids,
        text: body.text,
        parse_mode,
        publish_at,
        now: Utc::now(),
    };
    state.store.execute::<Post>(ws, id, command, &ctx).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "state": PostState::Planned.as_str() })),
    ))
}

/// Loads a post of the workspace in the path (404 if it belongs elsewhere or does not exist).
async fn load(state: &AppState, ws: &str, id: &str) -> Result<(Id, Id, Post), ApiError> {
    let ws = workspace(state, ws).await?;
    let id = parse_id(id, "post id")?;
    let post: Post = state.store.load(id).await?;
    if post.workspace_id != Some(ws) {
        return Err(ApiError::not_found("post"));
    }
    Ok((ws, id, post))
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id, post) = load(&state, &ws, &id).await?;
    let mut body = post_json(ws, id, &post);
    // A delivery in doubt comes with its attempts, so an operator can decide how to resolve it.
    if let Some(deliveries) = body["deliveries"].as_array_mut() {
        for delivery in deliveries.iter_mut().filter(|d| d["status"] == "unknown") {
            let Some(chat_id) = delivery["chat_id"].as_str().and_then(|c| c.parse().ok()) else {
                continue;
            };
            let attempts = delivery::queue::stats::attempts_of(&state.pool, id, chat_id)
                .await
                .map_err(ApiError::internal)?;
            delivery["attempts"] = attempts
                .iter()
                .map(|a| json!({"at": a.at, "outcome": a.outcome}))
                .collect();
        }
    }
    Ok(Json(body))
}

fn delivery_json(chat_id: Id, d: &DeliveryStatus) -> Value {
    json!({
        "chat_id": chat_id,
        "status": d.status.as_str(),
        "telegram_message_id": d.telegram_message_id,
        "error": d.error,
        "auto_resends": d.auto_resends,
    })
}

/// How many deliveries of the post are in each status.
fn counts(post: &Post) -> Value {
    let mut counts = json!({"pending": 0, "delivered": 0, "failed": 0, "unknown": 0});
    for (_, d) in post.deliveries() {
        counts[d.status.as_str()] = (counts[d.status.as_str()].as_u64().unwrap_or(0) + 1).into();
    }
    counts
}

fn post_json(ws: Id, id: Id, post: &Post) -> Value {
    let deliveries: Vec<Value> = post
        .deliveries()
        .map(|(chat_id, d)| delivery_json(chat_id, d))
        .collect();
    json!({
        "id": id,
        "workspace_id": ws,
        "state": post.summary_state(),
        "text": post.text,
        "parse_mode": post.parse_mode.map(ParseMode::as_str),
        "publish_at": post.publish_at,
        "counts": counts(post),
        "deliveries": deliveries,
    })
}

const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
pub struct DeliveryPage {
    /// The `next_after` of the previous page (a position in planning order).
    after: Option<usize>,
    limit: Option<usize>,
    /// Only deliveries in this status.
    status: Option<String>,
}

/// The post's deliveries a page at a time, in planning order, optionally of one status.
pub async fn deliveries(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    ApiQuery(page): ApiQuery<DeliveryPage>,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let statuses = ["pending", "delivered", "failed", "unknown"];
    if let Some(status) = page.status.as_deref()
        && !statuses.contains(&status)
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("status {status:?} is not one of {}", statuses.join(", ")),
        ));
    }
    let (_, _, post) = load(&state, &ws, &id).await?;
    let start = page.after.unwrap_or(0);
    let mut items = Vec::with_capacity(limit);
    let mut next_after = None;
    for (position, (chat_id, d)) in post.deliveries().enumerate().skip(start) {
        if page
            .status
            .as_deref()
            .is_some_and(|s| s != d.status.as_str())
        {
            continue;
        }
        if items.len() == limit {
            next_after = Some(position);
            break;
        }
        items.push(delivery_json(chat_id, d));
    }
    Ok(Json(json!({
        "counts": counts(&post),
        "deliveries": items,
        "next_after": next_after,
    })))
}

async fn transition(
    state: AppState,
    ws: String,
    id: String,
    ctx: store::RequestContext,
    command: PostCommand,
) -> Result<Json<Value>, ApiError> {
    let (ws, id, _) = load(&state, &ws, &id).await?;
    state.store.execute::<Post>(ws, id, command, &ctx).await?;
    let post: Post = state.store.load(id).await?;
    Ok(Json(post_json(ws, id, &post)))
}

pub async fn approve(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
) -> Result<Json<Value>, ApiError> {
    transition(state, ws, id, ctx, PostCommand::Approve).await
}

#[derive(Deserialize, Default)]
pub struct Reason {
    #[serde(default)]
    reason: String,
}

pub async fn reject(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Value>, ApiError> {
    // The body is optional: an empty one means "no reason given".
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        String::new()
    } else {
        serde_json::from_slice::<Reason>(&body)
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_json",
                    format!("the body must be {{\"reason\": \"...\"}}: {e}"),
                )
            })?
            .reason
    };
    transition(state, ws, id, ctx, PostCommand::Reject { reason }).await
}

pub async fn cancel(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
) -> Result<Json<Value>, ApiError> {
    transition(state, ws, id, ctx, PostCommand::Cancel).await
}

#[derive(Deserialize)]
pub struct NewTime {
    publish_at: String,
}

fn parse_publish_at(value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.to_utc())
        .map_err(|_| {
            ApiError::invalid(
                "invalid_publish_at",
                format!(
                    "publish_at {value:?} is not an RFC 3339 time such as 2026-12-01T09:00:00Z"
                ),
            )
        })
}

/// Moves a post that is not yet delivered; wins over a send that has not started.
pub async fn reschedule(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewTime>,
) -> Result<Json<Value>, ApiError> {
    let publish_at = parse_publish_at(&body.publish_at)?;
    transition(
        state,
        ws,
        id,
        ctx,
        PostCommand::Reschedule {
            publish_at,
            now: Utc::now(),
        },
    )
    .await
}

#[derive(Deserialize)]
pub struct NewResolution {
    resolution: String,
    telegram_message_id: Option<i32>,
}

/// Settles a delivery in doubt: the operator checked the chat and says it is there
/// (`mark_delivered`) or asks to send it again (`resend`). Audited like every command.
pub async fn resolve(
    State(state): State<AppState>,
    ApiPath((ws, id, chat)): ApiPath<(String, String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewResolution>,
) -> Result<Json<Value>, ApiError> {
    let chat_id = parse_id(&chat, "chat id")?;
    let resolution = match body.resolution.as_str() {
        "mark_delivered" => Resolution::MarkDelivered {
            telegram_message_id: body.telegram_message_id,
        },
        "resend" => Resolution::Resend,
        other => {
            return Err(ApiError::invalid(
                "invalid_resolution",
                format!("resolution {other:?} is not known; use \"mark_delivered\" or \"resend\""),
            ));
        }
    };
    transition(
        state,
        ws,
        id,
        ctx,
        PostCommand::ResolveDelivery {
            chat_id,
            resolution,
        },
    )
    .await
}
