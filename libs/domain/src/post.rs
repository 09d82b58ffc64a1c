//! A post: text planned for one or more chats at a publish time, approved (or rejected or
//! cancelled), then delivered chat by chat. Delivery outcomes are part of the post's history.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::{
    DomainError, EVENT_VERSION, Id, MAX_TEXT_UTF16, PUBLISH_AT_GRACE, Services, telegram_length,
};

/// Telegram's formatting modes Herald supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParseMode {
    #[serde(rename = "HTML")]
    Html,
    #[serde(rename = "MarkdownV2")]
    MarkdownV2,
}

impl ParseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Html => "HTML",
            Self::MarkdownV2 => "MarkdownV2",
        }
    }
}

/// Why a delivery failed, coarse enough to count and alert on (never the chat's content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Telegram refused for good (blocked, kicked, chat not found, bad markup...). Not retried.
    Permanent,
    /// Retries were exhausted on errors that might have passed (5xx, network before sending).
    Transient,
    /// The chat opted out before the message went out; nothing was sent.
    OptedOut,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Transient => "transient",
            Self::OptedOut => "opted_out",
        }
    }
}

/// What happened when Herald tried to deliver a post to one chat.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum DeliveryOutcome {
    Delivered {
        telegram_message_id: i32,
    },
    Failed {
        class: FailureClass,
        detail: String,
    },
    /// The request may have reached Telegram but no answer came: it may or may not be posted.
    Unknown {
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum PostCommand {
    Plan {
        workspace_id: Id,
        chat_ids: Vec<Id>,
        text: String,
        parse_mode: Option<ParseMode>,
        publish_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    Approve,
    Reject {
        reason: String,
    },
    Cancel,
    /// Moves the publish time of a post that is not yet (fully) delivered.
    Reschedule {
        publish_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    RecordDelivery {
        chat_id: Id,
        outcome: DeliveryOutcome,
    },
    /// An operator's (or the workspace policy's) decision about a delivery in doubt.
    ResolveDelivery {
        chat_id: Id,
        resolution: Resolution,
    },
    /// The workspace's in-doubt policy resends, at most `max` times per delivery; past that the
    /// delivery stays in doubt for an operator.
    ResendAutomatically {
        chat_id: Id,
        max: u32,
    },
}

/// How an in-doubt delivery is settled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// Someone checked the chat: the message is there.
    MarkDelivered { telegram_message_id: Option<i32> },
    /// Someone checked the chat (or the policy says so): send it again.
    Resend,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostEvent {
    PostPlanned {
        workspace_id: Id,
        chat_ids: Vec<Id>,
        text: String,
        parse_mode: Option<ParseMode>,
        publish_at: DateTime<Utc>,
    },
    PostApproved,
    PostRejected {
        reason: String,
    },
    PostCancelled,
    PostDelivered {
        chat_id: Id,
        telegram_message_id: i32,
    },
    DeliveryFailed {
        chat_id: Id,
        class: FailureClass,
        detail: String,
    },
    DeliveryUnknown {
        chat_id: Id,
        detail: String,
    },
    PostRescheduled {
        publish_at: DateTime<Utc>,
    },
    DeliveryResolved {
        chat_id: Id,
        resolution: Resolution,
        /// Resolved by the workspace's policy rather than a person.
        #[serde(default)]
        automatic: bool,
    },
}

impl DomainEvent for PostEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PostPlanned { .. } => "PostPlanned",
            Self::PostApproved => "PostApproved",
            Self::PostRejected { .. } => "PostRejected",
            Self::PostCancelled => "PostCancelled",
            Self::PostDelivered { .. } => "PostDelivered",
            Self::DeliveryFailed { .. } => "DeliveryFailed",
            Self::DeliveryUnknown { .. } => "DeliveryUnknown",
            Self::PostRescheduled { .. } => "PostRescheduled",
            Self::DeliveryResolved { .. } => "DeliveryResolved",
        }
        .into()
    }
    fn event_version(&self) -> String {
        EVENT_VERSION.into()
    }
}

