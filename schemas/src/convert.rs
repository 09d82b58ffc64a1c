use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{
    BotEvent, ChatEvent, DeliveryEvent, FailureClass, Id, InDoubtPolicy, ParseMode, PostEvent,
    Resolution, SegmentEvent, WorkspaceEvent,
};

use crate::metadata;
use crate::v1::{self, event_envelope::Event};

/// A row of the event store, as the relay reads it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    pub metadata: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("unknown aggregate type {0:?}")]
    UnknownAggregate(String),
    #[error("unsupported version {version:?} of event {event_type:?}")]
    UnsupportedVersion { event_type: String, version: String },
    #[error("stored payload of {event_type:?} does not decode: {source}")]
    Payload {
        event_type: String,
        source: serde_json::Error,
    },
}

/// The identity of an event across the whole system; also its JetStream `Nats-Msg-Id`.
pub fn event_id(aggregate_type: &str, aggregate_id: &str, sequence: i64) -> String {
    format!("{aggregate_type}:{aggregate_id}:{sequence}")
}

/// Converts a stored domain event into the protobuf integration event published on NATS.
pub fn to_integration_event(stored: &StoredEvent) -> Result<v1::EventEnvelope, ConvertError> {
    if stored.event_version != domain::EVENT_VERSION {
        // No older versions exist yet; an upcaster goes here when one does.
        return Err(ConvertError::UnsupportedVersion {
            event_type: stored.event_type.clone(),
            version: stored.event_version.clone(),
        });
    }
    let event = decode_payload(stored)?;
    let meta = |key: &str| stored.metadata.get(key).cloned().unwrap_or_default();
    let workspace_id = match &event {
        Event::WorkspaceCreated(_) => stored.aggregate_id.clone(),
        _ => meta(metadata::WORKSPACE_ID),
    };
    let occurred_at_ms = stored
        .metadata
        .get(metadata::OCCURRED_AT)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp_millis());
    Ok(v1::EventEnvelope {
        event_id: event_id(
            &stored.aggregate_type,
            &stored.aggregate_id,
            stored.sequence,
        ),
        aggregate_type: stored.aggregate_type.clone(),
        aggregate_id: stored.aggregate_id.clone(),
        sequence: stored.sequence as u64,
        workspace_id,
        event_type: stored.event_type.clone(),
        event_version: stored.event_version.clone(),
        occurred_at_ms,
        metadata: Some(v1::Metadata {
            actor: meta(metadata::ACTOR),
            correlation_id: meta(metadata::CORRELATION_ID),
            causation_id: meta(metadata::CAUSATION_ID),
        }),
        event: Some(event),
    })
}

fn decode<T: serde::de::DeserializeOwned>(stored: &StoredEvent) -> Result<T, ConvertError> {
    serde_json::from_value(stored.payload.clone()).map_err(|source| ConvertError::Payload {
        event_type: stored.event_type.clone(),
        source,
    })
}

