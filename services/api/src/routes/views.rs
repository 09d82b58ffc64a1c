//! Read models: the calendar and the audit log (eventually consistent projections).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::directory::workspace;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};

const MAX_LIMIT: i64 = 1000;

#[derive(Deserialize)]
pub struct Range {
    from: Option<String>,
    to: Option<String>,
}

fn parse_time(value: Option<&str>, field: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.to_utc())
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!(
                            "{field} {v:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z"
                        ),
                    )
                })
        })
        .transpose()
}

/// Calendar entries (one per post and chat) with publish time in `[from, to)`, by time.
pub async fn calendar(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(range): ApiQuery<Range>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let from = parse_time(range.from.as_deref(), "from")?;
    let to = parse_time(range.to.as_deref(), "to")?;
    let mut entries = projections::calendar::entries(&state.pool, ws, from, to, MAX_LIMIT * 10)
        .await
        .map_err(ApiError::internal)?;
    open_previews(&state, &mut entries).await?;
    Ok(Json(json!({ "entries": entries })))
}

/// Opens the sealed texts among `rows` (post previews of a workspace that seals its texts, kept
/// whole by the projections) and cuts each `text_preview` to its usual length.
pub(super) async fn open_previews(state: &AppState, rows: &mut [Value]) -> Result<(), ApiError> {
    let mut sealed = Vec::new();
    rows.iter()
        .for_each(|row| store::subjects::sealed_strings(row, &mut sealed));
    if sealed.is_empty() {
        return Ok(());
    }
    let opener = store::subjects::Opener::for_values(
        &state.pool,
        &state.cipher,
        sealed.iter().map(String::as_str),
    )
    .await
    .map_err(ApiError::internal)?;
    for row in rows.iter_mut() {
        opener.open_json(row);
        if let Some(Value::String(preview)) = row.get_mut("text_preview") {
            *preview = preview.chars().take(projections::PREVIEW_CHARS).collect();
        }
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct Page {
    after: Option<i64>,
    limit: Option<i64>,
}

/// The audit explorer's filters (`GET .../audit?actor=&post_id=&chat_id=&from=&to=`).
#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<i64>,
    limit: Option<i64>,
    actor: Option<String>,
    post_id: Option<String>,
    chat_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn parse_uuid(value: Option<&str>, field: &str) -> Result<Option<uuid::Uuid>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::bad_request("invalid_query", format!("{field} {v:?} is not a UUID"))
            })
        })
        .transpose()
}

/// Audit events of the workspace in stream order, after position `after`, narrowed by who did
/// them, which post or chat they concern and when.
pub async fn audit(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let filter = projections::audit::Filter {
        aggregate_id: None,
        actor: query.actor.filter(|a| !a.is_empty()),
        post_id: parse_uuid(query.post_id.as_deref(), "post_id")?,
        chat_id: parse_uuid(query.chat_id.as_deref(), "chat_id")?,
        from: parse_time(query.from.as_deref().filter(|v| !v.is_empty()), "from")?,
        to: parse_time(query.to.as_deref().filter(|v| !v.is_empty()), "to")?,
    };
    let page = Page {
        after: query.after,
        limit: query.limit,
    };
    audit_page(&state, ws, filter, page).await
}

/// A page of the workspace's audit, narrowed by `filter`.
pub async fn audit_page(
    state: &AppState,
    ws: domain::Id,
    filter: projections::audit::Filter,
    page: Page,
) -> Result<Json<Value>, ApiError> {
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = page.after.unwrap_or(0);
    let mut events = projections::audit::events(&state.pool, ws, &filter, after, limit)
        .await
        .map_err(ApiError::internal)?;
    // Personal data is sealed in the events (and so in the audit); shown opened, or erased.
    let mut sealed = Vec::new();
    events
        .iter()
        .for_each(|e| store::subjects::sealed_strings(e, &mut sealed));
    let opener = store::subjects::Opener::for_values(
        &state.pool,
        &state.cipher,
        sealed.iter().map(String::as_str),
    )
    .await
    .map_err(ApiError::internal)?;
    events.iter_mut().for_each(|e| opener.open_json(e));
    let next_after = events
        .last()
        .and_then(|e| e["position"].as_i64())
        .unwrap_or(after);
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}
