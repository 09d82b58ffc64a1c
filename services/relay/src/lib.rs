//! The outbox relay: publishes every committed event to NATS JetStream, effectively once and in
//! order per aggregate, and keeps the stream rebuildable from PostgreSQL.
//!
//! How it cannot skip: it publishes whatever rows are *in* the outbox (written by a trigger in
//! the committing transaction) and removes them only after JetStream acknowledged them, in the
//! transaction that journals their stream positions (`store::journal`). A slow transaction that
//! commits late simply appears later; nothing is tracked by "highest id seen".
//!
//! How it cannot duplicate or reorder: each message carries `Nats-Msg-Id` = the event's identity
//! and `Nats-Expected-Last-Sequence` = the position the relay believes the stream ends at. A
//! stream that moved under it (another relay published, the stream was replaced) refuses the
//! publish instead of appending out of place. One relay is active at a time (an advisory lock;
//! others wait as hot standbys), and it re-checks that it still holds the lock before each batch.
//!
//! How JetStream is rebuilt: [`stream::sync`] compares the stream with the journal at start, after
//! any failed publish and whenever the stream looks different while idle. Lost, emptied, replaced
//! or truncated, it is republished from `events` in journal order with the same message ids, so
//! every position means what it meant before and projection checkpoints stay valid.

mod publish;
mod stream;

use std::time::Duration;

use anyhow::{Context, bail};
use platform::Shutdown;
use platform::nats::Bus;
use sqlx::PgPool;
use sqlx::postgres::PgListener;

pub use publish::BATCH;

/// Advisory lock held by the active relay.
const LEADER_LOCK: &str = "herald:relay";
/// How long an idle relay waits for a notification before it looks at the outbox and the stream
/// anyway. Notifications wake it for every commit that enqueued events; this only bounds how
/// long a lost one (a dropped listening connection) or a lost stream goes unnoticed.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Runs the relay until `shutdown` is cancelled. A relay that loses its lock stops acting and
/// waits to become active again.
pub async fn run(pool: PgPool, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    loop {
        tracing::info!("relay waiting to become the active relay");
        let mut leader = tokio::select! {
            lock = platform::postgres::lock(&pool, LEADER_LOCK) => lock?,
            _ = shutdown.cancelled() => return Ok(()),
        };
        tracing::info!("relay active");
        match lead(&pool, &bus, &mut leader, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "relay stopped acting");
                drop(leader);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
            }
        }
    }
}

/// Publishes while this relay holds the lock; returns on shutdown, fails when the lock is lost.
async fn lead(
    pool: &PgPool,
    bus: &Bus,
    leader: &mut platform::postgres::SessionLock,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .context("relay: listening for outbox notifications")?;
    listener.listen("herald_outbox").await?;
    // Where the stream ends, as far as this relay knows; `None` until checked against the journal.
    let mut position: Option<u64> = None;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        if !leader.is_held().await {
            bail!("the relay lock's database session ended; another relay may be active now");
        }
        let published = match position {
            Some(at) => publish::outbox_batch(pool, bus, at).await,
            None => stream::sync(pool, bus).await.map(|at| (0, at)),
        };
        match published {
            Ok((count, at)) => {
                position = Some(at);
                if count == BATCH {
                    continue;
                }
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "relay batch failed; checking the stream against the journal"
                );
                position = None;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                continue;
            }
        }
        tokio::select! {
            _ = listener.recv() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {
                // Idle: make sure the stream still holds what was published (it may have been
                // deleted, purged or replaced by a fresh server).
                if let Some(at) = position
                    && !stream::looks_intact(bus, at).await
                {
                    position = None;
                }
            }
            _ = shutdown.cancelled() => return Ok(()),
        }
    }
}