fn decode_payload(stored: &StoredEvent) -> Result<Event, ConvertError> {
    Ok(match stored.aggregate_type.as_str() {
        "Workspace" => match decode(stored)? {
            WorkspaceEvent::WorkspaceCreated { name } => {
                Event::WorkspaceCreated(v1::WorkspaceCreated { name })
            }
            WorkspaceEvent::InDoubtPolicySet { policy } => {
                Event::InDoubtPolicySet(v1::InDoubtPolicySet {
                    policy: match policy {
                        InDoubtPolicy::Flag => "flag",
                        InDoubtPolicy::Resend => "resend",
                    }
                    .into(),
                })
            }
            WorkspaceEvent::MemberRoleGranted { user_id, role } => {
                Event::MemberRoleGranted(v1::MemberRoleGranted { user_id, role })
            }
            WorkspaceEvent::RetentionSet { audit_days } => {
                Event::RetentionSet(v1::RetentionSet { audit_days })
            }
            WorkspaceEvent::PostTextSealingSet { sealed } => {
                Event::PostTextSealingSet(v1::PostTextSealingSet { sealed })
            }
            WorkspaceEvent::WorkspaceAudienceRulesSet { rules } => {
                Event::WorkspaceAudienceRulesSet(v1::WorkspaceAudienceRulesSet {
                    rules: rules.map(audience_rules),
                })
            }
            WorkspaceEvent::MemberRoleRevoked { user_id } => {
                Event::MemberRoleRevoked(v1::MemberRoleRevoked { user_id })
            }
            WorkspaceEvent::WorkspaceRulesSet { rules } => {
                Event::WorkspaceRulesSet(v1::WorkspaceRulesSet {
                    allow_link_domains: rules.link_domains.allow,
                    deny_link_domains: rules.link_domains.deny,
                    forbidden_words: rules
                        .forbidden_words
                        .into_iter()
                        .map(|w| v1::ForbiddenWord {
                            word: w.word,
                            severity: match w.severity {
                                domain::rules::Severity::Block => "block",
                                domain::rules::Severity::Warn => "warn",
                                domain::rules::Severity::Info => "info",
                            }
                            .into(),
                        })
                        .collect(),
                    max_length: rules
                        .max_length
                        .map(|m| u32::try_from(m).unwrap_or(u32::MAX)),
                })
            }
        },
        "Bot" => match decode(stored)? {
            BotEvent::BotRegistered {
                name,
                telegram_bot_id,
                ..
            } => Event::BotRegistered(v1::BotRegistered {
                name,
                telegram_bot_id,
            }),
            BotEvent::BotPaused { reason } => Event::BotPaused(v1::BotPaused { reason }),
            BotEvent::BotTokenReplaced { .. } => Event::BotTokenReplaced(v1::BotTokenReplaced {}),
            BotEvent::BotTokenReencrypted { .. } => {
                Event::BotTokenReencrypted(v1::BotTokenReencrypted {})
            }
            BotEvent::BotHourlyCapSet { cap } => {
                Event::BotHourlyCapSet(v1::BotHourlyCapSet { cap })
            }
            BotEvent::BotPaidBroadcastSet { allowed } => {
                Event::BotPaidBroadcastSet(v1::BotPaidBroadcastSet { allowed })
            }
        },
        "Chat" => match decode(stored)? {
            ChatEvent::ChatConnected {
                bot_id,
                telegram_chat_id,
                title,
                kind,
                basis,
                tags,
                username,
                ..
            } => Event::ChatConnected(v1::ChatConnected {
                bot_id: bot_id.to_string(),
                telegram_chat_id,
                title,
                kind: kind.unwrap_or_default(),
                basis: basis.map(lawful_basis),
                tags,
                username: username.unwrap_or_default(),
            }),
            ChatEvent::ChatTagsSet { tags } => Event::ChatTagsSet(v1::ChatTagsSet { tags }),
            ChatEvent::ContactErased => Event::ContactErased(v1::ContactErased {}),
            ChatEvent::ContactBasisRecorded { basis } => {
                Event::ContactBasisRecorded(v1::ContactBasisRecorded {
                    basis: Some(lawful_basis(basis)),
                })
            }
            ChatEvent::ContactStarted { basis, update_id } => {
                Event::ContactStarted(v1::ContactStarted {
                    basis: Some(lawful_basis(basis)),
                    update_id,
                })
            }
            ChatEvent::ChatChecked {
                kind,
                title,
                cannot_post,
                update_id,
            } => Event::ChatChecked(v1::ChatChecked {
                kind,
                title,
                cannot_post,
                update_id,
            }),
            ChatEvent::ChatOptedOut { reason, update_id } => {
                Event::ChatOptedOut(v1::ChatOptedOut { reason, update_id })
            }
            ChatEvent::ChatBlocked { reason } => Event::ChatBlocked(v1::ChatBlocked { reason }),
            ChatEvent::ChatMigrated {
                from_telegram_chat_id,
                to_telegram_chat_id,
            } => Event::ChatMigrated(v1::ChatMigrated {
                from_telegram_chat_id,
                to_telegram_chat_id,
            }),
            ChatEvent::ChatHourlyCapSet { cap } => {
                Event::ChatHourlyCapSet(v1::ChatHourlyCapSet { cap })
            }
            ChatEvent::ChatAudienceRulesSet { rules } => {
                Event::ChatAudienceRulesSet(v1::ChatAudienceRulesSet {
                    rules: rules.map(audience_rules),
                })
            }
            ChatEvent::ChatApprovalPolicySet { policy } => {
                Event::ChatApprovalPolicySet(v1::ChatApprovalPolicySet {
                    stages: stages(policy.map(|p| p.stages).unwrap_or_default()),
                })
            }
        },
        "Post" => post_event(&stored.aggregate_id, decode(stored)?),
        "Segment" => match decode(stored)? {
            SegmentEvent::SegmentDefined { name, rule, .. } => {
                Event::SegmentDefined(v1::SegmentDefined {
                    name,
                    rule: Some(segment_rule(rule)),
                })
            }
            SegmentEvent::SegmentAudienceRulesSet { rules } => {
                Event::SegmentAudienceRulesSet(v1::SegmentAudienceRulesSet {
                    rules: rules.map(audience_rules),
                })
            }
            SegmentEvent::SegmentChanged { name, rule } => {
                Event::SegmentChanged(v1::SegmentChanged {
                    name,
                    rule: Some(segment_rule(rule)),
                })
            }
            SegmentEvent::SegmentDeleted => Event::SegmentDeleted(v1::SegmentDeleted {}),
        },
        "Delivery" => delivery_event(decode(stored)?),
        other => return Err(ConvertError::UnknownAggregate(other.to_owned())),
    })
}

