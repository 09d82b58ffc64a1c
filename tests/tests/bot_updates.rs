//! The bot listens: updates injected into the sandbox (people sending /start and /stop,
//! blocking the bot, the bot removed from a channel) become the chats' events through the
//! listener, each exactly once, also across a listener's crash and restart.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

/// The Telegram id of the harness's bot (the numeric part of its token).
const BOT: i64 = 123_456;

async fn say(app: &TestApp, telegram_chat_id: i64, text: &str) -> i64 {
    app.person_writes(telegram_chat_id, "Alice", text).await
}

async fn chat_of(app: &TestApp, telegram_chat_id: i64) -> Option<String> {
    sqlx::query_scalar::<_, uuid::Uuid>(
        "SELECT chat_id FROM telegram_chat_identities WHERE telegram_chat_id = $1",
    )
    .bind(telegram_chat_id)
    .fetch_optional(&app.herald.pool)
    .await
    .unwrap()
    .map(|id| id.to_string())
}

async fn chat(app: &TestApp, ws: &str, id: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/workspaces/{ws}/chats/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn events_of(app: &TestApp, aggregate_id: &str) -> Vec<(String, Value)> {
    sqlx::query_as::<_, (String, Value)>(
        "SELECT event_type, payload FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(aggregate_id)
    .fetch_all(&app.herald.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_subscribes_stop_opts_out_and_only_start_subscribes_again() {
    let app = spawn_app().await;
    let (ws, _) = app.workspace_with_bot().await;
    let listener = app.listener();

    // A person new to Herald starts the bot: a contact on their consent, from bot_start.
    let started = say(&app, 4001, "/start spring").await;
    app.update_handled(started).await;
    let alice = chat_of(&app, 4001).await.expect("a contact for the person");
    let shown = chat(&app, &ws, &alice).await;
    assert_eq!(shown["lawful_basis"]["basis"], "consent", "{shown}");
    assert_eq!(shown["lawful_basis"]["source"], "bot_start");
    assert_eq!(shown["title"], "Alice");
    let post = app.plan(&ws, &[&alice], "welcome", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");

    // Other messages change nothing; /stop is the person's opt-out, with its update id.
    let chatter = say(&app, 4001, "hello there").await;
    let stop = say(&app, 4001, "/stop").await;
    app.update_handled(stop).await;
    app.update_handled(chatter).await;
    let shown = chat(&app, &ws, &alice).await;
    assert_eq!(shown["opted_out"], true, "{shown}");
    let events = events_of(&app, &alice).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ChatConnected", "ChatOptedOut"]);
    assert_eq!(events[1].1["ChatOptedOut"]["update_id"], stop);
    let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"chat_ids": [alice], "text": "hi", "publish_at": publish_at}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("chat_opted_out")),
        "{body}"
    );

    // Only the person's own /start subscribes them again.
    let again = say(&app, 4001, "/start").await;
    app.update_handled(again).await;
    let shown = chat(&app, &ws, &alice).await;
    assert_eq!(
        (shown["opted_out"].clone(), shown["targetable"].clone()),
        (json!(false), json!(true)),
        "{shown}"
    );
    // Blocking the bot is an opt-out too; unblocking is no consent.
    let blocked = app
        .inject_update(json!({"my_chat_member": {"chat_id": 4001, "status": "kicked"}}))
        .await;
    let unblocked = app
        .inject_update(json!({"my_chat_member": {"chat_id": 4001, "status": "member"}}))
        .await;
    app.update_handled(unblocked).await;
    app.update_handled(blocked).await;
    let events = events_of(&app, &alice).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "ChatConnected",
            "ChatOptedOut",
            "ContactStarted",
            "ChatOptedOut"
        ]
    );
    assert_eq!(
        events[3].1["ChatOptedOut"]["reason"],
        "the person blocked the bot"
    );
    assert_eq!(chat(&app, &ws, &alice).await["opted_out"], true);

    // A /stop from someone Herald does not know changes nothing, and is still confirmed.
    let stranger = say(&app, 4999, "/stop").await;
    app.update_handled(stranger).await;
    assert_eq!(chat_of(&app, 4999).await, None);
    app.eventually("updates confirmed", Duration::from_secs(10), || async {
        (app.sandbox.pending_updates(BOT) == 0).then_some(())
    })
    .await;
    listener.stop().await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_removed_from_a_channel_flags_it_and_restored_rights_clear_the_flag() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let listener = app.listener();
    let news_id = -1_004_242_424_242_i64;
    sandbox_channel(&app, news_id).await;
    let news = app.connect_chat(&ws, &bot, news_id).await;

    let removed = app
        .inject_update(json!({"my_chat_member": {"chat_id": news_id, "status": "left"}}))
        .await;
    app.update_handled(removed).await;
    let shown = chat(&app, &ws, &news).await;
    assert!(shown["blocked"].is_string(), "{shown}");
    let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let plan = json!({"chat_ids": [news], "text": "hi", "publish_at": publish_at});
    let (status, body) = app
        .post(&format!("/v1/workspaces/{ws}/posts"), plan.clone())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("chat_blocked")),
        "{body}"
    );

    let restored = app.inject_update(
        json!({"my_chat_member": {"chat_id": news_id, "status": "administrator", "can_post_messages": true}}),
    )
    .await;
    app.update_handled(restored).await;
    let shown = chat(&app, &ws, &news).await;
    assert_eq!(shown["blocked"], Value::Null, "{shown}");
    let (status, body) = app.post(&format!("/v1/workspaces/{ws}/posts"), plan).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let checks: Vec<Value> = events_of(&app, &news)
        .await
        .into_iter()
        .filter(|(name, _)| name == "ChatChecked")
        .map(|(_, payload)| payload["ChatChecked"]["update_id"].clone())
        .collect();
    assert_eq!(checks, [json!(removed), json!(restored)]);
    listener.stop().await;
    app.cleanup().await;
}