/// Where the post is in its life, as decided by people (delivery progress is per chat).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostState {
    #[default]
    Draft,
    Planned,
    Approved,
    Rejected,
    Cancelled,
}

impl PostState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Planned => "planned",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Delivery status of the post in one chat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStatus {
    pub status: DeliveryState,
    pub telegram_message_id: Option<i32>,
    pub error: Option<String>,
    /// How many times the in-doubt policy resent this delivery.
    #[serde(default)]
    pub auto_resends: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    #[default]
    Pending,
    Delivered,
    Failed,
    Unknown,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Post {
    pub state: PostState,
    pub workspace_id: Option<Id>,
    pub text: String,
    pub parse_mode: Option<ParseMode>,
    pub publish_at: Option<DateTime<Utc>>,
    /// Target chats in the order they were planned, with their delivery status.
    pub deliveries: BTreeMap<Id, DeliveryStatus>,
    pub chat_order: Vec<Id>,
}

impl Post {
    /// Deliveries in planning order.
    pub fn deliveries(&self) -> impl Iterator<Item = (Id, &DeliveryStatus)> {
        self.chat_order
            .iter()
            .filter_map(|id| self.deliveries.get(id).map(|d| (*id, d)))
    }

    /// A single word for the whole post: its state, or once approved, how delivery went.
    pub fn summary_state(&self) -> &'static str {
        if self.state != PostState::Approved {
            return self.state.as_str();
        }
        let all = self.deliveries.len();
        let count = |s: DeliveryState| self.deliveries.values().filter(|d| d.status == s).count();
        match (
            count(DeliveryState::Pending),
            count(DeliveryState::Delivered),
        ) {
            (0, delivered) if delivered == all => "delivered",
            (0, 0) => "failed",
            (0, _) => "partially_delivered",
            _ => "approved",
        }
    }

    fn refuse(&self, action: &'static str) -> DomainError {
        match self.state {
            PostState::Draft => DomainError::NotFound,
            state => DomainError::InvalidTransition {
                state: state.as_str(),
                action,
            },
        }
    }

    async fn check_plan(
        &self,
        services: &Services,
        plan: Plan<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let Plan {
            workspace_id,
            chat_ids,
            text,
            parse_mode,
            publish_at,
        } = plan;
        if self.state != PostState::Draft {
            return Err(DomainError::AlreadyExists);
        }
        if text.trim().is_empty() {
            return Err(DomainError::TextEmpty);
        }
        let length = telegram_length(text, parse_mode);
        if length > MAX_TEXT_UTF16 {
            return Err(DomainError::TextTooLong {
                length,
                max: MAX_TEXT_UTF16,
            });
        }
        if publish_at < now - PUBLISH_AT_GRACE {
            return Err(DomainError::PublishAtInPast {
                grace_minutes: PUBLISH_AT_GRACE.num_minutes(),
            });
        }
        if chat_ids.is_empty() {
            return Err(DomainError::NoChats);
        }
        for (i, chat_id) in chat_ids.iter().enumerate() {
            if chat_ids[..i].contains(chat_id) {
                return Err(DomainError::DuplicateChat(*chat_id));
            }
            let chat = services
                .directory
                .chat(*chat_id)
                .await
                .map_err(DomainError::DirectoryUnavailable)?;
            match chat {
                Some(chat) if chat.workspace_id == workspace_id => {
                    if chat.opted_out {
                        return Err(DomainError::ChatOptedOut(*chat_id));
                    }
                    if let Some(reason) = chat.blocked {
                        return Err(DomainError::ChatBlocked {
                            chat: *chat_id,
                            reason,
                        });
                    }
                }
                _ => return Err(DomainError::UnknownChat(*chat_id)),
            }
        }
        Ok(())
    }
}

