//! Shared budgets, keyed by Telegram identities so that they hold across every worker: the
//! per-bot per-second slots and hourly sends, bot-wide and per-chat holds, and the attempt log
//! (the source of per-chat hourly caps, cross-worker spacing and safety stats).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// A slot of a bot's per-second budget, reserved by a claim for one request.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    id: i64,
    /// When the request may go: now, or when the answered slot it takes over leaves the window.
    pub start: DateTime<Utc>,
}

/// How far ahead a claim may book a slot that an answered one hands over, or a lane whose own
/// window frees a moment later: a little more than a claim and the gate take on a busy machine
/// (40-70 ms each were measured with ten bots' bursts answered together), so the window never
/// idles between two requests. A booked delivery is `sending` from its claim: if its worker
/// dies before the slot starts, it is flagged in doubt like one on the wire, so the horizon
/// stays short.
pub const HAND_OFF: Duration = Duration::from_millis(120);

/// The slots a claim got for a bot, and when to ask for more.
#[derive(Debug)]
pub struct Granted {
    /// Each granted send's index (in the `not_before` asked with) and its slot.
    pub slots: Vec<(usize, Slot)>,
    /// Some sends got none: when the next answered slot leaves the window (it can be booked
    /// [`HAND_OFF`] before). `None` when every answered slot is taken and the next frees only
    /// once a request on the wire is answered, or when every send got one.
    pub next_hand_off: Option<DateTime<Utc>>,
}

/// Why a bot may not send now.
#[derive(Debug, Clone, PartialEq)]
pub enum NoSlot {
    /// The per-second window is full; ask again after this long.
    Busy { retry_in: Duration },
    /// Held after a bot-wide 429, until then.
    Held(DateTime<Utc>),
    /// Its hourly cap is reached until then (when its oldest counted minute leaves the window).
    HourlyCap { cap: u32, until: DateTime<Utc> },
}

