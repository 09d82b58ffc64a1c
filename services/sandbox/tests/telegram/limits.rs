//! Flood control over HTTP: real 429s that teloxide turns into
//! `RequestError::RetryAfter`, per chat, per group and per bot.

use std::ops::Range;
use std::time::Duration;

use futures::StreamExt;
use sandbox::SandboxConfig;
use serde_json::json;
use teloxide::RequestError;
use teloxide::prelude::*;
use teloxide::types::{ChatId, Seconds};

use crate::common::{BOT_ID, Harness, OTHER_BOT_ID, OTHER_TOKEN, TOKEN, limited, limited_paid};

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

/// One message from `bot` to each chat of `chats`, up to 32 requests at once
/// (so a burst of a thousand lands within a fraction of a second); returns
/// how many were accepted and the `retry_after` of each refusal.
async fn burst(bot: &teloxide::Bot, chats: Range<i64>, paid: bool) -> (usize, Vec<u32>) {
    let results: Vec<Result<_, RequestError>> = futures::stream::iter(chats)
        .map(|chat| {
            let request = bot.send_message(ChatId(chat), format!("burst {chat}"));
            async move {
                if paid {
                    request.allow_paid_broadcast(true).await
                } else {
                    request.await
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let refused = results
        .iter()
        .filter_map(|r| match r {
            Err(RequestError::RetryAfter(s)) => Some(s.seconds()),
            _ => None,
        })
        .collect();
    (accepted, refused)
}

#[tokio::test]
async fn thirty_one_messages_in_a_second_need_a_paid_broadcast() {
    let h = Harness::start(SandboxConfig::default()).await;
    // Without the flag: 30 per second per bot, the 31st is refused.
    let (accepted, refused) = burst(&h.bot, 1..32, false).await;
    assert_eq!((accepted, refused), (30, vec![1]));
    // With it (another bot, its own budget): all 31 go through.
    let paid = h.bot_with_token(OTHER_TOKEN);
    let (accepted, refused) = burst(&paid, 1..32, true).await;
    assert_eq!((accepted, refused), (31, vec![]));

    let stats = h.sandbox.stats();
    assert_eq!(
        (stats.accepted, stats.paid_broadcasts, stats.rate_limited),
        (61, 31, 1)
    );
    let messages = h.sandbox.messages(None);
    assert!(
        messages
            .iter()
            .all(|m| m.paid_broadcast == (m.bot_id == OTHER_BOT_ID)),
        "only the paid bot's messages are marked paid"
    );
    assert_eq!(messages.iter().filter(|m| m.bot_id == BOT_ID).count(), 30);
}

#[tokio::test]
async fn paid_broadcasts_are_refused_past_a_thousand() {
    // Telegram's windows, except that the paid one spans 10 s instead of 1 s,
    // so that a slow machine cannot let it slide while the burst is sent
    // (the unit tests check the 1 s window itself).
    let h = Harness::start(limited_paid(
        (1, 1000),
        (20, 60_000),
        (30, 1000),
        (1000, 10_000),
    ))
    .await;
    let (accepted, refused) = burst(&h.bot, 1..1001, true).await;
    assert_eq!((accepted, refused.len()), (1000, 0));
    let (accepted, refused) = burst(&h.bot, 1001..1003, true).await;
    assert_eq!(accepted, 0);
    assert_eq!(refused.len(), 2);
    assert!(
        refused.iter().all(|&s| (1..=10).contains(&s)),
        "{refused:?}"
    );
    // The per-chat limit still applies to a paid message.
    let again = h
        .bot_with_token(OTHER_TOKEN)
        .send_message(ChatId(1), "other bot")
        .allow_paid_broadcast(true)
        .await;
    assert!(again.is_ok(), "{again:?}");
    let again = h
        .bot_with_token(OTHER_TOKEN)
        .send_message(ChatId(1), "same chat, too soon")
        .allow_paid_broadcast(true)
        .await;
    assert!(is_retry_after(&again, 1), "{again:?}");
    assert_eq!(h.sandbox.stats().paid_broadcasts, 1001);
}

#[tokio::test]
async fn the_paid_flag_is_read_from_json_forms_and_the_query() {
    // One ordinary message per minute, paid ones unlimited.
    let h = Harness::start(limited_paid((0, 0), (0, 0), (1, 60_000), (0, 0))).await;
    let path = format!("/bot{TOKEN}/sendMessage");
    let form = "application/x-www-form-urlencoded";
    let status = |(status, _): (u16, serde_json::Value)| status;
    assert_eq!(
        status(
            h.post_json(&path, &json!({"chat_id": 1, "text": "a"}))
                .await
        ),
        200
    );
    assert_eq!(status(h.post(&path, form, "chat_id=2&text=b").await), 429);
    assert_eq!(
        status(
            h.post(&path, form, "chat_id=2&text=b&allow_paid_broadcast=true")
                .await
        ),
        200
    );
    assert_eq!(
        status(
            h.post(
                &format!("{path}?allow_paid_broadcast=1"),
                form,
                "chat_id=3&text=c"
            )
            .await
        ),
        200
    );
    let unpaid = json!({"chat_id": 4, "text": "d", "allow_paid_broadcast": false});
    assert_eq!(status(h.post_json(&path, &unpaid).await), 429);
    let paid = json!({"chat_id": 4, "text": "d", "allow_paid_broadcast": true});
    assert_eq!(status(h.post_json(&path, &paid).await), 200);
    let flags: Vec<bool> = h
        .sandbox
        .messages(None)
        .iter()
        .map(|m| m.paid_broadcast)
        .collect();
    assert_eq!(flags, [false, true, true, true]);
    let (_, stats) = h.get("/sandbox/stats").await;
    assert_eq!(stats["paid_broadcasts"], 3);
    let (_, listed) = h.get("/sandbox/messages?chat_id=4").await;
    assert_eq!(listed["messages"][0]["paid_broadcast"], true);
}
