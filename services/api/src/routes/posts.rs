//! Planning, approving, rejecting, cancelling and reading posts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use domain::{
    Delivery, DeliveryCommand, DeliveryCounts, DeliveryState, DeliveryStatus, Id, ParseMode, Post,
    PostCommand, PostState, Resolution, SealedText, Workspace, delivery_id,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::directory::workspace;
use crate::auth::WorkspaceRole;
use crate::extract::{ApiBytes, ApiJson, ApiPath, ApiQuery, parse_id};
use crate::{ApiError, AppState};
use axum::Extension;

#[derive(Deserialize)]
pub struct NewPost {
    #[serde(default)]
    chat_ids: Vec<String>,
    /// Segments whose members are added (resolved now; see decision 0011).
    #[serde(default)]
    segment_ids: Vec<String>,
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
    let parse_mode = parse_mode(body.parse_mode.as_deref())?;
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
    let segment_ids = body
        .segment_ids
        .iter()
        .map(|id| parse_id(id, "segment_ids entry"))
        .collect::<Result<Vec<_>, _>>()?;
    let audience = super::segments::audience(&state, ws, &segment_ids).await?;
    let id = Id::now_v7();
    let sealed = sealed_text(&state, ws, id, &body.text).await?;
    let command = PostCommand::Plan {
        workspace_id: ws,
        chat_ids,
        audience,
        segments: segment_ids.clone(),
        text: body.text,
        sealed,
        parse_mode,
        publish_at,
        now: Utc::now(),
        author: ctx.actor.clone(),
    };
    let post = state.store.execute::<Post>(ws, id, command, &ctx).await?;
    let mut answer = json!({ "id": id, "state": PostState::Planned.as_str() });
    if !segment_ids.is_empty() {
        // What the segments resolved to: the chats planned and the members left out.
        answer["targets"] = post.chat_ids.len().into();
        answer["excluded"] = post.excluded.into();
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

pub(super) fn parse_mode(value: Option<&str>) -> Result<Option<ParseMode>, ApiError> {
    match value {
        None => Ok(None),
        Some("HTML") => Ok(Some(ParseMode::Html)),
        Some("MarkdownV2") => Ok(Some(ParseMode::MarkdownV2)),
        Some(other) => Err(ApiError::invalid(
            "invalid_parse_mode",
            format!(
                "parse_mode {other:?} is not supported; use \"HTML\" or \"MarkdownV2\", or leave it out"
            ),
        )),
    }
}

/// Loads a post of the workspace in the path (404 if it belongs elsewhere or does not exist).
pub(super) async fn load(state: &AppState, ws: &str, id: &str) -> Result<(Id, Id, Post), ApiError> {
    let ws = workspace(state, ws).await?;
    let id = parse_id(id, "post id")?;
    let mut post: Post = state.store.load(id).await?;
    if post.workspace_id != Some(ws) {
        return Err(ApiError::not_found("post"));
    }
    // A sealed text is read opened (or `[erased]`): everything the API does with a post's text
    // (show, render, check, edit) sees what its author wrote.
    if post.text.starts_with(store::subjects::SEALED_PREFIX) {
        let opener =
            store::subjects::Opener::for_values(&state.pool, &state.cipher, [post.text.as_str()])
                .await
                .map_err(ApiError::internal)?;
        post.text = opener.open(&post.text);
    }
    Ok((ws, id, post))
}

/// `text` as the post's events will store it: sealed under the post's own key when the
/// workspace seals post texts (decision 0013), else as it is.
async fn sealed_text(
    state: &AppState,
    ws: Id,
    post: Id,
    text: &str,
) -> Result<SealedText, ApiError> {
    let workspace: Workspace = state.store.load(ws).await?;
    if !workspace.seal_post_texts {
        return Ok(SealedText::default());
    }
    let mut conn = state.pool.acquire().await.map_err(ApiError::internal)?;
    match store::subjects::seal(&mut conn, &state.cipher, ws, post, text).await {
        Ok(sealed) => Ok(SealedText(Some(sealed))),
        Err(error) if error.to_string().contains("was erased") => Err(ApiError::new(
            StatusCode::CONFLICT,
            "post_erased",
            "this post's texts were erased; plan a new post",
        )),
        Err(error) => Err(ApiError::internal(error)),
    }
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id, post) = load(&state, &ws, &id).await?;
    Ok(Json(post_json(&state, ws, id, &post).await?))
}

/// How many of the post's deliveries are in each status. Those of the first page are read
/// from their aggregates (`first`: a post of up to a page is exact the moment an outcome is
/// acknowledged); the settled ones beyond come from the calendar's index (milliseconds behind
/// the events); every other target is pending.
async fn counts(
    state: &AppState,
    id: Id,
    post: &Post,
    first: &[DeliveryStatus],
) -> Result<DeliveryCounts, ApiError> {
    let mut counts = DeliveryCounts::default();
    for delivery in first {
        counts.add(delivery.status, 1);
    }
    counts.pending = 0;
    if post.chat_ids.len() > first.len() {
        let from = i32::try_from(first.len()).unwrap_or(i32::MAX);
        let rows = projections::calendar::counts(&state.pool, id, from)
            .await
            .map_err(ApiError::internal)?;
        for (status, n) in rows {
            let status = delivery_state(&status);
            if status != DeliveryState::Pending {
                counts.add(status, n as u64);
            }
        }
    }
    let settled = counts.delivered + counts.failed + counts.unknown;
    counts.pending = (post.chat_ids.len() as u64).saturating_sub(settled);
    Ok(counts)
}

/// The post's counts (see [`counts`]).
async fn post_counts(state: &AppState, id: Id, post: &Post) -> Result<DeliveryCounts, ApiError> {
    let first = statuses_at(state, id, post, 0..MAX_PAGE).await?;
    let first: Vec<DeliveryStatus> = first.into_iter().map(|(_, s)| s).collect();
    counts(state, id, post, &first).await
}

/// The statuses of the deliveries at `positions` of the post's planning order, read from their
/// aggregates, so an outcome or a resolution is visible the moment it is acknowledged.
async fn statuses_at(
    state: &AppState,
    id: Id,
    post: &Post,
    positions: std::ops::Range<usize>,
) -> Result<Vec<(Id, DeliveryStatus)>, ApiError> {
    let end = positions.end.min(post.chat_ids.len());
    let chats = &post.chat_ids[positions.start.min(end)..end];
    let ids: Vec<Id> = chats.iter().map(|chat| delivery_id(id, *chat)).collect();
    let mut recorded = store::load_many::<Delivery>(&state.pool, &ids).await?;
    Ok(chats
        .iter()
        .zip(&ids)
        .map(|(chat_id, delivery_id)| {
            let status = match recorded.remove(delivery_id) {
                Some(delivery) => delivery.status,
                None => post
                    .recorded_outcomes
                    .get(chat_id)
                    .cloned()
                    .unwrap_or_default(),
            };
            (*chat_id, status)
        })
        .collect())
}

async fn deliveries_json(
    state: &AppState,
    id: Id,
    statuses: &[(Id, DeliveryStatus)],
) -> Result<Vec<Value>, ApiError> {
    let pending: Vec<Id> = statuses
        .iter()
        .filter(|(_, s)| s.status == DeliveryState::Pending)
        .map(|(chat_id, _)| *chat_id)
        .collect();
    // Why pending deliveries wait (quiet hours, a cap, flood control), one read for the page.
    let holds = delivery::queue::stats::holds_of(&state.pool, &pending)
        .await
        .map_err(ApiError::internal)?;
    // A message in a public group or channel has a link anyone can open.
    let delivered: Vec<Id> = statuses
        .iter()
        .filter(|(_, s)| s.telegram_message_id.is_some())
        .map(|(chat_id, _)| *chat_id)
        .collect();
    let chats = store::load_many::<domain::Chat>(&state.pool, &delivered).await?;
    let mut items = Vec::with_capacity(statuses.len());
    for (chat_id, status) in statuses {
        let mut item = delivery_json(state, id, *chat_id, status).await?;
        if let Some((until, reason)) = holds.get(chat_id) {
            item["waiting"] = json!({ "until": until, "reason": reason });
        }
        let username = chats.get(chat_id).and_then(|c| c.username.as_deref());
        if let (Some(username), Some(message)) = (username, status.telegram_message_id) {
            item["link"] = format!("https://t.me/{username}/{message}").into();
        }
        items.push(item);
    }
    Ok(items)
}

/// One delivery; one in doubt comes with its attempts, so an operator can decide how to
/// resolve it.
async fn delivery_json(
    state: &AppState,
    post_id: Id,
    chat_id: Id,
    d: &DeliveryStatus,
) -> Result<Value, ApiError> {
    let mut body = json!({
        "chat_id": chat_id,
        "status": d.status.as_str(),
        "telegram_message_id": d.telegram_message_id,
        "error": d.error,
        "auto_resends": d.auto_resends,
    });
    if d.status == DeliveryState::Unknown {
        let attempts = delivery::queue::stats::attempts_of(&state.pool, post_id, chat_id)
            .await
            .map_err(ApiError::internal)?;
        body["attempts"] = attempts
            .iter()
            .map(|a| json!({"at": a.at, "outcome": a.outcome}))
            .collect();
    }
    Ok(body)
}

/// The post, its counts and its first page of deliveries (`next_after` leads to the rest).
async fn post_json(state: &AppState, ws: Id, id: Id, post: &Post) -> Result<Value, ApiError> {
    let first = statuses_at(state, id, post, 0..MAX_PAGE).await?;
    let statuses: Vec<DeliveryStatus> = first.iter().map(|(_, s)| s.clone()).collect();
    let counts = counts(state, id, post, &statuses).await?;
    let deliveries = deliveries_json(state, id, &first).await?;
    let next_after = (post.chat_ids.len() > MAX_PAGE).then_some(MAX_PAGE);
    // Its texts are sealed (and so erasable) when it has a key of its own.
    let texts_sealed: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM subject_keys WHERE subject_id = $1)")
            .bind(id)
            .fetch_one(&state.pool)
            .await
            .map_err(ApiError::internal)?;
    Ok(json!({
        "id": id,
        "workspace_id": ws,
        "state": post.summary_state(&counts),
        "text": post.text,
        "parse_mode": post.parse_mode.map(ParseMode::as_str),
        // As Telegram will show it (the same parser as planning and the dry-run), for readers
        // who may not run a dry-run: approvers' previews.
        "render": domain::rules::render(&post.text, post.parse_mode).ok().map(|p| json!({
            "text": p.text,
            "entities": p.entities,
            "length": p.utf16_len(),
        })),
        "publish_at": post.publish_at,
        "targets": post.chat_ids.len(),
        "segment_ids": post.segments,
        "excluded": post.excluded,
        "texts_sealed": texts_sealed,
        "texts_erased": post.texts_erased,
        "author_id": post.author,
        "last_editor_id": post.last_editor,
        "approval": approval_json(post),
        "counts": counts,
        "deliveries": deliveries,
        "next_after": next_after,
    }))
}

