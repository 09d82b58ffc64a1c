//! A bot is a Telegram bot a workspace publishes through. Its token is a secret: the domain
//! only ever sees it encrypted (the caller encrypts before building the command).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BotEvent {
    BotRegistered {
        workspace_id: Id,
        name: String,
        telegram_bot_id: i64,
        encrypted_token: String,
    },
}

impl DomainEvent for BotEvent {
    fn event_type(&self) -> String {
        match self {
            Self::BotRegistered { .. } => "BotRegistered".into(),
        }
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
        match command {
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
                let event = BotEvent::BotRegistered {
                    workspace_id,
                    name,
                    telegram_bot_id,
                    encrypted_token,
                };
                sink.write(event, self).await;
            }
        }
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
