//! Telegram's published limits as sliding windows, kept in memory by the worker that owns the
//! chats. Pure: time is passed in, so the rules are tested without sleeping.
//!
//! The pacer keeps a small safety margin on every window, because the moment a request is
//! *sent* here and the moment Telegram *counts* it differ by network jitter.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// One limit: at most `max` sends in any `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: usize,
    pub period: Duration,
}

/// The limits the pacer enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Every chat: 1 message per second.
    pub per_chat: Window,
    /// Groups, supergroups and channels (negative chat ids): 20 messages per minute.
    pub per_group: Window,
    /// Every bot across all its chats: 30 messages per second.
    pub per_bot: Window,
}

/// Added to every window's period.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(60);

impl Limits {
    /// Telegram's limits (Bot API FAQ).
    pub fn telegram() -> Self {
        Self {
            per_chat: Window {
                max: 1,
                period: Duration::from_secs(1),
            },
            per_group: Window {
                max: 20,
                period: Duration::from_secs(60),
            },
            per_bot: Window {
                max: 30,
                period: Duration::from_secs(1),
            },
        }
    }
}

/// Send times within one window.
#[derive(Debug, Default)]
struct Log {
    sends: VecDeque<Instant>,
}

impl Log {
    /// When the next send is allowed under `window` (now if there is room).
    fn next_free(&mut self, window: Window, now: Instant) -> Instant {
        let period = window.period + SAFETY_MARGIN;
        while self
            .sends
            .front()
            .is_some_and(|t| now.duration_since(*t) >= period)
        {
            self.sends.pop_front();
        }
        if self.sends.len() < window.max {
            now
        } else {
            self.sends[self.sends.len() - window.max] + period
        }
    }
}

#[derive(Debug, Default)]
struct ChatState {
    per_chat: Log,
    per_group: Log,
    /// Set by a 429 for this chat: nothing goes to it before this instant.
    blocked_until: Option<Instant>,
}

/// Decides whether a message may go to a chat now.
#[derive(Debug)]
pub struct Pacer {
    limits: Limits,
    chats: HashMap<(Uuid, i64), ChatState>,
    bots: HashMap<Uuid, Log>,
}

impl Pacer {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            chats: HashMap::new(),
            bots: HashMap::new(),
        }
    }

    /// Takes a slot for one message from `bot` to `telegram_chat_id`, or says when to ask again.
    pub fn try_acquire(
        &mut self,
        bot: Uuid,
        telegram_chat_id: i64,
        now: Instant,
    ) -> Result<(), Instant> {
        let limits = self.limits;
        let chat = self.chats.entry((bot, telegram_chat_id)).or_default();
        let mut ready = chat.per_chat.next_free(limits.per_chat, now);
        if telegram_chat_id < 0 {
            ready = ready.max(chat.per_group.next_free(limits.per_group, now));
        }
        if let Some(until) = chat.blocked_until {
            ready = ready.max(until);
        }
        let bot_log = self.bots.entry(bot).or_default();
        ready = ready.max(bot_log.next_free(limits.per_bot, now));
        if ready > now {
            return Err(ready);
        }
        bot_log.sends.push_back(now);
        chat.per_chat.sends.push_back(now);
        if telegram_chat_id < 0 {
            chat.per_group.sends.push_back(now);
        }
        Ok(())
    }

    /// Telegram answered 429 for this chat: hold it (only it) for `retry_after`.
    pub fn retry_after(
        &mut self,
        bot: Uuid,
        telegram_chat_id: i64,
        retry_after: Duration,
        now: Instant,
    ) {
        let chat = self.chats.entry((bot, telegram_chat_id)).or_default();
        let until = now + retry_after + SAFETY_MARGIN;
        chat.blocked_until = Some(chat.blocked_until.map_or(until, |t| t.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: Uuid = Uuid::from_u128(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn one_message_per_second_per_chat_with_margin() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        assert!(pacer.try_acquire(BOT, 42, t0).is_ok());
        assert_eq!(pacer.try_acquire(BOT, 42, t0 + ms(500)), Err(t0 + ms(1060)));
        assert!(pacer.try_acquire(BOT, 42, t0 + ms(1060)).is_ok());
        // Another chat is not affected.
        assert!(pacer.try_acquire(BOT, 43, t0 + ms(500)).is_ok());
    }

    #[test]
    fn groups_get_twenty_per_minute() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(
                pacer.try_acquire(BOT, -100, t0 + ms(1100 * i)).is_ok(),
                "send {i}"
            );
        }
        let refused = pacer.try_acquire(BOT, -100, t0 + ms(1100 * 20));
        assert_eq!(refused, Err(t0 + ms(60_060)));
    }

    #[test]
    fn thirty_per_second_per_bot() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for chat in 0..30 {
            assert!(pacer.try_acquire(BOT, chat + 1, t0).is_ok());
        }
        assert_eq!(pacer.try_acquire(BOT, 99, t0), Err(t0 + ms(1060)));
        // Another bot has its own budget.
        assert!(pacer.try_acquire(Uuid::from_u128(2), 99, t0).is_ok());
    }

    #[test]
    fn retry_after_holds_only_that_chat() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        pacer.retry_after(BOT, 42, Duration::from_secs(5), t0);
        assert_eq!(
            pacer.try_acquire(BOT, 42, t0 + ms(2000)),
            Err(t0 + ms(5060))
        );
        assert!(pacer.try_acquire(BOT, 7, t0 + ms(2000)).is_ok());
        assert!(pacer.try_acquire(BOT, 42, t0 + ms(5060)).is_ok());
    }
}
