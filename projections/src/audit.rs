use chrono::{DateTime, Utc};
use schemas::v1::EventEnvelope;
use schemas::v1::event_envelope::Event;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Row};

use crate::Projection;

/// The audit log: every event in stream order with who, when, and the request that caused it.
pub struct Audit;

impl Projection for Audit {
    fn name(&self) -> &'static str {
        "audit"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        position: u64,
        event: &EventEnvelope,
    ) -> anyhow::Result<()> {
        insert(conn, Entry::of(position, event).as_slice()).await
    }

    /// Every event is a row: a batch is one insert.
    async fn apply_all(
        &self,
        conn: &mut PgConnection,
        events: &[(u64, EventEnvelope)],
    ) -> anyhow::Result<()> {
        let entries: Vec<Entry> = events
            .iter()
            .filter_map(|(position, event)| Entry::of(*position, event))
            .collect();
        insert(conn, &entries).await
    }

    async fn reset(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM audit_log").execute(conn).await?;
        Ok(())
    }
}

/// An event as the audit log keeps it.
struct Entry<'a> {
    position: i64,
    event: &'a EventEnvelope,
    metadata: schemas::v1::Metadata,
    occurred_at: DateTime<Utc>,
    details: Value,
}

impl<'a> Entry<'a> {
    /// None for an event past the journal's retention (a rebuild replays all history).
    fn of(position: u64, event: &'a EventEnvelope) -> Option<Self> {
        let occurred_at: DateTime<Utc> =
            schemas::from_millis(event.occurred_at_ms).unwrap_or_else(Utc::now);
        if store::retention::audit_expired(occurred_at, Utc::now()) {
            return None;
        }
        Some(Self {
            position: position as i64,
            event,
            metadata: event.metadata.clone().unwrap_or_default(),
            occurred_at,
            details: details(event.event.as_ref()),
        })
    }
}

