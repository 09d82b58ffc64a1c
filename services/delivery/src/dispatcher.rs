//! Claims due deliveries, paces them and sends them, one message at a time per chat, and turns
//! every answer into events: delivered, failed (permanent / transient), unknown (in doubt),
//! chat blocked, chat migrated, bot paused.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use domain::{
    Bot, BotCommand, Chat, ChatCommand, DeliveryOutcome, FailureClass, Id, InDoubtPolicy, Post,
    PostCommand, PostState, Resolution, Workspace, limits,
};
use platform::{Shutdown, TokenCipher};
use sqlx::{PgPool, Row};
use store::{CommandError, EventStore, RequestContext};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::leases::{Leases, reserve_bot_sends};
use crate::pacing::{BOT_BUDGET_MARGIN, Caps, Limits, Pacer, Slowdown, Window};
use crate::telegram::{self, SendResult};

/// The actor recorded on delivery outcome events.
pub const ACTOR: &str = "service:delivery";
/// The actor recorded when the workspace's in-doubt policy resends.
pub const POLICY_ACTOR: &str = "policy:in_doubt_resend";

/// Tunables of the dispatcher.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bot API base URL (the real one or the sandbox emulator).
    pub api_url: url::Url,
    pub limits: Limits,
    /// How often due rows are looked for. Bounds the lateness of a due post.
    pub tick: Duration,
    pub max_in_flight: usize,
    /// Transient errors are retried this many times in all before `DeliveryFailed`.
    pub max_attempts: i32,
    /// A worker silent for this long is considered dead; its `sending` rows are in doubt.
    pub worker_timeout: Duration,
}

impl Settings {
    pub fn new(api_url: url::Url) -> Self {
        Self {
            api_url,
            limits: Limits::telegram(),
            tick: Duration::from_millis(100),
            max_in_flight: 256,
            max_attempts: 5,
            worker_timeout: Duration::from_secs(10),
        }
    }
}

/// One claimed delivery.
#[derive(Debug, Clone)]
struct Job {
    post_id: Id,
    chat_id: Id,
    workspace_id: Id,
    bot_id: Id,
    attempts: i32,
    migrated: bool,
    paid_broadcast: bool,
}

/// What a finished send task reports back to the dispatcher.
struct Done {
    chat_id: Id,
    bot_id: Id,
    retry_after: Option<Duration>,
    /// When the request went out, if it did.
    sent_at: Option<Instant>,
}

/// What to do with a row after an attempt.
enum Next {
    /// An outcome to record as an event; the row is done.
    Record(DeliveryOutcome),
    /// Nothing was sent (or Telegram refused it): try again later.
    RetryLater {
        after: Duration,
        rate_limited: bool,
    },
    /// The post was moved: wait for its new time.
    Defer {
        due_at: DateTime<Utc>,
    },
    /// Not sent (the bot is paused, or its budget stayed full): keep the row as it was.
    Hold,
    /// The group became a supergroup: send once more to its new id.
    Migrated {
        to: i64,
    },
    Cancelled,
}

/// Per-bot and per-chat settings from `delivery_limits` (only rows that differ from defaults).
#[derive(Debug, Clone, Default)]
struct Overrides {
    hourly_cap: Option<u32>,
    paused: bool,
    paid_broadcast: bool,
}

/// State shared by send tasks.
struct Shared {
    worker_id: String,
    pool: PgPool,
    store: EventStore,
    cipher: TokenCipher,
    settings: Settings,
    /// teloxide clients by bot, with the encrypted token they were built from.
    bots: Mutex<HashMap<Id, (String, teloxide::Bot)>>,
}

pub struct Dispatcher {
    shared: Arc<Shared>,
    worker_id: String,
    pacer: Pacer,
    in_flight: HashSet<Id>,
    overrides: HashMap<(String, Id), Overrides>,
    leases: Leases,
}

