//! The planner's statistics of Herald's tables, kept fresh by Herald itself.
//!
//! sqlx prepares each query once per connection, and PostgreSQL then keeps the query's generic
//! plan for as long as the connection lives, until new statistics invalidate it. A plan made
//! while a table was nearly empty is a sequential scan; once the delivery queue holds 100,000
//! rows, the same plan turns a claim of a few milliseconds into one of a second, and a lookup by
//! primary key into a scan of the whole table. Autovacuum analyses growing tables, but it may be
//! off, or busy elsewhere for minutes, and a queue goes from empty to 100,000 rows in seconds.
//! So Herald analyses every table of its schema that changed by more rows than it had at its
//! last analysis (and by at least [`MIN_CHANGES`]), looking twice a second.
//!
//! ANALYZE needs the table's owner: the pool given here must connect as that role.

use std::time::Duration;

use sqlx::PgPool;

/// Rows changed since the last analysis below which a table is left alone.
pub const MIN_CHANGES: i64 = 500;
/// How often [`keep_fresh`] looks.
pub const EVERY: Duration = Duration::from_millis(500);

/// Tables of the current schema whose statistics are stale: changed by more than
/// `MIN_CHANGES` rows plus as many rows as they had when last analysed. A growing table is
/// analysed each time it doubles, which is what plans need (an order of magnitude), at a cost
/// that stays small however large it grows.
pub async fn stale_tables(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT s.relname::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
          WHERE s.schemaname = current_schema()
            AND s.n_mod_since_analyze > $1 + GREATEST(c.reltuples, 0)
          ORDER BY s.n_mod_since_analyze DESC",
    )
    .bind(MIN_CHANGES)
    .fetch_all(pool)
    .await
}

/// Analyses the stale tables, one transaction each; returns the ones analysed. Among processes
/// sharing the database only one does it at a time (the others skip the round).
pub async fn refresh(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let stale = stale_tables(pool).await?;
    let mut analysed = Vec::with_capacity(stale.len());
    for table in stale {
        let mut tx = pool.begin().await?;
        let ours: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))")
                .bind("herald:statistics")
                .fetch_one(&mut *tx)
                .await?;
        if !ours {
            break;
        }
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        sqlx::query(&format!("ANALYZE {quoted}"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        analysed.push(table);
    }
    Ok(analysed)
}

/// Refreshes stale statistics every [`EVERY`] until `stop` completes. Failures are logged and
/// tried again next round: stale statistics slow Herald down, they never make it wrong.
pub async fn keep_fresh(pool: PgPool, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => match refresh(&pool).await {
                Ok(analysed) if !analysed.is_empty() => {
                    tracing::debug!(tables = ?analysed, "refreshed the planner's statistics");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not refresh the planner's statistics"),
            },
            _ = &mut stop => return,
        }
    }
}

/// Whether autovacuum is on: Herald refreshes statistics itself, but dead rows of its queue
/// tables are only reclaimed by vacuum.
pub async fn autovacuum_on(pool: &PgPool) -> sqlx::Result<bool> {
    let setting: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await?;
    Ok(setting == "on")
}
