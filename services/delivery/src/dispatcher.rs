//! Claims due deliveries, paces them and sends them, one message at a time per chat.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use domain::{Bot, Chat, DeliveryOutcome, FailureClass, Id, Post, PostCommand, PostState};
use platform::{Shutdown, TokenCipher};
use sqlx::{PgPool, Row};
use store::{CommandError, EventStore, RequestContext};
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::pacing::{Limits, Pacer};
use crate::telegram::{self, SendResult};

/// The actor recorded on delivery outcome events.
pub const ACTOR: &str = "service:delivery";

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
    telegram_chat_id: i64,
    attempts: i32,
}

/// What a finished send task reports back to the dispatcher.
struct Done {
    chat_id: Id,
    bot_id: Id,
    telegram_chat_id: i64,
    retry_after: Option<Duration>,
}

/// What to do with a row after an attempt.
enum Next {
    Record(DeliveryOutcome),
    RetryLater { after: Duration },
    Cancelled,
}

/// State shared by send tasks.
struct Shared {
    pool: PgPool,
    store: EventStore,
    cipher: TokenCipher,
    settings: Settings,
    bots: Mutex<HashMap<Id, teloxide::Bot>>,
}

pub struct Dispatcher {
    shared: Arc<Shared>,
    worker_id: String,
    pacer: Pacer,
    in_flight: HashSet<Id>,
}

impl Dispatcher {
    pub fn new(pool: PgPool, store: EventStore, cipher: TokenCipher, settings: Settings) -> Self {
        Self {
            pacer: Pacer::new(settings.limits),
            shared: Arc::new(Shared {
                pool,
                store,
                cipher,
                settings,
                bots: Mutex::new(HashMap::new()),
            }),
            worker_id: format!("delivery-{}", uuid::Uuid::new_v4()),
            in_flight: HashSet::new(),
        }
    }

    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let settings = self.shared.settings.clone();
        tracing::info!(worker = %self.worker_id, api = %redacted_origin(&settings.api_url), "delivery dispatcher started");
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut tick = tokio::time::interval(settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heartbeat = Instant::now() - settings.worker_timeout;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if last_heartbeat.elapsed() >= settings.worker_timeout / 5 {
                        if let Err(error) = self.heartbeat_and_recover().await {
                            tracing::warn!(error = format!("{error:#}"), "delivery heartbeat failed");
                        }
                        last_heartbeat = Instant::now();
                    }
                    if tasks.len() < settings.max_in_flight {
                        match self.claim_due(settings.max_in_flight - tasks.len()).await {
                            Ok(jobs) => for job in jobs {
                                self.in_flight.insert(job.chat_id);
                                tasks.spawn(deliver(job, self.shared.clone()));
                            },
                            Err(error) => tracing::warn!(error = format!("{error:#}"), "claiming due deliveries failed"),
                        }
                    }
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                    Ok(done) => self.finish(done),
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
        sqlx::query("DELETE FROM delivery_workers WHERE worker_id = $1")
            .bind(&self.worker_id)
            .execute(&self.shared.pool)
            .await?;
        tracing::info!(worker = %self.worker_id, "delivery dispatcher stopped");
        Ok(())
    }

    fn finish(&mut self, done: Done) {
        self.in_flight.remove(&done.chat_id);
        if let Some(retry_after) = done.retry_after {
            self.pacer.retry_after(
                done.bot_id,
                done.telegram_chat_id,
                retry_after,
                Instant::now(),
            );
        }
    }

