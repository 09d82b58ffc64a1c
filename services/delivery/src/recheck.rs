//! Connected groups and channels are checked with Telegram (`getChat`, `getChatMember`) every
//! [`crate::Settings::chat_recheck`]: a bot that was removed or lost its right to post is
//! flagged (`ChatChecked` with the reason: planning refuses the chat, sends skip it) before a
//! send fails, and a flag goes when the rights come back. One worker checks at a time (an
//! advisory lock); the chat's aggregate records only what changed.

use std::collections::HashMap;
use std::time::Duration;

use domain::{Bot, Chat, ChatCommand, Id};
use platform::{Shutdown, TokenCipher};
use sqlx::PgPool;
use store::{EventStore, RequestContext};

use crate::telegram::{self, CheckError};

/// Who records checks, in event metadata.
pub const ACTOR: &str = "service:recheck";
/// Chats read per page.
const PAGE: i64 = 500;
/// Between two chats: Telegram's limits on these methods are unpublished; stay gentle.
const SPACING: Duration = Duration::from_millis(50);

pub async fn run(
    pool: PgPool,
    store: EventStore,
    cipher: TokenCipher,
    api_url: url::Url,
    every: Duration,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
        let Some(_lock) = platform::postgres::try_lock(&pool, "herald-chat-recheck").await? else {
            continue;
        };
        match recheck_all(&pool, &store, &cipher, &api_url, &shutdown).await {
            Ok(flagged) => tracing::info!(
                flagged,
                "checked connected groups and channels with Telegram"
            ),
            Err(error) => {
                tracing::warn!(%error, "checking chats with Telegram failed; next round retries")
            }
        }
    }
}

/// Checks every connected group and channel once; returns how many changed.
pub async fn recheck_all(
    pool: &PgPool,
    store: &EventStore,
    cipher: &TokenCipher,
    api_url: &url::Url,
    shutdown: &Shutdown,
) -> anyhow::Result<usize> {
    let mut clients: HashMap<Id, Option<(teloxide::Bot, i64)>> = HashMap::new();
    let mut after = Id::nil();
    let mut changed = 0;
    loop {
        let page = {
            let mut conn = pool.acquire().await?;
            crate::queue::schedule::groups_and_channels(&mut conn, after, PAGE).await?
        };
        let Some(last) = page.last() else {
            return Ok(changed);
        };
        after = last.0;
        for (chat_id, workspace_id, bot_id, telegram_chat_id) in page {
            if shutdown.is_cancelled() {
                return Ok(changed);
            }
            let client = match clients.get(&bot_id) {
                Some(client) => client.clone(),
                None => {
                    let bot: Bot = store.load(bot_id).await?;
                    let client = if bot.paused.is_some() {
                        None // its token was refused: nothing to ask with
                    } else {
                        let token = cipher.decrypt(&bot.encrypted_token)?;
                        Some((telegram::bot(token.expose(), api_url)?, bot.telegram_bot_id))
                    };
                    clients.insert(bot_id, client.clone());
                    client
                }
            };
            let Some((client, bot_user_id)) = client else {
                continue;
            };
            let chat: Chat = store.load(chat_id).await?;
            let (kind, title, cannot_post) =
                match telegram::check_chat(&client, telegram_chat_id, bot_user_id).await {
                    Ok(check) => (check.kind.to_owned(), check.title, check.cannot_post),
                    Err(CheckError::Refused(why)) => (
                        chat.kind.clone().unwrap_or_else(|| "group".into()),
                        None,
                        Some(format!("Telegram refuses the bot this chat ({why})")),
                    ),
                    Err(CheckError::Unavailable(_)) => continue,
                };
            if chat.blocked.is_some() != cannot_post.is_some() {
                changed += 1;
                tracing::warn!(%chat_id, flagged = cannot_post.is_some(), "a chat's posting rights changed");
            }
            let command = ChatCommand::RecordCheck {
                kind,
                title,
                cannot_post,
                update_id: None,
            };
            store
                .execute::<Chat>(workspace_id, chat_id, command, &RequestContext::new(ACTOR))
                .await?;
            tokio::time::sleep(SPACING).await;
        }
    }
}
