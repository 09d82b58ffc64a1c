//! The publication journal (`event_log`): which event sits at which position of the JetStream
//! event stream. This module owns every query of the table: the relay appends to it when
//! JetStream acknowledges a publish and reads it back to rebuild a lost stream; projections ask
//! it where the stream must end.
//!
//! Architecture invariant: position `p` of the stream holds exactly the event the journal has at
//! `p`. The relay keeps it so by publishing with JetStream's expected-last-sequence check, so a
//! rebuilt stream has the same sequences and every projection checkpoint stays valid.

use sqlx::{PgConnection, PgPool, Row};

/// The identity of a stored event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventKey {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
}

impl EventKey {
    /// The event's system-wide id, as carried by `Nats-Msg-Id` and the envelope.
    pub fn event_id(&self) -> String {
        schemas::event_id(&self.aggregate_type, &self.aggregate_id, self.sequence)
    }
}

/// A journalled event with what is needed to publish it again.
#[derive(Debug, Clone)]
pub struct Published {
    pub position: u64,
    pub event: schemas::StoredEvent,
}

/// The last position the journal knows (0 when nothing was published).
pub async fn last_position(pool: &PgPool) -> sqlx::Result<u64> {
    let last: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM event_log")
        .fetch_one(pool)
        .await?;
    Ok(last.unwrap_or(0) as u64)
}

/// The event journalled at `position`, if any.
pub async fn at(pool: &PgPool, position: u64) -> sqlx::Result<Option<EventKey>> {
    let row = sqlx::query(
        "SELECT aggregate_type, aggregate_id, sequence FROM event_log WHERE position = $1",
    )
    .bind(position as i64)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(EventKey {
            aggregate_type: row.try_get("aggregate_type")?,
            aggregate_id: row.try_get("aggregate_id")?,
            sequence: row.try_get("sequence")?,
        })
    })
    .transpose()
}

/// Records that `event` was published at `position` (idempotent: JetStream answers a duplicate
/// publish with the original position) and removes it from the outbox, in the caller's
/// transaction.
pub async fn append(conn: &mut PgConnection, position: u64, event: &EventKey) -> sqlx::Result<()> {
    append_all(conn, &[(position, event.clone())]).await
}

/// [`append`] for a batch of published events: one statement for the journal and one for the
/// outbox, whatever the batch's size.
pub async fn append_all(
    conn: &mut PgConnection,
    published: &[(u64, EventKey)],
) -> sqlx::Result<()> {
    if published.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = published.iter().map(|(p, _)| *p as i64).collect();
    let types: Vec<&str> = published
        .iter()
        .map(|(_, e)| e.aggregate_type.as_str())
        .collect();
    let ids: Vec<&str> = published
        .iter()
        .map(|(_, e)| e.aggregate_id.as_str())
        .collect();
    let sequences: Vec<i64> = published.iter().map(|(_, e)| e.sequence).collect();
    sqlx::query(
        "INSERT INTO event_log (position, aggregate_type, aggregate_id, sequence)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[])
         ON CONFLICT (position) DO NOTHING",
    )
    .bind(&positions)
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM outbox o USING UNNEST($1::text[], $2::text[], $3::bigint[]) AS t(aggregate_type, aggregate_id, sequence)
          WHERE o.aggregate_type = t.aggregate_type AND o.aggregate_id = t.aggregate_id AND o.sequence = t.sequence",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// True when the event store holds `event` (a stream message that is not in it belongs to
/// another database).
pub async fn is_stored(pool: &PgPool, event: &EventKey) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3)",
    )
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(event.sequence)
    .fetch_one(pool)
    .await
}

/// Journalled events after `after`, in position order, at most `limit`, with their payloads.
pub async fn read_after(pool: &PgPool, after: u64, limit: i64) -> sqlx::Result<Vec<Published>> {
    let rows = sqlx::query(
        "SELECT j.position, e.aggregate_type, e.aggregate_id, e.sequence, e.event_type,
                e.event_version, e.payload, e.metadata
           FROM event_log j
           JOIN events e USING (aggregate_type, aggregate_id, sequence)
          WHERE j.position > $1
          ORDER BY j.position
          LIMIT $2",
    )
    .bind(after as i64)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Published {
                position: row.try_get::<i64, _>("position")? as u64,
                event: stored_event(row)?,
            })
        })
        .collect()
}

/// Events that were committed but are neither waiting in the outbox nor journalled: published
/// by a version of Herald older than the journal into a stream that is now gone. They are put
/// back into the outbox (in commit-time order, as recorded in their metadata) so that nothing
/// stored is missing from a rebuilt stream. Returns how many.
pub async fn requeue_unjournalled(pool: &PgPool) -> sqlx::Result<u64> {
    let requeued = sqlx::query(
        "INSERT INTO outbox (aggregate_type, aggregate_id, sequence)
         SELECT e.aggregate_type, e.aggregate_id, e.sequence FROM events e
          WHERE NOT EXISTS (SELECT 1 FROM event_log j
                             WHERE (j.aggregate_type, j.aggregate_id, j.sequence) = (e.aggregate_type, e.aggregate_id, e.sequence))
            AND NOT EXISTS (SELECT 1 FROM outbox o
                             WHERE (o.aggregate_type, o.aggregate_id, o.sequence) = (e.aggregate_type, e.aggregate_id, e.sequence))
          ORDER BY e.metadata ->> 'occurred_at', e.aggregate_type, e.aggregate_id, e.sequence",
    )
    .execute(pool)
    .await?;
    Ok(requeued.rows_affected())
}

/// Decodes an `events` row (columns aggregate_type, aggregate_id, sequence, event_type,
/// event_version, payload, metadata).
pub fn stored_event(row: &sqlx::postgres::PgRow) -> sqlx::Result<schemas::StoredEvent> {
    Ok(schemas::StoredEvent {
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata: serde_json::from_value(row.try_get("metadata")?).unwrap_or_default(),
    })
}
