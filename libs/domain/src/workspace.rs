//! A workspace is a tenant: every other aggregate belongs to exactly one.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::audience::AudienceRules;
use crate::rules::RuleSet;
use crate::{DomainError, EVENT_VERSION, Services};

const MAX_NAME: usize = 200;
/// The audit journal's retention (PRODUCT.md): 12 months; a workspace may only shorten it.
pub const MAX_AUDIT_DAYS: u32 = 365;

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum WorkspaceCommand {
    Create {
        name: String,
    },
    SetInDoubtPolicy {
        policy: InDoubtPolicy,
    },
    /// How long the audit journal keeps this workspace's entries, in days (`None`: the
    /// product's 12 months; shorter by the organisation's policy).
    SetRetention {
        audit_days: Option<u32>,
    },
    /// The quiet hours and caps of every chat that has none of its own (`None`: no rules).
    SetAudienceRules {
        rules: Option<AudienceRules>,
    },
    /// The rules its posts' dry-runs check (an empty set: none); a finding that blocks
    /// prevents approval.
    SetRules {
        rules: RuleSet,
    },
    /// Whether its posts' texts and comments are sealed under a key of each post's own, so that
    /// erasing the post's key erases them from every event and projection (`false`: stored as
    /// they are).
    SetPostTextSealing {
        sealed: bool,
    },
    /// Records, for the audit, that `user_id` now has `role` here (the identity tables decide
    /// access and are written in the same transaction).
    RecordRoleGranted {
        user_id: String,
        role: String,
    },
    /// Records that `user_id` no longer has a role here.
    RecordRoleRevoked {
        user_id: String,
    },
}

/// What delivery does when a send is in doubt (the request may or may not have reached
/// Telegram). Flagging for an operator is the default; resending risks a duplicate post and
/// must be chosen explicitly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InDoubtPolicy {
    #[default]
    Flag,
    Resend,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkspaceEvent {
    WorkspaceCreated { name: String },
    InDoubtPolicySet { policy: InDoubtPolicy },
    WorkspaceAudienceRulesSet { rules: Option<AudienceRules> },
    RetentionSet { audit_days: Option<u32> },
    WorkspaceRulesSet { rules: RuleSet },
    PostTextSealingSet { sealed: bool },
    MemberRoleGranted { user_id: String, role: String },
    MemberRoleRevoked { user_id: String },
}

