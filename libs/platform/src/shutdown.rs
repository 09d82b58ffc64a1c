//! Graceful shutdown: one token cancelled on Ctrl-C / SIGTERM, passed into every service, which
//! finishes or hands back its in-flight work before returning.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(shutdown: Shutdown) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler cannot fail on unix");
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    });
}
