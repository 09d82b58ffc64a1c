//! Sandbox Telegram: an in-process emulator of the Telegram Bot API.
//!
//! Herald talks to Telegram through teloxide. To exercise that client for
//! real — JSON over HTTP, Telegram's error descriptions, 429 flood control,
//! broken connections — without a network or a real bot, this crate serves
//! the subset of the Bot API Herald uses (`getMe`, `sendMessage`,
//! `getUpdates`, `getChat`, `deleteWebhook`, `close`, `logOut`) plus a small
//! JSON inspection API under `/sandbox/*`:
//!
//! * sent messages are parsed and validated as Telegram does it (the
//!   `markup` crate: HTML, MarkdownV2 and Markdown entities, empty text,
//!   4096 UTF-16 units) and recorded with their entities;
//! * Telegram's rate limits are enforced with sliding windows and answered
//!   with real `429 Too Many Requests: retry after N`, with the larger
//!   per-bot window of paid broadcasts (`allow_paid_broadcast`);
//! * faults can be injected per chat / bot so that every delivery failure
//!   path (blocked bot, chat migrated, server error, lost answer, …) can be
//!   tested over real HTTP;
//! * what people do to a bot (`/start`, `/stop`, blocking it, removing it from a
//!   group) is injected with `POST /sandbox/updates` and handed out by
//!   `getUpdates` with Telegram's offsets and long polls.
//!
//! Herald runs it in-process whenever no real Bot API URL is configured.

mod api;
mod faults;
mod inspect;
mod limits;
mod objects;
mod params;
mod reply;
mod state;
mod updates;
mod webhooks;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use faults::{Fault, FaultRule};
pub use limits::{Limits, Window};
pub use objects::{BotStatus, ChatSetup, ChatType};

use state::State;

/// How the sandbox behaves. The default mirrors Telegram: its documented
/// limits, enforced.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Rate limits applied to `sendMessage`.
    pub limits: Limits,
    /// When false, [`SandboxConfig::limits`] are ignored (useful for load
    /// tests of Herald itself rather than of its flood-control handling).
    pub enforce_limits: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            enforce_limits: true,
        }
    }
}

/// A message the sandbox accepted, as the bot sent it.
///
/// `text` is the raw text of the request (markup included) so tests can
/// check exactly what Herald rendered; `parse_mode` is the one requested;
/// `parsed` is what Telegram makes of them: the visible text and its
/// entities, as the Bot API reports them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReceivedMessage {
    pub bot_id: i64,
    pub chat_id: i64,
    pub message_id: i32,
    pub text: String,
    pub parse_mode: Option<String>,
    /// Whether the request carried `allow_paid_broadcast=true`.
    #[serde(default)]
    pub paid_broadcast: bool,
    pub received_at: DateTime<Utc>,
    #[serde(default)]
    pub parsed: markup::Parsed,
}

/// Counters since the sandbox was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStats {
    /// Messages accepted and recorded (including `accept_then_drop` ones).
    pub accepted: u64,
    /// Of those, the ones sent with `allow_paid_broadcast=true`.
    #[serde(default)]
    pub paid_broadcasts: u64,
    /// `429` answers sent, whether from the rate limiter or an injected
    /// [`Fault::RetryAfter`].
    pub rate_limited: u64,
    /// Fault rules applied (each application of a rule counts once).
    pub faults_injected: u64,
}

/// The emulator. Cheap to clone: all clones share the same state, so a test
/// can keep one handle while another serves HTTP.
#[derive(Clone)]
pub struct Sandbox {
    shared: Arc<Shared>,
}

struct Shared {
    enforce_limits: bool,
    state: Mutex<State>,
    /// Flipped to true when [`Sandbox::serve`] is asked to shut down, so that
    /// long-polling `getUpdates` calls return at once instead of holding the
    /// graceful shutdown for their whole timeout.
    stopping: watch::Sender<bool>,
    /// What people and chats did, waiting for the bots' `getUpdates`.
    updates: updates::Updates,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        let (stopping, _) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                enforce_limits: config.enforce_limits,
                state: Mutex::new(State::new(config.limits)),
                stopping,
                updates: updates::Updates::default(),
            }),
        }
    }

    /// The Bot API routes (`/bot{token}/{method}`) and the inspection routes
    /// (`/sandbox/*`), ready to be served or nested.
    pub fn router(&self) -> axum::Router {
        api::routes()
            .merge(inspect::routes())
            .merge(updates::routes())
            .fallback(api::not_found)
            .with_state(self.clone())
    }

    /// Serves [`Sandbox::router`] on `listener` until `shutdown` completes,
    /// then finishes in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "sandbox Telegram listening");
        }
        let router = self.router();
        let stopping = self.shared.stopping.clone();
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                stopping.send_replace(true);
            })
            .await
    }

    /// Queues an update for the bot with Telegram id `bot_id` (without `update_id`, which it
    /// gets here), as `POST /sandbox/updates` does with `{"update": ...}`; returns its id.
    pub fn push_update(&self, bot_id: i64, update: serde_json::Value) -> i64 {
        self.shared.updates.push(bot_id, update)
    }

    /// Updates of the bot not yet confirmed by a later `getUpdates` offset.
    pub fn pending_updates(&self, bot_id: i64) -> usize {
        self.shared.updates.pending(bot_id)
    }

    /// Accepted messages in arrival order, all chats when `chat_id` is None.
    pub fn messages(&self, chat_id: Option<i64>) -> Vec<ReceivedMessage> {
        self.state().messages(chat_id, None)
    }

    /// Forgets the recorded messages. Message ids keep increasing, as in
    /// Telegram, so ids seen before and after a clear never collide.
    pub fn clear_messages(&self) {
        self.state().clear_messages();
    }

    pub fn stats(&self) -> SandboxStats {
        self.state().stats
    }

    /// Adds a fault rule; rules are tried in insertion order.
    pub fn inject(&self, fault: FaultRule) {
        if fault.times == 0 {
            tracing::warn!("ignoring fault rule with times = 0");
            return;
        }
        self.state().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Rules not yet spent, with their remaining `times`.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.state().faults.active()
    }

    /// Overrides the chat type otherwise inferred from the id (see
    /// [`ChatType::infer`]), e.g. to make a `-100…` id a channel.
    pub fn set_chat_type(&self, chat_id: i64, chat_type: ChatType) {
        self.state().chats.entry(chat_id).or_default().chat_type = Some(chat_type);
    }

    /// Sets what the sandbox knows of a chat: fields left `None` keep their value.
    pub fn set_chat(&self, chat_id: i64, setup: ChatSetup) {
        let mut state = self.state();
        let chat = state.chats.entry(chat_id).or_default();
        chat.chat_type = setup.chat_type.or(chat.chat_type);
        chat.title = setup.title.or(chat.title.take());
        chat.username = setup.username.or(chat.username.take());
        chat.bot_status = setup.bot_status.or(chat.bot_status);
        chat.can_post_messages = setup.can_post_messages.or(chat.can_post_messages);
        chat.exists = setup.exists.or(chat.exists);
    }

    /// The state lock. It is never held across an `.await`; a panic while
    /// holding it cannot leave the data inconsistent in a way that matters
    /// for an emulator, so poisoning is ignored rather than propagated.
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