impl Dispatcher {
    pub fn new(pool: PgPool, store: EventStore, cipher: TokenCipher, settings: Settings) -> Self {
        let worker_id = format!("delivery-{}", uuid::Uuid::new_v4());
        Self {
            leases: Leases::new(worker_id.clone(), settings.worker_timeout),
            pacer: Pacer::new(settings.limits),
            shared: Arc::new(Shared {
                worker_id: worker_id.clone(),
                pool,
                store,
                cipher,
                settings,
                bots: Mutex::new(HashMap::new()),
            }),
            worker_id,
            in_flight: HashSet::new(),
            overrides: HashMap::new(),
        }
    }

    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let settings = self.shared.settings.clone();
        tracing::info!(worker = %self.worker_id, api = %redacted_origin(&settings.api_url), "delivery dispatcher started");
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut tick = tokio::time::interval(settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heartbeat = Instant::now() - settings.worker_timeout;
        // Besides the tick, the dispatcher wakes exactly when the pacer says a waiting chat or
        // bot frees up, so a chat at 1 message per second is not held back by the tick.
        let mut wake: Option<Instant> = None;
        loop {
            let wake_at = wake.unwrap_or_else(|| Instant::now() + settings.tick);
            tokio::select! {
                _ = tick.tick() => {
                    if last_heartbeat.elapsed() >= settings.worker_timeout / 5 {
                        if let Err(error) = self.housekeeping().await {
                            tracing::warn!(error = format!("{error:#}"), "delivery housekeeping failed");
                        }
                        last_heartbeat = Instant::now();
                    }
                    wake = self.claim_and_spawn(&mut tasks).await;
                }
                _ = tokio::time::sleep_until(wake_at), if wake.is_some() => {
                    wake = self.claim_and_spawn(&mut tasks).await;
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok(done) => {
                        let ready = self.finish(done);
                        wake = earliest(wake, ready);
                    }
                    Err(error) => tracing::error!(%error, "a delivery task failed; its row stays 'sending' and will be flagged in doubt"),
                },
                _ = shutdown.cancelled() => break,
            }
        }
        // Let requests on the wire finish so their outcome is known, not in doubt.
        while let Some(done) = tasks.join_next().await {
            if let Ok(done) = done {
                self.finish(done);
            }
        }
        self.leases.release_all(&self.shared.pool).await?;
        sqlx::query("DELETE FROM delivery_workers WHERE worker_id = $1")
            .bind(&self.worker_id)
            .execute(&self.shared.pool)
            .await?;
        tracing::info!(worker = %self.worker_id, "delivery dispatcher stopped");
        Ok(())
    }

