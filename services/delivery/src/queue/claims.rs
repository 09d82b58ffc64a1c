//! The dispatcher's progress per delivery: claims, outcomes, and in-doubt recovery. Every
//! transition out of `sending` is conditioned on the claimant, so one worker can never settle
//! another's request.

use sqlx::{PgPool, Row};
use uuid::Uuid;

/// How many lanes one bot may contribute to a claim: a little more than it may send in one
/// tick, which is far more for a bot with paid broadcasts.
#[derive(Debug, Clone, Copy)]
pub struct LanesPerBot {
    pub normal: i64,
    pub paid: i64,
}

/// A due delivery a claim found: the head of one chat lane.
#[derive(Debug, Clone)]
pub struct Due {
    pub post_id: Uuid,
    pub chat_id: Uuid,
    pub workspace_id: Uuid,
    pub bot_id: Uuid,
    pub telegram_bot_id: i64,
    pub telegram_chat_id: i64,
    pub generation: i32,
    pub paid_broadcast: bool,
    /// When it falls due: now or earlier, or a moment ahead (within the claim's look-ahead).
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// A delivery this worker claimed (its progress row is committed as `sending`).
#[derive(Debug, Clone)]
pub struct Claimed {
    pub due: Due,
    /// This attempt's number within the generation (1 for the first).
    pub attempts: i32,
    pub migrated: bool,
}

/// What one look at the queue found: the due lane heads, and when the next delivery falls due.
#[derive(Debug, Default)]
pub struct Found {
    pub heads: Vec<Due>,
    /// The earliest due time beyond this look's look-ahead in the partitions, if any: when the
    /// dispatcher looks next, so that a post due between two ticks is not late by up to a tick.
    /// What falls due within the look-ahead was this look's to take; a lane it left (its chat
    /// or bot not free yet, a send of it on the wire) has a wake-up of its own, and waking at
    /// its due time as well cost several empty looks per message when due times were spread.
    pub next_due_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Due lane heads in `partitions`, fairly interleaved: the n-th lane of every bot and of every
/// workspace comes before the (n+1)-th of any. Within a bot, the longest chain first (critical
/// path: a channel with many posts before a private chat with one), then the oldest due. Bots paused, held, or in `without_budget` are left out
/// before anything is ranked, and each bot contributes at most `per_bot` lanes, so the work does
/// not grow with what is queued behind them. Chats with a send on the wire, held (429, back-off,
/// cap), or sent to by another worker within the last second are not candidates.
///
/// Sends on the wire are excluded with `NOT IN` over an uncorrelated subquery, which PostgreSQL
/// runs once into a hash whatever its statistics say. As an anti-join, a planner that still
/// took the progress table for empty (it fills from nothing in one claim) rescanned every
/// sending row for every due chat: 5 million comparisons and 900 ms per claim.
///
/// Deliveries falling due within `look_ahead` count as due, so that a claim made a moment
/// before a burst is due has the burst's requests ready to leave at its due time.
///
/// The next due time comes in the same statement (one round trip and one transaction per look,
/// however often the dispatcher looks): every row carries it, and a look that found nothing due
/// returns one row with only it.
pub async fn due(
    pool: &PgPool,
    partitions: &[i16],
    worker: &str,
    without_budget: &[Uuid],
    per_bot: LanesPerBot,
    limit: i64,
    look_ahead: std::time::Duration,
) -> sqlx::Result<Found> {
    let rows = sqlx::query(
        "WITH lanes AS (
             SELECT c.chat_id, c.workspace_id, c.bot_id, c.telegram_chat_id, c.next_due_at,
                    b.telegram_bot_id, b.paid_broadcast,
                    c.chain_ms,
                    row_number() OVER (PARTITION BY c.bot_id ORDER BY c.chain_ms DESC, c.next_due_at) AS bot_turn
               FROM delivery_bots b
              CROSS JOIN LATERAL (
                    SELECT c.* FROM delivery_chats c
                     WHERE c.bot_id = b.bot_id AND c.next_due_at <= now() + make_interval(secs => $7)
                       AND c.partition = ANY($1)
                       AND NOT EXISTS (SELECT 1 FROM delivery_chat_holds h
                                        WHERE h.chat_id = c.chat_id AND h.held_until > now())
                       AND c.chat_id NOT IN (SELECT p.chat_id FROM delivery_progress p
                                              WHERE p.state = 'sending')
                       AND NOT EXISTS (SELECT 1 FROM delivery_attempts a
                                        WHERE a.chat_id = c.chat_id AND a.outcome = 'sent' AND a.worker <> $2
                                          AND a.at > now() - interval '1060 milliseconds')
                     ORDER BY c.chain_ms DESC, c.next_due_at
                     LIMIT CASE WHEN b.paid_broadcast THEN $6 ELSE $4 END) c
              WHERE b.paused_reason IS NULL AND NOT (b.bot_id = ANY($3))
                AND NOT EXISTS (SELECT 1 FROM delivery_bot_budget bb
                                 WHERE bb.telegram_bot_id = b.telegram_bot_id AND bb.held_until > now())
         ), ranked AS (
             SELECT l.*, GREATEST(l.bot_turn,
                                  row_number() OVER (PARTITION BY l.workspace_id
                                                     ORDER BY l.chain_ms DESC, l.next_due_at)) AS turn
               FROM lanes l
         ), picked AS (
             SELECT r.chat_id, r.workspace_id, r.bot_id, r.telegram_chat_id, r.telegram_bot_id, r.paid_broadcast,
                    r.turn, r.chain_ms, r.next_due_at, h.post_id, h.generation, h.due_at
               FROM ranked r
              CROSS JOIN LATERAL (
                    SELECT s.post_id, s.generation, s.due_at FROM delivery_schedule s
                     WHERE s.chat_id = r.chat_id AND s.status = 'pending'
                       AND s.due_at <= now() + make_interval(secs => $7)
                       AND NOT EXISTS (SELECT 1 FROM delivery_progress p
                                        WHERE p.post_id = s.post_id AND p.chat_id = s.chat_id
                                          AND p.state = 'done' AND p.generation >= s.generation)
                     ORDER BY s.due_at, s.post_id
                     LIMIT 1) h
              ORDER BY r.turn, r.chain_ms DESC, r.next_due_at
              LIMIT $5
         ), ahead AS (
             SELECT min(d.next_due_at) AS next_due_at
               FROM UNNEST($1::smallint[]) AS p(partition)
              CROSS JOIN LATERAL (SELECT c.next_due_at FROM delivery_chats c
                                   WHERE c.partition = p.partition
                                     AND c.next_due_at > now() + make_interval(secs => $7)
                                   ORDER BY c.next_due_at LIMIT 1) d
         )
         SELECT a.next_due_at AS ahead, p.*
           FROM ahead a LEFT JOIN picked p ON true
          ORDER BY p.turn, p.chain_ms DESC, p.next_due_at",
    )
    .bind(partitions)
    .bind(worker)
    .bind(without_budget)
    .bind(per_bot.normal)
    .bind(limit)
    .bind(per_bot.paid)
    .bind(look_ahead.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut found = Found::default();
    for r in &rows {
        found.next_due_at = r.try_get("ahead")?;
        let Some(post_id) = r.try_get::<Option<Uuid>, _>("post_id")? else {
            continue;
        };
        found.heads.push(Due {
            post_id,
            chat_id: r.try_get("chat_id")?,
            workspace_id: r.try_get("workspace_id")?,
            bot_id: r.try_get("bot_id")?,
            telegram_bot_id: r.try_get("telegram_bot_id")?,
            telegram_chat_id: r.try_get("telegram_chat_id")?,
            generation: r.try_get("generation")?,
            paid_broadcast: r.try_get("paid_broadcast")?,
            due_at: r.try_get("due_at")?,
        });
    }
    Ok(found)
}

/// Commits the given deliveries as `sending` by `worker` before any request goes out. Returns
/// the ones claimed (a delivery already sending or done at its generation is skipped).
pub async fn claim(pool: &PgPool, worker: &str, due: Vec<Due>) -> sqlx::Result<Vec<Claimed>> {
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let posts: Vec<Uuid> = due.iter().map(|d| d.post_id).collect();
    let chats: Vec<Uuid> = due.iter().map(|d| d.chat_id).collect();
    let generations: Vec<i32> = due.iter().map(|d| d.generation).collect();
    let rows = sqlx::query(
        "INSERT INTO delivery_progress AS p (post_id, chat_id, generation, state, attempts, claimed_by, claimed_at)
         SELECT post_id, chat_id, generation, 'sending', 1, $1, now()
           FROM UNNEST($2::uuid[], $3::uuid[], $4::int[]) AS t(post_id, chat_id, generation)
         ON CONFLICT (post_id, chat_id) DO UPDATE SET
                state = 'sending', claimed_by = $1, claimed_at = now(),
                attempts = CASE WHEN p.generation < EXCLUDED.generation THEN 1 ELSE p.attempts + 1 END,
                migrated = CASE WHEN p.generation < EXCLUDED.generation THEN false ELSE p.migrated END,
                generation = EXCLUDED.generation
          WHERE p.state <> 'sending' AND NOT (p.state = 'done' AND p.generation >= EXCLUDED.generation)
         RETURNING post_id, chat_id, attempts, migrated",
    )
    .bind(worker)
    .bind(&posts)
    .bind(&chats)
    .bind(&generations)
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let (post_id, chat_id): (Uuid, Uuid) = (row.try_get("post_id")?, row.try_get("chat_id")?);
        if let Some(d) = due
            .iter()
            .find(|d| d.post_id == post_id && d.chat_id == chat_id)
        {
            claimed.push(Claimed {
                due: d.clone(),
                attempts: row.try_get("attempts")?,
                migrated: row.try_get("migrated")?,
            });
        }
    }
    Ok(claimed)
}

/// What happens to a claimed delivery after its attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// An outcome was recorded as an event: done at this generation.
    Done,
    /// To be tried again (the attempt counts).
    Retry,
    /// Nothing was attempted (held, deferred, lease lost): the attempt does not count.
    Untried,
    /// Sent once more to the chat's new id after a migration.
    Migrated,
}

