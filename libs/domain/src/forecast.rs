//! When a post's messages will go out, given everything else scheduled on the same bots.
//!
//! The estimate is a schedule, not a measurement. It assumes:
//! - every message goes out as early as Telegram's limits ([`crate::limits::TELEGRAM`]) allow:
//!   each chat one message a second, a group or channel also 20 a minute, each bot 30 a second
//!   (1000 for a paid broadcast bot), counted in whole seconds from the earliest due moment;
//! - a chat's messages go in order of due time, and messages due at the same moment go first
//!   come, first served: what was scheduled already before the post being forecast (so the
//!   forecast is the post's worst case among equal-time posts);
//! - Telegram answers instantly and never asks to slow down (no 429s, no hourly caps, no quiet
//!   hours beyond the due times given: a deferred chat comes in at its deferred moment).
//!
//! With 90 private chats of one bot and nothing else, it is 30 messages in each of 3 seconds:
//! the last goes out 2 s after the first, the whole post takes 3 s.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use crate::Id;
use crate::limits::TELEGRAM;

/// One message to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub post_id: Id,
    pub bot_id: Id,
    pub chat_id: Id,
    /// A group, supergroup or channel (20 a minute).
    pub group: bool,
    pub due: DateTime<Utc>,
}

/// When a post's messages go out in a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub due: DateTime<Utc>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub messages: usize,
}

/// Another post that goes out on the same bots while this one does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collision {
    pub post_id: Id,
    /// Its earliest due moment.
    pub publish_at: DateTime<Utc>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub messages: usize,
    /// How much later its last message goes out because of this post.
    pub delayed_ms: i64,
}

/// The forecast of one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forecast {
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub messages: usize,
    /// How much later its last message goes out than it would with the bots to itself.
    pub delayed_ms: i64,
    pub collides_with: Vec<Collision>,
}

impl Forecast {
    /// From the first message to the end of the last one's second.
    pub fn duration(&self) -> TimeDelta {
        self.last_at - self.first_at + TimeDelta::seconds(1)
    }
}

/// The post's messages (`own`) scheduled after and among `others` (already scheduled, on the
/// same bots); `None` when it has no message. Bots in `paid` send paid broadcasts.
pub fn forecast(own: &[Message], others: &[Message], paid: &HashSet<Id>) -> Option<Forecast> {
    let post = own.first()?.post_id;
    let bots: HashSet<Id> = own.iter().map(|m| m.bot_id).collect();
    let others: Vec<Message> = others
        .iter()
        .filter(|m| m.post_id != post && bots.contains(&m.bot_id))
        .cloned()
        .collect();
    let all: Vec<Message> = others.iter().chain(own).cloned().collect();
    let together = schedule(&all, paid);
    let alone = schedule(own, paid);
    let without = schedule(&others, paid);
    let this = together[&post];
    let mut collides_with: Vec<Collision> = together
        .iter()
        .filter(|(id, _)| **id != post)
        .map(|(id, span)| Collision {
            post_id: *id,
            publish_at: span.due,
            first_at: span.first_at,
            last_at: span.last_at,
            messages: span.messages,
            delayed_ms: without
                .get(id)
                .map_or(0, |w| (span.last_at - w.last_at).num_milliseconds().max(0)),
        })
        // Going out between this post's publish time and its last message, or later because
        // of it.
        .filter(|c| (c.first_at <= this.last_at && c.last_at >= this.due) || c.delayed_ms > 0)
        .collect();
    collides_with.sort_by_key(|c| (c.first_at, c.post_id));
    Some(Forecast {
        first_at: this.first_at,
        last_at: this.last_at,
        messages: this.messages,
        delayed_ms: (this.last_at - alone[&post].last_at)
            .num_milliseconds()
            .max(0),
        collides_with,
    })
}

#[derive(Default)]
struct BotSlots {
    used: HashMap<i64, u32>,
    /// Every second before this one is full.
    first_open: i64,
}