/// Reserves up to `wanted` send slots for a Telegram bot (at least one, or why none): at most
/// `per_window` requests within any `window`, counting each slot from its reservation until a
/// full window after its answer came back (so however long a request took to reach Telegram,
/// it is never counted early), and at most `hourly_cap` sends per hour (minute buckets, counted
/// conservatively over 60-61 minutes). One transaction for a whole claim's sends of the bot.
///
/// When the window is full, a slot may be booked to start exactly when an answered one leaves
/// it (within [`HAND_OFF`]): its `start` is then, and its `reserved_at` holds it, so until then
/// both count and nobody else can take that place. Booked slots take over the answered ones in
/// the order those leave (skipping those already taken over by slots booked earlier).
///
/// `not_before` lists the sends wanting a slot, in order of priority, each with the moment its
/// chat's own windows let it go (`None`: now). The first ones get the slots; the one ready
/// first takes the slot that frees first, and a slot never starts before its send may go.
/// Returns each granted send's index in `not_before` with its slot.
pub async fn reserve_bot_slots(
    pool: &PgPool,
    telegram_bot_id: i64,
    not_before: &[Option<DateTime<Utc>>],
    per_window: usize,
    window: Duration,
    hourly_cap: u32,
) -> sqlx::Result<Result<Granted, NoSlot>> {
    let wanted = not_before.len();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO delivery_bot_budget (telegram_bot_id) VALUES ($1) ON CONFLICT DO NOTHING",
    )
    .bind(telegram_bot_id)
    .execute(&mut *tx)
    .await?;
    // The row lock serialises this bot's reservations across workers.
    let held: Option<DateTime<Utc>> = sqlx::query_scalar(
        "SELECT CASE WHEN held_until > clock_timestamp() THEN held_until END
           FROM delivery_bot_budget WHERE telegram_bot_id = $1 FOR UPDATE",
    )
    .bind(telegram_bot_id)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(until) = held {
        return Ok(Err(NoSlot::Held(until)));
    }
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM delivery_bot_slots
                  WHERE telegram_bot_id = $1
                    AND (done_at > clock_timestamp() - make_interval(secs => $2)
                         OR (done_at IS NULL AND reserved_at > clock_timestamp() - interval '2 minutes'))) AS in_window,
                (SELECT coalesce(sum(sends), 0) FROM delivery_bot_hours
                  WHERE telegram_bot_id = $1
                    AND minute >= date_trunc('minute', clock_timestamp()) - interval '60 minutes') AS last_hour,
                (SELECT min(minute) + interval '61 minutes' FROM delivery_bot_hours
                  WHERE telegram_bot_id = $1 AND sends > 0
                    AND minute >= date_trunc('minute', clock_timestamp()) - interval '60 minutes') AS frees_at",
    )
    .bind(telegram_bot_id)
    .bind(window.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    let in_window: i64 = row.try_get("in_window")?;
    let last_hour: i64 = row.try_get("last_hour")?;
    if last_hour >= i64::from(hourly_cap) {
        let until: Option<DateTime<Utc>> = row.try_get("frees_at")?;
        return Ok(Err(NoSlot::HourlyCap {
            cap: hourly_cap,
            until: until.unwrap_or_else(|| Utc::now() + chrono::TimeDelta::minutes(1)),
        }));
    }
    let hourly_room = i64::from(hourly_cap) - last_hour;
    let now_n = (wanted as i64)
        .min(per_window as i64 - in_window)
        .min(hourly_room)
        .max(0);
    let mut starts: Vec<Option<DateTime<Utc>>> = vec![None; now_n as usize];
    let later = (wanted as i64 - now_n).min(hourly_room - now_n);
    let mut next_hand_off = None;
    if later > 0 {
        // The answered slots not yet handed over, in the order they leave the window: those
        // leaving within the horizon are booked, the first after it says when to come back.
        let hand_offs: Vec<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT done_at + make_interval(secs => $2) FROM delivery_bot_slots
              WHERE telegram_bot_id = $1
                AND done_at > clock_timestamp() - make_interval(secs => $2)
              ORDER BY done_at
             OFFSET (SELECT count(*) FROM delivery_bot_slots
                      WHERE telegram_bot_id = $1 AND done_at IS NULL AND reserved_at > clock_timestamp())
              LIMIT $3",
        )
        .bind(telegram_bot_id)
        .bind(window.as_secs_f64())
        .bind(later + 1)
        .fetch_all(&mut *tx)
        .await?;
        let horizon = Utc::now() + TimeDelta::from_std(HAND_OFF).unwrap_or_default();
        let (bookable, after): (Vec<_>, Vec<_>) =
            hand_offs.into_iter().partition(|at| *at <= horizon);
        // Only sends left without a slot need to know when the next one is handed over.
        if bookable.len() < later as usize {
            next_hand_off = after.first().copied();
        }
        let bookable: Vec<_> = bookable.into_iter().take(later as usize).collect();
        starts.extend(bookable.into_iter().map(Some));
    }
    if starts.is_empty() {
        // When the next answered slot can be handed over; a window of requests still on the
        // wire frees when one is answered, so look again soon.
        let retry_in = next_hand_off
            .and_then(|at| {
                (at - TimeDelta::from_std(HAND_OFF).unwrap_or_default() - Utc::now())
                    .to_std()
                    .ok()
            })
            .unwrap_or(Duration::from_millis(20))
            .clamp(Duration::from_millis(1), Duration::from_millis(200));
        return Ok(Err(NoSlot::Busy { retry_in }));
    }
    let (lanes, starts) = match_slots(&starts, not_before);
    let mut slots: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
        "INSERT INTO delivery_bot_slots (telegram_bot_id, reserved_at)
         SELECT $1, coalesce(t.start, clock_timestamp()) FROM UNNEST($2::timestamptz[]) AS t(start)
         RETURNING id, reserved_at",
    )
    .bind(telegram_bot_id)
    .bind(&starts)
    .fetch_all(&mut *tx)
    .await?;
    count_hourly(&mut tx, telegram_bot_id, slots.len() as i32).await?;
    tx.commit().await?;
    // Both lists ascend by start (each start is the later of two ascending lists).
    slots.sort_by_key(|(id, start)| (*start, *id));
    Ok(Ok(Granted {
        slots: lanes
            .into_iter()
            .zip(slots)
            .map(|(lane, (id, start))| (lane, Slot { id, start }))
            .collect(),
        next_hand_off,
    }))
}

