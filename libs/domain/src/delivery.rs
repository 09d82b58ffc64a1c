//! One post's delivery to one chat: its outcomes and how a doubt about it was resolved.
//!
//! A delivery is an aggregate of its own, with an id derived from its post and chat
//! ([`delivery_id`]), so recording an outcome replays only that delivery's few events however
//! many chats the post has, and never contends with a command on the post (a cancel or a
//! reschedule during a broadcast) or with other chats' outcomes (decision 0008). It has no
//! creation event: a delivery with no events is pending (its post says it exists).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::post::{DeliveryOutcome, DeliveryState, DeliveryStatus, FailureClass, Resolution};
use crate::{DomainError, EVENT_VERSION, Id, Services};

/// Namespace of delivery ids (UUID v5 of the post's and the chat's ids).
const NAMESPACE: Id = Id::from_u128(0x6865_7261_6c64_0008_8000_6465_6c69_7672);

/// The id of the delivery of `post_id` to `chat_id`: stable, so anyone can find it.
pub fn delivery_id(post_id: Id, chat_id: Id) -> Id {
    let mut name = [0u8; 32];
    name[..16].copy_from_slice(post_id.as_bytes());
    name[16..].copy_from_slice(chat_id.as_bytes());
    Id::new_v5(&NAMESPACE, &name)
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum DeliveryCommand {
    /// What the dispatcher learnt from Telegram (or decided without sending).
    Record {
        post_id: Id,
        chat_id: Id,
        outcome: DeliveryOutcome,
    },
    /// An operator's decision about a delivery in doubt.
    Resolve {
        post_id: Id,
        chat_id: Id,
        resolution: Resolution,
        /// The delivery's status in its post's own history, for a delivery recorded there
        /// before deliveries were aggregates of their own (used only while this one is empty).
        recorded_on_post: Option<DeliveryStatus>,
    },
    /// The workspace's in-doubt policy resends, at most `max` times per delivery; past that the
    /// delivery stays in doubt for an operator.
    ResendAutomatically { post_id: Id, chat_id: Id, max: u32 },
}

/// Every event names its post and chat, so readers need nothing else to place it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeliveryEvent {
    PostDelivered {
        post_id: Id,
        chat_id: Id,
        telegram_message_id: i32,
    },
    DeliveryFailed {
        post_id: Id,
        chat_id: Id,
        class: FailureClass,
        detail: String,
    },
    DeliveryUnknown {
        post_id: Id,
        chat_id: Id,
        detail: String,
    },
    DeliveryResolved {
        post_id: Id,
        chat_id: Id,
        resolution: Resolution,
        /// Resolved by the workspace's policy rather than a person.
        automatic: bool,
    },
}

