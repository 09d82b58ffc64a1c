//! JetStream is rebuildable from PostgreSQL: when the stream is deleted, purged or lost (while
//! Herald runs, or while it is down), nothing accepted is lost, nothing is delivered twice, and
//! every projection ends equal to a clean rebuild.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Row;
use system_tests::{TestApp, spawn_app};

async fn rows(app: &TestApp, sql: &str) -> Vec<String> {
    sqlx::query(sql)
        .fetch_all(&app.herald.pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect()
}

async fn calendar(app: &TestApp) -> Vec<String> {
    rows(
        app,
        "SELECT row_to_json(c)::text FROM calendar c ORDER BY post_id, chat_id",
    )
    .await
}

async fn schedule(app: &TestApp) -> Vec<String> {
    rows(
        app,
        "SELECT row_to_json(s)::text FROM delivery_schedule s ORDER BY post_id, chat_id",
    )
    .await
}

async fn post_list(app: &TestApp) -> Vec<String> {
    rows(
        app,
        "SELECT row_to_json(p)::text FROM post_list p ORDER BY post_id",
    )
    .await
}

async fn audit(app: &TestApp) -> Vec<String> {
    rows(
        app,
        "SELECT row_to_json(a)::text FROM audit_log a ORDER BY position",
    )
    .await
}

/// Plans and approves one post per chat list, due in `delay`; returns the post ids.
async fn approve_posts(
    app: &TestApp,
    ws: &str,
    chats: &[&str],
    label: &str,
    count: usize,
    delay: Duration,
) -> Vec<String> {
    let mut posts = Vec::new();
    for i in 0..count {
        let post = app.plan(ws, chats, &format!("{label} {i}"), delay).await;
        app.approve(ws, &post).await;
        posts.push(post);
    }
    posts
}

async fn journalled(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap()
}

async fn delete_stream(app: &TestApp) {
    app.herald
        .bus
        .jetstream
        .delete_stream(app.herald.bus.names.events_stream())
        .await
        .expect("deleting the stream");
}

async fn purge_stream(app: &TestApp) {
    app.herald
        .bus
        .jetstream
        .get_stream(app.herald.bus.names.events_stream())
        .await
        .unwrap()
        .purge()
        .await
        .expect("purging the stream");
}

/// Every post delivered, each text exactly once per chat, and the read models equal to a rebuild.
async fn assert_all_delivered_once_and_projections_rebuildable(
    app: &TestApp,
    ws: &str,
    posts: &[String],
    chats: &[i64],
) {
    for post in posts {
        let settled = app.settled(ws, post, Duration::from_secs(60)).await;
        assert_eq!(settled["state"], "delivered", "{settled}");
    }
    for chat in chats {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for message in app.sandbox.messages(Some(*chat)) {
            *seen.entry(message.text).or_default() += 1;
        }
        assert_eq!(
            seen.len(),
            posts.len(),
            "chat {chat} got every post: {seen:?}"
        );
        assert!(
            seen.values().all(|n| *n == 1),
            "chat {chat} got a post twice: {seen:?}"
        );
    }
    let events = app.stored_events().await;
    app.eventually(
        "the audit to show every event",
        Duration::from_secs(30),
        || async {
            let audited: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM audit_log")
                .fetch_one(&app.herald.pool)
                .await
                .unwrap();
            (audited == events).then_some(())
        },
    )
    .await;
    app.eventually(
        "the calendar to show every delivery",
        Duration::from_secs(30),
        || async {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM calendar WHERE delivery <> 'delivered'")
                    .fetch_one(&app.herald.pool)
                    .await
                    .unwrap();
            (pending == 0).then_some(())
        },
    )
    .await;
    let (live_calendar, live_audit) = (calendar(app).await, audit(app).await);
    let live_schedule = schedule(app).await;
    let live_posts = post_list(app).await;
    assert!(!live_posts.is_empty());
    assert_eq!(live_audit.len() as i64, events, "one audit row per event");
    for name in ["calendar", "post_list", "audit", "delivery_schedule"] {
        app.herald.rebuild(name, &|_, _| {}).await.unwrap();
    }
    assert_eq!(
        calendar(app).await,
        live_calendar,
        "calendar equals a rebuild"
    );
    assert_eq!(audit(app).await, live_audit, "audit equals a rebuild");
    assert_eq!(
        post_list(app).await,
        live_posts,
        "post list equals a rebuild"
    );
    assert_eq!(
        schedule(app).await,
        live_schedule,
        "delivery schedule equals a rebuild"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_deleted_while_herald_runs_is_rebuilt_and_nothing_is_lost() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let a = app.connect_chat(&ws, &bot, 7001).await;
    let b = app.connect_chat(&ws, &bot, -7002).await;
    let chats = [a.as_str(), b.as_str()];

    let mut posts = approve_posts(&app, &ws, &chats, "before", 3, Duration::ZERO).await;
    for post in &posts {
        app.settled(&ws, post, Duration::from_secs(30)).await;
    }

    delete_stream(&app).await;
    posts.extend(approve_posts(&app, &ws, &chats, "during", 3, Duration::ZERO).await);
    for post in &posts {
        app.settled(&ws, post, Duration::from_secs(30)).await;
    }
    // Emptied, this time keeping its sequence numbers.
    purge_stream(&app).await;
    posts.extend(approve_posts(&app, &ws, &chats, "after", 3, Duration::from_secs(1)).await);

    assert_all_delivered_once_and_projections_rebuildable(&app, &ws, &posts, &[7001, -7002]).await;
    assert_eq!(
        journalled(&app).await,
        app.stored_events().await,
        "every event journalled once"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_lost_while_herald_is_down_is_rebuilt_at_start() {
    let mut app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let a = app.connect_chat(&ws, &bot, 7101).await;
    let b = app.connect_chat(&ws, &bot, -7102).await;
    let chats = [a.as_str(), b.as_str()];
    let mut posts = approve_posts(&app, &ws, &chats, "before", 3, Duration::ZERO).await;
    for post in &posts {
        app.settled(&ws, post, Duration::from_secs(30)).await;
    }
    let audited_before = audit(&app).await;

    // Everything but the API stops; JetStream loses the stream; commands keep being accepted.
    for service in [app.delivery.take(), app.projector.take(), app.relay.take()]
        .into_iter()
        .flatten()
    {
        service.stop().await;
    }
    delete_stream(&app).await;
    app.herald.bus.ensure_stream().await.unwrap();
    posts.extend(approve_posts(&app, &ws, &chats, "while down", 3, Duration::ZERO).await);

    app.start_relay();
    app.start_projector();
    app.start_delivery();
    posts.extend(approve_posts(&app, &ws, &chats, "after", 3, Duration::from_secs(1)).await);

    assert_all_delivered_once_and_projections_rebuildable(&app, &ws, &posts, &[7101, -7102]).await;
    let audited = audit(&app).await;
    assert_eq!(
        audited[..audited_before.len()],
        audited_before[..],
        "history kept its positions"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_adopts_a_published_tail_it_did_not_journal() {
    // A relay that published and then died before journalling leaves messages in the stream that
    // are still in the outbox: they are journalled at their positions, never published twice.
    let mut app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 7201).await;
    app.eventually(
        "the journal to catch up",
        Duration::from_secs(10),
        || async { (journalled(&app).await == app.stored_events().await).then_some(()) },
    )
    .await;
    app.relay.take().unwrap().stop().await;
    // Forget the last journal entry, as if the relay had crashed before its commit.
    sqlx::query(
        "WITH last AS (DELETE FROM event_log WHERE position = (SELECT max(position) FROM event_log)
                       RETURNING aggregate_type, aggregate_id, sequence)
         INSERT INTO outbox (aggregate_type, aggregate_id, sequence) SELECT * FROM last",
    )
    .execute(&app.herald.pool)
    .await
    .unwrap();
    app.start_relay();
    let post = app
        .plan(&ws, &[&chat], "after adoption", Duration::ZERO)
        .await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(30)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    let mut stream = app
        .herald
        .bus
        .jetstream
        .get_stream(app.herald.bus.names.events_stream())
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let events = app.stored_events().await as u64;
    app.eventually(
        "the relay to publish everything",
        Duration::from_secs(10),
        || async {
            let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox")
                .fetch_one(&app.herald.pool)
                .await
                .unwrap();
            (outbox == 0).then_some(())
        },
    )
    .await;
    let mut stream_now = app
        .herald
        .bus
        .jetstream
        .get_stream(app.herald.bus.names.events_stream())
        .await
        .unwrap();
    let last = stream_now.info().await.unwrap().state.last_sequence;
    assert!(state.last_sequence <= last);
    assert_eq!(last, events, "one stream message per event, none twice");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_that_loses_its_lock_mid_burst_loses_reorders_and_skips_nothing() {
    let app = spawn_app().await;
    // A hot standby beside the test app's relay.
    let standby_shutdown = platform::Shutdown::new();
    let standby = {
        let (herald, shutdown) = (app.herald.clone(), standby_shutdown.clone());
        tokio::spawn(async move { herald.relay(shutdown).await })
    };
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 7301).await;
    let writer = {
        let (client, base, ws, chat, reviewer) = (
            app.client.clone(),
            app.base.clone(),
            ws.clone(),
            chat.clone(),
            app.reviewer_token.clone(),
        );
        let admin = system_tests::ADMIN_TOKEN.to_owned();
        tokio::spawn(async move {
            for i in 0..80 {
                let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
                let body = serde_json::json!({"chat_ids": [chat], "text": format!("burst {i}"), "publish_at": publish_at});
                let response = client
                    .post(format!("{base}/v1/workspaces/{ws}/posts"))
                    .bearer_auth(system_tests::ADMIN_TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
                let id = response.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                // The reviewer approves what the admin planned (four eyes).
                for (action, token) in [("approve", &reviewer), ("cancel", &admin)] {
                    let response = client
                        .post(format!("{base}/v1/workspaces/{ws}/posts/{id}/{action}"))
                        .bearer_auth(token)
                        .json(&serde_json::json!({}))
                        .send()
                        .await
                        .unwrap();
                    assert!(
                        response.status().is_success(),
                        "{action}: {}",
                        response.status()
                    );
                }
            }
        })
    };
    // Kill the database session holding the relay lock, twice, while commands pour in.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(l.pid) FROM pg_locks l
                                     WHERE l.locktype = 'advisory' AND l.granted
                                       AND l.objid::int = hashtext('herald:relay')
                                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())) t",
        )
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
        assert_eq!(killed, 1, "exactly one relay holds the lock");
    }
    writer.await.unwrap();

    let events = app.stored_events().await;
    app.eventually(
        "the audit to show every event",
        Duration::from_secs(30),
        || async {
            let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
                .fetch_one(&app.herald.pool)
                .await
                .unwrap();
            (audited >= events).then_some(())
        },
    )
    .await;
    // In stream order, each aggregate's events come exactly once and in sequence.
    let out_of_order: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT sequence, lag(sequence) OVER (PARTITION BY aggregate_id ORDER BY position) AS previous
                                 FROM audit_log) t
          WHERE sequence <> coalesce(previous, 0) + 1",
    )
    .fetch_one(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(out_of_order, 0, "no event duplicated, reordered or skipped");
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
    assert_eq!(audited, events, "every event audited once");
    app.eventually(
        "the calendar to see every post's last event",
        Duration::from_secs(30),
        || async {
            let cancelled: i64 = sqlx::query_scalar(
                "SELECT count(DISTINCT post_id) FROM calendar WHERE state = 'cancelled'",
            )
            .fetch_one(&app.herald.pool)
            .await
            .unwrap();
            (cancelled == 80).then_some(())
        },
    )
    .await;
    standby_shutdown.cancel();
    standby.await.unwrap().unwrap();
    app.cleanup().await;
}