/// Gives the slots that free at `free` (ascending; `None`: now) to the first of the sends in
/// `not_before` (in order of priority, each with the moment it may go; `None`: now): the send
/// ready first takes the slot that frees first, and each starts at the later of the two.
/// Returns the sends' indexes and their starts, both ascending by start.
fn match_slots(
    free: &[Option<DateTime<Utc>>],
    not_before: &[Option<DateTime<Utc>>],
) -> (Vec<usize>, Vec<Option<DateTime<Utc>>>) {
    let n = free.len().min(not_before.len());
    let mut lanes: Vec<(usize, Option<DateTime<Utc>>)> =
        not_before[..n].iter().copied().enumerate().collect();
    lanes.sort_by_key(|(_, ready)| *ready);
    let starts = free
        .iter()
        .zip(&lanes)
        .map(|(free, (_, ready))| match (*free, *ready) {
            (Some(free), Some(ready)) => Some(free.max(ready)),
            (free, ready) => free.or(ready),
        })
        .collect();
    (lanes.into_iter().map(|(lane, _)| lane).collect(), starts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Option<DateTime<Utc>> {
        Some(DateTime::from_timestamp_millis(1_000_000 + ms).expect("a valid time"))
    }

    #[test]
    fn the_send_ready_first_takes_the_slot_that_frees_first() {
        // Slots: one free now, two handed over at 10 and 30 ms. Sends by priority: a channel
        // ready at 20 ms, a private chat ready now, another ready now (left without a slot
        // only if there were fewer slots).
        let (lanes, starts) = match_slots(&[None, at(10), at(30)], &[at(20), None, None]);
        assert_eq!(lanes, vec![1, 2, 0]);
        assert_eq!(starts, vec![None, at(10), at(30)]);
        // With two slots, the two of highest priority get them: the channel waits for its own
        // window (20 ms), not for the slot (10 ms).
        let (lanes, starts) = match_slots(&[None, at(10)], &[at(20), None, None]);
        assert_eq!(lanes, vec![1, 0]);
        assert_eq!(starts, vec![None, at(20)]);
    }
}

async fn count_hourly(conn: &mut PgConnection, telegram_bot_id: i64, n: i32) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_bot_hours (telegram_bot_id, minute, sends)
         VALUES ($1, date_trunc('minute', clock_timestamp()), $2)
         ON CONFLICT (telegram_bot_id, minute) DO UPDATE SET sends = delivery_bot_hours.sends + EXCLUDED.sends",
    )
    .bind(telegram_bot_id)
    .bind(n)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives back a slot whose request never went out.
pub async fn cancel_bot_slot(pool: &PgPool, telegram_bot_id: i64, slot: Slot) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM delivery_bot_slots WHERE id = $1")
        .bind(slot.id)
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 1 {
        count_hourly(&mut tx, telegram_bot_id, -1).await?;
    }
    tx.commit().await
}

/// Holds every send of a Telegram bot until `until` (a bot-wide 429, its hourly cap), across
/// all workers: claims leave its chats out until then.
pub async fn hold_bot(
    pool: &PgPool,
    telegram_bot_id: i64,
    until: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_bot_budget (telegram_bot_id, held_until) VALUES ($1, $2)
         ON CONFLICT (telegram_bot_id) DO UPDATE
            SET held_until = GREATEST(coalesce(delivery_bot_budget.held_until, $2), $2)",
    )
    .bind(telegram_bot_id)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(())
}