impl Aggregate for Post {
    const TYPE: &'static str = "Post";
    type Command = PostCommand;
    type Event = PostEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            PostCommand::Plan {
                workspace_id,
                chat_ids,
                text,
                parse_mode,
                publish_at,
                now,
            } => {
                let plan = Plan {
                    workspace_id,
                    chat_ids: &chat_ids,
                    text: &text,
                    parse_mode,
                    publish_at,
                };
                self.check_plan(services, plan, now).await?;
                PostEvent::PostPlanned {
                    workspace_id,
                    chat_ids,
                    text,
                    parse_mode,
                    publish_at,
                }
            }
            PostCommand::Approve => match self.state {
                PostState::Planned => PostEvent::PostApproved,
                PostState::Approved => return Err(DomainError::AlreadyApproved),
                _ => return Err(self.refuse("approved")),
            },
            PostCommand::Reject { reason } => match self.state {
                PostState::Planned => PostEvent::PostRejected {
                    reason: reason.trim().to_owned(),
                },
                _ => return Err(self.refuse("rejected")),
            },
            PostCommand::Cancel => match self.state {
                PostState::Planned => PostEvent::PostCancelled,
                PostState::Approved if self.summary_state() == "approved" => {
                    PostEvent::PostCancelled
                }
                PostState::Approved => {
                    return Err(DomainError::InvalidTransition {
                        state: self.summary_state(),
                        action: "cancelled",
                    });
                }
                _ => return Err(self.refuse("cancelled")),
            },
            PostCommand::Reschedule { publish_at, now } => match self.summary_state() {
                "planned" | "approved" => {
                    check_publish_at(publish_at, now)?;
                    PostEvent::PostRescheduled { publish_at }
                }
                state => {
                    return Err(DomainError::InvalidTransition {
                        state,
                        action: "rescheduled",
                    });
                }
            },
            PostCommand::ResolveDelivery {
                chat_id,
                resolution,
            } => {
                let Some(current) = self.deliveries.get(&chat_id) else {
                    return Err(DomainError::NotFound);
                };
                if current.status != DeliveryState::Unknown {
                    return Err(DomainError::DeliveryNotInDoubt(chat_id));
                }
                PostEvent::DeliveryResolved {
                    chat_id,
                    resolution,
                    automatic: false,
                }
            }
            PostCommand::ResendAutomatically { chat_id, max } => {
                let Some(current) = self.deliveries.get(&chat_id) else {
                    return Err(DomainError::NotFound);
                };
                if current.status != DeliveryState::Unknown {
                    return Err(DomainError::DeliveryNotInDoubt(chat_id));
                }
                if current.auto_resends >= max {
                    return Err(DomainError::AutoResendLimit { chat_id, max });
                }
                PostEvent::DeliveryResolved {
                    chat_id,
                    resolution: Resolution::Resend,
                    automatic: true,
                }
            }
            PostCommand::RecordDelivery { chat_id, outcome } => {
                let Some(current) = self.deliveries.get(&chat_id) else {
                    return Err(DomainError::NotFound);
                };
                // Only the first outcome counts: a repeated report is a no-op, never a duplicate.
                if current.status != DeliveryState::Pending {
                    return Ok(());
                }
                match outcome {
                    DeliveryOutcome::Delivered {
                        telegram_message_id,
                    } => PostEvent::PostDelivered {
                        chat_id,
                        telegram_message_id,
                    },
                    DeliveryOutcome::Failed { class, detail } => PostEvent::DeliveryFailed {
                        chat_id,
                        class,
                        detail,
                    },
                    DeliveryOutcome::Unknown { detail } => {
                        PostEvent::DeliveryUnknown { chat_id, detail }
                    }
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            PostEvent::PostPlanned {
                workspace_id,
                chat_ids,
                text,
                parse_mode,
                publish_at,
            } => {
                self.state = PostState::Planned;
                self.workspace_id = Some(workspace_id);
                self.text = text;
                self.parse_mode = parse_mode;
                self.publish_at = Some(publish_at);
                self.deliveries = chat_ids
                    .iter()
                    .map(|id| (*id, DeliveryStatus::default()))
                    .collect();
                self.chat_order = chat_ids;
            }
            PostEvent::PostApproved => self.state = PostState::Approved,
            PostEvent::PostRejected { .. } => self.state = PostState::Rejected,
            PostEvent::PostCancelled => self.state = PostState::Cancelled,
            PostEvent::PostDelivered {
                chat_id,
                telegram_message_id,
            } => {
                self.set_delivery(
                    chat_id,
                    DeliveryStatus {
                        auto_resends: self.auto_resends(chat_id),
                        status: DeliveryState::Delivered,
                        telegram_message_id: Some(telegram_message_id),
                        error: None,
                    },
                );
            }
            PostEvent::DeliveryFailed {
                chat_id,
                class,
                detail,
            } => {
                self.set_delivery(
                    chat_id,
                    DeliveryStatus {
                        auto_resends: self.auto_resends(chat_id),
                        status: DeliveryState::Failed,
                        telegram_message_id: None,
                        error: Some(format!("{}: {detail}", class.as_str())),
                    },
                );
            }
            PostEvent::PostRescheduled { publish_at } => self.publish_at = Some(publish_at),
            PostEvent::DeliveryResolved {
                chat_id,
                resolution,
                automatic,
            } => {
                let auto_resends = self.deliveries.get(&chat_id).map_or(0, |d| d.auto_resends);
                let status = match resolution {
                    Resolution::MarkDelivered {
                        telegram_message_id,
                    } => DeliveryStatus {
                        status: DeliveryState::Delivered,
                        telegram_message_id,
                        error: None,
                        auto_resends,
                    },
                    Resolution::Resend => DeliveryStatus {
                        auto_resends: auto_resends + u32::from(automatic),
                        ..DeliveryStatus::default()
                    },
                };
                self.set_delivery(chat_id, status);
            }
            PostEvent::DeliveryUnknown { chat_id, detail } => {
                self.set_delivery(
                    chat_id,
                    DeliveryStatus {
                        auto_resends: self.auto_resends(chat_id),
                        status: DeliveryState::Unknown,
                        telegram_message_id: None,
                        error: Some(detail),
                    },
                );
            }
        }
    }
}

