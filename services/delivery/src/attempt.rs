//! One send task: with a slot of its bot's budget (taken by the claim), pass the gate
//! ([`crate::gate`]) just before the slot starts, send at its start, and record what happened.
//! The rules are in [`crate::decide`]; this module only does the IO around them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use domain::{
    Bot, BotCommand, Chat, ChatCommand, Delivery, DeliveryCommand, DeliveryOutcome, Id,
    InDoubtPolicy, Post, Workspace,
};
use sqlx::PgConnection;
use std::collections::{HashMap, HashSet};
use store::{CommandError, EventStore, RequestContext};
use tokio::time::Instant;

use crate::decide::{self, BotState, Facts, Next};
use crate::gate::GATE_HOLD;
use crate::queue::budget::{self, Answer, Attempt, AttemptOutcome, Slot};
use crate::queue::claims::{self, Claimed, Release};
use crate::shared::Shared;
use crate::telegram::{self, SendResult};

/// The actor recorded on delivery outcome events.
pub const ACTOR: &str = "service:delivery";
/// The actor recorded when the workspace's in-doubt policy resends.
pub const POLICY_ACTOR: &str = "policy:in_doubt_resend";
/// How long before its slot starts a send enters the gate: a little more than a group's locks
/// and reads take (a group of 256 sends read in 15-45 ms on a busy two-core machine), so that
/// the request leaves at the slot's start. Tried and not kept: a lead that grows with the sends
/// starting together (10 ms plus 0.15 ms a send): sends starting alone then met gates busy with
/// others' groups, and 151 of 800 requests in a run left 90 ms late (`bots` 0.92 against
/// 0.94-0.97 with this fixed lead).
const GATE_LEAD: Duration = Duration::from_millis(50);

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
    let (next, answer) = match attempt(
        &claimed,
        slot,
        &shared,
        &mut telegram_chat_id,
        &mut answered_at,
    )
    .await
    {
        Ok(step) => step,
        Err(error) => {
            tracing::warn!(post_id = %claimed.due.post_id, chat_id = %claimed.due.chat_id, error = format!("{error:#}"), "delivery attempt could not start");
            let retry = Next::RetryLater {
                after: crate::backoff(claimed.attempts),
                rate_limited: false,
            };
            (retry, None)
        }
    };
    let retry_after = match &next {
        Next::RetryLater {
            after,
            rate_limited: true,
        } => Some(*after),
        _ => None,
    };
    settle_until_written(&claimed, &shared, &next, answer).await;
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
    settle_until_written(&claimed, &shared, &next, None).await;
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
    shared: &Arc<Shared>,
    telegram_chat_id: &mut i64,
    answered_at: &mut Option<Instant>,
) -> anyhow::Result<(Next, Option<Answer>)> {
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
    let entered_at = Utc::now();
    let pass = match shared.gate.enter(shared.clone(), due.clone()).await {
        Ok(pass) => pass,
        Err(error) => {
            budget::cancel_bot_slot(&shared.pool, due.telegram_bot_id, slot).await?;
            return Err(error);
        }
    };
    // Ruled at the moment the request will leave (the slot's start, a moment from now).
    let next = decide::before_send(&pass.fresh, slot.start.max(Utc::now()));
    let (Next::Send, Some(content)) = (&next, pass.content) else {
        drop(pass.hold);
        budget::cancel_bot_slot(&shared.pool, due.telegram_bot_id, slot).await?;
        return Ok((next, None));
    };
    let hold = pass.hold;
    let passed_at = Utc::now();
    *telegram_chat_id = content.telegram_chat_id;
    // At the slot's start, not before.
    if let Ok(wait) = (slot.start - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let requested_at = Utc::now();
    let late = requested_at - slot.start;
    if late > TimeDelta::milliseconds(10) {
        // For tuning the leads (times only): a claim that came late, or a gate that was busy.
        tracing::debug!(
            late_ms = late.num_milliseconds(),
            entered_ms = (entered_at - slot.start).num_milliseconds(),
            passed_ms = (passed_at - slot.start).num_milliseconds(),
            "a request left after its slot's start"
        );
    }
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
            drop(hold);
            result
        }
        _ = tokio::time::sleep(GATE_HOLD) => {
            drop(hold);
            send.await
        }
    };
    *answered_at = Some(Instant::now());
    let answer = Answer {
        slot,
        answered_at: Utc::now(),
        attempt: Attempt {
            post_id: due.post_id,
            chat_id: due.chat_id,
            bot_id: due.bot_id,
            telegram_bot_id: due.telegram_bot_id,
            telegram_chat_id: content.telegram_chat_id,
            partition: crate::partition_of(due.chat_id),
            at: requested_at,
            outcome: attempt_outcome(&result),
            worker: shared.worker_id.clone(),
        },
    };
    let next = decide::after_answer(
        result,
        Facts {
            attempts: claimed.attempts,
            max_attempts: shared.settings.max_attempts,
            migrated: claimed.migrated,
        },
    );
    Ok((next, Some(answer)))
}