/// Holds one chat until `until` (429, back-off, cap), across handovers between workers.
pub async fn hold_chat(
    pool: &PgPool,
    chat_id: Uuid,
    until: DateTime<Utc>,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO delivery_chat_holds (chat_id, held_until, reason) VALUES ($1, $2, $3)
         ON CONFLICT (chat_id) DO UPDATE SET held_until = GREATEST(delivery_chat_holds.held_until, $2),
                                             reason = EXCLUDED.reason",
    )
    .bind(chat_id)
    .bind(until)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// The class of an attempt's outcome, as logged (never message content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Sent,
    RateLimited,
    Forbidden,
    Permanent,
    Transient,
    InDoubt,
    Unauthorized,
    Migrated,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::RateLimited => "rate_limited",
            Self::Forbidden => "forbidden",
            Self::Permanent => "permanent",
            Self::Transient => "transient",
            Self::InDoubt => "in_doubt",
            Self::Unauthorized => "unauthorized",
            Self::Migrated => "migrated",
        }
    }
}

/// One attempt, for the log.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub post_id: Uuid,
    pub chat_id: Uuid,
    pub bot_id: Uuid,
    pub telegram_bot_id: i64,
    pub telegram_chat_id: i64,
    pub partition: i16,
    /// When the request went out: that is when Telegram counts it.
    pub at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
    pub worker: String,
}

/// An answer to book: its slot counts a window from `answered_at` (Telegram counted the request
/// at some moment before), and the attempt goes to the log.
#[derive(Debug, Clone)]
pub struct Answer {
    pub slot: Slot,
    pub answered_at: DateTime<Utc>,
    pub attempt: Attempt,
}

/// Books one answer in a transaction of its own.
pub async fn book_answer(pool: &PgPool, answer: &Answer) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    book_answers_on(&mut tx, std::slice::from_ref(answer)).await?;
    tx.commit().await
}

/// Books `answers` in the caller's transaction: two statements, whatever their number.
pub async fn book_answers_on(conn: &mut PgConnection, answers: &[Answer]) -> sqlx::Result<()> {
    if answers.is_empty() {
        return Ok(());
    }
    let slots: Vec<i64> = answers.iter().map(|a| a.slot.id).collect();
    let answered: Vec<DateTime<Utc>> = answers.iter().map(|a| a.answered_at).collect();
    sqlx::query(
        "UPDATE delivery_bot_slots s SET done_at = t.done_at
           FROM UNNEST($1::bigint[], $2::timestamptz[]) AS t(id, done_at)
          WHERE s.id = t.id",
    )
    .bind(&slots)
    .bind(&answered)
    .execute(&mut *conn)
    .await?;
    let a = |f: fn(&Attempt) -> Uuid| answers.iter().map(|x| f(&x.attempt)).collect::<Vec<_>>();
    let (posts, bots, chats) = (a(|x| x.post_id), a(|x| x.bot_id), a(|x| x.chat_id));
    let telegram_bots: Vec<i64> = answers.iter().map(|x| x.attempt.telegram_bot_id).collect();
    let telegram_chats: Vec<i64> = answers.iter().map(|x| x.attempt.telegram_chat_id).collect();
    let outcomes: Vec<&str> = answers.iter().map(|x| x.attempt.outcome.as_str()).collect();
    let partitions: Vec<i16> = answers.iter().map(|x| x.attempt.partition).collect();
    let at: Vec<DateTime<Utc>> = answers.iter().map(|x| x.attempt.at).collect();
    let workers: Vec<&str> = answers.iter().map(|x| x.attempt.worker.as_str()).collect();
    sqlx::query(
        "INSERT INTO delivery_attempts (post_id, bot_id, chat_id, telegram_bot_id, telegram_chat_id, outcome, partition, at, worker)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::bigint[], $5::bigint[], $6::text[], $7::smallint[], $8::timestamptz[], $9::text[])",
    )
    .bind(&posts)
    .bind(&bots)
    .bind(&chats)
    .bind(&telegram_bots)
    .bind(&telegram_chats)
    .bind(&outcomes)
    .bind(&partitions)
    .bind(&at)
    .bind(&workers)
    .execute(conn)
    .await?;
    Ok(())
}

