//! What the dispatcher and its send tasks share.

use std::collections::HashMap;
use std::time::Duration;

use domain::Id;
use platform::TokenCipher;
use sqlx::PgPool;
use store::EventStore;
use tokio::sync::Mutex;

use crate::pacing::Limits;

/// Posts whose first event a worker keeps (cleared when full: a worker's current posts come
/// back at the cost of one read each).
pub const KEPT_POSTS: usize = 10_000;

/// Groups of sends at the gate at once, per worker (each holds a connection until its
/// requests are answered).
pub const GATES: u32 = 8;

/// A pool of `size` connections to the same database as `pool`, opened on first use.
pub fn side_pool(pool: &PgPool, size: u32) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy_with((*pool.connect_options()).clone())
}

/// Tunables of delivery.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Bot API base URL (the real one or the sandbox emulator).
    pub api_url: url::Url,
    pub limits: Limits,
    /// How often due deliveries are looked for besides the next due time the dispatcher knows
    /// of. Bounds the lateness of a post approved already due.
    pub tick: Duration,
    /// Send tasks at once (a task lives from its claim to its recorded outcome, including the
    /// wait for a slot handed over; a paid-broadcast bot at 1,000/s keeps hundreds busy, and
    /// ten 30/s bots due together want 300 at once).
    pub max_in_flight: usize,
    /// Transient errors are retried this many times in all before `DeliveryFailed`.
    pub max_attempts: i32,
    /// A worker silent for this long is considered dead; its `sending` deliveries are in doubt.
    pub worker_timeout: Duration,
    /// How many times the workspace's "resend" in-doubt policy may resend one delivery before
    /// it is left for an operator.
    pub max_auto_resends: u32,
    /// How often connected groups and channels are checked with Telegram, so that a bot that
    /// lost its rights is flagged before a send fails ([`crate::recheck`]).
    pub chat_recheck: Duration,
}

impl Settings {
    pub fn new(api_url: url::Url) -> Self {
        Self {
            api_url,
            limits: Limits::telegram(),
            tick: Duration::from_millis(100),
            max_in_flight: 1024,
            max_attempts: 5,
            worker_timeout: Duration::from_secs(2),
            max_auto_resends: 1,
            chat_recheck: Duration::from_secs(6 * 3600),
        }
    }
}

pub struct Shared {
    pub worker_id: String,
    pub pool: PgPool,
    /// Where send tasks pass their final check, in groups ([`crate::gate`]).
    pub gate: crate::gate::Gate,
    pub store: EventStore,
    /// Where send tasks record outcomes, in groups.
    pub recorder: crate::recorder::Recorder,
    pub cipher: TokenCipher,
    pub settings: Settings,
    /// Posts as of their first event (immutable), without their chat lists: see
    /// `Shared::posts_at_gate`.
    pub planned: std::sync::Mutex<HashMap<Id, domain::Post>>,
    /// teloxide clients by bot, with the encrypted token they were built from.
    pub bots: Mutex<HashMap<Id, (String, teloxide::Bot)>>,
}
