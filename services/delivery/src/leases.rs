//! Partition leases, which let several delivery workers share the work safely: chats are spread
//! over [`PARTITIONS`](crate::PARTITIONS) partitions and each live worker leases a fair share, so
//! one chat's order and pacing belong to one worker at a time; a lease that is not renewed (the
//! worker died) is taken over by the others. Owns `delivery_workers` and `delivery_partitions`.

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::PARTITIONS;

/// The partitions a worker may claim from, until when.
#[derive(Debug, Clone)]
pub struct Owned {
    partitions: Vec<i16>,
    valid_until: Instant,
}

impl Owned {
    pub fn none() -> Self {
        Self {
            partitions: Vec::new(),
            valid_until: Instant::now(),
        }
    }

    /// The partitions this worker may claim work from now (none once its leases lapsed).
    pub fn at(&self, now: Instant) -> &[i16] {
        if now < self.valid_until {
            &self.partitions
        } else {
            &[]
        }
    }
}

/// A renewal of a worker's leases, handed to its dispatcher.
pub struct Renewal {
    pub owned: Owned,
    /// For partitions newly taken over: their chats' sends of the last minute, by any worker
    /// (bot, chat, Telegram chat id, when), for the dispatcher's pacer, before it sends there.
    pub recent_sends: Vec<(uuid::Uuid, uuid::Uuid, i64, Instant)>,
}

/// The keeper of a worker's leases, running beside its dispatcher.
pub struct Keeper {
    pub renewals: mpsc::UnboundedReceiver<Renewal>,
    task: JoinHandle<()>,
}

impl Keeper {
    /// Heart-beats and renews `worker`'s leases every fifth of `lease` in a task of its own, on
    /// `pool` (a connection of its own), so that a dispatcher busy claiming, or slow queries
    /// of the send tasks, never let a live worker pass for dead.
    pub fn start(pool: PgPool, worker: String, lease: Duration) -> Self {
        let (renewed, renewals) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut leases = Leases::new(worker, lease);
            let mut every = tokio::time::interval(lease / 5);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                match leases.renew(&pool).await {
                    Ok(renewal) => {
                        if renewed.send(renewal).is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "renewing delivery leases failed"
                        );
                    }
                }
            }
        });
        Self { renewals, task }
    }

    /// Stops heart-beating (the worker is about to release everything and retire).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The partitions this worker currently owns.
struct Leases {
    worker_id: String,
    lease: Duration,
    owned: Vec<i16>,
    valid_until: Instant,
}

impl Leases {
    /// Heartbeat and leases (one transaction), then what a dispatcher needs to know about new
    /// ones.
    async fn renew(&mut self, pool: &PgPool) -> anyhow::Result<Renewal> {
        let gained = self.refresh(pool).await?;
        let mut recent_sends = Vec::new();
        if !gained.is_empty() {
            let now = Instant::now();
            for (bot, chat, telegram_chat_id, age) in
                crate::queue::budget::recent_sends(pool, &gained).await?
            {
                let at = now
                    .checked_sub(Duration::from_secs_f64(age.max(0.0)))
                    .unwrap_or(now);
                recent_sends.push((bot, chat, telegram_chat_id, at));
            }
        }
        Ok(Renewal {
            owned: Owned {
                partitions: self.owned.clone(),
                valid_until: self.valid_until,
            },
            recent_sends,
        })
    }

    fn new(worker_id: String, lease: Duration) -> Self {
        Self {
            worker_id,
            lease,
            owned: Vec::new(),
            valid_until: Instant::now(),
        }
    }

    /// Records that this worker is alive, renews its leases, gives back what exceeds its fair
    /// share, and takes free or expired partitions up to it, in one transaction (it runs every
    /// fifth of a lease, busy or idle). Returns the partitions newly acquired.
    async fn refresh(&mut self, pool: &PgPool) -> anyhow::Result<Vec<i16>> {
        let started = Instant::now();
        let lease_secs = self.lease.as_secs_f64();
        let mut tx = pool.begin().await?;
        heartbeat(&mut tx, &self.worker_id).await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM delivery_workers WHERE heartbeat_at > now() - make_interval(secs => $1)",
        )
        .bind(lease_secs)
        .fetch_one(&mut *tx)
        .await?;
        let fair_share = (PARTITIONS as u64).div_ceil(live.max(1) as u64) as usize;
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
}

/// Gives every partition of `worker` back (on a clean stop) so the others take over at once.
pub async fn release_all(pool: &PgPool, worker: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE delivery_partitions SET owner = NULL, lease_until = 'epoch' WHERE owner = $1",
    )
    .bind(worker)
    .execute(pool)
    .await?;
    Ok(())
}

/// Which of `partitions` `worker` leases now, read in the caller's transaction: the fence a send
/// passes right before its request, so a worker whose lease lapsed stops before another starts.
pub async fn owned_now(
    conn: &mut sqlx::PgConnection,
    partitions: &[i16],
    worker: &str,
) -> sqlx::Result<std::collections::HashSet<i16>> {
    let owned: Vec<i16> = sqlx::query_scalar(
        "SELECT partition FROM delivery_partitions
          WHERE partition = ANY($1) AND owner = $2 AND lease_until > now()",
    )
    .bind(partitions)
    .bind(worker)
    .fetch_all(conn)
    .await?;
    Ok(owned.into_iter().collect())
}

/// Records that `worker` is alive, in the caller's transaction.
async fn heartbeat(conn: &mut sqlx::PgConnection, worker: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_workers (worker_id, heartbeat_at) VALUES ($1, now())
         ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()",
    )
    .bind(worker)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets workers silent for a day (a crashed worker's row stays until then, for the record).
pub async fn forget_silent(pool: &PgPool) -> sqlx::Result<()> {
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