/// Messages sent to each of `chats` (by any worker) in the last hour, and the oldest of them;
/// a chat with none is left out.
pub async fn chats_sent_last_hour(
    conn: &mut PgConnection,
    chats: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, (u32, Option<DateTime<Utc>>)>> {
    let rows: Vec<(Uuid, i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT chat_id, count(*), min(at) FROM delivery_attempts
          WHERE chat_id = ANY($1) AND outcome = 'sent' AND at > now() - interval '1 hour'
          GROUP BY chat_id",
    )
    .bind(chats)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(chat, sent, oldest)| (chat, (sent as u32, oldest)))
        .collect())
}

/// Posts sent to each chat since the start of its local day and of its local week (`periods`:
/// chat, day start, week start): what its caps count.
pub async fn chats_sent_since(
    conn: &mut PgConnection,
    periods: &[(Uuid, DateTime<Utc>, DateTime<Utc>)],
) -> sqlx::Result<HashMap<Uuid, (u32, u32)>> {
    if periods.is_empty() {
        return Ok(HashMap::new());
    }
    let chats: Vec<Uuid> = periods.iter().map(|p| p.0).collect();
    let days: Vec<DateTime<Utc>> = periods.iter().map(|p| p.1).collect();
    let weeks: Vec<DateTime<Utc>> = periods.iter().map(|p| p.2).collect();
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT p.chat_id, count(*) FILTER (WHERE a.at >= p.day), count(*)
           FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[]) AS p(chat_id, day, week)
           JOIN delivery_attempts a ON a.chat_id = p.chat_id AND a.outcome = 'sent' AND a.at >= p.week
          GROUP BY p.chat_id",
    )
    .bind(&chats)
    .bind(&days)
    .bind(&weeks)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(chat, today, week)| (chat, (today as u32, week as u32)))
        .collect())
}

/// Sends in the last hour to chats of `partitions`: what a worker taking them over must count.
pub async fn recent_sends(
    pool: &PgPool,
    partitions: &[i16],
) -> sqlx::Result<Vec<(Uuid, Uuid, i64, f64)>> {
    let rows = sqlx::query(
        "SELECT bot_id, chat_id, telegram_chat_id, EXTRACT(EPOCH FROM (now() - at))::float8 AS age
           FROM delivery_attempts
          WHERE outcome = 'sent' AND at > now() - interval '1 minute' AND partition = ANY($1)
          ORDER BY at",
    )
    .bind(partitions)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("bot_id")?,
                r.try_get("chat_id")?,
                r.try_get("telegram_chat_id")?,
                r.try_get("age")?,
            ))
        })
        .collect()
}

/// Forgets what no window needs any more, in one transaction. Rows past their windows are
/// never read (every query bounds its times), so once a minute is enough.
pub async fn clean_up(pool: &PgPool) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for sql in [
        // Eight days: weekly caps count a recipient's sends since its local Monday.
        "DELETE FROM delivery_attempts WHERE at < now() - interval '8 days'",
        "DELETE FROM delivery_bot_slots WHERE coalesce(done_at, reserved_at) < now() - interval '5 minutes'",
        "DELETE FROM delivery_bot_hours WHERE minute < now() - interval '2 hours'",
        "DELETE FROM delivery_chat_holds WHERE held_until < now() - interval '1 minute'",
    ] {
        sqlx::query(sql).execute(&mut *tx).await?;
    }
    tx.commit().await
}
