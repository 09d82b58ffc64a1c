//! Workload shapes and the best any sender could do with them under Telegram's limits.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Duration;

/// A sliding window in whole milliseconds: at most `max` sends in any span of `period_ms`.
#[derive(Clone, Copy, Debug)]
struct Window {
    max: usize,
    period_ms: u64,
}

/// Telegram's limits exactly as the sandbox enforces them (`sandbox::Limits::default()`, which
/// reads `domain::limits::TELEGRAM`): sliding windows of 1 message per second per chat, 20 per
/// minute per group or channel (negative ids), 30 per second per bot, 1000 per second per bot
/// for paid broadcasts.
#[derive(Clone, Copy, Debug)]
struct Windows {
    per_chat: Window,
    per_group: Window,
    per_bot: Window,
    per_paid_bot: Window,
}

impl Windows {
    fn sandbox() -> Self {
        let window = |w: sandbox::Window| Window {
            // `max == 0` disables a window in the sandbox.
            max: if w.max == 0 {
                usize::MAX
            } else {
                w.max as usize
            },
            period_ms: w.period.as_millis() as u64,
        };
        let limits = sandbox::Limits::default();
        Self {
            per_chat: window(limits.per_chat),
            per_group: window(limits.per_group),
            per_bot: window(limits.per_bot),
            per_paid_bot: window(limits.per_paid_bot),
        }
    }

    fn bot(&self, paid_broadcast: bool) -> Window {
        if paid_broadcast {
            self.per_paid_bot
        } else {
            self.per_bot
        }
    }
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
    /// The bot opted in to paid broadcasts (1000 messages per second instead of 30).
    pub paid_broadcast: bool,
    pub chats: Vec<ChatSpec>,
}

impl BotSpec {
    pub fn messages(&self) -> usize {
        self.chats.iter().map(|c| c.posts.len()).sum()
    }
}

/// How a workload's messages are planned as posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posting {
    /// Every message is a post of its own, to one chat.
    PerMessage,
    /// The messages of one bot due at the same moment (the first post of each chat, then the
    /// second...) are posts to up to this many chats each.
    Batched { chats_per_post: usize },
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

/// A post as it is planned: one text for every chat it goes to.
#[derive(Debug, Clone)]
pub struct PlannedPost {
    pub bot: usize,
    /// Indices into the bot's chats.
    pub chats: Vec<usize>,
    pub text: String,
    pub due: Duration,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub name: &'static str,
    pub description: String,
    pub bots: Vec<BotSpec>,
    pub posting: Posting,
    /// Connect the chats through the bulk import endpoint rather than one request per chat.
    pub import_chats: bool,
    /// Run teloxide's Throttle beside Herald (it has no paid-broadcast mode).
    pub throttle_baseline: bool,
    /// Also report the messages per second sustained.
    pub report_sustained: bool,
}

