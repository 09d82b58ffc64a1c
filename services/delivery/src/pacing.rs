//! Telegram's per-chat and per-group windows and 429 slow-downs as sliding windows, kept in
//! memory by the worker that owns the chats (seeded from `delivery_attempts` when it takes
//! partitions over). Pure: time is passed in, so the rules are tested without sleeping.
//! What must hold across workers (the per-bot budget, hourly caps) is in PostgreSQL
//! ([`crate::queue::budget`]); the pacer's bot window only keeps claims near that pace.
//!
//! A chat's window counts from the moment the *answer* came back ([`Pacer::sent`]): Telegram
//! counted the message somewhere between request and answer, so however long the request took
//! to arrive, the next one cannot arrive early.

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

/// Telegram's limits the pacer enforces (one definition: [`domain::limits::TELEGRAM`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_chat: Window,
    pub per_group: Window,
    pub per_bot: Window,
    pub per_paid_bot: Window,
}

/// Added to the per-chat and per-group windows' periods, which count from each answer: Telegram
/// counted the request between its start and its answer, so network jitter is already on the
/// safe side and only clock granularity is left (the same margin as the bot budget's).
pub const SAFETY_MARGIN: Duration = Duration::from_millis(5);
/// Added to the per-bot window of the budget shared by all workers, whose slots also count
/// from their answers.
pub const BOT_BUDGET_MARGIN: Duration = Duration::from_millis(5);
/// After a 429, a chat is paced this much slower per repeat (x2, x4, x8) for this long.
const PENALTY_SPAN: Duration = Duration::from_secs(600);
const MAX_PENALTY: u32 = 3;
/// 429s for this many distinct chats of one bot within [`BOT_WIDE_SPAN`] mean the bot is limited.
const BOT_WIDE_CHATS: usize = 3;
const BOT_WIDE_SPAN: Duration = Duration::from_secs(2);

impl Limits {
    /// Telegram's limits (Bot API FAQ).
    pub fn telegram() -> Self {
        let window = |w: domain::limits::Rate| Window {
            max: w.max as usize,
            period: Duration::from_secs(w.per_secs),
        };
        let t = domain::limits::TELEGRAM;
        Self {
            per_chat: window(t.per_chat),
            per_group: window(t.per_group),
            per_bot: window(t.per_bot),
            per_paid_bot: window(t.per_paid_bot),
        }
    }

    /// The per-bot window in force (paid broadcasts have a far larger one).
    pub fn bot_window(&self, paid_broadcast: bool) -> Window {
        if paid_broadcast {
            self.per_paid_bot
        } else {
            self.per_bot
        }
    }
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
    last_sent: Option<Instant>,
    /// Set by a 429 for this chat: nothing goes to it before this instant.
    blocked_until: Option<Instant>,
    penalty: u32,
    penalty_until: Option<Instant>,
}

#[derive(Debug, Default)]
struct BotState {
    second: Log,
    blocked_until: Option<Instant>,
    recent_429s: VecDeque<(Instant, Uuid)>,
}

