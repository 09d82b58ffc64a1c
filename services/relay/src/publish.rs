//! Publishing: outbox rows (new events) and journal rows (a rebuild), each message pinned to the
//! stream position it must take.

use anyhow::{Context, bail};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use platform::nats::Bus;
use schemas::{Message, StoredEvent, to_integration_event};
use sqlx::PgPool;
use store::journal::{self, EventKey};

/// Events per batch.
pub const BATCH: usize = 500;

/// Starts publishing `event` so that it lands right after stream position `after`, or not at all.
pub async fn send(bus: &Bus, event: &StoredEvent, after: u64) -> anyhow::Result<PublishAckFuture> {
    // A conversion error is a bug: stop here (and retry) rather than publish out of order.
    let envelope = to_integration_event(event).with_context(|| {
        format!(
            "converting event {}:{}:{}",
            event.aggregate_type, event.aggregate_id, event.sequence
        )
    })?;
    let subject = bus.names.event_subject(
        &envelope.aggregate_type,
        &envelope.workspace_id,
        &envelope.aggregate_id,
    );
    let message = PublishMessage::build()
        .message_id(&envelope.event_id)
        .expected_last_sequence(after)
        .payload(envelope.encode_to_vec().into());
    bus.jetstream
        .send_publish(subject, message)
        .await
        .context("publishing to JetStream")
}

pub fn key(event: &StoredEvent) -> EventKey {
    EventKey {
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
    }
}

/// Publishes up to one batch of outbox rows after stream position `at`, journals the positions
/// JetStream acknowledged and removes those rows from the outbox. Returns how many were
/// published and where the stream ends now. Fails (after journalling what did land) when the
/// stream refused a message: it is not where the relay believed it was.
pub async fn outbox_batch(pool: &PgPool, bus: &Bus, at: u64) -> anyhow::Result<(usize, u64)> {
    let mut tx = pool.begin().await?;
    // Waits for rows another relay still holds (one that just lost its lock and is finishing a
    // batch) rather than skipping them: skipping would publish later events of an aggregate
    // before earlier ones.
    let rows = sqlx::query(
        "SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version,
                e.payload, e.metadata
           FROM outbox o
           JOIN events e USING (aggregate_type, aggregate_id, sequence)
          ORDER BY o.id
          LIMIT $1
            FOR UPDATE OF o",
    )
    .bind(BATCH as i64)
    .fetch_all(&mut *tx)
    .await
    .context("reading the outbox")?;
    if rows.is_empty() {
        return Ok((0, at));
    }
    let mut pending = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let event = journal::stored_event(row)?;
        let ack = send(bus, &event, at + i as u64).await?;
        pending.push((key(&event), ack));
    }
    let mut end = at;
    let mut refused = None;
    let mut landed = Vec::with_capacity(pending.len());
    for (key, ack) in pending {
        match ack.await {
            Ok(ack) if ack.duplicate || ack.sequence == end + 1 => {
                // A duplicate is already in the stream, at the position JetStream reports.
                end = end.max(ack.sequence);
                landed.push((ack.sequence, key));
            }
            Ok(ack) => {
                refused = Some(anyhow::anyhow!(
                    "JetStream put event {} at {} where {} was expected",
                    key.event_id(),
                    ack.sequence,
                    end + 1
                ));
                break;
            }
            Err(error) => {
                refused = Some(anyhow::Error::new(error).context(format!(
                    "JetStream did not take event {} at position {}",
                    key.event_id(),
                    end + 1
                )));
                break;
            }
        }
    }
    journal::append_all(&mut tx, &landed).await?;
    let published = (end - at) as usize;
    tx.commit().await.context("journalling published events")?;
    if let Some(error) = refused {
        return Err(error);
    }
    tracing::debug!(published, "relayed events");
    Ok((published, end))
}

/// Publishes journal positions `(after, until]` again, in order, each at its own position.
/// `progress(done, total)` is called after each batch.
pub async fn journal_range(
    pool: &PgPool,
    bus: &Bus,
    after: u64,
    until: u64,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<()> {
    let mut at = after;
    while at < until {
        let batch = journal::read_after(pool, at, BATCH as i64).await?;
        if batch.is_empty() {
            bail!("the journal ends at {at}, before {until}");
        }
        let mut pending = Vec::with_capacity(batch.len());
        for published in &batch {
            if published.position != at + 1 + pending.len() as u64 {
                bail!(
                    "the journal has a hole before position {}; it cannot be replayed in order",
                    published.position
                );
            }
            let ack = send(bus, &published.event, published.position - 1).await?;
            pending.push((published.position, ack));
        }
        for (position, ack) in pending {
            let ack = ack
                .await
                .with_context(|| format!("republishing position {position}"))?;
            if ack.sequence != position {
                bail!(
                    "JetStream put journal position {position} at {}",
                    ack.sequence
                );
            }
            at = position;
        }
        progress(at - after, until - after);
    }
    Ok(())
}