/// Ends this worker's claim. Returns false when the claim was no longer this worker's (it was
/// flagged in doubt by another worker after this one went silent).
pub async fn release(
    pool: &PgPool,
    worker: &str,
    post_id: Uuid,
    chat_id: Uuid,
    how: Release,
) -> sqlx::Result<bool> {
    let set = match how {
        Release::Done => "state = 'done'",
        Release::Retry => "state = 'idle'",
        Release::Untried => "state = 'idle', attempts = attempts - 1",
        Release::Migrated => "state = 'idle', migrated = true",
    };
    let sql = format!(
        "UPDATE delivery_progress SET {set}, claimed_by = NULL
          WHERE post_id = $1 AND chat_id = $2 AND state = 'sending' AND claimed_by = $3"
    );
    let updated = sqlx::query(&sql)
        .bind(post_id)
        .bind(chat_id)
        .bind(worker)
        .execute(pool)
        .await?;
    Ok(updated.rows_affected() == 1)
}

/// Ends this worker's claims on `deliveries` (post, chat) as done, in the caller's
/// transaction; returns, per delivery, whether the claim was still this worker's.
pub async fn release_done_on(
    conn: &mut sqlx::PgConnection,
    worker: &str,
    deliveries: &[(Uuid, Uuid)],
) -> sqlx::Result<Vec<bool>> {
    let posts: Vec<Uuid> = deliveries.iter().map(|d| d.0).collect();
    let chats: Vec<Uuid> = deliveries.iter().map(|d| d.1).collect();
    let released: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE delivery_progress p SET state = 'done', claimed_by = NULL
           FROM UNNEST($1::uuid[], $2::uuid[]) AS t(post_id, chat_id)
          WHERE p.post_id = t.post_id AND p.chat_id = t.chat_id
            AND p.state = 'sending' AND p.claimed_by = $3
         RETURNING p.post_id, p.chat_id",
    )
    .bind(&posts)
    .bind(&chats)
    .bind(worker)
    .fetch_all(conn)
    .await?;
    let released: std::collections::HashSet<(Uuid, Uuid)> = released.into_iter().collect();
    Ok(deliveries.iter().map(|d| released.contains(d)).collect())
}

