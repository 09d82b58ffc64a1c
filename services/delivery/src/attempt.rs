//! One send task: with a slot of its bot's budget (taken by the claim), pass the gate, send at
//! the slot's start, and record what happened. The rules are in [`crate::decide`]; this module
//! only does the IO around them.
//!
//! The gate: from the final check until the request has gone out, the task holds shared
//! advisory locks on the post, the chat and the bot. Every event on one of them takes the
//! exclusive lock when it is written (a trigger on `events`) and keeps it to its commit. So a
//! command acknowledged before the final check (an opt-out, a cancel, a pause...) is seen by it,
//! and one that commits later was acknowledged after the request left. The locks are held until
//! the answer or [`GATE_HOLD`], whichever comes first (the task enters the gate [`GATE_LEAD`]
//! before its slot starts), so a command waits at most about that long.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use domain::{
    Bot, BotCommand, Chat, ChatCommand, Delivery, DeliveryCommand, DeliveryOutcome, Id,
    InDoubtPolicy, Post, Workspace,
};
use sqlx::PgConnection;
use store::{CommandError, EventStore, RequestContext};
use tokio::time::Instant;

use crate::decide::{self, BotState, Facts, Fresh, Next};
use crate::queue::budget::{self, Attempt, AttemptOutcome, Slot};
use crate::queue::claims::{self, Claimed, Release};
use crate::shared::Shared;
use crate::telegram::{self, SendResult};

/// The actor recorded on delivery outcome events.
pub const ACTOR: &str = "service:delivery";
/// The actor recorded when the workspace's in-doubt policy resends.
pub const POLICY_ACTOR: &str = "policy:in_doubt_resend";
/// How long before its slot starts a send enters the gate (about what the gate's reads take).
const GATE_LEAD: Duration = Duration::from_millis(10);
/// How long the gate stays closed behind a request that has not been answered yet.
pub const GATE_HOLD: Duration = Duration::from_millis(250);

/// What a finished task tells the dispatcher.
pub struct Done {
    pub chat_id: Id,
    pub bot_id: Id,
    pub telegram_bot_id: i64,
    pub group: bool,
    /// Telegram asked to wait (429).
    pub retry_after: Option<Duration>,
    /// When the answer came back, if a request went out.
    pub answered_at: Option<Instant>,
}

