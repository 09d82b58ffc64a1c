//! The projection's tables: bots, chats (each chat is a lane with its earliest due time) and one
//! schedule row per post and chat. Written only by [`crate::schedule::DeliverySchedule`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// Drops everything the projection derived (a rebuild replays the stream from the start).
/// What the dispatcher did lives in its own tables, so a replay never re-opens a delivery.
pub async fn reset(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("TRUNCATE delivery_schedule, delivery_chats, delivery_bots")
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn bot_registered(
    conn: &mut PgConnection,
    bot_id: Uuid,
    workspace_id: Uuid,
    telegram_bot_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_bots (bot_id, workspace_id, telegram_bot_id) VALUES ($1, $2, $3)
         ON CONFLICT (bot_id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id, telegram_bot_id = EXCLUDED.telegram_bot_id",
    )
    .bind(bot_id)
    .bind(workspace_id)
    .bind(telegram_bot_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One bot setting: `paused_reason` (text, NULL = running) or `paid_broadcast` (boolean).
pub async fn set_bot<T>(
    conn: &mut PgConnection,
    bot_id: Uuid,
    column: BotColumn,
    value: T,
) -> sqlx::Result<()>
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + 'static,
{
    let sql = format!(
        "UPDATE delivery_bots SET {} = $2 WHERE bot_id = $1",
        column.name()
    );
    sqlx::query(&sql)
        .bind(bot_id)
        .bind(value)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub enum BotColumn {
    PausedReason,
    PaidBroadcast,
}

impl BotColumn {
    fn name(self) -> &'static str {
        match self {
            Self::PausedReason => "paused_reason",
            Self::PaidBroadcast => "paid_broadcast",
        }
    }
}

pub async fn chat_connected(
    conn: &mut PgConnection,
    chat_id: Uuid,
    workspace_id: Uuid,
    bot_id: Uuid,
    telegram_chat_id: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_chats (chat_id, workspace_id, bot_id, telegram_chat_id, partition)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (chat_id) DO UPDATE SET bot_id = EXCLUDED.bot_id, telegram_chat_id = EXCLUDED.telegram_chat_id",
    )
    .bind(chat_id)
    .bind(workspace_id)
    .bind(bot_id)
    .bind(telegram_chat_id)
    .bind(crate::partition_of(chat_id))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn chat_migrated(
    conn: &mut PgConnection,
    chat_id: Uuid,
    telegram_chat_id: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE delivery_chats SET telegram_chat_id = $2 WHERE chat_id = $1")
        .bind(chat_id)
        .bind(telegram_chat_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A post was planned: its rows wait, not yet claimable, for an approval.
pub async fn post_planned(
    conn: &mut PgConnection,
    post_id: Uuid,
    workspace_id: Uuid,
    chat_ids: &[Uuid],
    due_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_schedule (post_id, chat_id, workspace_id, due_at, status)
         SELECT $1, chat_id, $2, $3, 'planned' FROM UNNEST($4::uuid[]) AS chat_id
         ON CONFLICT (post_id, chat_id) DO NOTHING",
    )
    .bind(post_id)
    .bind(workspace_id)
    .bind(due_at)
    .bind(chat_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// More chats of a post just planned: rows like its first ones (same commit, same state).
pub async fn post_targets_added(
    conn: &mut PgConnection,
    post_id: Uuid,
    chat_ids: &[Uuid],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_schedule (post_id, chat_id, workspace_id, due_at, status)
         SELECT f.post_id, t.chat_id, f.workspace_id, f.due_at, f.status
           FROM (SELECT * FROM delivery_schedule WHERE post_id = $1 LIMIT 1) f
          CROSS JOIN UNNEST($2::uuid[]) AS t(chat_id)
         ON CONFLICT (post_id, chat_id) DO NOTHING",
    )
    .bind(post_id)
    .bind(chat_ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves the post's rows from `from` to `to` (e.g. planned → pending on approval).
pub async fn set_post_status(
    conn: &mut PgConnection,
    post_id: Uuid,
    from: &[&str],
    to: &str,
) -> sqlx::Result<()> {
    let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
    sqlx::query("UPDATE delivery_schedule SET status = $3 WHERE post_id = $1 AND status = ANY($2)")
        .bind(post_id)
        .bind(&from)
        .bind(to)
        .execute(&mut *conn)
        .await?;
    refresh_lanes_of_post(conn, post_id).await
}

pub async fn post_rescheduled(
    conn: &mut PgConnection,
    post_id: Uuid,
    due_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE delivery_schedule SET due_at = $2 WHERE post_id = $1 AND status IN ('planned', 'pending')",
    )
    .bind(post_id)
    .bind(due_at)
    .execute(&mut *conn)
    .await?;
    refresh_lanes_of_post(conn, post_id).await
}

/// Outcomes were recorded for these deliveries (delivered, failed, in doubt): each leaves its
/// chat's lane; two statements for the lot.
pub async fn deliveries_settled(
    conn: &mut PgConnection,
    deliveries: &[(Uuid, Uuid)],
) -> sqlx::Result<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let posts: Vec<Uuid> = deliveries.iter().map(|(post, _)| *post).collect();
    let mut chats: Vec<Uuid> = deliveries.iter().map(|(_, chat)| *chat).collect();
    sqlx::query(
        "UPDATE delivery_schedule s SET status = 'settled'
           FROM UNNEST($1::uuid[], $2::uuid[]) AS t(post_id, chat_id)
          WHERE s.post_id = t.post_id AND s.chat_id = t.chat_id AND s.status = 'pending'",
    )
    .bind(&posts)
    .bind(&chats)
    .execute(&mut *conn)
    .await?;
    chats.sort_unstable();
    chats.dedup();
    refresh_lanes(conn, "c.chat_id = ANY($1)", chats).await
}

/// An in-doubt delivery is to be sent again: a new generation, due now.
pub async fn delivery_resent(
    conn: &mut PgConnection,
    post_id: Uuid,
    chat_id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE delivery_schedule SET status = 'pending', generation = generation + 1, due_at = LEAST(due_at, $3)
          WHERE post_id = $1 AND chat_id = $2 AND status = 'settled'",
    )
    .bind(post_id)
    .bind(chat_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    refresh_lane(conn, chat_id).await
}

/// Recomputes the lane (earliest pending due time) of one chat.
async fn refresh_lane(conn: &mut PgConnection, chat_id: Uuid) -> sqlx::Result<()> {
    refresh_lanes(conn, "c.chat_id = $1", chat_id).await
}

/// Recomputes the lanes of every chat a post targets.
async fn refresh_lanes_of_post(conn: &mut PgConnection, post_id: Uuid) -> sqlx::Result<()> {
    refresh_lanes(
        conn,
        "c.chat_id IN (SELECT chat_id FROM delivery_schedule WHERE post_id = $1)",
        post_id,
    )
    .await
}

/// A lane's earliest pending due time, and its chain: the least time its pending deliveries
/// need under the chat's own limits (the claim's critical-path order).
async fn refresh_lanes<Id>(conn: &mut PgConnection, chats: &str, id: Id) -> sqlx::Result<()>
where
    Id: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let limits = domain::limits::TELEGRAM;
    let sql = format!(
        "UPDATE delivery_chats c SET (next_due_at, chain_ms) =
                (SELECT min(s.due_at),
                        CASE WHEN count(*) = 0 THEN 0
                             WHEN c.telegram_chat_id < 0
                                  THEN ((count(*) - 1) / $2) * $3 + ((count(*) - 1) % $2) * $4
                             ELSE (count(*) - 1) * $4 END
                   FROM delivery_schedule s WHERE s.chat_id = c.chat_id AND s.status = 'pending')
          WHERE {chats}"
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(i64::from(limits.per_group.max))
        .bind(limits.per_group.per_secs as i64 * 1000)
        .bind(limits.per_chat.per_secs as i64 * 1000 / i64::from(limits.per_chat.max))
        .execute(conn)
        .await?;
    Ok(())
}

/// Posts whose rows still wait for approval (planned, or back in draft) and were due before
/// `due_before`: at most `limit`, with their workspaces (read by [`crate::expiry`]).
pub async fn overdue_unapproved(
    conn: &mut PgConnection,
    due_before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT DISTINCT post_id, workspace_id FROM (
             SELECT post_id, workspace_id FROM delivery_schedule
              WHERE status = 'planned' AND due_at < $1
              LIMIT $2 * 100) overdue
          LIMIT $2",
    )
    .bind(due_before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Connected groups and channels (negative Telegram ids), by chat id after `after`, at most
/// `limit`: (chat, workspace, bot, Telegram chat id). Read by [`crate::recheck`].
pub async fn groups_and_channels(
    conn: &mut PgConnection,
    after: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid, Uuid, i64)>> {
    sqlx::query_as(
        "SELECT chat_id, workspace_id, bot_id, telegram_chat_id FROM delivery_chats
          WHERE telegram_chat_id < 0 AND chat_id > $1
          ORDER BY chat_id
          LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}
