//! `herald-bench`: how close Herald's delivery comes to what Telegram's limits allow, beside
//! teloxide's `Throttle` adaptor as a minimal peer. Prints figures; asserts nothing.

mod commands;
mod herald_run;
mod measure;
mod throttle_run;
mod workload;

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

use measure::RunResult;
use workload::{Ideal, Workload};

const AFTER_HELP: &str = "\
Each workload runs twice: through a whole Herald built in-process (HTTP API, PostgreSQL event
store, NATS JetStream, projections, delivery with its production settings) against the sandbox
Telegram enforcing Telegram's limits (1 msg/s per chat, 20/min per group or channel, 30/s per
bot, 1000/s per bot for paid broadcasts), then straight from teloxide's Throttle adaptor
(Limits::default()) to a fresh sandbox. Throttle has no paid-broadcast mode: `paid` runs Herald
only.

`commands` is of another kind and not in the default --only set (at full size it imports
100000 chats and plans four posts to all of them): it times the post commands through the
HTTP API on one post to --command-chats chats (client-side wall clock per call). Post A, three
times: plan due in 1 h, approve, reschedule to 2 h ahead, cancel (medians). Post B: plan due
now, approve, then once GET .../posts/{id} reports a delivered chat: GET the post, a page of
1000 deliveries and one of 100 delivered, reschedule to 1 h ahead, cancel. Prints each HTTP
status (all should be 2xx; a 409 would be a conflict with the delivery) and any error body.
It has no rate or ideal and no Throttle baseline.

