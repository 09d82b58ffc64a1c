//! The permission matrix: what each role in a workspace, and each token scope, allows
//! (`docs/permissions.md` is this table in words; keep the two in step).

use serde::{Deserialize, Serialize};

/// A role in a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads posts, the calendar, deliveries and safety stats.
    Viewer,
    /// A viewer who plans, reschedules and cancels posts and records opt-outs.
    Author,
    /// A viewer who approves or rejects posts, resolves deliveries in doubt and records
    /// opt-outs.
    Approver,
    /// Everything in the workspace: bots, chats, policy, members.
    Admin,
    /// Reads everything, the whole audit included, and changes nothing.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Author,
        Role::Approver,
        Role::Admin,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Author => "author",
            Role::Approver => "approver",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role allows `action` in its workspace.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => !matches!(action, CreateWorkspace | ManageUsers),
            Role::Viewer => matches!(action, Read),
            Role::Auditor => matches!(action, Read | ReadAudit),
            Role::Author => matches!(action, Read | Plan | Comment | OptOut),
            Role::Approver => matches!(action, Read | Approve | Resolve | Comment | OptOut),
        }
    }
}

/// What a token may be used for, whatever its holder's roles allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Read,
    Write,
    Approve,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Approve, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Approve => "approve",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Everything the API lets someone do, as the matrix sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read a workspace's posts, calendar, deliveries, bots' and chats' safety stats, members.
    Read,
    /// Read the workspace's audit.
    ReadAudit,
    /// Plan, reschedule and cancel posts.
    Plan,
    /// Approve and reject posts.
    Approve,
    /// Comment on a post.
    Comment,
    /// Resolve a delivery in doubt.
    Resolve,
    /// Record a chat's opt-out.
    OptOut,
    /// Bots, chats, imports, limits and the workspace's policy.
    Configure,
    /// Grant and revoke roles in the workspace.
    ManageMembers,
    /// Create a workspace (instance administrators).
    CreateWorkspace,
    /// Create, disable and enable users (instance administrators).
    ManageUsers,
}

impl Action {
    /// The token scope an action needs.
    pub fn scope(self) -> Scope {
        use Action::*;
        match self {
            Read | ReadAudit => Scope::Read,
            Plan | Comment | OptOut => Scope::Write,
            Approve | Resolve => Scope::Approve,
            Configure | ManageMembers | CreateWorkspace | ManageUsers => Scope::Admin,
        }
    }

    /// Actions that concern the whole instance rather than one workspace.
    pub fn instance_wide(self) -> bool {
        matches!(self, Action::CreateWorkspace | Action::ManageUsers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_role_but_admin_changes_the_workspace_setup_and_none_creates_users() {
        for role in Role::ALL {
            assert_eq!(role.allows(Action::Configure), role == Role::Admin);
            assert_eq!(role.allows(Action::ManageMembers), role == Role::Admin);
            assert!(!role.allows(Action::ManageUsers));
            assert!(!role.allows(Action::CreateWorkspace));
            assert!(role.allows(Action::Read));
        }
        assert!(!Role::Auditor.allows(Action::Plan) && Role::Auditor.allows(Action::ReadAudit));
        assert!(!Role::Author.allows(Action::Approve) && !Role::Approver.allows(Action::Plan));
    }
}
