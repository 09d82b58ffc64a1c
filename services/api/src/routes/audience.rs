//! Quiet hours and frequency caps: a workspace's default rules, a segment's for its members, and
//! a chat's own.

use axum::Json;
use axum::extract::State;
use chrono::NaiveTime;
use domain::audience::{AudienceRules, OnViolation, QuietHours};
use domain::{ChatCommand, DomainError, SegmentCommand, WorkspaceCommand};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::directory::{chat_of, workspace};
use crate::extract::{ApiJson, ApiPath};
use crate::{ApiError, AppState};

/// The rules as callers write them: `{"time_zone": "Europe/Berlin", "quiet_hours": {"start":
/// "22:00", "end": "08:00"}, "max_per_day": 2, "max_per_week": 5, "on_violation": "defer"}`;
/// `null` (or `{}`) clears them.
#[derive(Debug, Deserialize)]
pub struct RulesBody {
    time_zone: Option<String>,
    quiet_hours: Option<WindowBody>,
    max_per_day: Option<u32>,
    max_per_week: Option<u32>,
    on_violation: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WindowBody {
    start: String,
    end: String,
}

fn invalid(message: String) -> ApiError {
    DomainError::InvalidAudienceRules(message).into()
}

fn local_time(value: &str, field: &str) -> Result<NaiveTime, ApiError> {
    NaiveTime::parse_from_str(value.trim(), "%H:%M").map_err(|_| {
        invalid(format!(
            "quiet_hours.{field} {value:?} is not a time such as 22:00"
        ))
    })
}

impl RulesBody {
    fn rules(self) -> Result<Option<AudienceRules>, ApiError> {
        let empty =
            self.quiet_hours.is_none() && self.max_per_day.is_none() && self.max_per_week.is_none();
        let Some(time_zone) = self.time_zone else {
            if empty {
                return Ok(None);
            }
            return Err(invalid(
                "give time_zone (an IANA name such as Europe/Berlin): quiet hours and days are local".into(),
            ));
        };
        if empty {
            return Err(invalid(
                "give quiet_hours, max_per_day or max_per_week (or send null to clear the rules)"
                    .into(),
            ));
        }
        let on_violation = match self.on_violation.as_deref().unwrap_or("defer") {
            "defer" => OnViolation::Defer,
            "skip" => OnViolation::Skip,
            other => {
                return Err(invalid(format!(
                    "on_violation {other:?} is neither \"defer\" nor \"skip\""
                )));
            }
        };
        let quiet_hours = self
            .quiet_hours
            .map(|w| {
                Ok::<_, ApiError>(QuietHours {
                    start: local_time(&w.start, "start")?,
                    end: local_time(&w.end, "end")?,
                })
            })
            .transpose()?;
        let rules = AudienceRules {
            time_zone,
            quiet_hours,
            max_per_day: self.max_per_day,
            max_per_week: self.max_per_week,
            on_violation,
        };
        rules.validate()?;
        Ok(Some(rules))
    }
}

pub fn rules_json(rules: Option<&AudienceRules>) -> Value {
    rules.map_or(Value::Null, |r| {
        json!({
            "time_zone": r.time_zone,
            "quiet_hours": r.quiet_hours.map(|q| json!({
                "start": q.start.format("%H:%M").to_string(),
                "end": q.end.format("%H:%M").to_string(),
            })),
            "max_per_day": r.max_per_day,
            "max_per_week": r.max_per_week,
            "on_violation": match r.on_violation {
                OnViolation::Defer => "defer",
                OnViolation::Skip => "skip",
            },
        })
    })
}

/// `PUT /v1/workspaces/{ws}/audience-rules`: the rules of every chat without its own.
pub async fn set_workspace_rules(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Option<RulesBody>>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let rules = body.map(RulesBody::rules).transpose()?.flatten();
    let answer = rules_json(rules.as_ref());
    state
        .store
        .execute::<domain::Workspace>(ws, ws, WorkspaceCommand::SetAudienceRules { rules }, &ctx)
        .await?;
    Ok(Json(json!({ "audience_rules": answer })))
}

/// `PUT /v1/workspaces/{ws}/segments/{id}/audience-rules`: the rules of the segment's members
/// reached through it who have none of their own.
pub async fn set_segment_rules(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Option<RulesBody>>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = super::segments::segment_of(&state, ws, &id).await?;
    let rules = body.map(RulesBody::rules).transpose()?.flatten();
    let answer = rules_json(rules.as_ref());
    state
        .store
        .execute::<domain::Segment>(ws, id, SegmentCommand::SetAudienceRules { rules }, &ctx)
        .await?;
    Ok(Json(json!({ "id": id, "audience_rules": answer })))
}

/// `PUT /v1/workspaces/{ws}/chats/{id}/audience-rules`: a chat's own rules.
pub async fn set_chat_rules(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Option<RulesBody>>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = chat_of(&state, ws, &id).await?;
    let rules = body.map(RulesBody::rules).transpose()?.flatten();
    let answer = rules_json(rules.as_ref());
    state
        .store
        .execute::<domain::Chat>(ws, id, ChatCommand::SetAudienceRules { rules }, &ctx)
        .await?;
    Ok(Json(json!({ "id": id, "audience_rules": answer })))
}
