//! The Bot API surface: getMe, sendMessage to every chat type, method-name
//! casing, parameter encodings, auxiliary methods.

use sandbox::ChatType;
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{ChatId, ParseMode, UserId};
use teloxide::{ApiError, RequestError};

use crate::common::{BOT_ID, Harness, TOKEN, unlimited};

#[tokio::test]
async fn get_me_describes_the_bot_of_the_token() {
    let h = Harness::start(unlimited()).await;
    let me = h.bot.get_me().await.expect("getMe");
    assert_eq!(me.id, UserId(123_456));
    assert!(me.is_bot);
    assert_eq!(me.first_name, "Sandbox bot");
    assert_eq!(me.username(), "sandbox_123456_bot");
    assert!(me.can_join_groups);
}

#[tokio::test]
async fn sends_to_private_group_supergroup_and_channel() {
    let h = Harness::start(unlimited()).await;
    let channel = -1_009_876_543_210;
    h.sandbox.set_chat_type(channel, ChatType::Channel);

    let private = h
        .bot
        .send_message(ChatId(42), "to a user")
        .await
        .expect("private");
    assert!(private.chat.is_private());
    assert_eq!(private.chat.first_name(), Some("Sandbox user"));
    assert_eq!(private.from.as_ref().map(|u| u.id), Some(UserId(123_456)));

    let group = h
        .bot
        .send_message(ChatId(-42), "to a group")
        .await
        .expect("group");
    assert!(group.chat.is_group());
    assert_eq!(group.chat.title(), Some("Sandbox group -42"));

    let supergroup = h
        .bot
        .send_message(ChatId(-1_001_234_567_890), "to a supergroup")
        .await
        .expect("supergroup");
    assert!(supergroup.chat.is_supergroup());
    assert!(supergroup.from.is_some());

    let post = h
        .bot
        .send_message(ChatId(channel), "to a channel")
        .await
        .expect("channel");
    assert!(post.chat.is_channel());
    assert!(post.from.is_none(), "channel posts have no `from`");
    assert_eq!(
        post.sender_chat.as_ref().map(|c| c.id),
        Some(ChatId(channel))
    );

    for message in [&private, &group, &supergroup, &post] {
        assert_eq!(message.id.0, 1, "first message of each chat");
    }
    assert_eq!(private.text(), Some("to a user"));

    let all = h.sandbox.messages(None);
    let chats: Vec<i64> = all.iter().map(|m| m.chat_id).collect();
    assert_eq!(
        chats,
        [42, -42, -1_001_234_567_890, channel],
        "arrival order"
    );
    assert!(
        all.iter()
            .all(|m| m.bot_id == BOT_ID && m.parse_mode.is_none())
    );

    let group_only = h.sandbox.messages(Some(-42));
    assert_eq!(group_only.len(), 1);
    assert_eq!(group_only[0].text, "to a group");

    let (status, body) = h.get("/sandbox/messages?chat_id=-42").await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(1));
    assert_eq!(body["messages"][0]["text"], "to a group");
    assert_eq!(body["messages"][0]["bot_id"], BOT_ID);
    assert_eq!(body["messages"][0]["message_id"], 1);
    let (_, body) = h.get("/sandbox/messages").await;
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn message_ids_increase_per_chat() {
    let h = Harness::start(unlimited()).await;
    let mut ids = Vec::new();
    for chat in [7, 7, 8, 7] {
        let message = h.bot.send_message(ChatId(chat), "x").await.expect("send");
        ids.push(message.id.0);
    }
    assert_eq!(ids, [1, 2, 1, 3]);
}

#[tokio::test]
async fn answers_carry_the_visible_text_and_records_the_raw_one() {
    let h = Harness::start(unlimited()).await;
    let message = h
        .bot
        .send_message(ChatId(5), "<b>bold</b> &amp; <i>more</i>")
        .parse_mode(ParseMode::Html)
        .await
        .expect("send");
    assert_eq!(message.text(), Some("bold & more"));
    let recorded = h.sandbox.messages(Some(5));
    assert_eq!(recorded[0].text, "<b>bold</b> &amp; <i>more</i>");
    assert_eq!(recorded[0].parse_mode.as_deref(), Some("HTML"));
}