Figures: duration = due moment -> last message accepted by the emulator, plus the 1 s slot the
last message occupies; rate = messages / duration; ideal = the same for the best schedule the
limits allow (see docs/benchmarks.md); lag = accepted - due, per message; 429 = the emulator's
rate_limited count; peak RSS = VmHWM of this process during the run; CPU = this process's CPU
time from the due moment on; busy = the whole machine's CPU use in that span; DB
transactions/msg = PostgreSQL transactions in Herald's database from the due moment on, per
message; sustained (paid) = the median of the messages accepted per whole second; best minute (paid,
runs of a minute or more) = the most accepted within any 60 s, per second. --timeline
adds when messages were accepted (and claimed by Herald's dispatcher).

Needs PostgreSQL and NATS with JetStream, like the system tests:
  HERALD_TEST_DATABASE_URL  a maintenance database where databases may be created
                            [default: postgres://postgres@127.0.0.1:5432/postgres]
  HERALD_NATS_URL           [default: nats://127.0.0.1:4222]
(`scripts/test --setup-only` starts both and prints the variables.)

Examples:
  cargo run --release -p bench                           every workload, full size
  cargo run --release -p bench -- --quick                smoke run, a few minutes
  cargo run --release -p bench -- --runs 3               three runs and their medians
  cargo run --release -p bench -- --only channel --channel-posts 40 --no-throttle
  cargo run --release -p bench -- --only paid --paid-chats 20000
  cargo run --release -p bench -- --only commands        commands on a post to 100000 chats
  cargo run -p bench -- --only commands --quick --no-throttle   the same at 5000 chats";

/// Delivery benchmark: Herald vs Telegram's limits vs teloxide's Throttle, on the sandbox.
#[derive(Parser, Debug)]
#[command(name = "herald-bench", version, about, after_help = AFTER_HELP)]
struct Cli {
    /// Small sizes for a smoke run; explicit sizes still win
    #[arg(long)]
    quick: bool,
    /// Repeat every workload this many times and print the medians
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Workloads to run, comma-separated (`commands` only when named)
    #[arg(long, value_delimiter = ',', default_values_t = [Kind::Private, Kind::Channel, Kind::Bots, Kind::Steady, Kind::Fanout, Kind::Mixed, Kind::Paid])]
    only: Vec<Kind>,
    /// Skip the teloxide Throttle baseline
    #[arg(long)]
    no_throttle: bool,
    /// private: private chats of the one bot [default: 300; quick: 60]
    #[arg(long)]
    private_chats: Option<usize>,
    /// private: posts per chat [default: 3; quick: 2]
    #[arg(long)]
    private_posts: Option<usize>,
    /// channel: channels of the one bot [default: 30; quick: 10]
    #[arg(long)]
    channel_chats: Option<usize>,
    /// channel: posts per channel (more than 20 meets the per-minute limit) [default: 25; quick: 6]
    #[arg(long)]
    channel_posts: Option<usize>,
    /// bots: number of bots [default: 10; quick: 4]
    #[arg(long)]
    bots: Option<usize>,
    /// bots: private chats per bot [default: 40; quick: 10]
    #[arg(long)]
    bot_chats: Option<usize>,
    /// bots: posts per chat [default: 2; quick: 2]
    #[arg(long)]
    bot_posts: Option<usize>,
    /// steady: private chats of the one bot, one post each [default: 200; quick: 50]
    #[arg(long)]
    steady_chats: Option<usize>,
    /// steady: the posts' due times are spread evenly over this many seconds [default: 10; quick: 3]
    #[arg(long)]
    steady_seconds: Option<f64>,
    /// fanout: private chats the one post goes to [default: 1500; quick: 90]
    #[arg(long)]
    fanout_chats: Option<usize>,
    /// mixed: channels of the one bot [default: 20; quick: 4]
    #[arg(long)]
    mixed_channels: Option<usize>,
    /// mixed: posts per channel [default: 30; quick: 6]
    #[arg(long)]
    mixed_channel_posts: Option<usize>,
    /// mixed: private chats of the same bot [default: 600; quick: 60]
    #[arg(long)]
    mixed_private_chats: Option<usize>,
    /// mixed: posts per private chat [default: 2; quick: 2]
    #[arg(long)]
    mixed_private_posts: Option<usize>,
    /// paid: private chats of the one paid-broadcast bot, one post each [default: 60000, 60 s
    /// at 1000/s; quick: 2000]
    #[arg(long)]
    paid_chats: Option<usize>,
    /// paid: chats per post (the messages are planned as few large posts; a post takes at most
    /// 100000 chats) [default: 10000; quick: 1000]
    #[arg(long)]
    paid_chats_per_post: Option<usize>,
    /// commands: private chats of the one bot, every post goes to all of them (a post takes at
    /// most 100000) [default: 100000; quick: 5000]
    #[arg(long)]
    command_chats: Option<usize>,
    /// Rows per bulk chat import request, for fanout, paid and commands (the API takes at most
    /// 10000)
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    import_rows: u64,
    /// Lead from the end of set-up to the due moment (Herald runs); default: estimated from
    /// the measured API rate
    #[arg(long, value_parser = load::parse_duration)]
    lead: Option<Duration>,
    /// The delivery dispatcher's tick (default: Herald's production setting)
    #[arg(long, value_parser = load::parse_duration)]
    tick: Option<Duration>,
    /// Also print when the messages were accepted: counts per 100 ms from the due moment
    #[arg(long)]
    timeline: bool,
    /// API requests in flight while setting up and submitting
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// 1 bot, many private chats, a few posts each, all due at once (bound: 30/s per bot)
    Private,
    /// 1 bot, channels with more than 20 posts each, all due at once (bound: 20/min per channel)
    Channel,
    /// many bots with private chats, all due at once (bound: 30/s per bot, times the bots)
    Bots,
    /// 1 bot, one post per private chat, due times spread under capacity (bound: none)
    Steady,
    /// 1 bot, one post to many private chats, due at once (bound: 30/s per bot)
    Fanout,
    /// 1 bot, channels and private chats with several posts each, all due at once (bound: 30/s
    /// per bot together with 20/min per channel)
    Mixed,
    /// 1 bot with paid broadcasts, very many private chats, due at once (bound: 1000/s per bot)
    Paid,
    /// Not a delivery workload: how long plan, approve, reschedule and cancel take on a post to
    /// very many chats, idle and during its delivery (not in the default set)
    Commands,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            self.to_possible_value()
                .expect("no skipped values")
                .get_name(),
        )
    }
}

impl Cli {
    fn size(&self, value: Option<usize>, full: usize, quick: usize) -> usize {
        value
            .unwrap_or(if self.quick { quick } else { full })
            .max(1)
    }

    fn workload(&self, kind: Kind, run: u64) -> Workload {
        match kind {
            Kind::Private => {
                let (chats, posts) = (
                    self.size(self.private_chats, 300, 60),
                    self.size(self.private_posts, 3, 2),
                );
                let d = format!(
                    "1 bot, {chats} private chats x {posts} posts = {} messages, all due at once",
                    chats * posts
                );
                Workload::uniform("private", d, 1, chats, posts, false, run)
            }
            Kind::Channel => {
                let (chats, posts) = (
                    self.size(self.channel_chats, 30, 10),
                    self.size(self.channel_posts, 25, 6),
                );
                let d = format!(
                    "1 bot, {chats} channels x {posts} posts = {} messages, all due at once",
                    chats * posts
                );
                Workload::uniform("channel", d, 1, chats, posts, true, run)
            }
            Kind::Bots => {
                let (bots, chats, posts) = (
                    self.size(self.bots, 10, 4),
                    self.size(self.bot_chats, 40, 10),
                    self.size(self.bot_posts, 2, 2),
                );
                let d = format!(
                    "{bots} bots x {chats} private chats x {posts} posts = {} messages, all due at once",
                    bots * chats * posts
                );
                Workload::uniform("bots", d, bots, chats, posts, false, run)
            }
            Kind::Steady => {
                let chats = self.size(self.steady_chats, 200, 50);
                let seconds = self
                    .steady_seconds
                    .unwrap_or(if self.quick { 3.0 } else { 10.0 })
                    .max(0.0);
                let d = format!(
                    "1 bot, {chats} private chats x 1 post, due evenly over {seconds} s ({:.0} msg/s offered, under the 30/s limit)",
                    chats as f64 / seconds.max(0.001)
                );
                Workload::steady("steady", d, chats, Duration::from_secs_f64(seconds), run)
            }
            Kind::Fanout => {
                let chats = self.size(self.fanout_chats, 1_500, 90);
                let d = format!("1 bot, 1 post to {chats} private chats, due at once");
                Workload::fanout("fanout", d, chats, run)
            }
            Kind::Mixed => {
                let channels = (
                    self.size(self.mixed_channels, 20, 4),
                    self.size(self.mixed_channel_posts, 30, 6),
                );
                let privates = (
                    self.size(self.mixed_private_chats, 600, 60),
                    self.size(self.mixed_private_posts, 2, 2),
                );
                let d = format!(
                    "1 bot, {} channels x {} posts + {} private chats x {} posts = {} messages, one post each, all due at once",
                    channels.0,
                    channels.1,
                    privates.0,
                    privates.1,
                    channels.0 * channels.1 + privates.0 * privates.1
                );
                Workload::mixed("mixed", d, channels, privates, run)
            }
            Kind::Paid => {
                let chats = self.size(self.paid_chats, 60_000, 2_000);
                let per_post = self.size(self.paid_chats_per_post, 10_000, 1_000);
                let d = format!(
                    "1 bot with paid broadcasts, {chats} private chats x 1 post, planned as {} posts of up to {per_post} chats, all due at once",
                    chats.div_ceil(per_post)
                );
                Workload::paid("paid", d, chats, per_post, run)
            }
            Kind::Commands => {
                let chats = self.size(self.command_chats, 100_000, 5_000);
                let d = format!(
                    "1 bot, {chats} private chats (bulk import); post A x{}: plan to all due in 1 h, approve, reschedule, cancel; post B: plan due now, approve, reschedule and cancel during its delivery",
                    commands::POST_A_RUNS
                );
                // The chats of a fanout; its posts are not used.
                Workload::fanout("commands", d, chats, run)
            }
        }
    }
}

/// One run of one workload.
struct Outcome {
    herald: RunResult,
    throttle: Option<RunResult>,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli).await {
        eprintln!("herald-bench: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    preflight().await?;
    let options = herald_run::Options {
        lead: cli.lead,
        tick: cli.tick,
        concurrency: cli.concurrency.max(1),
        import_rows: cli.import_rows as usize,
    };
    println!(
        "herald-bench: {} run(s) of {}{}; {} cores; limits 1/s per chat, 20/min per channel, 30/s per bot (1000/s paid)",
        cli.runs,
        cli.only
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        if cli.quick { " (quick sizes)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut outcomes: Vec<(Kind, Vec<Outcome>)> = cli
        .only
        .iter()
        .filter(|k| **k != Kind::Commands)
        .map(|k| (*k, Vec::new()))
        .collect();
    let commands = cli.only.contains(&Kind::Commands);
    let mut command_reports = Vec::new();
    for run in 0..cli.runs {
        for (w, (kind, results)) in outcomes.iter_mut().enumerate() {
            let workload = cli.workload(*kind, u64::from(run) * 10 + w as u64 + 1);
            let ideal = workload.ideal();
            println!();
            println!(
                "== {} (run {}/{}): {}",
                kind,
                run + 1,
                cli.runs,
                workload.description
            );
            eprintln!("   Herald ...");
            let herald = herald_run::run(&workload, &options)
                .await
                .with_context(|| format!("the Herald run of {kind}"))?;
            let throttle = if cli.no_throttle || !workload.throttle_baseline {
                None
            } else {
                eprintln!("   Throttle ...");
                Some(
                    throttle_run::run(&workload)
                        .await
                        .with_context(|| format!("the Throttle run of {kind}"))?,
                )
            };
            let outcome = Outcome { herald, throttle };
            print_table(&ideal, &outcome, &workload);
            if cli.timeline {
                let bin = Duration::from_millis(100);
                println!("  accepted per 100 ms (from the due moment), Herald:");
                println!(
                    "    {}",
                    measure::timeline(&outcome.herald.accepted_at, bin)
                );
                println!("  claimed per 100 ms by Herald's dispatcher (claim transaction start):");
                println!("    {}", measure::timeline(&outcome.herald.claimed_at, bin));
                if let Some(t) = &outcome.throttle {
                    println!("  accepted per 100 ms (from the due moment), Throttle:");
                    println!("    {}", measure::timeline(&t.accepted_at, bin));
                }
            }
            results.push(outcome);
        }
        if commands {
            let workload = cli.workload(Kind::Commands, u64::from(run) * 10 + 9);
            println!();
            println!(
                "== commands (run {}/{}): {}",
                run + 1,
                cli.runs,
                workload.description
            );
            if !cli.no_throttle {
                eprintln!("   (no Throttle baseline for commands: it measures Herald's API)");
            }
            eprintln!("   Herald ...");
            let report = commands::run(&workload, &options)
                .await
                .context("the commands workload")?;
            commands::print(&report);
            command_reports.push(report);
        }
    }
    if cli.runs > 1 {
        for (kind, results) in &outcomes {
            let workload = cli.workload(*kind, 1);
            println!();
            println!(
                "== {kind}: medians of {} runs: {}",
                results.len(),
                workload.description
            );
            let herald: Vec<Figures> = results.iter().map(|o| figures(&o.herald)).collect();
            let throttle: Option<Vec<Figures>> = results
                .iter()
                .map(|o| o.throttle.as_ref().map(figures))
                .collect();
            print_medians(&workload.ideal(), &herald, throttle.as_deref(), &workload);
        }
    }
    if !outcomes.is_empty() {
        println!();
        print_summary(&cli, &outcomes);
    }
    if !command_reports.is_empty() {
        println!();
        commands::print_summary(&command_reports);
    }
    Ok(())
}

/// Fails early, with what to do, when PostgreSQL or NATS is not there.
async fn preflight() -> anyhow::Result<()> {
    let database = std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    use sqlx::Connection;
    sqlx::PgConnection::connect(&database).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot connect to PostgreSQL at HERALD_TEST_DATABASE_URL ({error}); start it with `scripts/test --setup-only` or point the variable at a server where databases may be created"
        )
    })?;
    let nats = std::env::var("HERALD_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let address = url::Url::parse(&nats)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port().unwrap_or(4222))))
        .with_context(|| {
            format!("HERALD_NATS_URL {nats:?} is not a URL such as nats://127.0.0.1:4222")
        })?;
    tokio::net::TcpStream::connect(&address).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot reach NATS at {address} ({error}); start it with `scripts/test --setup-only` or set HERALD_NATS_URL"
        )
    })?;
    Ok(())
}

