//! Herald's wire contracts: the protobuf messages of package `herald.v1`, and the one place
//! that converts stored domain events (JSON) into integration events (protobuf).
//!
//! API boundary: everything published on NATS is a [`v1::EventEnvelope`] built by
//! [`to_integration_event`]; nothing else encodes events for the bus.

mod convert;

/// Generated from `proto/herald/v1/*.proto`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/herald.v1.rs"));
}

pub use convert::{ConvertError, StoredEvent, event_id, from_millis, to_integration_event};
pub use prost::Message;

/// Metadata keys Herald records with every command (cqrs-es metadata, stored as JSON).
pub mod metadata {
    pub const ACTOR: &str = "actor";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const CAUSATION_ID: &str = "causation_id";
    pub const WORKSPACE_ID: &str = "workspace_id";
    /// RFC 3339 time at which the command was accepted.
    pub const OCCURRED_AT: &str = "occurred_at";
}
