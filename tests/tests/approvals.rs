//! Staged approvals through the HTTP API: a chat's policy, stages in order, four eyes for the
//! author and the last editor, edits that void approvals, rejection back to draft, comments,
//! and the post's history with its actors.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

struct Team {
    ann: String,
    ed: String,
    lea: String,
    leo: String,
    ids: std::collections::HashMap<&'static str, String>,
}

/// Ann the author; Ed, Lea and Leo approvers. Returns their sessions and ids.
async fn team(app: &TestApp, ws: &str) -> Team {
    let mut ids = std::collections::HashMap::new();
    let mut sessions = Vec::new();
    for (login, role) in [
        ("ann", "author"),
        ("ed", "approver"),
        ("lea", "approver"),
        ("leo", "approver"),
    ] {
        let id = app.person(login).await;
        app.grant(ws, &id, role).await;
        ids.insert(login, id);
        sessions.push(app.sign_in(login).await);
    }
    let leo = sessions.pop().unwrap();
    let lea = sessions.pop().unwrap();
    let ed = sessions.pop().unwrap();
    let ann = sessions.pop().unwrap();
    Team {
        ann,
        ed,
        lea,
        leo,
        ids,
    }
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let body = (!body.is_null()).then_some(body);
    app.request_as(Some(token), method, path, body).await
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_post_passes_its_chats_stages_in_order_and_an_edit_voids_its_approvals() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 8001).await;
    let t = team(&app, &ws).await;
    let w = format!("/v1/workspaces/{ws}");

    // Legal (Lea and Leo, both) after the editor stage (Ed, or an admin).
    let policy = json!({ "stages": [
        { "name": "editor", "roles": ["admin"], "users": [t.ids["ed"]] },
        { "name": "legal", "users": [t.ids["lea"], t.ids["leo"]], "rule": "all" },
    ]});
    let (status, answer) = app
        .request(
            Method::PUT,
            &format!("{w}/chats/{chat}/approval-policy"),
            Some(policy),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["standard"], false);
    // A policy that could never be met is refused with its reason.
    let (status, answer) = app
        .request(
            Method::PUT,
            &format!("{w}/chats/{chat}/approval-policy"),
            Some(json!({ "stages": [{ "name": "legal", "roles": ["approver"], "rule": "all" }] })),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
        "{answer}"
    );

    let publish_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (status, planned) = call(
        &app,
        &t.ann,
        Method::POST,
        &format!("{w}/posts"),
        json!({ "chat_ids": [chat], "text": "launch", "publish_at": publish_at }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{planned}");
    let post = planned["id"].as_str().unwrap().to_owned();
    let p = format!("{w}/posts/{post}");
    let approve = format!("{p}/approve");

    let (_, view) = app.get(&p).await;
    assert_eq!(view["approval"]["waiting_for"], 0, "{view}");
    assert_eq!(view["approval"]["stages"][1]["name"], "legal");

    let refusals = [
        (&t.ann, StatusCode::FORBIDDEN, "forbidden"), // an author's role may not approve
        (&t.lea, StatusCode::FORBIDDEN, "not_an_approver"), // legal waits for the editor stage
    ];
    for (token, status, expected) in refusals {
        let (got, answer) = call(&app, token, Method::POST, &approve, json!({})).await;
        assert_eq!((got, code(&answer)), (status, expected), "{answer}");
    }
    let (status, answer) = call(&app, &t.ed, Method::POST, &approve, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["state"], "planned");
    assert_eq!(answer["approval"]["waiting_for"], 1);
    let (status, answer) = call(&app, &t.ed, Method::POST, &approve, json!({})).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "not_an_approver"),
        "{answer}"
    );
    let (status, answer) = call(&app, &t.lea, Method::POST, &approve, json!({})).await;
    assert_eq!(
        (status, answer["state"].as_str()),
        (StatusCode::OK, Some("planned")),
        "{answer}"
    );
    let (status, answer) = call(&app, &t.lea, Method::POST, &approve, json!({})).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "already_approved_by_you")
    );
    let (status, answer) = call(&app, &t.leo, Method::POST, &approve, json!({})).await;
    assert_eq!(
        (status, answer["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{answer}"
    );

    // Lea edits the approved post: every approval is void, and she may not approve it now.
    // (An approver may not edit: editing is planning.)
    let (status, answer) = call(&app, &t.lea, Method::PATCH, &p, json!({ "text": "x" })).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (status, answer) = call(
        &app,
        &t.ann,
        Method::PATCH,
        &p,
        json!({ "text": "launch, <b>revised</b>", "parse_mode": "HTML", "publish_at": soon }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["state"], "planned");
    assert_eq!(answer["approval"]["waiting_for"], 0);
    assert_eq!(answer["last_editor_id"], t.ids["ann"].as_str());
    assert_eq!(answer["approval"]["stages"][0]["approved_by"], json!([]));

    // Its time has come, but it is not approved: nothing goes out.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(app.sandbox.messages(Some(8001)).is_empty());
    for token in [&t.ed, &t.lea, &t.leo] {
        let (status, answer) = call(&app, token, Method::POST, &approve, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let settled = app.settled(&ws, &post, Duration::from_secs(20)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    let received = app.sandbox.messages(Some(8001));
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].text, "launch, <b>revised</b>");
    assert_eq!(received[0].parse_mode.as_deref(), Some("HTML"));

    // Once it went out, it can no longer be edited.
    let (status, answer) = call(&app, &t.ann, Method::PATCH, &p, json!({ "text": "late" })).await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "invalid_transition"),
        "{answer}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_rejection_sends_the_post_back_to_draft_and_the_history_says_who_did_what() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 8101).await;
    let t = team(&app, &ws).await;
    let w = format!("/v1/workspaces/{ws}");
    let publish_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, planned) = call(
        &app,
        &t.ann,
        Method::POST,
        &format!("{w}/posts"),
        json!({ "chat_ids": [chat], "text": "teh news", "publish_at": publish_at }),
    )
    .await;
    let post = planned["id"].as_str().unwrap().to_owned();
    let p = format!("{w}/posts/{post}");

    let (status, answer) = call(
        &app,
        &t.ed,
        Method::POST,
        &format!("{p}/reject"),
        json!({ "reason": "typo in the first word" }),
    )
    .await;
    assert_eq!(
        (status, answer["state"].as_str()),
        (StatusCode::OK, Some("draft")),
        "{answer}"
    );
    let (status, answer) = call(
        &app,
        &t.ed,
        Method::POST,
        &format!("{p}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "invalid_transition"),
        "{answer}"
    );
    let (status, _) = call(
        &app,
        &t.ed,
        Method::POST,
        &format!("{p}/comments"),
        json!({ "text": "\"teh\" should be \"the\"" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = call(
        &app,
        &t.ann,
        Method::POST,
        &format!("{p}/comments"),
        json!({ "text": "  " }),
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment")
    );
    // A viewer may read but not comment.
    let viewer = app.person("vic").await;
    app.grant(&ws, &viewer, "viewer").await;
    let vic = app.sign_in("vic").await;
    let (status, _) = call(
        &app,
        &vic,
        Method::POST,
        &format!("{p}/comments"),
        json!({ "text": "hm" }),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, answer) = call(
        &app,
        &t.ann,
        Method::PATCH,
        &p,
        json!({ "text": "the news" }),
    )
    .await;
    assert_eq!(
        (status, answer["state"].as_str()),
        (StatusCode::OK, Some("planned")),
        "{answer}"
    );
    let (status, answer) = call(
        &app,
        &t.lea,
        Method::POST,
        &format!("{p}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, answer["state"].as_str()),
        (StatusCode::OK, Some("approved")),
        "{answer}"
    );

    // The history, from the audit, names every step and its actor.
    let expected = [
        ("PostPlanned", "ann"),
        ("PostRejected", "ed"),
        ("PostCommented", "ed"),
        ("PostEdited", "ann"),
        ("PostApprovalGiven", "lea"),
        ("PostApproved", "lea"),
    ];
    let history = app
        .eventually("the post's history", Duration::from_secs(10), || async {
            let (_, body) = app.get(&format!("{p}/history")).await;
            let events = body["events"].as_array()?.clone();
            (events.len() >= expected.len()).then_some(events)
        })
        .await;
    let steps: Vec<(String, String)> = history
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let wanted: Vec<(String, String)> = expected
        .iter()
        .map(|(event, login)| ((*event).to_owned(), t.ids[login].clone()))
        .collect();
    assert_eq!(steps, wanted);
    assert_eq!(history[1]["details"]["reason"], "typo in the first word");
    assert_eq!(history[2]["details"]["text"], "\"teh\" should be \"the\"");
    // The calendar follows: draft after the rejection, approved now.
    app.eventually(
        "the calendar to show it approved",
        Duration::from_secs(10),
        || async {
            let (_, calendar) = app.get(&format!("{w}/calendar")).await;
            (calendar["entries"][0]["state"] == "approved").then_some(())
        },
    )
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn a_post_not_approved_in_time_expires_instead_of_going_out_late() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 8201).await;
    let t = team(&app, &ws).await;
    let w = format!("/v1/workspaces/{ws}");
    // Due nearly five minutes ago (the latest "as soon as possible" allows): two seconds
    // left to approve it.
    let publish_at = (chrono::Utc::now() - chrono::Duration::seconds(298)).to_rfc3339();
    let (status, planned) = call(
        &app,
        &t.ann,
        Method::POST,
        &format!("{w}/posts"),
        json!({ "chat_ids": [chat], "text": "stale news", "publish_at": publish_at }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{planned}");
    let post = planned["id"].as_str().unwrap().to_owned();
    let p = format!("{w}/posts/{post}");
    app.eventually("the post to expire", Duration::from_secs(15), || async {
        let (_, body) = app.get(&p).await;
        (body["state"] == "expired").then_some(())
    })
    .await;
    let (status, answer) = call(
        &app,
        &t.ed,
        Method::POST,
        &format!("{p}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::CONFLICT, "invalid_transition"),
        "{answer}"
    );
    let history = app
        .eventually(
            "the expiry in the history",
            Duration::from_secs(10),
            || async {
                let (_, body) = app.get(&format!("{p}/history")).await;
                let events = body["events"].as_array()?.clone();
                events
                    .iter()
                    .any(|e| e["event_type"] == "PostExpired")
                    .then_some(events)
            },
        )
        .await;
    let expiry = history
        .iter()
        .find(|e| e["event_type"] == "PostExpired")
        .unwrap();
    assert_eq!(expiry["actor"], delivery::expiry::ACTOR);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        app.sandbox.messages(Some(8201)).is_empty(),
        "an expired post went out"
    );

    // An edit with a new time resubmits it.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let (status, answer) = call(
        &app,
        &t.ann,
        Method::PATCH,
        &p,
        json!({ "text": "fresh news", "publish_at": soon }),
    )
    .await;
    assert_eq!(
        (status, answer["state"].as_str()),
        (StatusCode::OK, Some("planned")),
        "{answer}"
    );
    let (status, answer) = call(
        &app,
        &t.ed,
        Method::POST,
        &format!("{p}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let settled = app.settled(&ws, &post, Duration::from_secs(20)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    let texts: Vec<String> = app
        .sandbox
        .messages(Some(8201))
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(texts, ["fresh news"]);
    app.cleanup().await;
}