/// One chat of a workload being built: a channel (negative id) or not, and its due offsets.
struct ChatShape {
    channel: bool,
    posts: Vec<Duration>,
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
        let shapes = (0..bots)
            .map(|_| {
                let chats = (0..chats)
                    .map(|_| ChatShape {
                        channel: channels,
                        posts: vec![Duration::ZERO; posts],
                    })
                    .collect();
                (false, chats)
            })
            .collect();
        Self::build(name, description, run, shapes)
    }

    /// One bot, `chats` private chats, one post each, due times spread evenly over `spread`.
    pub fn steady(
        name: &'static str,
        description: String,
        chats: usize,
        spread: Duration,
        run: u64,
    ) -> Self {
        let shapes = (0..chats)
            .map(|i| ChatShape {
                channel: false,
                posts: vec![spread.mul_f64(i as f64 / chats as f64)],
            })
            .collect();
        Self::build(name, description, run, vec![(false, shapes)])
    }

    /// One bot, one post to `chats` private chats, due at once.
    pub fn fanout(name: &'static str, description: String, chats: usize, run: u64) -> Self {
        let shapes = (0..chats)
            .map(|_| ChatShape {
                channel: false,
                posts: vec![Duration::ZERO],
            })
            .collect();
        let mut workload = Self::build(name, description, run, vec![(false, shapes)]);
        workload.posting = Posting::Batched {
            chats_per_post: chats.max(1),
        };
        workload.import_chats = true;
        workload
    }

    /// One bot with `channels` channels of `channel_posts` posts and `privates` private chats
    /// of `private_posts` posts, every post to one chat, all due at once.
    pub fn mixed(
        name: &'static str,
        description: String,
        (channels, channel_posts): (usize, usize),
        (privates, private_posts): (usize, usize),
        run: u64,
    ) -> Self {
        let shape = |channel: bool, posts: usize| ChatShape {
            channel,
            posts: vec![Duration::ZERO; posts],
        };
        let shapes = (0..channels)
            .map(|_| shape(true, channel_posts))
            .chain((0..privates).map(|_| shape(false, private_posts)))
            .collect();
        Self::build(name, description, run, vec![(false, shapes)])
    }

    /// One bot with paid broadcasts on, `chats` private chats, one post each, all due at once,
    /// planned as posts to `chats_per_post` chats each.
    pub fn paid(
        name: &'static str,
        description: String,
        chats: usize,
        chats_per_post: usize,
        run: u64,
    ) -> Self {
        let shapes = (0..chats)
            .map(|_| ChatShape {
                channel: false,
                posts: vec![Duration::ZERO],
            })
            .collect();
        let mut workload = Self::build(name, description, run, vec![(true, shapes)]);
        workload.posting = Posting::Batched {
            chats_per_post: chats_per_post.max(1),
        };
        workload.import_chats = true;
        workload.throttle_baseline = false;
        workload.report_sustained = true;
        workload
    }

    /// `bots`: per bot, whether it has paid broadcasts on, and its chats.
    fn build(
        name: &'static str,
        description: String,
        run: u64,
        bots: Vec<(bool, Vec<ChatShape>)>,
    ) -> Self {
        // Chat ids distinct per workload, run and bot; the stride grows for very many chats.
        let most = bots.iter().map(|(_, c)| c.len()).max().unwrap_or(0) as u64;
        let mut stride = 10_000u64;
        while stride < most {
            stride *= 10;
        }
        let bots = bots
            .into_iter()
            .enumerate()
            .map(|(b, (paid_broadcast, chats))| BotSpec {
                // Distinct per workload and run, so the sandbox's limits never carry over.
                telegram_bot_id: 100_000_000 + run * 1_000 + b as u64,
                paid_broadcast,
                chats: chats
                    .into_iter()
                    .enumerate()
                    .map(|(c, shape)| {
                        let n = (run * 1_000 + b as u64) * stride + c as u64;
                        ChatSpec {
                            telegram_chat_id: if shape.channel {
                                load::channel_chat_id(n)
                            } else {
                                1_000_000 + n as i64
                            },
                            posts: shape.posts,
                        }
                    })
                    .collect(),
            })
            .collect();
        Self {
            name,
            description,
            bots,
            posting: Posting::PerMessage,
            import_chats: false,
            throttle_baseline: true,
            report_sustained: false,
        }
    }

    /// Every post, in the order a sender should submit them: by due time, then by round (first
    /// post of every chat, then the second...), then by bot and chat.
    pub fn posts(&self) -> Vec<PlannedPost> {
        let mut messages: Vec<(Duration, usize, usize, usize)> = Vec::new();
        for (b, bot) in self.bots.iter().enumerate() {
            for (c, chat) in bot.chats.iter().enumerate() {
                for (p, due) in chat.posts.iter().enumerate() {
                    messages.push((*due, p, b, c));
                }
            }
        }
        messages.sort_unstable();
        match self.posting {
            Posting::PerMessage => messages
                .into_iter()
                .map(|(due, p, b, c)| PlannedPost {
                    bot: b,
                    chats: vec![c],
                    text: format!(
                        "bench {} chat {} post {p}",
                        self.name, self.bots[b].chats[c].telegram_chat_id
                    ),
                    due,
                })
                .collect(),
            Posting::Batched { chats_per_post } => {
                let mut posts: Vec<PlannedPost> = Vec::new();
                let mut round = None;
                for (due, p, b, c) in messages {
                    let same_round = round == Some((due, p, b));
                    match posts.last_mut() {
                        Some(post) if same_round && post.chats.len() < chats_per_post => {
                            post.chats.push(c);
                        }
                        _ => {
                            posts.push(PlannedPost {
                                bot: b,
                                chats: vec![c],
                                text: format!("bench {} post {}", self.name, posts.len()),
                                due,
                            });
                            round = Some((due, p, b));
                        }
                    }
                }
                posts
            }
        }
    }

    /// Every message, post by post in [`Workload::posts`] order.
    pub fn expected(&self) -> Vec<Expected> {
        let mut all = Vec::with_capacity(self.messages());
        for post in self.posts() {
            all.extend(post.chats.iter().map(|&c| Expected {
                bot: post.bot,
                chat: c,
                telegram_chat_id: self.bots[post.bot].chats[c].telegram_chat_id,
                text: post.text.clone(),
                due: post.due,
            }));
        }
        all
    }

    pub fn messages(&self) -> usize {
        self.bots.iter().map(BotSpec::messages).sum()
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
    /// Each message's send time (from the workload's start) in the greedy schedule, sorted.
    pub sends: Vec<Duration>,
}

