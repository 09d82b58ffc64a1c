//! Markup Telegram cannot parse is refused when a post is planned or edited, with Telegram's
//! reason, instead of failing later in every chat.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::spawn_app;

#[tokio::test]
async fn html_telegram_cannot_parse_is_refused_and_escaped_html_accepted() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 4101).await;
    let posts = format!("/v1/workspaces/{ws}/posts");
    let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let post = |text: &str| json!({ "chat_ids": [chat], "text": text, "parse_mode": "HTML", "publish_at": publish_at });

    let (status, answer) = app.post(&posts, post("1 < 2")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "text_unparseable", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Unsupported start tag \"\" at byte offset 2") && message.contains("&lt;"),
        "the message gives Telegram's reason and the way out: {message}"
    );

    let planned = app
        .post_ok(&posts, post("1 &lt; 2"), StatusCode::CREATED)
        .await;
    let id = planned["id"].as_str().unwrap().to_owned();

    // An edit is held to the same rule, and leaves the post as it was.
    let (status, answer) = app
        .request(
            Method::PATCH,
            &format!("{posts}/{id}"),
            Some(json!({ "text": "<b>bold", "parse_mode": "HTML" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "text_unparseable", "{answer}");
    assert_eq!(app.post_state(&ws, &id).await["text"], "1 &lt; 2");

    // What planning accepts, Telegram (here the sandbox, which parses with the same crate)
    // takes, with the entities it reports.
    let (_, due) = app
        .post(
            &posts,
            json!({
                "chat_ids": [chat],
                "text": "1 &lt; <b>2</b> 😀",
                "parse_mode": "HTML",
                "publish_at": chrono::Utc::now().to_rfc3339(),
            }),
        )
        .await;
    let due = due["id"].as_str().unwrap().to_owned();
    app.approve(&ws, &due).await;
    let settled = app.settled(&ws, &due, Duration::from_secs(15)).await;
    assert_eq!(settled["deliveries"][0]["status"], "delivered", "{settled}");
    let received = app.sandbox.messages(None);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].text, "1 &lt; <b>2</b> 😀");
    assert_eq!(received[0].parsed.text, "1 < 2 😀");
    assert_eq!(
        serde_json::to_value(&received[0].parsed.entities).unwrap(),
        json!([{ "type": "bold", "offset": 4, "length": 1 }])
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_post_reads_back_rendered_as_telegram_shows_it() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, -100_400_001).await;
    let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let post = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"chat_ids": [chat], "text": "1 &lt; 2 <b>bold 👍</b>", "parse_mode": "HTML", "publish_at": publish_at}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = app.post_state(&ws, &post).await;
    assert_eq!(shown["render"]["text"], "1 < 2 bold 👍");
    assert_eq!(
        shown["render"]["entities"],
        json!([{"type": "bold", "offset": 6, "length": 7}]),
        "offsets and lengths in UTF-16 units (the emoji is two): {shown}"
    );
    assert_eq!(shown["render"]["length"], 13);
    app.cleanup().await;
}
