//! The dispatcher: only the loop. Each tick it claims the due lane heads of its partitions that
//! the pacer lets go now, and spawns one send task ([`crate::attempt`]) per claimed delivery,
//! one per chat at a time; now and then it flags a dead worker's sends in doubt. Its leases are
//! kept by a task of their own ([`crate::leases::Keeper`]).

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;
use domain::{DeliveryOutcome, Id};
use futures::FutureExt;
use platform::{Shutdown, TokenCipher};
use sqlx::PgPool;
use store::EventStore;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::attempt::{self, Done};
use crate::leases::{self, Keeper, Owned, Renewal};
use crate::pacing::{Pacer, SAFETY_MARGIN, Slowdown};
use crate::queue::budget::{self, NoSlot, Slot};
use crate::queue::claims;
use crate::shared::{Settings, Shared};

/// Lanes one bot may contribute to a claim: a little more than it may send in one tick (a
/// paid-broadcast bot may send 100 per 100 ms tick; a claim holds at most `max_in_flight`).
const LANES_PER_BOT: claims::LanesPerBot = claims::LanesPerBot {
    normal: 64,
    paid: 256,
};

/// How long before deliveries fall due a claim takes them: a little more than a claim and the
/// gate take on a busy machine, so that a burst due at one moment leaves at that moment instead
/// of a claim and a gate later. A claimed delivery still passes the gate just before its
/// request, so a cancel or an opt-out committed meanwhile is honoured.
const LOOK_AHEAD: std::time::Duration = std::time::Duration::from_millis(150);

/// How often rows past every window (attempts, bot slots and hours, holds, silent workers) are
/// deleted.
const CLEAN_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Dispatcher {
    shared: Arc<Shared>,
    pacer: Pacer,
    in_flight: HashSet<Id>,
    /// Bots known to have paid broadcasts on (for their per-bot window).
    paid: HashMap<Id, bool>,
    leases: Keeper,
    owned: Owned,
}

impl Dispatcher {
    pub fn new(pool: PgPool, store: EventStore, cipher: TokenCipher, settings: Settings) -> Self {
        let worker_id = format!("delivery-{}", uuid::Uuid::new_v4());
        Self {
            // The keeper's own connection: however busy the send tasks are, a live worker is
            // never taken for dead.
            leases: Keeper::start(
                crate::shared::side_pool(&pool, 1),
                worker_id.clone(),
                settings.worker_timeout,
            ),
            pacer: Pacer::new(settings.limits),
            shared: Arc::new(Shared {
                gate: crate::gate::Gate::start(crate::shared::side_pool(
                    &pool,
                    crate::shared::GATES,
                )),
                recorder: crate::recorder::Recorder::start(
                    pool.clone(),
                    store.clone(),
                    worker_id.clone(),
                ),
                worker_id,
                pool,
                store,
                cipher,
                settings,
                planned: std::sync::Mutex::new(HashMap::new()),
                bots: Mutex::new(HashMap::new()),
            }),
            in_flight: HashSet::new(),
            paid: HashMap::new(),
            owned: Owned::none(),
        }
    }

    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let settings = self.shared.settings.clone();
        let worker = self.shared.worker_id.clone();
        tracing::info!(%worker, api = %settings.api_url.origin().ascii_serialization(), "delivery dispatcher started");
        let mut tasks: JoinSet<Done> = JoinSet::new();
        let mut tick = tokio::time::interval(settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Dead workers' sends are put in doubt often (hand-over within seconds); rows past every
        // window are deleted rarely (nothing reads them).
        let mut last_in_doubt_check = Instant::now() - settings.worker_timeout;
        let mut last_clean_up = Instant::now() - CLEAN_UP_EVERY;
        // Besides the tick, the dispatcher wakes exactly when the next delivery falls due or
        // the pacer says a waiting chat or bot frees up, so neither a due post nor a chat at
        // 1 message per second is held back by the tick.
        let mut wake: Option<Instant> = None;
        loop {
            let wake_at = wake.unwrap_or_else(|| Instant::now() + settings.tick);
            tokio::select! {
                _ = tick.tick() => {
                    if last_in_doubt_check.elapsed() >= settings.worker_timeout / 5 {
                        if let Err(error) = self.recover_in_doubt().await {
                            tracing::warn!(error = format!("{error:#}"), "recovering in-doubt deliveries failed");
                        }
                        last_in_doubt_check = Instant::now();
                    }
                    if last_clean_up.elapsed() >= CLEAN_UP_EVERY {
                        if let Err(error) = self.clean_up().await {
                            tracing::warn!(error = format!("{error:#}"), "delivery clean-up failed");
                        }
                        last_clean_up = Instant::now();
                    }
                    wake = self.claim_and_spawn(&mut tasks).await;
                }
                Some(renewal) = self.leases.renewals.recv() => self.renewed(renewal),
                _ = tokio::time::sleep_until(wake_at), if wake.is_some() => {
                    wake = self.claim_and_spawn(&mut tasks).await;
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    let ready = self.finished(done);
                    wake = earliest(wake, ready);
                    wake = earliest(wake, self.reap(&mut tasks));
                }
                _ = shutdown.cancelled() => break,
            }
        }
        // Let requests on the wire finish so their outcome is known, not in doubt.
        while let Some(done) = tasks.join_next().await {
            if let Ok(done) = done {
                self.finish(done);
            }
        }
        self.leases.stop();
        leases::release_all(&self.shared.pool, &worker).await?;
        leases::retire(&self.shared.pool, &worker).await?;
        tracing::info!(%worker, "delivery dispatcher stopped");
        Ok(())
    }

