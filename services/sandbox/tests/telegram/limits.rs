//! Flood control over HTTP: real 429s that teloxide turns into
//! `RequestError::RetryAfter`, per chat, per group and per bot.

use std::time::Duration;

use sandbox::SandboxConfig;
use serde_json::json;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{ChatId, Seconds};

use crate::common::{Harness, OTHER_TOKEN, TOKEN, limited};

fn is_retry_after(result: &Result<teloxide::types::Message, RequestError>, secs: u32) -> bool {
    matches!(result, Err(RequestError::RetryAfter(s)) if *s == Seconds::from_seconds(secs))
}

#[tokio::test]
async fn telegram_default_second_message_to_a_chat_within_a_second_is_rejected() {
    let h = Harness::start(SandboxConfig::default()).await;
    h.bot
        .send_message(ChatId(42), "first")
        .await
        .expect("first");
    let second = h.bot.send_message(ChatId(42), "second").await;
    assert!(is_retry_after(&second, 1), "{second:?}");
    // Other chats are not affected.
    h.bot
        .send_message(ChatId(43), "elsewhere")
        .await
        .expect("other chat");
    assert_eq!(h.sandbox.stats().rate_limited, 1);
    assert_eq!(h.sandbox.stats().accepted, 2);
    assert_eq!(
        h.sandbox.messages(Some(42)).len(),
        1,
        "rejected message not recorded"
    );
}

#[tokio::test]
async fn per_chat_window_frees_after_its_period() {
    let h = Harness::start(limited((1, 600), (0, 0), (0, 0))).await;
    h.bot
        .send_message(ChatId(42), "first")
        .await
        .expect("first");
    let second = h.bot.send_message(ChatId(42), "too soon").await;
    assert!(is_retry_after(&second, 1), "{second:?}");
    tokio::time::sleep(Duration::from_millis(650)).await;
    h.bot
        .send_message(ChatId(42), "later")
        .await
        .expect("after the window");
    let texts: Vec<String> = h
        .sandbox
        .messages(Some(42))
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["first", "later"]);
}

#[tokio::test]
async fn the_429_answer_has_telegrams_shape() {
    let h = Harness::start(limited((1, 2500), (0, 0), (0, 0))).await;
    let path = format!("/bot{TOKEN}/sendMessage");
    let message = json!({"chat_id": 9, "text": "x"});
    assert_eq!(h.post_json(&path, &message).await.0, 200);
    let (status, body) = h.post_json(&path, &message).await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({
            "ok": false,
            "error_code": 429,
            "description": "Too Many Requests: retry after 3",
            "parameters": {"retry_after": 3},
        })
    );
}

#[tokio::test]
async fn per_group_limit_applies_to_negative_chat_ids() {
    let h = Harness::start(limited((0, 0), (3, 800), (0, 0))).await;
    for n in 0..3 {
        h.bot
            .send_message(ChatId(-42), format!("g{n}"))
            .await
            .expect("within limit");
    }
    let fourth = h.bot.send_message(ChatId(-42), "g3").await;
    assert!(is_retry_after(&fourth, 1), "{fourth:?}");
    // Another group and private chats have their own budget.
    h.bot
        .send_message(ChatId(-43), "other group")
        .await
        .expect("other group");
    for _ in 0..5 {
        h.bot
            .send_message(ChatId(42), "private")
            .await
            .expect("private chats are not groups");
    }
    tokio::time::sleep(Duration::from_millis(850)).await;
    h.bot
        .send_message(ChatId(-42), "g4")
        .await
        .expect("after the window");
}

#[tokio::test]
async fn per_bot_limit_spans_chats_but_not_bots() {
    let h = Harness::start(limited((0, 0), (0, 0), (2, 800))).await;
    h.bot.send_message(ChatId(1), "a").await.expect("1st");
    h.bot.send_message(ChatId(-2), "b").await.expect("2nd");
    let third = h.bot.send_message(ChatId(3), "c").await;
    assert!(is_retry_after(&third, 1), "{third:?}");
    let other = h.bot_with_token(OTHER_TOKEN);
    other
        .send_message(ChatId(3), "c")
        .await
        .expect("another bot has its own budget");
    tokio::time::sleep(Duration::from_millis(850)).await;
    h.bot
        .send_message(ChatId(3), "c")
        .await
        .expect("after the window");
    assert_eq!(h.sandbox.stats().rate_limited, 1);
}

#[tokio::test]
async fn limits_can_be_disabled() {
    let h = Harness::start(crate::common::unlimited()).await;
    for _ in 0..40 {
        h.bot
            .send_message(ChatId(-42), "flood")
            .await
            .expect("no limits");
    }
    assert_eq!(h.sandbox.stats().rate_limited, 0);
}
