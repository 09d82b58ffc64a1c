//! Telegram's flood limits as a pure sliding-window limiter.
//!
//! Telegram documents (and enforces with 429 answers) roughly: one message
//! per second per chat, 20 messages per minute per group, 30 messages per
//! second per bot, and up to 1000 per second per bot for messages sent with
//! `allow_paid_broadcast` (charged in Stars; the per-chat and per-group
//! limits still apply). Sliding windows (rather than fixed buckets) give the
//! strictest reading of those rules, so a client that passes here will not
//! trip the real limits. The limiter takes `now` as an argument so it can be
//! tested without sleeping.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// At most `max` events in any span of `period`. `max == 0` disables the
/// window (no limit), which lets tests isolate one limit from the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub max: u32,
    pub period: Duration,
}

impl Window {
    pub const fn new(max: u32, period: Duration) -> Self {
        Self { max, period }
    }
}

/// The limits a `sendMessage` must pass, all counted per bot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Per (bot, chat), for every chat.
    pub per_chat: Window,
    /// Per (bot, chat) for groups, supergroups and channels (negative ids),
    /// on top of `per_chat`.
    pub per_group: Window,
    /// Per bot, across all chats, for messages sent without
    /// `allow_paid_broadcast`.
    pub per_bot: Window,
    /// Per bot, across all chats, for messages sent with
    /// `allow_paid_broadcast=true` (see [`RateLimiter::try_acquire`] for how
    /// the two kinds share a bot's budget).
    pub per_paid_bot: Window,
}

impl Default for Limits {
    /// Telegram's published limits, as Herald defines them once (`domain::limits::TELEGRAM`).
    fn default() -> Self {
        let window =
            |rate: domain::limits::Rate| Window::new(rate.max, Duration::from_secs(rate.per_secs));
        let telegram = domain::limits::TELEGRAM;
        Self {
            per_chat: window(telegram.per_chat),
            per_group: window(telegram.per_group),
            per_bot: window(telegram.per_bot),
            per_paid_bot: window(telegram.per_paid_bot),
        }
    }
}

/// How many empty windows may pile up before they are swept.
const SWEEP_EVERY: u32 = 4096;

/// Timestamps of accepted events for one key, oldest first.
#[derive(Debug, Default)]
struct Hits(VecDeque<Instant>);

impl Hits {
    /// Drops the events that no longer fall inside `period`.
    fn prune(&mut self, period: Duration, now: Instant) {
        while let Some(&oldest) = self.0.front() {
            if now.saturating_duration_since(oldest) >= period {
                self.0.pop_front();
            } else {
                break;
            }
        }
    }

    /// How long until one more event fits in `window`, None if it fits now.
    fn wait(&mut self, window: Window, now: Instant) -> Option<Duration> {
        if window.max == 0 {
            return None;
        }
        self.prune(window.period, now);
        let max = usize::try_from(window.max).unwrap_or(usize::MAX);
        let excess = self.0.len().checked_sub(max)?;
        // The window frees up when the event that makes it full expires.
        let blocking = self.0.get(excess)?;
        Some(
            window
                .period
                .saturating_sub(now.saturating_duration_since(*blocking)),
        )
    }
}

/// One limit applied to many keys.
#[derive(Debug)]
struct Limit<K> {
    window: Window,
    keys: HashMap<K, Hits>,
}

impl<K: Eq + Hash> Limit<K> {
    fn new(window: Window) -> Self {
        Self {
            window,
            keys: HashMap::new(),
        }
    }

    fn wait(&mut self, key: &K, now: Instant) -> Option<Duration> {
        self.keys.get_mut(key)?.wait(self.window, now)
    }

    fn record(&mut self, key: K, now: Instant) {
        if self.window.max > 0 {
            self.keys.entry(key).or_default().0.push_back(now);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let period = self.window.period;
        self.keys.retain(|_, hits| {
            hits.prune(period, now);
            !hits.0.is_empty()
        });
    }
}

/// The sandbox's flood control: per chat, per group and per bot windows.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_chat: Limit<(i64, i64)>,
    per_group: Limit<(i64, i64)>,
    per_bot: Limit<i64>,
    per_paid_bot: Limit<i64>,
    records_since_sweep: u32,
}

