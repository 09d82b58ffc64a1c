//! The schedule index: a projection that turns approvals into rows of `delivery_queue` (one per
//! post and chat, due at the publish time) and cancellations into cancelled rows.

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
        if envelope.aggregate_type != "Post" {
            return Ok(());
        }
        let post_id: Id = envelope.aggregate_id.parse()?;
        match &envelope.event {
            Some(Event::PostApproved(_)) => {
                // The post's chats and time come from the event store itself: the truth, now.
                let post: Post = self.store.load(post_id).await?;
                let (Some(workspace_id), Some(due_at)) = (post.workspace_id, post.publish_at)
                else {
                    anyhow::bail!("approved post {post_id} has no plan");
                };
                for chat_id in &post.chat_order {
                    let chat: Chat = self.store.load(*chat_id).await?;
                    let Some(bot_id) = chat.bot_id else {
                        anyhow::bail!("chat {chat_id} of post {post_id} is unknown")
                    };
                    sqlx::query(
                        "INSERT INTO delivery_queue (post_id, chat_id, workspace_id, bot_id, telegram_chat_id, due_at)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (post_id, chat_id) DO NOTHING",
                    )
                    .bind(post_id)
                    .bind(chat_id)
                    .bind(workspace_id)
                    .bind(bot_id)
                    .bind(chat.telegram_chat_id)
                    .bind(due_at)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Some(Event::PostCancelled(_) | Event::PostRejected(_)) => {
                sqlx::query("UPDATE delivery_queue SET state = 'cancelled' WHERE post_id = $1 AND state = 'scheduled'")
                    .bind(post_id)
                    .execute(&mut *conn)
                    .await?;
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
