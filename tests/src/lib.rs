//! System-test harness: [`spawn_app`] starts a complete Herald (API, relay, projector,
//! delivery) plus the sandbox Telegram in-process, against the real PostgreSQL and NATS
//! JetStream. Each app gets its own database and its own NATS prefix/stream, so tests run in
//! parallel and can be re-run.
//!
//! `HERALD_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) names a
//! maintenance database on a server where the tests may create databases; `HERALD_NATS_URL`
//! (default `nats://127.0.0.1:4222`) a NATS server with JetStream.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use herald::Herald;
use platform::{Config, Secret, Shutdown, TokenCipher};
use reqwest::StatusCode;
use sandbox::{Sandbox, SandboxConfig};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// A token of BotFather's shape; the sandbox derives the bot id (`123456`) from it.
pub const BOT_TOKEN: &str = "123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

/// The maintenance database where tests may create databases (`HERALD_TEST_DATABASE_URL`).
pub fn maintenance_url() -> String {
    std::env::var("HERALD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn nats_url() -> String {
    std::env::var("HERALD_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A service running as a task that a test can kill (abort, like a crash) and restart.
pub struct Killable {
    shutdown: Shutdown,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Killable {
    fn spawn<F: Future<Output = anyhow::Result<()>> + Send + 'static>(
        start: impl FnOnce(Shutdown) -> F,
    ) -> Self {
        let shutdown = Shutdown::new();
        let service = start(shutdown.clone());
        let handle = tokio::spawn(async move {
            let result = service.await;
            if let Err(error) = &result {
                eprintln!("service ended with an error: {error:#}");
            }
            result
        });
        Self { shutdown, handle }
    }

    /// Aborts the task wherever it is: in-flight transactions roll back, nothing is flushed.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.handle.await;
    }
}

/// A running Herald for one test.
/// The password of the people tests create with [`TestApp::person`].
pub const TEST_PASSWORD: &str = "a long enough password";

pub struct TestApp {
    pub herald: Herald,
    /// The key bot tokens are encrypted with (for services started as separate processes).
    pub secret_key: String,
    pub sandbox_addr: SocketAddr,
    pub sandbox: Sandbox,
    pub base: String,
    pub client: reqwest::Client,
    /// A second instance administrator (a service account), for what the admin may not do
    /// alone: approve the posts it planned (four eyes). [`TestApp::approve`] uses it.
    pub reviewer_token: String,
    database: String,
    pub relay: Option<Killable>,
    pub projector: Option<Killable>,
    pub delivery: Option<Killable>,
    api: Killable,
    sandbox_shutdown: Shutdown,
    /// This app's place among the apps a test binary runs at once (see [`APPS_AT_ONCE`]).
    _slot: tokio::sync::SemaphorePermit<'static>,
}

/// Apps one test binary runs at once. Each opens up to ~50 PostgreSQL connections under load
/// (its pools, the delivery gates, the leases, the services' locks), and PostgreSQL's default
/// limit is 100 for all of them: more apps at once make every test of the binary fail on
/// connections instead of on what it checks.
pub const APPS_AT_ONCE: usize = 2;
static APP_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(APPS_AT_ONCE);

/// Options for [`spawn_app_with`].
pub struct AppOptions {
    pub sandbox: SandboxConfig,
    pub delivery: bool,
    /// The desk's built assets the API serves at `/` (default: the repository's `desk/dist`).
    pub desk_dir: std::path::PathBuf,
}

/// The repository's built desk (`scripts/test` builds it before the tests).
pub fn repository_desk() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../desk/dist")
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            sandbox: SandboxConfig::default(),
            delivery: true,
            desk_dir: repository_desk(),
        }
    }
}