impl Ideal {
    /// The shortest duration, counted like the measured ones: start to last send plus the 1 s
    /// slot the last message occupies.
    pub fn duration(&self) -> Duration {
        self.lower_bound + Duration::from_secs(1)
    }
}

/// The earliest moment at or after `at` when a chat or bot whose sends so far are `log` (in
/// time order, at least the last `window.max` of them) may send once more: at most `max` sends
/// in any span of `period`, so send j goes at least a period after send j - max. This is
/// exactly the sandbox's test (fewer than `max` earlier sends younger than `period`).
fn next_free(log: &[u64], window: Window, at: u64) -> u64 {
    match log.len().checked_sub(window.max) {
        Some(i) => at.max(log[i] + window.period_ms),
        None => at,
    }
}

/// The earliest send times of a chat's messages (due offsets sorted, in ms) if it had the bot
/// to itself: each as soon as its due time and the chat's own windows allow.
fn chain(due: &[u64], channel: bool, limits: &Windows) -> Vec<u64> {
    let mut times: Vec<u64> = Vec::with_capacity(due.len());
    for &d in due {
        let mut t = next_free(&times, limits.per_chat, d);
        if channel {
            t = next_free(&times, limits.per_group, t);
        }
        times.push(t);
    }
    times
}

/// Cells of the (head, tail) grid beyond which [`bot_bound`] keeps to its edges.
const MAX_GRID: usize = 4_000_000;

/// A lower bound on the moment of the last send, for any sender, from an interval argument
/// that covers every limit alone and their combinations on one bot.
///
/// Every message j of a chat has a *head* h_j, the earliest moment it can go out at all (its
/// due time and its chat's own windows: 1 per second, and 20 per minute for channels, applied
/// to the messages before it, each as early as possible), and a *tail* t_j, the least time
/// from it to its chat's last message (the chat's own windows applied to the messages after
/// it). If the last send of the whole workload is at C, message j goes out within
/// [h_j, C - t_j]. The bot sends at most `max` messages in any half-open span of one `period`
/// (at the last of them, all the others are younger than a period), so at most
/// `max * (floor(L / period) + 1)` in a closed span of length L. Hence for every a and b, the
/// N messages of a bot with h_j >= a and t_j >= b force
///
///   C >= a + b + (ceil(N / max) - 1) * period.
///
/// The bound is the largest of these over every bot and every (a, b) among the heads and
/// tails. It contains the single-limit bounds: (a, b) = (0, 0) is the bot's n messages at 30
/// per second, floor((n - 1) / 30) s; a = the head of a chat's last message is that chat's
/// chain, (k - 1) s for k messages to a private chat, floor((k - 1) / 20) min +
/// ((k - 1) mod 20) s to a channel, and never before the last due time. Larger (a, b) catch
/// the combinations, e.g. channels whose first 20 posts must all go within the first seconds
/// while private chats compete for the same 30 per second.
///
/// It is only a bound: [`simulate`] finds a schedule, and where that schedule ends at the
/// bound (tests check it for every default shape), the bound is the optimum.
pub fn lower_bound(workload: &Workload) -> Duration {
    let limits = Windows::sandbox();
    let bound = workload
        .bots
        .iter()
        .map(|bot| bot_bound(bot, &limits))
        .max()
        .unwrap_or(0);
    Duration::from_millis(bound)
}

