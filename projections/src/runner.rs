//! Feeds a [`Projection`] from the JetStream event stream, exactly once.
//!
//! The checkpoint in PostgreSQL is the source of truth: on every (re)start the runner recreates
//! its durable consumer at `checkpoint + 1`, applies the messages at hand in batches (up to
//! [`BATCH`], in stream order), each batch in one transaction that also advances the
//! checkpoint, and acks only after the commit. A message at or below the checkpoint is acked and
//! ignored. The checkpoint alone is enough: the relay puts each event at exactly one stream
//! position and keeps those positions through a rebuild of the stream (decision 0006).
//! One runner per projection is active at a time (a PostgreSQL advisory lock).

use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures::{FutureExt, StreamExt};
use platform::Shutdown;
use platform::nats::Bus;
use schemas::Message as _;
use schemas::v1::EventEnvelope;
use sqlx::{PgConnection, PgPool};

use crate::Projection;

/// The advisory lock that makes one runner per projection active.
fn lock_name(projection: &str) -> String {
    format!("herald:projection:{projection}")
}
/// How long a runner waits for messages before it checks that its checkpoint was not reset (a
/// rebuild) and that its consumer still exists (a rebuilt stream).
const IDLE_CHECK: Duration = Duration::from_secs(2);
/// Messages applied in one transaction at most: what is already delivered to the consumer is
/// taken, never waited for, so a batch adds no latency and a busy stream costs a transaction
/// per batch rather than per event.
pub const BATCH: usize = 256;

