//! Retention (PRODUCT.md): the audit journal is kept 12 months, or less by a workspace's policy
//! (`RetentionSet`); technical logs 90 days. The events themselves are the system of record and
//! stay; what ages out is what was derived from them for people to read (the `audit_log`
//! projection) and the technical traces beside them. [`enforce`] runs beside the relay every
//! hour, and the audit projection never writes an entry already past the product's limit, so a
//! rebuild does not bring old entries back.

use chrono::{DateTime, TimeDelta, Utc};
use domain::Workspace;
use sqlx::PgPool;

use crate::event_store::load_many;

/// The audit journal's retention when a workspace sets none.
pub const AUDIT: TimeDelta = TimeDelta::days(domain::MAX_AUDIT_DAYS as i64);
/// Technical logs: the listener's handled updates, failed sign-ins.
pub const TECHNICAL: TimeDelta = TimeDelta::days(90);

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub audit_entries: u64,
    pub bot_updates: u64,
    pub sign_in_failures: u64,
}

/// Removes everything older than its retention as of `now` (a parameter, so tests can move
/// the clock). Needs a pool that reads every workspace (the owner's).
pub async fn enforce(pool: &PgPool, now: DateTime<Utc>) -> anyhow::Result<Removed> {
    let mut removed = Removed::default();
    removed.audit_entries += sqlx::query("DELETE FROM audit_log WHERE occurred_at < $1")
        .bind(now - AUDIT)
        .execute(pool)
        .await?
        .rows_affected();
    // Workspaces that keep their audit for less.
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id::uuid FROM events
          WHERE aggregate_type = 'Workspace' AND event_type = 'RetentionSet'",
    )
    .fetch_all(pool)
    .await?;
    for (id, workspace) in load_many::<Workspace>(pool, &ids).await? {
        if let Some(days) = workspace.audit_days {
            removed.audit_entries +=
                sqlx::query("DELETE FROM audit_log WHERE workspace_id = $1 AND occurred_at < $2")
                    .bind(id.to_string())
                    .bind(now - TimeDelta::days(i64::from(days)))
                    .execute(pool)
                    .await?
                    .rows_affected();
        }
    }
    // The newest update of each bot stays: the listener's next offset follows from it.
    removed.bot_updates += sqlx::query(
        "DELETE FROM bot_updates b WHERE received_at < $1
            AND update_id < (SELECT max(update_id) FROM bot_updates l WHERE l.bot_id = b.bot_id)",
    )
    .bind(now - TECHNICAL)
    .execute(pool)
    .await?
    .rows_affected();
    removed.sign_in_failures += sqlx::query("DELETE FROM identity_sign_in_failures WHERE at < $1")
        .bind(now - TECHNICAL)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(removed)
}

/// Whether an audit entry of `occurred_at` is already past the product's limit at `now`.
pub fn audit_expired(occurred_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    occurred_at < now - AUDIT
}