fn post_event(post_id: &str, event: PostEvent) -> Event {
    let outcome = |chat_id: Id| Outcome {
        post_id: post_id.to_owned(),
        chat_id: chat_id.to_string(),
    };
    match event {
        PostEvent::PostRescheduled { publish_at } => Event::PostRescheduled(v1::PostRescheduled {
            publish_at_ms: publish_at.timestamp_millis(),
        }),
        PostEvent::PostPlanned {
            chat_ids,
            text,
            parse_mode,
            publish_at,
            stages: required,
            segments,
            excluded,
            ..
        } => Event::PostPlanned(v1::PostPlanned {
            chat_ids: ids(&chat_ids),
            text,
            parse_mode: parse_mode_to_proto(parse_mode) as i32,
            publish_at_ms: publish_at.timestamp_millis(),
            stages: stages(required),
            segment_ids: ids(&segments),
            excluded,
        }),
        PostEvent::PostApprovalGiven { stage, by } => {
            Event::PostApprovalGiven(v1::PostApprovalGiven {
                stage,
                approver_id: by,
            })
        }
        PostEvent::PostEdited {
            text,
            parse_mode,
            publish_at,
            by,
        } => Event::PostEdited(v1::PostEdited {
            text,
            parse_mode: parse_mode_to_proto(parse_mode) as i32,
            publish_at_ms: publish_at.timestamp_millis(),
            editor_id: by,
        }),
        PostEvent::PostExpired => Event::PostExpired(v1::PostExpired {}),
        PostEvent::PostTextsErased { by } => Event::PostTextsErased(v1::PostTextsErased { by }),
        PostEvent::PostCommented { text, by } => Event::PostCommented(v1::PostCommented {
            text,
            author_id: by,
        }),
        PostEvent::PostTargetsAdded { chat_ids } => Event::PostTargetsAdded(v1::PostTargetsAdded {
            chat_ids: ids(&chat_ids),
        }),
        PostEvent::PostApproved => Event::PostApproved(v1::PostApproved {}),
        PostEvent::PostRejected { reason } => Event::PostRejected(v1::PostRejected { reason }),
        PostEvent::PostCancelled => Event::PostCancelled(v1::PostCancelled {}),
        PostEvent::PostDelivered {
            chat_id,
            telegram_message_id,
        } => outcome(chat_id).delivered(telegram_message_id),
        PostEvent::DeliveryFailed {
            chat_id,
            class,
            detail,
        } => outcome(chat_id).failed(class, detail),
        PostEvent::DeliveryUnknown { chat_id, detail } => outcome(chat_id).unknown(detail),
        PostEvent::DeliveryResolved {
            chat_id,
            resolution,
            automatic,
        } => outcome(chat_id).resolved(resolution, automatic),
    }
}

