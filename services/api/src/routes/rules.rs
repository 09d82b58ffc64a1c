//! A workspace's rules for posts, and the dry-run: the message as Telegram will show it, the
//! findings of `domain::rules` (which owns every rule; this module only gathers the facts),
//! a rate forecast, and an optional test send to the sandbox. A dry-run writes nothing.

use std::collections::{HashMap, HashSet};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use domain::audience::{self, Sent};
use domain::forecast::{self, Forecast, Message};
use domain::rules::{self, Finding, RuleSet, Stage, Target};
use domain::{Bot, Chat, Id, ParseMode, Post, PostState, Segment, Workspace, WorkspaceCommand};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::directory::workspace;
use crate::extract::{ApiJson, ApiPath, ApiQuery, parse_id};
use crate::{ApiError, AppState};

/// How far back still-pending deliveries of other posts are counted in a forecast.
const LOOKBACK: TimeDelta = TimeDelta::hours(1);
/// How far past this post's own last message other posts are looked for (they may be
/// delayed by it).
const LOOKAHEAD: TimeDelta = TimeDelta::minutes(10);
/// At most this many other deliveries enter a forecast.
const MAX_OTHERS: i64 = 100_000;

/// `GET /v1/workspaces/{ws}/rules`.
pub async fn get_rules(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let workspace: Workspace = state.store.load(ws).await?;
    Ok(Json(json!({ "rules": workspace.rules })))
}

/// `PUT /v1/workspaces/{ws}/rules`: replaces the rule set (`{}`: no rules).
pub async fn set_rules(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(rules): ApiJson<RuleSet>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    state
        .store
        .execute::<Workspace>(ws, ws, WorkspaceCommand::SetRules { rules }, &ctx)
        .await?;
    let workspace: Workspace = state.store.load(ws).await?;
    Ok(Json(json!({ "rules": workspace.rules })))
}

#[derive(Deserialize)]
pub struct DryRunBody {
    #[serde(default)]
    chat_ids: Vec<String>,
    /// Segments whose members would be added, resolved as planning resolves them.
    #[serde(default)]
    segment_ids: Vec<String>,
    text: String,
    #[serde(default)]
    parse_mode: Option<String>,
    /// Absent: now.
    #[serde(default)]
    publish_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunQuery {
    /// A Telegram chat id to send the rendered message to, in the sandbox only.
    test_send: Option<i64>,
}

/// What a dry-run looks at.
struct Subject {
    post_id: Option<Id>,
    chat_ids: Vec<Id>,
    /// Members of the segments named (a new post only): planning sends to those it may reach
    /// and leaves the others out, so they are no finding, only a count.
    members: Vec<Id>,
    /// The segments named: their quiet hours and caps apply to their members.
    segments: Vec<Id>,
    text: String,
    parse_mode: Option<ParseMode>,
    publish_at: DateTime<Utc>,
    stage: Stage,
}

/// `POST /v1/workspaces/{ws}/posts/dry-run`: a post as it would be planned.
pub async fn dry_run_new(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(query): ApiQuery<DryRunQuery>,
    ApiJson(body): ApiJson<DryRunBody>,
) -> Result<Json<Value>, ApiError> {
    refuse_unless_sandbox(&state, query.test_send)?;
    let ws = workspace(&state, &ws).await?;
    let mut chat_ids = Vec::with_capacity(body.chat_ids.len());
    for id in &body.chat_ids {
        let id = parse_id(id, "chat_ids entry")?;
        if !chat_ids.contains(&id) {
            chat_ids.push(id);
        }
    }
    if chat_ids.len() > domain::MAX_CHATS_PER_POST {
        return Err(ApiError::invalid(
            "too_many_chats",
            format!(
                "a post goes to at most {} chats",
                domain::MAX_CHATS_PER_POST
            ),
        ));
    }
    let publish_at = match body.publish_at.as_deref() {
        Some(at) => super::posts::parse_publish_at(at)?,
        None => Utc::now(),
    };
    let segment_ids = body
        .segment_ids
        .iter()
        .map(|id| parse_id(id, "segment_ids entry"))
        .collect::<Result<Vec<_>, _>>()?;
    let members = super::segments::audience(&state, ws, &segment_ids).await?;
    let subject = Subject {
        post_id: None,
        chat_ids,
        members,
        segments: segment_ids,
        text: body.text,
        parse_mode: super::posts::parse_mode(body.parse_mode.as_deref())?,
        publish_at,
        stage: Stage::Draft,
    };
    dry_run(&state, ws, &subject, query.test_send).await
}

/// `POST /v1/workspaces/{ws}/posts/{id}/dry-run`: a post as it stands.
pub async fn dry_run_post(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<DryRunQuery>,
) -> Result<Json<Value>, ApiError> {
    refuse_unless_sandbox(&state, query.test_send)?;
    let (ws, id, post) = super::posts::load(&state, &ws, &id).await?;
    let subject = Subject {
        post_id: Some(id),
        chat_ids: post.chat_ids.clone(),
        members: Vec::new(),
        segments: post.segments.clone(),
        text: post.text.clone(),
        parse_mode: post.parse_mode,
        publish_at: post.publish_at.unwrap_or_else(Utc::now),
        stage: Stage::Planned,
    };
    dry_run(&state, ws, &subject, query.test_send).await
}

fn refuse_unless_sandbox(state: &AppState, test_send: Option<i64>) -> Result<(), ApiError> {
    if test_send.is_some() && !(state.sandbox && state.telegram_api.is_some()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_sandbox",
            "Herald talks to a real Bot API: a test send would reach a real chat; plan the post to a test chat instead",
        ));
    }
    Ok(())
}

