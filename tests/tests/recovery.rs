//! Crash safety of the relay and the projector, and projection rebuilds from history.

use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use system_tests::{AppOptions, TestApp, spawn_app_with};

const POSTS: usize = 120;

async fn calendar_rows(app: &TestApp) -> Vec<String> {
    sqlx::query("SELECT row_to_json(c)::text AS r FROM calendar c ORDER BY post_id, chat_id")
        .fetch_all(&app.herald.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("r"))
        .collect()
}

async fn audit_rows(app: &TestApp) -> Vec<String> {
    sqlx::query("SELECT row_to_json(a)::text AS r FROM audit_log a ORDER BY position")
        .fetch_all(&app.herald.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("r"))
        .collect()
}

async fn audit_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM audit_log")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_relay_and_projector_mid_stream_loses_and_duplicates_nothing() {
    let mut app = spawn_app_with(AppOptions {
        delivery: false,
        ..Default::default()
    })
    .await;
    let (ws, bot) = app.workspace_with_bot().await;
    let a = app.connect_chat(&ws, &bot, 10).await;
    let b = app.connect_chat(&ws, &bot, -20).await;

    // Commands keep coming while the relay and the projector are killed and restarted.
    let writer = {
        let (client, base, ws, a, b, reviewer) = (
            app.client.clone(),
            app.base.clone(),
            ws.clone(),
            a.clone(),
            b.clone(),
            app.reviewer_token.clone(),
        );
        tokio::spawn(async move {
            for i in 0..POSTS {
                let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
                let body = serde_json::json!({"chat_ids": [a, b], "text": format!("post {i}"), "publish_at": publish_at});
                let created: Value = client
                    .post(format!("{base}/v1/workspaces/{ws}/posts"))
                    .bearer_auth(system_tests::ADMIN_TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let id = created["id"].as_str().unwrap();
                let approved = client
                    .post(format!("{base}/v1/workspaces/{ws}/posts/{id}/approve"))
                    .bearer_auth(&reviewer)
                    .send()
                    .await
                    .unwrap();
                assert!(approved.status().is_success());
            }
        })
    };
    for round in 0..10u64 {
        tokio::time::sleep(Duration::from_millis(40 + 23 * round)).await;
        app.relay.take().unwrap().kill().await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        app.start_relay();
        tokio::time::sleep(Duration::from_millis(35 + 17 * round)).await;
        app.projector.take().unwrap().kill().await;
        app.start_projector();
    }
    writer.await.unwrap();

    let events = app.stored_events().await;
    // the workspace and its creator's role, bot, two chats, then each post planned and
    // approved (the approval given at its one stage, and the approval of the post)
    assert_eq!(
        events as usize,
        5 + POSTS * 3,
        "every accepted command is stored"
    );
    app.eventually(
        "the audit projection to catch up",
        Duration::from_secs(30),
        || async { (audit_count(&app).await == events).then_some(()) },
    )
    .await;
    app.eventually(
        "the calendar to show every post approved",
        Duration::from_secs(30),
        || async {
            let approved: i64 =
                sqlx::query_scalar("SELECT count(*) FROM calendar WHERE state = 'approved'")
                    .fetch_one(&app.herald.pool)
                    .await
                    .unwrap();
            (approved as usize == POSTS * 2).then_some(())
        },
    )
    .await;

    // Nothing duplicated: one stream message and one audit row per stored event.
    let mut stream = app
        .herald
        .bus
        .jetstream
        .get_stream(app.herald.bus.names.events_stream())
        .await
        .unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.messages,
        events as u64,
        "stream holds each event once"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
    assert_eq!(rows, events);
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
    assert_eq!(outbox, 0, "the outbox drained");

    // The projections equal a fresh rebuild from history, both with the projector running
    // (it notices the reset and replays) and with it stopped (the rebuild replays itself).
    let (calendar_before, audit_before) = (calendar_rows(&app).await, audit_rows(&app).await);
    let replayed = app.herald.rebuild("calendar", &|_, _| {}).await.unwrap();
    assert_eq!(replayed, events as u64);
    assert_eq!(calendar_rows(&app).await, calendar_before);
    app.projector.take().unwrap().stop().await;
    app.herald.rebuild("audit", &|_, _| {}).await.unwrap();
    assert_eq!(audit_rows(&app).await, audit_before);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_projection_name_is_refused_with_the_valid_names() {
    let app = spawn_app_with(AppOptions {
        delivery: false,
        ..Default::default()
    })
    .await;
    let error = app
        .herald
        .rebuild("calender", &|_, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("calendar, post_list, chat_list, audit, delivery_schedule"),
        "{error}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_another_database_is_refused_at_start() {
    use sqlx::Connection;
    let app = spawn_app_with(AppOptions {
        delivery: false,
        ..Default::default()
    })
    .await;
    app.workspace_with_bot().await;
    app.eventually("events on the stream", Duration::from_secs(10), || async {
        let mut stream = app
            .herald
            .bus
            .jetstream
            .get_stream(app.herald.bus.names.events_stream())
            .await
            .unwrap();
        (stream.info().await.unwrap().state.messages > 0).then_some(())
    })
    .await;
    // A fresh, empty database with the same NATS prefix: its projections would replay foreign events.
    let url = app.herald.config.database_url.expose().clone();
    let (server, rest) = url.rsplit_once('/').unwrap();
    let other = format!("{}_other", rest.split('?').next().unwrap());
    let mut admin = sqlx::PgConnection::connect(&system_tests::maintenance_url())
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {other}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut config = app.herald.config.clone();
    config.database_url = platform::Secret::new(format!("{server}/{other}"));
    let error = herald::Herald::connect(config, app.herald.cipher.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        format!("{error:#}").contains("belongs to another Herald database"),
        "{error:#}"
    );
    sqlx::query(&format!("DROP DATABASE {other} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    app.cleanup().await;
}
