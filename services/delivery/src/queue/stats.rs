//! Read queries others need: safety stats (the API), the attempt history of a delivery (the
//! post view), and progress counts (tests and the benchmark).

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

/// What was sent and refused in the last hour, for a bot or a chat.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub sent_last_hour: i64,
    pub sent_last_minute: i64,
    pub sent_last_second: i64,
    pub oldest_in_hour: Option<DateTime<Utc>>,
    pub oldest_in_minute: Option<DateTime<Utc>>,
    pub last_sent: Option<DateTime<Utc>>,
    pub rate_limited: i64,
    pub forbidden: i64,
}

#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// All chats of a Telegram bot.
    Bot(i64),
    Chat(Uuid),
}

pub async fn window(pool: &PgPool, scope: Scope) -> sqlx::Result<Window> {
    let filter = match scope {
        Scope::Bot(_) => "telegram_bot_id = $1",
        Scope::Chat(_) => "chat_id = $1",
    };
    let sql = format!(
        "SELECT count(*) FILTER (WHERE outcome = 'sent') AS hour,
                count(*) FILTER (WHERE outcome = 'sent' AND at > now() - interval '1 minute') AS minute,
                count(*) FILTER (WHERE outcome = 'sent' AND at > now() - interval '1 second') AS second,
                min(at) FILTER (WHERE outcome = 'sent') AS oldest_hour,
                min(at) FILTER (WHERE outcome = 'sent' AND at > now() - interval '1 minute') AS oldest_minute,
                max(at) FILTER (WHERE outcome = 'sent') AS last_sent,
                count(*) FILTER (WHERE outcome = 'rate_limited') AS rate_limited,
                count(*) FILTER (WHERE outcome = 'forbidden') AS forbidden
           FROM delivery_attempts
          WHERE {filter} AND at > now() - interval '1 hour'"
    );
    let query = sqlx::query(&sql);
    let query = match scope {
        Scope::Bot(id) => query.bind(id),
        Scope::Chat(id) => query.bind(id),
    };
    let row = query.fetch_one(pool).await?;
    Ok(Window {
        sent_last_hour: row.try_get("hour")?,
        sent_last_minute: row.try_get("minute")?,
        sent_last_second: row.try_get("second")?,
        oldest_in_hour: row.try_get("oldest_hour")?,
        oldest_in_minute: row.try_get("oldest_minute")?,
        last_sent: row.try_get("last_sent")?,
        rate_limited: row.try_get("rate_limited")?,
        forbidden: row.try_get("forbidden")?,
    })
}

/// One logged attempt of a delivery.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at: DateTime<Utc>,
    pub outcome: String,
}

/// Every logged attempt of one delivery, oldest first (kept two days).
pub async fn attempts_of(
    pool: &PgPool,
    post_id: Uuid,
    chat_id: Uuid,
) -> sqlx::Result<Vec<AttemptRecord>> {
    let rows = sqlx::query(
        "SELECT at, outcome FROM delivery_attempts WHERE post_id = $1 AND chat_id = $2 ORDER BY at",
    )
    .bind(post_id)
    .bind(chat_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AttemptRecord {
                at: r.try_get("at")?,
                outcome: r.try_get("outcome")?,
            })
        })
        .collect()
}

/// Until when, and why, deliveries to a chat wait (quiet hours, a cap, a 429), if they do.
pub async fn hold_of(
    pool: &PgPool,
    chat_id: Uuid,
) -> sqlx::Result<Option<(DateTime<Utc>, String)>> {
    sqlx::query_as(
        "SELECT held_until, reason FROM delivery_chat_holds WHERE chat_id = $1 AND held_until > now()",
    )
    .bind(chat_id)
    .fetch_optional(pool)
    .await
}

/// [`hold_of`] for many chats at once.
pub async fn holds_of(
    pool: &PgPool,
    chat_ids: &[Uuid],
) -> sqlx::Result<std::collections::HashMap<Uuid, (DateTime<Utc>, String)>> {
    if chat_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(Uuid, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT chat_id, held_until, reason FROM delivery_chat_holds
          WHERE chat_id = ANY($1) AND held_until > now()",
    )
    .bind(chat_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(c, u, r)| (c, (u, r))).collect())
}

/// A delivery still to go out (planned or approved), on a bot: what a forecast schedules
/// beside a new post.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub post_id: Uuid,
    pub chat_id: Uuid,
    pub bot_id: Uuid,
    pub telegram_chat_id: i64,
    pub due_at: DateTime<Utc>,
}

/// Deliveries of `bots` not yet settled or cancelled, due in `[from, to)`, earliest first, at
/// most `limit`.
pub async fn scheduled_on_bots(
    pool: &PgPool,
    bots: &[Uuid],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Scheduled>> {
    if bots.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, Uuid, Uuid, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT s.post_id, s.chat_id, c.bot_id, c.telegram_chat_id, s.due_at
           FROM delivery_schedule s JOIN delivery_chats c ON c.chat_id = s.chat_id
          WHERE c.bot_id = ANY($1) AND s.status IN ('planned', 'pending')
            AND s.due_at >= $2 AND s.due_at < $3
          ORDER BY s.due_at, s.post_id
          LIMIT $4",
    )
    .bind(bots)
    .bind(from)
    .bind(to)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(post_id, chat_id, bot_id, telegram_chat_id, due_at)| Scheduled {
                post_id,
                chat_id,
                bot_id,
                telegram_chat_id,
                due_at,
            },
        )
        .collect())
}

/// Deliveries by the dispatcher's state: (sending, done) now.
pub async fn progress_counts(pool: &PgPool) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE state = 'sending') AS sending,
                count(*) FILTER (WHERE state = 'done') AS done
           FROM delivery_progress",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("sending")?, row.try_get("done")?))
}

/// Scheduled deliveries: (all, not yet settled or cancelled).
pub async fn schedule_counts(pool: &PgPool) -> sqlx::Result<(i64, i64)> {
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE status <> 'planned') AS scheduled,
                count(*) FILTER (WHERE status = 'pending') AS open
           FROM delivery_schedule",
    )
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("scheduled")?, row.try_get("open")?))
}

/// When each delivery was first claimed, in order (the benchmark's start-lag figures).
pub async fn claim_times(pool: &PgPool) -> sqlx::Result<Vec<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT min(at) FROM delivery_attempts WHERE post_id IS NOT NULL GROUP BY post_id, chat_id ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}