fn bot_bound(bot: &BotSpec, limits: &Windows) -> u64 {
    let window = limits.bot(bot.paid_broadcast);
    // (head, tail) of every message, in ms.
    let mut jobs: Vec<(u64, u64)> = Vec::with_capacity(bot.messages());
    for chat in &bot.chats {
        let channel = chat.telegram_chat_id < 0;
        let mut due: Vec<u64> = chat.posts.iter().map(|d| d.as_millis() as u64).collect();
        due.sort_unstable();
        let heads = chain(&due, channel, limits);
        let fresh = chain(&vec![0; due.len()], channel, limits);
        let k = due.len();
        jobs.extend((0..k).map(|j| (heads[j], fresh[k - 1 - j])));
    }
    if jobs.is_empty() {
        return 0;
    }
    let force = |a: u64, b: u64, n: usize| -> u64 {
        let rounds = n.div_ceil(window.max.max(1)) as u64;
        a + b + rounds.saturating_sub(1) * window.period_ms
    };
    let mut heads: Vec<u64> = jobs.iter().map(|j| j.0).collect();
    let mut tails: Vec<u64> = jobs.iter().map(|j| j.1).collect();
    heads.sort_unstable();
    heads.dedup();
    tails.sort_unstable();
    tails.dedup();
    let (h, t) = (heads.len(), tails.len());
    if h.saturating_mul(t) > MAX_GRID {
        // Too many distinct values for the grid: its edges (a = 0 or b = 0) still bound.
        let mut by_head: Vec<u64> = jobs.iter().map(|j| j.0).collect();
        let mut by_tail: Vec<u64> = jobs.iter().map(|j| j.1).collect();
        by_head.sort_unstable_by(|x, y| y.cmp(x));
        by_tail.sort_unstable_by(|x, y| y.cmp(x));
        let edge = |sorted: &[u64]| {
            sorted
                .iter()
                .enumerate()
                .map(|(i, &v)| force(v, 0, i + 1))
                .max()
                .unwrap_or(0)
        };
        return edge(&by_head).max(edge(&by_tail));
    }
    // count[i][k]: messages with head >= heads[i] and tail >= tails[k] (suffix sums).
    let mut count = vec![0usize; (h + 1) * (t + 1)];
    let cell = |i: usize, k: usize| i * (t + 1) + k;
    for &(head, tail) in &jobs {
        let i = heads.partition_point(|&v| v < head);
        let k = tails.partition_point(|&v| v < tail);
        count[cell(i, k)] += 1;
    }
    let mut bound = 0;
    for i in (0..h).rev() {
        for k in (0..t).rev() {
            let n = count[cell(i, k)] + count[cell(i + 1, k)] + count[cell(i, k + 1)]
                - count[cell(i + 1, k + 1)];
            count[cell(i, k)] = n;
            if n > 0 {
                bound = bound.max(force(heads[i], tails[k], n));
            }
        }
    }
    bound
}

/// One chat in the simulation.
struct Lane {
    channel: bool,
    /// Due offsets in ms, sorted.
    due: Vec<u64>,
    /// The next message to send.
    next: usize,
    /// Send times so far (the last ones suffice for the windows).
    sends: Vec<u64>,
}

impl Lane {
    /// The earliest moment its due time and its own windows allow its next message.
    fn ready_at(&self, limits: &Windows) -> u64 {
        let mut at = next_free(&self.sends, limits.per_chat, self.due[self.next]);
        if self.channel {
            at = next_free(&self.sends, limits.per_group, at);
        }
        at
    }

    /// When its last message would go if, from `now` on, it had the bot to itself.
    fn finish(&self, now: u64, limits: &Windows, scratch: &mut Vec<u64>) -> u64 {
        scratch.clear();
        scratch.extend_from_slice(&self.sends);
        let mut at = now;
        for &due in &self.due[self.next..] {
            at = next_free(scratch, limits.per_chat, due.max(at));
            if self.channel {
                at = next_free(scratch, limits.per_group, at);
            }
            scratch.push(at);
        }
        at
    }

    fn send(&mut self, at: u64, limits: &Windows) -> u64 {
        let due = self.due[self.next];
        self.next += 1;
        self.sends.push(at);
        let keep = limits.per_chat.max.max(if self.channel {
            limits.per_group.max
        } else {
            0
        });
        if keep < usize::MAX && self.sends.len() > 2 * keep.max(1) {
            self.sends.drain(..self.sends.len() - keep);
        }
        due
    }
}

