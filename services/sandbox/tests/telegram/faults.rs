//! Injected faults produce exactly the errors teloxide would get from the
//! real Telegram.

use std::time::{Duration, Instant};

use sandbox::{Fault, FaultRule};
use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{ChatId, Seconds};
use teloxide::{ApiError, RequestError};

use crate::common::{BOT_ID, Harness, OTHER_TOKEN, TOKEN, unlimited};

async fn send_with_fault(fault: Fault) -> (Harness, RequestError) {
    let h = Harness::start(unlimited()).await;
    h.sandbox.inject(FaultRule::new(fault).for_chat(42));
    let err = h
        .bot
        .send_message(ChatId(42), "hello")
        .await
        .expect_err("the fault applies");
    (h, err)
}

#[tokio::test]
async fn retry_after() {
    let (h, err) = send_with_fault(Fault::RetryAfter { retry_after: 7 }).await;
    assert!(
        matches!(err, RequestError::RetryAfter(s) if s == Seconds::from_seconds(7)),
        "{err:?}"
    );
    let stats = h.sandbox.stats();
    assert_eq!(
        (stats.faults_injected, stats.rate_limited, stats.accepted),
        (1, 1, 0)
    );
    // Spent after one use.
    h.bot
        .send_message(ChatId(42), "again")
        .await
        .expect("rule spent");
    assert_eq!(h.sandbox.messages(Some(42)).len(), 1);
}

#[tokio::test]
async fn bot_blocked() {
    let (_, err) = send_with_fault(Fault::Forbidden {
        description: "Forbidden: bot was blocked by the user".into(),
    })
    .await;
    assert!(
        matches!(err, RequestError::Api(ApiError::BotBlocked)),
        "{err:?}"
    );
}

#[tokio::test]
async fn forbidden_with_another_description() {
    let (_, err) = send_with_fault(Fault::Forbidden {
        description: "Forbidden: bot was kicked from the channel chat".into(),
    })
    .await;
    assert!(
        matches!(err, RequestError::Api(ApiError::BotKickedFromChannel)),
        "{err:?}"
    );
}

#[tokio::test]
async fn chat_not_found() {
    let (h, err) = send_with_fault(Fault::ChatNotFound).await;
    assert!(
        matches!(err, RequestError::Api(ApiError::ChatNotFound)),
        "{err:?}"
    );
    assert!(h.sandbox.messages(None).is_empty());
}

#[tokio::test]
async fn migrate_to_supergroup() {
    let (_, err) = send_with_fault(Fault::Migrate {
        to_chat_id: -1_001_234_567_890,
    })
    .await;
    assert!(
        matches!(
            err,
            RequestError::MigrateToChatId(ChatId(-1_001_234_567_890))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unauthorized() {
    let (_, err) = send_with_fault(Fault::Unauthorized).await;
    assert!(
        matches!(err, RequestError::Api(ApiError::InvalidToken)),
        "{err:?}"
    );
}

/// teloxide sleeps 10 s after any 5xx before returning, so this answer is
/// checked over raw HTTP to keep the test fast.
#[tokio::test]
async fn server_error_is_a_500_and_records_nothing() {
    let h = Harness::start(unlimited()).await;
    h.sandbox.inject(FaultRule::new(Fault::ServerError));
    let (status, body) = h
        .post_json(
            &format!("/bot{TOKEN}/sendMessage"),
            &json!({"chat_id": 42, "text": "hello"}),
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 500, "description": "Internal Server Error"})
    );
    assert!(h.sandbox.messages(None).is_empty());
    assert_eq!(h.sandbox.stats().faults_injected, 1);
}

#[tokio::test]
async fn accept_then_drop_is_a_network_error_but_the_message_went_out() {
    let (h, err) = send_with_fault(Fault::AcceptThenDrop).await;
    assert!(matches!(err, RequestError::Network(_)), "{err:?}");
    let recorded = h.sandbox.messages(Some(42));
    assert_eq!(recorded.len(), 1, "the message is recorded");
    assert_eq!(recorded[0].text, "hello");
    assert_eq!(h.sandbox.stats().accepted, 1);
    // The client can carry on over a new connection.
    let next = h.bot.send_message(ChatId(42), "next").await.expect("next");
    assert_eq!(next.id.0, 2);
}

#[tokio::test]
async fn latency_delays_a_normal_answer() {
    let h = Harness::start(unlimited()).await;
    h.sandbox.inject(FaultRule::new(Fault::Latency { ms: 400 }));
    let started = Instant::now();
    let message = h
        .bot
        .send_message(ChatId(42), "slow")
        .await
        .expect("answered");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(message.text(), Some("slow"));
    let started = Instant::now();
    h.bot
        .send_message(ChatId(42), "fast")
        .await
        .expect("answered");
    assert!(started.elapsed() < Duration::from_millis(400), "rule spent");
}

#[tokio::test]
async fn rules_match_chat_and_bot_and_apply_times_times() {
    let h = Harness::start(unlimited()).await;
    h.sandbox.inject(
        FaultRule::new(Fault::ChatNotFound)
            .for_chat(1)
            .for_bot(BOT_ID)
            .times(2),
    );
    h.bot
        .send_message(ChatId(2), "other chat")
        .await
        .expect("no match");
    let other_bot = h.bot_with_token(OTHER_TOKEN);
    other_bot
        .send_message(ChatId(1), "other bot")
        .await
        .expect("no match");
    for _ in 0..2 {
        let err = h
            .bot
            .send_message(ChatId(1), "x")
            .await
            .expect_err("matches");
        assert!(matches!(err, RequestError::Api(ApiError::ChatNotFound)));
    }
    h.bot.send_message(ChatId(1), "x").await.expect("spent");
    assert!(h.sandbox.faults().is_empty());
}

#[tokio::test]
async fn invalid_requests_fail_before_faults_apply() {
    let h = Harness::start(unlimited()).await;
    h.sandbox.inject(FaultRule::new(Fault::ChatNotFound));
    let err = h.bot.send_message(ChatId(1), "").await.expect_err("empty");
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageTextIsEmpty)),
        "{err:?}"
    );
    assert_eq!(h.sandbox.faults().len(), 1, "rule not spent");
}

#[tokio::test]
async fn faults_over_http() {
    let h = Harness::start(unlimited()).await;
    let rule = json!({
        "chat_id": 42,
        "fault": {"kind": "forbidden", "description": "Forbidden: bot was blocked by the user"},
        "times": 2,
    });
    let (status, _) = h.post_json("/sandbox/faults", &rule).await;
    assert_eq!(status, 204);
    let (status, body) = h.get("/sandbox/faults").await;
    assert_eq!(status, 200);
    assert_eq!(body["faults"][0]["times"], 2);
    let err = h
        .bot
        .send_message(ChatId(42), "x")
        .await
        .expect_err("blocked");
    assert!(matches!(err, RequestError::Api(ApiError::BotBlocked)));

    let (status, _) = h.delete("/sandbox/faults").await;
    assert_eq!(status, 204);
    h.bot
        .send_message(ChatId(42), "x")
        .await
        .expect("faults cleared");

    let (status, body) = h
        .post(
            "/sandbox/faults",
            "application/json",
            r#"{"fault": {"kind": "meteor"}}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_fault");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    let (status, _) = h
        .post("/sandbox/faults", "application/json", "not json")
        .await;
    assert_eq!(status, 400);
    // `times` defaults to 1.
    let (status, _) = h
        .post_json(
            "/sandbox/faults",
            &json!({"fault": {"kind": "chat_not_found"}}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(h.sandbox.faults()[0].times, 1);
}