/// The class of an answer, as the attempt log keeps it (never message content).
fn attempt_outcome(result: &SendResult) -> AttemptOutcome {
    match result {
        SendResult::Sent { .. } => AttemptOutcome::Sent,
        SendResult::RetryAfter(_) => AttemptOutcome::RateLimited,
        SendResult::Blocked(_) => AttemptOutcome::Forbidden,
        SendResult::Permanent(_) => AttemptOutcome::Permanent,
        SendResult::Transient(_) => AttemptOutcome::Transient,
        SendResult::InDoubt(_) => AttemptOutcome::InDoubt,
        SendResult::Unauthorized => AttemptOutcome::Unauthorized,
        SendResult::Migrated(_) => AttemptOutcome::Migrated,
    }
}

/// Writes the step's consequences, retrying while the database is unavailable.
async fn settle_until_written(
    claimed: &Claimed,
    shared: &Shared,
    next: &Next,
    mut answer: Option<Answer>,
) {
    let mut wait = Duration::from_millis(200);
    loop {
        match settle(claimed, shared, next, &mut answer).await {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(post_id = %claimed.due.post_id, chat_id = %claimed.due.chat_id, error = format!("{error:#}"), "recording a delivery outcome failed, retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// Writes what the step decided. The answer, if a request went out, is booked exactly once
/// (with the outcome when there is one; `answer` is `None` once it is written), so a retry
/// after a later failure does not book it twice.
async fn settle(
    claimed: &Claimed,
    shared: &Shared,
    next: &Next,
    answer: &mut Option<Answer>,
) -> anyhow::Result<()> {
    let due = &claimed.due;
    let store = &shared.store;
    if let Next::Record(outcome) = next {
        let mine = shared
            .recorder
            .record(due, outcome.clone(), answer.clone())
            .await?;
        *answer = None;
        return recorded(claimed, shared, outcome, mine).await;
    }
    if let Some(booked) = answer.as_ref() {
        budget::book_answer(&shared.pool, booked).await?;
        *answer = None;
    }
    let release = match next {
        Next::Send => unreachable!("a task never settles before deciding"),
        Next::Record(_) => unreachable!("recorded above"),
        Next::BlockChat { reason } => {
            let command = ChatCommand::MarkBlocked {
                reason: reason.clone(),
            };
            execute::<Chat>(store, due.workspace_id, due.chat_id, command, ACTOR).await?;
            let outcome = DeliveryOutcome::Failed {
                class: domain::FailureClass::Permanent,
                detail: reason.clone(),
            };
            let mine = shared.recorder.record(due, outcome.clone(), None).await?;
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
    A: cqrs_es::Aggregate<Error = domain::DomainError, Services = domain::Services>
        + store::DirectoryEntry,
    A::Command: Clone,
{
    match store
        .execute::<A>(workspace_id, id, command, &RequestContext::new(actor))
        .await
    {
        Ok(_) => Ok(()),
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
        Ok(_) => Ok(()),
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
    /// Posts as sends need them: each one's first event (immutable, so read once per worker and
    /// kept without its chat list) and, read now in one statement for all of them, every
    /// decision since (never their further targets).
    pub async fn posts_at_gate(
        &self,
        conn: &mut PgConnection,
        post_ids: HashSet<Id>,
    ) -> anyhow::Result<HashMap<Id, Post>> {
        let mut posts = HashMap::with_capacity(post_ids.len());
        let mut unseen = HashMap::new();
        {
            let planned = self.planned.lock().expect("posts cache");
            for post_id in post_ids {
                match planned.get(&post_id) {
                    Some(post) => {
                        posts.insert(post_id, post.clone());
                    }
                    None => {
                        unseen.insert(post_id, Post::default());
                    }
                }
            }
        }
        // Ten bots due together bring hundreds of posts this worker has not seen: one read.
        store::apply_many_on(conn, &mut unseen, 1..=1, &[]).await?;
        if !unseen.is_empty() {
            let mut planned = self.planned.lock().expect("posts cache");
            if planned.len() + unseen.len() > crate::shared::KEPT_POSTS {
                planned.clear();
            }
            for (post_id, mut post) in unseen {
                post.chat_ids = Vec::new();
                planned.insert(post_id, post.clone());
                posts.insert(post_id, post);
            }
        }
        store::apply_many_on(conn, &mut posts, 2..=i64::MAX, &[domain::TARGETS_EVENT]).await?;
        Ok(posts)
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
