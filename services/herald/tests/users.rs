//! `herald users`: people and service accounts from the command line, usable through the API.

use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::{TestApp, spawn_app};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

#[tokio::test]
async fn users_made_on_the_command_line_sign_in_and_use_their_tokens() {
    let app = spawn_app().await;
    let run = |args: &[&str]| {
        let mut command = app.herald_process(HERALD, "users");
        command.args(args);
        TestApp::run_to_end(command)
    };

    // A person gets an invitation, accepted through the API.
    let (ok, out, err) = run(&["add", "dora", "--name", "Dora"]);
    assert!(ok, "{err}");
    let invitation = out
        .split_whitespace()
        .find(|w| w.starts_with("hrd_"))
        .expect("an invitation token")
        .to_owned();
    let (status, body) = app
        .request_as(
            None,
            Method::POST,
            "/v1/invitations/accept",
            Some(json!({ "token": invitation, "password": "dora's long password" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["login"], "dora");

    // A service account gets a read token, printed once, that the API accepts.
    let (ok, _, err) = run(&["add", "ci", "--name", "CI", "--service"]);
    assert!(ok, "{err}");
    let (ok, token, err) = run(&[
        "token", "ci", "--name", "reports", "--scopes", "read", "--days", "1",
    ]);
    assert!(ok, "{err}");
    let (status, me) = app
        .request_as(Some(token.trim()), Method::GET, "/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["login"], "ci");
    assert_eq!(me["scopes"], json!(["read"]));

    // Listed; disabled, the token stops; mistakes are explained.
    let (ok, list, _) = run(&["list"]);
    assert!(ok && list.contains("dora") && list.contains("ci") && list.contains("admin"));
    let (ok, _, err) = run(&["disable", "ci"]);
    assert!(ok, "{err}");
    let (status, _) = app
        .request_as(Some(token.trim()), Method::GET, "/v1/me", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (ok, _, err) = run(&["token", "dora", "--name", "x", "--scopes", "everything"]);
    assert!(!ok && err.contains("unknown scope"), "{err}");
    let (ok, _, err) = run(&["add", "dora", "--name", "Dora again"]);
    assert!(!ok && err.contains("taken"), "{err}");
    app.cleanup().await;
}
