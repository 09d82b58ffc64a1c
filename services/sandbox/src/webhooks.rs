//! Webhooks: `setWebhook`, `deleteWebhook` and `getWebhookInfo` as Telegram has them. With a
//! webhook set, a bot's updates are POSTed to its URL one at a time, in order, with the
//! `X-Telegram-Bot-Api-Secret-Token` header when a secret was given; an update leaves the queue
//! only when the answer is a 2xx, otherwise it is sent again after a pause (Telegram retries
//! for a day). `getUpdates` is refused while a webhook is set. Unlike Telegram, the sandbox
//! accepts plain `http` URLs on any port: it is for loopback tests.

use std::sync::PoisonError;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Sandbox;
use crate::params::Params;
use crate::reply::{ApiError, ApiResult};

/// Pause after a failed push, doubling up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How long a push waits for the webhook's answer.
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Every bot's queue, locked (never across an `.await`; poisoning is ignored as elsewhere in
/// the sandbox).
fn queues(
    sandbox: &Sandbox,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<i64, crate::updates::Queue>> {
    sandbox
        .shared
        .updates
        .queues
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    url: String,
    secret: Option<String>,
    /// When the last push failed (Unix seconds) and why, as `getWebhookInfo` reports it.
    last_error: Option<(i64, String)>,
}

/// `setWebhook`: `url` (empty: remove), `secret_token`, `drop_pending_updates`.
pub(crate) fn set_webhook(sandbox: &Sandbox, bot_id: i64, params: &Params) -> ApiResult {
    let url = params.string("url").unwrap_or_default().trim().to_owned();
    if url.is_empty() {
        return delete_webhook(sandbox, bot_id, params);
    }
    let parsed = url::Url::parse(&url)
        .map_err(|_| ApiError::bad_request("invalid webhook URL specified"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ApiError::bad_request("invalid webhook URL specified"));
    }
    let secret = params.string("secret_token").map(|s| s.into_owned());
    if let Some(secret) = &secret {
        let allowed = secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if secret.is_empty() || secret.len() > 256 || !allowed {
            return Err(ApiError::bad_request(
                "secret token contains unallowed characters",
            ));
        }
    }
    let drop = params.boolean("drop_pending_updates").unwrap_or(false);
    let start = {
        let mut queues = queues(sandbox);
        let queue = queues.entry(bot_id).or_default();
        if drop {
            queue.pending.clear();
        }
        queue.webhook = Some(Webhook {
            url,
            secret,
            last_error: None,
        });
        !std::mem::replace(&mut queue.pushing, true)
    };
    if start {
        tokio::spawn(push(sandbox.clone(), bot_id));
    }
    sandbox.shared.updates.arrived.notify_waiters();
    Ok(Value::Bool(true))
}

/// `deleteWebhook`: back to `getUpdates`; `drop_pending_updates` empties the queue.
pub(crate) fn delete_webhook(sandbox: &Sandbox, bot_id: i64, params: &Params) -> ApiResult {
    let drop_pending = params.boolean("drop_pending_updates").unwrap_or(false);
    {
        let mut queues = queues(sandbox);
        let queue = queues.entry(bot_id).or_default();
        queue.webhook = None;
        if drop_pending {
            queue.pending.clear();
        }
    }
    // Wakes the pusher, which sees the webhook gone and ends.
    sandbox.shared.updates.arrived.notify_waiters();
    Ok(Value::Bool(true))
}

/// `getWebhookInfo`.
pub(crate) fn webhook_info(sandbox: &Sandbox, bot_id: i64) -> ApiResult {
    let queues = queues(sandbox);
    let queue = queues.get(&bot_id);
    let pending = queue.map_or(0, |q| q.pending.len());
    let mut info = json!({
        "url": "",
        "has_custom_certificate": false,
        "pending_update_count": pending,
    });
    if let Some(hook) = queue.and_then(|q| q.webhook.as_ref()) {
        info["url"] = hook.url.clone().into();
        info["max_connections"] = 40.into();
        if let Some((at, message)) = &hook.last_error {
            info["last_error_date"] = (*at).into();
            info["last_error_message"] = message.clone().into();
        }
    }
    Ok(info)
}

/// What to push next for `bot_id`: the webhook and the oldest pending update; `Err` when the
/// webhook was removed (the pusher ends).
fn next(sandbox: &Sandbox, bot_id: i64) -> Result<Option<(Webhook, Value)>, ()> {
    let mut queues = queues(sandbox);
    let queue = queues.entry(bot_id).or_default();
    let Some(hook) = queue.webhook.clone() else {
        queue.pushing = false;
        return Err(());
    };
    Ok(queue.pending.front().cloned().map(|update| (hook, update)))
}

/// The outcome of one push: the update leaves the queue, or the error is recorded.
fn settle(sandbox: &Sandbox, bot_id: i64, update_id: i64, error: Option<String>) {
    let mut queues = queues(sandbox);
    let Some(queue) = queues.get_mut(&bot_id) else {
        return;
    };
    match error {
        None => {
            if queue
                .pending
                .front()
                .is_some_and(|u| u["update_id"].as_i64() == Some(update_id))
            {
                queue.pending.pop_front();
            }
            if let Some(hook) = &mut queue.webhook {
                hook.last_error = None;
            }
        }
        Some(message) => {
            if let Some(hook) = &mut queue.webhook {
                hook.last_error = Some((chrono::Utc::now().timestamp(), message));
            }
        }
    }
}

/// Pushes `bot_id`'s updates to its webhook until the webhook is removed or the sandbox stops.
async fn push(sandbox: Sandbox, bot_id: i64) {
    // A connection per push: a receiver that went away is noticed at once, not through a
    // pooled connection its old process still answers on.
    let client = match reqwest::Client::builder()
        .timeout(PUSH_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "sandbox webhooks: no HTTP client");
            return;
        }
    };
    let mut stopping = sandbox.shared.stopping.subscribe();
    let mut retry = RETRY;
    loop {
        if *stopping.borrow() {
            return;
        }
        // Registered before looking, so an update pushed in between still wakes this task.
        let arrived = sandbox.shared.updates.arrived.notified();
        let (hook, update) = match next(&sandbox, bot_id) {
            Err(()) => return,
            Ok(None) => {
                tokio::select! {
                    () = arrived => {}
                    _ = stopping.wait_for(|stopping| *stopping) => return,
                }
                continue;
            }
            Ok(Some(found)) => found,
        };
        let update_id = update["update_id"].as_i64().unwrap_or(0);
        let mut request = client.post(&hook.url).json(&update);
        if let Some(secret) = &hook.secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        let error = match request.send().await {
            Ok(answer) if answer.status().is_success() => None,
            Ok(answer) => Some(format!(
                "Wrong response from the webhook: {}",
                answer.status()
            )),
            Err(error) if error.is_timeout() => Some("Read timeout expired".to_owned()),
            Err(_) => Some("Connection refused".to_owned()),
        };
        let failed = error.is_some();
        settle(&sandbox, bot_id, update_id, error);
        if failed {
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = stopping.wait_for(|stopping| *stopping) => return,
            }
            retry = (retry * 2).min(MAX_RETRY);
        } else {
            retry = RETRY;
        }
    }
}
