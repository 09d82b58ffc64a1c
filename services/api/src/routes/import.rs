//! Connecting chats in bulk: one request, many chats of one bot, a result per row. Each row is
//! the same command as `POST .../chats` (same rules, same identity constraint); a row that fails
//! does not stop the others, and nothing is half-applied within a row.

use axum::Json;
use axum::extract::State;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::directory::{Checks, connect_one, workspace};
use crate::extract::{ApiJson, ApiPath, parse_id};
use crate::{ApiError, AppState};

/// Rows per request (a body is at most 1 MiB anyway).
pub const MAX_ROWS: usize = 10_000;
/// Rows connected at once.
const CONCURRENCY: usize = 8;

#[derive(Deserialize)]
pub struct Import {
    bot_id: String,
    chats: Vec<Row>,
}

#[derive(Deserialize)]
pub struct Row {
    telegram_chat_id: i64,
    title: String,
}

pub async fn import_chats(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Import>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let bot_id = parse_id(&body.bot_id, "bot_id")?;
    if body.chats.is_empty() || body.chats.len() > MAX_ROWS {
        return Err(ApiError::invalid(
            "invalid_import",
            format!(
                "an import holds 1 to {MAX_ROWS} chats; this one has {}: split it into several requests",
                body.chats.len()
            ),
        ));
    }
    let results: Vec<Value> = futures::stream::iter(body.chats.into_iter().enumerate())
        .map(|(index, row)| {
            let (state, ctx) = (&state, &ctx);
            async move {
                let outcome = connect_one(
                    state,
                    ws,
                    ctx,
                    bot_id,
                    row.telegram_chat_id,
                    row.title,
                    Checks::GroupsAndChannels,
                )
                .await;
                let mut result =
                    json!({"row": index + 1, "telegram_chat_id": row.telegram_chat_id});
                match outcome {
                    Ok((id, _)) => {
                        result["status"] = "connected".into();
                        result["chat_id"] = json!(id);
                    }
                    Err(error) => {
                        result["status"] = if error.code == "chat_already_connected" {
                            "already_connected".into()
                        } else {
                            "failed".into()
                        };
                        result["error"] = error.to_json();
                    }
                }
                result
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let count = |status: &str| results.iter().filter(|r| r["status"] == status).count();
    Ok(Json(json!({
        "connected": count("connected"),
        "already_connected": count("already_connected"),
        "failed": count("failed"),
        "rows": results,
    })))
}