fn delivery_event(event: DeliveryEvent) -> Event {
    let outcome = |post_id: Id, chat_id: Id| Outcome {
        post_id: post_id.to_string(),
        chat_id: chat_id.to_string(),
    };
    match event {
        DeliveryEvent::PostDelivered {
            post_id,
            chat_id,
            telegram_message_id,
        } => outcome(post_id, chat_id).delivered(telegram_message_id),
        DeliveryEvent::DeliveryFailed {
            post_id,
            chat_id,
            class,
            detail,
        } => outcome(post_id, chat_id).failed(class, detail),
        DeliveryEvent::DeliveryUnknown {
            post_id,
            chat_id,
            detail,
        } => outcome(post_id, chat_id).unknown(detail),
        DeliveryEvent::DeliveryResolved {
            post_id,
            chat_id,
            resolution,
            automatic,
        } => outcome(post_id, chat_id).resolved(resolution, automatic),
    }
}

fn audience_rules(rules: domain::audience::AudienceRules) -> v1::AudienceRules {
    let time = |t: chrono::NaiveTime| t.format("%H:%M").to_string();
    v1::AudienceRules {
        time_zone: rules.time_zone,
        quiet_start: rules.quiet_hours.map(|q| time(q.start)),
        quiet_end: rules.quiet_hours.map(|q| time(q.end)),
        max_per_day: rules.max_per_day,
        max_per_week: rules.max_per_week,
        on_violation: match rules.on_violation {
            domain::audience::OnViolation::Defer => "defer",
            domain::audience::OnViolation::Skip => "skip",
        }
        .into(),
    }
}

fn segment_rule(rule: domain::SegmentRule) -> v1::SegmentRule {
    v1::SegmentRule {
        tags_all: rule.tags_all,
        tags_any: rule.tags_any,
        chat_ids: ids(&rule.chat_ids),
    }
}

fn lawful_basis(basis: domain::consent::Basis) -> v1::LawfulBasis {
    v1::LawfulBasis {
        basis: basis.basis.as_str().into(),
        source: basis.source,
        given_at_ms: basis.given_at.timestamp_millis(),
    }
}

fn stages(stages: Vec<domain::approval::Stage>) -> Vec<v1::ApprovalStage> {
    stages
        .into_iter()
        .map(|s| v1::ApprovalStage {
            name: s.name,
            roles: s.roles,
            user_ids: s.users,
            all_users: s.rule == domain::approval::Rule::All,
        })
        .collect()
}