    /// Claims due rows the pacer allows now: the earliest per chat, one in flight per chat.
    async fn claim_due(&mut self, room: usize) -> anyhow::Result<Vec<Job>> {
        let mut tx = self.shared.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT post_id, chat_id, workspace_id, bot_id, telegram_chat_id, attempts,
                    (not_before IS NOT NULL AND not_before > now()) AS backing_off
               FROM delivery_queue
              WHERE state = 'scheduled' AND due_at <= now()
              ORDER BY due_at, post_id
              LIMIT 2000
                FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await
        .context("reading due deliveries")?;
        let now = Instant::now();
        let mut seen = HashSet::new();
        let mut jobs = Vec::new();
        for row in rows {
            let chat_id: Id = row.try_get("chat_id")?;
            // Only the earliest due row of a chat is a candidate: posts keep their order.
            if !seen.insert(chat_id)
                || self.in_flight.contains(&chat_id)
                || row.try_get::<bool, _>("backing_off")?
            {
                continue;
            }
            let job = Job {
                post_id: row.try_get("post_id")?,
                chat_id,
                workspace_id: row.try_get("workspace_id")?,
                bot_id: row.try_get("bot_id")?,
                telegram_chat_id: row.try_get("telegram_chat_id")?,
                attempts: row.try_get::<i32, _>("attempts")? + 1,
            };
            if self
                .pacer
                .try_acquire(job.bot_id, job.telegram_chat_id, now)
                .is_ok()
            {
                jobs.push(job);
                if jobs.len() >= room {
                    break;
                }
            }
        }
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
        Ok(jobs)
    }

    /// Proves this worker alive, and flags the `sending` rows of dead workers as in doubt.
    async fn heartbeat_and_recover(&self) -> anyhow::Result<()> {
        let pool = &self.shared.pool;
        sqlx::query(
            "INSERT INTO delivery_workers (worker_id, heartbeat_at) VALUES ($1, now())
             ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now()",
        )
        .bind(&self.worker_id)
        .execute(pool)
        .await?;
        let timeout_secs = self.shared.settings.worker_timeout.as_secs_f64();
        let mut tx = pool.begin().await?;
        let orphans = sqlx::query(
            "SELECT post_id, chat_id, workspace_id FROM delivery_queue q
              WHERE state = 'sending' AND claimed_by <> $1
                AND NOT EXISTS (SELECT 1 FROM delivery_workers w
                                 WHERE w.worker_id = q.claimed_by
                                   AND w.heartbeat_at > now() - make_interval(secs => $2))
                FOR UPDATE SKIP LOCKED",
        )
        .bind(&self.worker_id)
        .bind(timeout_secs)
        .fetch_all(&mut *tx)
        .await?;
        for row in orphans {
            let (post_id, chat_id, workspace_id): (Id, Id, Id) = (
                row.try_get("post_id")?,
                row.try_get("chat_id")?,
                row.try_get("workspace_id")?,
            );
            tracing::warn!(%post_id, %chat_id, "delivery in doubt: its worker stopped while sending");
            let outcome = DeliveryOutcome::Unknown {
                detail: "the delivery worker stopped while the request may have been on the wire; check the chat, then resolve".into(),
            };
            record(&self.shared.store, workspace_id, post_id, chat_id, outcome).await?;
            sqlx::query(
                "UPDATE delivery_queue SET state = 'done' WHERE post_id = $1 AND chat_id = $2",
            )
            .bind(post_id)
            .bind(chat_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        sqlx::query("DELETE FROM delivery_workers WHERE heartbeat_at < now() - interval '1 day'")
            .execute(pool)
            .await?;
        Ok(())
    }
}

/// One send task: decide, send, record. Never panics on data; always reports back.
async fn deliver(job: Job, shared: Arc<Shared>) -> Done {
    let next = match attempt(&job, &shared).await {
        Ok(next) => next,
        Err(error) => {
            // Nothing was sent (the failure happened before the request): safe to retry.
            tracing::warn!(post_id = %job.post_id, chat_id = %job.chat_id, error = format!("{error:#}"), "delivery attempt could not start");
            Next::RetryLater {
                after: crate::backoff(job.attempts),
            }
        }
    };
    let retry_after = match &next {
        Next::RetryLater { after } => Some(*after),
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
        telegram_chat_id: job.telegram_chat_id,
        retry_after,
    }
}

/// Checks that the delivery is still wanted, then sends it.
async fn attempt(job: &Job, shared: &Shared) -> anyhow::Result<Next> {
    let post: Post = shared.store.load(job.post_id).await?;
    if post.state != PostState::Approved {
        return Ok(Next::Cancelled);
    }
    let chat: Chat = shared.store.load(job.chat_id).await?;
    if chat.opted_out {
        return Ok(Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::OptedOut,
            detail: "the chat opted out before the post went out; nothing was sent".into(),
        }));
    }
    let bot = match shared.bot(job.bot_id).await {
        Ok(bot) => bot,
        Err(error) => {
            return Ok(Next::Record(DeliveryOutcome::Failed {
                class: FailureClass::Permanent,
                detail: format!("the bot cannot be used: {error}"),
            }));
        }
    };
    let started = Instant::now();
    let result = telegram::send_text(&bot, job.telegram_chat_id, &post.text, post.parse_mode).await;
    tracing::debug!(post_id = %job.post_id, chat_id = %job.chat_id, elapsed_ms = started.elapsed().as_millis() as u64, result = ?std::mem::discriminant(&result), "sent");
    Ok(match result {
        SendResult::Sent { message_id } => Next::Record(DeliveryOutcome::Delivered {
            telegram_message_id: message_id,
        }),
        SendResult::RetryAfter(after) => {
            tracing::info!(chat_id = %job.chat_id, retry_after_s = after.as_secs(), "telegram asked to slow down for this chat");
            Next::RetryLater { after }
        }
        SendResult::Permanent(detail) => Next::Record(DeliveryOutcome::Failed {
            class: FailureClass::Permanent,
            detail,
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
            }
        }
        SendResult::InDoubt(detail) => Next::Record(DeliveryOutcome::Unknown { detail }),
    })
}

