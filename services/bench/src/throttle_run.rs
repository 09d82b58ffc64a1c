//! The peer baseline: the same messages sent straight to a fresh sandbox by teloxide's
//! `Throttle` adaptor with its default limits. No API, no persistence, no events: the least a
//! bot needs to stay within Telegram's limits.

use std::time::Duration;

use chrono::Utc;
use platform::Shutdown;
use sandbox::{Sandbox, SandboxConfig};
use teloxide::adaptors::Throttle;
use teloxide::adaptors::throttle::Limits;
use teloxide::requests::Requester;
use teloxide::types::ChatId;

use crate::measure::{self, Cpu, RunResult};
use crate::workload::{Expected, Workload};

pub async fn run(workload: &Workload) -> anyhow::Result<RunResult> {
    measure::reset_peak_rss();
    let sandbox = Sandbox::new(SandboxConfig::default());
    let listener = platform::net::listen("127.0.0.1:0".parse()?)?;
    let api_url = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
    let stop = Shutdown::new();
    let server = tokio::spawn(sandbox.clone().serve(listener, {
        let stop = stop.clone();
        async move { stop.cancelled().await }
    }));

    let mut rng = {
        use rand::SeedableRng;
        rand::rngs::StdRng::seed_from_u64(7)
    };
    let bots: Vec<Throttle<teloxide::Bot>> = workload
        .bots
        .iter()
        .map(|bot| {
            let token = load::fake_bot_token(bot.telegram_bot_id, &mut rng);
            let bot = teloxide::Bot::new(token).set_api_url(api_url.clone());
            Throttle::new_spawn(bot, Limits::default())
        })
        .collect();

    // Each chat's messages in order, one at a time (as Herald sends them); all chats at once.
    let expected = workload.expected();
    let mut per_chat: Vec<Vec<Expected>> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for e in &expected {
        let slot = *index.entry((e.bot, e.chat)).or_insert_with(|| {
            per_chat.push(Vec::new());
            per_chat.len() - 1
        });
        per_chat[slot].push(e.clone());
    }
    // A short lead so that every task is waiting before the due moment.
    let start = Utc::now() + chrono::TimeDelta::milliseconds(300);
    let mut tasks = tokio::task::JoinSet::new();
    for messages in per_chat {
        let bot = bots[messages[0].bot].clone();
        tasks.spawn(async move {
            let mut failed = 0;
            for e in messages {
                let due = start + chrono::TimeDelta::from_std(e.due).unwrap_or_default();
                if let Ok(wait) = (due - Utc::now()).to_std() {
                    tokio::time::sleep(wait).await;
                }
                if bot
                    .send_message(ChatId(e.telegram_chat_id), e.text)
                    .await
                    .is_err()
                {
                    failed += 1;
                }
            }
            failed
        });
    }
    if let Ok(wait) = (start - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let cpu_start = Cpu::now();
    // Throttle paces channels at 10/min, half the ideal: allow for that and then some.
    let timeout = workload.ideal().duration() * 4 + Duration::from_secs(60);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut notes = Vec::new();
    let mut failed = 0;
    loop {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(n))) => failed += n,
            Ok(Some(Err(error))) => notes.push(format!("a send task failed: {error}")),
            Ok(None) => break,
            Err(_) => {
                notes.push(format!("timed out after {:.0} s", timeout.as_secs_f64()));
                tasks.abort_all();
                break;
            }
        }
    }
    let (cpu, machine_busy) = Cpu::now().since(&cpu_start);

    let mut result = measure::score(&expected, &sandbox.messages(None), start);
    result.rate_limited = sandbox.stats().rate_limited;
    result.peak_rss_kib = measure::peak_rss_kib();
    result.cpu = cpu;
    result.machine_busy = machine_busy;
    result.failed = failed;
    result.notes = notes;
    drop(bots);
    stop.cancel();
    let _ = server.await;
    Ok(result)
}