/// What a `Plan` command asks for, checked before it becomes a `PostPlanned` event.
struct Plan<'a> {
    workspace_id: Id,
    chat_ids: &'a [Id],
    text: &'a str,
    parse_mode: Option<ParseMode>,
    publish_at: DateTime<Utc>,
}

/// A publish time may be at most [`PUBLISH_AT_GRACE`] in the past ("as soon as possible").
fn check_publish_at(publish_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), DomainError> {
    if publish_at < now - PUBLISH_AT_GRACE {
        return Err(DomainError::PublishAtInPast {
            grace_minutes: PUBLISH_AT_GRACE.num_minutes(),
        });
    }
    Ok(())
}

impl Post {
    fn auto_resends(&self, chat_id: Id) -> u32 {
        self.deliveries.get(&chat_id).map_or(0, |d| d.auto_resends)
    }

    fn set_delivery(&mut self, chat_id: Id, status: DeliveryStatus) {
        self.deliveries.insert(chat_id, status);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::ChatInfo;
    use crate::directory::fake::FakeDirectory;

    const WS: Id = Id::from_u128(1);
    const CHAT: Id = Id::from_u128(10);
    const OPTED_OUT: Id = Id::from_u128(11);
    const FOREIGN: Id = Id::from_u128(12);

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn framework() -> TestFramework<Post> {
        let mut directory = FakeDirectory::default();
        let info = |workspace_id, opted_out| ChatInfo {
            workspace_id,
            bot_id: Id::from_u128(2),
            telegram_chat_id: 5,
            opted_out,
            blocked: None,
        };
        directory.chats.insert(CHAT, info(WS, false));
        directory.chats.insert(OPTED_OUT, info(WS, true));
        directory
            .chats
            .insert(FOREIGN, info(Id::from_u128(99), false));
        TestFramework::with(directory.into_services())
    }

    fn plan(chat_ids: Vec<Id>, text: &str, publish_at: DateTime<Utc>) -> PostCommand {
        PostCommand::Plan {
            workspace_id: WS,
            chat_ids,
            text: text.into(),
            parse_mode: None,
            publish_at,
            now: now(),
        }
    }

    fn planned() -> PostEvent {
        PostEvent::PostPlanned {
            workspace_id: WS,
            chat_ids: vec![CHAT],
            text: "hi".into(),
            parse_mode: None,
            publish_at: now(),
        }
    }

    async fn expect_plan_error(command: PostCommand, error: DomainError) {
        framework()
            .given_no_previous_events()
            .when_async(command)
            .await
            .then_expect_error(error);
    }

    #[tokio::test]
    async fn plans_a_valid_post() {
        framework()
            .given_no_previous_events()
            .when_async(plan(vec![CHAT], "hi", now()))
            .await
            .then_expect_events(vec![planned()]);
    }

    #[tokio::test]
    async fn validates_text_time_and_chats() {
        expect_plan_error(plan(vec![CHAT], " \n", now()), DomainError::TextEmpty).await;
        let long = "😀".repeat(2049); // 4098 UTF-16 units, only 2049 chars
        expect_plan_error(
            plan(vec![CHAT], &long, now()),
            DomainError::TextTooLong {
                length: 4098,
                max: 4096,
            },
        )
        .await;
        let just_fits = "😀".repeat(2048);
        framework()
            .given_no_previous_events()
            .when_async(plan(vec![CHAT], &just_fits, now()))
            .await
            .inspect_result()
            .unwrap();
        expect_plan_error(
            plan(vec![CHAT], "hi", now() - TimeDelta::hours(1)),
            DomainError::PublishAtInPast { grace_minutes: 5 },
        )
        .await;
        expect_plan_error(plan(vec![], "hi", now()), DomainError::NoChats).await;
        expect_plan_error(
            plan(vec![Id::from_u128(404)], "hi", now()),
            DomainError::UnknownChat(Id::from_u128(404)),
        )
        .await;
        expect_plan_error(
            plan(vec![FOREIGN], "hi", now()),
            DomainError::UnknownChat(FOREIGN),
        )
        .await;
        expect_plan_error(
            plan(vec![OPTED_OUT], "hi", now()),
            DomainError::ChatOptedOut(OPTED_OUT),
        )
        .await;
        expect_plan_error(
            plan(vec![CHAT, CHAT], "hi", now()),
            DomainError::DuplicateChat(CHAT),
        )
        .await;
    }

    #[tokio::test]
    async fn approval_rules() {
        framework()
            .given(vec![planned()])
            .when_async(PostCommand::Approve)
            .await
            .then_expect_events(vec![PostEvent::PostApproved]);
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(PostCommand::Approve)
            .await
            .then_expect_error(DomainError::AlreadyApproved);
        framework()
            .given(vec![planned(), PostEvent::PostCancelled])
            .when_async(PostCommand::Approve)
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "cancelled",
                action: "approved",
            });
        framework()
            .given_no_previous_events()
            .when_async(PostCommand::Approve)
            .await
            .then_expect_error(DomainError::NotFound);
    }

    #[tokio::test]
    async fn cancel_and_reject_rules() {
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(PostCommand::Cancel)
            .await
            .then_expect_events(vec![PostEvent::PostCancelled]);
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(PostCommand::Reject { reason: "x".into() })
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "approved",
                action: "rejected",
            });
        framework()
            .given(vec![
                planned(),
                PostEvent::PostApproved,
                PostEvent::PostDelivered {
                    chat_id: CHAT,
                    telegram_message_id: 1,
                },
            ])
            .when_async(PostCommand::Cancel)
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "delivered",
                action: "cancelled",
            });
    }

    #[tokio::test]
    async fn first_delivery_outcome_wins() {
        let delivered = PostEvent::PostDelivered {
            chat_id: CHAT,
            telegram_message_id: 7,
        };
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(PostCommand::RecordDelivery {
                chat_id: CHAT,
                outcome: DeliveryOutcome::Delivered {
                    telegram_message_id: 7,
                },
            })
            .await
            .then_expect_events(vec![delivered.clone()]);
        framework()
            .given(vec![planned(), PostEvent::PostApproved, delivered])
            .when_async(PostCommand::RecordDelivery {
                chat_id: CHAT,
                outcome: DeliveryOutcome::Delivered {
                    telegram_message_id: 8,
                },
            })
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn only_in_doubt_deliveries_are_resolved_and_resend_makes_them_pending() {
        let unknown = PostEvent::DeliveryUnknown {
            chat_id: CHAT,
            detail: "timeout".into(),
        };
        let resolve = |resolution| PostCommand::ResolveDelivery {
            chat_id: CHAT,
            resolution,
        };
        framework()
            .given(vec![planned(), PostEvent::PostApproved, unknown.clone()])
            .when_async(resolve(Resolution::Resend))
            .await
            .then_expect_events(vec![PostEvent::DeliveryResolved {
                automatic: false,
                chat_id: CHAT,
                resolution: Resolution::Resend,
            }]);
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(resolve(Resolution::Resend))
            .await
            .then_expect_error(DomainError::DeliveryNotInDoubt(CHAT));
        let mut post = Post::default();
        for event in [
            planned(),
            PostEvent::PostApproved,
            unknown,
            PostEvent::DeliveryResolved {
                chat_id: CHAT,
                resolution: Resolution::Resend,
                automatic: false,
            },
        ] {
            post.apply(event);
        }
        assert_eq!(post.deliveries[&CHAT].status, DeliveryState::Pending);
    }

    #[tokio::test]
    async fn automatic_resends_are_bounded_per_delivery() {
        let unknown = PostEvent::DeliveryUnknown {
            chat_id: CHAT,
            detail: "no answer".into(),
        };
        let auto_resent = PostEvent::DeliveryResolved {
            chat_id: CHAT,
            resolution: Resolution::Resend,
            automatic: true,
        };
        let resend = PostCommand::ResendAutomatically {
            chat_id: CHAT,
            max: 1,
        };
        framework()
            .given(vec![planned(), PostEvent::PostApproved, unknown.clone()])
            .when_async(resend.clone())
            .await
            .then_expect_events(vec![auto_resent.clone()]);
        // In doubt again after the one automatic resend: left for an operator.
        framework()
            .given(vec![
                planned(),
                PostEvent::PostApproved,
                unknown.clone(),
                auto_resent.clone(),
                unknown.clone(),
            ])
            .when_async(resend)
            .await
            .then_expect_error(DomainError::AutoResendLimit {
                chat_id: CHAT,
                max: 1,
            });
        // An operator's resend does not count against the policy's budget, and is still allowed.
        framework()
            .given(vec![
                planned(),
                PostEvent::PostApproved,
                unknown.clone(),
                auto_resent,
                unknown,
            ])
            .when_async(PostCommand::ResolveDelivery {
                chat_id: CHAT,
                resolution: Resolution::Resend,
            })
            .await
            .then_expect_events(vec![PostEvent::DeliveryResolved {
                chat_id: CHAT,
                resolution: Resolution::Resend,
                automatic: false,
            }]);
    }

    #[tokio::test]
    async fn rescheduling_is_allowed_until_delivered() {
        let later = now() + TimeDelta::hours(2);
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(PostCommand::Reschedule {
                publish_at: later,
                now: now(),
            })
            .await
            .then_expect_events(vec![PostEvent::PostRescheduled { publish_at: later }]);
        framework()
            .given(vec![
                planned(),
                PostEvent::PostApproved,
                PostEvent::PostDelivered {
                    chat_id: CHAT,
                    telegram_message_id: 1,
                },
            ])
            .when_async(PostCommand::Reschedule {
                publish_at: later,
                now: now(),
            })
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "delivered",
                action: "rescheduled",
            });
    }

    #[test]
    fn stored_event_names_and_json_shape_are_stable() {
        // Stored events are never rewritten: this pins the v1 JSON of one event.
        let stored = r#"{"PostDelivered":{"chat_id":"00000000-0000-0000-0000-00000000000a","telegram_message_id":7}}"#;
        let event: PostEvent = serde_json::from_str(stored).unwrap();
        assert_eq!(
            event,
            PostEvent::PostDelivered {
                chat_id: CHAT,
                telegram_message_id: 7
            }
        );
        assert_eq!(event.event_type(), "PostDelivered");
        assert_eq!(event.event_version(), "1");
    }
}
