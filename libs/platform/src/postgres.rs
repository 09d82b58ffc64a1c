use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::Secret;

/// Connects to PostgreSQL, waiting up to `patience` for it to come up (services may start in
/// any order).
pub async fn connect(url: &Secret<String>, patience: Duration) -> anyhow::Result<PgPool> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let attempt = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url.expose())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, "postgresql not reachable yet, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => {
                return Err(error).context(
                    "cannot connect to PostgreSQL: check HERALD_DATABASE_URL and that the server runs (scripts/herald starts a local one)",
                );
            }
        }
    }
}
