//! Every way a request can be refused before a handler runs answers with Herald's error shape
//! `{"error":{"code","message"}}`, a 4xx status and a stable code; and the server protects
//! itself from clients that are slow to send their request head or body.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use platform::{Secret, Shutdown, TokenCipher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const TOKEN: &str = "t";
const ID: &str = "00000000-0000-0000-0000-000000000001";

/// An app whose database is `database` (never reached by these requests unless said so).
fn state(database: &str, acquire_timeout: Duration) -> api::AppState {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(acquire_timeout)
        .connect_lazy(database)
        .unwrap();
    api::AppState {
        store: store::EventStore::new(pool.clone()),
        pool,
        bus: None,
        cipher: TokenCipher::from_base64_key(&TokenCipher::generate_key()).unwrap(),
        telegram_api: None,
        sandbox: false,
        desk_dir: None,
        admin_token: Arc::new(Secret::new(TOKEN.into())),
    }
}

fn unreachable_database() -> api::AppState {
    state(
        "postgres://nobody@127.0.0.1:1/none",
        Duration::from_millis(200),
    )
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: serde_json::Value,
    raw: String,
}

async fn send(router: axum::Router, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        raw,
    }
}

/// Asserts the status, the JSON error shape (exactly `code` and a non-empty `message`, with an
/// `application/json` content type) and the code.
fn assert_error(what: &str, answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(
        answer.status, status,
        "{what}: status (body {:?})",
        answer.raw
    );
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}, body {:?}",
        answer.raw
    );
    let error = answer.body["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no error object in {:?}", answer.raw));
    assert_eq!(
        answer.body.as_object().unwrap().len(),
        1,
        "{what}: only `error` at the top level: {}",
        answer.body
    );
    assert_eq!(error["code"], code, "{what}: code in {}", answer.body);
    let message = error["message"].as_str().unwrap_or("");
    assert!(
        message.len() > 10,
        "{what}: a human sentence, got {message:?}"
    );
}

fn request(method: &str, path: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
}

#[tokio::test]
async fn every_rejection_is_a_json_error_with_a_stable_code() {
    let app = api::router(unreachable_database());
    let big = vec![b' '; (1 << 20) + 1];
    let mut big_json = b"{\"name\":\"".to_vec();
    big_json.extend(std::iter::repeat_n(b'a', 1 << 20));
    big_json.extend(b"\"}");
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "ids in the path that are not UUIDs",
            request("GET", "/v1/workspaces/not-a-uuid/posts/also-bad")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "a path segment that is not percent-encoded UTF-8",
            request("GET", "/v1/workspaces/%FF%FE/posts/also-bad")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "a path segment that is not percent-encoded UTF-8, with a body extractor",
            request("POST", &format!("/v1/workspaces/{ID}/posts/%C3%28/reject"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "wrong method on a /v1 route",
            request("DELETE", "/v1/workspaces")
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "wrong method on a /v1 route without a token: the token is checked first",
            Request::builder()
                .method("DELETE")
                .uri("/v1/workspaces")
                .body(Body::empty())
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong method on a /v1 route with parameters",
            request("PUT", &format!("/v1/workspaces/{ID}/posts/{ID}"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "wrong method on a probe",
            Request::builder()
                .method("POST")
                .uri("/healthz")
                .body(Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "unknown route",
            request("GET", "/v2/nothing").body(Body::empty()).unwrap(),
            StatusCode::NOT_FOUND,
            "no_such_route",
        ),
        (
            "no token",
            Request::builder()
                .method("GET")
                .uri(format!("/v1/workspaces/{ID}"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "a query parameter of the wrong type",
            request("GET", &format!("/v1/workspaces/{ID}/audit?limit=ten"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "a query string that is not percent-encoded UTF-8",
            request("GET", &format!("/v1/workspaces/{ID}/audit?after=%FF"))
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "a JSON body without a content type",
            request("POST", "/v1/workspaces")
                .body(Body::from(r#"{"name":"Acme"}"#))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "a body that is not JSON",
            request("POST", "/v1/workspaces")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("name=Acme"))
                .unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "malformed JSON",
            request("POST", "/v1/workspaces")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"name":"#))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "JSON with a field of the wrong type",
            request("POST", "/v1/workspaces")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"name":42}"#))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "an optional body that is not JSON",
            request("POST", &format!("/v1/workspaces/{ID}/posts/{ID}/reject"))
                .body(Body::from("because"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            "a JSON body over the limit",
            request("POST", "/v1/workspaces")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(big_json))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "an optional body over the limit",
            request("POST", &format!("/v1/workspaces/{ID}/posts/{ID}/reject"))
                .body(Body::from(big))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "a bad correlation id",
            request("POST", &format!("/v1/workspaces/{ID}/posts/{ID}/approve"))
                .header("x-correlation-id", "not allowed!")
                .body(Body::empty())
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_correlation_id",
        ),
    ];
    for (what, request, status, code) in cases {
        let answer = send(app.clone(), request).await;
        assert_error(what, &answer, status, code);
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert!(
                answer.headers.contains_key(header::ALLOW),
                "{what}: 405 names the allowed methods"
            );
        }
    }
}

fn short_limits() -> api::Limits {
    api::Limits {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(600),
        ..api::Limits::default()
    }
}

#[tokio::test]
async fn a_body_that_stalls_is_408_body_timeout() {
    let app = api::router_with_limits(unreachable_database(), short_limits());
    // The first bytes arrive, the rest never does.
    let stalled = futures_stream();
    let answer = send(
        app,
        request("POST", "/v1/workspaces")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from_stream(stalled))
            .unwrap(),
    )
    .await;
    assert_error(
        "a stalled body",
        &answer,
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
    );
}

/// A body stream that yields one chunk and then never ends.
fn futures_stream()
-> impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send + 'static {
    use futures::StreamExt;
    futures::stream::once(async { Ok(axum::body::Bytes::from_static(b"{\"name\":")) })
        .chain(futures::stream::pending())
}

#[tokio::test]
async fn a_request_herald_cannot_finish_in_time_is_503_request_timeout() {
    // A "database" that accepts connections and never answers: /readyz waits on it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let app = api::router_with_limits(
        state(
            &format!("postgres://nobody@{silent_addr}/none"),
            Duration::from_secs(30),
        ),
        short_limits(),
    );
    let started = std::time::Instant::now();
    let answer = send(
        app,
        Request::builder()
            .uri("/readyz")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_error(
        "a request stuck on the database",
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "request_timeout",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at the request timeout, not the pool's"
    );
}

#[tokio::test]
async fn a_client_that_stalls_in_its_request_head_is_disconnected_and_others_are_served() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(api::serve_with_limits(
        listener,
        unreachable_database(),
        short_limits(),
        shutdown.clone(),
    ));

    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nX-Half")
        .await
        .unwrap();
    let opened = std::time::Instant::now();
    // Meanwhile another client is served.
    let mut quick = tokio::net::TcpStream::connect(addr).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    quick.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"status":"ok"}"#), "{answer}");

    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    let elapsed = opened.elapsed();
    assert!(
        read.is_ok(),
        "the stalled connection was closed by the server"
    );
    assert!(
        elapsed >= Duration::from_millis(400),
        "not before the header timeout ({elapsed:?})"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "the half request was not served"
    );

    // A connection that never sends a byte is closed as well.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(
        read.is_ok(),
        "the silent connection was closed by the server"
    );

    // Graceful shutdown still ends the server.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops on shutdown")
        .unwrap()
        .unwrap();
}
