//! The bots listen: every registered bot's updates (what people and chats do to it) are
//! received with teloxide's `getUpdates` long poll and become events of the chats they concern:
//!
//! * `/start` in a private chat: the person's consent (`ContactStarted`, or a new contact
//!   `ChatConnected` with source `bot_start`); it also lifts their earlier opt-out, since it is
//!   their own action;
//! * `/stop`, or the person blocking the bot (`my_chat_member` → kicked): `ChatOptedOut`;
//! * the bot removed from a group or channel, or its rights changed: `ChatChecked` (planning
//!   refuses a flagged chat, sends skip it; restored rights clear the flag).
//!
//! Each update is handled exactly once, across restarts and listeners: its id is recorded in
//! `bot_updates` in the same transaction as the events it caused (see migration 0019), and
//! the next poll's offset, which confirms the update to Telegram, is read from there. One
//! process polls at a time (an advisory lock; Telegram refuses two concurrent polls of a bot).
//! In production the updates can come by webhook instead (`webhook`): Telegram pushes each
//! one, and the same handling records it exactly once.
//! The bot does not answer people: a reply would spend the bot's rate budget outside the
//! delivery schedule.

pub mod intent;
pub mod webhook;

use std::collections::HashMap;
use std::time::Duration;

use domain::consent::Basis;
use domain::{Bot, ChatCommand, DomainError, Id};
use platform::{Shutdown, TokenCipher};
use sqlx::PgPool;
use store::{EventStore, RequestContext};
use teloxide::payloads::{GetUpdatesSetters, SetWebhookSetters};
use teloxide::requests::Requester;
use teloxide::types::{AllowedUpdate, Update};

use crate::intent::Intent;

/// Who records what the bots heard, in event metadata.
pub const ACTOR: &str = "service:bot";
/// The advisory lock that makes one process the listener.
const LOCK: &str = "herald-bot-updates";
/// Pause after a failed poll (Telegram or the network down), doubling up to a minute.
const RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
pub struct Settings {
    /// The Bot API (the sandbox's, or Telegram's).
    pub api_url: url::Url,
    /// How long one `getUpdates` waits for an update (Telegram allows 50 s).
    pub poll_timeout: Duration,
    /// How often the list of bots is read again (bots registered, paused or given a new token).
    pub refresh: Duration,
    /// Receive updates by webhook rather than by polling (`None`: poll).
    pub webhook: Option<webhook::Webhook>,
}

impl Settings {
    pub fn new(api_url: url::Url) -> Self {
        Self {
            api_url,
            poll_timeout: Duration::from_secs(25),
            refresh: Duration::from_secs(5),
            webhook: None,
        }
    }
}

/// The listener's resources: the worker pool and the event store over it.
#[derive(Clone)]
pub struct Listener {
    pub pool: PgPool,
    pub store: EventStore,
    pub cipher: TokenCipher,
    pub settings: Settings,
}

/// A bot being listened to (polled, or its webhook set).
struct Polling {
    /// The token it polls with: a replaced token restarts its poll (or sets its webhook again).
    encrypted_token: String,
    task: tokio::task::AbortHandle,
}

/// The bot an update came to, and its workspace.
#[derive(Debug, Clone, Copy)]
pub struct BotRef {
    pub bot_id: Id,
    pub workspace_id: Id,
}