/// The post's stages, what each has been given, and which one waits.
fn approval_json(post: &Post) -> Value {
    let stages = post.required_stages();
    let current = (post.state == PostState::Planned)
        .then(|| post.current_stage(&stages))
        .flatten();
    let stages: Vec<Value> = stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let given: Vec<&str> = post
                .approvals
                .iter()
                .filter(|(s, _)| *s as usize == i)
                .map(|(_, by)| by.as_str())
                .collect();
            json!({
                "name": stage.name,
                "roles": stage.roles,
                "users": stage.users,
                "rule": stage.rule,
                "approved_by": given,
                "complete": post.state == PostState::Approved || stage.complete(&given),
            })
        })
        .collect();
    json!({ "stages": stages, "waiting_for": current })
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

/// The post's deliveries a page at a time, in planning order, optionally of one status (read
/// from the calendar's index, milliseconds behind the events).
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
    let (_, id, post) = load(&state, &ws, &id).await?;
    let start = page.after.unwrap_or(0).min(post.chat_ids.len());
    let (items, next_after) = match page.status.as_deref() {
        None => {
            let end = (start + limit).min(post.chat_ids.len());
            let statuses = statuses_at(&state, id, &post, start..end).await?;
            let items = deliveries_json(&state, id, &statuses).await?;
            (items, (end < post.chat_ids.len()).then_some(end))
        }
        Some(status) => {
            let from = i32::try_from(start).unwrap_or(i32::MAX);
            let rows = projections::calendar::deliveries_in(
                &state.pool,
                id,
                status,
                from,
                limit as i64 + 1,
            )
            .await
            .map_err(ApiError::internal)?;
            let next_after = rows.get(limit).map(|r| r.position as usize);
            let mut items = Vec::with_capacity(limit);
            for row in rows.iter().take(limit) {
                let status = DeliveryStatus {
                    status: delivery_state(&row.delivery),
                    telegram_message_id: row.telegram_message_id,
                    error: row.error.clone(),
                    auto_resends: row.auto_resends as u32,
                };
                items.push(delivery_json(&state, id, row.chat_id, &status).await?);
            }
            (items, next_after)
        }
    };
    Ok(Json(json!({
        "counts": post_counts(&state, id, &post).await?,
        "deliveries": items,
        "next_after": next_after,
    })))
}

