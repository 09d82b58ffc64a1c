use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

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

/// How to log in as `role`: `explicit` when given (`HERALD_API_DATABASE_URL`, ...), otherwise
/// the owner's `url` with `role` as the user and no password (enough where PostgreSQL trusts
/// local connections; elsewhere give the role a password and set the explicit URL).
pub fn role_options(
    url: &Secret<String>,
    role: &str,
    explicit: Option<&Secret<String>>,
) -> anyhow::Result<PgConnectOptions> {
    if let Some(explicit) = explicit {
        return explicit
            .expose()
            .parse()
            .with_context(|| format!("the database URL for {role} is not a PostgreSQL URL"));
    }
    let owner: PgConnectOptions = url
        .expose()
        .parse()
        .context("HERALD_DATABASE_URL is not a PostgreSQL URL")?;
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(owner.get_host())
        .port(owner.get_port())
        .ssl_mode(owner.get_ssl_mode())
        .username(role)
        .application_name(role);
    if let Some(socket) = owner.get_socket() {
        options = options.socket(socket);
    }
    if let Some(database) = owner.get_database() {
        options = options.database(database);
    }
    Ok(options)
}

/// A session-level PostgreSQL advisory lock, held on a connection of its own that is *detached*
/// from the pool: dropping the guard (or the process dying) closes that connection, which
/// releases the lock. A pooled connection would go back to the pool still holding it.
pub struct SessionLock {
    _connection: sqlx::PgConnection,
}

impl SessionLock {
    /// True while the lock's session is alive (and so still holds the lock). A holder that acts
    /// on the lock's behalf checks this before each batch: the session may have been killed.
    pub async fn is_held(&mut self) -> bool {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid())",
        )
        .fetch_one(&mut self._connection)
        .await
        .unwrap_or(false)
    }
}

/// Waits for the advisory lock called `name` (one holder per database at a time).
pub async fn lock(pool: &PgPool, name: &str) -> anyhow::Result<SessionLock> {
    let mut connection = pool.acquire().await?.detach();
    sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
        .bind(name)
        .execute(&mut connection)
        .await
        .with_context(|| format!("taking the lock {name:?}"))?;
    Ok(SessionLock {
        _connection: connection,
    })
}

/// Takes the advisory lock called `name` if nobody holds it.
pub async fn try_lock(pool: &PgPool, name: &str) -> anyhow::Result<Option<SessionLock>> {
    let mut connection = pool.acquire().await?.detach();
    let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock(hashtext($1))")
        .bind(name)
        .fetch_one(&mut connection)
        .await
        .with_context(|| format!("trying the lock {name:?}"))?;
    Ok(taken.then_some(SessionLock {
        _connection: connection,
    }))
}