impl DomainEvent for DeliveryEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PostDelivered { .. } => "PostDelivered",
            Self::DeliveryFailed { .. } => "DeliveryFailed",
            Self::DeliveryUnknown { .. } => "DeliveryUnknown",
            Self::DeliveryResolved { .. } => "DeliveryResolved",
        }
        .into()
    }
    fn event_version(&self) -> String {
        EVENT_VERSION.into()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Delivery {
    /// Whether any event was recorded (a delivery without events is pending).
    pub recorded: bool,
    pub status: DeliveryStatus,
}

impl Delivery {
    /// The current status, falling back to what the post recorded for a delivery of old.
    fn current(&self, recorded_on_post: Option<DeliveryStatus>) -> DeliveryStatus {
        match recorded_on_post {
            Some(status) if !self.recorded => status,
            _ => self.status.clone(),
        }
    }
}

impl Aggregate for Delivery {
    const TYPE: &'static str = "Delivery";
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            DeliveryCommand::Record {
                post_id,
                chat_id,
                outcome,
            } => {
                // Only the first outcome counts: a repeated report is a no-op, never a duplicate.
                if self.status.status != DeliveryState::Pending {
                    return Ok(());
                }
                match outcome {
                    DeliveryOutcome::Delivered {
                        telegram_message_id,
                    } => DeliveryEvent::PostDelivered {
                        post_id,
                        chat_id,
                        telegram_message_id,
                    },
                    DeliveryOutcome::Failed { class, detail } => DeliveryEvent::DeliveryFailed {
                        post_id,
                        chat_id,
                        class,
                        detail,
                    },
                    DeliveryOutcome::Unknown { detail } => DeliveryEvent::DeliveryUnknown {
                        post_id,
                        chat_id,
                        detail,
                    },
                }
            }
            DeliveryCommand::Resolve {
                post_id,
                chat_id,
                resolution,
                recorded_on_post,
            } => {
                if self.current(recorded_on_post).status != DeliveryState::Unknown {
                    return Err(DomainError::DeliveryNotInDoubt(chat_id));
                }
                DeliveryEvent::DeliveryResolved {
                    post_id,
                    chat_id,
                    resolution,
                    automatic: false,
                }
            }
            DeliveryCommand::ResendAutomatically {
                post_id,
                chat_id,
                max,
            } => {
                if self.status.status != DeliveryState::Unknown {
                    return Err(DomainError::DeliveryNotInDoubt(chat_id));
                }
                if self.status.auto_resends >= max {
                    return Err(DomainError::AutoResendLimit { chat_id, max });
                }
                DeliveryEvent::DeliveryResolved {
                    post_id,
                    chat_id,
                    resolution: Resolution::Resend,
                    automatic: true,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.recorded = true;
        let auto_resends = self.status.auto_resends;
        self.status = match event {
            DeliveryEvent::PostDelivered {
                telegram_message_id,
                ..
            } => DeliveryStatus {
                status: DeliveryState::Delivered,
                telegram_message_id: Some(telegram_message_id),
                error: None,
                auto_resends,
            },
            DeliveryEvent::DeliveryFailed { class, detail, .. } => DeliveryStatus {
                status: DeliveryState::Failed,
                telegram_message_id: None,
                error: Some(format!("{}: {detail}", class.as_str())),
                auto_resends,
            },
            DeliveryEvent::DeliveryUnknown { detail, .. } => DeliveryStatus {
                status: DeliveryState::Unknown,
                telegram_message_id: None,
                error: Some(detail),
                auto_resends,
            },
            DeliveryEvent::DeliveryResolved {
                resolution:
                    Resolution::MarkDelivered {
                        telegram_message_id,
                    },
                ..
            } => DeliveryStatus {
                status: DeliveryState::Delivered,
                telegram_message_id,
                error: None,
                auto_resends,
            },
            DeliveryEvent::DeliveryResolved {
                resolution: Resolution::Resend,
                automatic,
                ..
            } => DeliveryStatus {
                auto_resends: auto_resends + u32::from(automatic),
                ..DeliveryStatus::default()
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::directory::fake::FakeDirectory;

    const POST: Id = Id::from_u128(3);
    const CHAT: Id = Id::from_u128(10);

    fn framework() -> TestFramework<Delivery> {
        TestFramework::with(FakeDirectory::default().into_services())
    }

    fn delivered(telegram_message_id: i32) -> DeliveryEvent {
        DeliveryEvent::PostDelivered {
            post_id: POST,
            chat_id: CHAT,
            telegram_message_id,
        }
    }

    fn unknown() -> DeliveryEvent {
        DeliveryEvent::DeliveryUnknown {
            post_id: POST,
            chat_id: CHAT,
            detail: "no answer".into(),
        }
    }

    fn resolved(resolution: Resolution, automatic: bool) -> DeliveryEvent {
        DeliveryEvent::DeliveryResolved {
            post_id: POST,
            chat_id: CHAT,
            resolution,
            automatic,
        }
    }

    fn record(outcome: DeliveryOutcome) -> DeliveryCommand {
        DeliveryCommand::Record {
            post_id: POST,
            chat_id: CHAT,
            outcome,
        }
    }

    fn resolve(resolution: Resolution) -> DeliveryCommand {
        DeliveryCommand::Resolve {
            post_id: POST,
            chat_id: CHAT,
            resolution,
            recorded_on_post: None,
        }
    }

    #[test]
    fn ids_are_stable_and_distinct_per_post_and_chat() {
        assert_eq!(delivery_id(POST, CHAT), delivery_id(POST, CHAT));
        assert_ne!(delivery_id(POST, CHAT), delivery_id(CHAT, POST));
        assert_ne!(
            delivery_id(POST, CHAT),
            delivery_id(POST, Id::from_u128(11))
        );
        // Pinned: ids are stored, so the derivation never changes.
        assert_eq!(
            delivery_id(POST, CHAT).to_string(),
            Id::new_v5(
                &NAMESPACE,
                &[POST.as_bytes().as_slice(), CHAT.as_bytes().as_slice()].concat()
            )
            .to_string()
        );
    }

    #[tokio::test]
    async fn first_outcome_wins() {
        let outcome = |id| DeliveryOutcome::Delivered {
            telegram_message_id: id,
        };
        framework()
            .given_no_previous_events()
            .when_async(record(outcome(7)))
            .await
            .then_expect_events(vec![delivered(7)]);
        framework()
            .given(vec![delivered(7)])
            .when_async(record(outcome(8)))
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn only_deliveries_in_doubt_are_resolved_and_resend_makes_them_pending() {
        framework()
            .given(vec![unknown()])
            .when_async(resolve(Resolution::Resend))
            .await
            .then_expect_events(vec![resolved(Resolution::Resend, false)]);
        for given in [vec![], vec![delivered(1)]] {
            framework()
                .given(given)
                .when_async(resolve(Resolution::Resend))
                .await
                .then_expect_error(DomainError::DeliveryNotInDoubt(CHAT));
        }
        let mut delivery = Delivery::default();
        delivery.apply(unknown());
        delivery.apply(resolved(Resolution::Resend, false));
        assert_eq!(delivery.status.status, DeliveryState::Pending);
    }

    #[tokio::test]
    async fn a_doubt_recorded_on_the_post_of_old_can_be_resolved() {
        let in_doubt = DeliveryStatus {
            status: DeliveryState::Unknown,
            ..DeliveryStatus::default()
        };
        framework()
            .given_no_previous_events()
            .when_async(DeliveryCommand::Resolve {
                post_id: POST,
                chat_id: CHAT,
                resolution: Resolution::MarkDelivered {
                    telegram_message_id: Some(4),
                },
                recorded_on_post: Some(in_doubt),
            })
            .await
            .then_expect_events(vec![resolved(
                Resolution::MarkDelivered {
                    telegram_message_id: Some(4),
                },
                false,
            )]);
    }

    #[tokio::test]
    async fn automatic_resends_are_bounded_per_delivery() {
        let auto_resent = resolved(Resolution::Resend, true);
        let resend = DeliveryCommand::ResendAutomatically {
            post_id: POST,
            chat_id: CHAT,
            max: 1,
        };
        framework()
            .given(vec![unknown()])
            .when_async(resend.clone())
            .await
            .then_expect_events(vec![auto_resent.clone()]);
        // In doubt again after the one automatic resend: left for an operator.
        let again = vec![unknown(), auto_resent, unknown()];
        framework()
            .given(again.clone())
            .when_async(resend)
            .await
            .then_expect_error(DomainError::AutoResendLimit {
                chat_id: CHAT,
                max: 1,
            });
        // An operator's resend does not count against the policy's budget, and is still allowed.
        framework()
            .given(again)
            .when_async(resolve(Resolution::Resend))
            .await
            .then_expect_events(vec![resolved(Resolution::Resend, false)]);
    }

    #[test]
    fn stored_event_names_and_json_shape_are_stable() {
        let stored = r#"{"PostDelivered":{"post_id":"00000000-0000-0000-0000-000000000003","chat_id":"00000000-0000-0000-0000-00000000000a","telegram_message_id":7}}"#;
        let event: DeliveryEvent = serde_json::from_str(stored).unwrap();
        assert_eq!(event, delivered(7));
        assert_eq!(event.event_type(), "PostDelivered");
    }
}
