//! Herald's event store in PostgreSQL (cqrs-es aggregates, one write path), its schema migrations, and the
//! strongly consistent [`domain::Directory`] built on it.
//!
//! Architecture invariant: a command is acknowledged only after its events are committed, and
//! the same transaction puts them in the outbox (a trigger), so nothing acknowledged can be
//! lost on the way to NATS.

mod context;
mod directory;
mod event_store;
pub mod journal;
mod migrations;
pub mod retention;
pub mod scope;
pub mod subjects;
pub mod upkeep;

pub use context::RequestContext;
pub use directory::{DirectoryEntry, StoreDirectory};
pub use event_store::{CommandError, EventStore, apply_many_on, apply_on, load_many, load_on};
pub use migrations::migrate;