/// Appends `entries` in one statement (an event already there is left as it is).
async fn insert(conn: &mut PgConnection, entries: &[Entry<'_>]) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    fn column<'e>(
        entries: &'e [Entry<'_>],
        field: impl Fn(&'e Entry<'_>) -> &'e str,
    ) -> Vec<&'e str> {
        entries.iter().map(field).collect()
    }
    sqlx::query(
        "INSERT INTO audit_log (position, event_id, workspace_id, aggregate_type, aggregate_id, sequence,
                                event_type, event_version, actor, correlation_id, causation_id, occurred_at, details)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                              $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::jsonb[])
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(entries.iter().map(|r| r.position).collect::<Vec<i64>>())
    .bind(column(entries, |r| &r.event.event_id))
    .bind(column(entries, |r| &r.event.workspace_id))
    .bind(column(entries, |r| &r.event.aggregate_type))
    .bind(column(entries, |r| &r.event.aggregate_id))
    .bind(entries.iter().map(|r| r.event.sequence as i64).collect::<Vec<i64>>())
    .bind(column(entries, |r| &r.event.event_type))
    .bind(column(entries, |r| &r.event.event_version))
    .bind(column(entries, |r| &r.metadata.actor))
    .bind(column(entries, |r| &r.metadata.correlation_id))
    .bind(column(entries, |r| &r.metadata.causation_id))
    .bind(entries.iter().map(|r| r.occurred_at).collect::<Vec<DateTime<Utc>>>())
    .bind(entries.iter().map(|r| r.details.clone()).collect::<Vec<Value>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// What an auditor needs to know about an event, without message text (shown on the post).
/// A text's length in characters; none for a sealed one (its length would tell its size, not
/// the text's).
fn text_length(text: &str) -> Option<usize> {
    (!text.starts_with(domain::consent::SEALED_PREFIX)).then(|| text.chars().count())
}

fn details(event: Option<&Event>) -> Value {
    match event {
        Some(Event::WorkspaceCreated(e)) => json!({ "name": e.name }),
        Some(Event::MemberRoleGranted(e)) => json!({ "user_id": e.user_id, "role": e.role }),
        Some(Event::MemberRoleRevoked(e)) => json!({ "user_id": e.user_id }),
        Some(Event::BotRegistered(e)) => {
            json!({ "name": e.name, "telegram_bot_id": e.telegram_bot_id })
        }
        Some(Event::ChatConnected(e)) => json!({
            "bot_id": e.bot_id, "telegram_chat_id": e.telegram_chat_id, "title": e.title,
            "lawful_basis": e.basis.as_ref().map(basis),
        }),
        Some(Event::ChatTagsSet(e)) => json!({ "tags": e.tags }),
        Some(Event::SegmentDefined(e)) => {
            json!({ "name": e.name, "rule": e.rule.as_ref().map(segment_rule) })
        }
        Some(Event::SegmentChanged(e)) => {
            json!({ "name": e.name, "rule": e.rule.as_ref().map(segment_rule) })
        }
        Some(Event::ContactBasisRecorded(e)) => {
            json!({ "lawful_basis": e.basis.as_ref().map(basis) })
        }
        Some(Event::ContactStarted(e)) => json!({
            "lawful_basis": e.basis.as_ref().map(basis), "update_id": e.update_id,
        }),
        Some(Event::ChatOptedOut(e)) => json!({ "reason": e.reason, "update_id": e.update_id }),
        Some(Event::ChatChecked(e)) => json!({
            "kind": e.kind, "title": e.title, "cannot_post": e.cannot_post, "update_id": e.update_id,
        }),
        Some(Event::PostPlanned(e)) => json!({
            "chat_ids": e.chat_ids,
            "segment_ids": e.segment_ids,
            "excluded": e.excluded,
            "publish_at": schemas::from_millis(e.publish_at_ms).map(|t| t.to_rfc3339()),
            "text_length": text_length(&e.text),
        }),
        Some(Event::PostTargetsAdded(e)) => json!({ "chat_ids": e.chat_ids }),
        Some(Event::PostRejected(e)) => json!({ "reason": e.reason }),
        Some(Event::PostApprovalGiven(e)) => {
            json!({ "stage": e.stage, "approver_id": e.approver_id })
        }
        Some(Event::PostEdited(e)) => json!({
            "publish_at": schemas::from_millis(e.publish_at_ms).map(|t| t.to_rfc3339()),
            "text_length": text_length(&e.text),
            "editor_id": e.editor_id,
        }),
        Some(Event::PostCommented(e)) => json!({ "author_id": e.author_id, "text": e.text }),
        Some(Event::ChatApprovalPolicySet(e)) => json!({
            "stages": e.stages.iter().map(|s| json!({
                "name": s.name, "roles": s.roles, "user_ids": s.user_ids,
                "rule": if s.all_users { "all" } else { "any" },
            })).collect::<Vec<_>>(),
        }),
        Some(Event::PostDelivered(e)) => json!({
            "post_id": e.post_id, "chat_id": e.chat_id, "telegram_message_id": e.telegram_message_id,
        }),
        Some(Event::DeliveryFailed(e)) => json!({
            "post_id": e.post_id, "chat_id": e.chat_id, "class": e.class().as_str_name(), "detail": e.detail,
        }),
        Some(Event::DeliveryUnknown(e)) => {
            json!({ "post_id": e.post_id, "chat_id": e.chat_id, "detail": e.detail })
        }
        Some(Event::PostRescheduled(e)) => json!({
            "publish_at": schemas::from_millis(e.publish_at_ms).map(|t| t.to_rfc3339()),
        }),
        Some(Event::DeliveryResolved(e)) => json!({
            "post_id": e.post_id,
            "chat_id": e.chat_id,
            "resolution": e.resolution,
            "telegram_message_id": e.telegram_message_id,
        }),
        Some(Event::ChatBlocked(e)) => json!({ "reason": e.reason }),
        Some(Event::ChatMigrated(e)) => json!({
            "from_telegram_chat_id": e.from_telegram_chat_id,
            "to_telegram_chat_id": e.to_telegram_chat_id,
        }),
        Some(Event::ChatHourlyCapSet(e)) => json!({ "hourly_cap": e.cap }),
        Some(Event::BotPaused(e)) => json!({ "reason": e.reason }),
        Some(Event::BotHourlyCapSet(e)) => json!({ "hourly_cap": e.cap }),
        Some(Event::BotPaidBroadcastSet(e)) => json!({ "allowed": e.allowed }),
        Some(Event::InDoubtPolicySet(e)) => json!({ "policy": e.policy }),
        Some(Event::RetentionSet(e)) => json!({ "audit_days": e.audit_days }),
        Some(Event::PostTextSealingSet(e)) => json!({ "sealed": e.sealed }),
        Some(Event::PostTextsErased(e)) => json!({ "by": e.by }),
        Some(Event::WorkspaceRulesSet(e)) => json!({
            "link_domains": { "allow": e.allow_link_domains, "deny": e.deny_link_domains },
            "forbidden_words": e.forbidden_words.iter()
                .map(|w| json!({ "word": w.word, "severity": w.severity }))
                .collect::<Vec<_>>(),
            "max_length": e.max_length,
        }),
        Some(Event::WorkspaceAudienceRulesSet(e)) => {
            json!({ "rules": e.rules.as_ref().map(rules) })
        }
        Some(Event::ChatAudienceRulesSet(e)) => json!({ "rules": e.rules.as_ref().map(rules) }),
        Some(Event::SegmentAudienceRulesSet(e)) => {
            json!({ "rules": e.rules.as_ref().map(rules) })
        }
        Some(
            Event::PostApproved(_)
            | Event::PostCancelled(_)
            | Event::SegmentDeleted(_)
            | Event::ContactErased(_)
            | Event::PostExpired(_)
            | Event::BotTokenReplaced(_)
            | Event::BotTokenReencrypted(_),
        )
        | None => {
            json!({})
        }
    }
}

fn segment_rule(rule: &schemas::v1::SegmentRule) -> Value {
    json!({ "tags_all": rule.tags_all, "tags_any": rule.tags_any, "chat_ids": rule.chat_ids })
}

fn rules(rules: &schemas::v1::AudienceRules) -> Value {
    json!({
        "time_zone": rules.time_zone,
        "quiet_hours": rules.quiet_start.as_ref().map(|start| json!({"start": start, "end": rules.quiet_end})),
        "max_per_day": rules.max_per_day,
        "max_per_week": rules.max_per_week,
        "on_violation": rules.on_violation,
    })
}

fn basis(basis: &schemas::v1::LawfulBasis) -> Value {
    json!({
        "basis": basis.basis,
        "source": basis.source,
        "given_at": schemas::from_millis(basis.given_at_ms).map(|t| t.to_rfc3339()),
    })
}

/// What an audit reader narrows the log to; every field optional (`None`: no filter).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// One aggregate's events only (a post's history).
    pub aggregate_id: Option<uuid::Uuid>,
    /// Who did it: the actor recorded in the event's metadata.
    pub actor: Option<String>,
    /// Events of this post: its own and its deliveries'.
    pub post_id: Option<uuid::Uuid>,
    /// Events of this chat: its own, its deliveries' and the posts that target it.
    pub chat_id: Option<uuid::Uuid>,
    /// Committed at or after / before these times.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Audit events of a workspace in stream order, after position `after`, at most `limit`,
/// narrowed by `filter`.
pub async fn events(
    pool: &PgPool,
    workspace_id: uuid::Uuid,
    filter: &Filter,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<Value>> {
    let rows = sqlx::query(
        "SELECT position, event_id, aggregate_type, aggregate_id, sequence, event_type, event_version,
                actor, correlation_id, causation_id, occurred_at, details
           FROM audit_log
          WHERE workspace_id = $1 AND position > $2
            AND ($4::text IS NULL OR aggregate_id = $4)
            AND ($5::text IS NULL OR actor = $5)
            AND ($6::text IS NULL OR aggregate_id = $6 OR details ->> 'post_id' = $6)
            AND ($7::text IS NULL OR aggregate_id = $7 OR details ->> 'chat_id' = $7
                 OR details -> 'chat_ids' ? $7)
            AND ($8::timestamptz IS NULL OR occurred_at >= $8)
            AND ($9::timestamptz IS NULL OR occurred_at < $9)
          ORDER BY position
          LIMIT $3",
    )
    .bind(workspace_id.to_string())
    .bind(after)
    .bind(limit)
    .bind(filter.aggregate_id.map(|id| id.to_string()))
    .bind(filter.actor.as_deref())
    .bind(filter.post_id.map(|id| id.to_string()))
    .bind(filter.chat_id.map(|id| id.to_string()))
    .bind(filter.from)
    .bind(filter.to)
    .fetch_all(pool)
    .await?;
    rows.iter()
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
        .collect()
}
