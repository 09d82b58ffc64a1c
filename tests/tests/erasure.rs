//! Erasure without rewriting history: a contact's name is sealed under a key of its own in
//! every event; erasing the person destroys the key, and every reading, the audit, and a
//! rebuilt audit show it erased while the events stay as they were.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

async fn events_mentioning(app: &TestApp, text: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
        .bind(text)
        .fetch_one(&app.herald.pool)
        .await
        .unwrap()
}

async fn audit_titles(app: &TestApp, ws: &str, chat: &str) -> Vec<Value> {
    let (_, audit) = app
        .get(&format!("/v1/workspaces/{ws}/audit?limit=200"))
        .await;
    audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["aggregate_id"] == chat && e["event_type"] == "ChatConnected")
        .map(|e| e["details"]["title"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasing_a_person_destroys_their_key_and_every_reading_shows_it() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let listener = app.listener();
    let alice = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/chats"),
            json!({"bot_id": bot, "telegram_chat_id": 8001, "title": "CanaryErasable", "lawful_basis": "consent"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group = app.connect_chat(&ws, &bot, -8002).await;
    app.person_writes(8003, "CanaryStarter", "/start").await;

    // Sealed in the events, opened where it is read.
    assert_eq!(events_mentioning(&app, "CanaryErasable").await, 0);
    let (_, shown) = app.get(&format!("/v1/workspaces/{ws}/chats/{alice}")).await;
    assert_eq!(
        (shown["title"].clone(), shown["erased"].clone()),
        (json!("CanaryErasable"), json!(false))
    );
    let starter = app
        .eventually(
            "the contact from /start",
            Duration::from_secs(15),
            || async {
                let (_, found) = app
                    .get(&format!("/v1/workspaces/{ws}/chats?telegram_chat_id=8003"))
                    .await;
                found["chats"][0]["title"].as_str().map(str::to_owned)
            },
        )
        .await;
    assert_eq!(starter, "CanaryStarter");
    assert_eq!(events_mentioning(&app, "CanaryStarter").await, 0);
    let (_, group_shown) = app.get(&format!("/v1/workspaces/{ws}/chats/{group}")).await;
    assert_eq!(
        group_shown["title"], "Sandbox group -8002",
        "groups are not people: not sealed"
    );
    assert_eq!(events_mentioning(&app, "Sandbox group -8002").await, 1);
    let titles = app
        .eventually("the audit", Duration::from_secs(15), || async {
            let titles = audit_titles(&app, &ws, &alice).await;
            (!titles.is_empty()).then_some(titles)
        })
        .await;
    assert_eq!(titles, [json!("CanaryErasable")]);
    let events_before = app.stored_events().await;

    // Erasure: the key goes, the contact is opted out, history keeps its sealed bytes.
    let erased = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/chats/{alice}/erase"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(erased["erased"], true);
    let (_, shown) = app.get(&format!("/v1/workspaces/{ws}/chats/{alice}")).await;
    assert_eq!(
        (
            shown["title"].clone(),
            shown["erased"].clone(),
            shown["opted_out"].clone()
        ),
        (json!("[erased]"), json!(true), json!(true)),
        "{shown}"
    );
    assert_eq!(audit_titles(&app, &ws, &alice).await, [json!("[erased]")]);
    assert_eq!(
        app.stored_events().await,
        events_before + 1,
        "one ContactErased; nothing rewritten"
    );
    let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"chat_ids": [alice], "text": "x", "publish_at": publish_at}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("chat_opted_out")),
        "{body}"
    );
    // Asking again is safe.
    app.post_ok(
        &format!("/v1/workspaces/{ws}/chats/{alice}/erase"),
        json!({}),
        StatusCode::OK,
    )
    .await;

    // A rebuilt audit replays the sealed events: still erased.
    app.herald
        .rebuild("audit", &|_, _| {})
        .await
        .expect("rebuild the audit");
    assert_eq!(audit_titles(&app, &ws, &alice).await, [json!("[erased]")]);
    let raw: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE details::text LIKE '%CanaryErasable%'",
    )
    .fetch_one(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(raw, 0);
    listener.stop().await;
    app.cleanup().await;
}