#[tokio::test]
async fn method_names_are_case_insensitive_and_params_come_in_any_encoding() {
    let h = Harness::start(unlimited()).await;
    // teloxide itself sends PascalCase (`SendMessage`); the rest by hand.
    h.bot
        .send_message(ChatId(1), "pascal")
        .await
        .expect("teloxide");
    let (status, body) = h
        .post_json(
            &format!("/bot{TOKEN}/sendMessage"),
            &json!({"chat_id": 1, "text": "camel json"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["result"]["message_id"], 2);
    let (status, body) = h
        .post(
            &format!("/bot{TOKEN}/SENDMESSAGE"),
            "application/x-www-form-urlencoded",
            "chat_id=1&text=upper+form",
        )
        .await;
    assert_eq!(
        (status, &body["result"]["text"]),
        (200, &json!("upper form"))
    );
    let (status, body) = h
        .get(&format!("/bot{TOKEN}/sendmessage?chat_id=1&text=query%21"))
        .await;
    assert_eq!((status, &body["result"]["text"]), (200, &json!("query!")));
    let (status, body) = h.get(&format!("/bot{TOKEN}/getme")).await;
    assert_eq!((status, &body["result"]["id"]), (200, &json!(BOT_ID)));
    let texts: Vec<String> = h
        .sandbox
        .messages(Some(1))
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["pascal", "camel json", "upper form", "query!"]);
}

#[tokio::test]
async fn malformed_token_is_unauthorized_and_unknown_method_not_found() {
    let h = Harness::start(unlimited()).await;
    let bad = h.bot_with_token("123:short");
    let err = bad.get_me().await.expect_err("bad token");
    assert!(
        matches!(err, RequestError::Api(ApiError::InvalidToken)),
        "{err:?}"
    );
    let (status, body) = h.get("/bot123:short/getMe").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let (status, body) = h.get(&format!("/bot{TOKEN}/sendPigeon")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 404, "description": "Not Found"})
    );
    let (status, _) = h.get("/not/a/bot/path").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn auxiliary_methods() {
    let h = Harness::start(unlimited()).await;
    assert!(h.bot.get_updates().await.expect("getUpdates").is_empty());
    h.bot.delete_webhook().await.expect("deleteWebhook");
    let group = h.bot.get_chat(ChatId(-42)).await.expect("getChat");
    assert!(group.is_group());
    let user = h.bot.get_chat(ChatId(42)).await.expect("getChat");
    assert!(user.is_private());
    let supergroup = h
        .bot
        .get_chat(ChatId(-1_001_234_567_890))
        .await
        .expect("getChat");
    assert!(supergroup.is_supergroup());
    let (status, body) = h.get(&format!("/bot{TOKEN}/logOut")).await;
    assert_eq!((status, body), (200, json!({"ok": true, "result": true})));
    let (status, _) = h.get(&format!("/bot{TOKEN}/close")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn serve_stops_on_shutdown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sandbox::Sandbox::new(unlimited()).serve(listener, async {
        let _ = stopped.await;
    }));
    let _ = stop.send(());
    let result = tokio::time::timeout(std::time::Duration::from_secs(2), server)
        .await
        .expect("serve returns promptly");
    assert!(matches!(result, Ok(Ok(()))));
}

#[tokio::test]
async fn shutdown_ends_a_long_poll() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sandbox::Sandbox::new(unlimited()).serve(listener, async {
        let _ = stopped.await;
    }));
    let bot = Bot::with_client(
        TOKEN,
        teloxide::net::default_reqwest_settings()
            .no_proxy()
            .build()
            .expect("client"),
    )
    .set_api_url(format!("http://{addr}").parse().expect("url"));
    let poll = tokio::spawn(async move { bot.get_updates().timeout(10).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let _ = stop.send(());
    let updates = poll.await.expect("join").expect("getUpdates answered");
    assert!(updates.is_empty());
    let result = tokio::time::timeout(std::time::Duration::from_secs(2), server)
        .await
        .expect("serve returns promptly");
    assert!(matches!(result, Ok(Ok(()))));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test]
async fn get_chat_and_get_chat_member_tell_where_the_bot_stands_and_sends_follow() {
    use sandbox::{BotStatus, ChatSetup};
    let h = Harness::start(unlimited()).await;
    let channel = -1_005_555_555_555;
    h.sandbox.set_chat(
        channel,
        ChatSetup {
            chat_type: Some(ChatType::Channel),
            title: Some("Acme news".into()),
            ..ChatSetup::default()
        },
    );
    let info = h.bot.get_chat(ChatId(channel)).await.expect("getChat");
    assert!(info.is_channel());
    assert_eq!(info.title(), Some("Acme news"));
    // By default the bot may post in a channel and is a member of a group.
    let me = UserId(BOT_ID as u64);
    let member = h.bot.get_chat_member(ChatId(channel), me).await.unwrap();
    assert!(member.kind.is_administrator() && member.kind.can_post_messages());
    let member = h.bot.get_chat_member(ChatId(-42), me).await.unwrap();
    assert!(member.kind.is_member());

    // An administrator without the right to post: getChatMember says so, sends are refused.
    h.sandbox.set_chat(
        channel,
        ChatSetup {
            can_post_messages: Some(false),
            ..ChatSetup::default()
        },
    );
    let member = h.bot.get_chat_member(ChatId(channel), me).await.unwrap();
    assert!(member.kind.is_administrator() && !member.kind.can_post_messages());
    let refused = h.bot.send_message(ChatId(channel), "x").await.unwrap_err();
    assert!(
        refused.to_string().contains("need administrator rights"),
        "{refused}"
    );

    // Kicked from a group: 403 on send; an unknown chat: chat not found everywhere.
    h.sandbox.set_chat(
        -42,
        ChatSetup {
            bot_status: Some(BotStatus::Kicked),
            ..ChatSetup::default()
        },
    );
    let member = h.bot.get_chat_member(ChatId(-42), me).await.unwrap();
    assert!(member.kind.is_banned());
    let refused = h.bot.send_message(ChatId(-42), "x").await.unwrap_err();
    assert!(
        matches!(&refused, RequestError::Api(ApiError::Unknown(d)) if d == "Forbidden: bot was kicked from the group chat"),
        "{refused:?}"
    );
    h.sandbox.set_chat(
        -43,
        ChatSetup {
            exists: Some(false),
            ..ChatSetup::default()
        },
    );
    let missing = h.bot.get_chat(ChatId(-43)).await.unwrap_err();
    assert!(
        matches!(missing, RequestError::Api(ApiError::ChatNotFound)),
        "{missing:?}"
    );

    // The same through the sandbox's own API.
    let (status, _) = h
        .post_json(
            "/sandbox/chats",
            &json!({ "chat_id": -44, "bot_status": "left" }),
        )
        .await;
    assert_eq!(status, 204);
    let member = h.bot.get_chat_member(ChatId(-44), me).await.unwrap();
    assert!(member.kind.is_left());
}
