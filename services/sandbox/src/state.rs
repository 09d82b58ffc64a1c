//! The sandbox's mutable state, behind one lock: everything a `sendMessage`
//! decides (limits, message id, record) happens atomically, so concurrent
//! requests cannot both squeeze into the last slot of a window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use markup::Parsed;

use crate::faults::FaultBook;
use crate::limits::{Limits, RateLimiter};
use crate::objects::{ChatSetup, ChatType};
use crate::{ReceivedMessage, SandboxStats};

pub(crate) struct State {
    messages: Vec<ReceivedMessage>,
    /// The last message id used in each chat.
    last_message_id: HashMap<i64, i32>,
    pub(crate) chats: HashMap<i64, ChatSetup>,
    limiter: RateLimiter,
    pub(crate) faults: FaultBook,
    pub(crate) stats: SandboxStats,
}

/// How a message gets past the rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Only if the limits allow it; it then counts against them.
    Limited,
    /// Regardless of the limits (Telegram delivered it anyway), but it
    /// counts against them.
    Forced,
    /// Limits are not enforced at all.
    Unlimited,
}

/// A message that passed validation, about to be accepted.
pub(crate) struct Outgoing<'a> {
    pub(crate) bot_id: i64,
    pub(crate) chat_id: i64,
    pub(crate) text: &'a str,
    pub(crate) parse_mode: Option<&'a str>,
    /// `allow_paid_broadcast`: the bot's larger per-second window applies.
    pub(crate) paid_broadcast: bool,
    pub(crate) parsed: &'a Parsed,
}

impl State {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            messages: Vec::new(),
            last_message_id: HashMap::new(),
            chats: HashMap::new(),
            limiter: RateLimiter::new(limits),
            faults: FaultBook::default(),
            stats: SandboxStats::default(),
        }
    }

    pub(crate) fn chat_type(&self, chat_id: i64) -> ChatType {
        self.chats
            .get(&chat_id)
            .and_then(|c| c.chat_type)
            .unwrap_or_else(|| ChatType::infer(chat_id))
    }

    pub(crate) fn chat_setup(&self, chat_id: i64) -> ChatSetup {
        self.chats.get(&chat_id).cloned().unwrap_or_default()
    }

    pub(crate) fn messages(
        &self,
        chat_id: Option<i64>,
        bot_id: Option<i64>,
    ) -> Vec<ReceivedMessage> {
        self.messages
            .iter()
            .filter(|m| chat_id.is_none_or(|id| id == m.chat_id))
            .filter(|m| bot_id.is_none_or(|id| id == m.bot_id))
            .cloned()
            .collect()
    }

    pub(crate) fn clear_messages(&mut self) {
        self.messages.clear();
    }

    /// Accepts `message` as `admission` says, or returns how long the
    /// client must wait before the rate limits let it through.
    pub(crate) fn accept(
        &mut self,
        message: &Outgoing<'_>,
        admission: Admission,
        now: Instant,
    ) -> Result<ReceivedMessage, Duration> {
        match admission {
            Admission::Limited => {
                self.limiter
                    .try_acquire(message.bot_id, message.chat_id, message.paid_broadcast, now)
                    .inspect_err(|_| self.stats.rate_limited += 1)?;
            }
            Admission::Forced => self.limiter.record(message.bot_id, message.chat_id, now),
            Admission::Unlimited => {}
        }
        let id = self.last_message_id.entry(message.chat_id).or_insert(0);
        *id = id.saturating_add(1);
        let received = ReceivedMessage {
            bot_id: message.bot_id,
            chat_id: message.chat_id,
            message_id: *id,
            text: message.text.to_owned(),
            parse_mode: message.parse_mode.map(str::to_owned),
            paid_broadcast: message.paid_broadcast,
            received_at: Utc::now(),
            parsed: message.parsed.clone(),
        };
        self.messages.push(received.clone());
        self.stats.accepted += 1;
        if message.paid_broadcast {
            self.stats.paid_broadcasts += 1;
        }
        Ok(received)
    }
}
