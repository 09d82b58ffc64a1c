//! Every delivery failure class has its own event and consequence, tested over real HTTP
//! against the sandbox Telegram: blocked chats, migrations, revoked tokens, in-doubt sends and
//! their resolution, reschedules, hourly caps, and the safety stats that report them.

use std::time::Duration;

use reqwest::StatusCode;
use sandbox::{Fault, FaultRule};
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

fn delivery<'a>(post: &'a Value, chat: &str) -> &'a Value {
    post["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["chat_id"] == chat)
        .unwrap()
}

async fn audit_types(app: &TestApp, ws: &str) -> Vec<(String, String)> {
    let (_, audit) = app
        .get(&format!("/v1/workspaces/{ws}/audit?limit=1000"))
        .await;
    audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn wait_for_audit(app: &TestApp, ws: &str, event_type: &str) -> Vec<(String, String)> {
    app.eventually(
        &format!("{event_type} in the audit log"),
        Duration::from_secs(10),
        || async {
            let types = audit_types(app, ws).await;
            types.iter().any(|(t, _)| t == event_type).then_some(types)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_blocks_the_chat_and_later_posts_are_refused_at_planning() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 11001).await;
    let description = "Forbidden: bot was blocked by the user";
    app.sandbox.inject(
        FaultRule::new(Fault::Forbidden {
            description: description.into(),
        })
        .for_chat(11001),
    );
    let post = app.plan(&ws, &[&chat], "hello", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(delivery(&settled, &chat)["status"], "failed");

    let (status, body) = app
        .post(&format!("/v1/workspaces/{ws}/posts"), json!({"chat_ids": [chat], "text": "again", "publish_at": chrono::Utc::now().to_rfc3339()}))
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
            .contains("blocked by the user")
    );

    let (_, stats) = app
        .get(&format!("/v1/workspaces/{ws}/chats/{chat}/safety-stats"))
        .await;
    assert_eq!(stats["state"], "blocked", "{stats}");
    assert_eq!(stats["forbidden_last_hour"], 1);
    assert_eq!(stats["can_send_now"], false);
    wait_for_audit(&app, &ws, "ChatBlocked").await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_group_gets_the_post_once_under_its_new_id() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, -12001).await;
    let new_id = -1_001_200_120_001;
    app.sandbox
        .inject(FaultRule::new(Fault::Migrate { to_chat_id: new_id }).for_chat(-12001));
    let post = app.plan(&ws, &[&chat], "moved", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(
        delivery(&settled, &chat)["status"],
        "delivered",
        "{settled}"
    );
    assert!(app.sandbox.messages(Some(-12001)).is_empty());
    assert_eq!(app.sandbox.messages(Some(new_id)).len(), 1);
    let (_, stats) = app
        .get(&format!("/v1/workspaces/{ws}/chats/{chat}/safety-stats"))
        .await;
    assert_eq!(
        stats["telegram_chat_id"], new_id,
        "the chat id was rewritten"
    );
    wait_for_audit(&app, &ws, "ChatMigrated").await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_pauses_the_bot_keeps_the_queue_and_a_new_token_resumes_it() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 13001).await;
    app.sandbox
        .inject(FaultRule::new(Fault::Unauthorized).for_chat(13001));
    let post = app
        .plan(&ws, &[&chat], "after the new token", Duration::ZERO)
        .await;
    app.approve(&ws, &post).await;

    let stats = app
        .eventually(
            "the circuit breaker to open",
            Duration::from_secs(10),
            || async {
                let (_, stats) = app
                    .get(&format!("/v1/workspaces/{ws}/bots/{bot}/safety-stats"))
                    .await;
                (stats["circuit_breaker"] == "open").then_some(stats)
            },
        )
        .await;
    assert!(stats["paused_reason"].as_str().unwrap().contains("401"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        delivery(&app.post_state(&ws, &post).await, &chat)["status"],
        "pending",
        "the queue is kept"
    );
    assert!(app.sandbox.messages(None).is_empty());

    // Another bot's token is refused; the same bot's new token resumes delivery.
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/bots/{bot}/token"),
            Some(json!({"token": "999:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("token_for_another_bot")
        )
    );
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/bots/{bot}/token"),
            Some(json!({"token": "123456:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(delivery(&settled, &chat)["status"], "delivered");
    assert_eq!(app.sandbox.messages(Some(13001)).len(), 1);
    let types = wait_for_audit(&app, &ws, "BotTokenReplaced").await;
    assert!(
        types
            .iter()
            .any(|(t, a)| t == "BotPaused" && a == "service:delivery"),
        "{types:?}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_resolves_in_doubt_deliveries_and_the_resolution_is_audited() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let a = app.connect_chat(&ws, &bot, 14001).await;
    let b = app.connect_chat(&ws, &bot, 14002).await;
    app.sandbox
        .inject(FaultRule::new(Fault::AcceptThenDrop).for_chat(14001));
    app.sandbox
        .inject(FaultRule::new(Fault::AcceptThenDrop).for_chat(14002));
    let post = app.plan(&ws, &[&a, &b], "maybe", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(delivery(&settled, &a)["status"], "unknown");

    let resolve =
        |chat: &str| format!("/v1/workspaces/{ws}/posts/{post}/deliveries/{chat}/resolve");
    // The operator saw the message in chat A, and asks to resend to chat B.
    let body = app
        .post_ok(
            &resolve(&a),
            json!({"resolution": "mark_delivered", "telegram_message_id": 1}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(delivery(&body, &a)["status"], "delivered");
    app.post_ok(
        &resolve(&b),
        json!({"resolution": "resend"}),
        StatusCode::OK,
    )
    .await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    assert_eq!(
        app.sandbox.messages(Some(14001)).len(),
        1,
        "A was not resent"
    );
    assert_eq!(
        app.sandbox.messages(Some(14002)).len(),
        2,
        "B was resent once, as asked"
    );

    let (status, body) = app
        .post(&resolve(&a), json!({"resolution": "resend"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("delivery_not_in_doubt"))
    );
    let (status, body) = app.post(&resolve(&a), json!({"resolution": "shrug"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_resolution"))
    );
    let types = wait_for_audit(&app, &ws, "DeliveryResolved").await;
    assert_eq!(
        types
            .iter()
            .filter(|(t, a)| {
                t == "DeliveryResolved" && *a == identity::bootstrap_admin_id().to_string()
            })
            .count(),
        2,
        "{types:?}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_may_choose_to_resend_in_doubt_deliveries_explicitly() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 15001).await;
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/policy"),
            Some(json!({"in_doubt": "sometimes"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_policy"))
    );
    app.set_in_doubt_policy(&ws, "resend").await;
    app.sandbox
        .inject(FaultRule::new(Fault::AcceptThenDrop).for_chat(15001));
    let post = app
        .plan(&ws, &[&chat], "resent by policy", Duration::ZERO)
        .await;
    app.approve(&ws, &post).await;
    let settled = app
        .eventually("the policy to resend", Duration::from_secs(15), || async {
            let post = app.post_state(&ws, &post).await;
            (post["state"] == "delivered").then_some(post)
        })
        .await;
    assert_eq!(delivery(&settled, &chat)["status"], "delivered");
    assert_eq!(
        app.sandbox.messages(Some(15001)).len(),
        2,
        "the policy knowingly risks the duplicate"
    );
    let types = wait_for_audit(&app, &ws, "DeliveryResolved").await;
    assert!(
        types.contains(&("DeliveryResolved".into(), "policy:in_doubt_resend".into())),
        "{types:?}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescheduling_before_the_send_wins() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 16001).await;
    let post = app
        .plan(&ws, &[&chat], "moved later", Duration::from_secs(2))
        .await;
    app.approve(&ws, &post).await;
    let new_time = chrono::Utc::now() + chrono::TimeDelta::seconds(5);
    let body = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts/{post}/reschedule"),
            json!({"publish_at": new_time.to_rfc3339()}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(body["state"], "approved");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        app.sandbox.messages(Some(16001)).is_empty(),
        "not sent at the old time"
    );
    app.settled(&ws, &post, Duration::from_secs(15)).await;
    let received = app.sandbox.messages(Some(16001));
    assert_eq!(received.len(), 1);
    assert!(
        received[0].received_at >= new_time - chrono::TimeDelta::milliseconds(10),
        "sent at the new time"
    );
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts/{post}/reschedule"),
            json!({"publish_at": new_time.to_rfc3339()}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_transition"))
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_caps_hold_and_safety_stats_say_when_the_next_slot_is() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 17001).await;
    let limits = format!("/v1/workspaces/{ws}/chats/{chat}/limits");
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &limits,
            Some(json!({"hourly_cap": 5000})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_hourly_cap")),
        "above Telegram's limit"
    );
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &limits,
            Some(json!({"hourly_cap": 2})),
        )
        .await;
    assert_eq!(
        (status, body["hourly_cap"].as_u64()),
        (StatusCode::OK, Some(2))
    );
    // The projection carries the cap to delivery; give it a moment before the posts are due.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut posts = Vec::new();
    for i in 0..3 {
        posts.push(
            app.plan(&ws, &[&chat], &format!("capped {i}"), Duration::ZERO)
                .await,
        );
    }
    for post in &posts {
        app.approve(&ws, post).await;
    }
    app.settled(&ws, &posts[1], Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.sandbox.messages(Some(17001)).len(),
        2,
        "the third waits for the next hour"
    );
    assert_eq!(
        delivery(&app.post_state(&ws, &posts[2]).await, &chat)["status"],
        "pending"
    );

    let (_, stats) = app
        .get(&format!("/v1/workspaces/{ws}/chats/{chat}/safety-stats"))
        .await;
    assert_eq!(stats["sent_last_hour"], 2, "{stats}");
    assert_eq!(stats["hourly_cap"], 2);
    assert_eq!(stats["can_send_now"], false);
    let next: chrono::DateTime<chrono::Utc> =
        stats["next_free_slot"].as_str().unwrap().parse().unwrap();
    assert!(
        next > chrono::Utc::now() + chrono::TimeDelta::minutes(59),
        "{next}"
    );
    assert!(stats["warning"].as_str().is_some());
    let (_, bot_stats) = app
        .get(&format!("/v1/workspaces/{ws}/bots/{bot}/safety-stats"))
        .await;
    assert_eq!(
        (
            bot_stats["sent_last_hour"].as_i64(),
            bot_stats["can_send_now"].as_bool()
        ),
        (Some(2), Some(true)),
        "{bot_stats}"
    );
    assert_eq!(bot_stats["circuit_breaker"], "closed");
    app.cleanup().await;
}
