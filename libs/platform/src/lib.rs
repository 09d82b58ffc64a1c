//! Cross-cutting plumbing every Herald service shares: configuration, secrets, encryption of
//! bot tokens at rest, telemetry, shutdown, and connections to PostgreSQL and NATS JetStream.

pub mod config;
pub mod crypto;
pub mod nats;
pub mod net;
pub mod postgres;
pub mod secret;
pub mod shutdown;
pub mod telemetry;

pub use config::Config;
pub use crypto::TokenCipher;
pub use secret::Secret;
pub use shutdown::Shutdown;