fn delivery_state(name: &str) -> DeliveryState {
    match name {
        "delivered" => DeliveryState::Delivered,
        "failed" => DeliveryState::Failed,
        "unknown" => DeliveryState::Unknown,
        _ => DeliveryState::Pending,
    }
}

async fn transition(
    state: AppState,
    ws: String,
    id: String,
    ctx: store::RequestContext,
    command: PostCommand,
) -> Result<Json<Value>, ApiError> {
    let (ws, id, post) = load(&state, &ws, &id).await?;
    let acts_on_deliveries = match command {
        PostCommand::Cancel => Some("cancelled"),
        PostCommand::Reschedule { .. } => Some("rescheduled"),
        _ => None,
    };
    if let Some(action) = acts_on_deliveries {
        post.check_unsettled(&post_counts(&state, id, &post).await?, action)?;
    }
    state.store.execute::<Post>(ws, id, command, &ctx).await?;
    let post: Post = state.store.load(id).await?;
    Ok(Json(post_json(&state, ws, id, &post).await?))
}

/// One approval at the post's current stage; the post is approved when its last stage is.
pub async fn approve(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    Extension(WorkspaceRole(role)): Extension<WorkspaceRole>,
) -> Result<Json<Value>, ApiError> {
    let by = ctx.actor.clone();
    let role = role.map(|r| r.as_str().to_owned());
    // A finding of the workspace's rules that blocks prevents approval (`domain::rules`).
    let (_, _, post) = load(&state, &ws, &id).await?;
    super::rules::refuse_blocked(&state, &post).await?;
    transition(state, ws, id, ctx, PostCommand::Approve { by, role }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostEdit {
    text: Option<String>,
    /// `null` or absent with `text`: plain text.
    #[serde(default)]
    parse_mode: Option<String>,
    publish_at: Option<String>,
}

/// Edits a post's text, format or time (absent fields keep their value). Its approvals are
/// void: it waits for every stage again, and its editor may not approve it.
pub async fn edit(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<PostEdit>,
) -> Result<Json<Value>, ApiError> {
    let (_, post_id, post) = load(&state, &ws, &id).await?;
    let (text, parse_mode) = match body.text {
        Some(text) => (text, parse_mode(body.parse_mode.as_deref())?),
        None if body.parse_mode.is_some() => {
            (post.text.clone(), parse_mode(body.parse_mode.as_deref())?)
        }
        None => (post.text.clone(), post.parse_mode),
    };
    let publish_at = match body.publish_at.as_deref() {
        Some(at) => parse_publish_at(at)?,
        None => post.publish_at.unwrap_or_else(Utc::now),
    };
    // Nothing may have gone out: an edit never meets a send of the old text.
    let counts = post_counts(&state, post_id, &post).await?;
    if counts.pending != post.chat_ids.len() as u64 {
        return Err(domain::DomainError::InvalidTransition {
            state: post.summary_state(&counts),
            action: "edited",
        }
        .into());
    }
    if post.text == store::subjects::ERASED {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "post_erased",
            "this post's texts were erased; plan a new post",
        ));
    }
    let ws_id = post.workspace_id.unwrap_or_default();
    let sealed = sealed_text(&state, ws_id, post_id, &text).await?;
    let command = PostCommand::Edit {
        by: ctx.actor.clone(),
        text,
        sealed,
        parse_mode,
        publish_at,
        now: Utc::now(),
    };
    transition(state, ws, id, ctx, command).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    text: String,
}