impl Listener {
    /// Listens until `shutdown`: waits to become the listener, then polls every bot.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        loop {
            let lock = match platform::postgres::try_lock(&self.pool, LOCK).await {
                Ok(lock) => lock,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "bot updates: cannot take the listener lock; retrying"
                    );
                    None
                }
            };
            if let Some(_lock) = lock {
                tracing::info!("listening to the bots' updates");
                return self.listen(&shutdown).await;
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.settings.refresh) => {}
            }
        }
    }

    async fn listen(&self, shutdown: &Shutdown) -> anyhow::Result<()> {
        let mut polling: HashMap<Id, Polling> = HashMap::new();
        // Owned here: when the listener ends (or is dropped), every bot's poll ends with it.
        let mut tasks = tokio::task::JoinSet::new();
        let accepted = webhook::Accepted::default();
        if let Some(hook) = &self.settings.webhook {
            let receiver = webhook::serve(
                self.clone(),
                accepted.clone(),
                hook.listen,
                shutdown.clone(),
            );
            tasks.spawn(async move {
                if let Err(error) = receiver.await {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "bot updates: the webhook receiver stopped"
                    );
                }
            });
        }
        loop {
            while tasks.try_join_next().is_some() {}
            match self.bots().await {
                Ok(bots) => self.follow(&mut polling, &mut tasks, &accepted, bots, shutdown),
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "bot updates: cannot read the bots; retrying"
                    )
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.settings.refresh) => {}
            }
        }
        tasks.shutdown().await;
        Ok(())
    }

    /// Registered bots that are not paused, with their workspace.
    async fn bots(&self) -> anyhow::Result<Vec<(Id, Id, Bot)>> {
        let ids: Vec<(Id, Id)> =
            sqlx::query_as("SELECT bot_id, workspace_id FROM telegram_bot_identities")
                .fetch_all(&self.pool)
                .await?;
        let mut bots = Vec::with_capacity(ids.len());
        for (bot_id, workspace_id) in ids {
            let bot: Bot = self.store.load(bot_id).await?;
            if bot.paused.is_none() {
                bots.push((bot_id, workspace_id, bot));
            }
        }
        Ok(bots)
    }

    /// Starts a poll (or sets the webhook) for each new bot or new token, stops those of bots
    /// gone or paused.
    fn follow(
        &self,
        polling: &mut HashMap<Id, Polling>,
        tasks: &mut tokio::task::JoinSet<()>,
        accepted: &webhook::Accepted,
        bots: Vec<(Id, Id, Bot)>,
        shutdown: &Shutdown,
    ) {
        let listed: HashMap<Id, String> = bots
            .iter()
            .map(|(id, _, bot)| (*id, bot.encrypted_token.clone()))
            .collect();
        polling.retain(|id, poll| {
            let keep = listed.get(id) == Some(&poll.encrypted_token) && !poll.task.is_finished();
            if !keep {
                poll.task.abort();
            }
            keep
        });
        accepted
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|id, _| polling.contains_key(id));
        for (bot_id, workspace_id, bot) in bots {
            if polling.contains_key(&bot_id) {
                continue;
            }
            let token = match self.cipher.decrypt(&bot.encrypted_token) {
                Ok(token) => token,
                Err(error) => {
                    tracing::warn!(%bot_id, %error, "bot updates: cannot read the bot's token");
                    continue;
                }
            };
            let client = match bot_client(token.expose(), &self.settings) {
                Ok(client) => client,
                Err(error) => {
                    tracing::warn!(%bot_id, error = format!("{error:#}"), "bot updates: no client for the bot");
                    continue;
                }
            };
            let bot_ref = BotRef {
                bot_id,
                workspace_id,
            };
            let task = match &self.settings.webhook {
                Some(hook) => {
                    let secret = webhook::secret(bot_id, token.expose());
                    accepted
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(bot_id, (bot_ref, secret.clone()));
                    let url = webhook::url_for(&hook.public_url, bot_id);
                    tasks.spawn(register(client, bot_id, url, secret, shutdown.clone()))
                }
                None => {
                    let poll = Poll {
                        listener: self.clone(),
                        bot: bot_ref,
                        client,
                    };
                    tasks.spawn(poll.run(shutdown.clone()))
                }
            };
            polling.insert(
                bot_id,
                Polling {
                    encrypted_token: bot.encrypted_token,
                    task,
                },
            );
        }
    }
}

/// Sets `bot_id`'s webhook (retrying until Telegram takes it), then holds its place until
/// shutdown: the bot is listened to as long as this task runs.
async fn register(
    client: teloxide::Bot,
    bot_id: Id,
    url: url::Url,
    secret: String,
    shutdown: Shutdown,
) {
    let mut retry = RETRY;
    loop {
        let set = client
            .set_webhook(url.clone())
            .secret_token(secret.clone())
            .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::MyChatMember])
            .await;
        match set {
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(%bot_id, %error, retry_in = ?retry, "bot updates: setting the webhook failed");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(retry) => {}
                }
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
    tracing::info!(%bot_id, "bot updates: webhook set");
    shutdown.cancelled().await;
}

/// A teloxide client whose timeout outlasts a long poll.
fn bot_client(token: &str, settings: &Settings) -> anyhow::Result<teloxide::Bot> {
    let client = teloxide::net::default_reqwest_settings()
        .timeout(settings.poll_timeout + Duration::from_secs(10))
        .build()?;
    Ok(teloxide::Bot::with_client(token, client).set_api_url(settings.api_url.clone()))
}

/// One bot's poll loop.
struct Poll {
    listener: Listener,
    bot: BotRef,
    client: teloxide::Bot,
}

