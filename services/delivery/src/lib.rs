//! Delivery: sends approved posts when they are due, through the Telegram Bot API, within
//! Telegram's limits, and records every outcome as an event of that post's delivery to that chat
//! (a [`domain::Delivery`] aggregate).
//!
//! The component, one job per module:
//! - [`schedule`]: the projection that turns the event stream into what should be delivered;
//! - [`queue`]: every query of delivery's tables, for their two owners (the projection and the
//!   dispatcher) and for the readers (safety stats, post views, tests, the benchmark);
//! - [`dispatcher`]: the loop that claims due deliveries and spawns send tasks;
//! - [`expiry`]: posts not approved in time expire instead of going out late;
//! - [`recheck`]: connected groups and channels checked with Telegram, rights changes flagged;
//! - [`attempt`]: one send task (budget, re-check at the gate, send, record);
//! - [`recorder`]: outcomes written in groups, each with the end of its claim;
//! - [`decide`]: the pure rules (fresh state, answer → next step);
//! - [`pacing`]: Telegram's per-chat windows and 429 slow-downs in memory;
//! - [`leases`]: partitions shared by live workers; [`telegram`]: teloxide and error classes.
//!
//! Architecture invariant: a delivery is committed as `sending` *before* its request goes out.
//! If the worker dies, such deliveries are flagged in doubt (`DeliveryUnknown`), never resent
//! blindly; an automatic resend (the workspace's explicit policy) happens at most
//! [`Settings::max_auto_resends`] times per delivery.

pub mod attempt;
pub mod decide;
pub mod dispatcher;
pub mod expiry;
mod gate;
mod leases;
pub mod pacing;
pub mod queue;
pub mod recheck;
mod recorder;
pub mod schedule;
mod shared;
pub mod telegram;

use std::time::Duration;

use platform::nats::Bus;
use platform::{Shutdown, TokenCipher};
use sqlx::PgPool;
use store::EventStore;

pub use attempt::{ACTOR, POLICY_ACTOR};
pub use shared::Settings;

/// Everything delivery needs.
pub struct Delivery {
    pub pool: PgPool,
    pub bus: Bus,
    pub store: EventStore,
    pub cipher: TokenCipher,
    pub settings: Settings,
}

impl Delivery {
    /// Runs the schedule projection, the dispatcher and the expiry of overdue posts until
    /// `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let projection = tokio::spawn(projections::runner::run(
            self.pool.clone(),
            self.bus,
            schedule::DeliverySchedule,
            shutdown.clone(),
        ));
        let expiry = tokio::spawn(expiry::run(
            self.pool.clone(),
            self.store.clone(),
            shutdown.clone(),
        ));
        let recheck = tokio::spawn(recheck::run(
            self.pool.clone(),
            self.store.clone(),
            self.cipher.clone(),
            self.settings.api_url.clone(),
            self.settings.chat_recheck,
            shutdown.clone(),
        ));
        let dispatcher =
            dispatcher::Dispatcher::new(self.pool, self.store, self.cipher, self.settings);
        let dispatched = dispatcher.run(shutdown).await;
        let projected = projection.await?;
        let expired = expiry.await?;
        let rechecked = recheck.await?;
        dispatched.and(projected).and(expired).and(rechecked)
    }
}

/// Number of partitions chats are spread over (see `delivery_partitions`).
pub const PARTITIONS: i16 = 32;

/// The partition of a chat: stable, and even over random (UUID v4/v7) ids.
pub fn partition_of(chat_id: uuid::Uuid) -> i16 {
    (chat_id.as_u128() % PARTITIONS as u128) as i16
}

/// Exponential back-off with jitter for transient errors: 1 s, 2 s, 4 s... capped at 60 s.
pub fn backoff(attempt: i32) -> Duration {
    let base = Duration::from_secs(1 << attempt.clamp(1, 7).saturating_sub(1))
        .min(Duration::from_secs(60));
    let jitter: f64 = rand::random_range(0.8..1.2);
    base.mul_f64(jitter)
}
