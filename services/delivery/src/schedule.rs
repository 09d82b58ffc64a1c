//! The schedule index: a projection that turns approvals into rows of `delivery_queue` (one per
//! post and chat, due at the publish time), keeps them in step with reschedules, cancellations,
//! resends and chat migrations, and keeps `delivery_limits` (caps, circuit breaker) current.

use domain::{Chat, Id, Post};
use projections::Projection;
use schemas::v1::EventEnvelope;
use schemas::v1::event_envelope::Event;
use sqlx::PgConnection;
use store::EventStore;

pub struct DeliverySchedule {
    pub store: EventStore,
}

impl Projection for DeliverySchedule {
    fn name(&self) -> &'static str {
        "delivery_schedule"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _position: u64,
        envelope: &EventEnvelope,
    ) -> anyhow::Result<()> {
        let id: Id = envelope.aggregate_id.parse()?;
        let Some(event) = &envelope.event else {
            return Ok(());
        };
        match event {
            Event::PostApproved(_) => self.schedule(conn, id).await?,
            Event::PostCancelled(_) | Event::PostRejected(_) => {
                sqlx::query(
                    "UPDATE delivery_queue SET state = 'cancelled'
                      WHERE post_id = $1 AND state = 'scheduled'",
                )
                .bind(id)
                .execute(conn)
                .await?;
            }
            Event::PostRescheduled(r) => {
                let due_at = schemas::from_millis(r.publish_at_ms)
                    .ok_or_else(|| anyhow::anyhow!("bad publish time"))?;
                sqlx::query(
                    "UPDATE delivery_queue SET due_at = $2 WHERE post_id = $1 AND state = 'scheduled'",
                )
                .bind(id)
                .bind(due_at)
                .execute(conn)
                .await?;
            }
            Event::DeliveryResolved(r) if r.resolution == "resend" => {
                // Only a finished (or just finishing) attempt is put back; applied once per event.
                sqlx::query(
                    "UPDATE delivery_queue
                        SET state = 'scheduled', due_at = now(), attempts = 0, not_before = NULL,
                            claimed_by = NULL
                      WHERE post_id = $1 AND chat_id = $2 AND state IN ('sending', 'done')",
                )
                .bind(id)
                .bind(r.chat_id.parse::<Id>()?)
                .execute(conn)
                .await?;
            }
            Event::ChatMigrated(m) => {
                sqlx::query(
                    "UPDATE delivery_queue SET telegram_chat_id = $2
                      WHERE chat_id = $1 AND state = 'scheduled'",
                )
                .bind(id)
                .bind(m.to_telegram_chat_id)
                .execute(conn)
                .await?;
            }
            Event::ChatHourlyCapSet(c) => {
                set_limit(conn, "chat", id, "hourly_cap", c.cap.map(|c| c as i32)).await?
            }
            Event::BotHourlyCapSet(c) => {
                set_limit(conn, "bot", id, "hourly_cap", c.cap.map(|c| c as i32)).await?
            }
            Event::BotPaused(p) => {
                set_limit(conn, "bot", id, "paused_reason", Some(p.reason.clone())).await?
            }
            Event::BotTokenReplaced(_) => {
                set_limit(conn, "bot", id, "paused_reason", None::<String>).await?
            }
            Event::BotPaidBroadcastSet(p) => {
                set_limit(conn, "bot", id, "allow_paid_broadcast", p.allowed).await?
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, _conn: &mut PgConnection) -> anyhow::Result<()> {
        // The queue also holds delivery progress that is not in the stream (attempts, claims):
        // never drop it. Replaying is harmless because inserts are idempotent.
        Ok(())
    }
}

impl DeliverySchedule {
    /// One queue row per target chat, due at the publish time.
    async fn schedule(&self, conn: &mut PgConnection, post_id: Id) -> anyhow::Result<()> {
        // The post's chats and time come from the event store itself: the truth, now.
        let post: Post = self.store.load(post_id).await?;
        let (Some(workspace_id), Some(due_at)) = (post.workspace_id, post.publish_at) else {
            // Not in this event store (a stream shared with another database): nothing to send,
            // and stopping the projection here would stop every delivery.
            tracing::error!(%post_id, "approved post is not in the event store; not scheduled");
            return Ok(());
        };
        for chat_id in &post.chat_order {
            let chat: Chat = self.store.load(*chat_id).await?;
            let Some(bot_id) = chat.bot_id else {
                anyhow::bail!("chat {chat_id} of post {post_id} is unknown")
            };
            sqlx::query(
                "INSERT INTO delivery_queue (post_id, chat_id, workspace_id, bot_id, telegram_chat_id, due_at, partition)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (post_id, chat_id) DO NOTHING",
            )
            .bind(post_id)
            .bind(chat_id)
            .bind(workspace_id)
            .bind(bot_id)
            .bind(chat.telegram_chat_id)
            .bind(due_at)
            .bind(crate::partition_of(*chat_id))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Sets one column of a `delivery_limits` row, creating the row with defaults if needed.
pub async fn set_limit<T>(
    conn: &mut PgConnection,
    scope: &'static str,
    id: Id,
    column: &'static str,
    value: T,
) -> anyhow::Result<()>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'static,
{
    let sql = format!(
        "INSERT INTO delivery_limits (scope, id, {column}) VALUES ($1, $2, $3)
         ON CONFLICT (scope, id) DO UPDATE SET {column} = EXCLUDED.{column}"
    );
    sqlx::query(&sql)
        .bind(scope)
        .bind(id)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(())
}
