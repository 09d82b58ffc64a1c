//! The chat list: per connected chat, its tags and whether it can be sent to (a contact's
//! basis, an opt-out, a block), so a segment's members are one indexed query. Eventually
//! consistent like every projection: planning checks each member against its own events again.

use schemas::v1::EventEnvelope;
use schemas::v1::event_envelope::Event;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Projection;

pub struct ChatList;

impl Projection for ChatList {
    fn name(&self) -> &'static str {
        "chat_list"
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        _position: u64,
        envelope: &EventEnvelope,
    ) -> anyhow::Result<()> {
        let Some(event) = &envelope.event else {
            return Ok(());
        };
        if envelope.aggregate_type != "Chat" {
            return Ok(());
        }
        let id: Uuid = envelope.aggregate_id.parse()?;
        let set = |sql: &'static str| sqlx::query(sql).bind(id);
        match event {
            Event::ChatConnected(c) => {
                let contact = c.telegram_chat_id > 0;
                sqlx::query(
                    "INSERT INTO chat_list (chat_id, workspace_id, bot_id, telegram_chat_id, contact, has_basis, tags)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chat_id) DO NOTHING",
                )
                .bind(id)
                .bind(envelope.workspace_id.parse::<Uuid>()?)
                .bind(c.bot_id.parse::<Uuid>()?)
                .bind(c.telegram_chat_id)
                .bind(contact)
                .bind(!contact || c.basis.is_some())
                .bind(&c.tags)
                .execute(&mut *conn)
                .await?;
            }
            Event::ChatTagsSet(t) => {
                set("UPDATE chat_list SET tags = $2 WHERE chat_id = $1")
                    .bind(&t.tags)
                    .execute(&mut *conn)
                    .await?;
            }
            Event::ContactBasisRecorded(_) => {
                set("UPDATE chat_list SET has_basis = true WHERE chat_id = $1")
                    .execute(&mut *conn)
                    .await?;
            }
            Event::ContactStarted(_) => {
                set("UPDATE chat_list SET has_basis = true, opted_out = false, blocked = false WHERE chat_id = $1")
                    .execute(&mut *conn)
                    .await?;
            }
            Event::ContactErased(_) => {
                set("UPDATE chat_list SET opted_out = true, tags = '{}' WHERE chat_id = $1")
                    .execute(&mut *conn)
                    .await?;
            }
            Event::ChatOptedOut(_) => {
                set("UPDATE chat_list SET opted_out = true WHERE chat_id = $1")
                    .execute(&mut *conn)
                    .await?;
            }
            Event::ChatBlocked(_) => {
                set("UPDATE chat_list SET blocked = true WHERE chat_id = $1")
                    .execute(&mut *conn)
                    .await?;
            }
            Event::ChatChecked(c) => {
                set("UPDATE chat_list SET blocked = $2 WHERE chat_id = $1")
                    .bind(c.cannot_post.is_some())
                    .execute(&mut *conn)
                    .await?;
            }
            Event::ChatMigrated(m) => {
                set("UPDATE chat_list SET telegram_chat_id = $2 WHERE chat_id = $1")
                    .bind(m.to_telegram_chat_id)
                    .execute(&mut *conn)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn reset(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        sqlx::query("TRUNCATE chat_list").execute(conn).await?;
        Ok(())
    }
}

/// The chats a segment selects: `listed`, and, when a tag condition is given, those with all
/// of `tags_all` and one of `tags_any`. Whether each can be sent to is planning's to decide
/// (against the chat's own events), so it can say how many it left out.
pub async fn members(
    pool: &sqlx::PgPool,
    workspace_id: Uuid,
    rule: &domain::SegmentRule,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT chat_id FROM chat_list
          WHERE workspace_id = $1
            AND (chat_id = ANY($2)
                 OR ($5 AND tags @> $3 AND (cardinality($4::text[]) = 0 OR tags && $4)))
          ORDER BY chat_id",
    )
    .bind(workspace_id)
    .bind(&rule.chat_ids)
    .bind(&rule.tags_all)
    .bind(&rule.tags_any)
    .bind(rule.has_tag_condition())
    .fetch_all(pool)
    .await
}

/// How many chats a segment selects, and how many of them cannot be sent to now.
pub async fn member_counts(
    pool: &sqlx::PgPool,
    workspace_id: Uuid,
    rule: &domain::SegmentRule,
) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE NOT has_basis OR opted_out OR blocked) FROM chat_list
          WHERE workspace_id = $1
            AND (chat_id = ANY($2)
                 OR ($5 AND tags @> $3 AND (cardinality($4::text[]) = 0 OR tags && $4)))",
    )
    .bind(workspace_id)
    .bind(&rule.chat_ids)
    .bind(&rule.tags_all)
    .bind(&rule.tags_any)
    .bind(rule.has_tag_condition())
    .fetch_one(pool)
    .await
}
