//! The HTTP server protects itself and the rest of Herald: slow clients are cut off at the
//! header timeout while others are served, and a flood of API requests during delivery cannot
//! make delivery heartbeats late (the API has its own PostgreSQL pool), so no delivery is
//! falsely flagged in doubt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use platform::Shutdown;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use system_tests::{ADMIN_TOKEN, spawn_app};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `api::Limits::default().header_read_timeout`, what `herald up` runs with.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The delivery worker timeout the harness runs its workers with.
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stall_in_their_request_head_are_cut_off_while_others_are_served() {
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // Twenty clients send half a request head and stall (slowloris).
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..20 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let half = format!(
            "POST /v1/workspaces HTTP/1.1\r\nHost: herald\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nX-Slow-{i}: "
        );
        stream.write_all(half.as_bytes()).await.unwrap();
        stalled.push(tokio::spawn(async move {
            let mut answer = Vec::new();
            // Returns when the server closes the connection (EOF or reset).
            let _ = stream.read_to_end(&mut answer).await;
            (
                opened.elapsed(),
                String::from_utf8_lossy(&answer).into_owned(),
            )
        }));
    }

    // Meanwhile the API keeps answering, promptly, commands and reads alike.
    let mut served = 0;
    while opened.elapsed() < HEADER_TIMEOUT - Duration::from_secs(2) {
        let started = Instant::now();
        let ws = app
            .post_ok(
                "/v1/workspaces",
                json!({"name": "served"}),
                StatusCode::CREATED,
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (status, body) = app.get(&format!("/v1/workspaces/{ws}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = app.get("/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "requests were slowed down by the stalled clients: {:?}",
            started.elapsed()
        );
        served += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(served >= 5, "only {served} rounds of requests were served");

    for client in stalled {
        let (closed_after, answer) = tokio::time::timeout(HEADER_TIMEOUT * 2, client)
            .await
            .expect("a stalled client is disconnected within twice the header timeout")
            .unwrap();
        assert!(
            closed_after >= HEADER_TIMEOUT - Duration::from_millis(500),
            "disconnected before the header timeout, after {closed_after:?}"
        );
        assert!(
            closed_after < HEADER_TIMEOUT + Duration::from_secs(3),
            "disconnected late, after {closed_after:?}"
        );
        assert!(
            !answer.contains("201"),
            "the half request was not executed: {answer:?}"
        );
    }
    // The stalled requests never became workspaces, and the server still answers.
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    app.cleanup().await;
}

/// What one flooding client saw.
#[derive(Default)]
struct Seen {
    ok: u64,
    /// Error answers by status and code; each must be Herald's JSON error shape.
    errors: Vec<(u16, String)>,
}

async fn flood(
    client: reqwest::Client,
    base: String,
    paths: Vec<String>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let path = &paths[i % paths.len()];
        i += 1;
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the API accepts the flood's connections");
        let status = response.status();
        let text = response.text().await.unwrap();
        if status.is_success() {
            seen.ok += 1;
            continue;
        }
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("GET {path}: {status} without a JSON body: {text:?}"));
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("GET {path}: {status} without an error code: {text}"));
        seen.errors
            .push((status.as_u16(), format!("{path} {code}")));
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_api_requests_during_delivery_makes_no_delivery_in_doubt() {
    let app = spawn_app().await;
    // A second delivery worker: a worker flags another's unfinished sends in doubt when that
    // one's heartbeat is late, which is what a starved pool would cause.
    let second = Shutdown::new();
    let second_worker = {
        let herald = app.herald.clone();
        let mut settings = herald.delivery_settings().unwrap();
        settings.tick = Duration::from_millis(50);
        settings.worker_timeout = WORKER_TIMEOUT;
        let stop = second.clone();
        tokio::spawn(async move { herald.delivery(settings, stop).await })
    };

    let (ws, bot) = app.workspace_with_bot().await;
    let mut chats = Vec::new();
    for n in 0..30 {
        chats.push(app.connect_chat(&ws, &bot, 61_000 + n).await);
    }
    // Two posts per chat, due a few seconds from now: 60 sends, two seconds of the bot's rate
    // at best, paced one per second per chat.
    let mut posts = Vec::new();
    for chat in &chats {
        for i in 0..2 {
            let delay = Duration::from_secs(4) + Duration::from_millis(300 * i);
            posts.push(app.plan(&ws, &[chat], &format!("flood {i}"), delay).await);
        }
    }
    for post in &posts {
        app.approve(&ws, post).await;
    }

    // 64 clients read as fast as they can from before the posts are due until all are settled.
    let stop = Arc::new(AtomicBool::new(false));
    let mut paths = vec![
        "/readyz".to_owned(),
        format!("/v1/workspaces/{ws}/calendar"),
        format!("/v1/workspaces/{ws}/audit?limit=1000"),
        format!("/v1/workspaces/{ws}/bots/{bot}/safety-stats"),
    ];
    paths.extend(
        posts
            .iter()
            .take(8)
            .map(|p| format!("/v1/workspaces/{ws}/posts/{p}")),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let flooders: Vec<_> = (0..64)
        .map(|n| {
            let mut rotated = paths.clone();
            rotated.rotate_left(n % paths.len());
            tokio::spawn(flood(
                client.clone(),
                app.base.clone(),
                rotated,
                stop.clone(),
            ))
        })
        .collect();
    let flood_started = Instant::now();

    // How late the workers' heartbeats get, sampled on a connection of the test's own (not a
    // pool a flood could starve). A heartbeat older than the worker timeout is exactly what makes
    // the other worker flag a delivery in doubt.
    let mut probe = PgConnection::connect(app.herald.config.database_url.expose())
        .await
        .unwrap();
    let mut oldest_heartbeat = Duration::ZERO;
    let mut workers_seen = 0;

    // Settled while flooded: every delivery has an outcome event (read from the event store,
    // not through the flooded API).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (workers, age): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM now() - min(heartbeat_at))::float8 FROM delivery_workers",
        )
        .fetch_one(&mut probe)
        .await
        .unwrap();
        workers_seen = workers_seen.max(workers);
        oldest_heartbeat =
            oldest_heartbeat.max(Duration::from_secs_f64(age.unwrap_or(0.0).max(0.0)));
        let outcomes: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events
              WHERE event_type IN ('PostDelivered', 'DeliveryFailed', 'DeliveryUnknown')",
        )
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
        if outcomes >= posts.len() as i64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries not done within 60 s under the flood: {outcomes} of {} outcomes",
            posts.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Keep flooding a little past the last send, over several heartbeat intervals.
    let keep_on = Instant::now() + Duration::from_secs(3);
    while Instant::now() < keep_on {
        let age: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM now() - min(heartbeat_at))::float8 FROM delivery_workers",
        )
        .fetch_one(&mut probe)
        .await
        .unwrap();
        oldest_heartbeat =
            oldest_heartbeat.max(Duration::from_secs_f64(age.unwrap_or(0.0).max(0.0)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let flooded_for = flood_started.elapsed();
    let mut ok = 0;
    let mut errors = Vec::new();
    for flooder in flooders {
        let seen = flooder.await.unwrap();
        ok += seen.ok;
        errors.extend(seen.errors);
    }
    eprintln!(
        "flood: {ok} answered 200 in {flooded_for:?}, {} errors: {:?}; oldest heartbeat of {workers_seen} workers: {oldest_heartbeat:?}",
        errors.len(),
        errors.iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(workers_seen, 2, "both delivery workers heart-beat");
    assert!(
        oldest_heartbeat < WORKER_TIMEOUT,
        "a delivery heartbeat was {oldest_heartbeat:?} old under the flood (worker timeout {WORKER_TIMEOUT:?})"
    );
    assert!(ok >= 500, "the flood was a flood: {ok} successful requests");
    assert!(
        errors.is_empty(),
        "every flooded read was answered: {} errors, e.g. {:?}",
        errors.len(),
        errors.iter().take(10).collect::<Vec<_>>()
    );

    // Every delivery went out exactly once and none was flagged in doubt.
    let unknown: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'DeliveryUnknown'")
            .fetch_one(&app.herald.pool)
            .await
            .unwrap();
    assert_eq!(
        unknown, 0,
        "deliveries were flagged in doubt under the flood"
    );
    for post in &posts {
        let state = app.post_state(&ws, post).await;
        assert_eq!(state["state"], "delivered", "{state}");
        for delivery in state["deliveries"].as_array().unwrap() {
            assert_eq!(delivery["status"], "delivered", "{state}");
        }
    }
    let received = app.sandbox.messages(None);
    assert_eq!(
        received.len(),
        posts.len(),
        "each post reached its chat once"
    );
    assert_eq!(app.sandbox.stats().rate_limited, 0);

    second.cancel();
    second_worker.await.unwrap().unwrap();
    let (status, body) = app
        .post("/v1/workspaces", json!({"name": "after the flood"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.cleanup().await;
}
