//! Webhook mode, for production: instead of polling, each bot's webhook is set to
//! `<public URL>/telegram/<bot id>` with a secret token, and Telegram POSTs every update there.
//! An update is answered 200 only once what it means is committed (or it was handled before),
//! so Telegram's retries of an unanswered or failed push change nothing twice; a push with a
//! wrong secret is refused (401), and one for a bot that is paused or unknown is answered 503, so
//! Telegram keeps it and sends it again later, as a paused bot's updates wait in polling mode.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::Id;
use platform::Shutdown;
use sha2::{Digest, Sha256};
use teloxide::types::Update;

use crate::{BotRef, Listener};

/// Where Telegram reaches Herald, and where Herald listens for it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The public base URL (`HERALD_BOT_WEBHOOK_URL`); Telegram needs HTTPS.
    pub public_url: url::Url,
    /// The local address the webhook receiver listens on (`HERALD_BOT_WEBHOOK_ADDR`), behind the
    /// TLS proxy that serves the public URL.
    pub listen: SocketAddr,
}

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// The secret Telegram sends with each push to this bot's webhook: derived from the bot's
/// token, so nothing more is stored and a new token brings a new secret.
pub fn secret(bot_id: Id, token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"herald-webhook\0")
        .chain_update(bot_id.as_bytes())
        .chain_update(token.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The webhook URL of `bot_id` under `public`.
pub fn url_for(public: &url::Url, bot_id: Id) -> url::Url {
    let mut url = public.clone();
    let base = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("{base}/telegram/{bot_id}"));
    url
}

/// The bots whose pushes are accepted now, with their secrets.
pub(crate) type Accepted = Arc<RwLock<HashMap<Id, (BotRef, String)>>>;

#[derive(Clone)]
struct Receiver {
    listener: Listener,
    accepted: Accepted,
}

/// Serves the webhook receiver on `listen` until `shutdown`.
pub(crate) async fn serve(
    listener: Listener,
    accepted: Accepted,
    listen: SocketAddr,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let socket = platform::net::listen(listen)?;
    tracing::info!(addr = %listen, "bot updates: webhook receiver listening");
    let router = Router::new()
        .route("/telegram/{bot_id}", post(receive))
        .with_state(Receiver { listener, accepted });
    axum::serve(socket, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}

async fn receive(
    State(receiver): State<Receiver>,
    Path(bot_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let Ok(bot_id) = bot_id.parse::<Id>() else {
        return StatusCode::NOT_FOUND;
    };
    let found = receiver
        .accepted
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&bot_id)
        .cloned();
    let Some((bot, secret)) = found else {
        // Paused, replaced or not yet listened to: Telegram keeps the update and retries.
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let presented = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), secret.as_bytes()) {
        tracing::warn!(%bot_id, "bot updates: a webhook push without the bot's secret was refused");
        return StatusCode::UNAUTHORIZED;
    }
    let update: Update = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            tracing::warn!(%bot_id, %error, "bot updates: a webhook push is not an update");
            return StatusCode::BAD_REQUEST;
        }
    };
    match receiver.listener.handle(bot, &update).await {
        Ok(_) => StatusCode::OK,
        Err(error) => {
            tracing::warn!(%bot_id, error = format!("{error:#}"), "bot updates: a pushed update failed; Telegram will send it again");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_sits_under_the_public_path() {
        let bot = Id::nil();
        for base in [
            "https://h.example/",
            "https://h.example",
            "https://h.example/herald/",
        ] {
            let url = url_for(&url::Url::parse(base).unwrap(), bot);
            assert!(url.as_str().ends_with(&format!("/telegram/{bot}")), "{url}");
            assert!(!url.as_str().contains("//telegram"), "{url}");
        }
        let nested = url_for(&url::Url::parse("https://h.example/herald").unwrap(), bot);
        assert_eq!(nested.path(), format!("/herald/telegram/{bot}"));
    }

    #[test]
    fn secrets_differ_by_bot_and_token_and_use_telegrams_alphabet() {
        let a = secret(Id::nil(), "1:a");
        assert_ne!(a, secret(Id::nil(), "1:b"));
        assert_ne!(a, secret(Id::max(), "1:a"));
        assert!(a.len() <= 256 && a.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