/// The numbers of one run, flattened for tables and medians.
#[derive(Debug, Clone, Copy)]
struct Figures {
    delivered: f64,
    expected: f64,
    exactly_once: bool,
    duration: f64,
    rate: f64,
    rate_limited: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    peak_mib: f64,
    cpu: f64,
    busy: f64,
    failed: f64,
    submission: f64,
    db_per_message: f64,
    sustained: f64,
    best_minute: f64,
    best_second: f64,
}

fn figures(r: &RunResult) -> Figures {
    let s = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    Figures {
        delivered: r.delivered as f64,
        expected: r.expected as f64,
        exactly_once: r.exactly_once(),
        duration: r.duration.as_secs_f64(),
        rate: r.rate(),
        rate_limited: r.rate_limited as f64,
        p50: s(r.lag(50.0)),
        p95: s(r.lag(95.0)),
        p99: s(r.lag(99.0)),
        peak_mib: r.peak_rss_kib.map_or(f64::NAN, |k| k as f64 / 1024.0),
        cpu: r.cpu.as_secs_f64(),
        busy: r.machine_busy.map_or(f64::NAN, |b| b * 100.0),
        failed: r.failed as f64,
        submission: s(r.submission),
        db_per_message: r
            .db_transactions
            .map_or(f64::NAN, |n| n as f64 / r.expected.max(1) as f64),
        sustained: measure::sustained_rate(&r.accepted_at).unwrap_or(f64::NAN),
        best_minute: measure::best_minute_rate(&r.accepted_at).unwrap_or(f64::NAN),
        best_second: measure::best_second(&r.accepted_at).map_or(f64::NAN, |n| n as f64),
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_figures(all: &[Figures]) -> Figures {
    let m = |f: fn(&Figures) -> f64| median(all.iter().map(f));
    Figures {
        delivered: m(|f| f.delivered),
        expected: m(|f| f.expected),
        exactly_once: all.iter().all(|f| f.exactly_once),
        duration: m(|f| f.duration),
        rate: m(|f| f.rate),
        rate_limited: m(|f| f.rate_limited),
        p50: m(|f| f.p50),
        p95: m(|f| f.p95),
        p99: m(|f| f.p99),
        peak_mib: m(|f| f.peak_mib),
        cpu: m(|f| f.cpu),
        busy: m(|f| f.busy),
        failed: m(|f| f.failed),
        submission: m(|f| f.submission),
        db_per_message: m(|f| f.db_per_message),
        sustained: m(|f| f.sustained),
        best_minute: m(|f| f.best_minute),
        best_second: m(|f| f.best_second),
    }
}

fn ideal_lag(ideal: &Ideal, p: f64) -> f64 {
    load::percentile(&ideal.lags, p).map_or(f64::NAN, |d| d.as_secs_f64())
}

fn fmt(value: f64, decimals: usize, unit: &str) -> String {
    if value.is_nan() {
        "-".into()
    } else {
        format!("{value:.decimals$}{unit}")
    }
}

fn print_table(ideal: &Ideal, outcome: &Outcome, workload: &Workload) {
    let throttle = outcome.throttle.as_ref().map(|t| vec![figures(t)]);
    print_medians(
        ideal,
        &[figures(&outcome.herald)],
        throttle.as_deref(),
        workload,
    );
    for note in &outcome.herald.notes {
        println!("  note (Herald): {note}");
    }
    for note in outcome.throttle.iter().flat_map(|t| &t.notes) {
        println!("  note (Throttle): {note}");
    }
    if !workload.throttle_baseline {
        println!(
            "  note (Throttle): not run: teloxide's Throttle has no paid-broadcast mode (it would pace this bot at 30/s)"
        );
    }
}

/// The table of one workload: Herald, Throttle and the ideal side by side (medians when there
/// are several runs).
fn print_medians(
    ideal: &Ideal,
    herald: &[Figures],
    throttle: Option<&[Figures]>,
    workload: &Workload,
) {
    let h = median_figures(herald);
    let t = throttle.map(median_figures);
    let ideal_duration = ideal.duration().as_secs_f64();
    let ideal_rate = ideal.lags.len() as f64 / ideal_duration;
    if ideal.last_send != ideal.lower_bound {
        println!(
            "  (the best schedule found ends at {:.1} s, the lower bound is {:.1} s: 'ideal' uses the bound)",
            ideal.last_send.as_secs_f64(),
            ideal.lower_bound.as_secs_f64()
        );
    }
    let row = |name: &str, herald: String, throttle: Option<String>, ideal: String| {
        println!(
            "  {name:<22}{herald:>14}{:>14}{ideal:>14}",
            throttle.unwrap_or_else(|| "-".into())
        );
    };
    row("", "Herald".into(), Some("Throttle".into()), "ideal".into());
    row(
        "delivered",
        format!("{}/{}", h.delivered, h.expected),
        t.map(|t| format!("{}/{}", t.delivered, t.expected)),
        format!("{}", ideal.lags.len()),
    );
    let yes = |b: bool| if b { "yes" } else { "NO" }.to_owned();
    row(
        "exactly once",
        yes(h.exactly_once),
        t.map(|t| yes(t.exactly_once)),
        "yes".into(),
    );
    row(
        "duration",
        fmt(h.duration, 2, " s"),
        t.map(|t| fmt(t.duration, 2, " s")),
        fmt(ideal_duration, 2, " s"),
    );
    row(
        "rate",
        fmt(h.rate, 1, "/s"),
        t.map(|t| fmt(t.rate, 1, "/s")),
        fmt(ideal_rate, 1, "/s"),
    );
    row(
        "rate / ideal",
        fmt(h.rate / ideal_rate, 3, ""),
        t.map(|t| fmt(t.rate / ideal_rate, 3, "")),
        "1.000".into(),
    );
    if workload.report_sustained {
        let ideal_sustained = measure::sustained_rate(&ideal.sends).unwrap_or(f64::NAN);
        row(
            "msg/s sustained",
            fmt(h.sustained, 1, "/s"),
            t.map(|t| fmt(t.sustained, 1, "/s")),
            fmt(ideal_sustained, 1, "/s"),
        );
        row(
            "sustained / ideal",
            fmt(h.sustained / ideal_sustained, 3, ""),
            t.map(|t| fmt(t.sustained / ideal_sustained, 3, "")),
            "1.000".into(),
        );
        row(
            "msg/s, best minute",
            fmt(h.best_minute, 1, "/s"),
            t.map(|t| fmt(t.best_minute, 1, "/s")),
            fmt(
                measure::best_minute_rate(&ideal.sends).unwrap_or(f64::NAN),
                1,
                "/s",
            ),
        );
        row(
            "msg in best second",
            fmt(h.best_second, 0, ""),
            t.map(|t| fmt(t.best_second, 0, "")),
            fmt(
                measure::best_second(&ideal.sends).map_or(f64::NAN, |n| n as f64),
                0,
                "",
            ),
        );
    }
    row(
        "429 answers",
        fmt(h.rate_limited, 0, ""),
        t.map(|t| fmt(t.rate_limited, 0, "")),
        "0".into(),
    );
    for (name, p, hv, tv) in [
        ("lag p50", 50.0, h.p50, t.map(|t| t.p50)),
        ("lag p95", 95.0, h.p95, t.map(|t| t.p95)),
        ("lag p99", 99.0, h.p99, t.map(|t| t.p99)),
    ] {
        row(
            name,
            fmt(hv, 2, " s"),
            tv.map(|v| fmt(v, 2, " s")),
            fmt(ideal_lag(ideal, p), 2, " s"),
        );
    }
    row(
        "sender failures",
        fmt(h.failed, 0, ""),
        t.map(|t| fmt(t.failed, 0, "")),
        "0".into(),
    );
    row(
        "peak RSS (process)",
        fmt(h.peak_mib, 0, " MiB"),
        t.map(|t| fmt(t.peak_mib, 0, " MiB")),
        "".into(),
    );
    row(
        "CPU (process)",
        fmt(h.cpu, 1, " s"),
        t.map(|t| fmt(t.cpu, 1, " s")),
        "".into(),
    );
    row(
        "machine busy",
        fmt(h.busy, 0, "%"),
        t.map(|t| fmt(t.busy, 0, "%")),
        "".into(),
    );
    row(
        "DB transactions/msg",
        fmt(h.db_per_message, 1, ""),
        None,
        "".into(),
    );
    row(
        "set-up + submission",
        fmt(h.submission, 1, " s"),
        None,
        "".into(),
    );
    if let Some(t) = t {
        println!(
            "  Herald/Throttle: rate x{}, lag p50 x{}, p95 x{}, p99 x{}",
            fmt(h.rate / t.rate, 2, ""),
            fmt(h.p50 / t.p50, 2, ""),
            fmt(h.p95 / t.p95, 2, ""),
            fmt(h.p99 / t.p99, 2, ""),
        );
    }
}

/// One line per workload (medians over the runs), against the targets.
fn print_summary(cli: &Cli, outcomes: &[(Kind, Vec<Outcome>)]) {
    println!(
        "summary ({} run(s); medians; targets for Herald: rate/ideal >= 0.95, no 429s, p95 lag <= 1 s under capacity)",
        cli.runs
    );
    println!(
        "  {:<9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>7}",
        "workload",
        "H rate",
        "T rate",
        "H/ideal",
        "T/ideal",
        "H/T rate",
        "H p95",
        "T p95",
        "H/T p95",
        "H 429"
    );
    for (kind, results) in outcomes {
        let workload = cli.workload(*kind, 1);
        let ideal = workload.ideal();
        let ideal_rate = ideal.lags.len() as f64 / ideal.duration().as_secs_f64();
        let h = median_figures(
            &results
                .iter()
                .map(|o| figures(&o.herald))
                .collect::<Vec<_>>(),
        );
        let t: Option<Figures> = results
            .iter()
            .map(|o| o.throttle.as_ref().map(figures))
            .collect::<Option<Vec<_>>>()
            .map(|v| median_figures(&v));
        let tv = |f: fn(&Figures) -> f64, d: usize, u: &str| {
            t.as_ref().map_or("-".into(), |t| fmt(f(t), d, u))
        };
        println!(
            "  {:<9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>7}",
            kind.to_string(),
            fmt(h.rate, 1, "/s"),
            tv(|t| t.rate, 1, "/s"),
            fmt(h.rate / ideal_rate, 3, ""),
            t.as_ref()
                .map_or("-".into(), |t| fmt(t.rate / ideal_rate, 3, "")),
            t.as_ref()
                .map_or("-".into(), |t| fmt(h.rate / t.rate, 2, "")),
            fmt(h.p95, 2, " s"),
            tv(|t| t.p95, 2, " s"),
            t.as_ref().map_or("-".into(), |t| fmt(h.p95 / t.p95, 2, "")),
            fmt(h.rate_limited, 0, ""),
        );
        if !h.exactly_once || t.is_some_and(|t| !t.exactly_once) {
            println!(
                "  {:<9}NOT every message exactly once: see the tables above",
                ""
            );
        }
    }
}
