//! Staged approvals: who must approve a post before it may go out.
//!
//! A chat may carry an [`ApprovalPolicy`]: one or more stages, passed in order, each naming who
//! may approve (workspace roles and/or named users) and whether any one of them or all named
//! users must. A post takes the policies of its chats when it is planned or edited (the
//! distinct ones, stage after stage, in the order of its chats), so a later change of a chat's
//! policy never moves the goalposts of a post under review. A chat without a policy asks for
//! [`ApprovalPolicy::standard`]: one approval by an approver or an admin.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// The roles a stage may name (the workspace roles of `identity`).
pub const ROLES: [&str; 5] = ["viewer", "author", "approver", "auditor", "admin"];
/// Most stages a policy (or a post's combined stages) may have.
pub const MAX_STAGES: usize = 8;
/// Most named users in a stage.
pub const MAX_STAGE_USERS: usize = 50;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// One approval by anyone the stage admits.
    #[default]
    Any,
    /// An approval by every named user.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    /// Workspace roles whose holders may approve at this stage.
    #[serde(default)]
    pub roles: Vec<String>,
    /// User ids who may approve at this stage.
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub rule: Rule,
}

/// Who asks to approve: their id and their role in the post's workspace (an instance
/// administrator counts as `admin`).
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    pub id: &'a str,
    pub role: Option<&'a str>,
}

impl Stage {
    pub fn admits(&self, approver: Approver<'_>) -> bool {
        self.users.iter().any(|u| u == approver.id)
            || approver
                .role
                .is_some_and(|role| self.roles.iter().any(|r| r == role))
    }

    /// Whether the approvals given at this stage (approvers' ids) complete it.
    pub fn complete(&self, given: &[&str]) -> bool {
        match self.rule {
            Rule::Any => !given.is_empty(),
            Rule::All => self.users.iter().all(|u| given.contains(&u.as_str())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    pub stages: Vec<Stage>,
}

impl ApprovalPolicy {
    /// What a chat without a policy asks for: one approval by an approver or an admin.
    pub fn standard() -> Self {
        Self {
            stages: vec![Stage {
                name: "review".into(),
                roles: vec!["approver".into(), "admin".into()],
                users: Vec::new(),
                rule: Rule::Any,
            }],
        }
    }

    /// Refuses a policy that could never be met or is malformed.
    pub fn validate(&self) -> Result<(), DomainError> {
        let invalid = |why: String| Err(DomainError::InvalidPolicy(why));
        if self.stages.is_empty() || self.stages.len() > MAX_STAGES {
            return invalid(format!("a policy has 1 to {MAX_STAGES} stages"));
        }
        let mut names = std::collections::HashSet::new();
        for stage in &self.stages {
            let name = stage.name.trim();
            if name.is_empty() || name.chars().count() > 64 {
                return invalid("every stage needs a name of 1 to 64 characters".into());
            }
            if !names.insert(name) {
                return invalid(format!("two stages are named {name:?}"));
            }
            if let Some(role) = stage.roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
                return invalid(format!(
                    "stage {name:?} names the role {role:?}; roles are {}",
                    ROLES.join(", ")
                ));
            }
            if stage.roles.is_empty() && stage.users.is_empty() {
                return invalid(format!("stage {name:?} names no role and no user"));
            }
            if stage.users.len() > MAX_STAGE_USERS {
                return invalid(format!(
                    "stage {name:?} names more than {MAX_STAGE_USERS} users"
                ));
            }
            if stage.rule == Rule::All && (stage.users.is_empty() || !stage.roles.is_empty()) {
                return invalid(format!(
                    "stage {name:?} asks for all approvers: name the users, and no roles"
                ));
            }
        }
        Ok(())
    }

    /// The stages a post to chats with these policies must pass: each distinct policy's stages
    /// in turn (a chat without one asks for the standard review).
    pub fn combined<'a>(
        policies: impl IntoIterator<Item = Option<&'a ApprovalPolicy>>,
    ) -> Vec<Stage> {
        let standard = Self::standard();
        let mut distinct: Vec<&ApprovalPolicy> = Vec::new();
        for policy in policies {
            let policy = policy.unwrap_or(&standard);
            if !distinct.contains(&policy) {
                distinct.push(policy);
            }
        }
        distinct
            .into_iter()
            .flat_map(|p| p.stages.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(name: &str, roles: &[&str], users: &[&str], rule: Rule) -> Stage {
        Stage {
            name: name.into(),
            roles: roles.iter().map(|r| (*r).into()).collect(),
            users: users.iter().map(|u| (*u).into()).collect(),
            rule,
        }
    }

    #[test]
    fn any_needs_one_admitted_approval_and_all_needs_every_named_user() {
        let any = stage("review", &["approver"], &["u9"], Rule::Any);
        assert!(any.admits(Approver {
            id: "u1",
            role: Some("approver")
        }));
        assert!(any.admits(Approver {
            id: "u9",
            role: Some("viewer")
        }));
        assert!(!any.admits(Approver {
            id: "u1",
            role: Some("author")
        }));
        assert!(!any.complete(&[]));
        assert!(any.complete(&["u1"]));
        let all = stage("legal", &[], &["a", "b"], Rule::All);
        assert!(!all.complete(&["a"]));
        assert!(all.complete(&["b", "a"]));
    }

    #[test]
    fn malformed_policies_are_refused_with_a_reason() {
        let refused = |stages: Vec<Stage>| ApprovalPolicy { stages }.validate().is_err();
        assert!(refused(vec![]));
        assert!(refused(vec![stage("", &["admin"], &[], Rule::Any)]));
        assert!(refused(vec![stage("x", &[], &[], Rule::Any)]));
        assert!(refused(vec![stage("x", &["owner"], &[], Rule::Any)]));
        assert!(refused(vec![stage("x", &["approver"], &[], Rule::All)]));
        assert!(refused(vec![
            stage("x", &["approver"], &[], Rule::Any),
            stage("x", &["admin"], &[], Rule::Any),
        ]));
        assert!(ApprovalPolicy::standard().validate().is_ok());
    }

    #[test]
    fn a_post_passes_each_distinct_policy_of_its_chats_once() {
        let legal = ApprovalPolicy {
            stages: vec![stage("legal", &[], &["l"], Rule::All)],
        };
        let stages = ApprovalPolicy::combined([None, Some(&legal), None, Some(&legal)]);
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["review", "legal"]);
    }
}