/// Each post's span when `messages` go out as early as the limits allow, in order of due time
/// (first come, first served among equal ones).
pub fn schedule(messages: &[Message], paid: &HashSet<Id>) -> HashMap<Id, Span> {
    let mut spans: HashMap<Id, Span> = HashMap::new();
    let Some(base) = messages.iter().map(|m| m.due).min() else {
        return spans;
    };
    let mut order: Vec<&Message> = messages.iter().collect();
    order.sort_by_key(|m| m.due);
    let mut bots: HashMap<Id, BotSlots> = HashMap::new();
    let mut chats: HashMap<Id, Vec<i64>> = HashMap::new();
    let group_max = TELEGRAM.per_group.max as usize;
    let group_secs = TELEGRAM.per_group.per_secs as i64;
    let chat_secs = TELEGRAM.per_chat.per_secs as i64;
    for message in order {
        // The first whole second at or after the due moment.
        let due_ms = (message.due - base).num_milliseconds();
        let mut second = (due_ms + 999).div_euclid(1000);
        let sent = chats.entry(message.chat_id).or_default();
        if let Some(last) = sent.last() {
            second = second.max(last + chat_secs);
        }
        if message.group && sent.len() >= group_max {
            second = second.max(sent[sent.len() - group_max] + group_secs);
        }
        let max = if paid.contains(&message.bot_id) {
            TELEGRAM.per_paid_bot.max
        } else {
            TELEGRAM.per_bot.max
        };
        let bot = bots.entry(message.bot_id).or_default();
        second = second.max(bot.first_open);
        while bot.used.get(&second).copied().unwrap_or(0) >= max {
            second += 1;
        }
        *bot.used.entry(second).or_default() += 1;
        while bot.used.get(&bot.first_open).copied().unwrap_or(0) >= max {
            bot.first_open += 1;
        }
        sent.push(second);
        let at = base + TimeDelta::seconds(second);
        let at = at.max(message.due);
        spans
            .entry(message.post_id)
            .and_modify(|s| {
                s.due = s.due.min(message.due);
                s.first_at = s.first_at.min(at);
                s.last_at = s.last_at.max(at);
                s.messages += 1;
            })
            .or_insert(Span {
                due: message.due,
                first_at: at,
                last_at: at,
                messages: 1,
            });
    }
    spans
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
    }

    fn messages(post: u128, bot: u128, chats: std::ops::Range<u128>, group: bool) -> Vec<Message> {
        chats
            .map(|c| Message {
                post_id: Id::from_u128(post),
                bot_id: Id::from_u128(bot),
                chat_id: Id::from_u128(c),
                group,
                due: at(),
            })
            .collect()
    }

    #[test]
    fn ninety_private_chats_take_three_seconds_at_thirty_a_second() {
        let own = messages(1, 1, 0..90, false);
        let f = forecast(&own, &[], &HashSet::new()).unwrap();
        assert_eq!(f.first_at, at());
        assert_eq!(f.last_at, at() + TimeDelta::seconds(2));
        assert_eq!(f.duration(), TimeDelta::seconds(3));
        assert_eq!((f.messages, f.delayed_ms), (90, 0));
        // A paid broadcast bot sends them in one second.
        let paid = HashSet::from([Id::from_u128(1)]);
        assert_eq!(forecast(&own, &[], &paid).unwrap().last_at, at());
    }

    #[test]
    fn a_post_on_the_same_bot_at_the_same_time_collides_and_delays() {
        let own = messages(1, 1, 0..90, false);
        let other = messages(2, 1, 100..130, false);
        let f = forecast(&own, &other, &HashSet::new()).unwrap();
        // The other post's 30 take the first second.
        assert_eq!(f.last_at, at() + TimeDelta::seconds(3));
        assert_eq!(f.delayed_ms, 1000);
        assert_eq!(f.collides_with.len(), 1);
        assert_eq!(f.collides_with[0].post_id, Id::from_u128(2));
        assert_eq!(f.collides_with[0].delayed_ms, 0);
        // Another bot's post neither collides nor delays.
        let elsewhere = messages(3, 2, 200..230, false);
        let f = forecast(&own, &elsewhere, &HashSet::new()).unwrap();
        assert!(f.collides_with.is_empty());
        assert_eq!(f.delayed_ms, 0);
    }

    #[test]
    fn a_later_post_is_delayed_by_this_one() {
        let own = messages(1, 1, 0..90, false);
        let mut later = messages(2, 1, 100..101, false);
        later[0].due = at() + TimeDelta::milliseconds(500);
        let f = forecast(&own, &later, &HashSet::new()).unwrap();
        // Due within the first second, after this post's first 30; the second is full
        // until 09:00:03.
        assert_eq!(f.collides_with[0].delayed_ms, 2500);
    }

    #[test]
    fn a_chat_gets_one_a_second_and_a_channel_twenty_a_minute() {
        let chat = |post: u128, group: bool| Message {
            post_id: Id::from_u128(post),
            bot_id: Id::from_u128(1),
            chat_id: Id::from_u128(7),
            group,
            due: at(),
        };
        let private: Vec<Message> = (0..3).map(|p| chat(p, false)).collect();
        let spans = schedule(&private, &HashSet::new());
        assert_eq!(
            spans[&Id::from_u128(2)].last_at,
            at() + TimeDelta::seconds(2)
        );
        let channel: Vec<Message> = (0..21).map(|p| chat(p, true)).collect();
        let spans = schedule(&channel, &HashSet::new());
        assert_eq!(
            spans[&Id::from_u128(19)].last_at,
            at() + TimeDelta::seconds(19)
        );
        assert_eq!(
            spans[&Id::from_u128(20)].last_at,
            at() + TimeDelta::seconds(60)
        );
    }
}
