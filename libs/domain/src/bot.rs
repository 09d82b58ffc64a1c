//! A bot is a Telegram bot a workspace publishes through. Its token is a secret: the domain
//! only ever sees it encrypted (the caller encrypts before building the command).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::limits::{self, HourlyCap};
use crate::{DomainError, EVENT_VERSION, Id, Services};

const MAX_NAME: usize = 200;

/// Checks that `token` has BotFather's shape `<bot id>:<secret>` and returns the bot id, which is
/// public (it is the bot's user id). The secret part never leaves the caller unencrypted.
pub fn parse_bot_token(token: &str) -> Result<i64, DomainError> {
    let (id, secret) = token.split_once(':').ok_or(DomainError::InvalidBotToken)?;
    let id: i64 = id.parse().map_err(|_| DomainError::InvalidBotToken)?;
    let secret_ok = secret.len() >= 20
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if id <= 0 || !secret_ok {
        return Err(DomainError::InvalidBotToken);
    }
    Ok(id)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum BotCommand {
    Register {
        workspace_id: Id,
        name: String,
        telegram_bot_id: i64,
        /// The bot token, already encrypted at rest (opaque to the domain).
        encrypted_token: String,
    },
    /// Telegram answered 401: the token was revoked. Sending stops, the queue is kept.
    Pause { reason: String },
    /// A new token from BotFather; resumes a paused bot.
    ReplaceToken {
        telegram_bot_id: i64,
        encrypted_token: String,
    },
    /// The workspace's cap on messages per hour for this bot (`None`: the default).
    SetHourlyCap { cap: Option<u32> },
    /// Opt in to paid broadcasts (up to 1000 msg/s, charged in Telegram Stars per message).
    SetPaidBroadcast { allowed: bool },
    /// The same token, encrypted under a new secret key (`herald keys rotate`). Unlike a
    /// replacement, it changes nothing else: a paused bot stays paused.
    Reencrypt { encrypted_token: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BotEvent {
    BotRegistered {
        workspace_id: Id,
        name: String,
        telegram_bot_id: i64,
        encrypted_token: String,
    },
    BotPaused {
        reason: String,
    },
    BotTokenReplaced {
        encrypted_token: String,
    },
    BotHourlyCapSet {
        cap: Option<u32>,
    },
    BotPaidBroadcastSet {
        allowed: bool,
    },
    BotTokenReencrypted {
        encrypted_token: String,
    },
}

impl DomainEvent for BotEvent {
    fn event_type(&self) -> String {
        match self {
            Self::BotRegistered { .. } => "BotRegistered",
            Self::BotPaused { .. } => "BotPaused",
            Self::BotTokenReplaced { .. } => "BotTokenReplaced",
            Self::BotHourlyCapSet { .. } => "BotHourlyCapSet",
            Self::BotPaidBroadcastSet { .. } => "BotPaidBroadcastSet",
            Self::BotTokenReencrypted { .. } => "BotTokenReencrypted",
        }
        .into()
    }
    fn event_version(&self) -> String {
        EVENT_VERSION.into()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Bot {
    pub workspace_id: Option<Id>,
    pub name: String,
    pub telegram_bot_id: i64,
    pub encrypted_token: String,
    /// Why the circuit breaker stopped this bot, while it is stopped.
    pub paused: Option<String>,
    pub hourly_cap: Option<u32>,
    pub allow_paid_broadcast: bool,
}

impl Bot {
    /// The cap in force: the workspace's, else the conservative default.
    pub fn effective_hourly_cap(&self) -> u32 {
        self.hourly_cap.unwrap_or(limits::DEFAULT_BOT_HOURLY_CAP)
    }
}

impl Aggregate for Bot {
    const TYPE: &'static str = "Bot";
    type Command = BotCommand;
    type Event = BotEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if !matches!(command, BotCommand::Register { .. }) && self.workspace_id.is_none() {
            return Err(DomainError::NotFound);
        }
        let event = match command {
            BotCommand::Register {
                workspace_id,
                name,
                telegram_bot_id,
                encrypted_token,
            } => {
                if self.workspace_id.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > MAX_NAME {
                    return Err(DomainError::InvalidBotName { max: MAX_NAME });
                }
                BotEvent::BotRegistered {
                    workspace_id,
                    name,
                    telegram_bot_id,
                    encrypted_token,
                }
            }
            BotCommand::Pause { reason } => {
                if self.paused.is_some() {
                    return Ok(());
                }
                BotEvent::BotPaused { reason }
            }
            BotCommand::ReplaceToken {
                telegram_bot_id,
                encrypted_token,
            } => {
                if telegram_bot_id != self.telegram_bot_id {
                    return Err(DomainError::TokenForAnotherBot(telegram_bot_id));
                }
                BotEvent::BotTokenReplaced { encrypted_token }
            }
            BotCommand::SetHourlyCap { cap } => {
                if let Some(cap) = cap {
                    HourlyCap::check(cap, limits::TELEGRAM_BOT_PER_HOUR)?;
                }
                BotEvent::BotHourlyCapSet { cap }
            }
            BotCommand::SetPaidBroadcast { allowed } => BotEvent::BotPaidBroadcastSet { allowed },
            BotCommand::Reencrypt { encrypted_token } => {
                BotEvent::BotTokenReencrypted { encrypted_token }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BotEvent::BotRegistered {
                workspace_id,
                name,
                telegram_bot_id,
                encrypted_token,
            } => {
                self.workspace_id = Some(workspace_id);
                self.name = name;
                self.telegram_bot_id = telegram_bot_id;
                self.encrypted_token = encrypted_token;
            }
            BotEvent::BotPaused { reason } => self.paused = Some(reason),
            BotEvent::BotTokenReplaced { encrypted_token } => {
                self.encrypted_token = encrypted_token;
                self.paused = None;
            }
            BotEvent::BotHourlyCapSet { cap } => self.hourly_cap = cap,
            BotEvent::BotPaidBroadcastSet { allowed } => self.allow_paid_broadcast = allowed,
            BotEvent::BotTokenReencrypted { encrypted_token } => {
                self.encrypted_token = encrypted_token;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_checked() {
        assert_eq!(
            parse_bot_token("123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"),
            Ok(123456)
        );
        for bad in [
            "",
            "abc",
            "123456",
            "x:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "12:short",
            "0:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "12:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL Dsaw",
        ] {
            assert_eq!(
                parse_bot_token(bad),
                Err(DomainError::InvalidBotToken),
                "{bad:?}"
            );
        }
    }
}

#[cfg(test)]
mod circuit_breaker_tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::directory::fake::FakeDirectory;

    fn registered() -> BotEvent {
        BotEvent::BotRegistered {
            workspace_id: Id::from_u128(1),
            name: "b".into(),
            telegram_bot_id: 42,
            encrypted_token: "v1:a".into(),
        }
    }

    fn framework() -> TestFramework<Bot> {
        TestFramework::with(FakeDirectory::default().into_services())
    }

    #[tokio::test]
    async fn a_new_token_for_the_same_bot_resumes_it() {
        framework()
            .given(vec![
                registered(),
                BotEvent::BotPaused {
                    reason: "401".into(),
                },
            ])
            .when_async(BotCommand::ReplaceToken {
                telegram_bot_id: 42,
                encrypted_token: "v1:b".into(),
            })
            .await
            .then_expect_events(vec![BotEvent::BotTokenReplaced {
                encrypted_token: "v1:b".into(),
            }]);
        framework()
            .given(vec![registered()])
            .when_async(BotCommand::ReplaceToken {
                telegram_bot_id: 43,
                encrypted_token: "v1:b".into(),
            })
            .await
            .then_expect_error(DomainError::TokenForAnotherBot(43));
    }

    #[tokio::test]
    async fn pausing_twice_records_once_and_caps_stay_below_telegram() {
        framework()
            .given(vec![
                registered(),
                BotEvent::BotPaused {
                    reason: "401".into(),
                },
            ])
            .when_async(BotCommand::Pause {
                reason: "again".into(),
            })
            .await
            .then_expect_events(vec![]);
        framework()
            .given(vec![registered()])
            .when_async(BotCommand::SetHourlyCap { cap: Some(200_000) })
            .await
            .then_expect_error(DomainError::InvalidHourlyCap {
                max: limits::TELEGRAM_BOT_PER_HOUR,
            });
    }
}
