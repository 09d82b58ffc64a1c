//! Delivery as real `herald delivery` processes: killed with SIGKILL at random moments and
//! restarted, and three of them sharing the work. Everything else (API, relay, projector,
//! sandbox Telegram) runs in the test process against real PostgreSQL and NATS.

use std::collections::HashMap;
use std::process::Child;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use system_tests::{AppOptions, TestApp, spawn_app_with};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn spawn_delivery(app: &TestApp) -> Child {
    app.herald_process(HERALD, "delivery")
        .spawn()
        .expect("start herald delivery")
}

/// SIGKILL: no shutdown path runs, exactly like a crash.
fn kill_9(mut child: Child) {
    child.kill().expect("kill -9");
    child.wait().expect("reap");
}

/// Plans and approves `count` posts over `chats`, text "post <i>", due now; returns (id, chat).
async fn submit(app: &TestApp, ws: &str, chats: &[String], count: usize) -> Vec<(String, String)> {
    futures::stream::iter(0..count)
        .map(|i| {
            let chat = chats[i % chats.len()].clone();
            async move {
                let post = app
                    .plan(ws, &[&chat], &format!("post {i}"), Duration::ZERO)
                    .await;
                app.approve(ws, &post).await;
                (post, chat)
            }
        })
        .buffered(8)
        .collect()
        .await
}

/// Waits until no delivery is pending; returns each post's delivery status.
async fn all_settled(
    app: &TestApp,
    ws: &str,
    posts: &[(String, String)],
    timeout: Duration,
) -> HashMap<String, String> {
    app.eventually("every post to settle", timeout, || async {
        // An outcome event is recorded before its row is marked done.
        let (_, done) = delivery::queue::stats::progress_counts(&app.herald.pool)
            .await
            .unwrap();
        (done as usize == posts.len()).then_some(())
    })
    .await;
    let mut statuses = HashMap::new();
    for (post, _) in posts {
        let body: Value = app.post_state(ws, post).await;
        let status = body["deliveries"][0]["status"].as_str().unwrap().to_owned();
        statuses.insert(post.clone(), status);
    }
    statuses
}

/// Checks: nothing lost, nothing duplicated except deliveries flagged in doubt (at most once).
fn verify_exactly_once(
    app: &TestApp,
    posts: &[(String, String)],
    statuses: &HashMap<String, String>,
    telegram_ids: &HashMap<String, i64>,
) -> (usize, usize) {
    let received = app.sandbox.messages(None);
    let mut copies: HashMap<(i64, String), usize> = HashMap::new();
    for message in &received {
        *copies
            .entry((message.chat_id, message.text.clone()))
            .or_default() += 1;
    }
    let (mut delivered, mut unknown) = (0, 0);
    for (i, (post, chat)) in posts.iter().enumerate() {
        let key = (telegram_ids[chat], format!("post {i}"));
        let n = copies.get(&key).copied().unwrap_or(0);
        match statuses[post].as_str() {
            "delivered" => {
                delivered += 1;
                assert_eq!(
                    n, 1,
                    "post {i} is delivered and must be in its chat exactly once"
                );
            }
            "unknown" => {
                unknown += 1;
                assert!(
                    n <= 1,
                    "post {i} is in doubt and was never resent (seen {n} times)"
                );
            }
            other => panic!("post {i} ended {other}"),
        }
    }
    (delivered, unknown)
}