    /// Claims what may go now and starts a send task per claimed row; returns when to look
    /// again for rows the pacer held back.
    async fn claim_and_spawn(&mut self, tasks: &mut JoinSet<Done>) -> Option<Instant> {
        let room = self
            .shared
            .settings
            .max_in_flight
            .saturating_sub(tasks.len());
        if room == 0 {
            return None;
        }
        match self.claim_due(room).await {
            Ok((jobs, next_ready)) => {
                for job in jobs {
                    self.in_flight.insert(job.chat_id);
                    tasks.spawn(deliver(job, self.shared.clone()));
                }
                next_ready
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "claiming due deliveries failed"
                );
                None
            }
        }
    }

    /// Books a finished send; returns when its chat may be sent to again.
    fn finish(&mut self, done: Done) -> Option<Instant> {
        self.in_flight.remove(&done.chat_id);
        let ready = done.sent_at.map(|sent_at| {
            self.pacer.sent(done.chat_id, sent_at);
            sent_at + self.shared.settings.limits.per_chat.period + crate::pacing::SAFETY_MARGIN
        });
        if let Some(retry_after) = done.retry_after {
            match self
                .pacer
                .retry_after(done.bot_id, done.chat_id, retry_after, Instant::now())
            {
                Slowdown::Chat { penalty } if penalty >= 2 => tracing::warn!(
                    chat_id = %done.chat_id, penalty, "telegram keeps rate-limiting this chat; pacing it slower"
                ),
                Slowdown::Chat { .. } => {}
                Slowdown::Bot => tracing::warn!(
                    bot_id = %done.bot_id, retry_after_s = retry_after.as_secs(), "telegram rate-limited several chats of this bot; holding the bot"
                ),
            }
        }
        ready
    }

    /// Counts the last hour's sends to chats of newly owned partitions (made by this worker
    /// before a restart, or by the previous owner) against the pacing windows and hourly caps.
    async fn seed_pacer(&mut self, partitions: &[i16]) -> anyhow::Result<()> {
        let rows = sqlx::query(
            "SELECT bot_id, chat_id, telegram_chat_id, EXTRACT(EPOCH FROM (now() - at))::float8 AS age
               FROM delivery_attempts
              WHERE outcome = 'sent' AND at > now() - interval '1 hour' AND partition = ANY($1)
              ORDER BY at",
        )
        .bind(partitions)
        .fetch_all(&self.shared.pool)
        .await?;
        let now = Instant::now();
        for row in &rows {
            let age = Duration::from_secs_f64(row.try_get::<f64, _>("age")?.max(0.0));
            let group = row.try_get::<i64, _>("telegram_chat_id")? < 0;
            let at = now.checked_sub(age).unwrap_or(now);
            self.pacer
                .record(row.try_get("bot_id")?, row.try_get("chat_id")?, group, at);
        }
        Ok(())
    }

    fn overrides(&self, scope: &str, id: Id) -> Overrides {
        self.overrides
            .get(&(scope.to_owned(), id))
            .cloned()
            .unwrap_or_default()
    }

    /// Claims due rows of this worker's partitions that the pacer and the shared per-bot budget
    /// allow now: the earliest per chat, one in flight per chat.
    async fn claim_due(&mut self, room: usize) -> anyhow::Result<(Vec<Job>, Option<Instant>)> {
        let now = Instant::now();
        let owned = self.leases.owned(now).to_vec();
        if owned.is_empty() {
            return Ok((Vec::new(), None));
        }
        let mut tx = self.shared.pool.begin().await?;
        // A chat with a send on the wire, or sent within the last second (perhaps by the
        // partition's previous owner, whose sends this worker's pacer has not seen), waits.
        // Fair turns: only each chat's earliest row is a candidate (posts keep their order, and a
        // busy chat cannot fill the batch), and candidates are interleaved across workspaces and
        // bots (the n-th chat of every workspace and bot comes before the (n+1)-th of any).
        let rows = sqlx::query(
            "WITH heads AS (
                 SELECT DISTINCT ON (chat_id) post_id, chat_id, workspace_id, bot_id, due_at
                   FROM delivery_queue
                  WHERE state = 'scheduled' AND due_at <= now() AND partition = ANY($1)
                  ORDER BY chat_id, due_at, post_id
             ), turns AS (
                 SELECT post_id, chat_id, due_at,
                        GREATEST(row_number() OVER (PARTITION BY workspace_id ORDER BY due_at, post_id),
                                 row_number() OVER (PARTITION BY bot_id ORDER BY due_at, post_id)) AS turn
                   FROM heads
             )
             SELECT q.post_id, q.chat_id, q.workspace_id, q.bot_id, q.telegram_chat_id, q.attempts, q.migrated,
                    (q.not_before IS NOT NULL AND q.not_before > now()) AS backing_off
               FROM delivery_queue q
               JOIN turns t ON t.post_id = q.post_id AND t.chat_id = q.chat_id
              WHERE q.state = 'scheduled'
                AND NOT EXISTS (SELECT 1 FROM delivery_queue s
                                 WHERE s.chat_id = q.chat_id AND s.state = 'sending')
                AND NOT EXISTS (SELECT 1 FROM delivery_attempts a
                                 WHERE a.chat_id = q.chat_id AND a.outcome = 'sent' AND a.worker <> $2
                                   AND a.at > now() - interval '1060 milliseconds')
              ORDER BY t.turn, t.due_at, q.post_id
              LIMIT 2000
                FOR UPDATE OF q SKIP LOCKED",
        )
        .bind(&owned)
        .bind(&self.worker_id)
        .fetch_all(&mut *tx)
        .await
        .context("reading due deliveries")?;
        let mut seen = HashSet::new();
        let mut candidates = Vec::new();
        let mut next_ready = None;
        for row in rows {
            let chat_id: Id = row.try_get("chat_id")?;
            // Only the earliest due row of a chat is a candidate: posts keep their order.
            if !seen.insert(chat_id)
                || self.in_flight.contains(&chat_id)
                || row.try_get::<bool, _>("backing_off")?
            {
                continue;
            }
            let bot_id: Id = row.try_get("bot_id")?;
            let bot = self.overrides("bot", bot_id);
            if bot.paused {
                continue;
            }
            let group = row.try_get::<i64, _>("telegram_chat_id")? < 0;
            let caps = Caps {
                bot_hourly: bot.hourly_cap.unwrap_or(limits::DEFAULT_BOT_HOURLY_CAP),
                chat_hourly: self
                    .overrides("chat", chat_id)
                    .hourly_cap
                    .unwrap_or(limits::DEFAULT_CHAT_HOURLY_CAP),
                paid_broadcast: bot.paid_broadcast,
            };
            // Taken at once, so one claim never holds more rows than the bot may send now.
            if let Err(ready) = self.pacer.try_acquire(bot_id, chat_id, group, caps, now) {
                next_ready = earliest(next_ready, Some(ready));
                continue;
            }
            let job = Job {
                post_id: row.try_get("post_id")?,
                chat_id,
                workspace_id: row.try_get("workspace_id")?,
                bot_id,
                attempts: row.try_get::<i32, _>("attempts")? + 1,
                migrated: row.try_get("migrated")?,
                paid_broadcast: bot.paid_broadcast,
            };
            candidates.push(job);
            if candidates.len() >= room {
                break;
            }
        }
        let jobs: Vec<Job> = candidates;
        if !jobs.is_empty() {
            let posts: Vec<Id> = jobs.iter().map(|j| j.post_id).collect();
            let chats: Vec<Id> = jobs.iter().map(|j| j.chat_id).collect();
            // Committed before any request goes out: after a crash these rows are known in doubt.
            sqlx::query(
                "UPDATE delivery_queue SET state = 'sending', claimed_by = $1, claimed_at = now(), attempts = attempts + 1
                  WHERE (post_id, chat_id) IN (SELECT * FROM UNNEST($2::uuid[], $3::uuid[]))",
            )
            .bind(&self.worker_id)
            .bind(&posts)
            .bind(&chats)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((jobs, next_ready))
    }

    /// Heartbeat, partition leases, fresh caps and circuit-breaker state, and in-doubt recovery
    /// of dead workers' rows.
    async fn housekeeping(&mut self) -> anyhow::Result<()> {
        let pool = self.shared.pool.clone();
        sqlx::query(
            "INSERT INTO delivery_workers (worker_id, heartbeat_at) VALUES ($1, now())
             ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()",
        )
        .bind(&self.worker_id)
        .execute(&pool)
        .await?;
        let gained = self.leases.refresh(&pool).await?;
        if !gained.is_empty() {
            self.seed_pacer(&gained)
                .await
                .context("reading the last hour of sends")?;
        }
        let rows = sqlx::query("SELECT scope, id, hourly_cap, paused_reason, allow_paid_broadcast FROM delivery_limits")
            .fetch_all(&pool)
            .await?;
        self.overrides = rows
            .iter()
            .map(|r| {
                let key = (r.try_get::<String, _>("scope")?, r.try_get::<Id, _>("id")?);
                let value = Overrides {
                    hourly_cap: r
                        .try_get::<Option<i32>, _>("hourly_cap")?
                        .map(|c| c.max(0) as u32),
                    paused: r.try_get::<Option<String>, _>("paused_reason")?.is_some(),
                    paid_broadcast: r.try_get("allow_paid_broadcast")?,
                };
                Ok((key, value))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        self.recover_in_doubt().await?;
        for cleanup in [
            "DELETE FROM delivery_workers WHERE heartbeat_at < now() - interval '1 day'",
            "DELETE FROM delivery_attempts WHERE at < now() - interval '2 days'",
            "DELETE FROM delivery_bot_sends WHERE at < now() - interval '1 minute'",
        ] {
            sqlx::query(cleanup).execute(&pool).await?;
        }
        Ok(())
    }

    /// Rows left `sending` by a worker that stopped heart-beating are in doubt.
    async fn recover_in_doubt(&self) -> anyhow::Result<()> {
        let mut tx = self.shared.pool.begin().await?;
        let orphans = sqlx::query(
            "SELECT post_id, chat_id, workspace_id FROM delivery_queue q
              WHERE state = 'sending' AND claimed_by <> $1
                AND NOT EXISTS (SELECT 1 FROM delivery_workers w
                                 WHERE w.worker_id = q.claimed_by
                                   AND w.heartbeat_at > now() - make_interval(secs => $2))
                FOR UPDATE SKIP LOCKED",
        )
        .bind(&self.worker_id)
        .bind(self.shared.settings.worker_timeout.as_secs_f64())
        .fetch_all(&mut *tx)
        .await?;
        let mut in_doubt = Vec::new();
        for row in orphans {
            let (post_id, chat_id, workspace_id): (Id, Id, Id) = (
                row.try_get("post_id")?,
                row.try_get("chat_id")?,
                row.try_get("workspace_id")?,
            );
            tracing::warn!(%post_id, %chat_id, "delivery in doubt: its worker stopped while sending");
            let detail = "the delivery worker stopped while the request may have been on the wire; check the chat, then resolve";
            record(
                &self.shared.store,
                workspace_id,
                post_id,
                chat_id,
                DeliveryOutcome::Unknown {
                    detail: detail.into(),
                },
            )
            .await?;
            sqlx::query(
                "UPDATE delivery_queue SET state = 'done' WHERE post_id = $1 AND chat_id = $2",
            )
            .bind(post_id)
            .bind(chat_id)
            .execute(&mut *tx)
            .await?;
            in_doubt.push((workspace_id, post_id, chat_id));
        }
        tx.commit().await?;
        for (workspace_id, post_id, chat_id) in in_doubt {
            apply_in_doubt_policy(&self.shared.store, workspace_id, post_id, chat_id).await?;
        }
        Ok(())
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One send task: decide, send, record. Never panics on data; always reports back.
async fn deliver(job: Job, shared: Arc<Shared>) -> Done {
    let mut sent_at = None;
    let next = match attempt(&job, &shared, &mut sent_at).await {
        Ok(next) => next,
        Err(error) => {
            // Nothing was sent (the failure happened before the request): safe to retry.
            tracing::warn!(post_id = %job.post_id, chat_id = %job.chat_id, error = format!("{error:#}"), "delivery attempt could not start");
            Next::RetryLater {
                after: crate::backoff(job.attempts),
                rate_limited: false,
            }
        }
    };
    let retry_after = match &next {
        Next::RetryLater {
            after,
            rate_limited: true,
        } => Some(*after),
        _ => None,
    };
    // The outcome must be written; keep trying while the database is unavailable.
    let mut wait = Duration::from_millis(200);
    loop {
        match settle(&job, &shared, &next).await {
            Ok(()) => break,
            Err(error) => {
                tracing::error!(post_id = %job.post_id, chat_id = %job.chat_id, error = format!("{error:#}"), "recording a delivery outcome failed, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    Done {
        chat_id: job.chat_id,
        bot_id: job.bot_id,
        retry_after,
        sent_at,
    }
}

/// Checks that the delivery is still wanted, then sends it.
async fn attempt(
    job: &Job,
    shared: &Shared,
    sent_at: &mut Option<Instant>,
) -> anyhow::Result<Next> {
    let post: Post = shared.store.load(job.post_id).await?;
    if post.state != PostState::Approved {
        return Ok(Next::Cancelled);
    }
    if let Some(due_at) = post
        .publish_at
        .filter(|at| *at > Utc::now() + chrono::TimeDelta::milliseconds(500))
    {
        return Ok(Next::Defer { due_at });
    }
    let chat: Chat = shared.store.load(job.chat_id).await?;
    if chat.opted_out {
        return Ok(Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::OptedOut,
            detail: "the chat opted out before the post went out; nothing was sent".into(),
        }));
    }
    if let Some(reason) = &chat.blocked {
        return Ok(Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::Permanent,
            detail: format!("the chat is unreachable ({reason}); nothing was sent"),
        }));
    }
    let bot = match shared.bot(job.bot_id).await? {
        BotClient::Ready(bot) => bot,
        BotClient::Paused => return Ok(Next::Hold),
        BotClient::Unusable(reason) => {
            return Ok(Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Permanent,
                detail: format!("the bot cannot be used: {reason}"),
            }));
        }
    };
    if !take_bot_slot(shared, job).await? {
        // The bot's budget stayed full (other workers are busy with it): nothing was sent.
        return Ok(Next::Hold);
    }
    *sent_at = Some(Instant::now());
    let requested_at = Utc::now();
    let result = telegram::send_text(
        &bot,
        chat.telegram_chat_id,
        &post.text,
        post.parse_mode,
        job.paid_broadcast,
    )
    .await;
    log_attempt(shared, job, chat.telegram_chat_id, requested_at, &result).await;
    Ok(match result {
        SendResult::Sent { message_id } => Next::Record(DeliveryOutcome::Delivered {
            telegram_message_id: message_id,
        }),
        SendResult::RetryAfter(after) => {
            tracing::info!(chat_id = %job.chat_id, retry_after_s = after.as_secs(), "telegram asked to slow down for this chat");
            Next::RetryLater {
                after,
                rate_limited: true,
            }
        }
        SendResult::Permanent(detail) => Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::Permanent,
            detail,
        }),
        SendResult::Blocked(reason) => {
            let command = ChatCommand::MarkBlocked {
                reason: reason.clone(),
            };
            execute::<Chat>(&shared.store, job.workspace_id, job.chat_id, command, ACTOR).await?;
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Permanent,
                detail: reason,
            })
        }
        SendResult::Unauthorized => {
            tracing::error!(bot_id = %job.bot_id, "telegram refused the bot token (401); pausing the bot until a new token is registered");
            let reason =
                "Telegram refused the bot token (401 Unauthorized): register a new token to resume"
                    .to_owned();
            let mut conn = shared.pool.acquire().await?;
            crate::schedule::set_limit(
                &mut conn,
                "bot",
                job.bot_id,
                "paused_reason",
                Some(reason.clone()),
            )
            .await?;
            execute::<Bot>(
                &shared.store,
                job.workspace_id,
                job.bot_id,
                BotCommand::Pause { reason },
                ACTOR,
            )
            .await?;
            Next::Hold
        }
        SendResult::Migrated(to) if !job.migrated => {
            let command = ChatCommand::Migrate {
                to_telegram_chat_id: to,
            };
            execute::<Chat>(&shared.store, job.workspace_id, job.chat_id, command, ACTOR).await?;
            Next::Migrated { to }
        }
        SendResult::Migrated(to) => Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::Permanent,
            detail: format!("the chat migrated again (to {to}) after a migration; not sent"),
        }),
        SendResult::Transient(detail) if job.attempts >= shared.settings.max_attempts => {
            Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Transient,
                detail: format!("gave up after {} attempts: {detail}", job.attempts),
            })
        }
        SendResult::Transient(detail) => {
            tracing::info!(chat_id = %job.chat_id, attempt = job.attempts, %detail, "transient delivery error, will retry");
            Next::RetryLater {
                after: crate::backoff(job.attempts),
                rate_limited: false,
            }
        }
        SendResult::InDoubt(detail) => Next::Record(DeliveryOutcome::Unknown { detail }),
    })
}