/// The body of `POST .../chats`: a private chat (a person) on their consent, a group or
/// channel as it is.
pub fn chat_body(bot: &str, telegram_chat_id: i64, title: &str) -> Value {
    let mut body = json!({"bot_id": bot, "telegram_chat_id": telegram_chat_id, "title": title});
    if telegram_chat_id > 0 {
        body["lawful_basis"] = "consent".into();
    }
    body
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let _ = tracing_init();
    let slot = APP_SLOTS
        .acquire()
        .await
        .expect("the app slots are never closed");
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let database = format!("herald_t_{suffix}");
    let mut admin = PgConnection::connect(&maintenance_url())
        .await
        .expect("connect to the test PostgreSQL (HERALD_TEST_DATABASE_URL)");
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let mut url = url_with_database(&maintenance_url(), &database);
    url.push_str(if url.contains('?') { "&" } else { "?" });
    url.push_str("application_name=herald-test");

    let sandbox = Sandbox::new(options.sandbox);
    let sandbox_listener = platform::net::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let sandbox_addr = sandbox_listener.local_addr().unwrap();
    let sandbox_shutdown = Shutdown::new();
    let stop = sandbox_shutdown.clone();
    tokio::spawn(
        sandbox
            .clone()
            .serve(sandbox_listener, async move { stop.cancelled().await }),
    );

    let mut config = config_for(&url, &format!("t_{suffix}"), sandbox_addr);
    config.desk_dir = options.desk_dir;
    let secret_key = TokenCipher::generate_key();
    let cipher = TokenCipher::from_base64_key(&secret_key).unwrap();
    let herald = Herald::connect(config, cipher)
        .await
        .expect("connect herald");

    let reviewer_token = reviewer(&herald).await;
    let listener = platform::net::listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let h = herald.clone();
    let api = Killable::spawn(move |s| async move {
        h.api(listener, Secret::new(ADMIN_TOKEN.into()), s).await
    });
    let mut app = TestApp {
        secret_key: secret_key.expose().clone(),
        sandbox_addr,
        herald,
        sandbox,
        base,
        client: reqwest::Client::new(),
        reviewer_token,
        database,
        relay: None,
        projector: None,
        delivery: None,
        api,
        sandbox_shutdown,
        _slot: slot,
    };
    app.start_relay();
    app.start_projector();
    if options.delivery {
        app.start_delivery();
    }
    app
}

/// Makes the reviewer service account and returns its token (every scope).
async fn reviewer(herald: &Herald) -> String {
    let directory = identity::Directory::new(herald.pool.clone());
    let (user, _) = directory
        .create_user(
            identity::NewUser {
                login: "reviewer".into(),
                display_name: "Reviewer".into(),
                kind: identity::UserKind::Service,
                password: None,
                instance_admin: true,
            },
            "tests",
        )
        .await
        .expect("create the reviewer");
    directory
        .issue_token(user.id, "tests", &identity::Scope::ALL, None)
        .await
        .expect("a token for the reviewer")
        .token
}

