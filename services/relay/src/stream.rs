//! Keeps the JetStream event stream equal to the journal: PostgreSQL is the source of truth.

use anyhow::{Context, bail};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::Stream;
use platform::nats::Bus;
use schemas::Message as _;
use schemas::v1::EventEnvelope;
use sqlx::PgPool;
use store::journal::{self, EventKey};

use crate::publish;

/// Makes the stream hold exactly the journal, position for position, and returns where it ends.
///
/// - Messages beyond the journal (published, then the relay stopped before journalling them) are
///   adopted into the journal when they are events of this database.
/// - A stream that ends early but is otherwise intact (truncated, or empty on a fresh server) gets
///   the missing positions republished.
/// - Anything else (deleted, purged, messages removed, replaced) is deleted and republished in
///   full. Projection checkpoints stay valid because every position gets its old event back.
/// - A stream holding events this database does not have is refused: it belongs to another one.
pub async fn sync(pool: &PgPool, bus: &Bus) -> anyhow::Result<u64> {
    let mut stream = open_or_create(bus).await?;
    let (mut last, messages) = {
        let state = &stream.info().await?.state;
        (state.last_sequence, state.messages)
    };
    let mut journalled = journal::last_position(pool).await?;
    let contiguous = messages == last;
    if contiguous && last > journalled {
        adopt(pool, &stream, journalled, last).await?;
        journalled = last;
    }
    if contiguous && last > 0 {
        // The last message must be the event the journal has there.
        let message = stored_key(pool, &stream, last).await?;
        if journal::at(pool, last).await?.as_ref() != Some(&message) {
            tracing::warn!(
                position = last,
                "the event stream does not match the journal; rebuilding it from PostgreSQL"
            );
            last = recreate(bus).await?;
        }
    } else if !contiguous {
        tracing::warn!(
            last,
            messages,
            "the event stream lost messages; rebuilding it from PostgreSQL"
        );
        last = recreate(bus).await?;
    }
    if last < journalled {
        tracing::warn!(
            stream_ends_at = last,
            journal_ends_at = journalled,
            "the event stream is behind what was published; republishing the history from PostgreSQL"
        );
        publish::journal_range(pool, bus, last, journalled, &|done, total| {
            tracing::info!(done, total, "republishing events");
        })
        .await?;
        tracing::info!(
            events = journalled - last,
            "event stream rebuilt from PostgreSQL"
        );
        last = journalled;
    }
    if last == 0 {
        let requeued = journal::requeue_unjournalled(pool).await?;
        if requeued > 0 {
            tracing::warn!(
                requeued,
                "events published before the journal existed are queued again for the new stream"
            );
        }
    }
    Ok(last)
}

/// True when the stream still exists and ends, without holes, at `position`.
pub async fn looks_intact(bus: &Bus, position: u64) -> bool {
    let Ok(mut stream) = bus.jetstream.get_stream(bus.names.events_stream()).await else {
        return false;
    };
    match stream.info().await {
        Ok(info) => info.state.last_sequence == position && info.state.messages == position,
        Err(_) => false,
    }
}

async fn open_or_create(bus: &Bus) -> anyhow::Result<Stream> {
    match bus.jetstream.get_stream(bus.names.events_stream()).await {
        Ok(stream) => Ok(stream),
        Err(error)
            if matches!(
                error.kind(),
                GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            tracing::warn!(
                stream = bus.names.events_stream(),
                "the event stream is missing; creating it"
            );
            bus.ensure_stream().await?;
            Ok(bus.jetstream.get_stream(bus.names.events_stream()).await?)
        }
        Err(error) => Err(error).context("opening the event stream"),
    }
}

/// Deletes and recreates the stream (the only way to make its positions start at 1 again).
async fn recreate(bus: &Bus) -> anyhow::Result<u64> {
    let name = bus.names.events_stream();
    bus.jetstream
        .delete_stream(&name)
        .await
        .with_context(|| format!("deleting the damaged stream {name}"))?;
    bus.ensure_stream().await?;
    Ok(0)
}

/// Journals stream positions `(after, until]`, which JetStream holds but the journal does not.
async fn adopt(pool: &PgPool, stream: &Stream, after: u64, until: u64) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    for position in after + 1..=until {
        let key = stored_key(pool, stream, position).await?;
        journal::append(&mut tx, position, &key).await?;
    }
    tx.commit().await?;
    tracing::info!(
        adopted = until - after,
        "journalled events the stream held beyond the journal"
    );
    Ok(())
}

/// The event at stream `position`, which must be one of this database's.
async fn stored_key(pool: &PgPool, stream: &Stream, position: u64) -> anyhow::Result<EventKey> {
    let message = stream
        .get_raw_message(position)
        .await
        .with_context(|| format!("reading stream position {position}"))?;
    let envelope = EventEnvelope::decode(message.payload)
        .with_context(|| format!("stream position {position} is not a herald.v1.EventEnvelope"))?;
    let key = EventKey {
        aggregate_type: envelope.aggregate_type,
        aggregate_id: envelope.aggregate_id,
        sequence: envelope.sequence as i64,
    };
    if !journal::is_stored(pool, &key).await? {
        bail!(
            "stream position {position} holds event {} which this database does not have: the stream \
             belongs to another Herald database. Use another HERALD_NATS_PREFIX, or delete that stream",
            key.event_id()
        );
    }
    Ok(key)
}