/// A delivery left `sending` by a worker that stopped heart-beating.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub post_id: Uuid,
    pub chat_id: Uuid,
    pub workspace_id: Uuid,
    pub claimed_by: String,
}

/// Deliveries whose worker has been silent for `timeout_secs`.
pub async fn orphans(pool: &PgPool, worker: &str, timeout_secs: f64) -> sqlx::Result<Vec<Orphan>> {
    let rows = sqlx::query(
        "SELECT p.post_id, p.chat_id, s.workspace_id, p.claimed_by FROM delivery_progress p
           JOIN delivery_schedule s USING (post_id, chat_id)
          WHERE p.state = 'sending' AND p.claimed_by <> $1
            AND NOT EXISTS (SELECT 1 FROM delivery_workers w
                             WHERE w.worker_id = p.claimed_by
                               AND w.heartbeat_at > now() - make_interval(secs => $2))",
    )
    .bind(worker)
    .bind(timeout_secs)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Orphan {
                post_id: r.try_get("post_id")?,
                chat_id: r.try_get("chat_id")?,
                workspace_id: r.try_get("workspace_id")?,
                claimed_by: r.try_get("claimed_by")?,
            })
        })
        .collect()
}

/// Closes an orphan after its in-doubt outcome was recorded (only if still the dead worker's).
pub async fn close_orphan(pool: &PgPool, orphan: &Orphan) -> sqlx::Result<bool> {
    release(
        pool,
        &orphan.claimed_by,
        orphan.post_id,
        orphan.chat_id,
        Release::Done,
    )
    .await
}