impl Poll {
    async fn run(self, shutdown: Shutdown) {
        let mut retry = RETRY;
        let mut offset = None;
        // A webhook set earlier would make Telegram refuse the poll (409): polling replaces it.
        // Its pending updates stay queued for the poll.
        if let Err(error) = self.client.delete_webhook().await {
            tracing::warn!(bot_id = %self.bot.bot_id, %error, "bot updates: cannot remove an earlier webhook");
        }
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let result = match offset {
                Some(offset) => Ok(offset),
                None => next_offset(&self.listener.pool, self.bot.bot_id).await,
            };
            let polled = match result {
                Ok(next) => tokio::select! {
                    () = shutdown.cancelled() => return,
                    polled = self.poll(next) => polled,
                },
                Err(error) => Err(error),
            };
            match polled {
                Ok(next) => {
                    offset = Some(next);
                    retry = RETRY;
                }
                Err(error) => {
                    // The offset is read again: what was handled is in bot_updates.
                    offset = None;
                    tracing::warn!(bot_id = %self.bot.bot_id, error = format!("{error:#}"), retry_in = ?retry, "bot updates: a poll failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        }
    }

    /// One `getUpdates` from `offset`; handles each update in order and returns the next
    /// offset.
    async fn poll(&self, offset: i64) -> anyhow::Result<i64> {
        let timeout = u32::try_from(self.listener.settings.poll_timeout.as_secs()).unwrap_or(25);
        let updates = self
            .client
            .get_updates()
            .offset(i32::try_from(offset).unwrap_or(i32::MAX))
            .timeout(timeout)
            .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::MyChatMember])
            .await?;
        let mut next = offset;
        for update in updates {
            self.listener.handle(self.bot, &update).await?;
            next = next.max(i64::from(update.id.0) + 1);
        }
        Ok(next)
    }
}

impl Listener {
    /// Records what `update` means, once: a redelivered update finds its row and changes
    /// nothing (returns whether it was new).
    pub async fn handle(&self, bot: BotRef, update: &Update) -> anyhow::Result<bool> {
        let update_id = i64::from(update.id.0);
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO bot_updates (bot_id, update_id, workspace_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(bot.bot_id)
        .bind(update_id)
        .bind(bot.workspace_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(false);
        }
        if let Some(intent) = intent::of(update)
            && let Some((chat_id, command)) =
                command(&mut tx, &self.cipher, bot, intent, update_id).await?
        {
            let context = RequestContext::new(ACTOR);
            let results = self
                .store
                .execute_on::<domain::Chat>(
                    &mut tx,
                    vec![(bot.workspace_id, chat_id, command)],
                    &context,
                )
                .await?;
            for result in results {
                if let Err(refusal) = result {
                    refused(bot.bot_id, update_id, &refusal);
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// The command an intent asks of its chat, if the chat is (or, for a start, becomes)
/// connected to the bot.
async fn command(
    conn: &mut sqlx::PgConnection,
    cipher: &TokenCipher,
    bot: BotRef,
    intent: Intent,
    update_id: i64,
) -> anyhow::Result<Option<(Id, ChatCommand)>> {
    let telegram_chat_id = match &intent {
        Intent::Start {
            telegram_chat_id, ..
        }
        | Intent::OptOut {
            telegram_chat_id, ..
        }
        | Intent::Standing {
            telegram_chat_id, ..
        } => *telegram_chat_id,
    };
    let chat_id: Option<Id> = sqlx::query_scalar(
        "SELECT chat_id FROM telegram_chat_identities
              WHERE bot_id = $1 AND telegram_chat_id = $2 AND workspace_id = $3",
    )
    .bind(bot.bot_id)
    .bind(telegram_chat_id)
    .bind(bot.workspace_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match (intent, chat_id) {
        (Intent::Start { first_name, at, .. }, None) => {
            let chat_id = Id::now_v7();
            // The person's name, sealed under their own key in this transaction.
            let title =
                store::subjects::seal(conn, cipher, bot.workspace_id, chat_id, &first_name).await?;
            Some((
                chat_id,
                ChatCommand::Connect {
                    workspace_id: bot.workspace_id,
                    bot_id: bot.bot_id,
                    telegram_chat_id,
                    title,
                    kind: Some("private".into()),
                    basis: Some(Basis::bot_start(at)),
                    tags: Vec::new(),
                    username: None,
                },
            ))
        }
        (Intent::Start { at, .. }, Some(chat_id)) => Some((
            chat_id,
            ChatCommand::Start {
                given_at: at,
                update_id,
            },
        )),
        (Intent::OptOut { reason, .. }, Some(chat_id)) => Some((
            chat_id,
            ChatCommand::OptOut {
                reason: reason.into(),
                update_id: Some(update_id),
            },
        )),
        (
            Intent::Standing {
                kind,
                title,
                cannot_post,
                ..
            },
            Some(chat_id),
        ) => Some((
            chat_id,
            ChatCommand::RecordCheck {
                kind: kind.into(),
                title,
                cannot_post,
                update_id: Some(update_id),
            },
        )),
        // Nothing to stop or check in a chat Herald does not know.
        (_, None) => None,
    })
}

/// The first update not yet handled for `bot_id` (0 before any: Telegram's oldest).
async fn next_offset(pool: &PgPool, bot_id: Id) -> anyhow::Result<i64> {
    let last: Option<i64> =
        sqlx::query_scalar("SELECT max(update_id) FROM bot_updates WHERE bot_id = $1")
            .bind(bot_id)
            .fetch_one(pool)
            .await?;
    Ok(last.map_or(0, |id| id + 1))
}

fn refused(bot_id: Id, update_id: i64, refusal: &DomainError) {
    tracing::info!(%bot_id, update_id, code = refusal.code(), "bot updates: an update changed nothing");
}
