//! The workspace a request may see, enforced by PostgreSQL's row-level security.
//!
//! The API's pool connects as `herald_api`, whose policies (migration 0015) admit only rows of
//! the workspace in the connection's `herald.workspace` setting. [`within`] runs a request's
//! work with a workspace in scope; every connection taken from a [`scoped_pool`] inside it is
//! set to that workspace before it is handed out, and to none outside any scope. So a query
//! that forgets its `WHERE workspace_id`, or names another workspace's ids, sees nothing
//! foreign; and work spawned onto another task (which leaves the scope behind) sees nothing.

use std::future::Future;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The login role of the HTTP API's request path: scoped to one workspace per request.
pub const API_ROLE: &str = "herald_api";
/// The login role of the relay, the projections and delivery: sees every workspace, owns
/// nothing.
pub const WORKER_ROLE: &str = "herald_worker";

tokio::task_local! {
    static WORKSPACE: Option<Uuid>;
}

/// Runs `work` with `workspace` in scope (or none): the database shows it that workspace's rows.
pub async fn within<F: Future>(workspace: Option<Uuid>, work: F) -> F::Output {
    WORKSPACE.scope(workspace, work).await
}

/// The workspace in scope on this task, if any.
pub fn current() -> Option<Uuid> {
    WORKSPACE.try_with(|w| *w).ok().flatten()
}

/// A lazily connecting pool for the API, scoped by [`within`]: `options` should log in as
/// [`API_ROLE`].
pub fn scoped_pool(
    options: PgConnectOptions,
    max_connections: u32,
    acquire_timeout: Duration,
) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        // A connection is scoped each time it is handed out, whether it was idle or is new.
        .after_connect(|conn, _| Box::pin(async move { set_scope(conn).await }))
        .before_acquire(|conn, _| {
            Box::pin(async move {
                set_scope(conn).await?;
                Ok(true)
            })
        })
        .connect_lazy_with(options)
}

async fn set_scope(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let workspace = current().map(|w| w.to_string()).unwrap_or_default();
    sqlx::query("SELECT set_config('herald.workspace', $1, false)")
        .bind(workspace)
        .execute(conn)
        .await?;
    Ok(())
}
