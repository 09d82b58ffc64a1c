use thiserror::Error;

/// A command was refused. Each variant has a stable machine-readable [`code`](Self::code) and a
/// human sentence (its `Display`) that says what to do next.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DomainError {
    #[error("workspace name must be 1 to {max} characters")]
    InvalidWorkspaceName { max: usize },
    #[error("bot name must be 1 to {max} characters")]
    InvalidBotName { max: usize },
    #[error(
        "bot token is not a Telegram bot token (expected <bot id>:<secret>, as BotFather gives it)"
    )]
    InvalidBotToken,
    #[error(
        "bot {0} is not registered in this workspace; register it first with POST /v1/workspaces/{{ws}}/bots"
    )]
    UnknownBot(crate::Id),
    #[error("chat title must be 1 to {max} characters")]
    InvalidChatTitle { max: usize },
    #[error("telegram_chat_id must be a non-zero Telegram chat id")]
    InvalidTelegramChatId,
    #[error("post text is empty; write at least one visible character")]
    TextEmpty,
    #[error(
        "post text is {length} characters as Telegram counts them (UTF-16 units); the limit is {max}"
    )]
    TextTooLong { length: usize, max: usize },
    #[error(
        "post text is not markup Telegram can parse ({detail}); escape characters meant as text (HTML: `<` as `&lt;`, `>` as `&gt;`, `&` as `&amp;`; MarkdownV2: a `\\` before each of _*[]()~`>#+-=|{{}}.!) or leave out parse_mode"
    )]
    TextUnparseable { detail: String },
    #[error("post needs at least one target chat in chat_ids")]
    NoChats,
    #[error("chat {0} is listed twice in chat_ids")]
    DuplicateChat(crate::Id),
    #[error(
        "chat {0} is not connected in this workspace; connect it first with POST /v1/workspaces/{{ws}}/chats"
    )]
    UnknownChat(crate::Id),
    #[error("chat {0} has opted out; Herald will not plan posts to it")]
    ChatOptedOut(crate::Id),
    #[error(
        "publish_at is more than {grace_minutes} minutes in the past; choose a time from now on"
    )]
    PublishAtInPast { grace_minutes: i64 },
    #[error("this id already exists")]
    AlreadyExists,
    #[error("not found")]
    NotFound,
    #[error("the post is already approved")]
    AlreadyApproved,
    #[error("the post is {state} and can no longer be {action}")]
    InvalidTransition {
        state: &'static str,
        action: &'static str,
    },
    #[error("chat {chat} cannot receive messages: {reason}")]
    ChatBlocked { chat: crate::Id, reason: String },
    #[error(
        "hourly_cap must be between 1 and {max} (Telegram's own limit for this chat or bot), or null for the default"
    )]
    InvalidHourlyCap { max: u32 },
    #[error("this token belongs to another bot (id {0}); register that bot separately")]
    TokenForAnotherBot(i64),
    #[error(
        "the delivery to chat {0} is not in doubt; only deliveries with status unknown can be resolved"
    )]
    DeliveryNotInDoubt(crate::Id),
    #[error(
        "the delivery to chat {chat_id} was already resent automatically {max} time(s); an operator must resolve it"
    )]
    AutoResendLimit { chat_id: crate::Id, max: u32 },
    #[error(
        "a post may target at most {max} chats and this one lists {count}; split it into several posts"
    )]
    TooManyChats { count: usize, max: usize },
    #[error("the directory of chats and bots could not be read: {0}")]
    DirectoryUnavailable(String),
    #[error("four eyes: nobody approves a post they planned or last edited; ask another approver")]
    OwnPost,
    #[error("the approval policy is not valid: {0}")]
    InvalidPolicy(String),
    #[error(
        "the post waits for its {stage:?} stage, and you are not among its approvers (see the chat's approval policy)"
    )]
    NotAnApprover { stage: String },
    #[error(
        "you have approved this stage of the post already; another approver must give the next approval"
    )]
    AlreadyApprovedByYou,
    #[error("a comment must be 1 to {max} characters")]
    InvalidComment { max: usize },
    #[error(
        "the post is approved and goes out at its publish time, which is too close to edit it; cancel it or reschedule first"
    )]
    TooLateToEdit,
    #[error("the lawful basis is not valid: {0}")]
    InvalidLawfulBasis(String),
    #[error(
        "a private chat is a person: give lawful_basis (\"consent\" or \"legitimate_interest\"), with source and given_at, to connect it"
    )]
    LawfulBasisRequired,
    #[error("groups and channels are not people and carry no lawful basis; leave lawful_basis out")]
    LawfulBasisNotApplicable,
    #[error(
        "chat {0} is a contact without a lawful basis; record one (PUT .../chats/{{id}}/lawful-basis) before planning posts to it"
    )]
    NoLawfulBasis(crate::Id),
    #[error("this person opted out; only they can subscribe again, by sending /start to the bot")]
    OptedOutByRecipient,
    #[error(
        "none of the chats can be sent to: the segments' {excluded} member(s) opted out, are blocked or have no lawful basis"
    )]
    NoReachableTargets { excluded: usize },
    #[error("the tags are not valid: {0}")]
    InvalidTags(String),
    #[error("the segment is not valid: {0}")]
    InvalidSegment(String),
    #[error("the audience rules are not valid: {0}")]
    InvalidAudienceRules(String),
    #[error("the rule set is not valid: {0}")]
    InvalidRules(String),
    #[error(
        "audit_days must be 1 to {max} (the audit is kept 12 months at most), or null for 12 months"
    )]
    InvalidRetention { max: u32 },
}

