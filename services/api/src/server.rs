//! The HTTP server. `axum::serve` has no header-read timeout, so the API drives hyper's HTTP/1
//! connection builder itself: a client that does not finish its request head in time is
//! disconnected, the number of open connections is bounded, and shutdown is graceful.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use platform::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What the server allows a client. The defaults suit a public API; tests shorten them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a client has to send a whole request head (request line and headers), from the
    /// moment its connection opens or its previous response went out. A connection that is
    /// silent or slower than this is closed (idle keep-alive connections included).
    pub header_read_timeout: Duration,
    /// Time a client has to send the request body, counted from when the head arrived;
    /// slower bodies get 408 `body_timeout`.
    pub body_read_timeout: Duration,
    /// Time Herald has to answer a request, counted from when its head arrived; later it
    /// answers 503 `request_timeout`.
    pub request_timeout: Duration,
    /// Largest request body accepted; larger ones get 413 `payload_too_large`.
    pub body_bytes: usize,
    /// Largest body of the bulk endpoints (a post to 100,000 chats, an import of 10,000).
    pub bulk_body_bytes: usize,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(30),
            body_bytes: 1 << 20,
            bulk_body_bytes: 8 << 20,
            max_connections: 512,
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then stops accepting, lets requests in
/// flight finish (each is bounded by the request timeout) and closes idle connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            _ = shutdown.cancelled() => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_error(error).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // Timeouts and clients that hang up are routine; nothing of the request is logged.
                tracing::debug!(%error, timeout = error.is_timeout(), "http connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    // Requests in flight are bounded by the request timeout; allow a little more to write them.
    let patience = limits.request_timeout + Duration::from_secs(5);
    if tokio::time::timeout(patience, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?patience,
            "http connections still open at shutdown were dropped"
        );
    }
    Ok(())
}

/// Connection-level accept errors concern one client; others (e.g. out of file descriptors)
/// are waited out instead of spinning.
async fn accept_error(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "http accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
