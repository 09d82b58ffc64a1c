//! The dry-run through HTTP: the message as Telegram shows it, the workspace's rules with
//! their fixes, the targets' standing, quiet hours, a rate forecast among scheduled posts, a
//! block that holds approval until the text is fixed, and a test send to the sandbox.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::spawn_app;

fn findings<'a>(answer: &'a Value, rule: &str) -> Vec<&'a Value> {
    answer["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == rule)
        .collect()
}

#[tokio::test]
async fn findings_name_the_rule_and_fix_and_a_block_holds_approval_until_the_text_is_fixed() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let alice = app.connect_chat(&ws, &bot, 101).await;
    let bob = app.connect_chat(&ws, &bot, 102).await;
    let carol = app.connect_chat(&ws, &bot, 103).await;
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/chats/{bob}/opt-out"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Carol's quiet hours are now.
    let now = Utc::now();
    let hhmm = |t: chrono::DateTime<Utc>| t.format("%H:%M").to_string();
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/workspaces/{ws}/chats/{carol}/audience-rules"),
            Some(json!({"time_zone": "UTC", "quiet_hours": {
                "start": hhmm(now - TimeDelta::hours(1)), "end": hhmm(now + TimeDelta::hours(1)),
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/workspaces/{ws}/rules"),
            Some(json!({
                "link_domains": {"deny": ["Evil.Example"]},
                "forbidden_words": [{"word": "guaranteed", "severity": "block"}],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["rules"]["link_domains"]["deny"],
        json!(["evil.example"])
    );
    let (_, workspace) = app.get(&format!("/v1/workspaces/{ws}")).await;
    assert_eq!(workspace["rules"], body["rules"]);

    let dry_run = format!("/v1/workspaces/{ws}/posts/dry-run");
    let answer = app
        .post_ok(
            &dry_run,
            json!({
                "chat_ids": [alice, bob, carol],
                "text": "<b>Guaranteed</b> returns: <a href=\"https://www.evil.example/x\">here</a> or http://evil.example/y",
                "parse_mode": "HTML",
            }),
            StatusCode::OK,
        )
        .await;
    assert_eq!(
        answer["render"]["text"],
        "Guaranteed returns: here or http://evil.example/y"
    );
    assert_eq!(answer["render"]["limit"], 4096);
    assert_eq!(answer["render"]["entities"][1]["type"], "text_link");
    assert_eq!(answer["blocked"], true);
    let word = findings(&answer, "forbidden_word");
    assert_eq!(word.len(), 1, "{answer}");
    assert_eq!(word[0]["severity"], "block");
    assert!(word[0]["fix"].as_str().unwrap().contains("guaranteed"));
    let links = findings(&answer, "link_domain_denied");
    assert_eq!(
        links.len(),
        2,
        "a text link and a URL in the text: {answer}"
    );
    assert!(links.iter().all(|f| f["severity"] == "block"));
    assert!(
        links[0]["reason"]
            .as_str()
            .unwrap()
            .contains("www.evil.example")
    );
    assert!(links[1]["reason"].as_str().unwrap().contains("in the text"));
    let opted = findings(&answer, "opted_out");
    assert_eq!(opted.len(), 1);
    assert_eq!(
        (opted[0]["severity"].as_str(), opted[0]["chat_id"].as_str()),
        (Some("block"), Some(bob.as_str()))
    );
    assert!(!opted[0]["fix"].as_str().unwrap().is_empty());
    let quiet = findings(&answer, "quiet_hours");
    assert_eq!(quiet.len(), 1, "{answer}");
    assert_eq!(quiet[0]["severity"], "warn");
    assert_eq!(quiet[0]["chat_id"], carol.as_str());
    assert!(quiet[0]["reason"].as_str().unwrap().contains("until"));
    assert!(
        answer["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["fix"].as_str().is_some_and(|s| !s.is_empty()))
    );
    // Two reachable targets, one deferred past its quiet hours.
    assert_eq!(answer["forecast"]["messages"], 2);

    // Markup Telegram cannot parse: the parse error, nothing rendered.
    let answer = app
        .post_ok(
            &dry_run,
            json!({"chat_ids": [alice], "text": "1 < 2", "parse_mode": "HTML"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(answer["render"], Value::Null);
    assert_eq!(answer["parse_error"]["code"], "text_unparseable");
    let parse = findings(&answer, "text_unparseable");
    assert_eq!(parse[0]["severity"], "block");
    assert!(
        parse[0]["reason"]
            .as_str()
            .unwrap()
            .contains("Unsupported start tag")
    );
    assert!(parse[0]["fix"].as_str().unwrap().contains("&lt;"));

    // Planning accepts the word; approval does not, and says why.
    let post = app
        .plan(
            &ws,
            &[&alice],
            "Guaranteed returns",
            Duration::from_secs(3600),
        )
        .await;
    let (_, checked) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts/{post}/dry-run"),
            json!({}),
        )
        .await;
    assert_eq!(checked["blocked"], true, "{checked}");
    let approve = format!("/v1/workspaces/{ws}/posts/{post}/approve");
    let (status, body) = app
        .request_as(
            Some(&app.reviewer_token),
            Method::POST,
            &approve,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "blocked_by_rules");
    assert_eq!(body["error"]["findings"][0]["rule"], "forbidden_word");
    // The fix: edit the text; then it goes through.
    let publish_at = (Utc::now() + TimeDelta::hours(1)).to_rfc3339();
    let (status, body) = app
        .request(
            Method::PATCH,
            &format!("/v1/workspaces/{ws}/posts/{post}"),
            Some(json!({"text": "Solid returns", "parse_mode": null, "publish_at": publish_at})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.approve(&ws, &post).await;
    assert_eq!(app.post_state(&ws, &post).await["state"], "approved");
    app.cleanup().await;
}

#[tokio::test]
async fn the_forecast_of_ninety_chats_says_three_seconds_and_names_a_colliding_post() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chats = app.import_chats(&ws, &bot, 10_000, 90).await;
    let other_chat = app.connect_chat(&ws, &bot, 20_000).await;
    let publish_at = (Utc::now() + TimeDelta::hours(2)).to_rfc3339();
    let other = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"chat_ids": [other_chat], "text": "other", "publish_at": publish_at}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"chat_ids": chats, "text": "ninety", "publish_at": publish_at});
    let path = format!("/v1/workspaces/{ws}/posts/dry-run");
    // The other post reaches the delivery schedule a moment after it is planned.
    let answer = app
        .eventually(
            "the other post in the forecast",
            Duration::from_secs(20),
            || async {
                let (status, answer) = app.post(&path, body.clone()).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                let named = answer["forecast"]["collides_with"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["post_id"] == other.as_str());
                named.then_some(answer)
            },
        )
        .await;
    let forecast = &answer["forecast"];
    assert_eq!(forecast["messages"], 90);
    let secs = forecast["duration_secs"].as_f64().unwrap();
    // 30 a second: 3 s alone, a second more behind the other post's message.
    assert!((3.0..=4.0).contains(&secs), "{forecast}");
    assert!(!findings(&answer, "rate_collision").is_empty(), "{answer}");
    assert_eq!(answer["blocked"], false);
    app.cleanup().await;
}

#[tokio::test]
async fn a_test_send_arrives_in_the_sandbox() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 301).await;
    let answer = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts/dry-run?test_send=777"),
            json!({"chat_ids": [chat], "text": "<b>preview</b>", "parse_mode": "HTML"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(answer["test_send"]["sent"], true, "{answer}");
    let received = app.sandbox.messages(Some(777));
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].text, "<b>preview</b>");
    // Nothing was planned, and the target itself got nothing.
    assert!(app.sandbox.messages(Some(301)).is_empty());
    let (_, list) = app.get(&format!("/v1/workspaces/{ws}/posts")).await;
    assert_eq!(list["posts"], json!([]));
    app.cleanup().await;
}

#[tokio::test]
async fn a_dry_run_to_a_segment_counts_its_reachable_members_and_leaves_the_others_out() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let members = app.import_chats(&ws, &bot, 30_000, 40).await;
    for id in &members {
        let (status, body) = app
            .request(
                Method::PUT,
                &format!("/v1/workspaces/{ws}/chats/{id}/tags"),
                Some(json!({"tags": ["club"]})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Two members opted out: planning would leave them out, so the dry-run does too.
    for id in &members[..2] {
        app.post_ok(
            &format!("/v1/workspaces/{ws}/chats/{id}/opt-out"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    }
    let channel = app.connect_chat(&ws, &bot, -100_300_000).await;
    let segment = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/segments"),
            json!({"name": "club", "tags_any": ["club"]}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/workspaces/{ws}/posts/dry-run");
    let answer = app
        .eventually("the segment's members", Duration::from_secs(10), || async {
            let body =
                json!({"chat_ids": [channel], "segment_ids": [segment], "text": "hello club"});
            let (status, answer) = app.post(&path, body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            (answer["audience"]["targets"] == 39).then_some(answer)
        })
        .await;
    assert_eq!(
        answer["audience"],
        json!({"targets": 39, "from_segments": 38, "excluded": 2})
    );
    assert_eq!(answer["forecast"]["messages"], 39, "{answer}");
    assert!(findings(&answer, "opted_out").is_empty(), "{answer}");
    assert_eq!(answer["blocked"], false, "{answer}");
    // Planning agrees with the dry-run.
    let planned = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"chat_ids": [channel], "segment_ids": [segment], "text": "hello club",
                   "publish_at": (Utc::now() + TimeDelta::hours(1)).to_rfc3339()}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(
        (planned["targets"].clone(), planned["excluded"].clone()),
        (json!(39), json!(2))
    );
    // A segment of another workspace, or none at all, is a clear 4xx.
    let (status, answer) = app
        .post(
            &path,
            json!({"segment_ids": [uuid::Uuid::new_v4()], "text": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "invalid_segment");
    app.cleanup().await;
}
