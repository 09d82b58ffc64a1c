//! Delivery: sends approved posts when they are due, through the Telegram Bot API, within
//! Telegram's limits, and records every outcome as an event on the post.
//!
//! Two parts run side by side: the [`schedule`] projection turns approvals into rows of the
//! `delivery_queue` table (the schedule index), and the [`dispatcher`] claims due rows, paces
//! them ([`pacing`]) and sends them ([`telegram`]).
//!
//! Architecture invariant: a row is marked `sending` (committed) *before* its request goes out.
//! If the worker dies, such rows are flagged in doubt (`DeliveryUnknown`), never resent blindly.

pub mod dispatcher;
mod leases;
pub mod pacing;
pub mod schedule;
pub mod telegram;

use std::time::Duration;

use platform::nats::Bus;
use platform::{Shutdown, TokenCipher};
use sqlx::PgPool;
use store::EventStore;

pub use dispatcher::Settings;

/// Everything delivery needs.
pub struct Delivery {
    pub pool: PgPool,
    pub bus: Bus,
    pub store: EventStore,
    pub cipher: TokenCipher,
    pub settings: Settings,
}

impl Delivery {
    /// Runs the schedule projection and the dispatcher until `shutdown`.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let schedule = schedule::DeliverySchedule {
            store: self.store.clone(),
        };
        let projection = tokio::spawn(projections::runner::run(
            self.pool.clone(),
            self.bus,
            schedule,
            shutdown.clone(),
        ));
        let dispatcher =
            dispatcher::Dispatcher::new(self.pool, self.store, self.cipher, self.settings);
        let dispatched = dispatcher.run(shutdown).await;
        let projected = projection.await?;
        dispatched.and(projected)
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
