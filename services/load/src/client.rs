//! A small client of Herald's public HTTP API (the paths and fields of
//! `services/api/openapi.json`), with errors that say what to do.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// Why a call did not succeed.
#[derive(Debug, Clone)]
pub enum CallError {
    /// Herald answered with an error status (and usually `{"error":{"code","message"}}`).
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused, reset, timed out...
    Transport(String),
    /// An answer that is not what the API documents.
    BadAnswer(String),
}

impl CallError {
    /// A short machine-readable name: the API's error code, `http_<status>` when the body had
    /// none, `transport_error` or `bad_answer`.
    pub fn code(&self) -> String {
        match self {
            Self::Refused { code, .. } => code.clone(),
            Self::Transport(_) => "transport_error".into(),
            Self::BadAnswer(_) => "bad_answer".into(),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused {
                status,
                code,
                message,
            } => write!(f, "HTTP {status} {code}: {message}"),
            Self::Transport(detail) => write!(f, "no answer: {detail}"),
            Self::BadAnswer(detail) => write!(f, "unexpected answer: {detail}"),
        }
    }
}

impl std::error::Error for CallError {}

/// An authenticated client of one Herald.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    /// Who approves: the one who plans may not (four eyes). `None`: `token` does both, and
    /// approvals are refused.
    approver: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl Client {
    /// `base` is the API's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str, token: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(base).map_err(|error| {
            anyhow::anyhow!("--url {base:?} is not a URL such as http://127.0.0.1:8080: {error}")
        })?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https"),
            "--url {base:?} must start with http:// or https://"
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            approver: None,
        })
    }

    /// The same client, approving with `token`.
    pub fn with_approver(mut self, token: &str) -> Self {
        self.approver = Some(token.to_owned());
        self
    }

    /// Makes a service account with the approver role in `ws` and approves with its token
    /// (an administrator's token plans; four eyes needs a second actor).
    pub async fn add_approver(&mut self, ws: &str, login: &str) -> Result<(), CallError> {
        let created = self
            .call(
                reqwest::Method::POST,
                "/v1/users",
                Some(json!({ "login": login, "name": login, "kind": "service" })),
            )
            .await?;
        let user = created["user"]["id"]
            .as_str()
            .ok_or_else(|| CallError::BadAnswer("POST /v1/users answered without an id".into()))?
            .to_owned();
        self.call(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/members/{user}"),
            Some(json!({ "role": "approver" })),
        )
        .await?;
        let issued = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/users/{user}/tokens"),
                Some(json!({ "name": "herald load", "scopes": ["read", "approve"], "expires_in_days": 1 })),
            )
            .await?;
        let token = issued["token"]
            .as_str()
            .ok_or_else(|| CallError::BadAnswer("a token was issued without its secret".into()))?;
        self.approver = Some(token.to_owned());
        Ok(())
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CallError> {
        self.call_as(&self.token, method, path, body).await
    }

    async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CallError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| CallError::Transport(error_chain(&e)))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CallError::Transport(error_chain(&e)))?;
        let value: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return value.ok_or_else(|| {
                CallError::BadAnswer(format!("{status} with a body that is not JSON"))
            });
        }
        let error = value.as_ref().and_then(|v| v.get("error"));
        let field = |name: &str| {
            error
                .and_then(|e| e.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Err(CallError::Refused {
            status: status.as_u16(),
            code: field("code").unwrap_or_else(|| format!("http_{}", status.as_u16())),
            message: field("message").unwrap_or_else(|| truncate(&text, 200)),
        })
    }

    async fn create(&self, path: &str, body: Value) -> Result<String, CallError> {
        let answer = self.call(reqwest::Method::POST, path, Some(body)).await?;
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CallError::BadAnswer(format!("POST {path} answered without an id")))
    }

    /// `GET /healthz`: is a Herald listening there at all?
    pub async fn health(&self) -> Result<(), CallError> {
        self.call(reqwest::Method::GET, "/healthz", None)
            .await
            .map(drop)
    }

    pub async fn create_workspace(&self, name: &str) -> Result<String, CallError> {
        self.create("/v1/workspaces", json!({ "name": name })).await
    }

    pub async fn register_bot(
        &self,
        ws: &str,
        name: &str,
        token: &str,
    ) -> Result<String, CallError> {
        self.create(
            &format!("/v1/workspaces/{ws}/bots"),
            json!({ "name": name, "token": token }),
        )
        .await
    }

    pub async fn connect_chat(
        &self,
        ws: &str,
        bot: &str,
        telegram_chat_id: i64,
        title: &str,
    ) -> Result<String, CallError> {
        let mut body =
            json!({ "bot_id": bot, "telegram_chat_id": telegram_chat_id, "title": title });
        if telegram_chat_id > 0 {
            // A private chat is a person, connected only on a lawful basis.
            body["lawful_basis"] = "consent".into();
            body["source"] = "load test".into();
        }
        self.create(&format!("/v1/workspaces/{ws}/chats"), body)
            .await
    }

    /// Plans a post (state `planned`); returns its id.
    pub async fn plan_post(
        &self,
        ws: &str,
        chat_ids: &[&str],
        text: &str,
        publish_at: DateTime<Utc>,
    ) -> Result<String, CallError> {
        let publish_at = publish_at.to_rfc3339_opts(SecondsFormat::Millis, true);
        self.create(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({ "chat_ids": chat_ids, "text": text, "publish_at": publish_at }),
        )
        .await
    }

    pub async fn approve_post(&self, ws: &str, post: &str) -> Result<(), CallError> {
        self.call_as(
            self.approver.as_deref().unwrap_or(&self.token),
            reqwest::Method::POST,
            &format!("/v1/workspaces/{ws}/posts/{post}/approve"),
            Some(json!({})),
        )
        .await
        .map(drop)
    }

    /// `GET /v1/workspaces/{ws}/posts/{id}`: the post with its delivery status per chat.
    pub async fn post(&self, ws: &str, post: &str) -> Result<Value, CallError> {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/workspaces/{ws}/posts/{post}"),
            None,
        )
        .await
    }
}

/// Turns a failed set-up call into an error that says what to do about it.
pub fn explain(error: CallError, base: &str, what: &str) -> anyhow::Error {
    match &error {
        CallError::Refused { status: 401, .. } => anyhow::anyhow!(
            "{what}: the token was refused: pass --token or HERALD_ADMIN_TOKEN as printed by herald up ({error})"
        ),
        CallError::Refused {
            status: 404, code, ..
        } if code == "no_such_route" || code == "http_404" => anyhow::anyhow!(
            "{what}: {base} does not look like Herald's API (is --url the API address, e.g. http://127.0.0.1:8080, not the sandbox's?) ({error})"
        ),
        CallError::Transport(_) => anyhow::anyhow!(
            "{what}: cannot reach Herald at {base} ({error}); is it running (`herald up`)? pass its address with --url"
        ),
        _ => anyhow::anyhow!("{what}: {error}"),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}
