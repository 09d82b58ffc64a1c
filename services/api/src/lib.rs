//! Herald's HTTP API (axum, JSON): commands in, projections and aggregate state out.
//!
//! API boundary: paths, field names and error codes here are a public contract used by
//! integrators; add, never rename. Errors are always `{"error":{"code","message"}}`.

mod auth;
mod desk;
mod error;
mod extract;
mod guard;
mod routes;
mod server;

use std::sync::Arc;

use axum::Router;
use platform::nats::Bus;
use platform::{Secret, Shutdown, TokenCipher};
use sqlx::PgPool;
use store::EventStore;

pub use error::ApiError;
pub use server::Limits;

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
    /// The Bot API (or the sandbox) that chats are checked against when they are connected;
    /// `None`: chats are connected unchecked (tests of the HTTP layer alone).
    pub telegram_api: Option<url::Url>,
    /// `telegram_api` is Herald's own sandbox, not a real Bot API: a dry-run may send a test
    /// message through it.
    pub sandbox: bool,
    /// The desk's built assets, served at `/` (`None`: the API alone).
    pub desk_dir: Option<std::path::PathBuf>,
}

impl AppState {
    /// Users, tokens and roles (the identity tables' owner), over the API's pool.
    pub fn identity(&self) -> identity::Directory {
        identity::Directory::new(self.pool.clone())
    }
}

/// The whole API as a router with the default [`Limits`] (tests drive it with `oneshot`).
pub fn router(state: AppState) -> Router {
    router_with_limits(state, Limits::default())
}

/// The whole API as a router: request timeout, body limits and JSON errors included.
pub fn router_with_limits(state: AppState, limits: Limits) -> Router {
    routes::router(state, limits)
}

/// Serves the API on `listener` with the default [`Limits`] until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    serve_with_limits(listener, state, Limits::default(), shutdown).await
}

/// Serves the API on `listener` until `shutdown`: header-read timeout and a bounded number of
/// connections at the connection level, then [`router_with_limits`].
pub async fn serve_with_limits(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "http api listening");
    server::serve(
        listener,
        router_with_limits(state, limits),
        limits,
        shutdown,
    )
    .await
}
