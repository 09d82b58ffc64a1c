//! Herald keeps up its tables itself (`store::upkeep`, run beside the relay): the planner's
//! statistics fresh, so that plans made while a table was nearly empty do not outlive its
//! growth, and, where autovacuum is off, dead rows vacuumed.

use std::time::Duration;

use system_tests::spawn_app;

/// A time column of `table`'s row in `pg_stat_user_tables` (or an expression over them).
async fn stat_time(
    pool: &sqlx::PgPool,
    table: &str,
    column: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    sqlx::query_scalar(&format!(
        "SELECT {column} FROM pg_stat_user_tables
          WHERE relname = $1 AND schemaname = current_schema()"
    ))
    .bind(table)
    .fetch_one(pool)
    .await
    .expect("reading table statistics")
}

/// Whether `table` was analysed by an explicit ANALYZE (autovacuum sets another column).
async fn analysed(pool: &sqlx::PgPool, table: &str) -> bool {
    stat_time(pool, table, "last_analyze").await.is_some()
}

/// When `table` was last vacuumed, by Herald or by autovacuum.
async fn vacuumed_at(pool: &sqlx::PgPool, table: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    stat_time(pool, table, "GREATEST(last_vacuum, last_autovacuum)").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_grew_is_analysed_within_seconds() {
    let app = spawn_app().await;
    let pool = &app.herald.pool;
    let (ws, bot) = app.workspace_with_bot().await;
    // 1,200 chats: well past the threshold for the events table and the delivery lanes.
    app.import_chats(&ws, &bot, 31_000, 1_200).await;
    for table in ["events", "delivery_chats"] {
        app.eventually(
            &format!("{table} analysed after the import"),
            Duration::from_secs(15),
            || async { analysed(pool, table).await.then_some(()) },
        )
        .await;
    }
    // An analysis during the import saw only part of it; once the import is done, the next
    // rounds leave nothing stale behind.
    app.eventually(
        "events no longer stale after the import",
        Duration::from_secs(15),
        || async {
            let stale = store::upkeep::stale_tables(pool)
                .await
                .expect("listing stale tables");
            (!stale.contains(&"events".to_string())).then_some(())
        },
    )
    .await;
    app.cleanup().await;
}

/// `store::upkeep::vacuum` clears a table whose rows were all updated. Where autovacuum is off,
/// the upkeep beside the relay runs it too and may get there first; either way the dead rows
/// must go. (Which of the two runs it, by the server's setting, is not tested here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_full_of_dead_rows_is_vacuumed() {
    let app = spawn_app().await;
    let pool = &app.herald.pool;
    let (ws, bot) = app.workspace_with_bot().await;
    app.import_chats(&ws, &bot, 32_000, 600).await;
    let before = vacuumed_at(pool, "delivery_chats").await;
    // Every lane updated once: 600 dead rows in a table of 600.
    sqlx::query("UPDATE delivery_chats SET chain_ms = chain_ms + 1")
        .execute(pool)
        .await
        .expect("updating the lanes");
    app.eventually(
        "delivery_chats vacuumed and no longer bloated",
        Duration::from_secs(15),
        || async {
            store::upkeep::vacuum(pool).await.expect("vacuuming");
            let bloated = store::upkeep::bloated_tables(pool)
                .await
                .expect("listing bloated tables");
            let vacuumed = vacuumed_at(pool, "delivery_chats").await > before;
            (vacuumed && !bloated.contains(&"delivery_chats".to_string())).then_some(())
        },
    )
    .await;
    app.cleanup().await;
}
