//! The post list: one row per post with what a team filters on (state, time, author, who
//! approved, its bots) and the approval stage it waits for, so "waiting for my approval" is
//! one indexed query. Its chats are found through the calendar (one row per post and chat).

use chrono::{DateTime, Utc};
use schemas::v1::event_envelope::Event;
use schemas::v1::{ApprovalStage, EventEnvelope};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::{Projection, parse_ids};

pub struct PostList;

impl Projection for PostList {
    fn name(&self) -> &'static str {
        "post_list"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _position: u64,
        envelope: &EventEnvelope,
    ) -> anyhow::Result<()> {
        let Some(event) = &envelope.event else {
            return Ok(());
        };
        let id = || -> anyhow::Result<Uuid> { Ok(envelope.aggregate_id.parse()?) };
        let at: DateTime<Utc> =
            schemas::from_millis(envelope.occurred_at_ms).unwrap_or_else(Utc::now);
        match event {
            Event::ChatConnected(c) => {
                sqlx::query(
                    "INSERT INTO post_list_chats (chat_id, workspace_id, bot_id) VALUES ($1, $2, $3)
                     ON CONFLICT (chat_id) DO NOTHING",
                )
                .bind(id()?)
                .bind(envelope.workspace_id.parse::<Uuid>()?)
                .bind(c.bot_id.parse::<Uuid>()?)
                .execute(&mut *conn)
                .await?;
            }
            Event::PostPlanned(p) => {
                let chats = parse_ids(&p.chat_ids)?;
                sqlx::query(
                    "INSERT INTO post_list (post_id, workspace_id, state, publish_at, text_preview, author_id,
                                            targets, bot_ids, stages, stage, updated_at)
                     VALUES ($1, $2, 'planned', $3, $4, $5, $6,
                             ARRAY(SELECT DISTINCT bot_id FROM post_list_chats WHERE chat_id = ANY($7) ORDER BY 1),
                             $8, 0, $9)
                     ON CONFLICT (post_id) DO NOTHING",
                )
                .bind(id()?)
                .bind(envelope.workspace_id.parse::<Uuid>()?)
                .bind(schemas::from_millis(p.publish_at_ms).unwrap_or(at))
                .bind(crate::preview(&p.text))
                .bind(actor(envelope))
                .bind(chats.len() as i32)
                .bind(&chats)
                .bind(stages_json(&p.stages))
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            Event::PostTargetsAdded(t) => {
                let chats = parse_ids(&t.chat_ids)?;
                sqlx::query(
                    "UPDATE post_list SET targets = targets + $2,
                            bot_ids = ARRAY(SELECT DISTINCT b FROM unnest(bot_ids || ARRAY(
                                SELECT bot_id FROM post_list_chats WHERE chat_id = ANY($3))) AS b ORDER BY 1)
                      WHERE post_id = $1",
                )
                .bind(id()?)
                .bind(chats.len() as i32)
                .bind(&chats)
                .execute(&mut *conn)
                .await?;
            }
            Event::PostApprovalGiven(a) => {
                approval_given(conn, id()?, a.stage, &a.approver_id, at).await?
            }
            Event::PostApproved(_) => set_state(conn, id()?, "approved", at).await?,
            Event::PostRejected(_) => set_state(conn, id()?, "draft", at).await?,
            Event::PostCancelled(_) => set_state(conn, id()?, "cancelled", at).await?,
            Event::PostExpired(_) => set_state(conn, id()?, "expired", at).await?,
            Event::PostEdited(e) => {
                sqlx::query(
                    "UPDATE post_list SET state = 'planned', stage = 0, stage_approvals = '{}', approved_by = '{}',
                            publish_at = $2, text_preview = $3, last_editor_id = $4, updated_at = $5
                      WHERE post_id = $1",
                )
                .bind(id()?)
                .bind(schemas::from_millis(e.publish_at_ms).unwrap_or(at))
                .bind(crate::preview(&e.text))
                .bind(&e.editor_id)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            Event::PostRescheduled(r) => {
                sqlx::query(
                    "UPDATE post_list SET publish_at = $2, updated_at = $3 WHERE post_id = $1",
                )
                .bind(id()?)
                .bind(schemas::from_millis(r.publish_at_ms).unwrap_or(at))
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE post_list, post_list_chats")
            .execute(conn)
            .await?;
        Ok(())
    }
}

fn actor(envelope: &EventEnvelope) -> String {
    envelope
        .metadata
        .as_ref()
        .map(|m| m.actor.clone())
        .unwrap_or_default()
}

/// The stages as the list keeps them; none recorded means the standard review.
fn stages_json(stages: &[ApprovalStage]) -> Value {
    if stages.is_empty() {
        return json!([{ "name": "review", "roles": ["approver", "admin"], "users": [], "all": false }]);
    }
    Value::Array(
        stages
            .iter()
            .map(|s| json!({ "name": s.name, "roles": s.roles, "users": s.user_ids, "all": s.all_users }))
            .collect(),
    )
}

async fn set_state(
    conn: &mut PgConnection,
    post_id: Uuid,
    state: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    // Only a post waiting for approvals waits at a stage; a rejection also voids them.
    sqlx::query(
        "UPDATE post_list SET state = $2, stage = NULL, stage_approvals = '{}',
                approved_by = CASE WHEN $2 = 'draft' THEN '{}' ELSE approved_by END, updated_at = $3
          WHERE post_id = $1",
    )
    .bind(post_id)
    .bind(state)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// One approval at `stage`: the stage completes (any: this one; all: every named user) and the
/// next waits, or it keeps waiting for the rest.
async fn approval_given(
    conn: &mut PgConnection,
    post_id: Uuid,
    stage: u32,
    approver: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let Some(row) = sqlx::query("SELECT stages, stage_approvals FROM post_list WHERE post_id = $1")
        .bind(post_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(());
    };
    let stages: Value = row.try_get("stages")?;
    let mut given: Vec<String> = row.try_get("stage_approvals")?;
    given.push(approver.to_owned());
    let this = &stages[stage as usize];
    let complete = if this["all"].as_bool().unwrap_or(false) {
        this["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .all(|u| given.iter().any(|g| g == u))
    } else {
        true
    };
    let last = stages.as_array().map_or(0, Vec::len) as i32 - 1;
    let (next, given) = match complete {
        true if stage as i32 >= last => (None, Vec::new()),
        true => (Some(stage as i32 + 1), Vec::new()),
        false => (Some(stage as i32), given),
    };
    sqlx::query(
        "UPDATE post_list SET stage = $2, stage_approvals = $3, approved_by = array_append(approved_by, $4),
                updated_at = $5
          WHERE post_id = $1",
    )
    .bind(post_id)
    .bind(next)
    .bind(&given)
    .bind(approver)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a list of posts is filtered on; every field narrows it.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub states: Vec<String>,
    pub chat_id: Option<Uuid>,
    pub bot_id: Option<Uuid>,
    pub author_id: Option<String>,
    /// Posts this user approved (since their last edit).
    pub approver_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Posts whose waiting stage admits this user (their id, their role), which they did not
    /// write and have not approved at that stage.
    pub waiting_for: Option<(String, Option<String>)>,
}

/// Where a page ends: the last post's publish time and id (the list is ordered by both).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub publish_at: DateTime<Utc>,
    pub post_id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}_{}", self.publish_at.timestamp_micros(), self.post_id)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('_')?;
        Some(Self {
            publish_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            post_id: id.parse().ok()?,
        })
    }
}

/// Posts of a workspace matching `filter`, by publish time then id, after `after`, at most
/// `limit`; and the cursor of the next page when there may be one.
pub async fn list(
    pool: &PgPool,
    workspace_id: Uuid,
    filter: &Filter,
    after: Option<Cursor>,
    limit: i64,
) -> sqlx::Result<(Vec<Value>, Option<Cursor>)> {
    let (waiting_user, waiting_role) = match &filter.waiting_for {
        Some((user, role)) => (Some(user.as_str()), role.as_deref()),
        None => (None, None),
    };
    let rows = sqlx::query(
        "SELECT post_id, state, publish_at, text_preview, author_id, last_editor_id, targets, bot_ids,
                stages, stage, approved_by
           FROM post_list p
          WHERE workspace_id = $1
            AND (cardinality($2::text[]) = 0 OR state = ANY($2))
            AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM calendar c WHERE c.post_id = p.post_id AND c.chat_id = $3))
            AND ($4::uuid IS NULL OR $4 = ANY(bot_ids))
            AND ($5::text IS NULL OR author_id = $5)
            AND ($6::text IS NULL OR $6 = ANY(approved_by))
            AND ($7::timestamptz IS NULL OR publish_at >= $7)
            AND ($8::timestamptz IS NULL OR publish_at < $8)
            AND ($9::text IS NULL OR (
                    state = 'planned' AND stage IS NOT NULL
                AND author_id IS DISTINCT FROM $9 AND last_editor_id IS DISTINCT FROM $9
                AND NOT $9 = ANY(stage_approvals)
                AND (stages -> stage -> 'users' ? $9 OR ($10::text IS NOT NULL AND stages -> stage -> 'roles' ? $10))))
            AND ($11::timestamptz IS NULL OR (publish_at, post_id) > ($11, $12))
          ORDER BY publish_at, post_id
          LIMIT $13",
    )
    .bind(workspace_id)
    .bind(&filter.states)
    .bind(filter.chat_id)
    .bind(filter.bot_id)
    .bind(filter.author_id.as_deref())
    .bind(filter.approver_id.as_deref())
    .bind(filter.from)
    .bind(filter.to)
    .bind(waiting_user)
    .bind(waiting_role)
    .bind(after.map(|c| c.publish_at))
    .bind(after.map(|c| c.post_id))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut posts = Vec::with_capacity(rows.len());
    let mut last = None;
    for r in &rows {
        let post_id: Uuid = r.try_get("post_id")?;
        let publish_at: DateTime<Utc> = r.try_get("publish_at")?;
        last = Some(Cursor {
            publish_at,
            post_id,
        });
        let stages: Value = r.try_get("stages")?;
        let stage: Option<i32> = r.try_get("stage")?;
        posts.push(json!({
            "id": post_id,
            "state": r.try_get::<String, _>("state")?,
            "publish_at": publish_at,
            "text_preview": r.try_get::<String, _>("text_preview")?,
            "author_id": r.try_get::<Option<String>, _>("author_id")?,
            "last_editor_id": r.try_get::<Option<String>, _>("last_editor_id")?,
            "targets": r.try_get::<i32, _>("targets")?,
            "bot_ids": r.try_get::<Vec<Uuid>, _>("bot_ids")?,
            "approved_by": r.try_get::<Vec<String>, _>("approved_by")?,
            "waiting_for": stage.map(|s| stages[s as usize]["name"].clone()),
        }));
    }
    let next = (rows.len() as i64 == limit).then_some(last).flatten();
    Ok((posts, next))
}
