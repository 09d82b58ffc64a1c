//! A chat (private chat, group, supergroup or channel) connected to one of the workspace's bots.
//! Opting out is final for planning and delivery: nothing is sent to an opted-out chat, and only
//! the person's own `/start` lifts it. A chat that blocked or kicked the bot (Telegram's 403) is
//! unreachable: planning to it is refused. A private chat is a contact, targeted only on a
//! lawful basis (`consent`).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::approval::ApprovalPolicy;
use crate::audience::AudienceRules;
use crate::consent::{self, Basis};
use crate::limits::{self, HourlyCap};
use crate::{DomainError, EVENT_VERSION, Id, Services};

const MAX_TITLE: usize = 255;
pub const MAX_TAG: usize = 64;
pub const MAX_TAGS: usize = 32;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum ChatCommand {
    Connect {
        workspace_id: Id,
        bot_id: Id,
        telegram_chat_id: i64,
        title: String,
        /// The chat's type as Telegram reported it (`private`, `group`, `supergroup`,
        /// `channel`), when it was asked.
        kind: Option<String>,
        /// A private chat's lawful basis (required for them, refused for groups and channels).
        basis: Option<Basis>,
        /// Labels segments select by (`vip`, `berlin`); normalised by [`Chat::check_tags`].
        tags: Vec<String>,
        /// A public group's or channel's @username, as Telegram reported it (never a person's:
        /// ignored for private chats).
        username: Option<String>,
    },
    /// Replaces the chat's tags.
    SetTags { tags: Vec<String> },
    /// The person asked to be erased: their sealed data's key is destroyed (by the caller, in
    /// `subject_keys`), and nothing is sent to them again unless they start the bot anew.
    Erase,
    /// A caller records (or replaces) a contact's lawful basis. Refused once the person opted
    /// out: only their own `/start` subscribes them again.
    RecordBasis { basis: Basis },
    /// The person sent `/start` to the bot (update `update_id`): their consent, which also
    /// lifts an earlier opt-out or block, because it is their own action.
    Start {
        given_at: chrono::DateTime<chrono::Utc>,
        update_id: i64,
    },
    /// What Telegram says now about the chat and the bot in it (a periodic re-check). Recorded
    /// only when something changed: its type or title, or whether the bot may post.
    RecordCheck {
        kind: String,
        title: Option<String>,
        /// Why the bot may not post there, if it may not.
        cannot_post: Option<String>,
        /// The bot update that told, when one did (`my_chat_member`).
        update_id: Option<i64>,
    },
    OptOut {
        reason: String,
        /// The bot update that carried it (`/stop`, the person blocking the bot), if any.
        update_id: Option<i64>,
    },
    /// Telegram answered 403 (blocked, kicked, deactivated): stop sending there.
    MarkBlocked { reason: String },
    /// Telegram says the group became a supergroup with a new id.
    Migrate { to_telegram_chat_id: i64 },
    /// A workspace's own cap on messages per hour to this chat (`None`: the default).
    SetHourlyCap { cap: Option<u32> },
    /// Who must approve posts to this chat from now on (`None`: the standard review). Posts
    /// already planned keep the stages they were planned with.
    SetApprovalPolicy { policy: Option<ApprovalPolicy> },
    /// This chat's own quiet hours and caps (`None`: its workspace's).
    SetAudienceRules { rules: Option<AudienceRules> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChatEvent {
    ChatConnected {
        workspace_id: Id,
        bot_id: Id,
        telegram_chat_id: i64,
        title: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        basis: Option<Basis>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tags: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
    },
    ChatTagsSet {
        tags: Vec<String>,
    },
    /// The contact's personal data was erased (its key destroyed); it is opted out.
    ContactErased,
    /// A caller recorded the contact's lawful basis.
    ContactBasisRecorded {
        basis: Basis,
    },
    /// The person started the bot: consent from `bot_start`; an opt-out or block is lifted.
    ContactStarted {
        basis: Basis,
        update_id: i64,
    },
    /// Telegram's answer changed: `cannot_post` set flags the chat (planning refuses it, sends
    /// skip it), unset clears a flag (the bot may post there again).
    ChatChecked {
        kind: String,
        title: Option<String>,
        cannot_post: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        update_id: Option<i64>,
    },
    ChatOptedOut {
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        update_id: Option<i64>,
    },
    ChatBlocked {
        reason: String,
    },
    ChatMigrated {
        from_telegram_chat_id: i64,
        to_telegram_chat_id: i64,
    },
    ChatHourlyCapSet {
        cap: Option<u32>,
    },
    ChatApprovalPolicySet {
        policy: Option<ApprovalPolicy>,
    },
    ChatAudienceRulesSet {
        rules: Option<AudienceRules>,
    },
}

impl DomainEvent for ChatEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ChatConnected { .. } => "ChatConnected".into(),
            Self::ContactBasisRecorded { .. } => "ContactBasisRecorded".into(),
            Self::ChatTagsSet { .. } => "ChatTagsSet".into(),
            Self::ContactErased => "ContactErased".into(),
            Self::ContactStarted { .. } => "ContactStarted".into(),
            Self::ChatChecked { .. } => "ChatChecked".into(),
            Self::ChatOptedOut { .. } => "ChatOptedOut".into(),
            Self::ChatBlocked { .. } => "ChatBlocked".into(),
            Self::ChatMigrated { .. } => "ChatMigrated".into(),
            Self::ChatHourlyCapSet { .. } => "ChatHourlyCapSet".into(),
            Self::ChatApprovalPolicySet { .. } => "ChatApprovalPolicySet".into(),
            Self::ChatAudienceRulesSet { .. } => "ChatAudienceRulesSet".into(),
        }
    }
    fn event_version(&self) -> String {
        EVENT_VERSION.into()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Chat {
    pub workspace_id: Option<Id>,
    pub bot_id: Option<Id>,
    pub telegram_chat_id: i64,
    pub title: String,
    pub opted_out: bool,
    /// Why Telegram refused this chat for good, if it did.
    pub blocked: Option<String>,
    pub hourly_cap: Option<u32>,
    pub approval_policy: Option<ApprovalPolicy>,
    /// Telegram's type of the chat, when it was asked.
    pub kind: Option<String>,
    /// A contact's lawful basis (private chats only).
    pub basis: Option<Basis>,
    /// Its own quiet hours and caps (`None`: the workspace's).
    pub audience_rules: Option<AudienceRules>,
    pub tags: Vec<String>,
    /// A public group's or channel's @username (links to its messages).
    #[serde(default)]
    pub username: Option<String>,
    /// Its personal data was erased.
    pub erased: bool,
}

impl Chat {
    /// The rules of a connection's own fields (checked again by `Connect`; callers check
    /// them first to refuse before asking Telegram). Returns the title as stored.
    pub fn check_connection(telegram_chat_id: i64, title: &str) -> Result<String, DomainError> {
        if telegram_chat_id == 0 {
            return Err(DomainError::InvalidTelegramChatId);
        }
        let title = title.trim().to_owned();
        // A sealed title was checked before it was sealed; its ciphertext is longer.
        let sealed = title.starts_with(consent::SEALED_PREFIX);
        if title.is_empty() || (!sealed && title.chars().count() > MAX_TITLE) {
            return Err(DomainError::InvalidChatTitle { max: MAX_TITLE });
        }
        Ok(title)
    }

    /// Tags as stored: trimmed, lower-case, each once, in order; at most [`MAX_TAGS`] of at most
    /// [`MAX_TAG`] characters, without commas, semicolons or control characters.
    pub fn check_tags(tags: &[String]) -> Result<Vec<String>, DomainError> {
        let mut clean: Vec<String> = Vec::with_capacity(tags.len());
        for tag in tags {
            let tag = tag.trim().to_lowercase();
            if tag.is_empty()
                || tag.chars().count() > MAX_TAG
                || tag.chars().any(|c| c.is_control() || c == ',' || c == ';')
            {
                return Err(DomainError::InvalidTags(format!(
                    "{tag:?}: a tag is 1 to {MAX_TAG} characters, without commas, semicolons or control characters"
                )));
            }
            if !clean.contains(&tag) {
                clean.push(tag);
            }
        }
        if clean.len() > MAX_TAGS {
            return Err(DomainError::InvalidTags(format!(
                "a chat has at most {MAX_TAGS} tags, not {}",
                clean.len()
            )));
        }
        clean.sort();
        Ok(clean)
    }

    /// A person is connected on a lawful basis; a group or channel carries none.
    pub fn check_basis(telegram_chat_id: i64, basis: Option<&Basis>) -> Result<(), DomainError> {
        match (consent::is_private(telegram_chat_id), basis) {
            (true, None) => Err(DomainError::LawfulBasisRequired),
            (false, Some(_)) => Err(DomainError::LawfulBasisNotApplicable),
            _ => Ok(()),
        }
    }

    /// Whether posts may target it: groups and channels always, a person only on a basis.
    pub fn has_lawful_basis(&self) -> bool {
        !consent::is_private(self.telegram_chat_id) || self.basis.is_some()
    }

    fn require_contact(&self) -> Result<(), DomainError> {
        if self.workspace_id.is_none() {
            return Err(DomainError::NotFound);
        }
        if !consent::is_private(self.telegram_chat_id) {
            return Err(DomainError::LawfulBasisNotApplicable);
        }
        Ok(())
    }

    /// The cap in force: the workspace's, else the conservative default.
    pub fn effective_hourly_cap(&self) -> u32 {
        self.hourly_cap.unwrap_or(limits::DEFAULT_CHAT_HOURLY_CAP)
    }
}

impl Aggregate for Chat {
    const TYPE: &'static str = "Chat";
    type Command = ChatCommand;
    type Event = ChatEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            ChatCommand::Connect {
                workspace_id,
                bot_id,
                telegram_chat_id,
                title,
                kind,
                basis,
                tags,
                username,
            } => {
                if self.workspace_id.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                let title = Chat::check_connection(telegram_chat_id, &title)?;
                Chat::check_basis(telegram_chat_id, basis.as_ref())?;
                let tags = Chat::check_tags(&tags)?;
                let bot = services
                    .directory
                    .bot(bot_id)
                    .await
                    .map_err(DomainError::DirectoryUnavailable)?;
                if bot.is_none_or(|bot| bot.workspace_id != workspace_id) {
                    return Err(DomainError::UnknownBot(bot_id));
                }
                let event = ChatEvent::ChatConnected {
                    workspace_id,
                    bot_id,
                    telegram_chat_id,
                    title,
                    kind,
                    basis,
                    tags,
                    // A person's username is personal data: never kept.
                    username: username.filter(|_| !consent::is_private(telegram_chat_id)),
                };
                sink.write(event, self).await;
            }
            ChatCommand::Erase => {
                self.require_contact()?;
                if !self.erased {
                    sink.write(ChatEvent::ContactErased, self).await;
                }
            }
            ChatCommand::SetTags { tags } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                let tags = Chat::check_tags(&tags)?;
                if tags != self.tags {
                    sink.write(ChatEvent::ChatTagsSet { tags }, self).await;
                }
            }
            ChatCommand::RecordBasis { basis } => {
                self.require_contact()?;
                if self.opted_out {
                    return Err(DomainError::OptedOutByRecipient);
                }
                if self.basis.as_ref() != Some(&basis) {
                    sink.write(ChatEvent::ContactBasisRecorded { basis }, self)
                        .await;
                }
            }
            ChatCommand::Start {
                given_at,
                update_id,
            } => {
                self.require_contact()?;
                let consents = self
                    .basis
                    .as_ref()
                    .is_some_and(|b| b.basis == consent::LawfulBasis::Consent);
                // A repeated /start changes nothing; the first consent (or its renewal after an
                // opt-out) is what the audit keeps.
                if !consents || self.opted_out || self.blocked.is_some() {
                    let event = ChatEvent::ContactStarted {
                        basis: Basis::bot_start(given_at),
                        update_id,
                    };
                    sink.write(event, self).await;
                }
            }
            ChatCommand::RecordCheck {
                kind,
                title,
                cannot_post,
                update_id,
            } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                let title = title.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
                let changed = self.kind.as_deref() != Some(kind.as_str())
                    || title.as_ref().is_some_and(|t| *t != self.title)
                    || self.blocked.is_some() != cannot_post.is_some();
                if changed {
                    let event = ChatEvent::ChatChecked {
                        kind,
                        title,
                        cannot_post,
                        update_id,
                    };
                    sink.write(event, self).await;
                }
            }
            ChatCommand::OptOut { reason, update_id } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                // Opting out twice is not an error: integrators retry, and the first one counts.
                if !self.opted_out {
                    sink.write(
                        ChatEvent::ChatOptedOut {
                            reason: reason.trim().to_owned(),
                            update_id,
                        },
                        self,
                    )
                    .await;
                }
            }
            ChatCommand::MarkBlocked { reason } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                if self.blocked.is_none() {
                    sink.write(ChatEvent::ChatBlocked { reason }, self).await;
                }
            }
            ChatCommand::Migrate {
                to_telegram_chat_id,
            } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                if to_telegram_chat_id == 0 {
                    return Err(DomainError::InvalidTelegramChatId);
                }
                if to_telegram_chat_id != self.telegram_chat_id {
                    let event = ChatEvent::ChatMigrated {
                        from_telegram_chat_id: self.telegram_chat_id,
                        to_telegram_chat_id,
                    };
                    sink.write(event, self).await;
                }
            }
            ChatCommand::SetHourlyCap { cap } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                let max = limits::telegram_chat_hourly_max(self.telegram_chat_id);
                if let Some(cap) = cap {
                    HourlyCap::check(cap, max)?;
                }
                sink.write(ChatEvent::ChatHourlyCapSet { cap }, self).await;
            }
            ChatCommand::SetApprovalPolicy { policy } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                if let Some(policy) = &policy {
                    policy.validate()?;
                }
                if policy != self.approval_policy {
                    sink.write(ChatEvent::ChatApprovalPolicySet { policy }, self)
                        .await;
                }
            }
            ChatCommand::SetAudienceRules { rules } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                if let Some(rules) = &rules {
                    rules.validate()?;
                }
                if rules != self.audience_rules {
                    sink.write(ChatEvent::ChatAudienceRulesSet { rules }, self)
                        .await;
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ChatEvent::ChatConnected {
                workspace_id,
                bot_id,
                telegram_chat_id,
                title,
                kind,
                basis,
                tags,
                username,
            } => {
                self.workspace_id = Some(workspace_id);
                self.tags = tags;
                self.username = username;
                self.bot_id = Some(bot_id);
                self.telegram_chat_id = telegram_chat_id;
                self.title = title;
                self.kind = kind;
                self.basis = basis;
            }
            ChatEvent::ContactBasisRecorded { basis } => self.basis = Some(basis),
            ChatEvent::ChatTagsSet { tags } => self.tags = tags,
            ChatEvent::ContactErased => {
                self.erased = true;
                self.opted_out = true;
                self.tags.clear();
            }
            ChatEvent::ContactStarted { basis, .. } => {
                self.basis = Some(basis);
                self.opted_out = false;
                self.blocked = None;
            }
            ChatEvent::ChatChecked {
                kind,
                title,
                cannot_post,
                ..
            } => {
                self.kind = Some(kind);
                if let Some(title) = title {
                    self.title = title;
                }
                self.blocked = cannot_post;
            }
            ChatEvent::ChatOptedOut { .. } => self.opted_out = true,
            ChatEvent::ChatBlocked { reason } => self.blocked = Some(reason),
            ChatEvent::ChatMigrated {
                to_telegram_chat_id,
                ..
            } => {
                self.telegram_chat_id = to_telegram_chat_id;
            }
            ChatEvent::ChatHourlyCapSet { cap } => self.hourly_cap = cap,
            ChatEvent::ChatApprovalPolicySet { policy } => self.approval_policy = policy,
            ChatEvent::ChatAudienceRulesSet { rules } => self.audience_rules = rules,
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::BotInfo;
    use crate::directory::fake::FakeDirectory;

    const WS: Id = Id::from_u128(1);
    const BOT: Id = Id::from_u128(2);

    fn framework() -> TestFramework<Chat> {
        let mut directory = FakeDirectory::default();
        directory.bots.insert(BOT, BotInfo { workspace_id: WS });
        TestFramework::with(directory.into_services())
    }

    fn connected() -> ChatEvent {
        ChatEvent::ChatConnected {
            workspace_id: WS,
            bot_id: BOT,
            telegram_chat_id: -100,
            title: "News".into(),
            kind: Some("channel".into()),
            basis: None,
            tags: vec![],
            username: None,
        }
    }

    #[tokio::test]
    async fn a_check_is_recorded_when_the_bots_rights_or_the_chat_changed() {
        let check = |title: Option<&str>, cannot_post: Option<&str>| ChatCommand::RecordCheck {
            kind: "channel".into(),
            title: title.map(Into::into),
            cannot_post: cannot_post.map(Into::into),
            update_id: None,
        };
        let checked = |title: Option<&str>, cannot_post: Option<&str>| ChatEvent::ChatChecked {
            kind: "channel".into(),
            title: title.map(Into::into),
            cannot_post: cannot_post.map(Into::into),
            update_id: None,
        };
        // Nothing changed: nothing recorded.
        framework()
            .given(vec![connected()])
            .when_async(check(Some("News"), None))
            .await
            .then_expect_events(vec![]);
        framework()
            .given(vec![connected()])
            .when_async(check(None, Some("no right to post")))
            .await
            .then_expect_events(vec![checked(None, Some("no right to post"))]);
        framework()
            .given(vec![connected()])
            .when_async(check(Some("News daily"), None))
            .await
            .then_expect_events(vec![checked(Some("News daily"), None)]);
        // Flagged already (by a check or a refused send): the reason's wording is no change.
        framework()
            .given(vec![
                connected(),
                ChatEvent::ChatBlocked {
                    reason: "Forbidden: bot was kicked".into(),
                },
            ])
            .when_async(check(None, Some("not a member")))
            .await
            .then_expect_events(vec![]);
        // The rights came back: the flag goes.
        let mut chat = Chat::default();
        for event in [connected(), checked(None, Some("x")), checked(None, None)] {
            chat.apply(event);
        }
        assert_eq!(chat.blocked, None);
        assert_eq!(chat.kind.as_deref(), Some("channel"));
    }

    #[tokio::test]
    async fn connects_to_a_bot_of_the_same_workspace() {
        framework()
            .given_no_previous_events()
            .when_async(ChatCommand::Connect {
                workspace_id: WS,
                bot_id: BOT,
                telegram_chat_id: -100,
                title: "News".into(),
                kind: Some("channel".into()),
                basis: None,
                tags: vec![],
                username: None,
            })
            .await
            .then_expect_events(vec![connected()]);
    }

    #[tokio::test]
    async fn refuses_a_bot_of_another_workspace_or_unknown() {
        let other_ws = Id::from_u128(9);
        framework()
            .given_no_previous_events()
            .when_async(ChatCommand::Connect {
                workspace_id: other_ws,
                bot_id: BOT,
                telegram_chat_id: -5,
                title: "x".into(),
                kind: Some("channel".into()),
                basis: None,
                tags: vec![],
                username: None,
            })
            .await
            .then_expect_error(DomainError::UnknownBot(BOT));
        framework()
            .given_no_previous_events()
            .when_async(ChatCommand::Connect {
                workspace_id: WS,
                bot_id: Id::from_u128(3),
                telegram_chat_id: -5,
                title: "x".into(),
                kind: Some("channel".into()),
                basis: None,
                tags: vec![],
                username: None,
            })
            .await
            .then_expect_error(DomainError::UnknownBot(Id::from_u128(3)));
    }

    fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
        s.parse().unwrap()
    }

    fn contact(basis: Option<Basis>) -> ChatEvent {
        ChatEvent::ChatConnected {
            workspace_id: WS,
            bot_id: BOT,
            telegram_chat_id: 42,
            title: "Alice".into(),
            kind: None,
            basis,
            tags: vec![],
            username: None,
        }
    }

    fn imported() -> Basis {
        Basis {
            basis: consent::LawfulBasis::Consent,
            source: "import".into(),
            given_at: at("2026-11-01T10:00:00Z"),
        }
    }

    #[tokio::test]
    async fn a_person_is_connected_on_a_lawful_basis_and_a_group_without_one() {
        let connect = |telegram_chat_id, basis| ChatCommand::Connect {
            workspace_id: WS,
            bot_id: BOT,
            telegram_chat_id,
            title: "Alice".into(),
            kind: None,
            basis,
            tags: vec![],
            username: None,
        };
        framework()
            .given_no_previous_events()
            .when_async(connect(42, Some(imported())))
            .await
            .then_expect_events(vec![contact(Some(imported()))]);
        framework()
            .given_no_previous_events()
            .when_async(connect(42, None))
            .await
            .then_expect_error(DomainError::LawfulBasisRequired);
        framework()
            .given_no_previous_events()
            .when_async(connect(-42, Some(imported())))
            .await
            .then_expect_error(DomainError::LawfulBasisNotApplicable);
        let mut chat = Chat::default();
        chat.apply(contact(None));
        assert!(!chat.has_lawful_basis(), "a contact from before bases");
        chat.apply(ChatEvent::ContactBasisRecorded { basis: imported() });
        assert!(chat.has_lawful_basis());
    }

    #[tokio::test]
    async fn only_the_persons_own_start_subscribes_them_again() {
        let opted_out = ChatEvent::ChatOptedOut {
            reason: "/stop".into(),
            update_id: Some(7),
        };
        framework()
            .given(vec![contact(Some(imported())), opted_out.clone()])
            .when_async(ChatCommand::RecordBasis { basis: imported() })
            .await
            .then_expect_error(DomainError::OptedOutByRecipient);
        let start = ChatCommand::Start {
            given_at: at("2026-12-01T09:00:00Z"),
            update_id: 8,
        };
        let started = ChatEvent::ContactStarted {
            basis: Basis::bot_start(at("2026-12-01T09:00:00Z")),
            update_id: 8,
        };
        framework()
            .given(vec![contact(Some(imported())), opted_out.clone()])
            .when_async(start.clone())
            .await
            .then_expect_events(vec![started.clone()]);
        // Consent already in force: a second /start records nothing.
        framework()
            .given(vec![contact(Some(imported())), opted_out, started.clone()])
            .when_async(start.clone())
            .await
            .then_expect_events(vec![]);
        // A legitimate interest becomes consent when the person starts the bot.
        let interest = Basis {
            basis: consent::LawfulBasis::LegitimateInterest,
            ..imported()
        };
        framework()
            .given(vec![contact(Some(interest))])
            .when_async(start.clone())
            .await
            .then_expect_events(vec![started.clone()]);
        let mut chat = Chat::default();
        for event in [
            contact(Some(imported())),
            ChatEvent::ChatBlocked {
                reason: "Forbidden: bot was blocked by the user".into(),
            },
            started,
        ] {
            chat.apply(event);
        }
        assert!(!chat.opted_out && chat.blocked.is_none() && chat.has_lawful_basis());
        framework()
            .given(vec![connected()])
            .when_async(start)
            .await
            .then_expect_error(DomainError::LawfulBasisNotApplicable);
    }

    #[test]
    fn tags_are_normalised_and_bounded() {
        let tags = |t: &[&str]| t.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            Chat::check_tags(&tags(&[" VIP ", "berlin", "vip"])),
            Ok(tags(&["berlin", "vip"]))
        );
        for bad in [tags(&[""]), tags(&["a,b"]), tags(&[&"x".repeat(65)])] {
            assert!(Chat::check_tags(&bad).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
        assert!(Chat::check_tags(&many).is_err());
    }

    #[tokio::test]
    async fn refuses_zero_chat_id() {
        framework()
            .given_no_previous_events()
            .when_async(ChatCommand::Connect {
                workspace_id: WS,
                bot_id: BOT,
                telegram_chat_id: 0,
                title: "x".into(),
                kind: Some("channel".into()),
                basis: None,
                tags: vec![],
                username: None,
            })
            .await
            .then_expect_error(DomainError::InvalidTelegramChatId);
    }

    #[tokio::test]
    async fn opting_out_is_recorded_once() {
        framework()
            .given(vec![connected()])
            .when_async(ChatCommand::OptOut {
                reason: "asked".into(),
                update_id: None,
            })
            .await
            .then_expect_events(vec![ChatEvent::ChatOptedOut {
                reason: "asked".into(),
                update_id: None,
            }]);
        framework()
            .given(vec![
                connected(),
                ChatEvent::ChatOptedOut {
                    reason: "asked".into(),
                    update_id: None,
                },
            ])
            .when_async(ChatCommand::OptOut {
                reason: "again".into(),
                update_id: None,
            })
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn blocking_and_migrating_are_recorded_once() {
        framework()
            .given(vec![connected()])
            .when_async(ChatCommand::MarkBlocked {
                reason: "Forbidden: bot was kicked".into(),
            })
            .await
            .then_expect_events(vec![ChatEvent::ChatBlocked {
                reason: "Forbidden: bot was kicked".into(),
            }]);
        framework()
            .given(vec![
                connected(),
                ChatEvent::ChatBlocked { reason: "x".into() },
            ])
            .when_async(ChatCommand::MarkBlocked { reason: "y".into() })
            .await
            .then_expect_events(vec![]);
        framework()
            .given(vec![connected()])
            .when_async(ChatCommand::Migrate {
                to_telegram_chat_id: -1001,
            })
            .await
            .then_expect_events(vec![ChatEvent::ChatMigrated {
                from_telegram_chat_id: -100,
                to_telegram_chat_id: -1001,
            }]);
    }

    #[tokio::test]
    async fn hourly_caps_stay_below_telegrams_limit_for_the_chat() {
        // -100 is a group: at most 20 per minute, 1200 per hour.
        framework()
            .given(vec![connected()])
            .when_async(ChatCommand::SetHourlyCap { cap: Some(1201) })
            .await
            .then_expect_error(DomainError::InvalidHourlyCap { max: 1200 });
        framework()
            .given(vec![connected()])
            .when_async(ChatCommand::SetHourlyCap { cap: Some(1200) })
            .await
            .then_expect_events(vec![ChatEvent::ChatHourlyCapSet { cap: Some(1200) }]);
    }
}
