//! The upkeep of Herald's tables, done by Herald itself: fresh planner statistics always, and
//! vacuum of tables full of dead rows when PostgreSQL's autovacuum is off.
//!
//! sqlx prepares each query once per connection, and PostgreSQL then keeps the query's generic
//! plan for as long as the connection lives, until new statistics invalidate it. A plan made
//! while a table was nearly empty is a sequential scan; once the delivery queue holds 100,000
//! rows, the same plan turns a claim of a few milliseconds into one of a second, and a lookup by
//! primary key into a scan of the whole table. Autovacuum analyses growing tables, but it may be
//! off, or busy elsewhere for minutes, and a queue goes from empty to 100,000 rows in seconds.
//! So Herald analyses every table of its schema that changed by more than a tenth of the rows it
//! had at its last analysis (and by at least [`MIN_CHANGES`]), looking twice a second: the rule
//! of autovacuum's defaults, applied within a second.
//!
//! Every send updates its rows of the queue (schedule, lanes, progress, calendar), and each
//! update leaves a dead row behind that every later scan steps over until a vacuum reclaims it:
//! a paid broadcast to 65,000 chats left 130,000 dead rows in each of those tables. Where
//! autovacuum is off, Herald vacuums them by the rule of autovacuum's defaults too (dead rows
//! beyond 50 plus a fifth of the table), every 5 s, skipping a table another vacuum holds.
//!
//! ANALYZE and VACUUM need the table's owner: the pool given here must connect as that role.

use std::time::Duration;

use sqlx::PgPool;

/// Rows changed since the last analysis below which a table is left alone.
pub const MIN_CHANGES: i64 = 50;
/// How often [`keep_up`] looks.
pub const EVERY: Duration = Duration::from_millis(500);

/// Share of a table's rows that may change before its statistics count as stale.
pub const SCALE: f64 = 0.1;

/// Tables of the current schema whose statistics are stale: changed by more than
/// `MIN_CHANGES` rows plus a tenth of the rows they had when last analysed. Updates count, not
/// only growth: approving a post to 20,000 chats sets the due time of every queue row without
/// adding one, and with statistics that still said "nothing is due" the claim walked the wrong
/// index for 900 ms. An analysis samples at most 30,000 rows, so its cost stays bounded.
pub async fn stale_tables(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    Ok(behind(pool).await?.stale)
}

/// Dead rows beyond which a table is vacuumed (with a fifth of its rows, [`VACUUM_SCALE`]).
pub const MIN_DEAD_ROWS: i64 = 50;
/// Share of a table's rows that may be dead before it is vacuumed.
pub const VACUUM_SCALE: f64 = 0.2;
/// Every how many rounds of [`keep_up`] the bloated tables are vacuumed (every 5 s): statistics
/// must be fresh within a second, dead rows only kept from piling up, and the small tables
/// updated by every batch (checkpoints, leases) were vacuumed every second.
const VACUUM_EVERY_ROUNDS: u32 = 10;

/// Tables of the current schema with more dead rows than `MIN_DEAD_ROWS` plus a fifth of their
/// rows.
pub async fn bloated_tables(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    Ok(behind(pool).await?.bloated)
}

/// The tables whose statistics are stale and those that are bloated, each the most behind
/// first.
struct Behind {
    stale: Vec<String>,
    bloated: Vec<String>,
}

/// One read of `pg_stat_user_tables` for both questions.
async fn behind(pool: &PgPool) -> sqlx::Result<Behind> {
    let tables: Vec<(String, i64, i64, f64)> = sqlx::query_as(
        "SELECT s.relname::text, s.n_mod_since_analyze, s.n_dead_tup,
                GREATEST(c.reltuples, 0)::float8
           FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
          WHERE s.schemaname = current_schema()",
    )
    .fetch_all(pool)
    .await?;
    // The tables whose `count` exceeds `min` plus `scale` times their rows, the most behind first.
    let most_behind = |count: fn(&(String, i64, i64, f64)) -> i64, min: i64, scale: f64| {
        let mut over: Vec<_> = tables
            .iter()
            .filter(|table| count(table) as f64 > min as f64 + scale * table.3)
            .collect();
        over.sort_by_key(|table| std::cmp::Reverse(count(table)));
        over.into_iter().map(|table| table.0.clone()).collect()
    };
    let stale = most_behind(|table| table.1, MIN_CHANGES, SCALE);
    let bloated = most_behind(|table| table.2, MIN_DEAD_ROWS, VACUUM_SCALE);
    Ok(Behind { stale, bloated })
}

/// Vacuums the bloated tables; returns the ones vacuumed. VACUUM runs outside a transaction and
/// skips a table another vacuum (autovacuum's, or another process's) is working on.
pub async fn vacuum(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let bloated = bloated_tables(pool).await?;
    vacuum_tables(pool, &bloated).await?;
    Ok(bloated)
}

async fn vacuum_tables(pool: &PgPool, tables: &[String]) -> sqlx::Result<()> {
    for table in tables {
        sqlx::raw_sql(&format!("VACUUM (SKIP_LOCKED) {}", quoted(table)))
            .execute(pool)
            .await?;
    }
    Ok(())
}

fn quoted(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}

/// Analyses the stale tables, one transaction each; returns the ones analysed. Among processes
/// sharing the database only one does it at a time (the others skip the round).
pub async fn refresh(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    let stale = stale_tables(pool).await?;
    analyse(pool, stale).await
}

async fn analyse(pool: &PgPool, stale: Vec<String>) -> sqlx::Result<Vec<String>> {
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
        sqlx::query(&format!("ANALYZE {}", quoted(&table)))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        analysed.push(table);
    }
    Ok(analysed)
}

/// Every [`EVERY`] until `stop` completes: one read of the tables' statistics, then an
/// analysis of the stale ones and, when `vacuum_too` (autovacuum is off), every
/// [`VACUUM_EVERY_ROUNDS`] rounds a vacuum of the bloated ones. Failures are logged and tried
/// again next round: stale statistics and dead rows slow Herald down, they never make it wrong.
pub async fn keep_up(pool: PgPool, vacuum_too: bool, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for round in 0u32.. {
        tokio::select! {
            _ = every.tick() => {
                let Behind { stale, bloated } = match behind(&pool).await {
                    Ok(behind) => behind,
                    Err(error) => {
                        tracing::warn!(%error, "could not read the tables' statistics");
                        continue;
                    }
                };
                if vacuum_too && round % VACUUM_EVERY_ROUNDS == 0 && !bloated.is_empty() {
                    match vacuum_tables(&pool, &bloated).await {
                        Ok(()) => tracing::debug!(tables = ?bloated, "vacuumed tables"),
                        Err(error) => tracing::warn!(%error, "could not vacuum tables"),
                    }
                }
                match analyse(&pool, stale).await {
                    Ok(analysed) if !analysed.is_empty() => {
                        tracing::debug!(tables = ?analysed, "refreshed the planner's statistics");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "could not refresh the planner's statistics"),
                }
            }
            _ = &mut stop => return,
        }
    }
}

/// Whether autovacuum is on (else Herald vacuums its tables itself, see [`keep_up`]).
pub async fn autovacuum_on(pool: &PgPool) -> sqlx::Result<bool> {
    let setting: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(pool)
        .await?;
    Ok(setting == "on")
}
