//! A workload through the whole Herald pipeline (HTTP API -> PostgreSQL -> NATS -> delivery ->
//! sandbox Telegram enforcing Telegram's limits), built in-process by the system-test harness.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use platform::Shutdown;
use sandbox::SandboxConfig;
use serde_json::{Value, json};
use system_tests::{ADMIN_TOKEN, AppOptions, TestApp};

use crate::measure::{self, Cpu, RunResult};
use crate::workload::{BotSpec, Posting, Workload};

/// Knobs of a Herald run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fixed lead between the end of chat set-up and the due moment; None: estimated.
    pub lead: Option<Duration>,
    /// The dispatcher's tick; None: Herald's default (production) settings.
    pub tick: Option<Duration>,
    pub concurrency: usize,
    /// Rows per bulk import request (at most the API's 10,000).
    pub import_rows: usize,
}

pub async fn run(workload: &Workload, options: &Options) -> anyhow::Result<RunResult> {
    measure::reset_peak_rss();
    let running = Running::start(options).await?;
    let result = drive(&running.app, workload, options).await;
    running.finish().await;
    result
}

/// A whole Herald built in-process, its delivery running with the production settings.
pub struct Running {
    pub app: TestApp,
    shutdown: Shutdown,
    delivery: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(options: &Options) -> anyhow::Result<Self> {
        let app = system_tests::spawn_app_with(AppOptions {
            sandbox: SandboxConfig::default(),
            delivery: false,
            ..AppOptions::default()
        })
        .await;
        // Delivery with Herald's own settings (the harness's start_delivery uses test settings).
        let mut settings = app.herald.delivery_settings()?;
        if let Some(tick) = options.tick {
            settings.tick = tick;
        }
        let shutdown = Shutdown::new();
        let delivery = tokio::spawn({
            let (herald, shutdown) = (app.herald.clone(), shutdown.clone());
            async move { herald.delivery(settings, shutdown).await }
        });
        Ok(Self {
            app,
            shutdown,
            delivery,
        })
    }

    /// Stops delivery, then the rest, and drops the run's database.
    pub async fn finish(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.delivery).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => eprintln!("  delivery ended with an error: {error:#}"),
            Ok(Err(error)) => eprintln!("  delivery task failed: {error}"),
            Err(_) => eprintln!("  delivery did not stop within 30 s"),
        }
        self.app.cleanup().await;
    }
}