/// Refuses the approval of a post whose text breaks a rule that blocks (409
/// `blocked_by_rules`, with the findings). Only the text's rules can block a planned post:
/// its targets were sendable at planning (the gate skips those that changed since), and
/// quiet hours, caps and collisions only delay or warn.
pub async fn refuse_blocked(state: &AppState, post: &Post) -> Result<(), ApiError> {
    let Some(ws) = post.workspace_id else {
        return Ok(());
    };
    if post.state != PostState::Planned {
        return Ok(());
    }
    let workspace: Workspace = state.store.load(ws).await?;
    let findings = rules::evaluate(&rules::Assessment {
        text: &rules::render(&post.text, post.parse_mode),
        rules: &workspace.rules,
        stage: Stage::Planned,
        targets: &[],
        forecast: None,
    });
    if !rules::blocks(&findings) {
        return Ok(());
    }
    let blocking: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity == rules::Severity::Block)
        .collect();
    let reasons: Vec<&str> = blocking.iter().map(|f| f.reason.as_str()).collect();
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "blocked_by_rules",
        format!(
            "the post breaks the workspace's rules and cannot be approved: {}; edit it and approve again",
            reasons.join("; ")
        ),
    )
    .with_field(
        "findings",
        serde_json::to_value(&blocking).map_err(ApiError::internal)?,
    ))
}

