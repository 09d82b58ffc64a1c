//! Every query of delivery's tables, and nothing else. Two owners write here, each through its
//! own submodule:
//!
//! - [`schedule`]: the `delivery_schedule` projection's tables (`delivery_bots`,
//!   `delivery_chats`, `delivery_schedule`): what should be delivered, derived from the event
//!   stream alone, so they can be dropped and rebuilt at any moment;
//! - [`claims`] and [`budget`]: the dispatcher's tables (`delivery_progress`,
//!   `delivery_chat_holds`, `delivery_bot_budget`, `delivery_bot_slots`, `delivery_bot_hours`,
//!   `delivery_attempts`): what it did, never rebuilt.
//!
//! [`stats`] holds the read queries others need (safety stats, attempt history, counts).
//! Telegram identities key the shared budgets: two registrations of one Telegram bot would share
//! one budget (and registering one twice is refused upstream).

pub mod budget;
pub mod claims;
pub mod schedule;
pub mod stats;
