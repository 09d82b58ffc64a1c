//! Partition leases, which let several delivery workers share the work safely: chats are spread
//! over [`PARTITIONS`](crate::PARTITIONS) partitions and each live worker leases a fair share, so
//! one chat's order and pacing belong to one worker at a time; a lease that is not renewed (the
//! worker died) is taken over by the others. Owns `delivery_workers` and `delivery_partitions`.

use std::time::Duration;

use sqlx::PgPool;
use tokio::time::Instant;

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

/// True while `worker` leases `partition`, read in the caller's transaction: the fence a send
/// passes right before its request, so a worker whose lease lapsed stops before another starts.
pub async fn still_owner(
    conn: &mut sqlx::PgConnection,
    partition: i16,
    worker: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM delivery_partitions
                         WHERE partition = $1 AND owner = $2 AND lease_until > now())",
    )
    .bind(partition)
    .bind(worker)
    .fetch_one(conn)
    .await
}

/// Records that `worker` is alive.
pub async fn heartbeat(pool: &PgPool, worker: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_workers (worker_id, heartbeat_at) VALUES ($1, now())
         ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()",
    )
    .bind(worker)
    .execute(pool)
    .await?;
    sqlx::query("DELETE FROM delivery_workers WHERE heartbeat_at < now() - interval '1 day'")
        .execute(pool)
        .await?;
    Ok(())
}

/// Forgets `worker` (on a clean stop, after its partitions were released).
pub async fn retire(pool: &PgPool, worker: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM delivery_workers WHERE worker_id = $1")
        .bind(worker)
        .execute(pool)
        .await?;
    Ok(())
}