fn config_for(database_url: &str, prefix: &str, sandbox: SocketAddr) -> Config {
    let pairs = [
        ("HERALD_DATABASE_URL", database_url.to_owned()),
        ("HERALD_NATS_URL", nats_url()),
        ("HERALD_NATS_PREFIX", prefix.to_owned()),
        ("HERALD_SANDBOX_ADDR", sandbox.to_string()),
    ];
    Config::from_sources(None, |key| {
        pairs
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base
        .rsplit_once('/')
        .expect("a database URL ends in /<database>");
    match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    }
}

fn tracing_init() -> Option<()> {
    std::env::var("HERALD_TEST_LOG")
        .ok()
        .map(|_| platform::telemetry::init())
}

impl TestApp {
    /// A command running `herald <subcommand>` as a separate process against this app's
    /// database, NATS prefix, sandbox and key. `binary` is the path of the `herald` executable.
    pub fn herald_process(&self, binary: &str, subcommand: &str) -> std::process::Command {
        let config = &self.herald.config;
        let mut command = std::process::Command::new(binary);
        command
            .arg(subcommand)
            .env("HERALD_DATABASE_URL", config.database_url.expose())
            .env("HERALD_NATS_URL", &config.nats_url)
            .env("HERALD_NATS_PREFIX", &config.nats_prefix)
            .env("HERALD_SANDBOX_ADDR", self.sandbox_addr.to_string())
            .env("HERALD_SECRET_KEY", &self.secret_key)
            .env("HERALD_DELIVERY_WORKER_TIMEOUT", "2")
            .env(
                "HERALD_LOG",
                std::env::var("HERALD_TEST_PROCESS_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("HERALD_TELEGRAM_API_URL")
            .env_remove("HERALD_CONFIG")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        command
    }

    /// Runs `command` to its end: whether it succeeded, its standard output and error.
    pub fn run_to_end(mut command: std::process::Command) -> (bool, String, String) {
        let output = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("the command runs");
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    }

    pub fn start_relay(&mut self) {
        let h = self.herald.clone();
        self.relay = Some(Killable::spawn(move |s| async move { h.relay(s).await }));
    }

    pub fn start_projector(&mut self) {
        let h = self.herald.clone();
        self.projector = Some(Killable::spawn(
            move |s| async move { h.projector(s).await },
        ));
    }

    pub fn start_delivery(&mut self) {
        self.delivery = Some(self.delivery_worker());
    }

    /// The bots' listener (not started by default), polling briefly and reading the bots
    /// often, so a test sees an injected update within moments. The caller keeps it running.
    pub fn listener(&self) -> Killable {
        let h = self.herald.clone();
        let mut settings = h.listener_settings().unwrap();
        settings.poll_timeout = Duration::from_secs(1);
        settings.refresh = Duration::from_millis(200);
        Killable::spawn(move |s| async move { h.listener(settings, s).await })
    }

    /// The bots' listener in webhook mode: its receiver on `addr`, which is also the public URL
    /// the sandbox pushes to.
    pub fn webhook_listener(&self, addr: SocketAddr) -> Killable {
        let h = self.herald.clone();
        let mut settings = h.listener_settings().unwrap();
        settings.refresh = Duration::from_millis(200);
        settings.webhook = Some(listener::webhook::Webhook {
            public_url: format!("http://{addr}/").parse().unwrap(),
            listen: addr,
        });
        Killable::spawn(move |s| async move { h.listener(settings, s).await })
    }

    /// One more delivery worker beside the app's own (scale-out in one process).
    pub fn delivery_worker(&self) -> Killable {
        let h = self.herald.clone();
        let mut settings = h.delivery_settings().unwrap();
        settings.tick = Duration::from_millis(50);
        settings.worker_timeout = Duration::from_secs(2);
        Killable::spawn(move |s| async move { h.delivery(settings, s).await })
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.request_as(Some(ADMIN_TOKEN), method, path, body).await
    }

    /// A request with `token` as its bearer (`None`: no Authorization header).
    pub async fn request_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("http request");
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// POSTs `body` to the sandbox's own API (`/sandbox/chats`, `/sandbox/updates`, ...) over
    /// HTTP, as an outside test would; expects success and returns the answer.
    pub async fn sandbox_post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(format!("http://{}{path}", self.sandbox_addr))
            .json(&body)
            .send()
            .await
            .expect("sandbox request");
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "POST {path} answered {status}: {answer}"
        );
        answer
    }

    /// Waits until the listener recorded update `update_id`.
    pub async fn update_handled(&self, update_id: i64) {
        self.eventually(
            &format!("update {update_id} handled"),
            Duration::from_secs(15),
            || async {
                let found: Option<i64> =
                    sqlx::query_scalar("SELECT update_id FROM bot_updates WHERE update_id = $1")
                        .bind(update_id)
                        .fetch_optional(&self.herald.pool)
                        .await
                        .unwrap();
                found.map(|_| ())
            },
        )
        .await;
    }

    /// Plants, as a raw event, a contact connected before lawful bases (and the chat
    /// directory) existed: its `ChatConnected` has no basis. Returns its id.
    pub async fn plant_legacy_contact(
        &self,
        ws: &str,
        bot: &str,
        telegram_chat_id: i64,
        title: &str,
    ) -> String {
        let legacy = uuid::Uuid::now_v7().to_string();
        let metadata = json!({
            "actor": "admin", "correlation_id": legacy, "causation_id": legacy, "workspace_id": ws,
            "occurred_at": chrono::Utc::now().to_rfc3339(),
        });
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('Chat', $1, 1, 'ChatConnected', '1', $2, $3)",
        )
        .bind(&legacy)
        .bind(json!({"ChatConnected": {
            "workspace_id": ws, "bot_id": bot, "telegram_chat_id": telegram_chat_id, "title": title,
        }}))
        .bind(metadata)
        .execute(&self.herald.pool)
        .await
        .unwrap();
        legacy
    }

    /// Injects an update for the harness's bot (`{"message": ...}`, `{"my_chat_member": ...}`,
    /// see `POST /sandbox/updates`); returns the id Telegram gave it.
    pub async fn inject_update(&self, mut update: Value) -> i64 {
        update["bot_id"] = BOT_TOKEN
            .split(':')
            .next()
            .and_then(|id| id.parse::<i64>().ok())
            .expect("the harness's token starts with its bot id")
            .into();
        self.sandbox_post("/sandbox/updates", update).await["update_id"]
            .as_i64()
            .expect("an update id")
    }

    /// A person writes `text` to the harness's bot in their private chat.
    pub async fn person_writes(&self, telegram_chat_id: i64, first_name: &str, text: &str) -> i64 {
        self.inject_update(json!({"message": {
            "chat_id": telegram_chat_id, "text": text, "first_name": first_name,
        }}))
        .await
    }

    /// POSTs `body` as it is, with `content_type` (a CSV file, say), as the admin.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("http request");
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    /// POSTs and expects `expected`, returning the body.
    pub async fn post_ok(&self, path: &str, body: Value, expected: StatusCode) -> Value {
        let (status, value) = self.post(path, body).await;
        assert_eq!(status, expected, "POST {path} answered {value}");
        value
    }

    /// A workspace with one bot; returns (workspace id, bot id).
    pub async fn workspace_with_bot(&self) -> (String, String) {
        self.workspace_with_bot_token(BOT_TOKEN).await
    }

    /// A new workspace with a bot of `token` (a Telegram bot is registered once: a second
    /// workspace needs another token).
    pub async fn workspace_with_bot_token(&self, token: &str) -> (String, String) {
        let ws = self
            .post_ok(
                "/v1/workspaces",
                json!({"name": "Acme"}),
                StatusCode::CREATED,
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let bot = self
            .post_ok(
                &format!("/v1/workspaces/{ws}/bots"),
                json!({"name": "news", "token": token}),
                StatusCode::CREATED,
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (ws, bot)
    }

    pub async fn connect_chat(&self, ws: &str, bot: &str, telegram_chat_id: i64) -> String {
        let body = chat_body(bot, telegram_chat_id, &format!("chat {telegram_chat_id}"));
        self.post_ok(
            &format!("/v1/workspaces/{ws}/chats"),
            body,
            StatusCode::CREATED,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Connects `count` chats of `bot` (Telegram ids from `first`) in one import; returns
    /// their ids in order.
    pub async fn import_chats(&self, ws: &str, bot: &str, first: i64, count: i64) -> Vec<String> {
        let rows: Vec<Value> = (first..first + count)
            .map(|id| json!({"telegram_chat_id": id, "title": "subscriber", "lawful_basis": "consent"}))
            .collect();
        let body = self
            .post_ok(
                &format!("/v1/workspaces/{ws}/chats/import"),
                json!({"bot_id": bot, "chats": rows}),
                StatusCode::OK,
            )
            .await;
        assert_eq!(body["connected"], count, "{}", body["failed"]);
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["chat_id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Plans a post due at now + `delay` to `chats`; returns its id.
    pub async fn plan(&self, ws: &str, chats: &[&str], text: &str, delay: Duration) -> String {
        let publish_at = (chrono::Utc::now() + delay).to_rfc3339();
        let body = json!({"chat_ids": chats, "text": text, "publish_at": publish_at});
        self.post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            body,
            StatusCode::CREATED,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Chooses the workspace's in-doubt policy (`"flag"` or `"resend"`).
    pub async fn set_in_doubt_policy(&self, ws: &str, policy: &str) {
        let (status, body) = self
            .request(
                reqwest::Method::PUT,
                &format!("/v1/workspaces/{ws}/policy"),
                Some(json!({"in_doubt": policy})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Creates a person whose password is [`TEST_PASSWORD`]; returns their id.
    pub async fn person(&self, login: &str) -> String {
        let body = self
            .post_ok(
                "/v1/users",
                json!({ "login": login, "name": login, "password": TEST_PASSWORD }),
                StatusCode::CREATED,
            )
            .await;
        body["user"]["id"].as_str().unwrap().to_owned()
    }

    /// Signs a person made by [`TestApp::person`] in; returns the session token.
    pub async fn sign_in(&self, login: &str) -> String {
        let body = json!({ "login": login, "password": TEST_PASSWORD });
        let (status, body) = self
            .request_as(None, reqwest::Method::POST, "/v1/sessions", Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Gives `user` `role` in `ws`, as the admin.
    pub async fn grant(&self, ws: &str, user: &str, role: &str) {
        let path = format!("/v1/workspaces/{ws}/members/{user}");
        let (status, body) = self
            .request(reqwest::Method::PUT, &path, Some(json!({ "role": role })))
            .await;
        assert_eq!(status, StatusCode::OK, "PUT {path}: {body}");
    }

    /// Approves as the reviewer (the admin planned it: four eyes).
    pub async fn approve(&self, ws: &str, post: &str) {
        let path = format!("/v1/workspaces/{ws}/posts/{post}/approve");
        let (status, body) = self
            .request_as(
                Some(&self.reviewer_token),
                reqwest::Method::POST,
                &path,
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "POST {path}: {body}");
    }

    pub async fn post_state(&self, ws: &str, post: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/workspaces/{ws}/posts/{post}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = check().await {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until no delivery of the post is pending, and returns the post.
    pub async fn settled(&self, ws: &str, post: &str, timeout: Duration) -> Value {
        self.eventually("the post's deliveries to settle", timeout, || async {
            let body = self.post_state(ws, post).await;
            let pending = body["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["status"] == "pending");
            (!pending).then_some(body)
        })
        .await
    }

    /// Number of events committed to the event store.
    pub async fn stored_events(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.herald.pool)
            .await
            .unwrap()
    }

    /// Stops everything and drops the test's database and stream.
    pub async fn cleanup(mut self) {
        for service in [
            self.delivery.take(),
            self.projector.take(),
            self.relay.take(),
        ]
        .into_iter()
        .flatten()
        {
            service.stop().await;
        }
        self.api.stop().await;
        self.sandbox_shutdown.cancel();
        let _ = self
            .herald
            .bus
            .jetstream
            .delete_stream(self.herald.bus.names.events_stream())
            .await;
        self.herald.close().await;
        if std::env::var_os("HERALD_TEST_KEEP_DATABASE").is_some() {
            eprintln!(
                "kept the test database {} (HERALD_TEST_KEEP_DATABASE)",
                self.database
            );
            return;
        }
        if let Ok(mut admin) = PgConnection::connect(&maintenance_url()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .execute(&mut admin)
            .await;
        }
    }
}
