//! Segments: named audiences (a list of chats, a rule over tags, or both), and their
//! resolution into a post's audience at planning (decision 0011).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::{DomainError, Id, Segment, SegmentCommand, SegmentRule};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::directory::workspace;
use crate::extract::{ApiJson, ApiPath, parse_id};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub struct SegmentBody {
    name: String,
    #[serde(default)]
    tags_all: Vec<String>,
    #[serde(default)]
    tags_any: Vec<String>,
    #[serde(default)]
    chat_ids: Vec<String>,
}

impl SegmentBody {
    fn rule(&self) -> Result<SegmentRule, ApiError> {
        Ok(SegmentRule {
            tags_all: self.tags_all.clone(),
            tags_any: self.tags_any.clone(),
            chat_ids: self
                .chat_ids
                .iter()
                .map(|id| parse_id(id, "chat_ids entry"))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Loads a segment of the workspace (404 otherwise, also once deleted).
pub(super) async fn segment_of(
    state: &AppState,
    ws: Id,
    id: &str,
) -> Result<(Id, Segment), ApiError> {
    let id = parse_id(id, "segment id")?;
    let segment: Segment = state.store.load(id).await?;
    if segment.workspace_id != Some(ws) || segment.deleted {
        return Err(ApiError::not_found("segment"));
    }
    Ok((id, segment))
}

/// The segment with how many chats it selects now and how many of those cannot be sent to.
async fn segment_json(
    state: &AppState,
    ws: Id,
    id: Id,
    segment: &Segment,
) -> Result<Value, ApiError> {
    let (members, unreachable) = projections::chats::member_counts(&state.pool, ws, &segment.rule)
        .await
        .map_err(ApiError::internal)?;
    Ok(json!({
        "id": id,
        "name": segment.name,
        "tags_all": segment.rule.tags_all,
        "tags_any": segment.rule.tags_any,
        "chat_ids": segment.rule.chat_ids,
        "members": members,
        "reachable": members - unreachable,
        "audience_rules": super::audience::rules_json(segment.audience_rules.as_ref()),
    }))
}

pub async fn define(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<SegmentBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = workspace(&state, &ws).await?;
    let id = Id::now_v7();
    let command = SegmentCommand::Define {
        workspace_id: ws,
        name: body.name.clone(),
        rule: body.rule()?,
    };
    state
        .store
        .execute::<Segment>(ws, id, command, &ctx)
        .await?;
    let segment: Segment = state.store.load(id).await?;
    Ok((
        StatusCode::CREATED,
        Json(segment_json(&state, ws, id, &segment).await?),
    ))
}

pub async fn change(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<SegmentBody>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = segment_of(&state, ws, &id).await?;
    let command = SegmentCommand::Change {
        name: body.name.clone(),
        rule: body.rule()?,
    };
    state
        .store
        .execute::<Segment>(ws, id, command, &ctx)
        .await?;
    let segment: Segment = state.store.load(id).await?;
    Ok(Json(segment_json(&state, ws, id, &segment).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
) -> Result<StatusCode, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = segment_of(&state, ws, &id).await?;
    state
        .store
        .execute::<Segment>(ws, id, SegmentCommand::Delete, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, segment) = segment_of(&state, ws, &id).await?;
    Ok(Json(segment_json(&state, ws, id, &segment).await?))
}

/// The workspace's segments, oldest first (a workspace has tens, not thousands).
pub async fn list(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM events
          WHERE aggregate_type = 'Segment' AND sequence = 1 AND metadata ->> 'workspace_id' = $1
          ORDER BY aggregate_id",
    )
    .bind(ws.to_string())
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::internal)?;
    let ids: Vec<Id> = ids.iter().filter_map(|id| id.parse().ok()).collect();
    let segments = store::load_many::<Segment>(&state.pool, &ids).await?;
    let mut items = Vec::new();
    for id in ids {
        if let Some(segment) = segments.get(&id).filter(|s| s.exists()) {
            items.push(segment_json(&state, ws, id, segment).await?);
        }
    }
    Ok(Json(json!({ "segments": items })))
}

/// The chats `segment_ids` select now (from the chat list); planning checks each against its
/// own events and leaves out, and counts, whoever cannot be sent to.
pub async fn audience(state: &AppState, ws: Id, segment_ids: &[Id]) -> Result<Vec<Id>, ApiError> {
    let mut audience = Vec::new();
    for id in segment_ids {
        let segment: Segment = state.store.load(*id).await?;
        if segment.workspace_id != Some(ws) || segment.deleted {
            return Err(DomainError::InvalidSegment(format!(
                "segment {id} is not a segment of this workspace; list them with GET /v1/workspaces/{{ws}}/segments"
            ))
            .into());
        }
        audience.extend(
            projections::chats::members(&state.pool, ws, &segment.rule)
                .await
                .map_err(ApiError::internal)?,
        );
    }
    Ok(audience)
}
