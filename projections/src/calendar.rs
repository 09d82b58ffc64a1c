use chrono::{DateTime, Utc};
use schemas::v1::EventEnvelope;
use schemas::v1::event_envelope::Event;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use anyhow::Context as _;

use crate::{Batch, Projection, parse_ids};

/// The content calendar: one row per post and target chat with its publish time, the post's
/// state and the delivery status in that chat.
pub struct Calendar;

impl Projection for Calendar {
    fn name(&self) -> &'static str {
        "calendar"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _position: u64,
        envelope: &EventEnvelope,
    ) -> anyhow::Result<()> {
        if let Some(status) = outcome_status(envelope)? {
            return set_deliveries(conn, &[status]).await;
        }
        let Some(event) = &envelope.event else {
            return Ok(());
        };
        let post_id = |outcome_post_id: &str| -> anyhow::Result<Uuid> {
            Ok(crate::outcome_post_id(envelope, outcome_post_id).parse()?)
        };
        let at: DateTime<Utc> =
            schemas::from_millis(envelope.occurred_at_ms).unwrap_or_else(Utc::now);
        match event {
            Event::PostPlanned(planned) => {
                let workspace_id: Uuid = envelope.workspace_id.parse()?;
                let publish_at = schemas::from_millis(planned.publish_at_ms).unwrap_or(at);
                let preview = crate::preview(&planned.text);
                let chats = parse_ids(&planned.chat_ids)?;
                sqlx::query(
                    "INSERT INTO calendar (workspace_id, post_id, chat_id, position, publish_at, state, delivery, text_preview, updated_at)
                     SELECT $1, $2, t.chat_id, t.n - 1, $4, 'planned', 'pending', $5, $6
                       FROM UNNEST($3::uuid[]) WITH ORDINALITY AS t(chat_id, n)
                     ON CONFLICT (post_id, chat_id) DO NOTHING",
                )
                .bind(workspace_id)
                .bind(post_id("")?)
                .bind(&chats)
                .bind(publish_at)
                .bind(&preview)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            Event::PostTargetsAdded(added) => {
                // Copies the post's first row; positions continue where the last event stopped
                // (every row is still pending: targets are added in the planning commit).
                let chats = parse_ids(&added.chat_ids)?;
                sqlx::query(
                    "INSERT INTO calendar (workspace_id, post_id, chat_id, position, publish_at, state, delivery, text_preview, updated_at)
                     SELECT f.workspace_id, f.post_id, t.chat_id,
                            (SELECT max(position) FROM calendar WHERE post_id = $1 AND delivery = 'pending') + t.n,
                            f.publish_at, f.state, 'pending', f.text_preview, $3
                       FROM (SELECT * FROM calendar WHERE post_id = $1 AND position = 0) f
                      CROSS JOIN UNNEST($2::uuid[]) WITH ORDINALITY AS t(chat_id, n)
                     ON CONFLICT (post_id, chat_id) DO NOTHING",
                )
                .bind(post_id("")?)
                .bind(&chats)
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            Event::PostApproved(_) => set_state(conn, post_id("")?, "approved", at).await?,
            // Rejected: back to draft, waiting for an edit.
            Event::PostRejected(_) => set_state(conn, post_id("")?, "draft", at).await?,
            Event::PostEdited(edited) => {
                let preview = crate::preview(&edited.text);
                sqlx::query(
                    "UPDATE calendar SET state = 'planned', text_preview = $2, publish_at = $3, updated_at = $4
                      WHERE post_id = $1",
                )
                .bind(post_id("")?)
                .bind(&preview)
                .bind(schemas::from_millis(edited.publish_at_ms).unwrap_or(at))
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            Event::PostCancelled(_) => set_state(conn, post_id("")?, "cancelled", at).await?,
            Event::PostExpired(_) => set_state(conn, post_id("")?, "expired", at).await?,
            Event::PostRescheduled(r) => {
                sqlx::query(
                    "UPDATE calendar SET publish_at = $2, updated_at = $3 WHERE post_id = $1",
                )
                .bind(post_id("")?)
                .bind(schemas::from_millis(r.publish_at_ms).unwrap_or(at))
                .bind(at)
                .execute(&mut *conn)
                .await?;
            }
            Event::DeliveryResolved(r) => {
                let (delivery, message_id) = match r.resolution.as_str() {
                    "mark_delivered" => ("delivered", r.telegram_message_id),
                    _ => ("pending", None),
                };
                let post = post_id(&r.post_id)?;
                let status = DeliveryStatus {
                    post_id: post,
                    chat_id: r.chat_id.parse()?,
                    delivery,
                    message_id,
                    error: None,
                    at,
                };
                set_deliveries(conn, &[status]).await?;
                if r.automatic {
                    sqlx::query(
                        "UPDATE calendar SET auto_resends = auto_resends + 1 WHERE post_id = $1 AND chat_id = $2",
                    )
                    .bind(post)
                    .bind(r.chat_id.parse::<Uuid>()?)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs of delivery outcomes (most of a busy stream) are written with one statement.
    async fn apply_all(
        &self,
        conn: &mut PgConnection,
        events: &[(u64, EventEnvelope)],
    ) -> anyhow::Result<()> {
        let mut outcomes = Batch::default();
        for (position, envelope) in events {
            match outcome_status(envelope)? {
                Some(status) => {
                    let key = (status.post_id, status.chat_id);
                    if !outcomes.accepts(&key) {
                        set_deliveries(conn, &outcomes.take()).await?;
                    }
                    outcomes.push(key, status);
                }
                None => {
                    set_deliveries(conn, &outcomes.take()).await?;
                    self.apply(conn, *position, envelope)
                        .await
                        .with_context(|| format!("applying {}", envelope.event_id))?;
                }
            }
        }
        set_deliveries(conn, &outcomes.take()).await
    }

    async fn reset(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM calendar").execute(conn).await?;
        Ok(())
    }
}

fn failure_class(class: i32) -> &'static str {
    match schemas::v1::FailureClass::try_from(class) {
        Ok(schemas::v1::FailureClass::Permanent) => "permanent",
        Ok(schemas::v1::FailureClass::Transient) => "transient",
        Ok(schemas::v1::FailureClass::OptedOut) => "opted_out",
        Ok(schemas::v1::FailureClass::Skipped) => "skipped",
        _ => "unspecified",
    }
}

async fn set_state(
    conn: &mut PgConnection,
    post_id: Uuid,
    state: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE calendar SET state = $2, updated_at = $3 WHERE post_id = $1")
        .bind(post_id)
        .bind(state)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// A delivery's status in its chat, as an outcome left it.
struct DeliveryStatus {
    post_id: Uuid,
    chat_id: Uuid,
    delivery: &'static str,
    message_id: Option<i32>,
    error: Option<String>,
    at: DateTime<Utc>,
}

/// The status a delivery outcome (delivered, failed, unknown) gives its row; None for any
/// other event.
fn outcome_status(envelope: &EventEnvelope) -> anyhow::Result<Option<DeliveryStatus>> {
    let (post, chat, delivery, message_id, error) = match &envelope.event {
        Some(Event::PostDelivered(d)) => (
            &d.post_id,
            &d.chat_id,
            "delivered",
            Some(d.telegram_message_id),
            None,
        ),
        Some(Event::DeliveryFailed(f)) => (
            &f.post_id,
            &f.chat_id,
            "failed",
            None,
            Some(format!("{}: {}", failure_class(f.class), f.detail)),
        ),
        Some(Event::DeliveryUnknown(u)) => (
            &u.post_id,
            &u.chat_id,
            "unknown",
            None,
            Some(u.detail.clone()),
        ),
        _ => return Ok(None),
    };
    Ok(Some(DeliveryStatus {
        post_id: crate::outcome_post_id(envelope, post).parse()?,
        chat_id: chat.parse()?,
        delivery,
        message_id,
        error,
        at: schemas::from_millis(envelope.occurred_at_ms).unwrap_or_else(Utc::now),
    }))
}

/// Writes each delivery's status (at most one per post and chat), in one statement.
async fn set_deliveries(
    conn: &mut PgConnection,
    statuses: &[DeliveryStatus],
) -> anyhow::Result<()> {
    if statuses.is_empty() {
        return Ok(());
    }
    let posts: Vec<Uuid> = statuses.iter().map(|s| s.post_id).collect();
    let chats: Vec<Uuid> = statuses.iter().map(|s| s.chat_id).collect();
    let deliveries: Vec<&str> = statuses.iter().map(|s| s.delivery).collect();
    let message_ids: Vec<Option<i32>> = statuses.iter().map(|s| s.message_id).collect();
    let errors: Vec<Option<&str>> = statuses.iter().map(|s| s.error.as_deref()).collect();
    let times: Vec<DateTime<Utc>> = statuses.iter().map(|s| s.at).collect();
    sqlx::query(
        "UPDATE calendar c
            SET delivery = t.delivery, telegram_message_id = t.message_id, error = t.error, updated_at = t.at
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int4[], $5::text[], $6::timestamptz[])
                AS t(post_id, chat_id, delivery, message_id, error, at)
          WHERE c.post_id = t.post_id AND c.chat_id = t.chat_id",
    )
    .bind(&posts)
    .bind(&chats)
    .bind(&deliveries)
    .bind(&message_ids)
    .bind(&errors)
    .bind(&times)
    .execute(conn)
    .await?;
    Ok(())
}

/// Calendar entries of a workspace (one per post and chat) with publish time in `[from, to)`,
/// by time, at most `limit`.
pub async fn entries(
    pool: &PgPool,
    workspace_id: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: i64,
) -> sqlx::Result<Vec<Value>> {
    let rows = sqlx::query(
        "SELECT post_id, chat_id, publish_at, state, delivery, telegram_message_id, error, text_preview
           FROM calendar
          WHERE workspace_id = $1
            AND ($2::timestamptz IS NULL OR publish_at >= $2)
            AND ($3::timestamptz IS NULL OR publish_at < $3)
          ORDER BY publish_at, post_id, chat_id
          LIMIT $4",
    )
    .bind(workspace_id)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
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
        .collect()
}

/// How many of a post's deliveries from position `from` on the calendar shows in each status.
pub async fn counts(pool: &PgPool, post_id: Uuid, from: i32) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT delivery, count(*) FROM calendar WHERE post_id = $1 AND position >= $2 GROUP BY delivery",
    )
    .bind(post_id)
    .bind(from)
    .fetch_all(pool)
    .await
}

/// One delivery as the calendar shows it.
#[derive(Debug, Clone)]
pub struct PostDelivery {
    pub chat_id: Uuid,
    /// Place in the post's planning order, from 0.
    pub position: i32,
    pub delivery: String,
    pub telegram_message_id: Option<i32>,
    pub error: Option<String>,
    pub auto_resends: i32,
}

/// A post's deliveries in `status`, in planning order from position `from`, at most `limit`.
pub async fn deliveries_in(
    pool: &PgPool,
    post_id: Uuid,
    status: &str,
    from: i32,
    limit: i64,
) -> sqlx::Result<Vec<PostDelivery>> {
    let rows = sqlx::query(
        "SELECT chat_id, position, delivery, telegram_message_id, error, auto_resends
           FROM calendar
          WHERE post_id = $1 AND delivery = $2 AND position >= $3
          ORDER BY position
          LIMIT $4",
    )
    .bind(post_id)
    .bind(status)
    .bind(from)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PostDelivery {
                chat_id: r.try_get("chat_id")?,
                position: r.try_get("position")?,
                delivery: r.try_get("delivery")?,
                telegram_message_id: r.try_get("telegram_message_id")?,
                error: r.try_get("error")?,
                auto_resends: r.try_get("auto_resends")?,
            })
        })
        .collect()
}