impl RateLimiter {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            per_chat: Limit::new(limits.per_chat),
            per_group: Limit::new(limits.per_group),
            per_bot: Limit::new(limits.per_bot),
            per_paid_bot: Limit::new(limits.per_paid_bot),
            records_since_sweep: 0,
        }
    }

    /// Admits one message from `bot` to `chat` at `now`, or says how long to
    /// wait. A rejected attempt is not counted, as in Telegram.
    ///
    /// `paid` is the request's `allow_paid_broadcast`. How the two kinds of
    /// message share one bot's budget, in the strictest reading of Telegram's
    /// documentation (which says only that a paid message may exceed the
    /// broadcast limit, up to 1000 per second): every accepted message of the
    /// bot, paid or not, counts in both per-bot windows. A paid message must
    /// find room in the paid window only (1000/s); an ordinary one in the
    /// ordinary window (30/s) and in the paid one. So a bot that just sent
    /// 100 paid messages must wait before an ordinary one, and a bot never
    /// exceeds 1000/s in total. Herald's delivery paces a bot the same way:
    /// one log of its sends, with a threshold that follows the flag.
    pub(crate) fn try_acquire(
        &mut self,
        bot: i64,
        chat: i64,
        paid: bool,
        now: Instant,
    ) -> Result<(), Duration> {
        let waits = [
            self.per_chat.wait(&(bot, chat), now),
            if chat < 0 {
                self.per_group.wait(&(bot, chat), now)
            } else {
                None
            },
            if paid {
                None
            } else {
                self.per_bot.wait(&bot, now)
            },
            self.per_paid_bot.wait(&bot, now),
        ];
        match waits.into_iter().flatten().max() {
            Some(wait) => Err(wait),
            None => {
                self.record(bot, chat, now);
                Ok(())
            }
        }
    }

    /// Counts a message without checking the limits (a message Telegram
    /// delivered regardless, like an injected `accept_then_drop`). Paid or
    /// not, it counts in both per-bot windows.
    pub(crate) fn record(&mut self, bot: i64, chat: i64, now: Instant) {
        self.per_chat.record((bot, chat), now);
        if chat < 0 {
            self.per_group.record((bot, chat), now);
        }
        self.per_bot.record(bot, now);
        self.per_paid_bot.record(bot, now);
        self.records_since_sweep += 1;
        if self.records_since_sweep >= SWEEP_EVERY {
            self.records_since_sweep = 0;
            self.per_chat.sweep(now);
            self.per_group.sweep(now);
            self.per_bot.sweep(now);
            self.per_paid_bot.sweep(now);
        }
    }
}

