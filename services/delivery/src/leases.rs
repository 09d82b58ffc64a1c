//! What lets several delivery workers share the work safely:
//! - partition leases: chats are spread over [`PARTITIONS`](crate::PARTITIONS) partitions and each
//!   live worker leases a fair share, so one chat's order and pacing belong to one worker at a
//!   time; a lease that is not renewed (the worker died) is taken over by the others;
//! - the per-bot budget: Telegram's 30 messages per second per bot hold across all workers,
//!   through a sliding log of reserved send slots in PostgreSQL.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::PARTITIONS;

/// The partitions this worker currently owns.
pub struct Leases {
    worker_id: String,
    lease: Duration,
    owned: Vec<i16>,
    valid_until: Instant,
}

impl Leases {
    pub fn new(worker_id: String, lease: Duration) -> Self {
        Self {
            worker_id,
            lease,
            owned: Vec::new(),
            valid_until: Instant::now(),
        }
    }

    /// The partitions this worker may claim work from now (none once its leases lapsed).
    pub fn owned(&self, now: Instant) -> &[i16] {
        if now < self.valid_until {
            &self.owned
        } else {
            &[]
        }
    }

    /// Renews this worker's leases, gives back what exceeds its fair share, and takes free or
    /// expired partitions up to it. Returns the partitions newly acquired.
    pub async fn refresh(&mut self, pool: &PgPool) -> anyhow::Result<Vec<i16>> {
        let started = Instant::now();
        let lease_secs = self.lease.as_secs_f64();
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM delivery_workers WHERE heartbeat_at > now() - make_interval(secs => $1)",
        )
        .bind(lease_secs)
        .fetch_one(pool)
        .await?;
        let fair_share = (PARTITIONS as u64).div_ceil(live.max(1) as u64) as usize;
        let mut tx = pool.begin().await?;
        let mut owned: Vec<i16> = sqlx::query_scalar(
            "UPDATE delivery_partitions SET lease_until = now() + make_interval(secs => $2)
              WHERE owner = $1 RETURNING partition",
        )
        .bind(&self.worker_id)
        .bind(lease_secs)
        .fetch_all(&mut *tx)
        .await?;
        owned.sort_unstable();
        let mut gained = Vec::new();
        if owned.len() > fair_share {
            let released = owned.split_off(fair_share);
            sqlx::query("UPDATE delivery_partitions SET owner = NULL, lease_until = 'epoch' WHERE partition = ANY($1)")
                .bind(&released)
                .execute(&mut *tx)
                .await?;
            tracing::info!(worker = %self.worker_id, released = released.len(), "gave partitions back for a fair share");
        } else if owned.len() < fair_share {
            gained = sqlx::query_scalar(
                "UPDATE delivery_partitions SET owner = $1, lease_until = now() + make_interval(secs => $2)
                  WHERE partition IN (SELECT partition FROM delivery_partitions
                                       WHERE lease_until < now() ORDER BY partition LIMIT $3
                                         FOR UPDATE SKIP LOCKED)
                  RETURNING partition",
            )
            .bind(&self.worker_id)
            .bind(lease_secs)
            .bind((fair_share - owned.len()) as i64)
            .fetch_all(&mut *tx)
            .await?;
            owned.extend(&gained);
            owned.sort_unstable();
        }
        tx.commit().await?;
        if !gained.is_empty() {
            tracing::info!(worker = %self.worker_id, gained = gained.len(), owned = owned.len(), "took over partitions");
        }
        self.owned = owned;
        // Stop using a lease well before it expires (it is renewed every fifth of it), in
        // case renewals are slow: two workers must never both believe they own a partition.
        self.valid_until = started + self.lease.mul_f64(0.8);
        Ok(gained)
    }

    /// Gives every partition back (on a clean stop) so the other workers take over at once.
    pub async fn release_all(&mut self, pool: &PgPool) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE delivery_partitions SET owner = NULL, lease_until = 'epoch' WHERE owner = $1",
        )
        .bind(&self.worker_id)
        .execute(pool)
        .await?;
        self.owned.clear();
        Ok(())
    }
}

/// Reserves up to `wanted` send slots for `bot` within its shared limit of `per_window` sends
/// per `window`, across all workers. Returns how many were granted.
pub async fn reserve_bot_sends(
    pool: &PgPool,
    bot: Uuid,
    wanted: usize,
    per_window: usize,
    window: Duration,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT INTO delivery_bot_budget (bot_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(bot)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT bot_id FROM delivery_bot_budget WHERE bot_id = $1 FOR UPDATE")
        .bind(bot)
        .execute(&mut *tx)
        .await?;
    let used: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM delivery_bot_sends WHERE bot_id = $1 AND at > clock_timestamp() - make_interval(secs => $2)",
    )
    .bind(bot)
    .bind(window.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    let granted = wanted.min(per_window.saturating_sub(used.max(0) as usize));
    if granted > 0 {
        sqlx::query("INSERT INTO delivery_bot_sends (bot_id, at) SELECT $1, clock_timestamp() FROM generate_series(1, $2)")
            .bind(bot)
            .bind(granted as i32)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(granted)
}