async fn drive(app: &TestApp, workload: &Workload, options: &Options) -> anyhow::Result<RunResult> {
    let setup_started = std::time::Instant::now();
    let client = load::Client::new(&app.base, ADMIN_TOKEN)?.with_approver(&app.reviewer_token);
    let explain = |what: &'static str| move |e| load::explain(e, &app.base, what);
    let ws = client
        .create_workspace(&format!("bench {}", workload.name))
        .await
        .map_err(explain("creating the workspace"))?;
    let mut rng = rand_like_seed(workload);
    let mut bots = Vec::new();
    for (i, bot) in workload.bots.iter().enumerate() {
        let token = load::fake_bot_token(bot.telegram_bot_id, &mut rng);
        let id = client
            .register_bot(&ws, &format!("bench bot {i}"), &token)
            .await
            .map_err(explain("registering a bot"))?;
        set_bot_limits(app, &ws, &id, bot).await?;
        bots.push(id);
    }
    // Chats, timed: their rate tells how long the posts will take to submit.
    let chats_started = std::time::Instant::now();
    let chats = if workload.import_chats {
        import_chats(app, &ws, &bots, workload, options).await?
    } else {
        connect_chats(&client, &ws, &bots, workload, options)
            .await
            .map_err(explain("connecting a chat"))?
    };
    let per_chat = chats_started.elapsed().as_secs_f64() / chats.len().max(1) as f64;
    eprintln!(
        "   {} chats connected in {:.1} s ({})",
        chats.len(),
        chats_started.elapsed().as_secs_f64(),
        if workload.import_chats {
            "bulk import"
        } else {
            "one request each"
        }
    );

    let posts = workload.posts();
    let expected = workload.expected();
    let lead = options.lead.unwrap_or_else(|| {
        STATISTICS_SETTLE
            + Duration::from_secs_f64(match workload.posting {
                // Plan + approve cost about three chat connections (measured: 2.5-3x); twice that
                // leaves the schedule projection time to catch up before the due moment.
                Posting::PerMessage => 3.0 + expected.len() as f64 * per_chat * 3.0 * 2.0,
                // Planning a post to many chats is cheap, and so is its schedule: on a debug build
                // the projection held every delivery 0.1 s after submission (0.6 of an imported
                // chat's time per delivery before its runners were batched). The run prints the
                // margin left.
                Posting::Batched { .. } => {
                    5.0 + posts.len() as f64 * 0.5 + expected.len() as f64 * per_chat * 0.5
                }
            })
    });
    let start: DateTime<Utc> = Utc::now() + chrono::TimeDelta::from_std(lead)?;
    let posts_started = std::time::Instant::now();

    let submitted: Vec<Result<(), load::CallError>> = futures::stream::iter(&posts)
        .map(|post| {
            let ids: Vec<&str> = post
                .chats
                .iter()
                .map(|&c| chats[&(post.bot, c)].as_str())
                .collect();
            let (client, ws) = (&client, &ws);
            async move {
                let publish_at = start + chrono::TimeDelta::from_std(post.due).unwrap_or_default();
                let id = client.plan_post(ws, &ids, &post.text, publish_at).await?;
                client.approve_post(ws, &id).await
            }
        })
        .buffered(options.concurrency)
        .collect()
        .await;
    if let Some(error) = submitted.into_iter().find_map(Result::err) {
        bail!("the API refused a post of the workload: {error}");
    }
    let submitted_at = Utc::now();
    let submission = setup_started.elapsed();
    eprintln!(
        "   {} posts to {} chats planned and approved in {:.1} s; due {:.1} s later (lead {:.1} s)",
        posts.len(),
        expected.len(),
        posts_started.elapsed().as_secs_f64(),
        (start - submitted_at).as_seconds_f64(),
        lead.as_secs_f64()
    );
    let mut notes = Vec::new();
    if submitted_at > start {
        notes.push(format!(
            "submission overran the due moment by {:.1} s (lead {:.1} s): lags include it; pass a larger --lead",
            (submitted_at - start).as_seconds_f64(),
            lead.as_secs_f64()
        ));
    }

    // Until the due moment: how long the schedule projection takes to hold every delivery
    // (what the lead must cover), then nothing.
    let scheduling = std::time::Instant::now();
    while Utc::now() < start {
        if queue_rows(app).await? >= expected.len() as i64 {
            eprintln!(
                "   every delivery in the schedule {:.1} s after submission, {:.1} s before the due moment",
                scheduling.elapsed().as_secs_f64(),
                (start - Utc::now()).as_seconds_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The due moment: from here on, CPU and time belong to delivery.
    sleep_until(start).await;
    let cpu_start = Cpu::now();
    let transactions_start = transactions(app).await;
    let scheduled = queue_rows(app).await?;
    if scheduled < expected.len() as i64 {
        notes.push(format!(
            "at the due moment only {scheduled} of {} deliveries were in the schedule (projection lag)",
            expected.len()
        ));
    }
    let ideal = workload.ideal();
    // Room for a sender far below the ideal rate (e.g. ~250 messages/s on two cores where paid
    // broadcasts allow 1000/s).
    let timeout = ideal.duration() * 4
        + Duration::from_secs(60)
        + Duration::from_millis(10) * u32::try_from(expected.len()).unwrap_or(u32::MAX);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let accepted = app.sandbox.stats().accepted as usize;
        if accepted >= expected.len() && unfinished(app).await? == 0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            notes.push(format!(
                "timed out after {:.0} s with {accepted} of {} accepted",
                timeout.as_secs_f64(),
                expected.len()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (cpu, machine_busy) = Cpu::now().since(&cpu_start);
    // The delivery's pollers keep using every pooled connection in turn, and a backend reports
    // its counters when a transaction ends, at most once a second: a few seconds cover the run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let transactions_end = transactions(app).await;

    let mut result = measure::score(&expected, &app.sandbox.messages(None), start);
    let stats = app.sandbox.stats();
    result.rate_limited = stats.rate_limited;
    let paid: usize = workload
        .bots
        .iter()
        .filter(|b| b.paid_broadcast)
        .map(|b| b.messages())
        .sum();
    if stats.paid_broadcasts != paid as u64 {
        notes.push(format!(
            "the sandbox accepted {} messages sent as paid broadcasts, the workload has {paid}",
            stats.paid_broadcasts
        ));
    }
    result.peak_rss_kib = measure::peak_rss_kib();
    result.cpu = cpu;
    result.machine_busy = machine_busy;
    result.failed = failed_outcomes(app).await?;
    result.claimed_at = claims(app, start).await?;
    result.submission = Some(submission);
    result.db_transactions = transactions_start
        .zip(transactions_end)
        .map(|(start, end)| end.saturating_sub(start));
    result.notes = notes;
    Ok(result)
}

/// Connects every chat with its own request, as a user of the API would one by one.
async fn connect_chats(
    client: &load::Client,
    ws: &str,
    bots: &[String],
    workload: &Workload,
    options: &Options,
) -> Result<HashMap<(usize, usize), String>, load::CallError> {
    let specs: Vec<(usize, usize, i64)> = workload
        .bots
        .iter()
        .enumerate()
        .flat_map(|(b, bot)| {
            bot.chats
                .iter()
                .enumerate()
                .map(move |(c, chat)| (b, c, chat.telegram_chat_id))
        })
        .collect();
    futures::stream::iter(specs)
        .map(|(b, c, telegram_id)| async move {
            let id = client
                .connect_chat(
                    ws,
                    &bots[b],
                    telegram_id,
                    &format!("bench chat {telegram_id}"),
                )
                .await?;
            Ok::<_, load::CallError>(((b, c), id))
        })
        .buffer_unordered(options.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The tag every imported contact gets, for the `commands` workload's segment.
pub const CONTACT_TAG: &str = "bench";

/// Bulk import requests in flight at once (each connects its rows 8 at a time).
const IMPORTS_IN_FLIGHT: usize = 2;

/// Connects the chats with `POST .../chats/import`, `options.import_rows` per request.
pub async fn import_chats(
    app: &TestApp,
    ws: &str,
    bots: &[String],
    workload: &Workload,
    options: &Options,
) -> anyhow::Result<HashMap<(usize, usize), String>> {
    let rows = options.import_rows.clamp(1, 10_000);
    let mut requests = Vec::new();
    for (b, bot) in workload.bots.iter().enumerate() {
        let indices: Vec<usize> = (0..bot.chats.len()).collect();
        for chunk in indices.chunks(rows) {
            requests.push((b, chunk.to_vec()));
        }
    }
    type Connected = Vec<((usize, usize), String)>;
    let answers: Vec<anyhow::Result<Connected>> = futures::stream::iter(requests)
        .map(|(b, chunk)| async move {
            let chats = &workload.bots[b].chats;
            let body = json!({
                "bot_id": bots[b],
                "chats": chunk.iter().map(|&c| {
                    let id = chats[c].telegram_chat_id;
                    let mut row = json!({ "telegram_chat_id": id, "title": format!("bench chat {id}") });
                    if id > 0 {
                        row["lawful_basis"] = "consent".into();
                        row["tags"] = json!([CONTACT_TAG]);
                    }
                    row
                }).collect::<Vec<_>>(),
            });
            let answer = api(
                app,
                false,
                &format!("/v1/workspaces/{ws}/chats/import"),
                &body,
            )
            .await
            .context("importing chats")?;
            let listed = answer["rows"].as_array().map_or(&[][..], Vec::as_slice);
            anyhow::ensure!(
                listed.len() == chunk.len(),
                "the import answered {} rows for {}",
                listed.len(),
                chunk.len()
            );
            chunk
                .iter()
                .zip(listed)
                .map(
                    |(&c, row)| match (row["status"].as_str(), row["chat_id"].as_str()) {
                        (Some("connected"), Some(id)) => Ok(((b, c), id.to_owned())),
                        _ => bail!("the import did not connect a chat: {row}"),
                    },
                )
                .collect()
        })
        .buffer_unordered(IMPORTS_IN_FLIGHT)
        .collect()
        .await;
    let mut chats = HashMap::new();
    for answer in answers {
        chats.extend(answer?);
    }
    Ok(chats)
}

/// Opts the bot in to paid broadcasts if the workload says so, and raises its hourly cap when
/// the workload sends it more than the default allows (`PUT .../bots/{id}/limits`).
async fn set_bot_limits(app: &TestApp, ws: &str, id: &str, bot: &BotSpec) -> anyhow::Result<()> {
    let messages = bot.messages();
    let raise = messages > domain::limits::DEFAULT_BOT_HOURLY_CAP as usize;
    if !bot.paid_broadcast && !raise {
        return Ok(());
    }
    let mut body = json!({});
    if bot.paid_broadcast {
        body["allow_paid_broadcast"] = true.into();
    }
    if raise {
        body["hourly_cap"] = messages.into();
    }
    let answer = api(
        app,
        true,
        &format!("/v1/workspaces/{ws}/bots/{id}/limits"),
        &body,
    )
    .await
    .with_context(|| {
        format!(
            "setting the bot's limits for {messages} messages in the hour (paid broadcasts: {})",
            bot.paid_broadcast
        )
    })?;
    let cap = answer["hourly_cap"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        answer["allow_paid_broadcast"] == bot.paid_broadcast && cap >= messages as u64,
        "the bot's limits are not what the workload needs: {answer}"
    );
    Ok(())
}

/// A call outside what `load::Client` covers: POST (or PUT) of a JSON body, the JSON answer.
async fn api(app: &TestApp, put: bool, path: &str, body: &Value) -> anyhow::Result<Value> {
    let url = format!("{}{path}", app.base);
    let request = if put {
        app.client.put(url)
    } else {
        app.client.post(url)
    };
    let response = request
        .bearer_auth(ADMIN_TOKEN)
        .json(body)
        .send()
        .await
        .with_context(|| format!("no answer to {path}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{path} answered {status}: {text}");
    serde_json::from_str(&text).with_context(|| format!("{path} answered {text:?}"))
}

async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

/// Rows in the schedule index (all states).
async fn queue_rows(app: &TestApp) -> anyhow::Result<i64> {
    Ok(delivery::queue::stats::schedule_counts(&app.herald.pool)
        .await
        .context("counting scheduled deliveries")?
        .0)
}

/// Rows whose outcome is not recorded yet.
async fn unfinished(app: &TestApp) -> anyhow::Result<i64> {
    Ok(delivery::queue::stats::schedule_counts(&app.herald.pool)
        .await
        .context("counting unfinished deliveries")?
        .1)
}

/// When each delivery's first request went out, from `start`.
async fn claims(app: &TestApp, start: DateTime<Utc>) -> anyhow::Result<Vec<Duration>> {
    let rows = delivery::queue::stats::claim_times(&app.herald.pool)
        .await
        .context("reading request times")?;
    Ok(rows
        .into_iter()
        .map(|at| (at - start).to_std().unwrap_or_default())
        .collect())
}

/// Quiet time added to the estimated lead, so that the set-up's transactions are counted before
/// the due moment (see [`transactions`]).
const STATISTICS_SETTLE: Duration = Duration::from_secs(11);

/// Transactions of Herald's database so far (`pg_stat_database`). PostgreSQL's counters are
/// lazy: a backend reports its own when a transaction ends, at most once a second, and 10 s after
/// it went idle. So the count at the due moment comes after [`STATISTICS_SETTLE`] of quiet (the
/// API's connections, idle since submission, reported the set-up inside the measured span
/// before: `steady` measured 31-37 transactions per message with a 5 s lead, 14 with 25 s, and
/// a statement log of the same run agreed with 14-15), and the count at the end 3 s after the
/// last message, while the delivery's pollers keep every pooled connection reporting. Not
/// counted: the transaction the relay's listening connection runs for each notification it
/// receives (one per commit that wrote events), which PostgreSQL reports only when that
/// connection closes.
async fn transactions(app: &TestApp) -> Option<u64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&app.herald.pool)
    .await
    .ok()
    .map(|n| n.max(0) as u64)
}

/// DeliveryFailed and DeliveryUnknown events recorded.
async fn failed_outcomes(app: &TestApp) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type IN ('DeliveryFailed', 'DeliveryUnknown')",
    )
    .fetch_one(&app.herald.pool)
    .await
    .context("counting failed deliveries")?;
    Ok(n as usize)
}

/// Tokens only need to be well-formed; a deterministic generator keeps runs comparable.
fn rand_like_seed(workload: &Workload) -> impl rand::Rng {
    use rand::SeedableRng;
    rand::rngs::StdRng::seed_from_u64(workload.bots.first().map_or(0, |b| b.telegram_bot_id))
}