fn ids(ids: &[Id]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// The delivery an outcome is about: the same messages whether it was recorded on the post
/// (before deliveries were aggregates) or on the delivery.
struct Outcome {
    post_id: String,
    chat_id: String,
}

impl Outcome {
    fn delivered(self, telegram_message_id: i32) -> Event {
        Event::PostDelivered(v1::PostDelivered {
            chat_id: self.chat_id,
            telegram_message_id,
            post_id: self.post_id,
        })
    }

    fn failed(self, class: FailureClass, detail: String) -> Event {
        Event::DeliveryFailed(v1::DeliveryFailed {
            chat_id: self.chat_id,
            class: failure_class_to_proto(class) as i32,
            detail,
            post_id: self.post_id,
        })
    }

    fn unknown(self, detail: String) -> Event {
        Event::DeliveryUnknown(v1::DeliveryUnknown {
            chat_id: self.chat_id,
            detail,
            post_id: self.post_id,
        })
    }

    fn resolved(self, resolution: Resolution, automatic: bool) -> Event {
        let (resolution, telegram_message_id) = match resolution {
            Resolution::MarkDelivered {
                telegram_message_id,
            } => ("mark_delivered", telegram_message_id),
            Resolution::Resend => ("resend", None),
        };
        Event::DeliveryResolved(v1::DeliveryResolved {
            chat_id: self.chat_id,
            resolution: resolution.into(),
            telegram_message_id,
            automatic,
            post_id: self.post_id,
        })
    }
}

fn parse_mode_to_proto(mode: Option<ParseMode>) -> v1::ParseMode {
    match mode {
        None => v1::ParseMode::Unspecified,
        Some(ParseMode::Html) => v1::ParseMode::Html,
        Some(ParseMode::MarkdownV2) => v1::ParseMode::MarkdownV2,
    }
}

fn failure_class_to_proto(class: FailureClass) -> v1::FailureClass {
    match class {
        FailureClass::Permanent => v1::FailureClass::Permanent,
        FailureClass::Transient => v1::FailureClass::Transient,
        FailureClass::OptedOut => v1::FailureClass::OptedOut,
        FailureClass::Skipped => v1::FailureClass::Skipped,
    }
}

/// Milliseconds since the epoch back to a UTC time (for consumers of integration events).
pub fn from_millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(aggregate_type: &str, event_type: &str, payload: serde_json::Value) -> StoredEvent {
        StoredEvent {
            aggregate_type: aggregate_type.into(),
            aggregate_id: "agg".into(),
            sequence: 3,
            event_type: event_type.into(),
            event_version: "1".into(),
            payload,
            metadata: HashMap::from([
                (metadata::WORKSPACE_ID.into(), "ws".into()),
                (metadata::ACTOR.into(), "admin".into()),
                (metadata::OCCURRED_AT.into(), "2026-01-01T00:00:01Z".into()),
            ]),
        }
    }

    #[test]
    fn converts_a_stored_post_event_with_its_context() {
        let chat = uuid::Uuid::from_u128(10);
        let row = stored(
            "Post",
            "PostDelivered",
            serde_json::json!({"PostDelivered": {"chat_id": chat, "telegram_message_id": 7}}),
        );
        let envelope = to_integration_event(&row).unwrap();
        assert_eq!(envelope.event_id, "Post:agg:3");
        assert_eq!(envelope.workspace_id, "ws");
        assert_eq!(envelope.occurred_at_ms, 1_767_225_601_000);
        assert_eq!(envelope.metadata.unwrap().actor, "admin");
        assert_eq!(
            envelope.event,
            Some(Event::PostDelivered(v1::PostDelivered {
                chat_id: chat.to_string(),
                telegram_message_id: 7,
                post_id: "agg".into(),
            }))
        );
    }

    #[test]
    fn a_delivery_event_names_its_post_like_an_outcome_recorded_on_the_post() {
        let (post, chat) = (uuid::Uuid::from_u128(3), uuid::Uuid::from_u128(10));
        let row = stored(
            "Delivery",
            "DeliveryUnknown",
            serde_json::json!({"DeliveryUnknown": {"post_id": post, "chat_id": chat, "detail": "x"}}),
        );
        assert_eq!(
            to_integration_event(&row).unwrap().event,
            Some(Event::DeliveryUnknown(v1::DeliveryUnknown {
                chat_id: chat.to_string(),
                detail: "x".into(),
                post_id: post.to_string(),
            }))
        );
    }

    #[test]
    fn never_publishes_the_encrypted_token() {
        let row = stored(
            "Bot",
            "BotRegistered",
            serde_json::json!({"BotRegistered": {"workspace_id": uuid::Uuid::nil(), "name": "b", "telegram_bot_id": 5, "encrypted_token": "SECRET"}}),
        );
        let bytes = prost::Message::encode_to_vec(&to_integration_event(&row).unwrap());
        assert!(!bytes.windows(6).any(|w| w == b"SECRET"));
    }

    #[test]
    fn refuses_unknown_versions_and_aggregates() {
        let mut row = stored("Post", "PostApproved", serde_json::json!("PostApproved"));
        row.event_version = "7".into();
        assert!(matches!(
            to_integration_event(&row),
            Err(ConvertError::UnsupportedVersion { .. })
        ));
        let row = stored("Nope", "X", serde_json::json!({}));
        assert!(matches!(
            to_integration_event(&row),
            Err(ConvertError::UnknownAggregate(_))
        ));
    }
}
