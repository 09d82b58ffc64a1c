//! Telegram's published limits and the workspace's hourly caps as sliding windows, kept in
//! memory by the worker that owns the chats (seeded from `delivery_attempts` at start, so a
//! restart does not reset them). Pure: time is passed in, so the rules are tested without
//! sleeping.
//!
//! The pacer keeps a small safety margin on every window, because the moment a request is
//! *sent* here and the moment Telegram *counts* it differ by network jitter.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;
use uuid::Uuid;

/// One limit: at most `max` sends in any `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: usize,
    pub period: Duration,
}

/// Telegram's limits the pacer enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Every chat: 1 message per second.
    pub per_chat: Window,
    /// Groups, supergroups and channels: 20 messages per minute.
    pub per_group: Window,
    /// Every bot across all its chats: 30 messages per second.
    pub per_bot: Window,
    /// A bot that opted in to paid broadcasts: up to 1000 messages per second.
    pub per_paid_bot: Window,
}

/// Added to the per-chat and per-group windows' periods.
pub const SAFETY_MARGIN: Duration = Duration::from_millis(40);
/// Added to the per-bot window of the budget shared by all workers. Smaller than
/// [`SAFETY_MARGIN`] because a slot is taken right before its request: only the request's own
/// latency jitter separates the two clocks (30 per 1.035 s is 0.966 of Telegram's limit).
pub const BOT_BUDGET_MARGIN: Duration = Duration::from_millis(35);
/// After a 429, a chat is paced this much slower per repeat (x2, x4, x8) for this long.
const PENALTY_SPAN: Duration = Duration::from_secs(600);
const MAX_PENALTY: u32 = 3;
/// 429s for this many distinct chats of one bot within [`BOT_WIDE_SPAN`] mean the bot is limited.
const BOT_WIDE_CHATS: usize = 3;
const BOT_WIDE_SPAN: Duration = Duration::from_secs(2);
const HOUR: Duration = Duration::from_secs(3600);

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
            per_paid_bot: Window {
                max: 1000,
                period: Duration::from_secs(1),
            },
        }
    }
}

/// The hourly caps and options in force for one send.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub bot_hourly: u32,
    pub chat_hourly: u32,
    pub paid_broadcast: bool,
}

/// Send times within one window.
#[derive(Debug, Default)]
struct Log {
    sends: VecDeque<Instant>,
}

impl Log {
    /// When the next send is allowed under `max` per `period` (now if there is room).
    fn next_free(&mut self, max: usize, period: Duration, now: Instant) -> Instant {
        while self
            .sends
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= period)
        {
            self.sends.pop_front();
        }
        if max == 0 {
            return now + period;
        }
        if self.sends.len() < max {
            now
        } else {
            self.sends[self.sends.len() - max] + period
        }
    }

    fn window(&mut self, window: Window, now: Instant) -> Instant {
        self.next_free(window.max, window.period + SAFETY_MARGIN, now)
    }
}

#[derive(Debug, Default)]
struct ChatState {
    second: Log,
    minute: Log,
    hour: Log,
    /// Set by a 429 for this chat: nothing goes to it before this instant.
    blocked_until: Option<Instant>,
    penalty: u32,
    penalty_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct BotState {
    second: Log,
    hour: Log,
    blocked_until: Option<Instant>,
    recent_429s: VecDeque<(Instant, Uuid)>,
}

/// What a 429 did to the pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slowdown {
    /// Only this chat is held.
    Chat { penalty: u32 },
    /// Several chats of the bot were limited at once: the whole bot is held.
    Bot,
}

/// Decides whether a message may go to a chat now.
#[derive(Debug)]
pub struct Pacer {
    limits: Limits,
    chats: HashMap<Uuid, ChatState>,
    bots: HashMap<Uuid, BotState>,
}