/// Makes `id` a channel in the sandbox (an id of the -100... form is a supergroup otherwise).
async fn sandbox_channel(app: &TestApp, id: i64) {
    app.sandbox_post(
        "/sandbox/chats",
        json!({"chat_id": id, "type": "channel", "title": "News"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_update_is_handled_once_across_a_crash_and_a_restart() {
    let app = spawn_app().await;
    let (ws, _) = app.workspace_with_bot().await;
    let listener = app.listener();
    let first = say(&app, 4101, "/start").await;
    app.update_handled(first).await;
    // Its next poll confirms it to Telegram (the offset moves past it).
    app.eventually(
        "the first update confirmed",
        Duration::from_secs(10),
        || async { (app.sandbox.pending_updates(BOT) == 0).then_some(()) },
    )
    .await;

    // The listener dies; people go on writing meanwhile.
    listener.kill().await;
    let stop = say(&app, 4101, "/stop").await;
    let other = say(&app, 4102, "/start").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sandbox.pending_updates(BOT), 2, "nobody polled them");

    // A new listener takes them up from where the database says, each once.
    let listener = app.listener();
    app.update_handled(stop).await;
    app.update_handled(other).await;
    let contact = chat_of(&app, 4101).await.unwrap();
    let names: Vec<String> = events_of(&app, &contact)
        .await
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["ChatConnected", "ChatOptedOut"]);
    assert!(chat_of(&app, 4102).await.is_some());

    // The same update handed over again (Telegram redelivers when a confirmation is lost):
    // recorded already, nothing changes.
    let redelivered: teloxide::types::Update = serde_json::from_str(
        &json!({
            "update_id": stop,
            "message": {
                "message_id": 99, "date": chrono::Utc::now().timestamp(),
                "chat": {"id": 4101, "type": "private", "first_name": "Alice"},
                "from": {"id": 4101, "is_bot": false, "first_name": "Alice"},
                "text": "/start",
            }
        })
        .to_string(),
    )
    .unwrap();
    let bot_ref = listener::BotRef {
        bot_id: sqlx::query_scalar("SELECT bot_id FROM telegram_bot_identities")
            .fetch_one(&app.herald.pool)
            .await
            .unwrap(),
        workspace_id: ws.parse().unwrap(),
    };
    let handler = listener::Listener {
        pool: app.herald.worker_pool.clone(),
        store: store::EventStore::new(app.herald.worker_pool.clone()),
        cipher: app.herald.cipher.clone(),
        settings: app.herald.listener_settings().unwrap(),
    };
    let before = app.stored_events().await;
    assert!(!handler.handle(bot_ref, &redelivered).await.unwrap());
    assert_eq!(app.stored_events().await, before);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM bot_updates")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
    assert_eq!(rows, 3, "one row per update");
    listener.stop().await;
    app.cleanup().await;
}

/// A free loopback port for a webhook receiver.
fn free_addr() -> std::net::SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// What the sandbox says of the harness bot's webhook (`getWebhookInfo`).
async fn webhook_info(app: &TestApp) -> Value {
    let url = format!(
        "http://{}/bot{}/getWebhookInfo",
        app.sandbox_addr,
        system_tests::BOT_TOKEN
    );
    let answer: Value = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_mode_receives_pushed_updates_once_refuses_a_wrong_secret_and_hands_back_to_polling()
 {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let addr = free_addr();
    let listener = app.webhook_listener(addr);
    let hook: Value = app
        .eventually("the webhook set", Duration::from_secs(10), || async {
            let info = webhook_info(&app).await;
            (info["url"] != "").then_some(info)
        })
        .await;
    assert_eq!(hook["url"], format!("http://{addr}/telegram/{bot}"));
    // While a webhook is set, Telegram refuses getUpdates (409): nobody polls beside it.
    let poll = app
        .client
        .get(format!(
            "http://{}/bot{}/getUpdates",
            app.sandbox_addr,
            system_tests::BOT_TOKEN
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), StatusCode::CONFLICT);

    // Pushed updates become the chats' events, as polled ones do.
    let started = say(&app, 4101, "/start").await;
    app.update_handled(started).await;
    let alice = chat_of(&app, 4101).await.expect("a contact for the person");
    let stopped = say(&app, 4101, "/stop").await;
    app.update_handled(stopped).await;
    let shown = chat(&app, &ws, &alice).await;
    assert_eq!(shown["opted_out"], true, "{shown}");
    let events = events_of(&app, &alice).await;
    assert_eq!(events.len(), 2, "{events:?}");

    // A push without the bot's secret is refused and changes nothing; Telegram's retry of an
    // update already handled is answered 200 and changes nothing either.
    let receiver = format!("http://{addr}/telegram/{bot}");
    let replay = json!({
        "update_id": stopped,
        "message": {"message_id": 99, "date": 0, "chat": {"id": 4101, "type": "private", "first_name": "Alice"},
                    "from": {"id": 4101, "is_bot": false, "first_name": "Alice"}, "text": "/start",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}
    });
    let forged = app
        .client
        .post(&receiver)
        .header(listener::webhook::SECRET_HEADER, "guess")
        .json(&replay)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let bot_id: uuid::Uuid = bot.parse().unwrap();
    let secret = listener::webhook::secret(bot_id, system_tests::BOT_TOKEN);
    let retried = app
        .client
        .post(&receiver)
        .header(listener::webhook::SECRET_HEADER, &secret)
        .json(&replay)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(events_of(&app, &alice).await.len(), 2, "nothing twice");
    assert_eq!(chat(&app, &ws, &alice).await["opted_out"], true);

    // The receiver down: the sandbox keeps the update and pushes it again once it is back.
    listener.kill().await;
    let while_down = say(&app, 4101, "/start").await;
    let info = app
        .eventually(
            "a failed push reported",
            Duration::from_secs(10),
            || async {
                let info = webhook_info(&app).await;
                info.get("last_error_message").is_some().then_some(info)
            },
        )
        .await;
    assert_eq!(info["pending_update_count"], 1, "{info}");
    let listener = app.webhook_listener(addr);
    app.update_handled(while_down).await;
    assert_eq!(
        chat(&app, &ws, &alice).await["opted_out"],
        false,
        "/start again: subscribed"
    );
    listener.stop().await;

    // Back to polling: the poller removes the webhook and gets what waits.
    let polled = say(&app, 4101, "/stop").await;
    let listener = app.listener();
    app.update_handled(polled).await;
    assert_eq!(webhook_info(&app).await["url"], "");
    assert_eq!(chat(&app, &ws, &alice).await["opted_out"], true);
    assert_eq!(events_of(&app, &alice).await.len(), 4);
    listener.stop().await;
    app.cleanup().await;
}
