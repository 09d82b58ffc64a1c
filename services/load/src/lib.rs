//! `herald load`: a load generator that drives a Herald through its public HTTP API only.
//!
//! It creates a workspace, bots with BotFather-shaped fake tokens and chats spread over them
//! (a share of channels, the rest private chats), plans and approves posts with bounded
//! concurrency (each post to one chat, round-robin, due a lead time after it is submitted),
//! then polls every post until its delivery settles, and sums up what happened.
//!
//! It is meant for the sandbox (`herald up` without a real Bot API): the fake bots and chats
//! exist only there. [`client`] is the API client, also used by the delivery benchmark.

pub mod client;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng;

pub use client::{CallError, Client, explain};

const AFTER_HELP: &str = "\
What it does:
  1. creates a workspace, --bots bots (fake BotFather-shaped tokens) and --chats chats spread
     over them (a --channel-share of channels with ids -100xxxxxxxxxx, the rest private chats);
  2. plans and approves --posts posts, each to one chat (round-robin), due --lead-time after
     it is submitted, at most --concurrency requests at a time;
  3. polls GET /v1/workspaces/{ws}/posts/{id} (the earliest-due unsettled posts first,
     8 x --concurrency per round) until every post has settled (no delivery pending) or
     --timeout after the last one was due, then prints a summary.
Only the public HTTP API is used. Meant for sandbox mode (`herald up` without
HERALD_TELEGRAM_API_URL): the fake bots and chats exist only in the sandbox Telegram, a real
Bot API refuses them. Lag percentiles are publish_at -> settled as seen by polling, so they
are upper bounds (they include the polling interval).

Examples:
  export HERALD_ADMIN_TOKEN=<the token `herald up` printed>
  herald load                                         1000 posts, 100 chats, 4 bots, 20% channels
  herald load --posts 100 --chats 10 --bots 1         a quick check
  herald load --posts 5000 --chats 500 --bots 10 --channel-share 0 --lead-time 30s
  herald load --url http://herald.internal:8080 --token $TOKEN --timeout 5m";