/// A schedule in whole milliseconds with the sandbox's windows: the critical-path greedy. At
/// every moment a bot has room in its window, it serves, among its chats whose own windows and
/// due times allow a message now, those that would finish last if left alone from now (the
/// longest remaining chain: channels with many posts first, then chats with the most posts
/// left), as many as its window has room for. Bots share nothing, so each is scheduled alone.
///
/// The schedule respects every window, so it is achievable: no sender needs more than its last
/// send; [`lower_bound`] says what no sender can beat. For every default shape the two agree
/// (see the tests), and the bench prints when they do not.
fn simulate(workload: &Workload) -> Ideal {
    let limits = Windows::sandbox();
    let mut sends: Vec<(u64, u64)> = Vec::with_capacity(workload.messages());
    for bot in &workload.bots {
        simulate_bot(bot, &limits, &mut sends);
    }
    let last = sends.iter().map(|&(_, at)| at).max().unwrap_or(0);
    let mut lags: Vec<Duration> = sends
        .iter()
        .map(|&(due, at)| Duration::from_millis(at - due))
        .collect();
    lags.sort();
    let mut times: Vec<Duration> = sends
        .iter()
        .map(|&(_, at)| Duration::from_millis(at))
        .collect();
    times.sort();
    Ideal {
        last_send: Duration::from_millis(last),
        lower_bound: lower_bound(workload),
        lags,
        sends: times,
    }
}

/// A ready chat's claim on the bot: when it would finish alone, messages left, a channel,
/// then the earlier chat; the largest goes first.
type Priority = (u64, usize, bool, Reverse<usize>);

