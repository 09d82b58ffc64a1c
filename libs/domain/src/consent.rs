//! Contacts: the private chat of one person with a bot. Herald messages a person only on a
//! lawful basis (their consent, or a legitimate interest the workspace stands behind), recorded
//! with where it came from and when it was given. Groups and channels are not people; they
//! need no basis.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Why a workspace may message a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    Consent,
    LegitimateInterest,
}

impl LawfulBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::LegitimateInterest => "legitimate_interest",
        }
    }

    pub fn parse(value: &str) -> Result<Self, DomainError> {
        match value.trim() {
            "consent" => Ok(Self::Consent),
            "legitimate_interest" => Ok(Self::LegitimateInterest),
            _ => Err(DomainError::InvalidLawfulBasis(format!(
                "{value:?} is not a lawful basis; use \"consent\" or \"legitimate_interest\""
            ))),
        }
    }
}

/// The source the bot records when a person sends `/start`: only their own action may
/// re-subscribe them, so no other caller may claim it.
pub const SOURCE_BOT_START: &str = "bot_start";
/// Longest source label.
pub const MAX_SOURCE: usize = 64;
/// How far ahead of Herald's clock `given_at` may be (clocks of importing systems drift).
const GIVEN_AT_SKEW: TimeDelta = TimeDelta::minutes(5);

/// A contact's lawful basis, where it came from (`import`, `api`, `bot_start`, a form's name)
/// and when the person gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    pub basis: LawfulBasis,
    pub source: String,
    pub given_at: DateTime<Utc>,
}

impl Basis {
    /// A basis recorded by a caller (API, import): its source is a short label that is not the
    /// bot's own, and it was not given in the future.
    pub fn from_caller(
        basis: LawfulBasis,
        source: &str,
        given_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        let source = source.trim();
        if source.is_empty()
            || source.chars().count() > MAX_SOURCE
            || source.chars().any(char::is_control)
        {
            return Err(DomainError::InvalidLawfulBasis(format!(
                "the source must be 1 to {MAX_SOURCE} characters naming where the basis comes from (a form, a contract, \"import\")"
            )));
        }
        if source == SOURCE_BOT_START {
            return Err(DomainError::InvalidLawfulBasis(format!(
                "the source {SOURCE_BOT_START:?} is recorded only by the bot, when the person sends /start"
            )));
        }
        if given_at > now + GIVEN_AT_SKEW {
            return Err(DomainError::InvalidLawfulBasis(
                "given_at is in the future; give the moment the person gave their consent or the interest began"
                    .into(),
            ));
        }
        Ok(Self {
            basis,
            source: source.to_owned(),
            given_at,
        })
    }

    /// The consent a person gives by starting the bot.
    pub fn bot_start(given_at: DateTime<Utc>) -> Self {
        Self {
            basis: LawfulBasis::Consent,
            source: SOURCE_BOT_START.into(),
            given_at,
        }
    }
}

/// How a sealed value begins: personal data sealed under its subject's own key (see
/// `store::subjects`), erasable without rewriting the events that carry it.
pub const SEALED_PREFIX: &str = "sealed:";

/// Telegram's private chats have positive ids (the user's id); groups and channels negative.
pub fn is_private(telegram_chat_id: i64) -> bool {
    telegram_chat_id > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_callers_basis_names_its_source_and_a_past_moment() {
        let now = at("2026-12-01T12:00:00Z");
        let basis = Basis::from_caller(LawfulBasis::Consent, " web form ", now, now).unwrap();
        assert_eq!(basis.source, "web form");
        for (source, given_at) in [
            ("", now),
            ("x".repeat(65).as_str(), now),
            ("a\nb", now),
            (SOURCE_BOT_START, now),
            ("import", now + TimeDelta::hours(1)),
        ] {
            let refused = Basis::from_caller(LawfulBasis::Consent, source, given_at, now);
            assert!(
                matches!(refused, Err(DomainError::InvalidLawfulBasis(_))),
                "{source:?} at {given_at}"
            );
        }
    }

    #[test]
    fn bases_parse_from_their_names_only() {
        assert_eq!(LawfulBasis::parse("consent"), Ok(LawfulBasis::Consent));
        assert_eq!(
            LawfulBasis::parse("legitimate_interest"),
            Ok(LawfulBasis::LegitimateInterest)
        );
        assert!(LawfulBasis::parse("contract").is_err());
        assert!(LawfulBasis::parse("").is_err());
    }
}
