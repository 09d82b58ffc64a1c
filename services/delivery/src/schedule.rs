//! The schedule index: a projection that turns the event stream alone into what should be
//! delivered: one row per post and chat (planned, then pending once approved, settled once an
//! outcome is recorded), each chat a lane with its earliest due time, and the bots' state.
//! Its tables are its own ([`crate::queue::schedule`]); what the dispatcher did lives in the
//! dispatcher's tables, so `reset` drops everything and a replay re-opens nothing.

use anyhow::Context as _;
use domain::Id;
use projections::{Batch, Projection};
use schemas::v1::EventEnvelope;
use schemas::v1::event_envelope::Event;
use sqlx::PgConnection;

use crate::queue::schedule::{self as rows, BotColumn};

pub struct DeliverySchedule;

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
        if let Some(delivery) = settled_delivery(envelope)? {
            return Ok(rows::deliveries_settled(conn, &[delivery]).await?);
        }
        let id: Id = envelope.aggregate_id.parse()?;
        let Some(event) = &envelope.event else {
            return Ok(());
        };
        let workspace = || -> anyhow::Result<Id> { Ok(envelope.workspace_id.parse()?) };
        let chat = |chat_id: &str| -> anyhow::Result<Id> { Ok(chat_id.parse()?) };
        // An outcome's post (outcomes are on their delivery's subject, or of old the post's).
        let post = |post_id: &str| -> anyhow::Result<Id> {
            Ok(projections::outcome_post_id(envelope, post_id).parse()?)
        };
        match event {
            Event::BotRegistered(b) => {
                rows::bot_registered(conn, id, workspace()?, b.telegram_bot_id).await?
            }
            Event::BotPaused(p) => {
                rows::set_bot(conn, id, BotColumn::PausedReason, Some(p.reason.clone())).await?
            }
            Event::BotTokenReplaced(_) => {
                rows::set_bot(conn, id, BotColumn::PausedReason, None::<String>).await?
            }
            Event::BotPaidBroadcastSet(p) => {
                rows::set_bot(conn, id, BotColumn::PaidBroadcast, p.allowed).await?
            }
            Event::ChatConnected(c) => {
                rows::chat_connected(
                    conn,
                    id,
                    workspace()?,
                    c.bot_id.parse()?,
                    c.telegram_chat_id,
                )
                .await?
            }
            Event::ChatMigrated(m) => rows::chat_migrated(conn, id, m.to_telegram_chat_id).await?,
            Event::PostPlanned(p) => {
                let due_at = schemas::from_millis(p.publish_at_ms)
                    .ok_or_else(|| anyhow::anyhow!("bad publish time"))?;
                let chats = p
                    .chat_ids
                    .iter()
                    .map(|c| chat(c))
                    .collect::<anyhow::Result<Vec<Id>>>()?;
                rows::post_planned(conn, id, workspace()?, &chats, due_at).await?
            }
            Event::PostTargetsAdded(p) => {
                let chats = p
                    .chat_ids
                    .iter()
                    .map(|c| chat(c))
                    .collect::<anyhow::Result<Vec<Id>>>()?;
                rows::post_targets_added(conn, id, &chats).await?
            }
            Event::PostApproved(_) => {
                rows::set_post_status(conn, id, &["planned"], "pending").await?
            }
            Event::PostCancelled(_) | Event::PostExpired(_) => {
                rows::set_post_status(conn, id, &["planned", "pending"], "cancelled").await?
            }
            // Back to draft: its rows wait, unscheduled, for an edit and fresh approvals.
            Event::PostRejected(_) => {}
            // An edit voids the approvals: nothing goes out until the post is approved again,
            // at its new time. (An expired post's rows come back: only an expired post is
            // edited after its rows were dropped; a cancelled one never is.)
            Event::PostEdited(edited) => {
                let due_at = schemas::from_millis(edited.publish_at_ms)
                    .ok_or_else(|| anyhow::anyhow!("bad publish time"))?;
                rows::set_post_status(conn, id, &["pending", "cancelled"], "planned").await?;
                rows::post_rescheduled(conn, id, due_at).await?
            }
            Event::PostRescheduled(r) => {
                let due_at = schemas::from_millis(r.publish_at_ms)
                    .ok_or_else(|| anyhow::anyhow!("bad publish time"))?;
                rows::post_rescheduled(conn, id, due_at).await?
            }
            Event::DeliveryResolved(r) if r.resolution == "resend" => {
                let at =
                    schemas::from_millis(envelope.occurred_at_ms).unwrap_or_else(chrono::Utc::now);
                rows::delivery_resent(conn, post(&r.post_id)?, chat(&r.chat_id)?, at).await?
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs of outcomes (most of a busy stream) settle their deliveries with one statement.
    async fn apply_all(
        &self,
        conn: &mut PgConnection,
        events: &[(u64, EventEnvelope)],
    ) -> anyhow::Result<()> {
        let mut settled = Batch::default();
        for (position, envelope) in events {
            match settled_delivery(envelope)? {
                Some(delivery) => {
                    if !settled.accepts(&delivery) {
                        rows::deliveries_settled(conn, &settled.take()).await?;
                    }
                    settled.push(delivery, delivery);
                }
                None => {
                    rows::deliveries_settled(conn, &settled.take()).await?;
                    self.apply(conn, *position, envelope)
                        .await
                        .with_context(|| format!("applying {}", envelope.event_id))?;
                }
            }
        }
        Ok(rows::deliveries_settled(conn, &settled.take()).await?)
    }

    async fn reset(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        rows::reset(conn).await?;
        Ok(())
    }
}

/// The delivery (post, chat) an outcome settles: delivered, failed or unknown. None for any
/// other event.
fn settled_delivery(envelope: &EventEnvelope) -> anyhow::Result<Option<(Id, Id)>> {
    let (post_id, chat_id) = match &envelope.event {
        Some(Event::PostDelivered(d)) => (&d.post_id, &d.chat_id),
        Some(Event::DeliveryFailed(f)) => (&f.post_id, &f.chat_id),
        Some(Event::DeliveryUnknown(u)) => (&u.post_id, &u.chat_id),
        _ => return Ok(None),
    };
    // An outcome's post (outcomes are on their delivery's subject, or of old the post's).
    let post = projections::outcome_post_id(envelope, post_id).parse()?;
    Ok(Some((post, chat_id.parse()?)))
}
