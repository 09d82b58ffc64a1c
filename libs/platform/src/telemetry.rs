use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the log subscriber. `HERALD_LOG` (or `RUST_LOG`) selects what is logged, e.g.
/// `HERALD_LOG=herald=debug,info`. Logs carry ids and counts, never message text or tokens.
pub fn init() {
    let filter = std::env::var("HERALD_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info,sqlx=warn,async_nats=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
