//! Workspaces, bots and chats.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::{
    Bot, BotCommand, Chat, ChatCommand, Id, Workspace, WorkspaceCommand, parse_bot_token,
};
use platform::Secret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use crate::extract::{ApiJson, parse_id};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub struct NewWorkspace {
    name: String,
}

pub async fn create_workspace(
    State(state): State<AppState>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewWorkspace>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = Id::now_v7();
    state
        .store
        .execute::<Workspace>(id, id, WorkspaceCommand::Create { name: body.name }, &ctx)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

pub async fn get_workspace(
    State(state): State<AppState>,
    Path(ws): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = parse_id(&ws, "workspace id")?;
    let workspace: Workspace = state.store.load(ws).await?;
    let name = workspace
        .name
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(json!({ "id": ws, "name": name })))
}

/// Resolves the workspace in the path, which must exist.
pub async fn workspace(state: &AppState, ws: &str) -> Result<Id, ApiError> {
    let id = parse_id(ws, "workspace id")?;
    let workspace: Workspace = state.store.load(id).await?;
    if !workspace.exists() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "workspace_not_found",
            format!("workspace {id} does not exist"),
        ));
    }
    Ok(id)
}

#[derive(Deserialize)]
pub struct NewBot {
    name: String,
    token: Secret<String>,
}

pub async fn register_bot(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewBot>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = workspace(&state, &ws).await?;
    let telegram_bot_id = parse_bot_token(body.token.expose().trim())?;
    let encrypted_token = state
        .cipher
        .encrypt(&Secret::new(body.token.expose().trim().to_owned()));
    let id = Id::now_v7();
    let command = BotCommand::Register {
        workspace_id: ws,
        name: body.name,
        telegram_bot_id,
        encrypted_token,
    };
    state.store.execute::<Bot>(ws, id, command, &ctx).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "telegram_bot_id": telegram_bot_id })),
    ))
}

#[derive(Deserialize)]
pub struct NewChat {
    bot_id: String,
    telegram_chat_id: i64,
    title: String,
}

pub async fn connect_chat(
    State(state): State<AppState>,
    Path(ws): Path<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewChat>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = workspace(&state, &ws).await?;
    let bot_id = parse_id(&body.bot_id, "bot_id")?;
    let id = Id::now_v7();
    let command = ChatCommand::Connect {
        workspace_id: ws,
        bot_id,
        telegram_chat_id: body.telegram_chat_id,
        title: body.title,
    };
    state.store.execute::<Chat>(ws, id, command, &ctx).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

#[derive(Deserialize)]
pub struct OptOut {
    #[serde(default)]
    reason: String,
}

pub async fn opt_out(
    State(state): State<AppState>,
    Path((ws, id)): Path<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<OptOut>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let id = parse_id(&id, "chat id")?;
    let chat: Chat = state.store.load(id).await?;
    if chat.workspace_id != Some(ws) {
        return Err(ApiError::not_found("chat"));
    }
    state
        .store
        .execute::<Chat>(
            ws,
            id,
            ChatCommand::OptOut {
                reason: body.reason,
            },
            &ctx,
        )
        .await?;
    Ok(Json(json!({ "id": id, "opted_out": true })))
}
