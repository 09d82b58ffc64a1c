//! No personal data or secrets in logs or NATS headers: canary values planted in a contact's
//! and a person's names, a group's title, a post's text, a comment, an opt-out reason and a bot
//! token go through the whole pipeline (API, relay, projections, delivery, the bot's listener)
//! with every log at debug level captured, and none of them appears in a log line, a NATS
//! subject or a NATS header (and a person's name in no NATS payload: it travels sealed).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;
use system_tests::spawn_app;

/// Every log line of this test binary.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const CANARIES: &[&str] = &[
    "CanaryContactName",
    "CanaryFirstName",
    "CanaryGroupTitle",
    "CanaryPostText",
    "CanaryCommentText",
    "CanaryDisplayName",
    "CanaryOptOutReason",
    // The secret half of the harness's bot token.
    "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canaries_never_reach_logs_or_nats_headers() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let app = spawn_app().await;
    let nats = async_nats::connect(
        std::env::var("HERALD_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into()),
    )
    .await
    .unwrap();
    let mut seen = nats
        .subscribe(format!("{}.>", app.herald.config.nats_prefix))
        .await
        .unwrap();
    let listener = app.listener();
    let (ws, bot) = app.workspace_with_bot().await;
    // Its post texts and comments are sealed too (decision 0013).
    let (status, _) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/privacy"),
            Some(json!({"seal_post_texts": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let contact = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/chats"),
            json!({"bot_id": bot, "telegram_chat_id": 6001, "title": "CanaryContactName", "lawful_basis": "consent"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let group_id = -6002_i64;
    app.sandbox_post(
        "/sandbox/chats",
        json!({"chat_id": group_id, "type": "group", "title": "CanaryGroupTitle"}),
    )
    .await;
    let group = app.connect_chat(&ws, &bot, group_id).await;
    app.person_writes(6003, "CanaryFirstName", "/start").await;
    app.post_ok(
        "/v1/users",
        json!({"login": "dora", "name": "CanaryDisplayName", "password": system_tests::TEST_PASSWORD}),
        StatusCode::CREATED,
    )
    .await;

    let post = app
        .plan(&ws, &[&contact, &group], "CanaryPostText", Duration::ZERO)
        .await;
    app.post_ok(
        &format!("/v1/workspaces/{ws}/posts/{post}/comments"),
        json!({"text": "CanaryCommentText"}),
        StatusCode::CREATED,
    )
    .await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(20)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    app.eventually(
        "the contact from /start",
        Duration::from_secs(15),
        || async {
            let (_, found) = app
                .get(&format!("/v1/workspaces/{ws}/chats?telegram_chat_id=6003"))
                .await;
            (found["chats"].as_array().is_some_and(|c| c.len() == 1)).then_some(())
        },
    )
    .await;
    app.post_ok(
        &format!("/v1/workspaces/{ws}/chats/{contact}/opt-out"),
        json!({"reason": "CanaryOptOutReason"}),
        StatusCode::OK,
    )
    .await;
    // The audit saw everything (so the projections ran over the canaries too).
    app.eventually(
        "the opt-out in the audit",
        Duration::from_secs(15),
        || async {
            let (_, audit) = app
                .get(&format!("/v1/workspaces/{ws}/audit?limit=200"))
                .await;
            audit["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["event_type"] == "ChatOptedOut")
                .then_some(())
        },
    )
    .await;

    // What NATS carried: subjects and headers, never the canaries (payloads are the
    // integration events, which carry titles and texts by design).
    let mut messages = 0;
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(500), seen.next()).await
    {
        messages += 1;
        let headers = message
            .headers
            .as_ref()
            .map(|h| format!("{h:?}"))
            .unwrap_or_default();
        for canary in CANARIES {
            assert!(
                !message.subject.contains(canary) && !headers.contains(canary),
                "{canary} in NATS subject {} or headers {headers}",
                message.subject
            );
        }
        // People's names, and this workspace's post texts and comments, travel sealed under
        // their own keys, payloads included.
        let payload = String::from_utf8_lossy(&message.payload);
        for name in [
            "CanaryContactName",
            "CanaryFirstName",
            "CanaryPostText",
            "CanaryCommentText",
        ] {
            assert!(
                !payload.contains(name),
                "{name} in a NATS payload on {}",
                message.subject
            );
        }
    }
    assert!(messages > 10, "the events went over NATS ({messages} seen)");
    listener.stop().await;
    app.cleanup().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        logs.lines().count() > 50,
        "debug logs were captured: {}",
        logs.lines().count()
    );
    // The logs name what happened by ids: the capture holds the pipeline's own lines.
    assert!(
        logs.contains(&contact),
        "the contact's id is logged somewhere"
    );
    for canary in CANARIES {
        let leaks: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(canary))
            .take(3)
            .collect();
        assert!(leaks.is_empty(), "{canary} in the logs: {leaks:#?}");
    }
}
