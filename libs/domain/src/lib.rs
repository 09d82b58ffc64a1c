//! Herald's domain: aggregates, commands, events and their rules.
//!
//! Architecture invariant: this crate does no IO. No tokio runtime, database, NATS, HTTP or
//! Telegram client lives here; whatever a rule needs to know about the outside world (does
//! this chat exist, has it opted out) comes through the [`Directory`] trait, and the current
//! time comes in the command. That keeps every rule testable with given/when/then.

pub mod approval;
pub mod audience;
mod bot;
mod chat;
pub mod consent;
mod delivery;
mod directory;
mod error;
pub mod forecast;
pub mod limits;
mod post;
pub mod rules;
pub mod segment;
mod text;
mod workspace;

pub use bot::{Bot, BotCommand, BotEvent, parse_bot_token};
pub use chat::{Chat, ChatCommand, ChatEvent};
pub use delivery::{Delivery, DeliveryCommand, DeliveryEvent, delivery_id};
pub use directory::{BotInfo, ChatInfo, Directory, DirectoryFuture, Services};
pub use error::{DomainError, ErrorKind};
pub use post::{
    DeliveryCounts, DeliveryOutcome, DeliveryState, DeliveryStatus, FailureClass,
    MAX_CHATS_PER_POST, ParseMode, Post, PostCommand, PostEvent, PostState, Resolution, SealedText,
    TARGETS_EVENT, TARGETS_PER_EVENT,
};
pub use segment::{Segment, SegmentCommand, SegmentEvent, SegmentRule};
pub use text::MAX_TEXT_UTF16;
pub use workspace::{InDoubtPolicy, MAX_AUDIT_DAYS, Workspace, WorkspaceCommand, WorkspaceEvent};

/// Identifiers are UUIDs; aggregates are stored under their id's hyphenated string form.
pub type Id = uuid::Uuid;

/// The version written with every event this crate emits today. Stored events keep the version
/// they were written with; readers upcast older ones.
pub const EVENT_VERSION: &str = "1";

/// How far in the past `publish_at` may be and still mean "as soon as possible".
pub const PUBLISH_AT_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