async fn setup(app: &TestApp, chats: usize) -> (String, Vec<String>, HashMap<String, i64>) {
    let (ws, bot) = app.workspace_with_bot().await;
    let mut ids = Vec::new();
    let mut telegram_ids = HashMap::new();
    for n in 0..chats {
        let telegram_id = 100_000 + n as i64;
        let chat = app.connect_chat(&ws, &bot, telegram_id).await;
        telegram_ids.insert(chat.clone(), telegram_id);
        ids.push(chat);
    }
    (ws, ids, telegram_ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_kill_9_of_delivery_loses_nothing_and_duplicates_nothing() {
    let app = spawn_app_with(AppOptions {
        delivery: false,
        ..Default::default()
    })
    .await;
    let (ws, chats, telegram_ids) = setup(&app, 120).await;
    let posts = submit(&app, &ws, &chats, 1_200).await;

    let mut kills = 0;
    for round in 0..8u64 {
        let worker = spawn_delivery(&app);
        tokio::time::sleep(Duration::from_millis(1_500 + 450 * (round % 4))).await;
        kill_9(worker);
        kills += 1;
    }
    let last = spawn_delivery(&app);
    let statuses = all_settled(&app, &ws, &posts, Duration::from_secs(180)).await;
    kill_9(last);

    let (delivered, unknown) = verify_exactly_once(&app, &posts, &statuses, &telegram_ids);
    eprintln!(
        "kill -9 x{kills}: {delivered} delivered exactly once, {unknown} flagged in doubt, 0 lost, 0 duplicated"
    );
    assert_eq!(delivered + unknown, posts.len());
    // Budget slots and chat windows count from each answer, so no delay of a request (a
    // restarted process, two busy cores) can make it arrive early in Telegram's window.
    let rate_limited = app.sandbox.stats().rate_limited;
    assert_eq!(
        rate_limited, 0,
        "pacing held across restarts ({rate_limited} answers 429)"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_delivery_processes_share_the_work_and_the_bot_budget_and_take_over_a_dead_one() {
    let app = spawn_app_with(AppOptions {
        delivery: false,
        ..Default::default()
    })
    .await;
    let (ws, chats, telegram_ids) = setup(&app, 90).await;
    let mut workers: Vec<Child> = (0..3).map(|_| spawn_delivery(&app)).collect();
    // Let the three settle their leases, then give them work.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let owners: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT owner) FROM delivery_partitions WHERE lease_until > now()",
    )
    .fetch_one(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(owners, 3, "each worker leases a share of the partitions");

    let posts = submit(&app, &ws, &chats, 450).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    kill_9(workers.remove(0));
    let statuses = all_settled(&app, &ws, &posts, Duration::from_secs(120)).await;

    let owners: Vec<String> = sqlx::query_scalar("SELECT DISTINCT owner FROM delivery_partitions WHERE lease_until > now() AND owner IS NOT NULL")
        .fetch_all(&app.herald.pool)
        .await
        .unwrap();
    let owned: i64 =
        sqlx::query_scalar("SELECT count(*) FROM delivery_partitions WHERE lease_until > now()")
            .fetch_one(&app.herald.pool)
            .await
            .unwrap();
    assert_eq!(
        (owners.len(), owned),
        (2, 32),
        "the survivors took over every partition"
    );
    for worker in workers {
        kill_9(worker);
    }

    let (delivered, unknown) = verify_exactly_once(&app, &posts, &statuses, &telegram_ids);
    assert_eq!(delivered + unknown, posts.len());
    // The bot's 30 per second held across the three processes (sliding window, as Telegram counts).
    let mut times: Vec<_> = app
        .sandbox
        .messages(None)
        .iter()
        .map(|m| m.received_at)
        .collect();
    times.sort();
    let busiest = times
        .iter()
        .enumerate()
        .map(|(i, t)| {
            times[i..]
                .iter()
                .take_while(|u| **u - *t < chrono::TimeDelta::seconds(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(busiest <= 30, "{busiest} messages within one second");
    // Three processes and this test share two cores: however long a worker is descheduled
    // between its slot and its request, the slot counts until a window after the answer.
    let rate_limited = app.sandbox.stats().rate_limited;
    assert_eq!(rate_limited, 0, "{rate_limited} answers 429");
    eprintln!(
        "3 workers (1 killed): {delivered} delivered, {unknown} in doubt, busiest second {busiest}"
    );
    app.cleanup().await;
}

#[test]
fn the_binary_explains_itself() {
    let output = std::process::Command::new(HERALD)
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success());
    for word in [
        "up",
        "delivery",
        "projections",
        "HERALD_DATABASE_URL",
        "sandbox",
    ] {
        assert!(help.contains(word), "--help mentions {word}");
    }
    let _ = json!({});
}
