//! The `/sandbox/*` inspection API.

use sandbox::{ReceivedMessage, SandboxStats};
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::ChatId;

use crate::common::{BOT_ID, Harness, OTHER_BOT_ID, OTHER_TOKEN, unlimited};

#[tokio::test]
async fn messages_can_be_filtered_and_cleared() {
    let h = Harness::start(unlimited()).await;
    h.bot.send_message(ChatId(1), "a").await.expect("send");
    h.bot.send_message(ChatId(2), "b").await.expect("send");
    h.bot_with_token(OTHER_TOKEN)
        .send_message(ChatId(1), "c")
        .await
        .expect("send");

    let texts = |body: &serde_json::Value| -> Vec<String> {
        body["messages"]
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|m| m["text"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (_, body) = h.get("/sandbox/messages").await;
    assert_eq!(texts(&body), ["a", "b", "c"]);
    let (_, body) = h.get("/sandbox/messages?chat_id=1").await;
    assert_eq!(texts(&body), ["a", "c"]);
    let (_, body) = h
        .get(&format!(
            "/sandbox/messages?chat_id=1&bot_id={OTHER_BOT_ID}"
        ))
        .await;
    assert_eq!(texts(&body), ["c"]);
    let (_, body) = h
        .get(&format!("/sandbox/messages?bot_id={BOT_ID}&chat_id="))
        .await;
    assert_eq!(texts(&body), ["a", "b"]);
    let typed: Vec<ReceivedMessage> =
        serde_json::from_value(body["messages"].clone()).expect("ReceivedMessage shape");
    assert_eq!(typed.len(), 2);
    assert_eq!((typed[1].chat_id, typed[1].message_id), (2, 1));

    let (status, body) = h.get("/sandbox/messages?chat_id=one").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_query");

    let (status, _) = h.delete("/sandbox/messages").await;
    assert_eq!(status, 204);
    assert!(h.sandbox.messages(None).is_empty());
    let (_, body) = h.get("/sandbox/messages").await;
    assert_eq!(body, json!({"messages": []}));
    // Ids keep increasing after a clear.
    let next = h.bot.send_message(ChatId(1), "d").await.expect("send");
    assert_eq!(next.id.0, 3);
}

#[tokio::test]
async fn stats_over_http() {
    let h = Harness::start(unlimited()).await;
    h.bot.send_message(ChatId(1), "a").await.expect("send");
    let (status, body) = h.get("/sandbox/stats").await;
    assert_eq!(status, 200);
    let stats: SandboxStats = serde_json::from_value(body).expect("stats shape");
    assert_eq!(
        stats,
        SandboxStats {
            accepted: 1,
            paid_broadcasts: 0,
            rate_limited: 0,
            faults_injected: 0
        }
    );
}

#[tokio::test]
async fn chat_types_can_be_overridden_over_http() {
    let h = Harness::start(unlimited()).await;
    let (status, _) = h
        .post_json(
            "/sandbox/chats",
            &json!({"chat_id": -1_001_111_111_111_i64, "type": "channel"}),
        )
        .await;
    assert_eq!(status, 204);
    let post = h
        .bot
        .send_message(ChatId(-1_001_111_111_111), "news")
        .await
        .expect("send");
    assert!(post.chat.is_channel());
    let (status, body) = h
        .post_json("/sandbox/chats", &json!({"chat_id": 1, "type": "forum"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_chat");
}
