//! Router-level checks without a database: the contract in openapi.json matches the router,
//! and authentication guards every /v1 route.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use platform::{Secret, TokenCipher};
use tower::ServiceExt;

fn app() -> axum::Router {
    // A lazy pool never connects unless a handler queries it; these requests stop before that.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(200))
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    api::router(api::AppState {
        store: store::EventStore::new(pool.clone()),
        pool,
        bus: None,
        cipher: TokenCipher::from_base64_key(&TokenCipher::generate_key()).unwrap(),
        telegram_api: None,
        sandbox: false,
        desk_dir: None,
        admin_token: Arc::new(Secret::new("t".into())),
    })
}

async fn call(method: &str, path: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_v1_route_needs_a_token() {
    let doc: serde_json::Value = serde_json::from_str(api::OPENAPI).unwrap();
    let id = "00000000-0000-0000-0000-000000000001";
    for (path, operations) in doc["paths"].as_object().unwrap() {
        let concrete = ["{ws}", "{id}", "{user}", "{token}", "{chat}"]
            .iter()
            .fold(path.clone(), |p, name| p.replace(name, id));
        for method in operations.as_object().unwrap().keys() {
            let (status, body) = call(&method.to_uppercase(), &concrete, None).await;
            assert_ne!(
                body["error"]["code"], "no_such_route",
                "{method} {path} is documented but not routed"
            );
            if path.starts_with("/v1/workspaces") {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} must need a token"
                );
                assert_eq!(body["error"]["code"], "unauthorized");
            }
        }
    }
}

#[tokio::test]
async fn wrong_token_and_unknown_routes_get_json_errors() {
    let (status, body) = call("GET", "/v1/workspaces/x/calendar", Some("wrong")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let (status, body) = call("GET", "/v2/nothing", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_such_route"))
    );
    let (status, body) = call("GET", "/v1/workspaces/not-a-uuid", Some("t")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_id"))
    );
}
