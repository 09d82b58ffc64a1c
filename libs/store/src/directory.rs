use domain::{Bot, BotInfo, Chat, ChatInfo, Directory, DirectoryFuture, Id};
use sqlx::PgPool;

use std::collections::HashMap;

use crate::event_store::{load_aggregate, load_many};

/// Answers the domain's questions by loading the aggregates from the event store, so what was
/// committed a moment ago is already known (projections could lag).
pub struct StoreDirectory {
    pool: PgPool,
}

impl StoreDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn chat_info(chat: Chat) -> Option<ChatInfo> {
    match (chat.workspace_id, chat.bot_id) {
        (Some(workspace_id), Some(bot_id)) => Some(ChatInfo {
            workspace_id,
            bot_id,
            telegram_chat_id: chat.telegram_chat_id,
            opted_out: chat.opted_out,
            has_lawful_basis: chat.has_lawful_basis(),
            blocked: chat.blocked,
            approval_policy: chat.approval_policy,
        }),
        _ => None,
    }
}

impl Directory for StoreDirectory {
    fn chat(&self, chat_id: Id) -> DirectoryFuture<'_, Option<ChatInfo>> {
        Box::pin(async move {
            let chat: Chat = load_aggregate(&self.pool, chat_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(chat_info(chat))
        })
    }

    fn chats<'a>(&'a self, chat_ids: &'a [Id]) -> DirectoryFuture<'a, HashMap<Id, ChatInfo>> {
        Box::pin(async move {
            let chats = load_many::<Chat>(&self.pool, chat_ids)
                .await
                .map_err(|e| e.to_string())?;
            Ok(chats
                .into_iter()
                .filter_map(|(id, chat)| chat_info(chat).map(|info| (id, info)))
                .collect())
        })
    }

    fn bot(&self, bot_id: Id) -> DirectoryFuture<'_, Option<BotInfo>> {
        Box::pin(async move {
            let bot: Bot = load_aggregate(&self.pool, bot_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(bot
                .workspace_id
                .map(|workspace_id| BotInfo { workspace_id }))
        })
    }
}
