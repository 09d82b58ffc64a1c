//! People and service accounts through the HTTP API: sign-in, sessions, API tokens with
//! scopes, revocation, roles in workspaces, and the actor of every command.

use std::time::Duration;

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::spawn_app;

const PASSWORD: &str = system_tests::TEST_PASSWORD;

fn publish_at() -> String {
    (chrono::Utc::now() + chrono::TimeDelta::minutes(30)).to_rfc3339()
}

#[tokio::test]
async fn people_act_under_their_own_id_within_their_role_and_their_tokens_scope() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 4242).await;
    let alice = app.person("alice").await;
    let bob = app.person("bob").await;
    app.grant(&ws, &alice, "author").await;
    app.grant(&ws, &bob, "approver").await;
    let alice_session = app.sign_in("alice").await;
    let bob_session = app.sign_in("bob").await;
    let as_ = |token: &str, method: Method, path: String, body: Option<Value>| {
        let token = token.to_owned();
        let app = &app;
        async move { app.request_as(Some(&token), method, &path, body).await }
    };

    // Who am I.
    let (status, me) = as_(&alice_session, Method::GET, "/v1/me".into(), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["user"]["login"], "alice");
    assert_eq!(me["user"]["id"], alice.as_str());

    // The author plans; the approver may not; the author may not approve; the approver does.
    let plan = json!({ "chat_ids": [chat], "text": "hello", "publish_at": publish_at() });
    let (status, body) = as_(
        &bob_session,
        Method::POST,
        format!("/v1/workspaces/{ws}/posts"),
        Some(plan.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = as_(
        &alice_session,
        Method::POST,
        format!("/v1/workspaces/{ws}/posts"),
        Some(plan.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let post = body["id"].as_str().unwrap().to_owned();
    let approve = format!("/v1/workspaces/{ws}/posts/{post}/approve");
    let (status, body) = as_(
        &alice_session,
        Method::POST,
        approve.clone(),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = as_(&bob_session, Method::POST, approve.clone(), Some(json!({}))).await;
    assert!(status.is_success(), "{status} {body}");

    // Four eyes: whoever may approve still may not approve their own post.
    let own = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            plan.clone(),
            StatusCode::CREATED,
        )
        .await;
    let own = own["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts/{own}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "four_eyes");
    let (status, body) = as_(
        &bob_session,
        Method::POST,
        format!("/v1/workspaces/{ws}/posts/{own}/approve"),
        Some(json!({})),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");

    // The audit names each one by id (and only an admin or auditor reads it).
    let (status, _) = as_(
        &alice_session,
        Method::GET,
        format!("/v1/workspaces/{ws}/audit"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let actors = app
        .eventually(
            "the audit to show both actors",
            Duration::from_secs(15),
            || async {
                let (_, audit) = app.get(&format!("/v1/workspaces/{ws}/audit")).await;
                let entries = audit["events"].as_array().cloned().unwrap_or_default();
                let actor = |kind: &str| {
                    entries
                        .iter()
                        .find(|e| e["event_type"] == kind)
                        .map(|e| e["actor"].as_str().unwrap_or_default().to_owned())
                };
                Some((actor("PostPlanned")?, actor("PostApproved")?))
            },
        )
        .await;
    assert_eq!(actors, (alice.clone(), bob.clone()));

    // Another workspace looks exactly like one that does not exist.
    let other = app
        .post_ok(
            "/v1/workspaces",
            json!({ "name": "Other" }),
            StatusCode::CREATED,
        )
        .await;
    let other = other["id"].as_str().unwrap();
    let (status, foreign) = as_(
        &alice_session,
        Method::GET,
        format!("/v1/workspaces/{other}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, missing) = as_(
        &alice_session,
        Method::GET,
        format!("/v1/workspaces/{}", uuid::Uuid::now_v7()),
        None,
    )
    .await;
    assert_eq!(foreign["error"]["code"], missing["error"]["code"]);
    assert_eq!(foreign["error"]["code"], "workspace_not_found");
    // Nor does a percent-encoded id slip past the check.
    let encoded: String = other
        .chars()
        .map(|c| format!("%{:02X}", c as u32))
        .collect();
    let (status, _) = as_(
        &alice_session,
        Method::GET,
        format!("/v1/workspaces/{encoded}"),
        None,
    )
    .await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
        "{status}"
    );

    // Users are the instance administrators' business.
    let (status, _) = as_(
        &alice_session,
        Method::POST,
        "/v1/users".into(),
        Some(json!({ "login": "eve", "name": "Eve", "password": PASSWORD })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A read-only API token reads and cannot plan; revoked, it stops at the next request.
    let (status, issued) = as_(
        &alice_session,
        Method::POST,
        format!("/v1/users/{alice}/tokens"),
        Some(json!({ "name": "reports", "scopes": ["read"], "expires_in_days": 30 })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let token = issued["token"].as_str().unwrap();
    let (status, _) = as_(
        token,
        Method::GET,
        format!("/v1/workspaces/{ws}/posts/{post}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = as_(
        token,
        Method::POST,
        format!("/v1/workspaces/{ws}/posts"),
        Some(plan.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["needs_scope"], "write");
    let (_, listed) = as_(
        &alice_session,
        Method::GET,
        format!("/v1/users/{alice}/tokens"),
        None,
    )
    .await;
    assert!(
        !listed.to_string().contains(token),
        "a listing never shows a secret"
    );
    let (status, _) = as_(
        &bob_session,
        Method::GET,
        format!("/v1/users/{alice}/tokens"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "nobody else lists a user's tokens"
    );
    let token_id = issued["id"].as_str().unwrap();
    let (status, _) = as_(
        &alice_session,
        Method::DELETE,
        format!("/v1/users/{alice}/tokens/{token_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = as_(
        token,
        Method::GET,
        format!("/v1/workspaces/{ws}/posts/{post}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A disabled user's session stops at once; signing out ends a session.
    let (status, _) = app
        .post(&format!("/v1/users/{bob}/disable"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = as_(&bob_session, Method::GET, "/v1/me".into(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = as_(
        &alice_session,
        Method::DELETE,
        "/v1/sessions/current".into(),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = as_(&alice_session, Method::GET, "/v1/me".into(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Who gave whom which role, and who took it away, is in the workspace's audit.
    let (status, _) = app
        .request(
            Method::DELETE,
            &format!("/v1/workspaces/{ws}/members/{bob}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let admin = identity::bootstrap_admin_id().to_string();
    let roles = app
        .eventually(
            "the role changes in the audit",
            Duration::from_secs(10),
            || async {
                let (_, audit) = app
                    .get(&format!("/v1/workspaces/{ws}/audit?limit=1000"))
                    .await;
                let changes: Vec<(String, String, String, String)> = audit["events"]
                    .as_array()?
                    .iter()
                    .filter(|e| {
                        e["event_type"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with("MemberRole")
                    })
                    .map(|e| {
                        let field =
                            |k: &str| e["details"][k].as_str().unwrap_or_default().to_owned();
                        (
                            e["event_type"].as_str().unwrap().to_owned(),
                            e["actor"].as_str().unwrap().to_owned(),
                            field("user_id"),
                            field("role"),
                        )
                    })
                    .collect();
                (changes.len() == 4).then_some(changes)
            },
        )
        .await;
    let granted = |user: &str, role: &str| {
        (
            "MemberRoleGranted".to_owned(),
            admin.clone(),
            user.to_owned(),
            role.to_owned(),
        )
    };
    assert_eq!(
        roles,
        [
            granted(&admin, "admin"), // the creator of the workspace
            granted(&alice, "author"),
            granted(&bob, "approver"),
            (
                "MemberRoleRevoked".to_owned(),
                admin.clone(),
                bob.clone(),
                String::new()
            ),
        ]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn invitations_set_a_password_and_failed_sign_ins_are_limited() {
    let app = spawn_app().await;
    let invited = app
        .post_ok(
            "/v1/users",
            json!({ "login": "carol", "name": "Carol" }),
            StatusCode::CREATED,
        )
        .await;
    let invitation = invited["invitation"]["token"].as_str().unwrap().to_owned();
    let accept = |password: &str| {
        let body = json!({ "token": invitation, "password": password });
        let app = &app;
        async move {
            app.request_as(None, Method::POST, "/v1/invitations/accept", Some(body))
                .await
        }
    };
    let (status, body) = accept("short").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "weak_password");
    let (status, _) = accept(PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = accept(PASSWORD).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an invitation is used once");
    app.sign_in("carol").await;

    let wrong = json!({ "login": "carol", "password": "not the password" });
    for _ in 0..identity::MAX_FAILED_SIGN_INS {
        let (status, body) = app
            .request_as(None, Method::POST, "/v1/sessions", Some(wrong.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "bad_credentials");
    }
    // Now even the right password waits, and an unknown login is answered like a known one.
    let right = json!({ "login": "carol", "password": PASSWORD });
    let (status, body) = app
        .request_as(None, Method::POST, "/v1/sessions", Some(right))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "too_many_attempts");
    assert!(body["error"]["retry_after"].as_u64().unwrap() > 0);
    let (status, body) = app
        .request_as(
            None,
            Method::POST,
            "/v1/sessions",
            Some(json!({ "login": "nobody", "password": PASSWORD })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "bad_credentials");
    app.cleanup().await;
}
