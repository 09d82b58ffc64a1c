//! Herald's HTTP API (axum, JSON): commands in, projections and aggregate state out.
//!
//! API boundary: paths, field names and error codes here are a public contract used by
//! integrators; add, never rename. Errors are always `{"error":{"code","message"}}`.

mod auth;
mod error;
mod extract;
mod routes;

use std::sync::Arc;

use axum::Router;
use platform::nats::Bus;
use platform::{Secret, Shutdown, TokenCipher};
use sqlx::PgPool;
use store::EventStore;

pub use error::ApiError;

/// The OpenAPI document served at `GET /v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What request handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
    pub pool: PgPool,
    /// For readiness checks.
    pub bus: Option<Bus>,
    pub cipher: TokenCipher,
    pub admin_token: Arc<Secret<String>>,
}

/// The whole API as a router (tests drive it with `oneshot`).
pub fn router(state: AppState) -> Router {
    routes::router(state)
}

/// Serves the API on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "http api listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
