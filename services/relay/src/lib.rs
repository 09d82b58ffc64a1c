//! The outbox relay: publishes every committed event to NATS JetStream, effectively once and in
//! order per aggregate.
//!
//! How it cannot skip: it publishes whatever rows are *in* the outbox (written by a trigger in
//! the committing transaction) and deletes them only after JetStream acknowledged them. A slow
//! transaction that commits late simply appears later; nothing is tracked by "highest id seen".
//!
//! How it cannot duplicate: each message carries `Nats-Msg-Id` = the event's identity, so a
//! re-publish after a crash (published, not yet deleted) is dropped by JetStream's dedup window;
//! projections additionally ignore per-aggregate sequences they already applied.
//!
//! How it keeps order: one relay is active at a time (a PostgreSQL advisory lock; others wait
//! as hot standbys), rows go out in outbox order, and acks are awaited before the next batch.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use platform::Shutdown;
use platform::nats::Bus;
use schemas::{Message, StoredEvent, to_integration_event};
use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};

/// Advisory lock held by the active relay.
const LEADER_LOCK: &str = "herald:relay";
const BATCH: i64 = 500;
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Runs the relay until `shutdown` is cancelled.
pub async fn run(pool: PgPool, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::info!("relay waiting to become the active relay");
    let leader = tokio::select! {
        lock = platform::postgres::lock(&pool, LEADER_LOCK) => lock?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    tracing::info!("relay active");
    let mut listener = PgListener::connect_with(&pool)
        .await
        .context("relay: listening for outbox notifications")?;
    listener.listen("herald_outbox").await?;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        match publish_batch(&pool, &bus).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(_) => {}
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "relay batch failed, will retry"
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        tokio::select! {
            _ = listener.recv() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = shutdown.cancelled() => break,
        }
    }
    drop(leader);
    Ok(())
}

/// Publishes up to one batch of outbox rows; returns how many were published.
pub async fn publish_batch(pool: &PgPool, bus: &Bus) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT o.id, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
                e.payload, e.metadata
           FROM outbox o
           JOIN events e USING (aggregate_type, aggregate_id, sequence)
          ORDER BY o.id
          LIMIT $1
            FOR UPDATE OF o SKIP LOCKED",
    )
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await
    .context("reading the outbox")?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(rows.len());
    for row in &rows {
        let stored = StoredEvent {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
            event_type: row.try_get("event_type")?,
            event_version: row.try_get("event_version")?,
            payload: row.try_get("payload")?,
            metadata: serde_json::from_value::<HashMap<String, String>>(row.try_get("metadata")?)
                .unwrap_or_default(),
        };
        // A conversion error is a bug: stop here (and retry) rather than publish out of order.
        let envelope = to_integration_event(&stored).with_context(|| {
            format!(
                "converting event {}:{}:{}",
                stored.aggregate_type, stored.aggregate_id, stored.sequence
            )
        })?;
        let subject = bus.names.event_subject(
            &envelope.aggregate_type,
            &envelope.workspace_id,
            &envelope.aggregate_id,
        );
        let message = PublishMessage::build()
            .message_id(&envelope.event_id)
            .payload(envelope.encode_to_vec().into());
        acks.push(
            bus.jetstream
                .send_publish(subject, message)
                .await
                .context("publishing to JetStream")?,
        );
        ids.push(row.try_get::<i64, _>("id")?);
    }
    for ack in acks {
        ack.await
            .context("JetStream did not acknowledge a published event")?;
    }
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit()
        .await
        .context("removing published rows from the outbox")?;
    tracing::debug!(published = ids.len(), "relayed events");
    Ok(ids.len())
}
