//! Telegram's published limits, and the conservative defaults Herald applies below them.
//! Caps a workspace sets may be lower than Telegram's, never higher.

use crate::DomainError;

/// One chat: about one message per second.
pub const TELEGRAM_CHAT_PER_HOUR: u32 = 3_600;
/// One group, supergroup or channel: 20 messages per minute.
pub const TELEGRAM_GROUP_PER_HOUR: u32 = 1_200;
/// One bot across all chats: about 30 messages per second.
pub const TELEGRAM_BOT_PER_HOUR: u32 = 108_000;

/// What Herald sends to one chat per hour unless the workspace decides otherwise: enough for
/// a busy channel, far below what would tire an audience or Telegram.
pub const DEFAULT_CHAT_HOURLY_CAP: u32 = 60;
/// What one bot sends per hour unless the workspace decides otherwise.
pub const DEFAULT_BOT_HOURLY_CAP: u32 = 20_000;

/// Telegram's hourly maximum for a chat id (negative ids are groups and channels).
pub fn telegram_chat_hourly_max(telegram_chat_id: i64) -> u32 {
    if telegram_chat_id < 0 {
        TELEGRAM_GROUP_PER_HOUR
    } else {
        TELEGRAM_CHAT_PER_HOUR
    }
}

/// Validation of a configured hourly cap.
pub struct HourlyCap;

impl HourlyCap {
    pub fn check(cap: u32, telegram_max: u32) -> Result<(), DomainError> {
        if cap == 0 || cap > telegram_max {
            return Err(DomainError::InvalidHourlyCap { max: telegram_max });
        }
        Ok(())
    }
}