/// What a 429 did to the pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slowdown {
    /// Only this chat is held.
    Chat { penalty: u32 },
    /// The bot's budget was hit (several chats limited at once, or a chat whose own windows had
    /// room): the whole bot is held, no chat is penalised.
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
        paid_broadcast: bool,
        now: Instant,
    ) -> Result<(), Instant> {
        self.check(bot, chat, group, paid_broadcast, now)?;
        self.record(bot, chat, group, now);
        Ok(())
    }

    /// Takes a slot for one message from `bot` to `chat` at the first moment the windows allow,
    /// if that is within `horizon` from `now`; returns that moment, or when to ask again. A
    /// claim books a lane whose window frees a moment from now, so that a lane on the critical
    /// path is not overtaken by others that are ready a few milliseconds earlier.
    pub fn try_acquire_within(
        &mut self,
        bot: Uuid,
        chat: Uuid,
        group: bool,
        paid_broadcast: bool,
        now: Instant,
        horizon: Duration,
    ) -> Result<Instant, Instant> {
        let ready = match self.check(bot, chat, group, paid_broadcast, now) {
            Ok(()) => now,
            Err(ready) if ready <= now + horizon => ready,
            Err(ready) => return Err(ready),
        };
        self.record(bot, chat, group, ready);
        Ok(ready)
    }

    /// Whether a message from `bot` to `chat` may go now, without taking the slot.
    pub fn check(
        &mut self,
        bot: Uuid,
        chat: Uuid,
        group: bool,
        paid_broadcast: bool,
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
        if let Some(until) = chat_state.blocked_until {
            ready = ready.max(until);
        }
        let bot_state = self.bots.entry(bot).or_default();
        let per_bot = if paid_broadcast {
            limits.per_paid_bot
        } else {
            limits.per_bot
        };
        // No margin here: the budget shared by all workers, taken right before each request,
        // is the exact gate ([`BOT_BUDGET_MARGIN`]); this only keeps claims near that pace.
        ready = ready.max(bot_state.second.next_free(per_bot.max, per_bot.period, now));
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
        self.limits.bot_window(paid_broadcast)
    }

    /// Counts a send that already happened (e.g. before a restart) against every window.
    pub fn record(&mut self, bot: Uuid, chat: Uuid, group: bool, at: Instant) {
        let chat_state = self.chats.entry(chat).or_default();
        chat_state.second.sends.push_back(at);
        if group {
            chat_state.minute.sends.push_back(at);
        }
        chat_state.last_sent = Some(chat_state.last_sent.map_or(at, |t| t.max(at)));
        let bot_state = self.bots.entry(bot).or_default();
        bot_state.second.sends.push_back(at);
    }

    /// Undoes [`Self::try_acquire`] at `at` for a send that will not happen now (the budget
    /// shared with other workers had no room for it).
    pub fn give_back(&mut self, bot: Uuid, chat: Uuid, group: bool, at: Instant) {
        fn remove(log: &mut Log, at: Instant) {
            if let Some(i) = log.sends.iter().rposition(|t| *t == at) {
                log.sends.remove(i);
            }
        }
        if let Some(state) = self.chats.get_mut(&chat) {
            remove(&mut state.second, at);
            if group {
                remove(&mut state.minute, at);
            }
            state.last_sent = state.second.sends.back().copied();
        }
        if let Some(state) = self.bots.get_mut(&bot) {
            remove(&mut state.second, at);
        }
    }

    /// The claimed send to `chat` got its answer at `answered_at`: count the chat's windows from
    /// then (Telegram counted it at some moment before).
    pub fn sent(&mut self, chat: Uuid, answered_at: Instant) {
        if let Some(state) = self.chats.get_mut(&chat) {
            for log in [&mut state.second, &mut state.minute] {
                if let Some(last) = log.sends.back_mut() {
                    *last = (*last).max(answered_at);
                }
            }
            state.last_sent = Some(state.last_sent.map_or(answered_at, |t| t.max(answered_at)));
        }
    }

    /// Bots whose window is full now (a claim leaves their chats out before ranking), and the
    /// first moment one of them may send again (when to claim next).
    pub fn bots_without_budget(
        &mut self,
        paid_broadcast: impl Fn(Uuid) -> bool,
        now: Instant,
    ) -> (Vec<Uuid>, Option<Instant>) {
        let limits = self.limits;
        let mut first_free: Option<Instant> = None;
        let bots = self
            .bots
            .iter_mut()
            .filter_map(|(bot, state)| {
                let window = if paid_broadcast(*bot) {
                    limits.per_paid_bot
                } else {
                    limits.per_bot
                };
                let mut ready = state.second.next_free(window.max, window.period, now);
                if let Some(until) = state.blocked_until.filter(|t| *t > now) {
                    ready = ready.max(until);
                }
                (ready > now).then(|| {
                    first_free = Some(first_free.map_or(ready, |t| t.min(ready)));
                    *bot
                })
            })
            .collect();
        (bots, first_free)
    }

    /// Telegram answered 429 for this chat: hold it for `retry_after` and pace it slower for a
    /// while. When several chats of the bot are limited together, hold the whole bot.
    pub fn retry_after(
        &mut self,
        bot: Uuid,
        chat: Uuid,
        group: bool,
        retry_after: Duration,
        now: Instant,
    ) -> Slowdown {
        let until = now + retry_after + SAFETY_MARGIN;
        let limits = self.limits;
        let chat_state = self.chats.entry(chat).or_default();
        // Did the chat's own windows come close? If not, the chat cannot have caused the 429:
        // the bot's budget did, and penalising the chat would slow it for nothing.
        let chat_busy = chat_state
            .last_sent
            .is_some_and(|t| now.saturating_duration_since(t) < limits.per_chat.period * 2)
            || (group && chat_state.minute.sends.len() + 1 >= limits.per_group.max);
        if !chat_busy {
            let bot_state = self.bots.entry(bot).or_default();
            bot_state.blocked_until = Some(bot_state.blocked_until.map_or(until, |t| t.max(until)));
            return Slowdown::Bot;
        }
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

    #[test]
    fn one_message_per_second_per_chat_with_margin() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        assert!(pacer.try_acquire(BOT, chat(1), false, false, t0).is_ok());
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, false, t0 + ms(500)),
            Err(t0 + ms(1000) + SAFETY_MARGIN)
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(1), false, false, t0 + ms(1000) + SAFETY_MARGIN)
                .is_ok()
        );
        // Another chat is not affected.
        assert!(
            pacer
                .try_acquire(BOT, chat(2), false, false, t0 + ms(500))
                .is_ok()
        );
    }

    #[test]
    fn a_lane_whose_window_frees_within_the_horizon_is_booked_for_that_moment() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        assert_eq!(
            pacer.try_acquire_within(BOT, chat(1), false, false, t0, ms(60)),
            Ok(t0)
        );
        // Its window frees a second and the margin after: asked at 1000 ms it is booked for
        // then, not refused.
        assert_eq!(
            pacer.try_acquire_within(BOT, chat(1), false, false, t0 + ms(1000), ms(60)),
            Ok(t0 + ms(1000) + SAFETY_MARGIN)
        );
        // Booked, it counts: the next frees a second after the booked moment.
        assert_eq!(
            pacer.try_acquire_within(BOT, chat(1), false, false, t0 + ms(1100), ms(60)),
            Err(t0 + ms(1000) + SAFETY_MARGIN + ms(1000) + SAFETY_MARGIN)
        );
        // Beyond the horizon it is refused with the moment to ask again.
        assert_eq!(
            pacer.try_acquire_within(BOT, chat(2), false, false, t0, ms(60)),
            Ok(t0)
        );
        assert_eq!(
            pacer.try_acquire_within(BOT, chat(2), false, false, t0 + ms(900), ms(60)),
            Err(t0 + ms(1000) + SAFETY_MARGIN)
        );
    }

    #[test]
    fn a_bot_without_budget_says_when_it_frees() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for n in 0..30 {
            assert!(
                pacer
                    .try_acquire(BOT, chat(n), false, false, t0 + ms(n as u64))
                    .is_ok()
            );
        }
        let (bots, frees_at) = pacer.bots_without_budget(|_| false, t0 + ms(500));
        assert_eq!(bots, vec![BOT]);
        assert_eq!(frees_at, Some(t0 + ms(1000)));
        // With paid broadcasts on, the same bot has room.
        assert_eq!(
            pacer.bots_without_budget(|_| true, t0 + ms(500)),
            (vec![], None)
        );
    }

    #[test]
    fn groups_get_twenty_per_minute() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(
                pacer
                    .try_acquire(BOT, chat(1), true, false, t0 + ms(1100 * i))
                    .is_ok(),
                "send {i}"
            );
        }
        let refused = pacer.try_acquire(BOT, chat(1), true, false, t0 + ms(1100 * 20));
        assert_eq!(refused, Err(t0 + ms(60_000) + SAFETY_MARGIN));
    }

    #[test]
    fn thirty_per_second_per_bot_unless_paid_broadcast() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for n in 0..30 {
            assert!(pacer.try_acquire(BOT, chat(n), false, false, t0).is_ok());
        }
        assert_eq!(
            pacer.try_acquire(BOT, chat(99), false, false, t0),
            Err(t0 + ms(1000))
        );
        // Another bot has its own budget.
        assert!(
            pacer
                .try_acquire(Uuid::from_u128(2), chat(99), false, false, t0)
                .is_ok()
        );
        assert!(pacer.try_acquire(BOT, chat(100), false, true, t0).is_ok());
    }

    #[test]
    fn retry_after_holds_only_that_chat_and_repeats_slow_it_down() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        assert!(pacer.try_acquire(BOT, chat(1), false, false, t0).is_ok());
        pacer.sent(chat(1), t0 + ms(10));
        assert_eq!(
            pacer.retry_after(BOT, chat(1), false, Duration::from_secs(5), t0 + ms(10)),
            Slowdown::Chat { penalty: 1 }
        );
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, false, t0 + ms(2000)),
            Err(t0 + ms(5010) + SAFETY_MARGIN)
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(7), false, false, t0 + ms(2000))
                .is_ok()
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(1), false, false, t0 + ms(5010) + SAFETY_MARGIN)
                .is_ok()
        );
        // Penalised: the next send to that chat waits 2 s (plus margin), not 1 s.
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, false, t0 + ms(6200)),
            Err(t0 + ms(5010) + SAFETY_MARGIN + ms(2000) + SAFETY_MARGIN)
        );
    }

    #[test]
    fn a_429_for_a_chat_with_room_in_its_windows_holds_the_bot_not_the_chat() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        // The chat was last sent to 10 s ago: its own 1/s window cannot be the cause.
        assert!(pacer.try_acquire(BOT, chat(1), false, false, t0).is_ok());
        let later = t0 + ms(10_000);
        assert_eq!(
            pacer.retry_after(BOT, chat(1), false, Duration::from_secs(2), later),
            Slowdown::Bot
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(2), false, false, later + ms(100))
                .is_err()
        );
        // No penalty: after the hold, the chat is back at one message per second.
        let after = later + ms(2100);
        assert!(pacer.try_acquire(BOT, chat(1), false, false, after).is_ok());
        assert_eq!(
            pacer.try_acquire(BOT, chat(1), false, false, after + ms(500)),
            Err(after + ms(1000) + SAFETY_MARGIN)
        );
    }

    #[test]
    fn many_chats_limited_at_once_hold_the_bot() {
        let mut pacer = Pacer::new(Limits::telegram());
        let t0 = Instant::now();
        for n in 1..=3 {
            assert!(pacer.try_acquire(BOT, chat(n), false, false, t0).is_ok());
        }
        pacer.retry_after(BOT, chat(1), false, Duration::from_secs(3), t0);
        pacer.retry_after(BOT, chat(2), false, Duration::from_secs(3), t0);
        assert_eq!(
            pacer.retry_after(BOT, chat(3), false, Duration::from_secs(3), t0),
            Slowdown::Bot
        );
        assert!(
            pacer
                .try_acquire(BOT, chat(4), false, false, t0 + ms(100))
                .is_err()
        );
        assert!(
            pacer
                .try_acquire(Uuid::from_u128(2), chat(4), false, false, t0 + ms(100))
                .is_ok()
        );
    }
}
