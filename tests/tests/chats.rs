//! Chats are checked with Telegram: connecting asks whether the bot may post there, and a
//! periodic re-check flags a chat whose rights changed before a send fails.

use reqwest::{Method, StatusCode};
use sandbox::{BotStatus, ChatSetup, ChatType};
use serde_json::json;
use system_tests::{TestApp, spawn_app};

async fn connect(
    app: &TestApp,
    ws: &str,
    bot: &str,
    telegram_chat_id: i64,
) -> (StatusCode, serde_json::Value) {
    app.request(
        Method::POST,
        &format!("/v1/workspaces/{ws}/chats"),
        Some(system_tests::chat_body(
            bot,
            telegram_chat_id,
            "given title",
        )),
    )
    .await
}

async fn recheck(app: &TestApp) -> usize {
    let settings = app.herald.delivery_settings().unwrap();
    delivery::recheck::recheck_all(
        &app.herald.delivery_pool,
        &app.herald.delivery_store,
        &app.herald.cipher,
        &settings.api_url,
        &platform::Shutdown::new(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn connecting_asks_telegram_and_a_recheck_flags_and_clears_lost_rights() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let channel = -1_001_111_111_111;
    app.sandbox.set_chat(
        channel,
        ChatSetup {
            chat_type: Some(ChatType::Channel),
            title: Some("Acme news".into()),
            can_post_messages: Some(false),
            ..ChatSetup::default()
        },
    );
    let (status, body) = connect(&app, &ws, &bot, channel).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("bot_cannot_post")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("administrator"),
        "{body}"
    );
    app.sandbox.set_chat(
        -1_002_222_222_222,
        ChatSetup {
            exists: Some(false),
            ..ChatSetup::default()
        },
    );
    let (status, body) = connect(&app, &ws, &bot, -1_002_222_222_222).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("chat_unreachable")),
        "{body}"
    );
    let stored = app.stored_events().await;

    // With the right to post, it connects, with Telegram's type and title.
    app.sandbox.set_chat(
        channel,
        ChatSetup {
            can_post_messages: Some(true),
            ..ChatSetup::default()
        },
    );
    let (status, body) = connect(&app, &ws, &bot, channel).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["type"], "channel");
    assert_eq!(
        app.stored_events().await,
        stored + 1,
        "refusals stored nothing"
    );
    let (status, body) = connect(&app, &ws, &bot, 424242).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (StatusCode::CREATED, Some("private")),
        "{body}"
    );
    let group = app.connect_chat(&ws, &bot, -5005).await;
    app.eventually(
        "the chats in the audit",
        std::time::Duration::from_secs(10),
        || async {
            let (_, audit) = app
                .get(&format!("/v1/workspaces/{ws}/audit?limit=100"))
                .await;
            let titles: Vec<String> = audit["events"]
                .as_array()?
                .iter()
                .filter(|e| e["event_type"] == "ChatConnected")
                .map(|e| {
                    e["details"]["title"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            (titles.len() == 3)
                .then_some(())
                .filter(|()| titles[0] == "Acme news" && titles[1] == "given title")
        },
    )
    .await;
    // Nothing changed: a re-check records nothing.
    assert_eq!(recheck(&app).await, 0);
    let stored = app.stored_events().await;
    assert_eq!(recheck(&app).await, 0);
    assert_eq!(app.stored_events().await, stored);

    // The bot is removed from the group: the re-check flags it, and planning says why.
    app.sandbox.set_chat(
        -5005,
        ChatSetup {
            bot_status: Some(BotStatus::Kicked),
            ..ChatSetup::default()
        },
    );
    assert_eq!(recheck(&app).await, 1);
    let at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({ "chat_ids": [group], "text": "hi", "publish_at": at }),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("chat_blocked")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a member"),
        "{body}"
    );

    // Back in the group: the flag goes, and a post goes out.
    app.sandbox.set_chat(
        -5005,
        ChatSetup {
            bot_status: Some(BotStatus::Member),
            ..ChatSetup::default()
        },
    );
    assert_eq!(recheck(&app).await, 1);
    let post = app
        .plan(&ws, &[&group], "welcome back", std::time::Duration::ZERO)
        .await;
    app.approve(&ws, &post).await;
    let settled = app
        .settled(&ws, &post, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_public_channel_keeps_its_username_and_its_delivered_messages_link_to_it() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    app.sandbox_post(
        "/sandbox/chats",
        json!({"chat_id": -100_777_001, "type": "channel", "title": "Acme news", "username": "@acmenews"}),
    )
    .await;
    let channel = app.connect_chat(&ws, &bot, -100_777_001).await;
    let (_, shown) = app
        .get(&format!("/v1/workspaces/{ws}/chats/{channel}"))
        .await;
    assert_eq!(shown["username"], "acmenews", "{shown}");
    // A person's username is never kept, even if Telegram reports one.
    app.sandbox_post(
        "/sandbox/chats",
        json!({"chat_id": 7_770_002, "type": "private", "username": "alice_private"}),
    )
    .await;
    let person = app.connect_chat(&ws, &bot, 7_770_002).await;
    let (_, shown) = app
        .get(&format!("/v1/workspaces/{ws}/chats/{person}"))
        .await;
    assert_eq!(shown["username"], serde_json::Value::Null);

    let post = app
        .plan(
            &ws,
            &[&channel, &person],
            "hello",
            std::time::Duration::ZERO,
        )
        .await;
    app.approve(&ws, &post).await;
    let settled = app
        .settled(&ws, &post, std::time::Duration::from_secs(15))
        .await;
    let deliveries = settled["deliveries"].as_array().unwrap();
    let of = |chat: &str| deliveries.iter().find(|d| d["chat_id"] == chat).unwrap();
    let message = of(&channel)["telegram_message_id"].as_i64().unwrap();
    assert_eq!(
        of(&channel)["link"],
        format!("https://t.me/acmenews/{message}")
    );
    assert!(
        of(&person).get("link").is_none(),
        "a private chat has no public link"
    );
    app.cleanup().await;
}