async fn dry_run(
    state: &AppState,
    ws: Id,
    subject: &Subject,
    test_send: Option<i64>,
) -> Result<Json<Value>, ApiError> {
    let workspace: Workspace = state.store.load(ws).await?;
    let parsed = rules::render(&subject.text, subject.parse_mode);
    let mut wanted = subject.chat_ids.clone();
    wanted.extend(subject.members.iter().copied());
    let chats = store::load_many::<Chat>(&state.pool, &wanted).await?;
    let ours = |id: &Id| chats.get(id).filter(|c| c.workspace_id == Some(ws));
    // The segments' members planning would add: those it may reach now, once each.
    let mut seen: HashSet<Id> = subject.chat_ids.iter().copied().collect();
    let mut added = Vec::new();
    let mut excluded = 0usize;
    for id in &subject.members {
        if !seen.insert(*id) {
            continue;
        }
        match ours(id) {
            Some(c) if !c.opted_out && c.has_lawful_basis() && c.blocked.is_none() => {
                added.push(*id)
            }
            _ => excluded += 1,
        }
    }
    let all_targets: Vec<Id> = subject.chat_ids.iter().chain(&added).copied().collect();

    // Quiet hours and caps at the publish time, as the gate will rule them then.
    let segments = store::load_many::<Segment>(&state.pool, &subject.segments).await?;
    let mut in_force = HashMap::new();
    let mut periods = Vec::new();
    for id in &all_targets {
        let Some(chat) = ours(id) else { continue };
        let through_segment = audience::of_segments(
            subject.segments.iter().filter_map(|id| segments.get(id)),
            *id,
            &chat.tags,
        );
        if let Some(found) = audience::in_force(
            chat.audience_rules.as_ref(),
            through_segment,
            workspace.audience_rules.as_ref(),
        ) {
            if found.max_per_day.is_some() || found.max_per_week.is_some() {
                let (day, week) = found.periods(subject.publish_at);
                periods.push((*id, day, week));
            }
            in_force.insert(*id, found);
        }
    }
    let sent = {
        let mut conn = state.pool.acquire().await.map_err(ApiError::internal)?;
        delivery::queue::budget::chats_sent_since(&mut conn, &periods)
            .await
            .map_err(ApiError::internal)?
    };
    let targets: Vec<Target> = all_targets
        .iter()
        .map(|id| match ours(id) {
            None => Target {
                chat_id: *id,
                missing: true,
                opted_out: false,
                blocked: None,
                lawful_basis: true,
                audience: None,
            },
            Some(chat) => Target {
                chat_id: *id,
                missing: false,
                opted_out: chat.opted_out,
                blocked: chat.blocked.clone(),
                lawful_basis: chat.has_lawful_basis(),
                audience: in_force.get(id).and_then(|rules| {
                    let (today, this_week) = sent.get(id).copied().unwrap_or((0, 0));
                    rules.verdict(subject.publish_at, Sent { today, this_week })
                }),
            },
        })
        .collect();

    // The messages this post would send: reachable targets, at their publish time or the
    // moment their rules defer them to.
    let start = subject.publish_at.max(Utc::now());
    let post_id = subject.post_id.unwrap_or_else(Id::nil);
    let own: Vec<Message> = targets
        .iter()
        .filter(|t| !t.missing && !t.opted_out && t.blocked.is_none() && t.lawful_basis)
        .filter_map(|t| {
            let chat = ours(&t.chat_id)?;
            let due = match &t.audience {
                None => start,
                Some((v, audience::OnViolation::Defer)) => v.until.max(start),
                Some((_, audience::OnViolation::Skip)) => return None,
            };
            Some(Message {
                post_id,
                bot_id: chat.bot_id?,
                chat_id: t.chat_id,
                group: chat.telegram_chat_id < 0,
                due,
            })
        })
        .collect();
    let bot_ids: Vec<Id> = own
        .iter()
        .map(|m| m.bot_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let bots = store::load_many::<Bot>(&state.pool, &bot_ids).await?;
    let paid: HashSet<Id> = bots
        .iter()
        .filter(|(_, b)| b.allow_paid_broadcast)
        .map(|(id, _)| *id)
        .collect();
    let forecast = match forecast::forecast(&own, &[], &paid) {
        None => None,
        Some(alone) => {
            let to = alone.last_at + LOOKAHEAD;
            let others = delivery::queue::stats::scheduled_on_bots(
                &state.pool,
                &bot_ids,
                start - LOOKBACK,
                to,
                MAX_OTHERS,
            )
            .await
            .map_err(ApiError::internal)?;
            let others: Vec<Message> = others
                .into_iter()
                .map(|s| Message {
                    post_id: s.post_id,
                    bot_id: s.bot_id,
                    chat_id: s.chat_id,
                    group: s.telegram_chat_id < 0,
                    // A delivery overdue is due now.
                    due: s.due_at.max(start),
                })
                .collect();
            forecast::forecast(&own, &others, &paid)
        }
    };

    let findings = rules::evaluate(&rules::Assessment {
        text: &parsed,
        rules: &workspace.rules,
        stage: subject.stage,
        targets: &targets,
        forecast: forecast.as_ref(),
    });
    let (render, parse_error) = match &parsed {
        Ok(p) => (
            json!({
                "text": p.text,
                "entities": p.entities,
                "length": p.utf16_len(),
                "limit": domain::MAX_TEXT_UTF16,
            }),
            Value::Null,
        ),
        Err(e) => (
            Value::Null,
            json!({
                "code": match e {
                    rules::ParseError::Entities(_) => "text_unparseable",
                    rules::ParseError::Empty => "text_empty",
                },
                "message": e.to_string(),
            }),
        ),
    };
    let mut answer = json!({
        "render": render,
        "parse_error": parse_error,
        "blocked": rules::blocks(&findings),
        "findings": findings,
        "forecast": forecast.as_ref().map(forecast_json),
    });
    if !subject.members.is_empty() {
        answer["audience"] = json!({
            "targets": all_targets.len(),
            "from_segments": added.len(),
            "excluded": excluded,
        });
    }
    if let Some(telegram_chat_id) = test_send {
        let bot = all_targets
            .iter()
            .filter_map(|id| ours(id).and_then(|c| c.bot_id))
            .next();
        let Some(bot_id) = bot else {
            return Err(ApiError::invalid(
                "test_send_needs_a_bot",
                "a test send goes through the bot of the post's chats: give at least one chat_id",
            ));
        };
        let mut bots = bots;
        let bot: Bot = match bots.remove(&bot_id) {
            Some(bot) => bot,
            None => state.store.load(bot_id).await?,
        };
        answer["test_send"] = send_test(state, &bot, telegram_chat_id, subject).await?;
    }
    Ok(Json(answer))
}

fn forecast_json(f: &Forecast) -> Value {
    let secs = |ms: i64| ms as f64 / 1000.0;
    let collisions: Vec<Value> = f
        .collides_with
        .iter()
        .map(|c| {
            json!({
                "post_id": c.post_id,
                "publish_at": c.publish_at,
                "first_at": c.first_at,
                "last_at": c.last_at,
                "messages": c.messages,
                "delayed_secs": secs(c.delayed_ms),
            })
        })
        .collect();
    let delays: Vec<Value> = f
        .collides_with
        .iter()
        .filter(|c| c.delayed_ms > 0)
        .map(|c| json!({ "post_id": c.post_id, "secs": secs(c.delayed_ms) }))
        .collect();
    json!({
        "first_at": f.first_at,
        "last_at": f.last_at,
        "duration_secs": f.duration().num_milliseconds() as f64 / 1000.0,
        "messages": f.messages,
        "delayed_secs": secs(f.delayed_ms),
        "collides_with": collisions,
        "delays": delays,
    })
}

/// Sends the text as it stands to `telegram_chat_id` through the sandbox, and says what it
/// answered.
async fn send_test(
    state: &AppState,
    bot: &Bot,
    telegram_chat_id: i64,
    subject: &Subject,
) -> Result<Value, ApiError> {
    let Some(api) = &state.telegram_api else {
        return Err(ApiError::internal("a sandbox without a URL"));
    };
    let token = state.cipher.decrypt(&bot.encrypted_token).map_err(|_| {
        ApiError::internal("the bot's token cannot be decrypted with the configured keys")
    })?;
    let client = delivery::telegram::bot(token.expose(), api).map_err(ApiError::internal)?;
    use delivery::telegram::SendResult;
    let result = delivery::telegram::send_text(
        &client,
        telegram_chat_id,
        &subject.text,
        subject.parse_mode,
        false,
    )
    .await;
    let refused = |error: String| json!({ "telegram_chat_id": telegram_chat_id, "sent": false, "error": error });
    Ok(match result {
        SendResult::Sent { message_id } => json!({
            "telegram_chat_id": telegram_chat_id,
            "sent": true,
            "telegram_message_id": message_id,
        }),
        SendResult::RetryAfter(wait) => {
            refused(format!("flood control: retry after {} s", wait.as_secs()))
        }
        SendResult::Unauthorized => refused("the bot's token was refused".into()),
        SendResult::Migrated(to) => refused(format!("the group is now supergroup {to}")),
        SendResult::Permanent(why)
        | SendResult::Blocked(why)
        | SendResult::Transient(why)
        | SendResult::InDoubt(why) => refused(why),
    })
}