/// Telegram's `retry_after`: whole seconds, rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    u32::try_from(secs.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn limits(chat: u32, group: u32, bot: u32) -> Limits {
        Limits {
            per_chat: Window::new(chat, 1000 * MS),
            per_group: Window::new(group, 60_000 * MS),
            per_bot: Window::new(bot, 1000 * MS),
            per_paid_bot: Window::new(0, 1000 * MS),
        }
    }

    #[test]
    fn second_message_to_same_chat_waits_for_the_window() {
        let mut limiter = RateLimiter::new(Limits::default());
        let t0 = Instant::now();
        assert_eq!(limiter.try_acquire(1, 42, false, t0), Ok(()));
        assert_eq!(
            limiter.try_acquire(1, 42, false, t0 + 300 * MS),
            Err(700 * MS)
        );
        // The rejection did not count: the window frees at t0 + 1 s.
        assert_eq!(limiter.try_acquire(1, 42, false, t0 + 1000 * MS), Ok(()));
    }

    #[test]
    fn chats_and_bots_are_independent() {
        let mut limiter = RateLimiter::new(Limits::default());
        let t0 = Instant::now();
        assert_eq!(limiter.try_acquire(1, 42, false, t0), Ok(()));
        assert_eq!(limiter.try_acquire(1, 43, false, t0), Ok(()));
        assert_eq!(limiter.try_acquire(2, 42, false, t0), Ok(()));
    }

    #[test]
    fn window_is_sliding_not_fixed() {
        let mut limiter = RateLimiter::new(limits(0, 0, 2));
        let t0 = Instant::now();
        assert_eq!(limiter.try_acquire(1, 1, false, t0), Ok(()));
        assert_eq!(limiter.try_acquire(1, 2, false, t0 + 900 * MS), Ok(()));
        // A fixed 1 s bucket would reset at t0 + 1 s; the sliding window
        // still holds the event from t0 + 900 ms.
        assert_eq!(limiter.try_acquire(1, 3, false, t0 + 1000 * MS), Ok(()));
        assert_eq!(
            limiter.try_acquire(1, 4, false, t0 + 1100 * MS),
            Err(800 * MS)
        );
        assert_eq!(limiter.try_acquire(1, 4, false, t0 + 1900 * MS), Ok(()));
    }

    #[test]
    fn per_group_applies_to_negative_ids_only() {
        let mut limiter = RateLimiter::new(limits(0, 2, 0));
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(limiter.try_acquire(1, 7, false, t0), Ok(()));
        }
        assert_eq!(limiter.try_acquire(1, -7, false, t0), Ok(()));
        assert_eq!(limiter.try_acquire(1, -7, false, t0 + 10 * MS), Ok(()));
        assert_eq!(
            limiter.try_acquire(1, -7, false, t0 + 30_000 * MS),
            Err(30_000 * MS)
        );
        assert_eq!(limiter.try_acquire(1, -8, false, t0), Ok(()));
    }

    #[test]
    fn longest_wait_wins() {
        let mut limiter = RateLimiter::new(limits(1, 1, 1));
        let t0 = Instant::now();
        assert_eq!(limiter.try_acquire(1, -5, false, t0), Ok(()));
        assert_eq!(
            limiter.try_acquire(1, -5, false, t0 + 500 * MS),
            Err(59_500 * MS)
        );
    }

    #[test]
    fn record_counts_without_checking() {
        let mut limiter = RateLimiter::new(limits(1, 0, 0));
        let t0 = Instant::now();
        limiter.record(1, 9, t0);
        limiter.record(1, 9, t0);
        assert_eq!(limiter.try_acquire(1, 9, false, t0 + 999 * MS), Err(MS));
        assert_eq!(limiter.try_acquire(1, 9, false, t0 + 1000 * MS), Ok(()));
    }

    #[test]
    fn sweep_forgets_idle_keys() {
        let mut limiter = RateLimiter::new(limits(1, 1, 0));
        let t0 = Instant::now();
        for chat in 0..i64::from(SWEEP_EVERY) {
            limiter.record(1, -chat - 1, t0 + MS * u32::try_from(chat).unwrap_or(0));
        }
        // The sweep ran at the last record: only chats recorded within the
        // last second of it are left.
        assert!(limiter.per_chat.keys.len() <= 1001);
        assert!(limiter.per_group.keys.len() > 1001);
    }

    /// Sends one message from bot 1 to each of `chats` at `at`; how many were refused.
    fn burst(
        limiter: &mut RateLimiter,
        chats: std::ops::Range<i64>,
        paid: bool,
        at: Instant,
    ) -> usize {
        chats
            .filter(|&chat| limiter.try_acquire(1, chat, paid, at).is_err())
            .count()
    }

    #[test]
    fn thirty_first_message_in_a_second_is_refused_unless_paid() {
        let t0 = Instant::now();
        let mut ordinary = RateLimiter::new(Limits::default());
        assert_eq!(burst(&mut ordinary, 1..31, false, t0), 0);
        assert_eq!(
            ordinary.try_acquire(1, 31, false, t0 + 400 * MS),
            Err(600 * MS)
        );
        let mut paid = RateLimiter::new(Limits::default());
        assert_eq!(burst(&mut paid, 1..31, true, t0), 0);
        assert_eq!(paid.try_acquire(1, 31, true, t0 + 400 * MS), Ok(()));
    }

    #[test]
    fn paid_broadcasts_stop_at_a_thousand_per_second() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(Limits::default());
        assert_eq!(burst(&mut limiter, 1..1001, true, t0), 0);
        assert_eq!(limiter.try_acquire(1, 1001, true, t0 + 999 * MS), Err(MS));
        // The per-chat and per-group limits still apply to paid messages.
        assert_eq!(limiter.try_acquire(1, 1, true, t0 + 1000 * MS), Ok(()));
        assert_eq!(
            limiter.try_acquire(1, 1, true, t0 + 1500 * MS),
            Err(500 * MS)
        );
        // Another bot has its own budget.
        assert_eq!(limiter.try_acquire(2, 1001, true, t0 + 999 * MS), Ok(()));
    }

    #[test]
    fn paid_and_ordinary_messages_share_the_bot_budget() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(Limits::default());
        // Ordinary messages count in the paid window: 30 of them leave 970 paid ones.
        assert_eq!(burst(&mut limiter, 1..31, false, t0), 0);
        assert_eq!(burst(&mut limiter, 31..1001, true, t0), 0);
        assert_eq!(limiter.try_acquire(1, 1001, true, t0), Err(1000 * MS));
        // Paid messages count in the ordinary window: no ordinary message until they age out.
        let mut limiter = RateLimiter::new(Limits::default());
        assert_eq!(limiter.try_acquire(1, 1, true, t0), Ok(()));
        assert_eq!(burst(&mut limiter, 2..31, true, t0 + 500 * MS), 0);
        assert_eq!(
            limiter.try_acquire(1, 31, false, t0 + 600 * MS),
            Err(400 * MS)
        );
        assert_eq!(limiter.try_acquire(1, 31, false, t0 + 1000 * MS), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(MS), 1);
        assert_eq!(retry_after_secs(1000 * MS), 1);
        assert_eq!(retry_after_secs(1001 * MS), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(59)), 59);
    }
}