pub async fn comment(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewComment>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (ws, id, _) = load(&state, &ws, &id).await?;
    let text = body.text.trim().to_owned();
    let sealed = sealed_text(&state, ws, id, &text).await?;
    let command = PostCommand::Comment {
        by: ctx.actor.clone(),
        text,
        sealed,
    };
    state.store.execute::<Post>(ws, id, command, &ctx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "post_id": id }))))
}

/// `POST .../posts/{id}/erase`: erases a post's sealed texts (its text, edits and comments) from
/// the whole history by destroying the post's key; the events stay, and every reading and
/// rebuild shows them as erased. Only once the post sends nothing more, and only a post planned
/// while the workspace sealed its texts.
pub async fn erase(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
) -> Result<Json<Value>, ApiError> {
    let (ws, id, post) = load(&state, &ws, &id).await?;
    let stored: Post = state.store.load(id).await?;
    if !stored.text.starts_with(store::subjects::SEALED_PREFIX) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "text_not_sealed",
            "this post was planned while the workspace kept post texts as they are: they cannot be erased from the history; seal post texts (PUT .../privacy) for posts planned from now on",
        ));
    }
    let counts = post_counts(&state, id, &post).await?;
    if post.state == PostState::Approved && counts.pending > 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "post_still_sending",
            format!(
                "{} deliveries of the post are still to go out; cancel it first, or erase it once they are done",
                counts.pending
            ),
        ));
    }
    let command = PostCommand::EraseTexts {
        by: ctx.actor.clone(),
    };
    state.store.execute::<Post>(ws, id, command, &ctx).await?;
    store::subjects::erase(&state.pool, id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "id": id, "texts_erased": true })))
}

