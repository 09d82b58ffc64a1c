//! A workload through the whole Herald pipeline (HTTP API -> PostgreSQL -> NATS -> delivery ->
//! sandbox Telegram enforcing Telegram's limits), built in-process by the system-test harness.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use platform::Shutdown;
use sandbox::SandboxConfig;
use system_tests::{ADMIN_TOKEN, AppOptions, TestApp};

use crate::measure::{self, Cpu, RunResult};
use crate::workload::Workload;

/// Knobs of a Herald run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fixed lead between the end of chat set-up and the due moment; None: estimated.
    pub lead: Option<Duration>,
    /// The dispatcher's tick; None: Herald's default (production) settings.
    pub tick: Option<Duration>,
    pub concurrency: usize,
}

pub async fn run(workload: &Workload, options: &Options) -> anyhow::Result<RunResult> {
    measure::reset_peak_rss();
    let app = system_tests::spawn_app_with(AppOptions {
        sandbox: SandboxConfig::default(),
        delivery: false,
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
    let result = drive(&app, workload, options).await;
    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), delivery).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => eprintln!("  delivery ended with an error: {error:#}"),
        Ok(Err(error)) => eprintln!("  delivery task failed: {error}"),
        Err(_) => eprintln!("  delivery did not stop within 30 s"),
    }
    app.cleanup().await;
    result
}

async fn drive(app: &TestApp, workload: &Workload, options: &Options) -> anyhow::Result<RunResult> {
    let setup_started = std::time::Instant::now();
    let client = load::Client::new(&app.base, ADMIN_TOKEN)?;
    let explain = |what: &'static str| move |e| load::explain(e, &app.base, what);
    let ws = client
        .create_workspace(&format!("bench {}", workload.name))
        .await
        .map_err(explain("creating the workspace"))?;
    let mut rng = rand_like_seed(workload);
    let mut bots = Vec::new();
    for (i, bot) in workload.bots.iter().enumerate() {
        let token = load::fake_bot_token(bot.telegram_bot_id, &mut rng);
        bots.push(
            client
                .register_bot(&ws, &format!("bench bot {i}"), &token)
                .await
                .map_err(explain("registering a bot"))?,
        );
    }
    // Chats, timed: their rate tells how long the posts will take to submit.
    let chats_started = std::time::Instant::now();
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
    let connected: Vec<((usize, usize), String)> = futures::stream::iter(specs)
        .map(|(b, c, telegram_id)| {
            let (client, ws, bots) = (&client, &ws, &bots);
            async move {
                let id = client
                    .connect_chat(
                        ws,
                        &bots[b],
                        telegram_id,
                        &format!("bench chat {telegram_id}"),
                    )
                    .await?;
                Ok::<_, load::CallError>(((b, c), id))
            }
        })
        .buffer_unordered(options.concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(explain("connecting a chat"))?;
    let chats: std::collections::HashMap<(usize, usize), String> = connected.into_iter().collect();
    let per_chat = chats_started.elapsed().as_secs_f64() / chats.len().max(1) as f64;

    // Plan + approve cost about three chat connections (measured: 2.5-3x); twice that leaves
    // the schedule projection time to catch up before the due moment.
    let expected = workload.expected();
    let lead = options.lead.unwrap_or_else(|| {
        Duration::from_secs_f64(3.0 + expected.len() as f64 * per_chat * 3.0 * 2.0)
    });
    let start: DateTime<Utc> = Utc::now() + chrono::TimeDelta::from_std(lead)?;

    let submitted: Vec<Result<(), load::CallError>> = futures::stream::iter(&expected)
        .map(|e| {
            let (client, ws, chat) = (&client, &ws, &chats[&(e.bot, e.chat)]);
            async move {
                let publish_at = start + chrono::TimeDelta::from_std(e.due).unwrap_or_default();
                let post = client.plan_post(ws, &[chat], &e.text, publish_at).await?;
                client.approve_post(ws, &post).await
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
    let mut notes = Vec::new();
    if submitted_at > start {
        notes.push(format!(
            "submission overran the due moment by {:.1} s (lead {:.1} s): lags include it; pass a larger --lead",
            (submitted_at - start).as_seconds_f64(),
            lead.as_secs_f64()
        ));
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
    let timeout = ideal.duration() * 4 + Duration::from_secs(60);
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
    // Backends report their counters when idle, at most every second or so.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let transactions_end = transactions(app).await;

    let mut result = measure::score(&expected, &app.sandbox.messages(None), start);
    result.rate_limited = app.sandbox.stats().rate_limited;
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

/// Transactions of Herald's database so far (PostgreSQL's cumulative statistics).
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
