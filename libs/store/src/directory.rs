//! The strongly consistent [`Directory`]: what the domain asks about chats and bots, answered
//! from what is committed. A chat's answer ([`ChatInfo`]) is kept in `chat_directory`
//! (migration 0023), written by the event store in the transaction of the chat's events, so a
//! post to 100,000 chats reads 100,000 narrow rows instead of replaying 100,000 chats. This
//! module owns that table: it is the only reader and writer.

use std::collections::HashMap;

use domain::{Bot, BotInfo, Chat, ChatInfo, Delivery, Directory, DirectoryFuture, Id, Post};
use domain::{Segment, Workspace};
use sqlx::{PgConnection, PgPool};

use crate::event_store::{CommandError, load_aggregate, load_many, store_error};

/// How many chats [`add_missing_entries`] replays at a time.
const BACKFILL_BATCH: usize = 10_000;

/// An aggregate the directory keeps a row of, beside its events.
pub trait DirectoryEntry {
    /// This state's row, if the directory keeps one for it.
    fn directory_entry(&self) -> Option<ChatInfo> {
        None
    }
}

impl DirectoryEntry for Chat {
    fn directory_entry(&self) -> Option<ChatInfo> {
        match (self.workspace_id, self.bot_id) {
            (Some(workspace_id), Some(bot_id)) => Some(ChatInfo {
                workspace_id,
                bot_id,
                telegram_chat_id: self.telegram_chat_id,
                opted_out: self.opted_out,
                has_lawful_basis: self.has_lawful_basis(),
                blocked: self.blocked.clone(),
                approval_policy: self.approval_policy.clone(),
            }),
            _ => None,
        }
    }
}

impl DirectoryEntry for Bot {}
impl DirectoryEntry for Post {}
impl DirectoryEntry for Delivery {}
impl DirectoryEntry for Segment {}
impl DirectoryEntry for Workspace {}

/// One chat's row: its answer as of event `sequence`.
pub(crate) struct Entry {
    chat_id: Id,
    sequence: i64,
    info: ChatInfo,
}

impl Entry {
    /// The row of aggregate `id` in state `aggregate` after event `sequence`, if it has one.
    pub(crate) fn of(id: Id, sequence: i64, aggregate: &impl DirectoryEntry) -> Option<Self> {
        Some(Self {
            chat_id: id,
            sequence,
            info: aggregate.directory_entry()?,
        })
    }
}

/// Writes `entries` on the caller's connection (inside the transaction of their events). A row
/// never goes back to an older sequence, so a late backfill cannot undo a newer command.
pub(crate) async fn keep(conn: &mut PgConnection, entries: &[Entry]) -> Result<(), CommandError> {
    if entries.is_empty() {
        return Ok(());
    }
    let mut chats = Vec::with_capacity(entries.len());
    let mut workspaces = Vec::with_capacity(entries.len());
    let mut sequences = Vec::with_capacity(entries.len());
    let mut infos = Vec::with_capacity(entries.len());
    for entry in entries {
        chats.push(entry.chat_id);
        workspaces.push(entry.info.workspace_id);
        sequences.push(entry.sequence);
        infos.push(
            serde_json::to_string(&entry.info).map_err(|e| CommandError::Store(e.to_string()))?,
        );
    }
    sqlx::query(
        "INSERT INTO chat_directory (chat_id, workspace_id, sequence, info)
         SELECT t.chat_id, t.workspace_id, t.sequence, t.info::json
           FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::text[])
                AS t(chat_id, workspace_id, sequence, info)
          ORDER BY t.chat_id
         ON CONFLICT (chat_id) DO UPDATE
            SET workspace_id = EXCLUDED.workspace_id, sequence = EXCLUDED.sequence,
                info = EXCLUDED.info
          WHERE chat_directory.sequence < EXCLUDED.sequence",
    )
    .bind(&chats)
    .bind(&workspaces)
    .bind(&sequences)
    .bind(&infos)
    .execute(conn)
    .await
    .map_err(store_error)?;
    Ok(())
}

/// Adds the rows of chats that have events but no row (chats connected before the table
/// existed), replaying them in batches. Run by `migrate`; a no-op when none is missing.
pub(crate) async fn add_missing_entries(pool: &PgPool) -> Result<(), CommandError> {
    let missing: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.aggregate_id, max(e.sequence) FROM events e
          WHERE e.aggregate_type = 'Chat'
            AND NOT EXISTS (SELECT 1 FROM chat_directory d WHERE d.chat_id::text = e.aggregate_id)
          GROUP BY e.aggregate_id",
    )
    .fetch_all(pool)
    .await
    .map_err(store_error)?;
    if missing.is_empty() {
        return Ok(());
    }
    tracing::info!(
        chats = missing.len(),
        "adding the chat directory's rows of chats connected before it"
    );
    let ids: Vec<Id> = missing
        .iter()
        .filter_map(|(id, _)| id.parse().ok())
        .collect();
    let sequences: HashMap<String, i64> = missing.into_iter().collect();
    for batch in ids.chunks(BACKFILL_BATCH) {
        let chats = load_many::<Chat>(pool, batch).await?;
        let entries: Vec<Entry> = chats
            .iter()
            .filter_map(|(id, chat)| Entry::of(*id, *sequences.get(&id.to_string())?, chat))
            .collect();
        let mut conn = pool.acquire().await.map_err(store_error)?;
        keep(&mut conn, &entries).await?;
    }
    Ok(())
}

/// Answers the domain's questions from what is committed (projections could lag): chats from
/// `chat_directory`, falling back to their events for a chat without a row; bots from their
/// events.
pub struct StoreDirectory {
    pool: PgPool,
}

impl StoreDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    async fn entries(&self, chat_ids: &[Id]) -> Result<HashMap<Id, ChatInfo>, CommandError> {
        // A join on the unnested ids lets PostgreSQL hash them once, where `= ANY` probes the
        // index per id.
        let rows: Vec<(Id, String)> = sqlx::query_as(
            "SELECT d.chat_id, d.info::text FROM UNNEST($1::uuid[]) AS asked(chat_id)
               JOIN chat_directory d USING (chat_id)",
        )
        .bind(chat_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut found = HashMap::with_capacity(rows.len());
        for (id, info) in rows {
            let info: ChatInfo = serde_json::from_str(&info).map_err(|e| {
                CommandError::Store(format!("a directory row does not decode: {e}"))
            })?;
            found.insert(id, info);
        }
        let without_row: Vec<Id> = chat_ids
            .iter()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect();
        if !without_row.is_empty() {
            for (id, chat) in load_many::<Chat>(&self.pool, &without_row).await? {
                if let Some(info) = chat.directory_entry() {
                    found.insert(id, info);
                }
            }
        }
        Ok(found)
    }
}

impl Directory for StoreDirectory {
    fn chat(&self, chat_id: Id) -> DirectoryFuture<'_, Option<ChatInfo>> {
        Box::pin(async move {
            let mut found = self.entries(&[chat_id]).await.map_err(|e| e.to_string())?;
            Ok(found.remove(&chat_id))
        })
    }

    fn chats<'a>(&'a self, chat_ids: &'a [Id]) -> DirectoryFuture<'a, HashMap<Id, ChatInfo>> {
        Box::pin(async move { self.entries(chat_ids).await.map_err(|e| e.to_string()) })
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
