//! A segment: a named audience of the workspace's chats, a static list, a rule over tags, or
//! both. A post planned to segments gets their members at planning (decision 0011); a member
//! who cannot be sent to then (opted out, blocked, without a lawful basis) is left out, and an
//! opt-out after planning still wins at the moment of sending.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::audience::AudienceRules;
use crate::{Chat, DomainError, EVENT_VERSION, Id, Services};

const MAX_NAME: usize = 100;
/// Chats a static list may name; larger audiences are tagged.
pub const MAX_LISTED: usize = 10_000;

/// Who belongs: every chat in `chat_ids`, and, when a tag condition is given, every chat that
/// has all of `tags_all` and at least one of `tags_any` (each part optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_all: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_any: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chat_ids: Vec<Id>,
}

impl SegmentRule {
    /// The rule as stored: tags normalised like chats' tags, listed chats once, something to
    /// select by.
    pub fn check(self) -> Result<Self, DomainError> {
        let tags_all = Chat::check_tags(&self.tags_all)?;
        let tags_any = Chat::check_tags(&self.tags_any)?;
        let mut chat_ids = self.chat_ids;
        chat_ids.sort();
        chat_ids.dedup();
        if tags_all.is_empty() && tags_any.is_empty() && chat_ids.is_empty() {
            return Err(DomainError::InvalidSegment(
                "give tags_all, tags_any or chat_ids: a segment must select someone".into(),
            ));
        }
        if chat_ids.len() > MAX_LISTED {
            return Err(DomainError::InvalidSegment(format!(
                "a segment lists at most {MAX_LISTED} chats; tag larger audiences and select by tags"
            )));
        }
        Ok(Self {
            tags_all,
            tags_any,
            chat_ids,
        })
    }

    pub fn has_tag_condition(&self) -> bool {
        !self.tags_all.is_empty() || !self.tags_any.is_empty()
    }

    /// Whether a chat with `tags` belongs (the same condition the members query applies).
    pub fn selects(&self, chat_id: Id, tags: &[String]) -> bool {
        self.chat_ids.contains(&chat_id)
            || (self.has_tag_condition()
                && self.tags_all.iter().all(|t| tags.contains(t))
                && (self.tags_any.is_empty() || self.tags_any.iter().any(|t| tags.contains(t))))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum SegmentCommand {
    Define {
        workspace_id: Id,
        name: String,
        rule: SegmentRule,
    },
    Change {
        name: String,
        rule: SegmentRule,
    },
    /// The quiet hours and caps of its members when a post reaches them through this segment
    /// and they have none of their own (`None`: the workspace's).
    SetAudienceRules {
        rules: Option<AudienceRules>,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SegmentEvent {
    SegmentDefined {
        workspace_id: Id,
        name: String,
        rule: SegmentRule,
    },
    SegmentChanged {
        name: String,
        rule: SegmentRule,
    },
    SegmentAudienceRulesSet {
        rules: Option<AudienceRules>,
    },
    SegmentDeleted,
}

impl DomainEvent for SegmentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::SegmentDefined { .. } => "SegmentDefined",
            Self::SegmentChanged { .. } => "SegmentChanged",
            Self::SegmentAudienceRulesSet { .. } => "SegmentAudienceRulesSet",
            Self::SegmentDeleted => "SegmentDeleted",
        }
        .into()
    }
    fn event_version(&self) -> String {
        EVENT_VERSION.into()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Segment {
    pub workspace_id: Option<Id>,
    pub name: String,
    pub rule: SegmentRule,
    pub deleted: bool,
    /// Quiet hours and caps for its members reached through it.
    #[serde(default)]
    pub audience_rules: Option<AudienceRules>,
}

impl Segment {
    /// Defined and not deleted.
    pub fn exists(&self) -> bool {
        self.workspace_id.is_some() && !self.deleted
    }
}

/// A static list names chats connected in the workspace.
async fn listed_chats_exist(
    services: &Services,
    workspace_id: Id,
    rule: &SegmentRule,
) -> Result<(), DomainError> {
    if rule.chat_ids.is_empty() {
        return Ok(());
    }
    let chats = services
        .directory
        .chats(&rule.chat_ids)
        .await
        .map_err(DomainError::DirectoryUnavailable)?;
    match rule
        .chat_ids
        .iter()
        .find(|id| chats.get(id).is_none_or(|c| c.workspace_id != workspace_id))
    {
        Some(unknown) => Err(DomainError::UnknownChat(*unknown)),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(DomainError::InvalidSegment(format!(
            "a segment's name is 1 to {MAX_NAME} characters"
        )));
    }
    Ok(name.to_owned())
}

impl Aggregate for Segment {
    const TYPE: &'static str = "Segment";
    type Command = SegmentCommand;
    type Event = SegmentEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let event = match command {
            SegmentCommand::Define {
                workspace_id,
                name,
                rule,
            } => {
                if self.workspace_id.is_some() {
                    return Err(DomainError::AlreadyExists);
                }
                let rule = rule.check()?;
                listed_chats_exist(services, workspace_id, &rule).await?;
                SegmentEvent::SegmentDefined {
                    workspace_id,
                    name: check_name(&name)?,
                    rule,
                }
            }
            SegmentCommand::Change { name, rule } => {
                let Some(workspace_id) = self.workspace_id.filter(|_| self.exists()) else {
                    return Err(DomainError::NotFound);
                };
                let rule = rule.check()?;
                listed_chats_exist(services, workspace_id, &rule).await?;
                SegmentEvent::SegmentChanged {
                    name: check_name(&name)?,
                    rule,
                }
            }
            SegmentCommand::SetAudienceRules { rules } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                if let Some(rules) = &rules {
                    rules.validate()?;
                }
                SegmentEvent::SegmentAudienceRulesSet { rules }
            }
            SegmentCommand::Delete => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                SegmentEvent::SegmentDeleted
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SegmentEvent::SegmentDefined {
                workspace_id,
                name,
                rule,
            } => {
                self.workspace_id = Some(workspace_id);
                self.name = name;
                self.rule = rule;
            }
            SegmentEvent::SegmentChanged { name, rule } => {
                self.name = name;
                self.rule = rule;
            }
            SegmentEvent::SegmentAudienceRulesSet { rules } => self.audience_rules = rules,
            SegmentEvent::SegmentDeleted => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_rule_selects_listed_chats_and_chats_with_its_tags() {
        let listed = Id::from_u128(1);
        let rule = SegmentRule {
            tags_all: tags(&["Berlin"]),
            tags_any: tags(&["vip", "press"]),
            chat_ids: vec![listed, listed],
        }
        .check()
        .unwrap();
        assert_eq!(rule.tags_all, tags(&["berlin"]));
        assert_eq!(rule.chat_ids, vec![listed]);
        let other = Id::from_u128(2);
        assert!(rule.selects(listed, &[]));
        assert!(rule.selects(other, &tags(&["berlin", "vip"])));
        assert!(
            !rule.selects(other, &tags(&["berlin"])),
            "needs one of tags_any"
        );
        assert!(
            !rule.selects(other, &tags(&["vip"])),
            "needs all of tags_all"
        );
        let list_only = SegmentRule {
            chat_ids: vec![listed],
            ..SegmentRule::default()
        };
        assert!(!list_only.selects(other, &tags(&["anything"])));
        assert!(SegmentRule::default().check().is_err(), "selects nobody");
    }
}
