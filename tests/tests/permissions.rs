//! Walks every cell of the permission matrix (`docs/permissions.md`) through the HTTP API: each
//! role, and a user with no role, against every workspace route; then each token scope. The expected table is written
//! out here, from the document, not derived from the code it checks.

use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::{TestApp, spawn_app};

const ROLES: [&str; 5] = ["viewer", "author", "approver", "auditor", "admin"];

/// A member with `role` (or none) and their session.
async fn member(app: &TestApp, ws: &str, login: &str, role: Option<&str>) -> String {
    let id = app.person(login).await;
    if let Some(role) = role {
        app.grant(ws, &id, role).await;
    }
    app.sign_in(login).await
}

#[tokio::test]
async fn every_role_may_do_exactly_what_the_matrix_says_and_strangers_see_no_workspace() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 5001).await;
    let other_chat = app.connect_chat(&ws, &bot, 5002).await;
    let post = app
        .plan(
            &ws,
            &[&chat],
            "matrix",
            std::time::Duration::from_secs(3600),
        )
        .await;
    let target = app
        .post_ok(
            "/v1/users",
            json!({ "login": "target", "name": "Target" }),
            StatusCode::CREATED,
        )
        .await["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut sessions = Vec::new();
    for role in ROLES {
        let login = format!("{role}-member");
        sessions.push((Some(role), member(&app, &ws, &login, Some(role)).await));
    }
    sessions.push((None, member(&app, &ws, "stranger", None).await));

    let w = format!("/v1/workspaces/{ws}");
    let everyone = &ROLES[..];
    // (method, path, roles allowed, token scope needed), as docs/permissions.md has them.
    let cells: Vec<(Method, String, &[&str], &str)> = vec![
        (Method::GET, w.clone(), everyone, "read"),
        (Method::GET, format!("{w}/posts/{post}"), everyone, "read"),
        (
            Method::GET,
            format!("{w}/posts/{post}/deliveries"),
            everyone,
            "read",
        ),
        (Method::GET, format!("{w}/calendar"), everyone, "read"),
        (Method::GET, format!("{w}/bots"), everyone, "read"),
        (Method::GET, format!("{w}/operations"), everyone, "read"),
        (
            Method::GET,
            format!("{w}/sandbox/messages"),
            everyone,
            "read",
        ),
        (
            Method::GET,
            format!("{w}/posts/{post}/history"),
            everyone,
            "read",
        ),
        (
            Method::GET,
            format!("{w}/posts?waiting_for=me"),
            everyone,
            "read",
        ),
        (
            Method::GET,
            format!("{w}/chats/{chat}/approval-policy"),
            everyone,
            "read",
        ),
        (
            Method::PATCH,
            format!("{w}/posts/{post}"),
            &["author", "admin"],
            "write",
        ),
        (
            Method::POST,
            format!("{w}/posts/{post}/comments"),
            &["author", "approver", "admin"],
            "write",
        ),
        (
            Method::PUT,
            format!("{w}/chats/{chat}/approval-policy"),
            &["admin"],
            "admin",
        ),
        (Method::GET, format!("{w}/members"), everyone, "read"),
        (
            Method::GET,
            format!("{w}/bots/{bot}/safety-stats"),
            everyone,
            "read",
        ),
        (
            Method::GET,
            format!("{w}/chats/{chat}/safety-stats"),
            everyone,
            "read",
        ),
        (
            Method::GET,
            format!("{w}/audit"),
            &["auditor", "admin"],
            "read",
        ),
        (
            Method::POST,
            format!("{w}/posts"),
            &["author", "admin"],
            "write",
        ),
        (
            Method::POST,
            format!("{w}/posts/dry-run"),
            &["author", "admin"],
            "write",
        ),
        (
            Method::POST,
            format!("{w}/posts/{post}/dry-run"),
            &["author", "admin"],
            "write",
        ),
        (Method::GET, format!("{w}/rules"), everyone, "read"),
        (Method::PUT, format!("{w}/rules"), &["admin"], "admin"),
        (
            Method::POST,
            format!("{w}/posts/{post}/reschedule"),
            &["author", "admin"],
            "write",
        ),
        (
            Method::POST,
            format!("{w}/posts/{post}/cancel"),
            &["author", "admin"],
            "write",
        ),
        (
            Method::POST,
            format!("{w}/chats/{other_chat}/opt-out"),
            &["author", "approver", "admin"],
            "write",
        ),
        (
            Method::POST,
            format!("{w}/posts/{post}/approve"),
            &["approver", "admin"],
            "approve",
        ),
        (
            Method::POST,
            format!("{w}/posts/{post}/reject"),
            &["approver", "admin"],
            "approve",
        ),
        (
            Method::POST,
            format!("{w}/posts/{post}/deliveries/{chat}/resolve"),
            &["approver", "admin"],
            "approve",
        ),
        (Method::POST, format!("{w}/bots"), &["admin"], "admin"),
        (
            Method::PUT,
            format!("{w}/bots/{bot}/token"),
            &["admin"],
            "admin",
        ),
        (
            Method::PUT,
            format!("{w}/bots/{bot}/limits"),
            &["admin"],
            "admin",
        ),
        (Method::POST, format!("{w}/chats"), &["admin"], "admin"),
        (
            Method::POST,
            format!("{w}/chats/import"),
            &["admin"],
            "admin",
        ),
        (
            Method::PUT,
            format!("{w}/chats/{chat}/limits"),
            &["admin"],
            "admin",
        ),
        (Method::PUT, format!("{w}/policy"), &["admin"], "admin"),
        (Method::PUT, format!("{w}/privacy"), &["admin"], "admin"),
        (
            Method::POST,
            format!("{w}/posts/{post}/erase"),
            &["admin"],
            "admin",
        ),
        (
            Method::PUT,
            format!("{w}/members/{target}"),
            &["admin"],
            "admin",
        ),
        (
            Method::DELETE,
            format!("{w}/members/{target}"),
            &["admin"],
            "admin",
        ),
        (Method::POST, "/v1/workspaces".into(), &[], "admin"),
        (Method::POST, "/v1/users".into(), &[], "admin"),
        (Method::GET, "/v1/users".into(), &[], "admin"),
        (
            Method::POST,
            format!("/v1/users/{target}/disable"),
            &[],
            "admin",
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, allowed, _) in &cells {
        for (role, token) in &sessions {
            // An empty body: a permitted request may then fail validation, never authorisation.
            let (status, body) = app
                .request_as(Some(token), method.clone(), path, Some(json!({})))
                .await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let forbidden = status == StatusCode::FORBIDDEN && code == "forbidden";
            let hidden = status == StatusCode::NOT_FOUND && code == "workspace_not_found";
            let in_workspace = path.starts_with(&w);
            let verdict = match role {
                None if in_workspace => hidden,
                None => forbidden,
                Some(role) if allowed.contains(role) => !forbidden && !hidden,
                Some(_) => forbidden,
            };
            if !verdict {
                wrong.push(format!("{method} {path} as {role:?}: {status} {code}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that disagree with the matrix:\n{}",
        wrong.join("\n")
    );

    // Token scopes: a workspace admin's API tokens, one scope each, may do exactly the cells
    // of their scope; any other is refused, naming the scope it needs.
    let admin = member(&app, &ws, "scoped-admin", Some("admin")).await;
    let admin_id = identity::user_id_for_login("scoped-admin");
    let mut tokens = Vec::new();
    for scope in ["read", "write", "approve", "admin"] {
        let (status, body) = app
            .request_as(
                Some(&admin),
                Method::POST,
                &format!("/v1/users/{admin_id}/tokens"),
                Some(json!({ "name": scope, "scopes": [scope] })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        tokens.push((scope, body["token"].as_str().unwrap().to_owned()));
    }
    for (method, path, _, needed) in cells.iter().filter(|c| c.1.starts_with(&w)) {
        for (scope, token) in &tokens {
            let (status, body) = app
                .request_as(Some(token), method.clone(), path, Some(json!({})))
                .await;
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let refused = status == StatusCode::FORBIDDEN
                && code == "forbidden"
                && body["error"]["needs_scope"] == *needed;
            let verdict = if scope == needed {
                !refused && status != StatusCode::FORBIDDEN
            } else {
                refused
            };
            if !verdict {
                wrong.push(format!(
                    "{method} {path} with a {scope} token: {status} {body}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "cells that disagree with the token scopes:\n{}",
        wrong.join("\n")
    );
    app.cleanup().await;
}