impl DomainEvent for WorkspaceEvent {
    fn event_type(&self) -> String {
        match self {
            Self::WorkspaceCreated { .. } => "WorkspaceCreated".into(),
            Self::InDoubtPolicySet { .. } => "InDoubtPolicySet".into(),
            Self::WorkspaceAudienceRulesSet { .. } => "WorkspaceAudienceRulesSet".into(),
            Self::RetentionSet { .. } => "RetentionSet".into(),
            Self::WorkspaceRulesSet { .. } => "WorkspaceRulesSet".into(),
            Self::PostTextSealingSet { .. } => "PostTextSealingSet".into(),
            Self::MemberRoleGranted { .. } => "MemberRoleGranted".into(),
            Self::MemberRoleRevoked { .. } => "MemberRoleRevoked".into(),
        }
    }
    fn event_version(&self) -> String {
        EVENT_VERSION.into()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Workspace {
    pub name: Option<String>,
    pub in_doubt_policy: InDoubtPolicy,
    /// The default quiet hours and caps of its chats.
    pub audience_rules: Option<AudienceRules>,
    /// Days its audit entries are kept, when shorter than the product's 12 months.
    pub audit_days: Option<u32>,
    /// The rules its posts' dry-runs check.
    #[serde(default)]
    pub rules: RuleSet,
    /// Its posts' texts and comments are sealed (erasable per post).
    #[serde(default)]
    pub seal_post_texts: bool,
}

impl Workspace {
    pub fn exists(&self) -> bool {
        self.name.is_some()
    }
}

impl Aggregate for Workspace {
    const TYPE: &'static str = "Workspace";
    type Command = WorkspaceCommand;
    type Event = WorkspaceEvent;
    type Error = DomainError;
    type Services = Services;

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            WorkspaceCommand::Create { name } => {
                if self.exists() {
                    return Err(DomainError::AlreadyExists);
                }
                let name = name.trim().to_owned();
                if name.is_empty() || name.chars().count() > MAX_NAME {
                    return Err(DomainError::InvalidWorkspaceName { max: MAX_NAME });
                }
                sink.write(WorkspaceEvent::WorkspaceCreated { name }, self)
                    .await;
            }
            WorkspaceCommand::SetInDoubtPolicy { policy } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                sink.write(WorkspaceEvent::InDoubtPolicySet { policy }, self)
                    .await;
            }
            WorkspaceCommand::SetRetention { audit_days } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                if audit_days.is_some_and(|d| d == 0 || d > MAX_AUDIT_DAYS) {
                    return Err(DomainError::InvalidRetention {
                        max: MAX_AUDIT_DAYS,
                    });
                }
                sink.write(WorkspaceEvent::RetentionSet { audit_days }, self)
                    .await;
            }
            WorkspaceCommand::SetAudienceRules { rules } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                if let Some(rules) = &rules {
                    rules.validate()?;
                }
                sink.write(WorkspaceEvent::WorkspaceAudienceRulesSet { rules }, self)
                    .await;
            }
            WorkspaceCommand::SetRules { rules } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                let rules = rules.normalized()?;
                sink.write(WorkspaceEvent::WorkspaceRulesSet { rules }, self)
                    .await;
            }
            WorkspaceCommand::SetPostTextSealing { sealed } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                sink.write(WorkspaceEvent::PostTextSealingSet { sealed }, self)
                    .await;
            }
            WorkspaceCommand::RecordRoleGranted { user_id, role } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                sink.write(WorkspaceEvent::MemberRoleGranted { user_id, role }, self)
                    .await;
            }
            WorkspaceCommand::RecordRoleRevoked { user_id } => {
                if !self.exists() {
                    return Err(DomainError::NotFound);
                }
                sink.write(WorkspaceEvent::MemberRoleRevoked { user_id }, self)
                    .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            WorkspaceEvent::WorkspaceCreated { name } => self.name = Some(name),
            WorkspaceEvent::InDoubtPolicySet { policy } => self.in_doubt_policy = policy,
            WorkspaceEvent::WorkspaceAudienceRulesSet { rules } => self.audience_rules = rules,
            WorkspaceEvent::RetentionSet { audit_days } => self.audit_days = audit_days,
            WorkspaceEvent::WorkspaceRulesSet { rules } => self.rules = rules,
            WorkspaceEvent::PostTextSealingSet { sealed } => self.seal_post_texts = sealed,
            WorkspaceEvent::MemberRoleGranted { .. } | WorkspaceEvent::MemberRoleRevoked { .. } => {
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use cqrs_es::test::TestFramework;

    use super::*;
    use crate::directory::fake::FakeDirectory;

    fn given() -> TestFramework<Workspace> {
        TestFramework::with(FakeDirectory::default().into_services())
    }

    #[tokio::test]
    async fn creates_with_trimmed_name() {
        given()
            .given_no_previous_events()
            .when_async(WorkspaceCommand::Create {
                name: " Acme ".into(),
            })
            .await
            .then_expect_events(vec![WorkspaceEvent::WorkspaceCreated {
                name: "Acme".into(),
            }]);
    }

    #[tokio::test]
    async fn sets_rules_normalized_and_refuses_malformed_ones() {
        let created = || vec![WorkspaceEvent::WorkspaceCreated { name: "a".into() }];
        let rules: RuleSet =
            serde_json::from_str(r#"{"link_domains":{"deny":[" Evil.Example "]}}"#).unwrap();
        let mut expected = RuleSet::default();
        expected.link_domains.deny = vec!["evil.example".into()];
        given()
            .given(created())
            .when_async(WorkspaceCommand::SetRules { rules })
            .await
            .then_expect_events(vec![WorkspaceEvent::WorkspaceRulesSet { rules: expected }]);
        let mut bad = RuleSet::default();
        bad.link_domains.allow = vec!["not a domain".into()];
        given()
            .given(created())
            .when_async(WorkspaceCommand::SetRules { rules: bad })
            .await
            .then_expect_error(DomainError::InvalidRules(
                "link_domains.allow entry \"not a domain\" is not a domain such as example.org"
                    .into(),
            ));
    }

    #[tokio::test]
    async fn refuses_blank_name_and_second_creation() {
        given()
            .given_no_previous_events()
            .when_async(WorkspaceCommand::Create { name: "  ".into() })
            .await
            .then_expect_error(DomainError::InvalidWorkspaceName { max: MAX_NAME });
        given()
            .given(vec![WorkspaceEvent::WorkspaceCreated { name: "a".into() }])
            .when_async(WorkspaceCommand::Create { name: "b".into() })
            .await
            .then_expect_error(DomainError::AlreadyExists);
    }
}