/// Runs one claimed delivery to its next step. Never fails: an error before the request means
/// nothing was sent, and the delivery is tried again later.
pub async fn deliver(claimed: Claimed, slot: Slot, shared: Arc<Shared>) -> Done {
    let mut answered_at = None;
    let mut telegram_chat_id = claimed.due.telegram_chat_id;
    let next = match attempt(
        &claimed,
        slot,
        &shared,
        &mut telegram_chat_id,
        &mut answered_at,
    )
    .await
    {
        Ok(next) => next,
        Err(error) => {
            tracing::warn!(post_id = %claimed.due.post_id, chat_id = %claimed.due.chat_id, error = format!("{error:#}"), "delivery attempt could not start");
            Next::RetryLater {
                after: crate::backoff(claimed.attempts),
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
    settle_until_written(&claimed, &shared, &next).await;
    Done {
        chat_id: claimed.due.chat_id,
        bot_id: claimed.due.bot_id,
        telegram_bot_id: claimed.due.telegram_bot_id,
        group: telegram_chat_id < 0,
        retry_after,
        answered_at,
    }
}

/// A task that panicked: its request may have gone out, so the delivery is in doubt.
pub async fn panicked(claimed: Claimed, shared: Arc<Shared>) -> Done {
    tracing::error!(post_id = %claimed.due.post_id, chat_id = %claimed.due.chat_id, "a delivery task failed unexpectedly; flagging the delivery in doubt");
    let next = Next::Record(DeliveryOutcome::Unknown {
        detail: "the send task failed unexpectedly while the request may have been on the wire; check the chat, then resolve".into(),
    });
    settle_until_written(&claimed, &shared, &next).await;
    Done {
        chat_id: claimed.due.chat_id,
        bot_id: claimed.due.bot_id,
        telegram_bot_id: claimed.due.telegram_bot_id,
        group: claimed.due.telegram_chat_id < 0,
        retry_after: None,
        answered_at: None,
    }
}

async fn attempt(
    claimed: &Claimed,
    slot: Slot,
    shared: &Shared,
    telegram_chat_id: &mut i64,
    answered_at: &mut Option<Instant>,
) -> anyhow::Result<Next> {
    let due = &claimed.due;
    // The claim found the delivery pending moments ago and took its slot of the bot's budget
    // (which may start a moment from now, when an answered one leaves the window); everything
    // is checked again at the gate, and the slot of a send it stops is given back. The gate is
    // entered just before the slot starts, so that its cost stays out of the window without
    // holding a gate connection for the wait.
    let enter_at = slot.start - TimeDelta::from_std(GATE_LEAD)?;
    if let Ok(wait) = (enter_at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }

    // The gate: one read of everything, then the request, under the locks. Gates have their
    // own connections, so tasks at the gate never starve heartbeats or claims of theirs.
    let mut gate = match shared.gate_pool.begin().await {
        Ok(gate) => gate,
        Err(error) => {
            budget::cancel_bot_slot(&shared.pool, due.telegram_bot_id, slot).await?;
            return Err(error.into());
        }
    };
    sqlx::query(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0)),
                pg_advisory_xact_lock_shared(hashtextextended($2, 0)),
                pg_advisory_xact_lock_shared(hashtextextended($3, 0))",
    )
    .bind(due.post_id.to_string())
    .bind(due.chat_id.to_string())
    .bind(due.bot_id.to_string())
    .execute(&mut *gate)
    .await?;
    let (now, content) = match fresh(claimed, shared, &mut gate).await {
        Ok(read) => read,
        Err(error) => {
            budget::cancel_bot_slot(&shared.pool, due.telegram_bot_id, slot).await?;
            return Err(error);
        }
    };
    let next = decide::before_send(&now, Utc::now());
    let (Next::Send, Some(content)) = (&next, content) else {
        drop(gate);
        budget::cancel_bot_slot(&shared.pool, due.telegram_bot_id, slot).await?;
        return Ok(next);
    };
    *telegram_chat_id = content.telegram_chat_id;
    // At the slot's start, not before.
    if let Ok(wait) = (slot.start - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let requested_at = Utc::now();
    let send = telegram::send_text(
        &content.bot,
        content.telegram_chat_id,
        &content.text,
        content.parse_mode,
        due.paid_broadcast,
    );
    tokio::pin!(send);
    let result = tokio::select! {
        result = &mut send => {
            drop(gate);
            result
        }
        _ = tokio::time::sleep(GATE_HOLD) => {
            drop(gate);
            send.await
        }
    };
    *answered_at = Some(Instant::now());
    let answered = Utc::now();
    finish(
        shared,
        claimed,
        slot,
        content.telegram_chat_id,
        (requested_at, answered),
        &result,
    )
    .await;
    Ok(decide::after_answer(
        result,
        Facts {
            attempts: claimed.attempts,
            max_attempts: shared.settings.max_attempts,
            migrated: claimed.migrated,
        },
    ))
}

/// What a request needs, when it may go.
struct Content {
    bot: teloxide::Bot,
    telegram_chat_id: i64,
    text: String,
    parse_mode: Option<domain::ParseMode>,
}

/// Reads the post, the chat, the bot, the lease and the chat's hourly count on the gate's
/// connection.
async fn fresh(
    claimed: &Claimed,
    shared: &Shared,
    conn: &mut PgConnection,
) -> anyhow::Result<(Fresh, Option<Content>)> {
    let due = &claimed.due;
    // Everything on this one connection: a task at the gate needs no other, so it can never
    // wait for a pool that commands queued behind its locks are holding.
    let post = shared.post_at_gate(conn, due.post_id).await?;
    let chat: Chat = store::load_on(conn, due.chat_id).await?;
    let bot: Bot = store::load_on(conn, due.bot_id).await?;
    let (bot_state, client) = shared.bot_client(due.bot_id, &bot).await?;
    let partition = crate::partition_of(due.chat_id);
    let lease_held = crate::leases::still_owner(conn, partition, &shared.worker_id).await?;
    let (sent, oldest) = budget::chat_sent_last_hour(conn, due.chat_id).await?;
    let fresh = Fresh {
        post_state: post.state,
        publish_at: post.publish_at,
        opted_out: chat.opted_out,
        blocked: chat.blocked.clone(),
        bot: bot_state,
        lease_held,
        chat_sent_last_hour: sent,
        chat_hourly_cap: chat.effective_hourly_cap(),
        chat_oldest_in_hour: oldest,
    };
    let content = client.map(|bot| Content {
        bot,
        telegram_chat_id: chat.telegram_chat_id,
        text: post.text,
        parse_mode: post.parse_mode,
    });
    Ok((fresh, content))
}

/// Books the answer: the slot counts from now, the attempt is logged.
async fn finish(
    shared: &Shared,
    claimed: &Claimed,
    slot: Slot,
    telegram_chat_id: i64,
    (requested_at, answered_at): (chrono::DateTime<Utc>, chrono::DateTime<Utc>),
    result: &SendResult,
) {
    let due = &claimed.due;
    let outcome = match result {
        SendResult::Sent { .. } => AttemptOutcome::Sent,
        SendResult::RetryAfter(_) => AttemptOutcome::RateLimited,
        SendResult::Blocked(_) => AttemptOutcome::Forbidden,
        SendResult::Permanent(_) => AttemptOutcome::Permanent,
        SendResult::Transient(_) => AttemptOutcome::Transient,
        SendResult::InDoubt(_) => AttemptOutcome::InDoubt,
        SendResult::Unauthorized => AttemptOutcome::Unauthorized,
        SendResult::Migrated(_) => AttemptOutcome::Migrated,
    };
    let attempt = Attempt {
        post_id: due.post_id,
        chat_id: due.chat_id,
        bot_id: due.bot_id,
        telegram_bot_id: due.telegram_bot_id,
        telegram_chat_id,
        partition: crate::partition_of(due.chat_id),
        at: requested_at,
        outcome,
        worker: shared.worker_id.clone(),
    };
    if let Err(error) = budget::book_answer(&shared.pool, slot, answered_at, &attempt).await {
        tracing::warn!(%error, "could not book an answer (its budget slot expires by itself)");
    }
}

/// Writes the step's consequences, retrying while the database is unavailable.
async fn settle_until_written(claimed: &Claimed, shared: &Shared, next: &Next) {
    let mut wait = Duration::from_millis(200);
    loop {
        match settle(claimed, shared, next).await {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(post_id = %claimed.due.post_id, chat_id = %claimed.due.chat_id, error = format!("{error:#}"), "recording a delivery outcome failed, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn settle(claimed: &Claimed, shared: &Shared, next: &Next) -> anyhow::Result<()> {
    let due = &claimed.due;
    let store = &shared.store;
    let release = match next {
        Next::Send => unreachable!("a task never settles before deciding"),
        Next::Record(outcome) => {
            let mine = shared.recorder.record(due, outcome.clone()).await?;
            return recorded(claimed, shared, outcome, mine).await;
        }
        Next::BlockChat { reason } => {
            let command = ChatCommand::MarkBlocked {
                reason: reason.clone(),
            };
            execute::<Chat>(store, due.workspace_id, due.chat_id, command, ACTOR).await?;
            let outcome = DeliveryOutcome::Failed {
                class: domain::FailureClass::Permanent,
                detail: reason.clone(),
            };
            let mine = shared.recorder.record(due, outcome.clone()).await?;
            return recorded(claimed, shared, &outcome, mine).await;
        }
        Next::PauseBot { reason } => {
            tracing::error!(bot_id = %due.bot_id, "telegram refused the bot token (401); pausing the bot until a new token is registered");
            let command = BotCommand::Pause {
                reason: reason.clone(),
            };
            execute::<Bot>(store, due.workspace_id, due.bot_id, command, ACTOR).await?;
            Release::Untried
        }
        Next::RetryLater {
            after,
            rate_limited,
        } => {
            if *rate_limited {
                tracing::info!(chat_id = %due.chat_id, retry_after_s = after.as_secs(), "telegram asked to slow down for this chat");
            } else {
                tracing::info!(chat_id = %due.chat_id, attempt = claimed.attempts, "transient delivery error, will retry");
            }
            let until = Utc::now() + TimeDelta::from_std(*after)?;
            let reason = if *rate_limited {
                "429 retry_after"
            } else {
                "back-off"
            };
            budget::hold_chat(&shared.pool, due.chat_id, until, reason).await?;
            Release::Retry
        }
        Next::Wait { until, reason } => {
            if let Some(until) = until
                && *reason != "rescheduled"
            {
                budget::hold_chat(&shared.pool, due.chat_id, *until, reason).await?;
            }
            Release::Untried
        }
        Next::Hold => Release::Untried,
        Next::Migrated { to } => {
            let command = ChatCommand::Migrate {
                to_telegram_chat_id: *to,
            };
            execute::<Chat>(store, due.workspace_id, due.chat_id, command, ACTOR).await?;
            Release::Migrated
        }
        Next::Cancelled => Release::Done,
    };
    let mine = claims::release(
        &shared.pool,
        &shared.worker_id,
        due.post_id,
        due.chat_id,
        release,
    )
    .await?;
    if !mine {
        warn_taken_over(due);
    }
    Ok(())
}

/// After an outcome was recorded (and the claim ended with it, if still this worker's).
async fn recorded(
    claimed: &Claimed,
    shared: &Shared,
    outcome: &DeliveryOutcome,
    mine: bool,
) -> anyhow::Result<()> {
    let due = &claimed.due;
    if !mine {
        warn_taken_over(due);
    } else if matches!(outcome, DeliveryOutcome::Unknown { .. }) {
        apply_in_doubt_policy(shared, due.workspace_id, due.post_id, due.chat_id).await?;
    }
    Ok(())
}

fn warn_taken_over(due: &claims::Due) {
    tracing::warn!(post_id = %due.post_id, chat_id = %due.chat_id, "this worker's claim was taken over while it sent; the delivery was flagged in doubt");
}

pub async fn execute<A>(
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

pub async fn record(
    store: &EventStore,
    workspace_id: Id,
    post_id: Id,
    chat_id: Id,
    outcome: DeliveryOutcome,
) -> anyhow::Result<()> {
    let command = DeliveryCommand::Record {
        post_id,
        chat_id,
        outcome,
    };
    let id = domain::delivery_id(post_id, chat_id);
    execute::<Delivery>(store, workspace_id, id, command, ACTOR).await
}

/// After a delivery was flagged in doubt: when the workspace chose the "resend" policy, resend
/// it (audited under [`POLICY_ACTOR`]), at most `max_auto_resends` times per delivery; past
/// that it stays in doubt for an operator.
pub async fn apply_in_doubt_policy(
    shared: &Shared,
    workspace_id: Id,
    post_id: Id,
    chat_id: Id,
) -> anyhow::Result<()> {
    let workspace: Workspace = shared.store.load(workspace_id).await?;
    if workspace.in_doubt_policy != InDoubtPolicy::Resend {
        return Ok(());
    }
    let command = DeliveryCommand::ResendAutomatically {
        post_id,
        chat_id,
        max: shared.settings.max_auto_resends,
    };
    match shared
        .store
        .execute::<Delivery>(
            workspace_id,
            domain::delivery_id(post_id, chat_id),
            command,
            &RequestContext::new(POLICY_ACTOR),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(CommandError::Domain(domain::DomainError::AutoResendLimit { max, .. })) => {
            tracing::warn!(%post_id, %chat_id, max, "delivery still in doubt after the automatic resends; an operator must resolve it");
            Ok(())
        }
        Err(CommandError::Domain(error)) => {
            tracing::warn!(%post_id, code = error.code(), "in-doubt policy refused");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

impl Shared {
    /// A post as a send needs it: its first event (immutable, so read once per worker and kept
    /// without its chat list) and, read now, every decision since (never its further targets).
    pub async fn post_at_gate(&self, conn: &mut PgConnection, post_id: Id) -> anyhow::Result<Post> {
        let kept = self
            .planned
            .lock()
            .expect("posts cache")
            .get(&post_id)
            .cloned();
        let mut post = match kept {
            Some(post) => post,
            None => {
                let mut post = Post::default();
                store::apply_on(conn, post_id, &mut post, 1..=1, &[]).await?;
                post.chat_ids = Vec::new();
                let mut planned = self.planned.lock().expect("posts cache");
                if planned.len() >= crate::shared::KEPT_POSTS {
                    planned.clear();
                }
                planned.insert(post_id, post.clone());
                post
            }
        };
        store::apply_on(
            conn,
            post_id,
            &mut post,
            2..=i64::MAX,
            &[domain::TARGETS_EVENT],
        )
        .await?;
        Ok(post)
    }

    /// The bot's state and, when it can send, its teloxide client (rebuilt when its token
    /// changes).
    pub async fn bot_client(
        &self,
        bot_id: Id,
        aggregate: &Bot,
    ) -> anyhow::Result<(BotState, Option<teloxide::Bot>)> {
        if aggregate.workspace_id.is_none() {
            return Ok((
                BotState::Unusable(format!("bot {bot_id} is not registered")),
                None,
            ));
        }
        if aggregate.paused.is_some() {
            return Ok((BotState::Paused, None));
        }
        let mut bots = self.bots.lock().await;
        if let Some((token, bot)) = bots.get(&bot_id)
            && *token == aggregate.encrypted_token
        {
            return Ok((BotState::Ready, Some(bot.clone())));
        }
        let token = match self.cipher.decrypt(&aggregate.encrypted_token) {
            Ok(token) => token,
            Err(error) => return Ok((BotState::Unusable(error.to_string()), None)),
        };
        let bot = telegram::bot(token.expose(), &self.settings.api_url)?;
        bots.insert(bot_id, (aggregate.encrypted_token.clone(), bot.clone()));
        Ok((BotState::Ready, Some(bot)))
    }
}
