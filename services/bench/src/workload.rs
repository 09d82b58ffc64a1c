//! Workload shapes and the best any sender could do with them under Telegram's limits.

use std::collections::VecDeque;
use std::time::Duration;

/// Telegram's limits, as the sandbox enforces them (sliding windows): 1 message per second per
/// chat, 20 per minute per group or channel (negative ids), 30 per second per bot.
const PER_CHAT: Window = Window {
    max: 1,
    period_ms: 1_000,
};
const PER_GROUP: Window = Window {
    max: 20,
    period_ms: 60_000,
};
const PER_BOT: Window = Window {
    max: 30,
    period_ms: 1_000,
};

#[derive(Clone, Copy)]
struct Window {
    max: usize,
    period_ms: u64,
}

/// One chat and the due offsets (from the workload's start) of the posts it gets.
#[derive(Debug, Clone)]
pub struct ChatSpec {
    pub telegram_chat_id: i64,
    pub posts: Vec<Duration>,
}

#[derive(Debug, Clone)]
pub struct BotSpec {
    pub telegram_bot_id: u64,
    pub chats: Vec<ChatSpec>,
}

/// A message the workload expects to arrive exactly once.
#[derive(Debug, Clone)]
pub struct Expected {
    pub bot: usize,
    pub chat: usize,
    pub telegram_chat_id: i64,
    pub text: String,
    pub due: Duration,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub description: String,
    pub bots: Vec<BotSpec>,
}

impl Workload {
    /// `bots` bots with `chats` chats each, every chat getting `posts` posts due at once.
    /// `run` keeps the ids of different workloads (and runs) apart.
    pub fn uniform(
        name: &'static str,
        description: String,
        bots: usize,
        chats: usize,
        posts: usize,
        channels: bool,
        run: u64,
    ) -> Self {
        Self::build(name, description, bots, chats, run, channels, |_| {
            vec![Duration::ZERO; posts]
        })
    }

    /// One bot, `chats` private chats, one post each, due times spread evenly over `spread`.
    pub fn steady(
        name: &'static str,
        description: String,
        chats: usize,
        spread: Duration,
        run: u64,
    ) -> Self {
        Self::build(name, description, 1, chats, run, false, |i| {
            vec![spread.mul_f64(i as f64 / chats as f64)]
        })
    }

    fn build(
        name: &'static str,
        description: String,
        bots: usize,
        chats: usize,
        run: u64,
        channels: bool,
        posts: impl Fn(usize) -> Vec<Duration>,
    ) -> Self {
        let bots = (0..bots)
            .map(|b| BotSpec {
                // Distinct per workload and run, so the sandbox's limits never carry over.
                telegram_bot_id: 100_000_000 + run * 1_000 + b as u64,
                chats: (0..chats)
                    .map(|c| {
                        let n = (run * 1_000 + b as u64) * 10_000 + c as u64;
                        ChatSpec {
                            telegram_chat_id: if channels {
                                load::channel_chat_id(n)
                            } else {
                                1_000_000 + n as i64
                            },
                            posts: posts(b * chats + c),
                        }
                    })
                    .collect(),
            })
            .collect();
        Self {
            name,
            description,
            bots,
        }
    }

    /// Every message, in the order a sender should submit them: by due time, then by round
    /// (first post of every chat, then the second...), then by bot and chat.
    pub fn expected(&self) -> Vec<Expected> {
        let mut all = Vec::new();
        for (b, bot) in self.bots.iter().enumerate() {
            for (c, chat) in bot.chats.iter().enumerate() {
                for (p, due) in chat.posts.iter().enumerate() {
                    all.push((
                        p,
                        Expected {
                            bot: b,
                            chat: c,
                            telegram_chat_id: chat.telegram_chat_id,
                            text: format!(
                                "bench {} chat {} post {p}",
                                self.name, chat.telegram_chat_id
                            ),
                            due: *due,
                        },
                    ));
                }
            }
        }
        all.sort_by_key(|(p, e)| (e.due, *p, e.bot, e.chat));
        all.into_iter().map(|(_, e)| e).collect()
    }

    /// The best schedule under Telegram's limits, with every window empty at the start.
    pub fn ideal(&self) -> Ideal {
        simulate(self)
    }
}

/// What the best possible sender achieves.
#[derive(Debug, Clone)]
pub struct Ideal {
    /// When the last message goes out (from the workload's start), in the greedy schedule.
    pub last_send: Duration,
    /// A lower bound on that moment no sender can beat (see [`lower_bound`]).
    pub lower_bound: Duration,
    /// Each message's lag (send time - due time) in the greedy schedule, sorted.
    pub lags: Vec<Duration>,
}

impl Ideal {
    /// The shortest duration, counted like the measured ones: start to last send plus the 1 s
    /// slot the last message occupies.
    pub fn duration(&self) -> Duration {
        self.lower_bound + Duration::from_secs(1)
    }
}

/// A lower bound on the moment of the last send, from each limit alone:
/// - a bot with n messages at 30 per second: its last one at floor((n-1)/30) s;
/// - a private chat with k messages at 1 per second: (k-1) s;
/// - a channel with k messages at 1 per second and 20 per minute: message i (from 0) no earlier
///   than floor(i/20) min + (i mod 20) s, so the last at floor((k-1)/20) min + ((k-1) mod 20) s;
/// - and never before the last due time.
pub fn lower_bound(workload: &Workload) -> Duration {
    let mut bound = 0u64;
    for bot in &workload.bots {
        let n: usize = bot.chats.iter().map(|c| c.posts.len()).sum();
        if n > 0 {
            bound = bound.max(((n as u64 - 1) / PER_BOT.max as u64) * PER_BOT.period_ms);
        }
        for chat in &bot.chats {
            let k = chat.posts.len() as u64;
            if k == 0 {
                continue;
            }
            let i = k - 1;
            let chat_bound = if chat.telegram_chat_id < 0 {
                (i / PER_GROUP.max as u64) * PER_GROUP.period_ms
                    + (i % PER_GROUP.max as u64) * 1_000
            } else {
                i * PER_CHAT.period_ms
            };
            let last_due = chat.posts.iter().max().map_or(0, |d| d.as_millis() as u64);
            bound = bound.max(chat_bound).max(last_due);
        }
    }
    Duration::from_millis(bound)
}

