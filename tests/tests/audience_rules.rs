//! Quiet hours and caps, through the API and real delivery: a send that would break them is
//! deferred to the next allowed moment (shown on the post and the chat) or skipped with the
//! reason, as the rules say.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

async fn put(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    app.request(Method::PUT, path, Some(body)).await
}

/// A quiet window, in UTC, from an hour ago to `end` (whole minutes).
fn quiet_until(end: chrono::DateTime<Utc>) -> Value {
    let start = end - TimeDelta::hours(2);
    json!({"start": start.format("%H:%M").to_string(), "end": end.format("%H:%M").to_string()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_in_quiet_hours_waits_for_their_end_and_is_delivered_then() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let alice = app.connect_chat(&ws, &bot, 5001).await;
    // The window ends at the next whole minute that is at least 5 s away.
    let mut end = (Utc::now() + TimeDelta::minutes(1))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();
    if end - Utc::now() < TimeDelta::seconds(5) {
        end += TimeDelta::minutes(1);
    }
    let (status, body) = put(
        &app,
        &format!("/v1/workspaces/{ws}/chats/{alice}/audience-rules"),
        json!({"time_zone": "UTC", "quiet_hours": quiet_until(end)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["audience_rules"]["on_violation"], "defer");

    let post = app
        .plan(&ws, &[&alice], "good morning", Duration::ZERO)
        .await;
    app.approve(&ws, &post).await;
    let waiting = app
        .eventually("the delivery to wait", Duration::from_secs(15), || async {
            let body = app.post_state(&ws, &post).await;
            let waiting = body["deliveries"][0]["waiting"].clone();
            (!waiting.is_null()).then_some(waiting)
        })
        .await;
    assert_eq!(waiting["reason"], "quiet_hours", "{waiting}");
    let until: chrono::DateTime<Utc> = waiting["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(until, end);
    let (_, chat) = app.get(&format!("/v1/workspaces/{ws}/chats/{alice}")).await;
    assert_eq!(chat["waiting"]["reason"], "quiet_hours", "{chat}");
    assert!(
        app.sandbox.messages(Some(5001)).is_empty(),
        "nothing during quiet hours"
    );

    let settled = app
        .settled(
            &ws,
            &post,
            (end - Utc::now()).to_std().unwrap() + Duration::from_secs(20),
        )
        .await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    let received = app.sandbox.messages(Some(5001));
    assert_eq!(received.len(), 1);
    assert!(
        received[0].received_at >= end,
        "sent at {} before the window's end {end}",
        received[0].received_at
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_rules_skip_with_the_reason_and_caps_defer_to_the_next_day() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let bob = app.connect_chat(&ws, &bot, 5002).await;
    let carol = app.connect_chat(&ws, &bot, 5003).await;
    let rules = format!("/v1/workspaces/{ws}/audience-rules");
    let later = Utc::now().duration_trunc(TimeDelta::minutes(1)).unwrap() + TimeDelta::hours(1);
    let (status, body) = put(
        &app,
        &rules,
        json!({"time_zone": "UTC", "quiet_hours": quiet_until(later), "on_violation": "skip"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, shown) = app.get(&format!("/v1/workspaces/{ws}")).await;
    assert_eq!(shown["audience_rules"]["on_violation"], "skip");

    // Bob has no rules of his own: the workspace's skip him, with the reason.
    let post = app.plan(&ws, &[&bob], "news", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    let delivery = &settled["deliveries"][0];
    assert_eq!(delivery["status"], "failed", "{settled}");
    assert!(
        delivery["error"].as_str().unwrap().contains("quiet hours"),
        "{delivery}"
    );
    assert!(app.sandbox.messages(Some(5002)).is_empty());

    // Carol's own rules replace the workspace's: one post a day, in Asia/Tokyo.
    let (status, body) = put(
        &app,
        &format!("/v1/workspaces/{ws}/chats/{carol}/audience-rules"),
        json!({"time_zone": "Asia/Tokyo", "max_per_day": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let first = app.plan(&ws, &[&carol], "one", Duration::ZERO).await;
    app.approve(&ws, &first).await;
    let settled = app.settled(&ws, &first, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    let second = app.plan(&ws, &[&carol], "two", Duration::ZERO).await;
    app.approve(&ws, &second).await;
    let waiting = app
        .eventually(
            "the second post to wait",
            Duration::from_secs(15),
            || async {
                let body = app.post_state(&ws, &second).await;
                let waiting = body["deliveries"][0]["waiting"].clone();
                (!waiting.is_null()).then_some(waiting)
            },
        )
        .await;
    assert_eq!(waiting["reason"], "daily_cap", "{waiting}");
    // The next midnight in Tokyo (UTC+9, no daylight saving) is 15:00 UTC.
    let until: chrono::DateTime<Utc> = waiting["until"].as_str().unwrap().parse().unwrap();
    assert_eq!((until.hour(), until.minute()), (15, 0), "{until}");
    assert!(until > Utc::now() && until <= Utc::now() + TimeDelta::hours(24));
    assert_eq!(app.sandbox.messages(Some(5003)).len(), 1);

    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_that_cannot_hold_are_refused_with_the_reason() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 5004).await;
    let path = format!("/v1/workspaces/{ws}/chats/{chat}/audience-rules");
    for body in [
        json!({"time_zone": "Mars/Olympus", "max_per_day": 1}),
        json!({"time_zone": "UTC", "quiet_hours": {"start": "22:00", "end": "22:00"}}),
        json!({"time_zone": "UTC", "quiet_hours": {"start": "25:00", "end": "08:00"}}),
        json!({"time_zone": "UTC", "max_per_week": 0}),
        json!({"time_zone": "UTC"}),
        json!({"quiet_hours": {"start": "22:00", "end": "08:00"}}),
        json!({"time_zone": "UTC", "max_per_day": 1, "on_violation": "drop"}),
    ] {
        let (status, answer) = put(&app, &path, body.clone()).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("invalid_audience_rules")
            ),
            "{body} -> {answer}"
        );
    }
    let (status, body) = put(&app, &path, Value::Null).await;
    assert_eq!(
        (status, body["audience_rules"].clone()),
        (StatusCode::OK, Value::Null)
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segments_quiet_hours_hold_its_members_unless_they_have_their_own() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let member = app.connect_chat(&ws, &bot, 5101).await;
    let own_rules = app.connect_chat(&ws, &bot, 5102).await;
    let channel = app.connect_chat(&ws, &bot, -100_510_300).await;
    for chat in [&member, &own_rules] {
        let (status, body) = put(
            &app,
            &format!("/v1/workspaces/{ws}/chats/{chat}/tags"),
            json!({"tags": ["night-owls"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let segment = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/segments"),
            json!({"name": "night owls", "tags_any": ["night-owls"]}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Quiet for the next hour and more, for members reached through the segment.
    let end = (Utc::now() + TimeDelta::hours(1))
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap();
    let (status, body) = put(
        &app,
        &format!("/v1/workspaces/{ws}/segments/{segment}/audience-rules"),
        json!({"time_zone": "UTC", "quiet_hours": quiet_until(end)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, shown) = app
        .get(&format!("/v1/workspaces/{ws}/segments/{segment}"))
        .await;
    assert_eq!(
        shown["audience_rules"]["quiet_hours"]["end"],
        end.format("%H:%M").to_string()
    );
    // A member's own rules win over the segment's: a cap it has not reached.
    let (status, _) = put(
        &app,
        &format!("/v1/workspaces/{ws}/chats/{own_rules}/audience-rules"),
        json!({"time_zone": "UTC", "max_per_day": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Invalid rules for a segment are refused like a chat's.
    let (status, body) = put(
        &app,
        &format!("/v1/workspaces/{ws}/segments/{segment}/audience-rules"),
        json!({"time_zone": "Mars/Olympus", "max_per_day": 1}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_audience_rules")
        )
    );

    // The dry-run says so before anything is planned.
    let body = json!({"chat_ids": [channel], "segment_ids": [segment], "text": "late news"});
    let answer = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts/dry-run"),
            body,
            StatusCode::OK,
        )
        .await;
    let quiet: Vec<&Value> = answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "quiet_hours")
        .collect();
    assert_eq!(quiet.len(), 1, "the member alone: {answer}");
    assert_eq!(quiet[0]["chat_id"], member.as_str(), "{answer}");

    let post = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"chat_ids": [channel], "segment_ids": [segment], "text": "late news",
                   "publish_at": Utc::now().to_rfc3339()}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.approve(&ws, &post).await;
    let body = app
        .eventually(
            "the member to wait, the others delivered",
            Duration::from_secs(20),
            || async {
                let body = app.post_state(&ws, &post).await;
                let delivered = body["counts"]["delivered"] == 2;
                let waiting = body["deliveries"]
                    .as_array()?
                    .iter()
                    .any(|d| d["chat_id"] == member.as_str() && !d["waiting"].is_null());
                (delivered && waiting).then_some(body)
            },
        )
        .await;
    let held = body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["chat_id"] == member.as_str())
        .unwrap();
    assert_eq!(held["waiting"]["reason"], "quiet_hours", "{held}");
    assert!(
        app.sandbox.messages(Some(5101)).is_empty(),
        "nothing in the segment's quiet hours"
    );
    assert_eq!(
        app.sandbox.messages(Some(5102)).len(),
        1,
        "its own rules allow it"
    );
    assert_eq!(
        app.sandbox.messages(Some(-100_510_300)).len(),
        1,
        "not reached through the segment"
    );
    app.cleanup().await;
}
