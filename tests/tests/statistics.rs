//! Herald keeps the planner's statistics of its tables fresh itself (`store::statistics`, run
//! beside the relay), so that plans made while a table was nearly empty do not outlive its
//! growth, whether or not PostgreSQL's autovacuum is on.

use std::time::Duration;

use system_tests::spawn_app;

/// Whether `table` was analysed by an explicit ANALYZE (autovacuum sets another column).
async fn analysed(pool: &sqlx::PgPool, table: &str) -> bool {
    sqlx::query_scalar(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
          WHERE relname = $1 AND schemaname = current_schema()",
    )
    .bind(table)
    .fetch_one(pool)
    .await
    .expect("reading table statistics")
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
    // Nothing stale is left for the next round to do.
    let stale = store::statistics::stale_tables(pool)
        .await
        .expect("listing stale tables");
    assert!(
        !stale.contains(&"events".to_string()),
        "events still stale: {stale:?}"
    );
    app.cleanup().await;
}