/// A sliding window's send log: the earliest moment at or after `at` with room for one more.
fn next_free(log: &VecDeque<u64>, window: Window, at: u64) -> u64 {
    let in_window = log
        .iter()
        .filter(|&&t| at.saturating_sub(t) < window.period_ms)
        .count();
    if in_window < window.max {
        at
    } else {
        // The window frees when the send that fills it expires (sends are in time order).
        log[log.len() - window.max] + window.period_ms
    }
}

struct SimChat {
    bot: usize,
    channel: bool,
    due: VecDeque<u64>,
    sends: VecDeque<u64>,
}

/// Greedy earliest-first schedule in whole milliseconds: repeatedly sends the message that can
/// go out soonest, preferring channels and then the chats with the most left (they bound the
/// end). For the shapes used here it meets [`lower_bound`], so it is optimal.
fn simulate(workload: &Workload) -> Ideal {
    let mut chats: Vec<SimChat> = Vec::new();
    for (b, bot) in workload.bots.iter().enumerate() {
        for chat in &bot.chats {
            let mut due: Vec<u64> = chat.posts.iter().map(|d| d.as_millis() as u64).collect();
            due.sort_unstable();
            chats.push(SimChat {
                bot: b,
                channel: chat.telegram_chat_id < 0,
                due: due.into(),
                sends: VecDeque::new(),
            });
        }
    }
    let mut bots: Vec<VecDeque<u64>> = vec![VecDeque::new(); workload.bots.len()];
    let mut lags = Vec::new();
    let mut last = 0u64;
    loop {
        let mut best: Option<(u64, bool, usize, usize)> = None;
        for (i, chat) in chats.iter().enumerate() {
            let Some(&due) = chat.due.front() else {
                continue;
            };
            let mut at = due;
            // Each window only moves the moment later; iterate until all agree.
            loop {
                let mut next = next_free(&chat.sends, PER_CHAT, at);
                if chat.channel {
                    next = next.max(next_free(&chat.sends, PER_GROUP, next));
                }
                next = next.max(next_free(&bots[chat.bot], PER_BOT, next));
                if next == at {
                    break;
                }
                at = next;
            }
            // Sooner first; at the same moment channels first, then the chat with most left.
            let better = match best {
                None => true,
                Some((b_at, b_channel, b_left, _)) => {
                    (at, !chat.channel, usize::MAX - chat.due.len())
                        < (b_at, !b_channel, usize::MAX - b_left)
                }
            };
            if better {
                best = Some((at, chat.channel, chat.due.len(), i));
            }
        }
        let Some((at, _, _, i)) = best else { break };
        let chat = &mut chats[i];
        let due = chat.due.pop_front().expect("a pending message");
        chat.sends.push_back(at);
        if chat.sends.len() > PER_GROUP.max {
            chat.sends.pop_front();
        }
        let bot = &mut bots[chat.bot];
        bot.push_back(at);
        if bot.len() > PER_BOT.max {
            bot.pop_front();
        }
        lags.push(Duration::from_millis(at - due));
        last = last.max(at);
    }
    lags.sort();
    Ideal {
        last_send: Duration::from_millis(last),
        lower_bound: lower_bound(workload),
        lags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn private_chats_are_bound_by_the_bot() {
        // 300 chats x 3 posts = 900 messages at 30/s: the last goes out at 29 s.
        let w = Workload::uniform("p", String::new(), 1, 300, 3, false, 1);
        let ideal = w.ideal();
        assert_eq!(ideal.lower_bound, secs(29));
        assert_eq!(ideal.last_send, secs(29));
        assert_eq!(ideal.duration(), secs(30));
    }

    #[test]
    fn channels_are_bound_by_twenty_a_minute() {
        // 25 posts to a channel: 20 at 0..19 s, then 5 at 60..64 s.
        let w = Workload::uniform("c", String::new(), 1, 30, 25, true, 1);
        let ideal = w.ideal();
        assert_eq!(ideal.lower_bound, secs(64));
        assert_eq!(ideal.last_send, secs(64));
    }

    #[test]
    fn many_bots_share_nothing() {
        // 10 bots x 40 chats x 2 posts: 80 per bot, 30 + 30 + 20, last at 2 s.
        let w = Workload::uniform("b", String::new(), 10, 40, 2, false, 1);
        let ideal = w.ideal();
        assert_eq!(ideal.lower_bound, secs(2));
        assert_eq!(ideal.last_send, secs(2));
        assert_eq!(w.expected().len(), 800);
    }

    #[test]
    fn under_capacity_nothing_waits() {
        let w = Workload::steady("s", String::new(), 200, secs(10), 1);
        let ideal = w.ideal();
        assert!(ideal.lags.iter().all(|l| l.is_zero()));
        assert_eq!(ideal.last_send, Duration::from_millis(9_950));
    }

    #[test]
    fn expected_texts_are_unique() {
        let w = Workload::uniform("b", String::new(), 3, 4, 2, true, 7);
        let texts: std::collections::HashSet<String> =
            w.expected().into_iter().map(|e| e.text).collect();
        assert_eq!(texts.len(), 24);
    }
}
