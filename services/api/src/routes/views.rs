//! Read models: the calendar and the audit log (eventually consistent projections).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::Row;

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
    let rows = sqlx::query(
        "SELECT post_id, chat_id, publish_at, state, delivery, telegram_message_id, error, text_preview
           FROM calendar
          WHERE workspace_id = $1
            AND ($2::timestamptz IS NULL OR publish_at >= $2)
            AND ($3::timestamptz IS NULL OR publish_at < $3)
          ORDER BY publish_at, post_id, chat_id
          LIMIT $4",
    )
    .bind(ws)
    .bind(from)
    .bind(to)
    .bind(MAX_LIMIT * 10)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::internal)?;
    let entries = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "post_id": r.try_get::<uuid::Uuid, _>("post_id")?,
                "chat_id": r.try_get::<uuid::Uuid, _>("chat_id")?,
                "publish_at": r.try_get::<DateTime<Utc>, _>("publish_at")?,
                "state": r.try_get::<String, _>("state")?,
                "delivery": r.try_get::<String, _>("delivery")?,
                "telegram_message_id": r.try_get::<Option<i32>, _>("telegram_message_id")?,
                "error": r.try_get::<Option<String>, _>("error")?,
                "text_preview": r.try_get::<String, _>("text_preview")?,
            }))
        })
        .collect::<Result<Vec<Value>, sqlx::Error>>()
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "entries": entries })))
}

#[derive(Deserialize)]
pub struct Page {
    after: Option<i64>,
    limit: Option<i64>,
}

/// Audit events of the workspace in stream order, after position `after`.
pub async fn audit(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = page.after.unwrap_or(0);
    let rows = sqlx::query(
        "SELECT position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version,
                actor, correlation_id, causation_id, occurred_at, details
           FROM audit_log
          WHERE workspace_id = $1 AND position > $2
          ORDER BY position
          LIMIT $3",
    )
    .bind(ws.to_string())
    .bind(after)
    .bind(limit)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::internal)?;
    let events = rows
        .iter()
        .map(|r| {
            Ok(json!({
                "position": r.try_get::<i64, _>("position")?,
                "event_id": r.try_get::<String, _>("event_id")?,
                "aggregate_type": r.try_get::<String, _>("aggregate_type")?,
                "aggregate_id": r.try_get::<String, _>("aggregate_id")?,
                "sequence": r.try_get::<i64, _>("sequence")?,
                "event_type": r.try_get::<String, _>("event_type")?,
                "event_version": r.try_get::<String, _>("event_version")?,
                "actor": r.try_get::<String, _>("actor")?,
                "correlation_id": r.try_get::<String, _>("correlation_id")?,
                "causation_id": r.try_get::<String, _>("causation_id")?,
                "occurred_at": r.try_get::<DateTime<Utc>, _>("occurred_at")?,
                "details": r.try_get::<Value, _>("details")?,
            }))
        })
        .collect::<Result<Vec<Value>, sqlx::Error>>()
        .map_err(ApiError::internal)?;
    let next_after = events
        .last()
        .and_then(|e| e["position"].as_i64())
        .unwrap_or(after);
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}
