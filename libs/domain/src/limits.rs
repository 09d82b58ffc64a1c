//! Telegram's published limits, and the conservative defaults Herald applies below them.
//! Caps a workspace sets may be lower than Telegram's, never higher.

use crate::DomainError;

/// At most `max` messages per `per_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub max: u32,
    pub per_secs: u64,
}

/// Telegram's published sending limits (Bot API FAQ): the one definition every part of Herald
/// paces, caps and reports against.
#[derive(Debug, Clone, Copy)]
pub struct TelegramLimits {
    /// Every chat: one message per second.
    pub per_chat: Rate,
    /// Groups, supergroups and channels: 20 messages per minute.
    pub per_group: Rate,
    /// One bot across all its chats: 30 messages per second.
    pub per_bot: Rate,
    /// A bot that opted in to paid broadcasts: up to 1000 messages per second.
    pub per_paid_bot: Rate,
}

pub const TELEGRAM: TelegramLimits = TelegramLimits {
    per_chat: Rate {
        max: 1,
        per_secs: 1,
    },
    per_group: Rate {
        max: 20,
        per_secs: 60,
    },
    per_bot: Rate {
        max: 30,
        per_secs: 1,
    },
    per_paid_bot: Rate {
        max: 1000,
        per_secs: 1,
    },
};

/// One chat at [`TelegramLimits::per_chat`], for an hour.
pub const TELEGRAM_CHAT_PER_HOUR: u32 =
    TELEGRAM.per_chat.max * 3600 / TELEGRAM.per_chat.per_secs as u32;
/// One group, supergroup or channel at [`TelegramLimits::per_group`], for an hour.
pub const TELEGRAM_GROUP_PER_HOUR: u32 =
    TELEGRAM.per_group.max * 3600 / TELEGRAM.per_group.per_secs as u32;
/// One bot at [`TelegramLimits::per_bot`], for an hour.
pub const TELEGRAM_BOT_PER_HOUR: u32 =
    TELEGRAM.per_bot.max * 3600 / TELEGRAM.per_bot.per_secs as u32;

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
