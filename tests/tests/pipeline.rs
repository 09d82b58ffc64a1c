//! The walking skeleton end to end: HTTP API -> event store -> outbox relay -> JetStream ->
//! projections and delivery -> sandbox Telegram (over real HTTP, through teloxide).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use system_tests::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_post_arrives_exactly_once_in_each_target_chat() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let private = app.connect_chat(&ws, &bot, 1001).await;
    let group = app.connect_chat(&ws, &bot, -4242).await;
    let channel = app.connect_chat(&ws, &bot, -1001234567890).await;

    let post = app
        .plan(
            &ws,
            &[&private, &group, &channel],
            "Launch day 🚀",
            Duration::ZERO,
        )
        .await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;

    assert_eq!(settled["state"], "delivered", "{settled}");
    for (chat, telegram_id) in [
        (&private, 1001),
        (&group, -4242),
        (&channel, -1001234567890),
    ] {
        let delivery = settled["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["chat_id"] == chat.as_str())
            .unwrap();
        let received = app.sandbox.messages(Some(telegram_id));
        assert_eq!(received.len(), 1, "chat {telegram_id} got {received:?}");
        assert_eq!(received[0].text, "Launch day 🚀");
        assert_eq!(delivery["status"], "delivered");
        assert_eq!(delivery["telegram_message_id"], received[0].message_id);
    }
    // Nothing more arrives later (no duplicate from a retry or a replay).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.sandbox.messages(None).len(), 3);

    // The projections caught up: calendar rows per chat, audit with who did what.
    let calendar = app
        .eventually(
            "calendar shows three deliveries",
            Duration::from_secs(10),
            || async {
                let (_, body) = app.get(&format!("/v1/workspaces/{ws}/calendar")).await;
                let entries = body["entries"].as_array().cloned().unwrap_or_default();
                (entries.len() == 3 && entries.iter().all(|e| e["delivery"] == "delivered"))
                    .then_some(entries)
            },
        )
        .await;
    assert!(
        calendar
            .iter()
            .all(|e| e["post_id"] == post.as_str() && e["state"] == "approved")
    );
    let (_, audit) = app
        .get(&format!("/v1/workspaces/{ws}/audit?limit=1000"))
        .await;
    let types: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for expected in [
        "WorkspaceCreated",
        "BotRegistered",
        "ChatConnected",
        "PostPlanned",
        "PostApproved",
        "PostDelivered",
    ] {
        assert!(
            types.contains(&expected),
            "audit lacks {expected}: {types:?}"
        );
    }
    let approved = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "PostApproved")
        .unwrap();
    // The admin planned it; the reviewer approved it (four eyes).
    assert_eq!(
        approved["actor"],
        identity::user_id_for_login("reviewer").to_string()
    );
    assert!(!approved["correlation_id"].as_str().unwrap().is_empty());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_cancelled_and_opted_out_posts_never_arrive() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 2001).await;
    let leaving = app.connect_chat(&ws, &bot, 2002).await;
    let soon = Duration::from_secs(2);

    let rejected = app.plan(&ws, &[&chat], "rejected", Duration::ZERO).await;
    app.post_ok(
        &format!("/v1/workspaces/{ws}/posts/{rejected}/reject"),
        json!({"reason": "off-brand"}),
        StatusCode::OK,
    )
    .await;

    let cancelled = app.plan(&ws, &[&chat], "cancelled", soon).await;
    app.approve(&ws, &cancelled).await;
    app.post_ok(
        &format!("/v1/workspaces/{ws}/posts/{cancelled}/cancel"),
        json!({}),
        StatusCode::OK,
    )
    .await;

    let opted = app
        .plan(&ws, &[&leaving], "to a chat that leaves", soon)
        .await;
    app.approve(&ws, &opted).await;
    app.post_ok(
        &format!("/v1/workspaces/{ws}/chats/{leaving}/opt-out"),
        json!({"reason": "asked to stop"}),
        StatusCode::OK,
    )
    .await;

    // Planning to an opted-out chat is refused outright.
    let (status, body) = app
        .post(&format!("/v1/workspaces/{ws}/posts"), json!({"chat_ids": [leaving], "text": "x", "publish_at": chrono::Utc::now().to_rfc3339()}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("chat_opted_out")),
        "{body}"
    );

    let opted_state = app.settled(&ws, &opted, Duration::from_secs(15)).await;
    assert_eq!(
        opted_state["deliveries"][0]["status"], "failed",
        "{opted_state}"
    );
    assert!(
        opted_state["deliveries"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("opted_out")
    );
    // A control post proves delivery was running all along.
    let control = app.plan(&ws, &[&chat], "control", Duration::ZERO).await;
    app.approve(&ws, &control).await;
    app.settled(&ws, &control, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let texts: Vec<String> = app
        .sandbox
        .messages(None)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, vec!["control".to_owned()]);
    // Rejected: back to draft, waiting for an edit; nothing went out.
    assert_eq!(app.post_state(&ws, &rejected).await["state"], "draft");
    assert_eq!(app.post_state(&ws, &cancelled).await["state"], "cancelled");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_error_is_a_4xx_with_its_code_and_damages_nothing() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 3001).await;
    let now = chrono::Utc::now().to_rfc3339();
    let posts = format!("/v1/workspaces/{ws}/posts");
    let cases = [
        (
            json!({"chat_ids": [chat], "text": "", "publish_at": now}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "text_empty",
        ),
        (
            json!({"chat_ids": [chat], "text": "😀".repeat(2049), "publish_at": now}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "text_too_long",
        ),
        (
            json!({"chat_ids": [chat], "text": "x", "publish_at": "2020-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "publish_at_in_past",
        ),
        (
            json!({"chat_ids": [chat], "text": "x", "publish_at": "tomorrow"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_publish_at",
        ),
        (
            json!({"chat_ids": [uuid::Uuid::new_v4()], "text": "x", "publish_at": now}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_chat",
        ),
        (
            json!({"chat_ids": [], "text": "x", "publish_at": now}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_chats",
        ),
        (
            json!({"chat_ids": ["not-an-id"], "text": "x", "publish_at": now}),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            json!({"chat_ids": [chat], "text": "x", "publish_at": now, "parse_mode": "BBCode"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parse_mode",
        ),
        (
            json!({"chat_ids": [chat], "publish_at": now}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = app.post(&posts, body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "for {body}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // 4096 UTF-16 units exactly is fine.
    app.post_ok(
        &posts,
        json!({"chat_ids": [chat], "text": "😀".repeat(2048), "publish_at": now}),
        StatusCode::CREATED,
    )
    .await;

    // Approving twice, and approving a cancelled post.
    let post = app
        .plan(&ws, &[&chat], "twice", Duration::from_secs(3600))
        .await;
    app.approve(&ws, &post).await;
    let (status, body) = app
        .post(&format!("{posts}/{post}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_approved"))
    );
    let cancelled = app
        .plan(&ws, &[&chat], "cancelled", Duration::from_secs(3600))
        .await;
    app.post_ok(
        &format!("{posts}/{cancelled}/cancel"),
        json!({}),
        StatusCode::OK,
    )
    .await;
    let (status, body) = app
        .post(&format!("{posts}/{cancelled}/approve"), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition")),
        "{body}"
    );

    // Directory errors.
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/bots"),
            json!({"name": "b", "token": "nope"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_bot_token"))
    );
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/chats"),
            json!({"bot_id": uuid::Uuid::new_v4(), "telegram_chat_id": 5, "title": "t", "lawful_basis": "consent"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_bot"))
    );
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/chats"),
            json!({"bot_id": bot, "telegram_chat_id": "five", "title": "t"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field"))
    );
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{}/posts", uuid::Uuid::new_v4()),
            json!({"chat_ids": [chat], "text": "x", "publish_at": now}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("workspace_not_found"))
    );
    let (status, body) = app.get(&format!("{posts}/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, body) = app.get(&format!("/v1/workspaces/{ws}/audit?limit=0")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );

    // Malformed JSON, and no token.
    let raw = app
        .client
        .post(format!("{}{posts}", app.base))
        .bearer_auth(system_tests::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{bad")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        raw.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let anonymous = app
        .client
        .get(format!("{}/v1/workspaces/{ws}/calendar", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Nothing stored was damaged: the approved post is intact.
    let intact = app.post_state(&ws, &post).await;
    assert_eq!(
        (intact["state"].as_str(), intact["text"].as_str()),
        (Some("approved"), Some("twice"))
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_openapi_are_served() {
    let app = spawn_app().await;
    let (status, body) = app.get("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["nats"], "ok");
    let (status, body) = app.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["paths"]["/v1/workspaces/{ws}/posts"]["post"].is_object(),
        "{body}"
    );
    app.cleanup().await;
}
