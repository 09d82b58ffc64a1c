//! Updates injected through `/sandbox/updates` reach the bot through `getUpdates` as Telegram
//! delivers them, parsed by teloxide; confirmed updates are gone; long polls wake.

use std::time::Duration;

use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{ChatMemberStatus, UpdateKind};

use crate::common::{BOT_ID, Harness, OTHER_BOT_ID, unlimited};

#[tokio::test]
async fn injected_messages_and_member_changes_arrive_in_order_until_confirmed() {
    let h = Harness::start(unlimited()).await;
    let (status, first) = h
        .post_json(
            "/sandbox/updates",
            &json!({"bot_id": BOT_ID, "message": {"chat_id": 1001, "text": "/start welcome", "first_name": "Alice"}}),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = h
        .post_json(
            "/sandbox/updates",
            &json!({"bot_id": BOT_ID, "my_chat_member": {"chat_id": -1001234, "status": "kicked"}}),
        )
        .await;
    let first_id = first["update_id"].as_i64().unwrap();
    assert_eq!(second["update_id"].as_i64(), Some(first_id + 1));
    // Another bot's updates are its own.
    h.post_json(
        "/sandbox/updates",
        &json!({"bot_id": OTHER_BOT_ID, "message": {"chat_id": 5, "text": "hi"}}),
    )
    .await;

    let updates = h.bot.get_updates().await.expect("getUpdates");
    assert_eq!(updates.len(), 2);
    assert_eq!(i64::from(updates[0].id.0), first_id);
    let UpdateKind::Message(message) = &updates[0].kind else {
        panic!("a message: {:?}", updates[0]);
    };
    assert_eq!(message.chat.id, ChatId(1001));
    assert!(message.chat.is_private());
    assert_eq!(message.text(), Some("/start welcome"));
    assert_eq!(
        message.from.as_ref().map(|u| u.first_name.as_str()),
        Some("Alice")
    );
    let UpdateKind::MyChatMember(change) = &updates[1].kind else {
        panic!("a member change: {:?}", updates[1]);
    };
    assert_eq!(change.chat.id, ChatId(-1001234));
    assert_eq!(change.old_chat_member.status(), ChatMemberStatus::Member);
    assert_eq!(change.new_chat_member.status(), ChatMemberStatus::Banned);
    // The change holds for later sends: the bot is out of the group.
    let refused = h.bot.send_message(ChatId(-1001234), "x").await;
    assert!(refused.is_err(), "{refused:?}");

    // Unconfirmed, the same updates come again; an offset confirms them.
    assert_eq!(h.bot.get_updates().await.unwrap().len(), 2);
    let after = h
        .bot
        .get_updates()
        .offset(first_id as i32 + 1)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(h.sandbox.pending_updates(BOT_ID), 1);
    let none = h
        .bot
        .get_updates()
        .offset(first_id as i32 + 2)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert_eq!(h.sandbox.pending_updates(BOT_ID), 0);
}

#[tokio::test]
async fn a_long_poll_wakes_when_an_update_arrives_and_a_blocked_person_refuses_sends() {
    let h = Harness::start(unlimited()).await;
    let bot = h.bot.clone();
    let poll = tokio::spawn(async move { bot.get_updates().timeout(20).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    h.post_json(
        "/sandbox/updates",
        &json!({"bot_id": BOT_ID, "my_chat_member": {"chat_id": 2002, "status": "kicked"}}),
    )
    .await;
    let updates = poll.await.unwrap().expect("getUpdates");
    assert!(started.elapsed() < Duration::from_secs(2), "woke at once");
    assert_eq!(updates.len(), 1);
    let error = h.bot.send_message(ChatId(2002), "hello").await.unwrap_err();
    assert!(error.to_string().contains("blocked by the user"), "{error}");
    // Unblocked: sends go through again.
    h.post_json(
        "/sandbox/updates",
        &json!({"bot_id": BOT_ID, "my_chat_member": {"chat_id": 2002, "status": "member"}}),
    )
    .await;
    h.bot
        .send_message(ChatId(2002), "hello")
        .await
        .expect("sent");

    let (status, body) = h
        .post_json("/sandbox/updates", &json!({"bot_id": BOT_ID}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_update"))
    );
    let (status, _) = h
        .post_json(
            "/sandbox/updates",
            &json!({"bot_id": BOT_ID, "message": {"chat_id": -5, "text": "hi"}}),
        )
        .await;
    assert_eq!(status, 400, "a message comes from a person");
}