impl DomainError {
    /// Stable, machine-readable code for API clients. Never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidWorkspaceName { .. } => "invalid_workspace_name",
            Self::InvalidBotName { .. } => "invalid_bot_name",
            Self::InvalidBotToken => "invalid_bot_token",
            Self::UnknownBot(_) => "unknown_bot",
            Self::InvalidChatTitle { .. } => "invalid_chat_title",
            Self::InvalidTelegramChatId => "invalid_telegram_chat_id",
            Self::TextEmpty => "text_empty",
            Self::TextTooLong { .. } => "text_too_long",
            Self::TextUnparseable { .. } => "text_unparseable",
            Self::NoChats => "no_chats",
            Self::DuplicateChat(_) => "duplicate_chat",
            Self::UnknownChat(_) => "unknown_chat",
            Self::ChatOptedOut(_) => "chat_opted_out",
            Self::PublishAtInPast { .. } => "publish_at_in_past",
            Self::AlreadyExists => "already_exists",
            Self::NotFound => "not_found",
            Self::AlreadyApproved => "already_approved",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::ChatBlocked { .. } => "chat_blocked",
            Self::InvalidHourlyCap { .. } => "invalid_hourly_cap",
            Self::TokenForAnotherBot(_) => "token_for_another_bot",
            Self::DeliveryNotInDoubt(_) => "delivery_not_in_doubt",
            Self::AutoResendLimit { .. } => "auto_resend_limit",
            Self::TooManyChats { .. } => "too_many_chats",
            Self::DirectoryUnavailable(_) => "directory_unavailable",
            Self::OwnPost => "four_eyes",
            Self::InvalidPolicy(_) => "invalid_policy",
            Self::NotAnApprover { .. } => "not_an_approver",
            Self::AlreadyApprovedByYou => "already_approved_by_you",
            Self::InvalidComment { .. } => "invalid_comment",
            Self::TooLateToEdit => "too_late_to_edit",
            Self::InvalidLawfulBasis(_) => "invalid_lawful_basis",
            Self::LawfulBasisRequired => "lawful_basis_required",
            Self::LawfulBasisNotApplicable => "lawful_basis_not_applicable",
            Self::NoLawfulBasis(_) => "no_lawful_basis",
            Self::OptedOutByRecipient => "opted_out_by_recipient",
            Self::InvalidAudienceRules(_) => "invalid_audience_rules",
            Self::InvalidRules(_) => "invalid_rules",
            Self::InvalidTags(_) => "invalid_tags",
            Self::InvalidSegment(_) => "invalid_segment",
            Self::NoReachableTargets { .. } => "no_reachable_targets",
            Self::InvalidRetention { .. } => "invalid_retention",
        }
    }

    /// What kind of refusal this is, so the HTTP edge can pick a status without knowing rules.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyExists
            | Self::AlreadyApproved
            | Self::InvalidTransition { .. }
            | Self::ChatOptedOut(_)
            | Self::ChatBlocked { .. }
            | Self::DeliveryNotInDoubt(_)
            | Self::AutoResendLimit { .. }
            | Self::AlreadyApprovedByYou
            | Self::TooLateToEdit
            | Self::NoLawfulBasis(_)
            | Self::OptedOutByRecipient => ErrorKind::Conflict,
            Self::DirectoryUnavailable(_) => ErrorKind::Unavailable,
            Self::OwnPost | Self::NotAnApprover { .. } => ErrorKind::Forbidden,
            _ => ErrorKind::Invalid,
        }
    }
}

/// Coarse classes of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request itself is wrong (bad field values).
    Invalid,
    /// The target does not exist.
    NotFound,
    /// The request is valid but the target's current state forbids it.
    Conflict,
    /// A dependency could not be consulted; retrying later may succeed.
    Unavailable,
    /// A rule forbids this actor from doing it (whatever their role allows).
    Forbidden,
}