impl Pacer {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            chats: HashMap::new(),
            bots: HashMap::new(),
        }
    }

    /// Takes a slot for one message from `bot` to `chat`, or says when to ask again.
    pub fn try_acquire(
        &mut self,
        bot: Uuid,
        chat: Uuid,
        group: bool,
        caps: Caps,
        now: Instant,
    ) -> Result<(), Instant> {
        self.check(bot, chat, group, caps, now)?;
        self.record(bot, chat, group, now);
        Ok(())
    }

    /// Whether a message from `bot` to `chat` may go now, without taking the slot.
    pub fn check(
        &mut self,
        bot: Uuid,
        chat: Uuid,
        group: bool,
        caps: Caps,
        now: Instant,
    ) -> Result<(), Instant> {
        let limits = self.limits;
        let chat_state = self.chats.entry(chat).or_default();
        if chat_state.penalty_until.is_some_and(|t| t <= now) {
            chat_state.penalty = 0;
            chat_state.penalty_until = None;
        }
        let per_chat = Window {
            max: 1,
            period: limits.per_chat.period * 2u32.pow(chat_state.penalty),
        };
        let mut ready = chat_state.second.window(per_chat, now);
        if group {
            ready = ready.max(chat_state.minute.window(limits.per_group, now));
        }
        ready = ready.max(
            chat_state
                .hour
                .next_free(caps.chat_hourly as usize, HOUR, now),
        );
        if let Some(until) = chat_state.blocked_until {
            ready = ready.max(until);
        }
        let bot_state = self.bots.entry(bot).or_default();
        let per_bot = if caps.paid_broadcast {
            limits.per_paid_bot
        } else {
            limits.per_bot
        };
        // No margin here: the budget shared by all workers, taken right before each request,
        // is the exact gate ([`BOT_BUDGET_MARGIN`]); this only keeps claims near that pace.
        ready = ready.max(bot_state.second.next_free(per_bot.max, per_bot.period, now));
        ready = ready.max(
            bot_state
                .hour
                .next_free(caps.bot_hourly as usize, HOUR, now),
        );
        if let Some(until) = bot_state.blocked_until {
            ready = ready.max(until);
        }
        if ready > now {
            return Err(ready);
        }
        Ok(())
    }

    /// The per-bot window in force (paid broadcasts have a far larger one).
    pub fn bot_window(&self, paid_broadcast: bool) -> Window {
        if paid_broadcast {
            self.limits.per_paid_bot
        } else {
            self.limits.per_bot
        }
    }

    /// Counts a send that already happened (e.g. before a restart) against every window.
    pub fn record(&mut self, bot: Uuid, chat: Uuid, group: bool, at: Instant) {
        let chat_state = self.chats.entry(chat).or_default();
        chat_state.second.sends.push_back(at);
        if group {
            chat_state.minute.sends.push_back(at);
        }
        chat_state.hour.sends.push_back(at);
        let bot_state = self.bots.entry(bot).or_default();
        bot_state.second.sends.push_back(at);
        bot_state.hour.sends.push_back(at);
    }

    /// The claimed send to `chat` actually went out at `sent_at` (after loading its data): count
    /// the chat's windows from then, since that is when Telegram counts it.
    pub fn sent(&mut self, chat: Uuid, sent_at: Instant) {
        if let Some(state) = self.chats.get_mut(&chat) {
            for log in [&mut state.second, &mut state.minute, &mut state.hour] {
                if let Some(last) = log.sends.back_mut() {
                    *last = (*last).max(sent_at);
                }
            }
        }
    }

    /// Telegram answered 429 for this chat: hold it for `retry_after` and pace it slower for a
    /// while. When several chats of the bot are limited together, hold the whole bot.
    pub fn retry_after(
        &mut self,
        bot: Uuid,
        chat: Uuid,
        retry_after: Duration,
        now: Instant,
    ) -> Slowdown {
        let until = now + retry_after + SAFETY_MARGIN;
        let chat_state = self.chats.entry(chat).or_default();
        chat_state.blocked_until = Some(chat_state.blocked_until.map_or(until, |t| t.max(until)));
        chat_state.penalty = (chat_state.penalty + 1).min(MAX_PENALTY);
        chat_state.penalty_until = Some(now + PENALTY_SPAN);
        let penalty = chat_state.penalty;

        let bot_state = self.bots.entry(bot).or_default();
        bot_state.recent_429s.push_back((now, chat));
        while bot_state
            .recent_429s
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > BOT_WIDE_SPAN)
        {
            bot_state.recent_429s.pop_front();
        }
        let chats: HashSet<Uuid> = bot_state.recent_429s.iter().map(|(_, c)| *c).collect();
        if chats.len() >= BOT_WIDE_CHATS {
            bot_state.blocked_until = Some(bot_state.blocked_until.map_or(until, |t| t.max(until)));
            return Slowdown::Bot;
        }
        Slowdown::Chat { penalty }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: Uuid = Uuid::from_u128(1);

    fn chat(n: u128) -> Uuid {
        Uuid::from_u128(1000 + n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn caps() -> Caps {
        Caps {
            bot_hourly: 100_000,
            chat_hourly: 3600,
            paid_broadcast: false,
        }
    }

    #[test]
    fn one_message_per_second_per_chat_with_margin() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        assert!(pacer.try_acquire(BOT, chat(1), false, caps(), t0).is_ok());
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, caps(), t0 + ms(500)),
            Err(t0 + ms(1040))
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(1), false, caps(), t0 + ms(1040))
                .is_ok()
        );
        // Another chat is not affected.
        assert!(
            pacer
                .try_acquire(BOT, chat(2), false, caps(), t0 + ms(500))
                .is_ok()
        );
    }

    #[test]
    fn groups_get_twenty_per_minute() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(
                pacer
                    .try_acquire(BOT, chat(1), true, caps(), t0 + ms(1100 * i))
                    .is_ok(),
                "send {i}"
            );
        }
        let refused = pacer.try_acquire(BOT, chat(1), true, caps(), t0 + ms(1100 * 20));
        assert_eq!(refused, Err(t0 + ms(60_040)));
    }

    #[test]
    fn thirty_per_second_per_bot_unless_paid_broadcast() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for n in 0..30 {
            assert!(pacer.try_acquire(BOT, chat(n), false, caps(), t0).is_ok());
        }
        assert_eq!(
            pacer.try_acquire(BOT, chat(99), false, caps(), t0),
            Err(t0 + ms(1000))
        );
        // Another bot has its own budget.
        assert!(
            pacer
                .try_acquire(Uuid::from_u128(2), chat(99), false, caps(), t0)
                .is_ok()
        );
        let paid = Caps {
            paid_broadcast: true,
            ..caps()
        };
        assert!(pacer.try_acquire(BOT, chat(100), false, paid, t0).is_ok());
    }

    #[test]
    fn hourly_caps_hold_for_chat_and_bot() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        let capped = Caps {
            bot_hourly: 3,
            chat_hourly: 2,
            paid_broadcast: false,
        };
        assert!(pacer.try_acquire(BOT, chat(1), false, capped, t0).is_ok());
        assert!(
            pacer
                .try_acquire(BOT, chat(1), false, capped, t0 + ms(2000))
                .is_ok()
        );
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, capped, t0 + ms(4000)),
            Err(t0 + HOUR)
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(2), false, capped, t0 + ms(4000))
                .is_ok()
        );
        assert_eq!(
            pacer.try_acquire(BOT, chat(3), false, capped, t0 + ms(4000)),
            Err(t0 + HOUR)
        );
    }

    #[test]
    fn retry_after_holds_only_that_chat_and_repeats_slow_it_down() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        assert_eq!(
            pacer.retry_after(BOT, chat(1), Duration::from_secs(5), t0),
            Slowdown::Chat { penalty: 1 }
        );
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, caps(), t0 + ms(2000)),
            Err(t0 + ms(5040))
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(7), false, caps(), t0 + ms(2000))
                .is_ok()
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(1), false, caps(), t0 + ms(5040))
                .is_ok()
        );
        // Penalised: the next send to that chat waits 2 s (plus margin), not 1 s.
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, caps(), t0 + ms(6200)),
            Err(t0 + ms(7080))
        );
    }

    #[test]
    fn many_chats_limited_at_once_hold_the_bot() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        pacer.retry_after(BOT, chat(1), Duration::from_secs(3), t0);
        pacer.retry_after(BOT, chat(2), Duration::from_secs(3), t0);
        assert_eq!(
            pacer.retry_after(BOT, chat(3), Duration::from_secs(3), t0),
            Slowdown::Bot
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(4), false, caps(), t0 + ms(100))
                .is_err()
        );
        assert!(
            pacer
                .try_acquire(Uuid::from_u128(2), chat(4), false, caps(), t0 + ms(100))
                .is_ok()
        );
    }
}