/// Waits for a slot in the bot's budget shared by all workers (30 per second, or 1000 with
/// paid broadcasts), taken right before the request so it is counted when Telegram counts it.
async fn take_bot_slot(shared: &Shared, job: &Job) -> anyhow::Result<bool> {
    let Window { max, period } = if job.paid_broadcast {
        shared.settings.limits.per_paid_bot
    } else {
        shared.settings.limits.per_bot
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if reserve_bot_sends(&shared.pool, job.bot_id, 1, max, period + BOT_BUDGET_MARGIN).await?
            == 1
        {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(false)
}

/// Records the attempt's outcome class for safety stats and hourly caps (best effort).
async fn log_attempt(
    shared: &Shared,
    job: &Job,
    telegram_chat_id: i64,
    requested_at: DateTime<Utc>,
    result: &SendResult,
) {
    let outcome = match result {
        SendResult::Sent { .. } => "sent",
        SendResult::RetryAfter(_) => "rate_limited",
        SendResult::Blocked(_) => "forbidden",
        SendResult::Permanent(_) => "permanent",
        SendResult::Transient(_) => "transient",
        SendResult::InDoubt(_) => "in_doubt",
        SendResult::Unauthorized => "unauthorized",
        SendResult::Migrated(_) => "migrated",
    };
    let logged = sqlx::query(
        "INSERT INTO delivery_attempts (bot_id, chat_id, telegram_chat_id, outcome, partition, at, worker)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(job.bot_id)
    .bind(job.chat_id)
    .bind(telegram_chat_id)
    .bind(outcome)
    .bind(crate::partition_of(job.chat_id))
    // When the request went out: that is when Telegram counts it.
    .bind(requested_at)
    .bind(&shared.worker_id)
    .execute(&shared.pool)
    .await;
    if let Err(error) = logged {
        tracing::warn!(%error, "could not log a delivery attempt");
    }
}

/// Writes the consequence of an attempt: events and the row's new state.
async fn settle(job: &Job, shared: &Shared, next: &Next) -> anyhow::Result<()> {
    let row = |sql: &'static str| sqlx::query(sql).bind(job.post_id).bind(job.chat_id);
    match next {
        Next::Record(outcome) => {
            record(
                &shared.store,
                job.workspace_id,
                job.post_id,
                job.chat_id,
                outcome.clone(),
            )
            .await?;
            // Done before an in-doubt policy may put the row back for a resend.
            row("UPDATE delivery_queue SET state = 'done' WHERE post_id = $1 AND chat_id = $2 AND state = 'sending'")
                .execute(&shared.pool)
                .await?;
            if matches!(outcome, DeliveryOutcome::Unknown { .. }) {
                apply_in_doubt_policy(&shared.store, job.workspace_id, job.post_id, job.chat_id)
                    .await?;
            }
        }
        Next::RetryLater { after, .. } => {
            row("UPDATE delivery_queue SET state = 'scheduled', claimed_by = NULL, not_before = now() + make_interval(secs => $3)
                  WHERE post_id = $1 AND chat_id = $2")
            .bind(after.as_secs_f64())
            .execute(&shared.pool)
            .await?;
        }
        Next::Defer { due_at } => {
            row("UPDATE delivery_queue SET state = 'scheduled', claimed_by = NULL, due_at = $3, attempts = attempts - 1
                  WHERE post_id = $1 AND chat_id = $2")
            .bind(due_at)
            .execute(&shared.pool)
            .await?;
        }
        Next::Hold => {
            row("UPDATE delivery_queue SET state = 'scheduled', claimed_by = NULL, attempts = attempts - 1
                  WHERE post_id = $1 AND chat_id = $2")
            .execute(&shared.pool)
            .await?;
        }
        Next::Migrated { to } => {
            row("UPDATE delivery_queue SET state = 'scheduled', claimed_by = NULL, telegram_chat_id = $3, migrated = true
                  WHERE post_id = $1 AND chat_id = $2")
            .bind(to)
            .execute(&shared.pool)
            .await?;
        }
        Next::Cancelled => {
            row(
                "UPDATE delivery_queue SET state = 'cancelled' WHERE post_id = $1 AND chat_id = $2",
            )
            .execute(&shared.pool)
            .await?;
        }
    }
    Ok(())
}

async fn execute<A>(
    store: &EventStore,
    workspace_id: Id,
    id: Id,
    command: A::Command,
    actor: &str,
) -> anyhow::Result<()>
where
    A: cqrs_es::Aggregate<Error = domain::DomainError>,
    A::Command: Clone,
    EventStore: store::Handles<A>,
{
    match store
        .execute::<A>(workspace_id, id, command, &RequestContext::new(actor))
        .await
    {
        Ok(()) => Ok(()),
        // Refused by the domain (e.g. the target no longer matches): nothing to retry.
        Err(CommandError::Domain(error)) => {
            tracing::warn!(%id, code = error.code(), "delivery command refused");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

async fn record(
    store: &EventStore,
    workspace_id: Id,
    post_id: Id,
    chat_id: Id,
    outcome: DeliveryOutcome,
) -> anyhow::Result<()> {
    execute::<Post>(
        store,
        workspace_id,
        post_id,
        PostCommand::RecordDelivery { chat_id, outcome },
        ACTOR,
    )
    .await
}

/// After a delivery was flagged in doubt: when the workspace chose the "resend" policy, resolve
/// it so at once (audited under [`POLICY_ACTOR`]), which puts it back in the queue.
async fn apply_in_doubt_policy(
    store: &EventStore,
    workspace_id: Id,
    post_id: Id,
    chat_id: Id,
) -> anyhow::Result<()> {
    let workspace: Workspace = store.load(workspace_id).await?;
    if workspace.in_doubt_policy == InDoubtPolicy::Resend {
        let command = PostCommand::ResolveDelivery {
            chat_id,
            resolution: Resolution::Resend,
        };
        execute::<Post>(store, workspace_id, post_id, command, POLICY_ACTOR).await?;
    }
    Ok(())
}

enum BotClient {
    Ready(teloxide::Bot),
    Paused,
    Unusable(String),
}

impl Shared {
    /// The teloxide client of a bot, rebuilt whenever its (encrypted) token changes.
    async fn bot(&self, bot_id: Id) -> anyhow::Result<BotClient> {
        let aggregate: Bot = self.store.load(bot_id).await?;
        if aggregate.workspace_id.is_none() {
            return Ok(BotClient::Unusable(format!(
                "bot {bot_id} is not registered"
            )));
        }
        if aggregate.paused.is_some() {
            return Ok(BotClient::Paused);
        }
        let mut bots = self.bots.lock().await;
        if let Some((token, bot)) = bots.get(&bot_id)
            && *token == aggregate.encrypted_token
        {
            return Ok(BotClient::Ready(bot.clone()));
        }
        let token = match self.cipher.decrypt(&aggregate.encrypted_token) {
            Ok(token) => token,
            Err(error) => return Ok(BotClient::Unusable(error.to_string())),
        };
        let bot = telegram::bot(token.expose(), &self.settings.api_url)?;
        bots.insert(bot_id, (aggregate.encrypted_token, bot.clone()));
        Ok(BotClient::Ready(bot))
    }
}

/// The API URL without any path or credentials, for logs.
fn redacted_origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}