/// Who did what to the post, when: its events in the audit (milliseconds behind the events).
pub async fn history(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    ApiQuery(page): ApiQuery<super::views::Page>,
) -> Result<Json<Value>, ApiError> {
    let (ws, id, _) = load(&state, &ws, &id).await?;
    let filter = projections::audit::Filter {
        aggregate_id: Some(id),
        ..Default::default()
    };
    super::views::audit_page(&state, ws, filter, page).await
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

pub(super) fn parse_publish_at(value: &str) -> Result<DateTime<Utc>, ApiError> {
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
    let (ws, id, post) = load(&state, &ws, &id).await?;
    if !post.chat_ids.contains(&chat_id) {
        return Err(ApiError::not_found("delivery"));
    }
    let command = DeliveryCommand::Resolve {
        post_id: id,
        chat_id,
        resolution,
        recorded_on_post: post.recorded_outcomes.get(&chat_id).cloned(),
    };
    let delivery = delivery_id(id, chat_id);
    state
        .store
        .execute::<Delivery>(ws, delivery, command, &ctx)
        .await?;
    Ok(Json(post_json(&state, ws, id, &post).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Comma-separated states: draft, planned, approved, cancelled, expired.
    state: Option<String>,
    chat: Option<String>,
    bot: Option<String>,
    /// A user id, or `me`.
    author: Option<String>,
    /// A user id, or `me`: posts they approved (since the post's last edit).
    approver: Option<String>,
    from: Option<String>,
    to: Option<String>,
    /// `me`: posts whose waiting stage admits me, that I did not write and have not approved.
    waiting_for: Option<String>,
    /// The `next_after` of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

const LIST_STATES: [&str; 5] = ["draft", "planned", "approved", "cancelled", "expired"];

/// Posts of the workspace by publish time, filtered, a page at a time (read from the post
/// list projection, milliseconds behind the events).
pub async fn list(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
    Context(ctx): Context,
    Extension(WorkspaceRole(role)): Extension<WorkspaceRole>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let bad = |message: String| ApiError::bad_request("invalid_query", message);
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(bad("limit must be between 1 and 500".into()));
    }
    let states: Vec<String> = query
        .state
        .as_deref()
        .map(|s| s.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default();
    if let Some(unknown) = states.iter().find(|s| !LIST_STATES.contains(&s.as_str())) {
        return Err(bad(format!(
            "state {unknown:?} is not one of {}",
            LIST_STATES.join(", ")
        )));
    }
    let id = |value: Option<&str>, what: &str| -> Result<Option<Id>, ApiError> {
        value
            .map(|v| {
                v.parse::<Id>()
                    .map_err(|_| bad(format!("{what} {v:?} is not a UUID")))
            })
            .transpose()
    };
    let user = |value: Option<&str>, what: &str| -> Result<Option<String>, ApiError> {
        match value {
            None => Ok(None),
            Some("me") => Ok(Some(ctx.actor.clone())),
            Some(v) => v
                .parse::<Id>()
                .map(|u| Some(u.to_string()))
                .map_err(|_| bad(format!("{what} {v:?} is neither a user id nor \"me\""))),
        }
    };
    let time = |value: Option<&str>, what: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        value
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.to_utc())
                    .map_err(|_| bad(format!("{what} {v:?} is not an RFC 3339 time")))
            })
            .transpose()
    };
    let waiting_for = match query.waiting_for.as_deref() {
        None => None,
        Some("me") => Some((ctx.actor.clone(), role.map(|r| r.as_str().to_owned()))),
        Some(other) => {
            return Err(bad(format!(
                "waiting_for {other:?} is not supported; use waiting_for=me"
            )));
        }
    };
    let filter = projections::posts::Filter {
        states,
        chat_id: id(query.chat.as_deref(), "chat")?,
        bot_id: id(query.bot.as_deref(), "bot")?,
        author_id: user(query.author.as_deref(), "author")?,
        approver_id: user(query.approver.as_deref(), "approver")?,
        from: time(query.from.as_deref(), "from")?,
        to: time(query.to.as_deref(), "to")?,
        waiting_for,
    };
    let after = query
        .after
        .as_deref()
        .map(|a| {
            projections::posts::Cursor::decode(a)
                .ok_or_else(|| bad("after is not a next_after this list gave".into()))
        })
        .transpose()?;
    let (mut posts, next) = projections::posts::list(&state.pool, ws, &filter, after, limit)
        .await
        .map_err(ApiError::internal)?;
    super::views::open_previews(&state, &mut posts).await?;
    Ok(Json(json!({
        "posts": posts,
        "next_after": next.map(|c| c.encode()),
    })))
}
