//! A post to many chats: its chats listed over several events, each delivery an aggregate of
//! its own, and a cancel or a reschedule during delivery accepted at once, never a conflict,
//! honoured by every send that starts after it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

/// A page of the post's deliveries (`query` without its `?`).
async fn page(app: &TestApp, ws: &str, post: &str, query: &str) -> Value {
    let (status, body) = app
        .get(&format!(
            "/v1/workspaces/{ws}/posts/{post}/deliveries?{query}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The chats of a page, in its order (only those in `status`, when given).
fn chats_of<'a>(page: &'a Value, status: Option<&str>) -> Vec<&'a str> {
    page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| status.is_none_or(|s| d["status"] == s))
        .map(|d| d["chat_id"].as_str().unwrap())
        .collect()
}

async fn counts(app: &TestApp, ws: &str, post: &str) -> Value {
    app.post_state(ws, post).await["counts"].clone()
}

/// Waits until at least `n` deliveries of the post are delivered.
async fn delivered_at_least(app: &TestApp, ws: &str, post: &str, n: u64) {
    app.eventually("deliveries to start", Duration::from_secs(30), || async {
        let delivered = counts(app, ws, post).await["delivered"].as_u64().unwrap();
        (delivered >= n).then_some(())
    })
    .await
}

/// Requests the dispatcher sent for the post after `after` (the attempt log: when each request
/// left).
async fn requests_after(app: &TestApp, post: &str, after: DateTime<Utc>) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM delivery_attempts WHERE post_id = $1::uuid AND at > $2",
    )
    .bind(post)
    .bind(after)
    .fetch_one(&app.herald.pool)
    .await
    .unwrap()
}

/// Every message of the post the sandbox received, once per chat.
fn assert_each_chat_once(app: &TestApp, text: &str, delivered: u64) {
    let mut chats: Vec<i64> = app
        .sandbox
        .messages(None)
        .into_iter()
        .filter(|m| m.text == text)
        .map(|m| m.chat_id)
        .collect();
    let received = chats.len();
    chats.sort_unstable();
    chats.dedup();
    assert_eq!(received, chats.len(), "no chat received the post twice");
    assert_eq!(
        received as u64, delivered,
        "what was received is what is recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_a_broadcast_is_accepted_at_once_and_stops_the_rest() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chats = app.import_chats(&ws, &bot, 40_001, 1_200).await;
    let targets: Vec<&str> = chats.iter().map(String::as_str).collect();
    let text = "to all 1200";
    let post = app.plan(&ws, &targets, text, Duration::ZERO).await;

    // Listed over two events (1,000 + 200), read back whole and in planning order.
    let body = app.post_state(&ws, &post).await;
    assert_eq!(body["targets"], 1_200);
    assert_eq!(body["counts"]["pending"], 1_200);
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1_000);
    assert_eq!(body["next_after"], 1_000);
    let rest = page(&app, &ws, &post, "after=1000&limit=1000").await;
    assert_eq!(chats_of(&rest, None), targets[1_000..], "{rest}");
    assert_eq!(rest["next_after"], Value::Null);
    let post_events: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = 'Post' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&post)
    .fetch_all(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(post_events, ["PostPlanned", "PostTargetsAdded"]);

    app.approve(&ws, &post).await;
    delivered_at_least(&app, &ws, &post, 30).await;
    let started = Instant::now();
    let cancelled = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts/{post}/cancel"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    let acknowledged = Utc::now();
    eprintln!("cancel during delivery answered in {:?}", started.elapsed());
    assert_eq!(cancelled["state"], "cancelled");

    // Nothing starts after the cancel; what had started finishes and is recorded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(requests_after(&app, &post, acknowledged).await, 0);
    let settled = app
        .eventually(
            "in-flight sends to be recorded",
            Duration::from_secs(10),
            || async {
                let counts = counts(&app, &ws, &post).await;
                let sent = app
                    .sandbox
                    .messages(None)
                    .iter()
                    .filter(|m| m.text == text)
                    .count();
                (counts["delivered"].as_u64() == Some(sent as u64)).then_some(counts)
            },
        )
        .await;
    let delivered = settled["delivered"].as_u64().unwrap();
    assert!(
        delivered < 1_200,
        "the cancel stopped the broadcast: {settled}"
    );
    assert_eq!(
        settled["pending"].as_u64().unwrap() + delivered,
        1_200,
        "{settled}"
    );
    assert_each_chat_once(&app, text, delivered);
    // The calendar's positions continue across the post's events: the status filter pages the
    // second event's chats in planning order, as their aggregates say.
    let tail = page(&app, &ws, &post, "after=1000&limit=1000").await;
    let filtered = page(&app, &ws, &post, "status=pending&after=1000&limit=1000").await;
    assert_eq!(chats_of(&filtered, None), chats_of(&tail, Some("pending")));
    // Each outcome is an event of its own delivery; the post's stream holds decisions only.
    let outcomes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Delivery' AND event_type = 'PostDelivered'",
    )
    .fetch_one(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(outcomes as u64, delivered);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reschedule_during_a_broadcast_moves_the_rest_and_every_chat_gets_it_once() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chats = app.import_chats(&ws, &bot, 42_001, 300).await;
    let targets: Vec<&str> = chats.iter().map(String::as_str).collect();
    let text = "moved halfway";
    let post = app.plan(&ws, &targets, text, Duration::ZERO).await;
    app.approve(&ws, &post).await;
    delivered_at_least(&app, &ws, &post, 30).await;

    let later = (Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let moved = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts/{post}/reschedule"),
            json!({"publish_at": later}),
            StatusCode::OK,
        )
        .await;
    let acknowledged = Utc::now();
    assert_eq!(moved["state"], "approved", "{moved}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(requests_after(&app, &post, acknowledged).await, 0);
    let paused = counts(&app, &ws, &post).await;
    assert!(paused["pending"].as_u64().unwrap() > 0, "{paused}");

    // Back to now: the rest goes out, nobody twice.
    app.post_ok(
        &format!("/v1/workspaces/{ws}/posts/{post}/reschedule"),
        json!({"publish_at": Utc::now().to_rfc3339()}),
        StatusCode::OK,
    )
    .await;
    let done = app
        .eventually(
            "the rest to be delivered",
            Duration::from_secs(60),
            || async {
                let counts = counts(&app, &ws, &post).await;
                (counts["pending"] == 0).then_some(counts)
            },
        )
        .await;
    assert_eq!(done["delivered"], 300, "{done}");
    assert_each_chat_once(&app, text, 300);
    assert_eq!(app.post_state(&ws, &post).await["state"], "delivered");

    // Finished: nothing is left to cancel or move.
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts/{post}/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition")),
        "{body}"
    );
    app.cleanup().await;
}
