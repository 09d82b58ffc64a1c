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

/// What a reader sees of a post: its text, its comments' texts in its history, and its previews
/// in the post list and the calendar.
async fn post_texts(app: &TestApp, ws: &str, post: &str) -> (Value, Vec<Value>, Value, Value) {
    let shown = app.post_state(ws, post).await;
    let (_, history) = app
        .get(&format!("/v1/workspaces/{ws}/posts/{post}/history"))
        .await;
    let comments = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event_type"] == "PostCommented")
        .map(|e| e["details"]["text"].clone())
        .collect();
    let (_, list) = app.get(&format!("/v1/workspaces/{ws}/posts")).await;
    let listed = list["posts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == post || p["post_id"] == post)
        .map_or(Value::Null, |p| p["text_preview"].clone());
    let (_, calendar) = app.get(&format!("/v1/workspaces/{ws}/calendar")).await;
    let entry = calendar["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["post_id"] == post)
        .map_or(Value::Null, |e| e["text_preview"].clone());
    (shown["text"].clone(), comments, listed, entry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_that_seals_post_texts_can_erase_a_post_from_the_whole_history() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, -100_500_001).await;
    // Planned before the policy: kept as it is, and cannot be erased.
    let plain = app
        .plan(&ws, &[&chat], "PlainCanary", Duration::from_secs(3600))
        .await;
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/privacy"),
            Some(json!({"seal_post_texts": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, workspace) = app.get(&format!("/v1/workspaces/{ws}")).await;
    assert_eq!(workspace["privacy"]["seal_post_texts"], true);

    let text = "SealedCanary: <b>the launch</b> is on Friday";
    let post = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"chat_ids": [chat], "text": text, "parse_mode": "HTML",
                   "publish_at": (chrono::Utc::now() + chrono::TimeDelta::seconds(1)).to_rfc3339()}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post_ok(
        &format!("/v1/workspaces/{ws}/posts/{post}/comments"),
        json!({"text": "CommentCanary looks right"}),
        StatusCode::CREATED,
    )
    .await;
    // Erasing before it is sent is refused: cancel it first, or wait for its deliveries.
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts/{post}/erase"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // No event holds the plain text or comment; readers see them opened.
    for canary in ["SealedCanary", "CommentCanary"] {
        assert_eq!(
            events_mentioning(&app, canary).await,
            0,
            "{canary} in an event"
        );
    }
    assert_eq!(events_mentioning(&app, "PlainCanary").await, 1);
    let seen = app
        .eventually("the projections", Duration::from_secs(10), || async {
            let seen = post_texts(&app, &ws, &post).await;
            (seen.3 != Value::Null && !seen.1.is_empty() && seen.2 != Value::Null).then_some(seen)
        })
        .await;
    assert_eq!(seen.0, text);
    assert_eq!(seen.1, [json!("CommentCanary looks right")]);
    assert_eq!(seen.2, text, "the post list's preview, opened");
    assert_eq!(seen.3, text, "the calendar's preview, opened");
    assert_eq!(
        app.post_state(&ws, &post).await["render"]["text"],
        "SealedCanary: the launch is on Friday"
    );

    // Delivery opens it: Telegram gets what the author wrote.
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    let sent = app.sandbox.messages(Some(-100_500_001));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, text);

    // Erased: every reading shows it erased; the events are as they were.
    let events_before = app.stored_events().await;
    let erased = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts/{post}/erase"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(erased["texts_erased"], true);
    assert_eq!(
        app.stored_events().await,
        events_before + 1,
        "one PostTextsErased"
    );
    let seen = post_texts(&app, &ws, &post).await;
    assert_eq!(seen.0, "[erased]");
    assert_eq!(seen.1, [json!("[erased]")]);
    assert_eq!((seen.2, seen.3), (json!("[erased]"), json!("[erased]")));
    assert_eq!(app.post_state(&ws, &post).await["texts_erased"], true);
    // An erased post takes no new text or comment.
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts/{post}/comments"),
            json!({"text": "again"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("post_erased"))
    );
    // Rebuilt projections replay the sealed events: still erased.
    for projection in ["audit", "calendar", "post_list"] {
        app.herald
            .rebuild(projection, &|_, _| {})
            .await
            .unwrap_or_else(|e| panic!("rebuild {projection}: {e:#}"));
    }
    let seen = post_texts(&app, &ws, &post).await;
    assert_eq!(seen.1, [json!("[erased]")]);
    assert_eq!((seen.2, seen.3), (json!("[erased]"), json!("[erased]")));
    let raw: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM audit_log WHERE details::text LIKE '%Canary%')
              + (SELECT count(*) FROM calendar WHERE text_preview LIKE '%SealedCanary%')
              + (SELECT count(*) FROM post_list WHERE text_preview LIKE '%SealedCanary%')",
    )
    .fetch_one(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(raw, 0);

    // The post planned before the policy: its text stays, and erasing it says why not.
    app.post_ok(
        &format!("/v1/workspaces/{ws}/posts/{plain}/cancel"),
        json!({}),
        StatusCode::OK,
    )
    .await;
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts/{plain}/erase"),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("text_not_sealed")),
        "{body}"
    );
    app.cleanup().await;
}