/// Writes the consequence of an attempt: an event on the post and the row's new state.
async fn settle(job: &Job, shared: &Shared, next: &Next) -> anyhow::Result<()> {
    let key = (job.post_id, job.chat_id);
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
            sqlx::query(
                "UPDATE delivery_queue SET state = 'done' WHERE post_id = $1 AND chat_id = $2",
            )
            .bind(key.0)
            .bind(key.1)
            .execute(&shared.pool)
            .await?;
        }
        Next::RetryLater { after } => {
            sqlx::query(
                "UPDATE delivery_queue SET state = 'scheduled', claimed_by = NULL, not_before = now() + make_interval(secs => $3)
                  WHERE post_id = $1 AND chat_id = $2",
            )
            .bind(key.0)
            .bind(key.1)
            .bind(after.as_secs_f64())
            .execute(&shared.pool)
            .await?;
        }
        Next::Cancelled => {
            sqlx::query(
                "UPDATE delivery_queue SET state = 'cancelled' WHERE post_id = $1 AND chat_id = $2",
            )
            .bind(key.0)
            .bind(key.1)
            .execute(&shared.pool)
            .await?;
        }
    }
    Ok(())
}

async fn record(
    store: &EventStore,
    workspace_id: Id,
    post_id: Id,
    chat_id: Id,
    outcome: DeliveryOutcome,
) -> anyhow::Result<()> {
    let context = RequestContext::new(ACTOR);
    match store
        .execute::<Post>(
            workspace_id,
            post_id,
            PostCommand::RecordDelivery { chat_id, outcome },
            &context,
        )
        .await
    {
        Ok(()) => Ok(()),
        // The post no longer lists this chat: nothing to record (and nothing to retry).
        Err(CommandError::Domain(error)) => {
            tracing::warn!(%post_id, %chat_id, code = error.code(), "delivery outcome refused by the post");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

impl Shared {
    /// The teloxide client of a bot, built once from its decrypted token.
    async fn bot(&self, bot_id: Id) -> anyhow::Result<teloxide::Bot> {
        let mut bots = self.bots.lock().await;
        if let Some(bot) = bots.get(&bot_id) {
            return Ok(bot.clone());
        }
        let aggregate: Bot = self.store.load(bot_id).await?;
        anyhow::ensure!(
            aggregate.workspace_id.is_some(),
            "bot {bot_id} is not registered"
        );
        let token = self.cipher.decrypt(&aggregate.encrypted_token)?;
        let bot = telegram::bot(token.expose(), &self.settings.api_url)?;
        bots.insert(bot_id, bot.clone());
        Ok(bot)
    }
}

/// The API URL without any path or credentials, for logs.
fn redacted_origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}