/// Appends (due, sent at) of every message of `bot`.
fn simulate_bot(bot: &BotSpec, limits: &Windows, out: &mut Vec<(u64, u64)>) {
    let window = limits.bot(bot.paid_broadcast);
    let mut lanes: Vec<Lane> = bot
        .chats
        .iter()
        .filter(|chat| !chat.posts.is_empty())
        .map(|chat| {
            let mut due: Vec<u64> = chat.posts.iter().map(|d| d.as_millis() as u64).collect();
            due.sort_unstable();
            Lane {
                channel: chat.telegram_chat_id < 0,
                due,
                next: 0,
                sends: Vec::new(),
            }
        })
        .collect();
    // Chats waiting for their own windows or due times, by when they are ready.
    let mut waiting: BinaryHeap<Reverse<(u64, usize)>> = lanes
        .iter()
        .enumerate()
        .map(|(i, lane)| Reverse((lane.ready_at(limits), i)))
        .collect();
    // Chats ready to send, waiting for the bot.
    let mut ready: Vec<usize> = Vec::new();
    let mut bot_sends: VecDeque<u64> = VecDeque::new();
    let mut scratch = Vec::new();
    let mut now = 0u64;
    loop {
        if ready.is_empty() {
            match waiting.peek() {
                Some(&Reverse((at, _))) => now = now.max(at),
                None => break,
            }
        }
        let in_window = bot_sends
            .iter()
            .rev()
            .take_while(|&&at| now - at < window.period_ms)
            .count();
        let room = window.max.saturating_sub(in_window);
        if room == 0 {
            // The bot's window is full: it frees when its oldest send there leaves it.
            now = bot_sends[bot_sends.len() - window.max] + window.period_ms;
            continue;
        }
        while let Some(&Reverse((at, i))) = waiting.peek() {
            if at > now {
                break;
            }
            waiting.pop();
            ready.push(i);
        }
        if ready.is_empty() {
            continue;
        }
        // Longest remaining chain first; ties: most messages left, channels, then chat order.
        let mut keyed: Vec<(Priority, usize)> = ready
            .iter()
            .map(|&i| {
                let lane = &lanes[i];
                let key = (
                    lane.finish(now, limits, &mut scratch),
                    lane.due.len() - lane.next,
                    lane.channel,
                    Reverse(i),
                );
                (key, i)
            })
            .collect();
        let take = room.min(keyed.len());
        if take < keyed.len() {
            keyed.select_nth_unstable_by(take, |x, y| y.0.cmp(&x.0));
        }
        ready.clear();
        ready.extend(keyed[take..].iter().map(|&(_, i)| i));
        for &(_, i) in &keyed[..take] {
            let lane = &mut lanes[i];
            let due = lane.send(now, limits);
            out.push((due, now));
            if lane.next < lane.due.len() {
                waiting.push(Reverse((lane.ready_at(limits), i)));
            }
            if window.max < usize::MAX {
                bot_sends.push_back(now);
                if bot_sends.len() > window.max {
                    bot_sends.pop_front();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// The greedy schedule meets the lower bound, which is then the optimum.
    fn exact(w: &Workload) -> Duration {
        let ideal = w.ideal();
        assert_eq!(ideal.last_send, ideal.lower_bound, "{}", w.description);
        assert_eq!(ideal.lags.len(), w.messages());
        ideal.lower_bound
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
        assert_eq!(ideal.lower_bound, Duration::from_millis(9_950));
    }

    #[test]
    fn the_quick_shapes_are_exact_too() {
        exact(&Workload::uniform("p", String::new(), 1, 60, 2, false, 1));
        exact(&Workload::uniform("c", String::new(), 1, 10, 6, true, 1));
        exact(&Workload::uniform("b", String::new(), 4, 10, 2, false, 1));
        exact(&Workload::fanout("f", String::new(), 90, 1));
        exact(&Workload::mixed("m", String::new(), (4, 6), (60, 2), 1));
        exact(&Workload::paid("paid", String::new(), 2_000, 1_000, 1));
    }

    #[test]
    fn fanout_is_bound_by_the_bot() {
        // 1500 messages at 30/s: the last at 49 s, 50 s counted with its slot.
        let w = Workload::fanout("f", String::new(), 1_500, 1);
        assert_eq!(exact(&w), secs(49));
        let posts = w.posts();
        assert_eq!(posts.len(), 1);
        assert_eq!(posts[0].chats.len(), 1_500);
    }

    #[test]
    fn mixed_channels_go_first() {
        // 20 channels x 30 posts: 20 at 0..19 s, 10 at 60..69 s; the 1200 private messages
        // fit in what the channels leave of the bot's 30/s. A sender that serves the private
        // chats first (40 s of the bot) ends at 109 s instead.
        let w = Workload::mixed("m", String::new(), (20, 30), (600, 2), 1);
        assert_eq!(exact(&w), secs(69));
        assert_eq!(w.expected().len(), 1_800);
    }

    #[test]
    fn mixed_bot_and_channels_bind_together() {
        // 40 channels x 25 posts: after each of the first 5 posts of a channel come at least
        // 60 s of that channel's own chain (its 21st post waits a minute after its 1st...);
        // those 200 messages need 7 rounds of 30, the last at 6 s, so the end is 66 s, where
        // either limit alone gives 64 s (channel) or 33 s (bot).
        let w = Workload::mixed("m", String::new(), (40, 25), (0, 0), 1);
        assert_eq!(exact(&w), secs(66));
        // The same with 300 private chats x 3 posts on top: still 66 s.
        let w = Workload::mixed("m", String::new(), (40, 25), (300, 3), 1);
        assert_eq!(exact(&w), secs(66));
        // 35 channels x 30 posts: the first 10 posts of each have at least 60 s of chain
        // after them; 350 messages need 12 rounds, the last at 11 s: 71 s, where either limit
        // alone gives 69 s (channel) or 54 s (bot, with 300 private chats x 2 posts).
        let w = Workload::mixed("m", String::new(), (35, 30), (300, 2), 1);
        assert_eq!(exact(&w), secs(71));
    }

    #[test]
    fn mixed_shapes_meet_the_bound() {
        for channels in [5, 20, 35, 40] {
            for channel_posts in [5, 21, 25, 30, 45] {
                for privates in [0, 300, 1_200] {
                    for private_posts in [1, 3] {
                        let d =
                            format!("{channels} x {channel_posts} + {privates} x {private_posts}");
                        exact(&Workload::mixed(
                            "m",
                            d,
                            (channels, channel_posts),
                            (privates, private_posts),
                            1,
                        ));
                    }
                }
            }
        }
    }

    #[test]
    fn paid_broadcasts_go_at_a_thousand_per_second() {
        // 60,000 messages at 1000/s: the last at 59 s, 60 s with its slot.
        let w = Workload::paid("paid", String::new(), 60_000, 10_000, 1);
        assert_eq!(exact(&w), secs(59));
        let posts = w.posts();
        assert_eq!(posts.len(), 6);
        assert!(posts.iter().all(|p| p.chats.len() == 10_000));
        assert_eq!(
            w.bots[0].chats.len(),
            w.bots[0]
                .chats
                .iter()
                .map(|c| c.telegram_chat_id)
                .collect::<std::collections::HashSet<_>>()
                .len()
        );
    }

    #[test]
    fn expected_texts_are_unique() {
        let w = Workload::uniform("b", String::new(), 3, 4, 2, true, 7);
        let texts: std::collections::HashSet<String> =
            w.expected().into_iter().map(|e| e.text).collect();
        assert_eq!(texts.len(), 24);
        // A batched post has one text for all its chats, unique per chat.
        let w = Workload::paid("paid", String::new(), 25, 10, 7);
        let expected = w.expected();
        let pairs: std::collections::HashSet<(i64, &str)> = expected
            .iter()
            .map(|e| (e.telegram_chat_id, e.text.as_str()))
            .collect();
        assert_eq!(pairs.len(), 25);
        assert_eq!(w.posts().len(), 3);
    }
}
