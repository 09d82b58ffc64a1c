//! Correct under stress: decisions win at the moment of sending across several workers, bounded
//! automatic resends, no starvation behind a paused bot's backlog, hourly caps across workers,
//! and projection rebuilds while delivery runs.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use sandbox::{Fault, FaultRule};
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

const OTHER_BOT_TOKEN: &str = "654321:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

async fn connect_many(app: &TestApp, ws: &str, bot: &str, ids: &[i64]) -> Vec<String> {
    let mut chats = Vec::with_capacity(ids.len());
    for batch in ids.chunks(16) {
        let connected =
            futures::future::join_all(batch.iter().map(|id| app.connect_chat(ws, bot, *id))).await;
        chats.extend(connected);
    }
    chats
}

/// What [`drained`] waits for besides quiet.
#[derive(Clone, Copy, PartialEq)]
enum Until {
    /// Nothing on the wire (deliveries held for an hour by a cap stay pending).
    Quiet,
    /// Every delivery settled or cancelled: one that waits (for budget, a partition's new
    /// owner, a chat's window) is still to come, so the wait does not end early.
    AllSettled,
}

/// Waits until no delivery is on the wire (and, with [`Until::AllSettled`], none is pending in
/// the schedule) and the sandbox received nothing new for `quiet`.
async fn drained(app: &TestApp, until: Until, quiet: Duration, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = (usize::MAX, tokio::time::Instant::now());
    loop {
        let received = app.sandbox.messages(None).len();
        let (sending, _) = delivery::queue::stats::progress_counts(&app.herald.pool)
            .await
            .unwrap();
        let (_, open) = delivery::queue::stats::schedule_counts(&app.herald.pool)
            .await
            .unwrap();
        let waiting = until == Until::AllSettled && open > 0;
        if received != last.0 || sending > 0 || waiting {
            last = (received, tokio::time::Instant::now());
        } else if last.1.elapsed() >= quiet {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivery never drained"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opt_outs_and_cancels_win_over_three_workers_draining_one_bot() {
    let app = spawn_app().await;
    let workers = [app.delivery_worker(), app.delivery_worker()];
    let (ws, bot) = app.workspace_with_bot().await;
    let ids: Vec<i64> = (21001..=21060).collect();
    let chats = connect_many(&app, &ws, &bot, &ids).await;
    let targets: Vec<&str> = chats.iter().map(String::as_str).collect();
    // 4 posts x 60 chats = 240 messages: the bot's 30 per second makes sends wait for budget.
    let mut posts = Vec::new();
    for i in 0..4 {
        posts.push(
            app.plan(&ws, &targets, &format!("race {i}"), Duration::ZERO)
                .await,
        );
    }
    for post in &posts {
        app.approve(&ws, post).await;
    }

    // Opt-outs and cancels race the draining queue; each acknowledgement time is kept.
    let mut opted_out: HashMap<i64, DateTime<Utc>> = HashMap::new();
    let mut cancelled: HashMap<String, DateTime<Utc>> = HashMap::new();
    for (n, (chat, id)) in chats.iter().zip(&ids).enumerate().take(30) {
        tokio::time::sleep(Duration::from_millis(90)).await;
        app.post_ok(
            &format!("/v1/workspaces/{ws}/chats/{chat}/opt-out"),
            json!({"reason": "stop"}),
            StatusCode::OK,
        )
        .await;
        opted_out.insert(*id, Utc::now());
        if n == 10 || n == 20 {
            let post = &posts[if n == 10 { 2 } else { 3 }];
            app.post_ok(
                &format!("/v1/workspaces/{ws}/posts/{post}/cancel"),
                json!({}),
                StatusCode::OK,
            )
            .await;
            cancelled.insert(format!("race {}", if n == 10 { 2 } else { 3 }), Utc::now());
        }
    }
    drained(
        &app,
        Until::AllSettled,
        Duration::from_secs(3),
        Duration::from_secs(60),
    )
    .await;

    let received = app.sandbox.messages(None);
    let mut late = Vec::new();
    for message in &received {
        if let Some(acked) = opted_out.get(&message.chat_id)
            && message.received_at > *acked
        {
            late.push(format!(
                "{} to opted-out chat {}",
                message.text, message.chat_id
            ));
        }
        if let Some(acked) = cancelled.get(&message.text)
            && message.received_at > *acked
        {
            late.push(format!("{} after its cancel", message.text));
        }
    }
    assert!(late.is_empty(), "sent after the acknowledgement: {late:?}");
    let to_opted_out = received
        .iter()
        .filter(|m| opted_out.contains_key(&m.chat_id))
        .count();
    assert!(
        to_opted_out > 0 && to_opted_out < 30 * 4,
        "the opt-outs raced the queue ({to_opted_out} messages reached those chats)"
    );
    // Posts that were not cancelled reached every chat that never opted out, exactly once.
    for id in &ids[30..] {
        for text in ["race 0", "race 1"] {
            let reached = received
                .iter()
                .filter(|m| m.chat_id == *id && m.text == text)
                .count();
            assert_eq!(reached, 1, "{text} to chat {id}");
        }
    }
    assert_eq!(
        app.sandbox.stats().rate_limited,
        0,
        "no 429 from three workers"
    );
    for worker in workers {
        worker.stop().await;
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_resends_are_bounded_and_then_left_for_an_operator() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 22001).await;
    app.set_in_doubt_policy(&ws, "resend").await;
    // Telegram takes every message and every answer is lost.
    app.sandbox.inject(
        FaultRule::new(Fault::AcceptThenDrop)
            .for_chat(22001)
            .times(1000),
    );
    let post = app
        .plan(&ws, &[&chat], "answer always lost", Duration::ZERO)
        .await;
    app.approve(&ws, &post).await;
    let flagged: Value = app
        .eventually(
            "the delivery to stay in doubt",
            Duration::from_secs(20),
            || async {
                let body = app.post_state(&ws, &post).await;
                let d = &body["deliveries"][0];
                (d["status"] == "unknown" && d["auto_resends"] == 1).then_some(body)
            },
        )
        .await;
    // Give a runaway policy time to show itself.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        app.sandbox.messages(Some(22001)).len(),
        2,
        "the first send and one automatic resend, no more"
    );
    let now = app.post_state(&ws, &post).await;
    assert_eq!(
        now["deliveries"][0]["status"], "unknown",
        "left for an operator"
    );
    let attempts = now["deliveries"][0]["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts.len(), 2, "the history of attempts: {flagged}");
    assert!(
        attempts.iter().all(|a| a["outcome"] == "in_doubt"),
        "{attempts:?}"
    );

    // Replayed from the stream, the two outcomes of the one delivery and the resend between
    // them arrive in one batch: the read models that write outcomes together must still end as
    // they did event by event (the resend counted once, the schedule's generation the same).
    let read_models = ["calendar", "delivery_schedule", "audit_log"];
    let mut live = Vec::new();
    for table in read_models {
        live.push(rows(&app, table).await);
    }
    for name in ["calendar", "delivery_schedule", "audit"] {
        app.herald.rebuild(name, &|_, _| {}).await.unwrap();
    }
    for (table, live) in read_models.into_iter().zip(live) {
        assert_eq!(rows(&app, table).await, live, "{table} equals its rebuild");
    }
    app.cleanup().await;
}

/// Every row of `table`, as text, in a stable order.
async fn rows(app: &TestApp, table: &str) -> Vec<String> {
    sqlx::query_scalar(&format!("SELECT t::text FROM {table} t ORDER BY t::text"))
        .fetch_all(&app.herald.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_bot_with_thousands_of_due_chats_does_not_delay_another_bot() {
    let app = spawn_app().await;
    let (ws, paused_bot) = app.workspace_with_bot().await;
    let healthy_bot = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/bots"),
            json!({"name": "healthy", "token": OTHER_BOT_TOKEN}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Connected in one bulk import: 2,200 connects one by one would load the machine the
    // other tests of this binary share for as long as the test itself runs.
    let backlog = app.import_chats(&ws, &paused_bot, 300_001, 2_200).await;
    let healthy_chat = app.connect_chat(&ws, &healthy_bot, 23001).await;

    // The first bot's token is revoked: its first send pauses it, 2,199 deliveries stay due.
    app.sandbox.inject(
        FaultRule::new(Fault::Unauthorized)
            .for_bot(123456)
            .times(1000),
    );
    let targets: Vec<&str> = backlog.iter().map(String::as_str).collect();
    let big = app.plan(&ws, &targets, "backlog", Duration::ZERO).await;
    app.approve(&ws, &big).await;
    app.eventually("the bot to be paused", Duration::from_secs(20), || async {
        let (_, stats) = app
            .get(&format!(
                "/v1/workspaces/{ws}/bots/{paused_bot}/safety-stats"
            ))
            .await;
        (stats["circuit_breaker"] == "open").then_some(())
    })
    .await;

    let post = app
        .plan(&ws, &[&healthy_chat], "on time", Duration::from_secs(1))
        .await;
    let publish_at: DateTime<Utc> = app.post_state(&ws, &post).await["publish_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    let message = &app.sandbox.messages(Some(23001))[0];
    let lateness = message.received_at - publish_at;
    assert!(
        lateness < chrono::TimeDelta::milliseconds(1000),
        "the healthy bot's post went out {lateness} after its time"
    );
    let pending = app.post_state(&ws, &big).await["counts"]["pending"]
        .as_u64()
        .unwrap();
    assert!(
        pending >= 2100,
        "the paused bot's queue is kept ({pending} pending)"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hourly_caps_hold_across_workers() {
    let app = spawn_app().await;
    let workers = [app.delivery_worker(), app.delivery_worker()];
    let (ws, bot) = app.workspace_with_bot().await;
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/bots/{bot}/limits"),
            Some(json!({"hourly_cap": 6})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = (24001..=24012).collect();
    let chats = connect_many(&app, &ws, &bot, &ids).await;
    let capped_chat = &chats[0];
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/chats/{capped_chat}/limits"),
            Some(json!({"hourly_cap": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Four posts to the capped chat (its cap is 2), one to each of the other eleven chats.
    for i in 0..4 {
        let post = app
            .plan(&ws, &[capped_chat], &format!("capped {i}"), Duration::ZERO)
            .await;
        app.approve(&ws, &post).await;
    }
    for chat in &chats[1..] {
        let post = app.plan(&ws, &[chat], "spread", Duration::ZERO).await;
        app.approve(&ws, &post).await;
    }
    drained(
        &app,
        Until::Quiet,
        Duration::from_secs(4),
        Duration::from_secs(40),
    )
    .await;
    let received = app.sandbox.messages(None);
    assert_eq!(
        received.len(),
        6,
        "the bot's cap of 6 per hour, across three workers"
    );
    let to_capped = received.iter().filter(|m| m.chat_id == 24001).count();
    assert!(to_capped <= 2, "the chat's cap of 2 per hour: {to_capped}");
    for worker in workers {
        worker.stop().await;
    }
    app.cleanup().await;
}

async fn schedule_rows(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT row_to_json(s)::text FROM delivery_schedule s ORDER BY post_id, chat_id",
    )
    .fetch_all(&app.herald.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilding_every_projection_while_delivery_runs_delivers_each_post_once() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let ids: Vec<i64> = (25001..=25010).collect();
    let chats = connect_many(&app, &ws, &bot, &ids).await;
    let targets: Vec<&str> = chats.iter().map(String::as_str).collect();
    let mut posts = Vec::new();
    for i in 0..6 {
        let post = app
            .plan(
                &ws,
                &targets,
                &format!("rebuilt {i}"),
                Duration::from_millis(300 * i),
            )
            .await;
        app.approve(&ws, &post).await;
        posts.push(post);
    }
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        for name in ["delivery_schedule", "calendar", "audit"] {
            app.herald
                .rebuild(name, &|_, _| {})
                .await
                .unwrap_or_else(|e| panic!("rebuilding {name} in round {round}: {e:#}"));
        }
    }
    for post in &posts {
        let settled = app.settled(&ws, post, Duration::from_secs(60)).await;
        assert_eq!(settled["state"], "delivered", "{settled}");
    }
    drained(
        &app,
        Until::Quiet,
        Duration::from_secs(2),
        Duration::from_secs(30),
    )
    .await;
    let mut seen: HashMap<(i64, String), usize> = HashMap::new();
    for message in app.sandbox.messages(None) {
        *seen.entry((message.chat_id, message.text)).or_default() += 1;
    }
    assert_eq!(seen.len(), 60, "every post reached every chat");
    assert!(seen.values().all(|n| *n == 1), "nothing twice: {seen:?}");
    let live = schedule_rows(&app).await;
    app.herald
        .rebuild("delivery_schedule", &|_, _| {})
        .await
        .unwrap();
    assert_eq!(
        schedule_rows(&app).await,
        live,
        "the schedule equals a clean rebuild"
    );
    app.cleanup().await;
}