/// Runs `projection` until `shutdown`, restarting from its checkpoint after any error.
pub async fn run<P: Projection>(
    pool: PgPool,
    bus: Bus,
    projection: P,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let name = projection.name();
    let lock = lock_name(name);
    let _active = tokio::select! {
        lock = platform::postgres::lock(&pool, &lock) => lock?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    tracing::info!(projection = name, "projection active");
    loop {
        match follow(&pool, &bus, &projection, &shutdown, None, &|_, _| {}).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::warn!(
                    projection = name,
                    error = format!("{error:#}"),
                    "projection restarting from its checkpoint"
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}

/// Drops `projection`'s rows and rebuilds them from the start of the stream. When a runner of
/// this projection is active elsewhere, it notices the reset and does the replay; otherwise this
/// call replays itself. `progress(applied, target)` is called as the replay advances.
pub async fn rebuild<P: Projection>(
    pool: &PgPool,
    bus: &Bus,
    projection: &P,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<u64> {
    let name = projection.name();
    // The journal, not the stream, says where history ends (the stream may be being rebuilt).
    let target = store::journal::last_position(pool).await?;

    let mut tx = pool.begin().await?;
    lock_checkpoint(&mut tx, name).await?;
    projection.reset(&mut tx).await?;
    save_checkpoint(&mut tx, name, 0).await?;
    tx.commit().await?;
    tracing::info!(projection = name, target, "projection reset, replaying");

    if let Some(_no_runner) = platform::postgres::try_lock(pool, &lock_name(name)).await? {
        let never = Shutdown::new();
        follow(pool, bus, projection, &never, Some(target), progress).await?;
    } else {
        loop {
            let applied = load_checkpoint(pool, name).await?;
            progress(applied.min(target), target);
            if applied >= target {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    progress(target, target);
    Ok(target)
}

/// The stream position a projection has applied up to.
pub async fn checkpoint(pool: &PgPool, name: &str) -> anyhow::Result<u64> {
    load_checkpoint(pool, name).await
}

/// Follows the stream from the checkpoint, until shutdown or (when given) position `until`.
async fn follow<P: Projection>(
    pool: &PgPool,
    bus: &Bus,
    projection: &P,
    shutdown: &Shutdown,
    until: Option<u64>,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<()> {
    let name = projection.name();
    let mut checkpoint = load_checkpoint(pool, name).await?;
    if until.is_some_and(|until| checkpoint >= until) {
        return Ok(());
    }
    let stream = bus.jetstream.get_stream(bus.names.events_stream()).await?;
    let durable = bus.names.consumer(name);
    // The database checkpoint decides where to start, not the consumer's own ack state.
    let _ = stream.delete_consumer(&durable).await;
    let consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some(durable),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: checkpoint + 1,
            },
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            filter_subject: bus.names.all_events(),
            ..Default::default()
        })
        .await
        .context("creating the durable consumer")?;
    let mut consumer = consumer;
    let mut messages = consumer.messages().await?;
    loop {
        let next = tokio::select! {
            next = tokio::time::timeout(IDLE_CHECK, messages.next()) => next,
            _ = shutdown.cancelled() => return Ok(()),
        };
        let message = match next {
            Err(_idle) => {
                if load_checkpoint(pool, name).await? != checkpoint {
                    bail!("checkpoint changed underneath (a rebuild reset it)");
                }
                // A deleted stream (JetStream lost its store) takes the consumer with it; the
                // relay rebuilds the stream with the same positions, so resume from the checkpoint.
                if let Err(error) = consumer.info().await {
                    bail!("the consumer is gone ({error}); the stream was probably rebuilt");
                }
                continue;
            }
            Ok(None) => bail!("the consumer's message stream ended"),
            Ok(Some(message)) => message.map_err(|e| anyhow::anyhow!("receiving: {e}"))?,
        };
        let mut batch = vec![message];
        while batch.len() < BATCH {
            match messages.next().now_or_never() {
                Some(Some(message)) => {
                    batch.push(message.map_err(|e| anyhow::anyhow!("receiving: {e}"))?)
                }
                Some(None) => bail!("the consumer's message stream ended"),
                None => break,
            }
        }
        let mut events = Vec::with_capacity(batch.len());
        for message in &batch {
            let position = message
                .info()
                .map_err(|e| anyhow::anyhow!("message info: {e}"))?
                .stream_sequence;
            if position > checkpoint {
                let envelope =
                    EventEnvelope::decode(message.payload.clone()).with_context(|| {
                        format!("stream message {position} is not a herald.v1.EventEnvelope")
                    })?;
                events.push((position, envelope));
            }
        }
        if !events.is_empty() {
            checkpoint = apply_batch(pool, projection, checkpoint, &events).await?;
        }
        for message in batch {
            message
                .ack()
                .await
                .map_err(|e| anyhow::anyhow!("ack: {e}"))?;
        }
        if let Some(until) = until {
            progress(checkpoint, until);
            if checkpoint >= until {
                return Ok(());
            }
        }
    }
}

/// Applies `events` (in stream order, all past `expected_checkpoint`) and advances the
/// checkpoint to the last of them, in one transaction. Returns the new checkpoint.
async fn apply_batch<P: Projection>(
    pool: &PgPool,
    projection: &P,
    expected_checkpoint: u64,
    events: &[(u64, EventEnvelope)],
) -> anyhow::Result<u64> {
    let name = projection.name();
    let mut tx = pool.begin().await?;
    let current = lock_checkpoint(&mut tx, name).await?;
    if current != expected_checkpoint {
        bail!("checkpoint is {current}, expected {expected_checkpoint} (reset or another runner)");
    }
    projection.apply_all(&mut tx, events).await?;
    let checkpoint = events
        .last()
        .map_or(expected_checkpoint, |(position, _)| *position);
    save_checkpoint(&mut tx, name, checkpoint).await?;
    tx.commit().await?;
    Ok(checkpoint)
}

/// Locks this projection's checkpoint row (created at 0 the first time) and returns it: one
/// statement once the row exists.
async fn lock_checkpoint(conn: &mut PgConnection, name: &str) -> anyhow::Result<u64> {
    loop {
        let sequence: Option<i64> = sqlx::query_scalar(
            "SELECT stream_sequence FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(sequence) = sequence {
            return Ok(sequence as u64);
        }
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, stream_sequence) VALUES ($1, 0)
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .execute(&mut *conn)
        .await?;
    }
}

async fn save_checkpoint(conn: &mut PgConnection, name: &str, position: u64) -> anyhow::Result<()> {
    sqlx::query("UPDATE projection_checkpoints SET stream_sequence = $2, updated_at = now() WHERE projection = $1")
        .bind(name)
        .bind(position as i64)
        .execute(conn)
        .await?;
    Ok(())
}

async fn load_checkpoint(pool: &PgPool, name: &str) -> anyhow::Result<u64> {
    let sequence: Option<i64> = sqlx::query_scalar(
        "SELECT stream_sequence FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(sequence.unwrap_or(0) as u64)
}