    /// Books every task that has finished, not only the one the loop woke for: a loop turn that
    /// claims takes milliseconds, and reaping one task per turn would leave the room of a
    /// thousand finished tasks unused (a paid broadcast then crawled at one claim per turn).
    /// Returns the earliest moment one of their chats may be sent to again.
    fn reap(&mut self, tasks: &mut JoinSet<Done>) -> Option<Instant> {
        let mut ready = None;
        while let Some(done) = tasks.try_join_next() {
            ready = earliest(ready, self.finished(done));
        }
        ready
    }

    fn finished(&mut self, done: Result<Done, tokio::task::JoinError>) -> Option<Instant> {
        match done {
            Ok(done) => self.finish(done),
            // Tasks catch their own panics; this is a cancelled runtime.
            Err(error) => {
                tracing::error!(%error, "a delivery task was lost");
                None
            }
        }
    }

    /// Claims what may go now and starts a send task per claim; returns when to look again for
    /// chats the pacer held back.
    async fn claim_and_spawn(&mut self, tasks: &mut JoinSet<Done>) -> Option<Instant> {
        let reaped = self.reap(tasks);
        let room = self
            .shared
            .settings
            .max_in_flight
            .saturating_sub(tasks.len());
        if room == 0 {
            return reaped;
        }
        match self.claim(room).await {
            Ok((claimed, next_ready)) => {
                let next_ready = earliest(next_ready, reaped);
                for (claim, slot) in claimed {
                    self.in_flight.insert(claim.due.chat_id);
                    let shared = self.shared.clone();
                    tasks.spawn(async move {
                        match AssertUnwindSafe(attempt::deliver(
                            claim.clone(),
                            slot,
                            shared.clone(),
                        ))
                        .catch_unwind()
                        .await
                        {
                            Ok(done) => done,
                            Err(_) => attempt::panicked(claim, shared).await,
                        }
                    });
                }
                next_ready
            }
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "claiming due deliveries failed"
                );
                reaped
            }
        }
    }

    /// Finds due lane heads, lets the pacer take a slot for each one it allows now, and commits
    /// those as claimed.
    async fn claim(
        &mut self,
        room: usize,
    ) -> anyhow::Result<(Vec<(claims::Claimed, Slot)>, Option<Instant>)> {
        // One moment on both clocks, so that due times convert without drift.
        let (now, wall) = (Instant::now(), Utc::now());
        let owned = self.owned.at(now).to_vec();
        if owned.is_empty() {
            return Ok((Vec::new(), None));
        }
        let paid = &self.paid;
        let started = Instant::now();
        let (without_budget, budget_frees_at) = self
            .pacer
            .bots_without_budget(|bot| paid.get(&bot).copied().unwrap_or(false), now);
        let found = claims::due(
            &self.shared.pool,
            &owned,
            &self.shared.worker_id,
            &without_budget,
            LANES_PER_BOT,
            (room * 2) as i64,
            LOOK_AHEAD,
        )
        .await
        .context("reading due deliveries")?;
        let due = found.heads;
        // A bot left out wakes the dispatcher when its window frees, not at the next tick.
        let mut next_ready = budget_frees_at;
        let mut chosen = Vec::new();
        let due_count = due.len();
        for head in due {
            self.paid.insert(head.bot_id, head.paid_broadcast);
            if self.in_flight.contains(&head.chat_id) {
                continue;
            }
            let group = head.telegram_chat_id < 0;
            // Not before it is due (a claim looks a moment ahead).
            let due_at = now + (head.due_at - wall).to_std().unwrap_or_default();
            // Taken at once, so one claim never holds more than the bot may send now. A lane
            // whose own window frees within the hand-off horizon is booked too: ranked by its
            // chain, it gets the bot's slot that frees then instead of a shorter chain.
            match self.pacer.try_acquire_within(
                head.bot_id,
                head.chat_id,
                group,
                head.paid_broadcast,
                now.max(due_at),
                budget::HAND_OFF,
            ) {
                Ok(ready) => chosen.push((head, ready)),
                Err(ready) => next_ready = earliest(next_ready, Some(ready)),
            }
            if chosen.len() >= room {
                break;
            }
        }
        let read_ms = started.elapsed().as_millis();
        let (chosen, mut slots, budget_ready) = self.reserve_slots(chosen).await?;
        let reserved = chosen.len();
        let next_ready = earliest(next_ready, budget_ready);
        // The next claim comes a look-ahead before the next due time beyond this claim's
        // look-ahead (at that due time itself if the moment passed while this claim ran).
        let next_due = found.next_due_at.map(|at| {
            let due = Instant::now() + (at - Utc::now()).to_std().unwrap_or_default();
            due.checked_sub(LOOK_AHEAD)
                .filter(|early| *early > Instant::now())
                .unwrap_or(due)
        });
        let next_ready = earliest(next_ready, next_due);
        let claimed = claims::claim(&self.shared.pool, &self.shared.worker_id, chosen).await?;
        let claimed: Vec<(claims::Claimed, Slot)> = claimed
            .into_iter()
            .filter_map(|c| {
                let slot = slots.remove(&(c.due.post_id, c.due.chat_id))?;
                Some((c, slot.1))
            })
            .collect();
        if due_count > 0 {
            // What a slow or short claim looked like, for tuning (counts only).
            tracing::debug!(
                room,
                due = due_count,
                reserved,
                claimed = claimed.len(),
                read_ms,
                total_ms = started.elapsed().as_millis(),
                "claimed"
            );
        }
        // Slots of deliveries that were not claimed after all (another worker's, or done).
        for (telegram_bot_id, slot) in slots.into_values() {
            budget::cancel_bot_slot(&self.shared.pool, telegram_bot_id, slot).await?;
        }
        Ok((claimed, next_ready))
    }

    /// Takes, per bot, one slot of its budget (shared by every worker) for each chosen
    /// delivery, starting no earlier than its chat may be sent to, in one transaction per bot, all
    /// bots at once.
    /// Deliveries left without one are given back to the pacer and wait for the next claim; the
    /// returned instant is when to look again.
    async fn reserve_slots(
        &mut self,
        chosen: Vec<(claims::Due, Instant)>,
    ) -> anyhow::Result<(
        Vec<claims::Due>,
        HashMap<(Id, Id), (i64, Slot)>,
        Option<Instant>,
    )> {
        let mut by_bot: HashMap<Id, Vec<(claims::Due, Instant)>> = HashMap::new();
        for (due, ready) in chosen {
            by_bot.entry(due.bot_id).or_default().push((due, ready));
        }
        let bot_ids: Vec<Id> = by_bot.keys().copied().collect();
        let bots: HashMap<Id, domain::Bot> = store::load_many(&self.shared.pool, &bot_ids).await?;
        // Each bot's reservation locks only that bot's budget row: ten bots due together
        // reserve at once instead of one after another while their freed slots idle.
        let shared = &self.shared;
        let reservations = by_bot.into_iter().map(|(bot_id, dues)| {
            let hourly_cap = bots
                .get(&bot_id)
                .map_or(domain::Bot::default().effective_hourly_cap(), |bot| {
                    bot.effective_hourly_cap()
                });
            async move {
                let first = &dues[0].0;
                let (telegram_bot_id, paid) = (first.telegram_bot_id, first.paid_broadcast);
                let window = shared.settings.limits.bot_window(paid);
                let (wall, clock) = (Utc::now(), Instant::now());
                let not_before: Vec<Option<chrono::DateTime<Utc>>> = dues
                    .iter()
                    .map(|(_, ready)| {
                        let ahead = ready.checked_duration_since(clock)?;
                        Some(wall + chrono::TimeDelta::from_std(ahead).ok()?)
                    })
                    .collect();
                let reserved = budget::reserve_bot_slots(
                    &shared.pool,
                    telegram_bot_id,
                    &not_before,
                    window.max,
                    window.period + crate::pacing::BOT_BUDGET_MARGIN,
                    hourly_cap,
                )
                .await;
                (bot_id, telegram_bot_id, dues, reserved)
            }
        });
        let reservations = futures::future::join_all(reservations).await;
        let mut kept = Vec::new();
        let mut slots = HashMap::new();
        let mut ready = None;
        for (bot_id, telegram_bot_id, dues, reserved) in reservations {
            let granted = match reserved {
                Ok(Ok(granted)) => {
                    // Sends left without a slot come back when the next one can be handed over.
                    if let Some(at) = granted.next_hand_off {
                        let bookable = at - chrono::TimeDelta::from_std(budget::HAND_OFF)?;
                        let wait = (bookable - Utc::now()).to_std().unwrap_or_default();
                        ready = earliest(ready, Some(Instant::now() + wait));
                    }
                    granted.slots
                }
                // The others' slots stand; this bot's sends wait for the next claim.
                Err(error) => {
                    tracing::warn!(%bot_id, %error, "reserving the bot's slots failed");
                    Vec::new()
                }
                Ok(Err(NoSlot::Busy { retry_in })) => {
                    ready = earliest(ready, Some(Instant::now() + retry_in));
                    Vec::new()
                }
                Ok(Err(NoSlot::Held(_))) => Vec::new(),
                Ok(Err(NoSlot::HourlyCap { cap, until })) => {
                    tracing::info!(%bot_id, cap, %until, "the bot's hourly cap is reached; its deliveries wait");
                    budget::hold_bot(&self.shared.pool, telegram_bot_id, until).await?;
                    Vec::new()
                }
            };
            let mut granted: HashMap<usize, Slot> = granted.into_iter().collect();
            for (i, (due, acquired_at)) in dues.into_iter().enumerate() {
                match granted.remove(&i) {
                    Some(slot) => {
                        slots.insert((due.post_id, due.chat_id), (telegram_bot_id, slot));
                        kept.push(due);
                    }
                    None => {
                        let group = due.telegram_chat_id < 0;
                        self.pacer
                            .give_back(due.bot_id, due.chat_id, group, acquired_at);
                    }
                }
            }
        }
        Ok((kept, slots, ready))
    }

    /// Books a finished task; returns when its chat may be sent to again.
    fn finish(&mut self, done: Done) -> Option<Instant> {
        self.in_flight.remove(&done.chat_id);
        // Its chat, and the bot's slot it used, may be booked again a hand-off before they
        // free (both count from the answer).
        let ready = done.answered_at.map(|answered_at| {
            self.pacer.sent(done.chat_id, answered_at);
            (answered_at + self.shared.settings.limits.per_chat.period + SAFETY_MARGIN)
                .checked_sub(budget::HAND_OFF)
                .unwrap_or(answered_at)
        });
        if let Some(retry_after) = done.retry_after {
            match self.pacer.retry_after(
                done.bot_id,
                done.chat_id,
                done.group,
                retry_after,
                Instant::now(),
            ) {
                Slowdown::Chat { penalty } if penalty >= 2 => tracing::warn!(
                    chat_id = %done.chat_id, penalty, "telegram keeps rate-limiting this chat; pacing it slower"
                ),
                Slowdown::Chat { .. } => {}
                Slowdown::Bot => {
                    tracing::warn!(bot_id = %done.bot_id, retry_after_s = retry_after.as_secs(), "telegram rate-limited the bot; holding all of its chats");
                    // Every worker holds the bot, not only this one.
                    let pool = self.shared.pool.clone();
                    let until = Utc::now()
                        + chrono::TimeDelta::from_std(retry_after + SAFETY_MARGIN)
                            .unwrap_or_default();
                    tokio::spawn(async move {
                        if let Err(error) =
                            budget::hold_bot(&pool, done.telegram_bot_id, until).await
                        {
                            tracing::warn!(%error, "could not hold the bot for the other workers");
                        }
                    });
                }
            }
        }
        ready
    }

    /// The leases were renewed; sends of the last minute in chats taken over count in the pacer
    /// before this worker sends there.
    fn renewed(&mut self, renewal: Renewal) {
        for (bot, chat, telegram_chat_id, at) in renewal.recent_sends {
            self.pacer.record(bot, chat, telegram_chat_id < 0, at);
        }
        self.owned = renewal.owned;
    }

    /// Deletes rows no window or hand-over needs any more.
    async fn clean_up(&self) -> anyhow::Result<()> {
        budget::clean_up(&self.shared.pool).await?;
        leases::forget_silent(&self.shared.pool).await?;
        Ok(())
    }

    /// Deliveries left `sending` by a worker that stopped heart-beating are in doubt.
    async fn recover_in_doubt(&self) -> anyhow::Result<()> {
        let shared = &self.shared;
        let timeout = shared.settings.worker_timeout.as_secs_f64();
        for orphan in claims::orphans(&shared.pool, &shared.worker_id, timeout).await? {
            tracing::warn!(post_id = %orphan.post_id, chat_id = %orphan.chat_id, "delivery in doubt: its worker stopped while sending");
            let detail = "the delivery worker stopped while the request may have been on the wire; check the chat, then resolve";
            attempt::record(
                &shared.store,
                orphan.workspace_id,
                orphan.post_id,
                orphan.chat_id,
                DeliveryOutcome::Unknown {
                    detail: detail.into(),
                },
            )
            .await?;
            if claims::close_orphan(&shared.pool, &orphan).await? {
                attempt::apply_in_doubt_policy(
                    shared,
                    orphan.workspace_id,
                    orphan.post_id,
                    orphan.chat_id,
                )
                .await?;
            }
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