/// Generate load on a Herald through its public HTTP API (sandbox mode), then report
/// acceptance, delivery and lag.
#[derive(Clone, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Base URL of Herald's HTTP API
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The API's admin bearer token, as printed by `herald up`
    #[arg(long, env = "HERALD_ADMIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Posts to plan and approve (each to one chat, round-robin over the chats)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub posts: u32,
    /// Chats to connect, spread over the bots
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub chats: u32,
    /// Bots to register (at most --chats)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub bots: u32,
    /// Share of the chats that are channels (0 to 1); Telegram allows 20 messages per minute
    /// to each, private chats 1 per second
    #[arg(long, default_value_t = 0.2, value_parser = share)]
    pub channel_share: f64,
    /// How long after its submission each post is due (e.g. 5s, 500ms, 2m)
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub lead_time: Duration,
    /// API requests in flight at once (submission and polling)
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// How long to wait for deliveries after the last post is due (e.g. 120s, 5m)
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Args")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .field("posts", &self.posts)
            .field("chats", &self.chats)
            .field("bots", &self.bots)
            .field("channel_share", &self.channel_share)
            .field("lead_time", &self.lead_time)
            .field("concurrency", &self.concurrency)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Parses `500ms`, `5s`, `1.5s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 5s or 2m"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn share(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number between 0 and 1"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{value} is not between 0 and 1 (0.25 means a quarter of the chats are channels)"
        ))
    }
}

/// A BotFather-shaped token `<bot id>:<35 characters>`; the sandbox derives the bot id from it.
pub fn fake_bot_token(bot_id: u64, rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let secret: String = (0..35)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{bot_id}:{secret}")
}

/// The id of a channel or supergroup as Telegram writes it: `-100` then ten digits
/// (`n` is taken modulo 9 000 000 000 to stay in that shape).
pub fn channel_chat_id(n: u64) -> i64 {
    let ten_digits = 1_000_000_000 + (n % 9_000_000_000);
    -(1_000_000_000_000 + ten_digits as i64)
}

/// The `p`-th percentile (0..=100, nearest rank) of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// What a run did, as [`fmt::Display`] prints it.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub url: String,
    pub workspace_id: String,
    pub bots: usize,
    pub chats: usize,
    pub channels: usize,
    /// Posts asked for (`--posts`).
    pub requested: usize,
    /// Posts planned and approved.
    pub accepted: usize,
    /// Posts the API refused (at planning or approval), by error code.
    pub rejected: BTreeMap<String, usize>,
    pub delivered: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Accepted posts still pending when the wait ended.
    pub pending: usize,
    /// Plan and approve requests sent.
    pub commands: usize,
    /// From the first plan request to the last answer of the submission phase.
    pub submission: Duration,
    /// From the first post's publish_at to the last settlement seen.
    pub delivery: Duration,
    /// publish_at -> settled as seen by polling (upper bounds), sorted.
    pub lags: Vec<Duration>,
    /// Poll requests that got no usable answer.
    pub poll_errors: usize,
}

impl Summary {
    pub fn rejected_total(&self) -> usize {
        self.rejected.values().sum()
    }

    pub fn settled(&self) -> usize {
        self.delivered + self.failed + self.unknown
    }

    /// Plan and approve commands per second during submission.
    pub fn submission_rate(&self) -> f64 {
        per_second(self.commands, self.submission)
    }

    /// Settled posts per second, from the first publish_at to the last settlement.
    pub fn delivery_rate(&self) -> f64 {
        per_second(self.settled(), self.delivery)
    }

    pub fn lag(&self, p: f64) -> Option<Duration> {
        percentile(&self.lags, p)
    }

    /// Every requested post was accepted and delivered.
    pub fn all_delivered(&self) -> bool {
        self.accepted == self.requested && self.delivered == self.requested
    }
}

fn per_second(count: usize, duration: Duration) -> f64 {
    if duration.is_zero() {
        0.0
    } else {
        count as f64 / duration.as_secs_f64()
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "herald load: {} posts over {} chats ({} channels, {} private) and {} bots at {}",
            self.requested,
            self.chats,
            self.channels,
            self.chats - self.channels,
            self.bots,
            self.url
        )?;
        writeln!(f, "workspace {}", self.workspace_id)?;
        writeln!(f)?;
        writeln!(f, "submission")?;
        writeln!(
            f,
            "  commands   {} plan/approve requests in {:.2} s = {:.1} commands/s",
            self.commands,
            self.submission.as_secs_f64(),
            self.submission_rate()
        )?;
        writeln!(
            f,
            "  accepted   {} posts planned and approved",
            self.accepted
        )?;
        write!(f, "  rejected   {}", self.rejected_total())?;
        if !self.rejected.is_empty() {
            let codes: Vec<String> = self
                .rejected
                .iter()
                .map(|(code, n)| format!("{code}: {n}"))
                .collect();
            write!(f, " ({})", codes.join(", "))?;
        }
        writeln!(f)?;
        writeln!(f, "delivery (per post, as seen by polling its status)")?;
        writeln!(f, "  delivered  {}", self.delivered)?;
        writeln!(f, "  failed     {}", self.failed)?;
        writeln!(f, "  unknown    {}", self.unknown)?;
        writeln!(f, "  pending    {} when the wait ended", self.pending)?;
        writeln!(
            f,
            "  duration   {:.2} s from the first publish_at to the last settlement = {:.1} posts/s",
            self.delivery.as_secs_f64(),
            self.delivery_rate()
        )?;
        writeln!(
            f,
            "  lag        p50 {}  p95 {}  p99 {}",
            secs(self.lag(50.0)),
            secs(self.lag(95.0)),
            secs(self.lag(99.0))
        )?;
        write!(
            f,
            "             (publish_at -> settled as seen by polling: an upper bound, it includes the polling interval)"
        )?;
        if self.poll_errors > 0 {
            write!(
                f,
                "\n  {} status polls got no usable answer",
                self.poll_errors
            )?;
        }
        Ok(())
    }
}

/// One accepted post being watched.
struct Watched {
    id: String,
    publish_at: DateTime<Utc>,
}

/// Runs the load described by `args` and returns what happened. Fails only when the set-up
/// (health check, workspace, bots, chats) fails; refused posts are counted, not fatal.
pub async fn run(args: Args) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        args.bots <= args.chats,
        "--bots {} is more than --chats {}: every bot needs at least one chat",
        args.bots,
        args.chats
    );
    let mut client = Client::new(&args.url, &args.token)?;
    let base = client.base().to_owned();
    let concurrency = args.concurrency as usize;
    client
        .health()
        .await
        .map_err(|e| explain(e, &base, "checking GET /healthz"))?;

    let mut rng = rand::rng();
    let run_id: u32 = rng.random_range(100_000..1_000_000);
    let ws = client
        .create_workspace(&format!("herald load {run_id}"))
        .await
        .map_err(|e| explain(e, &base, "creating the workspace"))?;
    client
        .add_approver(&ws, &format!("load-approver-{run_id}"))
        .await
        .map_err(|e| explain(e, &base, "creating the approver (four eyes)"))?;

    // Bots, then chats spread over them (ids random per run, so runs never share a chat).
    let bot_base: u64 = rng.random_range(100_000_000..8_000_000_000);
    let tokens: Vec<String> = (0..u64::from(args.bots))
        .map(|i| fake_bot_token(bot_base + i, &mut rng))
        .collect();
    let bots: Vec<String> = futures::stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| {
            let (client, ws) = (&client, &ws);
            async move {
                client
                    .register_bot(ws, &format!("load bot {i}"), token)
                    .await
            }
        })
        .buffered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| explain(e, &base, "registering a bot"))?;

    let chats_n = args.chats as usize;
    let channels_n = (args.chats as f64 * args.channel_share).round() as usize;
    let private_base: i64 = rng.random_range(1_000_000..1_000_000_000);
    let channel_base: u64 = rng.random_range(0..8_000_000_000);
    let chat_specs: Vec<(usize, i64)> = (0..chats_n)
        .map(|i| {
            // Bresenham spread: channels are interleaved evenly with private chats.
            let channel = (i + 1) * channels_n / chats_n > i * channels_n / chats_n;
            let id = if channel {
                channel_chat_id(channel_base + i as u64)
            } else {
                private_base + i as i64
            };
            (i % bots.len(), id)
        })
        .collect();
    let chats: Vec<String> = futures::stream::iter(chat_specs.iter().enumerate())
        .map(|(i, &(bot, telegram_id))| {
            let (client, ws, bots) = (&client, &ws, &bots);
            async move {
                client
                    .connect_chat(ws, &bots[bot], telegram_id, &format!("load chat {i}"))
                    .await
            }
        })
        .buffered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| explain(e, &base, "connecting a chat"))?;

    let mut summary = Summary {
        url: base.clone(),
        workspace_id: ws.clone(),
        bots: bots.len(),
        chats: chats.len(),
        channels: channels_n,
        requested: args.posts as usize,
        ..Summary::default()
    };

    // Submission: plan + approve each post, at most `concurrency` posts in flight.
    let bar = progress(args.posts.into(), "submitting");
    let started = std::time::Instant::now();
    let lead = chrono::TimeDelta::from_std(args.lead_time)?;
    let results: Vec<(u32, Result<Watched, CallError>)> = futures::stream::iter(0..args.posts)
        .map(|j| {
            let (client, ws, chats, bar) = (&client, &ws, &chats, &bar);
            async move {
                let chat = chats[j as usize % chats.len()].as_str();
                let publish_at = Utc::now() + lead;
                let text = format!("herald load {run_id} post {j}");
                let planned = client.plan_post(ws, &[chat], &text, publish_at).await;
                let (commands, result) = match planned {
                    Ok(id) => (
                        2,
                        client
                            .approve_post(ws, &id)
                            .await
                            .map(|()| Watched { id, publish_at }),
                    ),
                    Err(error) => (1, Err(error)),
                };
                bar.inc(1);
                (commands, result)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    summary.submission = started.elapsed();
    bar.finish_and_clear();

    let mut watched = Vec::new();
    for (commands, result) in results {
        summary.commands += commands as usize;
        match result {
            Ok(post) => watched.push(post),
            Err(error) => *summary.rejected.entry(error.code()).or_default() += 1,
        }
    }
    summary.accepted = watched.len();
    if watched.is_empty() {
        return Ok(summary);
    }

    watch(&client, &ws, watched, &args, &mut summary).await;
    Ok(summary)
}

/// Polls every accepted post until it settles or the timeout passes.
async fn watch(
    client: &Client,
    ws: &str,
    mut unsettled: Vec<Watched>,
    args: &Args,
    summary: &mut Summary,
) {
    unsettled.sort_by_key(|p| p.publish_at);
    let first_due = unsettled[0].publish_at;
    let last_due = unsettled[unsettled.len() - 1].publish_at;
    let deadline = last_due + chrono::TimeDelta::from_std(args.timeout).unwrap_or_default();
    let bar = progress(unsettled.len() as u64, "delivering");
    let mut last_settled = first_due;
    let window = (args.concurrency as usize * 8).max(64);
    loop {
        let now = Utc::now();
        // The earliest-due unsettled posts only: delivery goes roughly in due order, so a short
        // round (a fresh observation) beats polling everything (a heavy, slow round).
        let due: Vec<&Watched> = unsettled
            .iter()
            .filter(|p| p.publish_at <= now)
            .take(window)
            .collect();
        let answers: Vec<(String, Result<serde_json::Value, CallError>, DateTime<Utc>)> =
            futures::stream::iter(due)
                .map(|post| async move {
                    let answer = client.post(ws, &post.id).await;
                    (post.id.clone(), answer, Utc::now())
                })
                .buffer_unordered(args.concurrency as usize)
                .collect()
                .await;
        let mut settled = std::collections::HashMap::new();
        for (id, answer, at) in answers {
            match answer {
                Ok(post) => {
                    let deliveries = post["deliveries"].as_array().cloned().unwrap_or_default();
                    let pending = deliveries.iter().any(|d| d["status"] == "pending");
                    if !pending {
                        settled.insert(id, (deliveries, at));
                    }
                }
                Err(_) => summary.poll_errors += 1,
            }
        }
        unsettled.retain(|post| {
            let Some((deliveries, at)) = settled.remove(&post.id) else {
                return true;
            };
            let status = deliveries
                .first()
                .and_then(|d| d["status"].as_str())
                .unwrap_or("unknown");
            match status {
                "delivered" => summary.delivered += 1,
                "failed" => summary.failed += 1,
                _ => summary.unknown += 1,
            }
            summary
                .lags
                .push((at - post.publish_at).to_std().unwrap_or_default());
            last_settled = last_settled.max(at);
            bar.inc(1);
            false
        });
        if unsettled.is_empty() || Utc::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bar.finish_and_clear();
    summary.pending = unsettled.len();
    summary.delivery = (last_settled - first_due).to_std().unwrap_or_default();
    summary.lags.sort();
}

fn progress(len: u64, what: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{msg:11} [{bar:40}] {pos}/{len} posts  {per_sec}  {elapsed}")
            .expect("a valid progress template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn shapes_of_ids_and_tokens() {
        let id = channel_chat_id(42).to_string();
        assert!(id.starts_with("-100") && id.len() == 14, "{id}");
        let id = channel_chat_id(u64::MAX).to_string();
        assert!(id.starts_with("-100") && id.len() == 14, "{id}");
        let token = fake_bot_token(123456, &mut rand::rng());
        let (bot, secret) = token.split_once(':').unwrap();
        assert_eq!(bot, "123456");
        assert_eq!(secret.len(), 35);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&values, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&values, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
