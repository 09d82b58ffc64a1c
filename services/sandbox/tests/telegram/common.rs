//! Test harness: a sandbox on `127.0.0.1:0` and clients pointed at it.

use std::net::SocketAddr;
use std::time::Duration;

use sandbox::{Limits, Sandbox, SandboxConfig, Window};
use serde_json::Value;
use teloxide::Bot;

/// A well-formed token; its bot id is [`BOT_ID`].
pub const TOKEN: &str = "123456:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
pub const BOT_ID: i64 = 123_456;
/// A second bot, for per-bot isolation.
pub const OTHER_TOKEN: &str = "777:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
pub const OTHER_BOT_ID: i64 = 777;

/// Sends a reqwest request (the crate is only reachable through teloxide,
/// so its types cannot be named) and returns the status and JSON body
/// (Null when empty).
macro_rules! exchange {
    ($request:expr) => {{
        let response = $request.send().await.expect("http request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("http body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, body)
    }};
}

pub struct Harness {
    pub sandbox: Sandbox,
    pub addr: SocketAddr,
    pub bot: Bot,
}

/// Limits off: for tests about something else than flood control.
pub fn unlimited() -> SandboxConfig {
    SandboxConfig {
        enforce_limits: false,
        ..SandboxConfig::default()
    }
}

/// Custom windows as `(max, period in ms)`; `max == 0` disables a window.
/// The paid-broadcast window is disabled.
pub fn limited(per_chat: (u32, u64), per_group: (u32, u64), per_bot: (u32, u64)) -> SandboxConfig {
    limited_paid(per_chat, per_group, per_bot, (0, 0))
}

/// [`limited`] with a paid-broadcast window too.
pub fn limited_paid(
    per_chat: (u32, u64),
    per_group: (u32, u64),
    per_bot: (u32, u64),
    per_paid_bot: (u32, u64),
) -> SandboxConfig {
    let window = |(max, ms): (u32, u64)| Window::new(max, Duration::from_millis(ms));
    SandboxConfig {
        limits: Limits {
            per_chat: window(per_chat),
            per_group: window(per_group),
            per_bot: window(per_bot),
            per_paid_bot: window(per_paid_bot),
        },
        enforce_limits: true,
    }
}

impl Harness {
    pub async fn start(config: SandboxConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let sandbox = Sandbox::new(config);
        tokio::spawn(sandbox.clone().serve(listener, std::future::pending()));
        let mut harness = Self {
            sandbox,
            addr,
            bot: Bot::new(TOKEN),
        };
        harness.bot = harness.bot_with_token(TOKEN);
        harness
    }

    /// A teloxide bot talking to this sandbox (never through a proxy).
    pub fn bot_with_token(&self, token: &str) -> Bot {
        let client = teloxide::net::default_reqwest_settings()
            .no_proxy()
            .build()
            .expect("reqwest client");
        Bot::with_client(token, client).set_api_url(
            format!("http://{}", self.addr)
                .parse()
                .expect("sandbox url"),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        exchange!(self.bot.client().get(self.url(path)))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        exchange!(self.bot.client().delete(self.url(path)))
    }

    pub async fn post(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        exchange!(
            self.bot
                .client()
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body.to_owned())
        )
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post(path, "application/json", &body.to_string()).await
    }
}
