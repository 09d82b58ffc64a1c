//! A post: text planned for one or more chats at a publish time, approved (or rejected or
//! cancelled), then delivered chat by chat. Each chat's delivery is an aggregate of its own
//! ([`crate::Delivery`]); the post holds what people decide.
//!
//! A post to many chats lists them over several events ([`PostEvent::PostTargetsAdded`] after
//! the first [`TARGETS_PER_EVENT`] in `PostPlanned`), so every event stays far below a NATS
//! message's size limit, and a send, which needs the post's state but not its chat list, reads
//! only its first event's share of ids.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalPolicy, Approver, MAX_STAGES, Stage};
use crate::{DomainError, EVENT_VERSION, Id, PUBLISH_AT_GRACE, Services};

/// How many chat ids one event lists (about 38 KB of JSON, 18 KB of protobuf).
pub const TARGETS_PER_EVENT: usize = 1000;
/// An approved post may be edited until this long before it goes out: sends start at the
/// publish time, and an edit must never meet a send of the old text.
pub const EDIT_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(30);
/// Longest comment, in characters.
pub const MAX_COMMENT: usize = 2000;
/// How many chats one post may target.
pub const MAX_CHATS_PER_POST: usize = 100_000;
/// The event that lists a post's targets beyond the first [`TARGETS_PER_EVENT`]: a send's
/// checks never depend on it, so it reads a post without these (see `store::apply_on`).
pub const TARGETS_EVENT: &str = "PostTargetsAdded";

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
    /// The audience rules (quiet hours, a cap) said skip; nothing was sent.
    Skipped,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permanent => "permanent",
            Self::Transient => "transient",
            Self::OptedOut => "opted_out",
            Self::Skipped => "skipped",
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

/// A text as its event stores it. Where the workspace seals post texts (so that they can be
/// erased without rewriting history), the caller seals the text under the post's own key before
/// the command (sealing needs the key store, which the domain does not see) and passes both: the
/// aggregate checks the plain text, and the event keeps only the sealed one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SealedText(pub Option<String>);

impl SealedText {
    /// What the event stores: the sealed text if there is one, else `text` itself.
    fn stored(self, text: String) -> String {
        self.0.unwrap_or(text)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum PostCommand {
    Plan {
        workspace_id: Id,
        chat_ids: Vec<Id>,
        /// Chats of segments (`segments`), resolved by the caller: each is included if it may
        /// be sent to now and left out otherwise (opted out, blocked, without a lawful basis),
        /// where a chat named in `chat_ids` must be targetable or the plan is refused.
        audience: Vec<Id>,
        segments: Vec<Id>,
        text: String,
        /// `text` as the event stores it, when the workspace seals post texts (see
        /// [`SealedText`]); the aggregate checks `text` and stores this.
        sealed: SealedText,
        parse_mode: Option<ParseMode>,
        publish_at: DateTime<Utc>,
        now: DateTime<Utc>,
        /// Who plans it (the actor's id): they may not approve it.
        author: String,
    },
    /// `by`: the approver's id, never the author's or last editor's; `role`: their role in the
    /// workspace (an instance administrator's is `admin`), which the current stage may admit.
    Approve {
        by: String,
        role: Option<String>,
    },
    /// Sends the post back to draft with a reason: it needs an edit and fresh approvals.
    Reject {
        reason: String,
    },
    /// Changes what the post says or when it goes out. Every approval it had is void: the
    /// edited post waits for its stages again, and its editor may not approve it.
    Edit {
        by: String,
        text: String,
        sealed: SealedText,
        parse_mode: Option<ParseMode>,
        publish_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// `text` trimmed is what is checked (and what `sealed` must seal).
    Comment {
        by: String,
        text: String,
        sealed: SealedText,
    },
    /// Records that its sealed texts are erased (the caller destroys the post's key). Only a
    /// post that will send nothing more: cancelled, expired, or approved with every delivery
    /// settled (the caller checks the deliveries).
    EraseTexts {
        by: String,
    },
    /// Its publish time passed (by more than [`PUBLISH_AT_GRACE`]) without every approval:
    /// it never goes out late. An edit with a new time resubmits it.
    Expire {
        now: DateTime<Utc>,
    },
    Cancel,
    /// Moves the publish time of a post that is not yet (fully) delivered.
    Reschedule {
        publish_at: DateTime<Utc>,
        now: DateTime<Utc>,
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
        /// The author's id; absent in posts planned before authors were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        author: Option<String>,
        /// The approval stages it must pass, taken from its chats' policies; absent in posts
        /// planned before staged approvals (they need the standard review).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        stages: Vec<Stage>,
        /// The segments its audience was resolved from (at planning), and how many of their
        /// members were left out because they could not be sent to.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        segments: Vec<Id>,
        #[serde(default, skip_serializing_if = "is_zero")]
        excluded: u32,
    },
    /// One approval at stage `stage` (an index into the post's stages). The post is approved
    /// (`PostApproved`, in the same commit) when its last stage is complete.
    PostApprovalGiven {
        stage: u32,
        by: String,
    },
    PostEdited {
        text: String,
        parse_mode: Option<ParseMode>,
        publish_at: DateTime<Utc>,
        by: String,
    },
    PostCommented {
        text: String,
        by: String,
    },
    /// Its sealed texts (text, edits, comments) were erased: the post's key is destroyed, so
    /// every event and projection reads them as erased.
    PostTextsErased {
        by: String,
    },
    /// Not fully approved in time: it will not go out (see [`PostCommand::Expire`]).
    PostExpired,
    PostApproved,
    PostRejected {
        reason: String,
    },
    PostCancelled,
    /// More target chats of the post just planned (in the same commit), in planning order.
    PostTargetsAdded {
        chat_ids: Vec<Id>,
    },
    /// Outcomes recorded on the post itself before deliveries were aggregates of their own
    /// (decision 0008): still read, never written.
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
            Self::PostApprovalGiven { .. } => "PostApprovalGiven",
            Self::PostEdited { .. } => "PostEdited",
            Self::PostCommented { .. } => "PostCommented",
            Self::PostTextsErased { .. } => "PostTextsErased",
            Self::PostExpired => "PostExpired",
            Self::PostApproved => "PostApproved",
            Self::PostRejected { .. } => "PostRejected",
            Self::PostCancelled => "PostCancelled",
            Self::PostTargetsAdded { .. } => "PostTargetsAdded",
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
/// `Draft`: rejected, waiting for an edit (a post that does not exist is also `Draft`, with
/// no workspace); `Planned`: waiting for its approvals; `Expired`: not approved in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostState {
    #[default]
    Draft,
    Planned,
    Approved,
    Cancelled,
    Expired,
}

impl PostState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Planned => "planned",
            Self::Approved => "approved",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Post {
    pub state: PostState,
    pub workspace_id: Option<Id>,
    pub text: String,
    pub parse_mode: Option<ParseMode>,
    pub publish_at: Option<DateTime<Utc>>,
    /// Who planned it (an actor id), when recorded.
    pub author: Option<String>,
    /// Who edited it last, if anyone: like the author, they may not approve it.
    pub last_editor: Option<String>,
    /// The approval stages it must pass (empty: the standard review).
    pub stages: Vec<Stage>,
    /// Approvals given since it was planned or last edited: (stage, approver id).
    pub approvals: Vec<(u32, String)>,
    /// Target chats in the order they were planned.
    pub chat_ids: Vec<Id>,
    /// Outcomes recorded on the post itself before deliveries were aggregates of their own
    /// (decision 0008); empty for every post planned since.
    pub recorded_outcomes: BTreeMap<Id, DeliveryStatus>,
    /// The segments its audience came from, and their members left out at planning.
    pub segments: Vec<Id>,
    pub excluded: u32,
    /// Its sealed texts were erased.
    pub texts_erased: bool,
}

/// How many of a post's deliveries are in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryCounts {
    pub pending: u64,
    pub delivered: u64,
    pub failed: u64,
    pub unknown: u64,
}

impl DeliveryCounts {
    pub fn add(&mut self, status: DeliveryState, n: u64) {
        match status {
            DeliveryState::Pending => self.pending += n,
            DeliveryState::Delivered => self.delivered += n,
            DeliveryState::Failed => self.failed += n,
            DeliveryState::Unknown => self.unknown += n,
        }
    }
}

impl Post {
    /// A single word for the whole post: its state, or once approved, how delivery went.
    pub fn summary_state(&self, counts: &DeliveryCounts) -> &'static str {
        if self.state != PostState::Approved {
            return self.state.as_str();
        }
        match (counts.pending, counts.delivered) {
            (0, delivered) if delivered == self.chat_ids.len() as u64 => "delivered",
            (0, 0) => "failed",
            (0, _) => "partially_delivered",
            _ => "approved",
        }
    }

    /// Cancelling or rescheduling acts on the deliveries that have not gone out; with none
    /// left there is nothing to act on. (The post's own rules are in `handle`; this is what the
    /// deliveries' counts add, read by the caller before the command.)
    pub fn check_unsettled(
        &self,
        counts: &DeliveryCounts,
        action: &'static str,
    ) -> Result<(), DomainError> {
        match self.summary_state(counts) {
            state @ ("delivered" | "failed" | "partially_delivered") => {
                Err(DomainError::InvalidTransition { state, action })
            }
            _ => Ok(()),
        }
    }

    fn refuse(&self, action: &'static str) -> DomainError {
        if self.workspace_id.is_none() {
            return DomainError::NotFound;
        }
        DomainError::InvalidTransition {
            state: self.state.as_str(),
            action,
        }
    }

    /// The stages this post must pass.
    pub fn required_stages(&self) -> Vec<Stage> {
        if self.stages.is_empty() {
            ApprovalPolicy::standard().stages
        } else {
            self.stages.clone()
        }
    }

    /// The stage waiting for approvals (an index into [`Post::required_stages`]), if any.
    pub fn current_stage(&self, stages: &[Stage]) -> Option<usize> {
        stages.iter().enumerate().position(|(i, stage)| {
            let given: Vec<&str> = self
                .approvals
                .iter()
                .filter(|(s, _)| *s as usize == i)
                .map(|(_, by)| by.as_str())
                .collect();
            !stage.complete(&given)
        })
    }

    /// Four eyes: the author and the last editor may not approve.
    fn wrote_it(&self, by: &str) -> bool {
        self.author.as_deref() == Some(by) || self.last_editor.as_deref() == Some(by)
    }

    async fn check_plan(
        &self,
        services: &Services,
        plan: Plan<'_>,
        now: DateTime<Utc>,
    ) -> Result<Planned, DomainError> {
        let Plan {
            workspace_id,
            chat_ids,
            audience,
            text,
            parse_mode,
            publish_at,
        } = plan;
        if self.workspace_id.is_some() {
            return Err(DomainError::AlreadyExists);
        }
        check_text(text, parse_mode)?;
        check_publish_at(publish_at, now)?;
        if chat_ids.is_empty() && audience.is_empty() {
            return Err(DomainError::NoChats);
        }
        let requested = chat_ids.len() + audience.len();
        if requested > MAX_CHATS_PER_POST {
            return Err(DomainError::TooManyChats {
                count: requested,
                max: MAX_CHATS_PER_POST,
            });
        }
        let mut seen = HashSet::with_capacity(requested);
        if let Some(duplicate) = chat_ids.iter().find(|id| !seen.insert(**id)) {
            return Err(DomainError::DuplicateChat(*duplicate));
        }
        // Members also named in chat_ids, or in two segments, count once.
        let members: Vec<Id> = audience
            .iter()
            .copied()
            .filter(|id| seen.insert(*id))
            .collect();
        let asked: Vec<Id> = chat_ids.iter().chain(&members).copied().collect();
        let chats = services
            .directory
            .chats(&asked)
            .await
            .map_err(DomainError::DirectoryUnavailable)?;
        for chat_id in chat_ids {
            match chats.get(chat_id) {
                Some(chat) if chat.workspace_id == workspace_id => {
                    if chat.opted_out {
                        return Err(DomainError::ChatOptedOut(*chat_id));
                    }
                    if !chat.has_lawful_basis {
                        return Err(DomainError::NoLawfulBasis(*chat_id));
                    }
                    if let Some(reason) = &chat.blocked {
                        return Err(DomainError::ChatBlocked {
                            chat: *chat_id,
                            reason: reason.clone(),
                        });
                    }
                }
                _ => return Err(DomainError::UnknownChat(*chat_id)),
            }
        }
        // A segment's member is sent to only if it may be now: the recipient's choice wins.
        let reachable: Vec<Id> = members
            .iter()
            .copied()
            .filter(|id| {
                chats.get(id).is_some_and(|c| {
                    c.workspace_id == workspace_id
                        && !c.opted_out
                        && c.has_lawful_basis
                        && c.blocked.is_none()
                })
            })
            .collect();
        let excluded = members.len() - reachable.len();
        let targets: Vec<Id> = chat_ids.iter().copied().chain(reachable).collect();
        if targets.is_empty() {
            return Err(DomainError::NoReachableTargets { excluded });
        }
        let stages = ApprovalPolicy::combined(
            targets
                .iter()
                .map(|id| chats.get(id).and_then(|c| c.approval_policy.as_ref())),
        );
        if stages.len() > MAX_STAGES {
            return Err(DomainError::InvalidPolicy(format!(
                "the chats' policies add up to {} stages, more than {MAX_STAGES}; plan separate posts",
                stages.len()
            )));
        }
        // The standard review is what an empty list means (and what old posts recorded).
        let stages = if stages == ApprovalPolicy::standard().stages {
            Vec::new()
        } else {
            stages
        };
        Ok(Planned {
            stages,
            targets,
            excluded: u32::try_from(excluded).unwrap_or(u32::MAX),
        })
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
                audience,
                segments,
                text,
                sealed,
                parse_mode,
                publish_at,
                now,
                author,
            } => {
                let plan = Plan {
                    workspace_id,
                    chat_ids: &chat_ids,
                    audience: &audience,
                    text: &text,
                    parse_mode,
                    publish_at,
                };
                let Planned {
                    stages,
                    targets,
                    excluded,
                } = self.check_plan(services, plan, now).await?;
                let mut chunks = targets.chunks(TARGETS_PER_EVENT);
                let first = chunks.next().unwrap_or_default().to_vec();
                let rest: Vec<Vec<Id>> = chunks.map(<[Id]>::to_vec).collect();
                let planned = PostEvent::PostPlanned {
                    workspace_id,
                    chat_ids: first,
                    text: sealed.stored(text),
                    parse_mode,
                    publish_at,
                    author: Some(author),
                    stages,
                    segments,
                    excluded,
                };
                sink.write(planned, self).await;
                for chat_ids in rest {
                    sink.write(PostEvent::PostTargetsAdded { chat_ids }, self)
                        .await;
                }
                return Ok(());
            }
            PostCommand::Approve { by, role } => {
                match self.state {
                    PostState::Planned => {}
                    PostState::Approved => return Err(DomainError::AlreadyApproved),
                    _ => return Err(self.refuse("approved")),
                }
                if self.wrote_it(&by) {
                    return Err(DomainError::OwnPost);
                }
                let stages = self.required_stages();
                let Some(index) = self.current_stage(&stages) else {
                    return Err(DomainError::AlreadyApproved);
                };
                // One approval per person and stage. (One person may pass several stages that
                // admit them: refusing it could leave a stage that names them unpassable.)
                if self
                    .approvals
                    .iter()
                    .any(|(stage, given)| *stage as usize == index && *given == by)
                {
                    return Err(DomainError::AlreadyApprovedByYou);
                }
                let approver = Approver {
                    id: &by,
                    role: role.as_deref(),
                };
                if !stages[index].admits(approver) {
                    return Err(DomainError::NotAnApprover {
                        stage: stages[index].name.clone(),
                    });
                }
                let given = PostEvent::PostApprovalGiven {
                    stage: index as u32,
                    by,
                };
                sink.write(given, self).await;
                if self.current_stage(&stages).is_none() {
                    sink.write(PostEvent::PostApproved, self).await;
                }
                return Ok(());
            }
            PostCommand::Edit {
                by,
                text,
                sealed,
                parse_mode,
                publish_at,
                now,
            } => {
                match (self.state, self.publish_at) {
                    (PostState::Draft | PostState::Planned | PostState::Expired, _)
                        if self.workspace_id.is_some() => {}
                    (PostState::Approved, Some(due)) if due > now + EDIT_MARGIN => {}
                    (PostState::Approved, _) => return Err(DomainError::TooLateToEdit),
                    _ => return Err(self.refuse("edited")),
                }
                check_text(&text, parse_mode)?;
                check_publish_at(publish_at, now)?;
                PostEvent::PostEdited {
                    text: sealed.stored(text),
                    parse_mode,
                    publish_at,
                    by,
                }
            }
            PostCommand::Comment { by, text, sealed } => {
                if self.workspace_id.is_none() {
                    return Err(DomainError::NotFound);
                }
                let text = text.trim().to_owned();
                if text.is_empty() || text.chars().count() > MAX_COMMENT {
                    return Err(DomainError::InvalidComment { max: MAX_COMMENT });
                }
                PostEvent::PostCommented {
                    text: sealed.stored(text),
                    by,
                }
            }
            PostCommand::EraseTexts { by } => {
                match self.state {
                    _ if self.workspace_id.is_none() => return Err(DomainError::NotFound),
                    PostState::Cancelled | PostState::Expired | PostState::Approved => {}
                    _ => return Err(self.refuse("erased (cancel it first)")),
                }
                if self.texts_erased {
                    return Ok(());
                }
                PostEvent::PostTextsErased { by }
            }
            PostCommand::Expire { now } => match (self.state, self.publish_at) {
                (PostState::Draft | PostState::Planned, Some(due))
                    if self.workspace_id.is_some() && due + PUBLISH_AT_GRACE <= now =>
                {
                    PostEvent::PostExpired
                }
                _ => return Err(self.refuse("expired")),
            },
            PostCommand::Reject { reason } => match self.state {
                PostState::Planned => PostEvent::PostRejected {
                    reason: reason.trim().to_owned(),
                },
                _ => return Err(self.refuse("rejected")),
            },
            // Both act on what has not gone out yet: a cancel or a reschedule during a
            // broadcast stops or moves the rest (see `check_unsettled` for a finished one).
            PostCommand::Cancel => match self.state {
                PostState::Planned | PostState::Approved => PostEvent::PostCancelled,
                _ => return Err(self.refuse("cancelled")),
            },
            PostCommand::Reschedule { publish_at, now } => match self.state {
                PostState::Planned | PostState::Approved => {
                    check_publish_at(publish_at, now)?;
                    PostEvent::PostRescheduled { publish_at }
                }
                _ => return Err(self.refuse("rescheduled")),
            },
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
                author,
                stages,
                segments,
                excluded,
            } => {
                self.segments = segments;
                self.excluded = excluded;
                self.state = PostState::Planned;
                self.author = author;
                self.stages = stages;
                self.workspace_id = Some(workspace_id);
                self.text = text;
                self.parse_mode = parse_mode;
                self.publish_at = Some(publish_at);
                self.chat_ids = chat_ids;
            }
            PostEvent::PostTargetsAdded { chat_ids } => self.chat_ids.extend(chat_ids),
            PostEvent::PostApproved => self.state = PostState::Approved,
            PostEvent::PostApprovalGiven { stage, by } => self.approvals.push((stage, by)),
            PostEvent::PostEdited {
                text,
                parse_mode,
                publish_at,
                by,
            } => {
                self.state = PostState::Planned;
                self.text = text;
                self.parse_mode = parse_mode;
                self.publish_at = Some(publish_at);
                self.last_editor = Some(by);
                self.approvals.clear();
            }
            PostEvent::PostCommented { .. } => {}
            PostEvent::PostTextsErased { .. } => self.texts_erased = true,
            PostEvent::PostExpired => {
                self.state = PostState::Expired;
                self.approvals.clear();
            }
            // Back to draft: an edit resubmits it for every stage.
            PostEvent::PostRejected { .. } => {
                self.state = PostState::Draft;
                self.approvals.clear();
            }
            PostEvent::PostCancelled => self.state = PostState::Cancelled,
            PostEvent::PostRescheduled { publish_at } => self.publish_at = Some(publish_at),
            PostEvent::PostDelivered {
                chat_id,
                telegram_message_id,
            } => self.record_outcome(chat_id, |_| DeliveryStatus {
                status: DeliveryState::Delivered,
                telegram_message_id: Some(telegram_message_id),
                ..DeliveryStatus::default()
            }),
            PostEvent::DeliveryFailed {
                chat_id,
                class,
                detail,
            } => self.record_outcome(chat_id, |_| DeliveryStatus {
                status: DeliveryState::Failed,
                error: Some(format!("{}: {detail}", class.as_str())),
                ..DeliveryStatus::default()
            }),
            PostEvent::DeliveryUnknown { chat_id, detail } => {
                self.record_outcome(chat_id, |_| DeliveryStatus {
                    status: DeliveryState::Unknown,
                    error: Some(detail),
                    ..DeliveryStatus::default()
                })
            }
            PostEvent::DeliveryResolved {
                chat_id,
                resolution,
                automatic,
            } => self.record_outcome(chat_id, |auto_resends| match resolution {
                Resolution::MarkDelivered {
                    telegram_message_id,
                } => DeliveryStatus {
                    status: DeliveryState::Delivered,
                    telegram_message_id,
                    ..DeliveryStatus::default()
                },
                Resolution::Resend => DeliveryStatus {
                    auto_resends: auto_resends + u32::from(automatic),
                    ..DeliveryStatus::default()
                },
            }),
        }
    }
}

/// What a `Plan` command asks for, checked before it becomes a `PostPlanned` event.
/// What planning settled: the stages, the chats, and the segment members left out.
struct Planned {
    stages: Vec<Stage>,
    targets: Vec<Id>,
    excluded: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

struct Plan<'a> {
    workspace_id: Id,
    chat_ids: &'a [Id],
    audience: &'a [Id],
    text: &'a str,
    parse_mode: Option<ParseMode>,
    publish_at: DateTime<Utc>,
}

/// The text of a post, as Telegram will parse and count it.
fn check_text(text: &str, parse_mode: Option<ParseMode>) -> Result<(), DomainError> {
    crate::text::check(text, parse_mode)
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
    /// An outcome of old, recorded on the post; `status` gets the automatic resends so far.
    fn record_outcome(&mut self, chat_id: Id, status: impl FnOnce(u32) -> DeliveryStatus) {
        let auto_resends = self
            .recorded_outcomes
            .get(&chat_id)
            .map_or(0, |d| d.auto_resends);
        let mut status = status(auto_resends);
        status.auto_resends = status.auto_resends.max(auto_resends);
        self.recorded_outcomes.insert(chat_id, status);
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
    const NO_BASIS: Id = Id::from_u128(13);
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
            has_lawful_basis: true,
            blocked: None,
            approval_policy: None,
        };
        directory.chats.insert(CHAT, info(WS, false));
        directory.chats.insert(
            NO_BASIS,
            ChatInfo {
                has_lawful_basis: false,
                ..info(WS, false)
            },
        );
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
            audience: vec![],
            segments: vec![],
            text: text.into(),
            sealed: SealedText::default(),
            parse_mode: None,
            publish_at,
            now: now(),
            author: AUTHOR.into(),
        }
    }

    const AUTHOR: &str = "author-id";

    fn approve() -> PostCommand {
        PostCommand::Approve {
            by: "approver-id".into(),
            role: Some("approver".into()),
        }
    }

    fn planned() -> PostEvent {
        PostEvent::PostPlanned {
            workspace_id: WS,
            chat_ids: vec![CHAT],
            text: "hi".into(),
            parse_mode: None,
            publish_at: now(),
            author: Some(AUTHOR.into()),
            stages: vec![],
            segments: vec![],
            excluded: 0,
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
            plan(vec![NO_BASIS], "hi", now()),
            DomainError::NoLawfulBasis(NO_BASIS),
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
    async fn a_segments_members_who_cannot_be_sent_to_are_left_out_and_counted() {
        let segment = Id::from_u128(77);
        let command = |chat_ids: Vec<Id>, audience: Vec<Id>| PostCommand::Plan {
            workspace_id: WS,
            chat_ids,
            audience,
            segments: vec![segment],
            text: "hi".into(),
            sealed: SealedText::default(),
            parse_mode: None,
            publish_at: now(),
            now: now(),
            author: AUTHOR.into(),
        };
        let events = framework()
            .given_no_previous_events()
            .when_async(command(
                vec![],
                vec![OPTED_OUT, CHAT, NO_BASIS, FOREIGN, CHAT],
            ))
            .await
            .inspect_result()
            .unwrap();
        let PostEvent::PostPlanned {
            chat_ids,
            segments,
            excluded,
            ..
        } = &events[0]
        else {
            panic!("{events:?}");
        };
        assert_eq!(
            (chat_ids.as_slice(), segments.as_slice(), *excluded),
            ([CHAT].as_slice(), [segment].as_slice(), 3)
        );
        // Named in chat_ids too: once, and strictly checked there.
        expect_plan_error(
            command(vec![OPTED_OUT], vec![CHAT]),
            DomainError::ChatOptedOut(OPTED_OUT),
        )
        .await;
        expect_plan_error(
            command(vec![], vec![OPTED_OUT, NO_BASIS]),
            DomainError::NoReachableTargets { excluded: 2 },
        )
        .await;
    }

    #[tokio::test]
    async fn a_sealed_text_is_stored_sealed_and_its_plain_text_is_what_is_checked() {
        let sealed = SealedText(Some("sealed:v1:opaque".into()));
        let plan = |text: &str| PostCommand::Plan {
            workspace_id: WS,
            chat_ids: vec![CHAT],
            audience: vec![],
            segments: vec![],
            text: text.into(),
            sealed: sealed.clone(),
            parse_mode: Some(ParseMode::Html),
            publish_at: now(),
            now: now(),
            author: AUTHOR.into(),
        };
        let events = framework()
            .given_no_previous_events()
            .when_async(plan("<b>hi</b>"))
            .await
            .inspect_result()
            .unwrap();
        let PostEvent::PostPlanned { text, .. } = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!(text, "sealed:v1:opaque", "only the sealed text is stored");
        // The plain text decides: sealing a text Telegram cannot parse does not let it through.
        expect_plan_error(
            plan("1 < 2"),
            DomainError::TextUnparseable {
                detail: "Unsupported start tag \"\" at byte offset 2".into(),
            },
        )
        .await;
        let events = framework()
            .given(vec![planned()])
            .when_async(PostCommand::Comment {
                by: AUTHOR.into(),
                text: "  looks good  ".into(),
                sealed: sealed.clone(),
            })
            .await
            .inspect_result()
            .unwrap();
        assert!(
            matches!(&events[0], PostEvent::PostCommented { text, .. } if text == "sealed:v1:opaque"),
            "{events:?}"
        );
    }

    #[tokio::test]
    async fn markup_telegram_cannot_parse_is_refused_at_planning_and_at_edit() {
        let unparseable = DomainError::TextUnparseable {
            detail: "Unsupported start tag \"\" at byte offset 2".into(),
        };
        let html = |text: &str| PostCommand::Plan {
            workspace_id: WS,
            chat_ids: vec![CHAT],
            audience: vec![],
            segments: vec![],
            text: text.into(),
            sealed: SealedText::default(),
            parse_mode: Some(ParseMode::Html),
            publish_at: now(),
            now: now(),
            author: AUTHOR.into(),
        };
        expect_plan_error(html("1 < 2"), unparseable.clone()).await;
        framework()
            .given_no_previous_events()
            .when_async(html("1 &lt; 2"))
            .await
            .inspect_result()
            .unwrap();
        framework()
            .given(vec![planned()])
            .when_async(PostCommand::Edit {
                by: AUTHOR.into(),
                text: "1 < 2".into(),
                sealed: SealedText::default(),
                parse_mode: Some(ParseMode::Html),
                publish_at: now() + TimeDelta::hours(1),
                now: now(),
            })
            .await
            .then_expect_error(unparseable);
        // A text that parsed as plain text may not parse once its mode changes.
        framework()
            .given(vec![planned()])
            .when_async(PostCommand::Edit {
                by: AUTHOR.into(),
                text: "Version 1.0".into(),
                sealed: SealedText::default(),
                parse_mode: Some(ParseMode::MarkdownV2),
                publish_at: now() + TimeDelta::hours(1),
                now: now(),
            })
            .await
            .then_expect_error(DomainError::TextUnparseable {
                detail: "Character '.' is reserved and must be escaped with the preceding '\\'"
                    .into(),
            });
    }

    #[tokio::test]
    async fn a_post_planned_before_authors_were_recorded_may_be_approved_by_anyone() {
        let stored = r#"{"PostPlanned":{"workspace_id":"00000000-0000-0000-0000-000000000001","chat_ids":[],"text":"hi","parse_mode":null,"publish_at":"2026-01-01T00:00:00Z"}}"#;
        let old: PostEvent = serde_json::from_str(stored).unwrap();
        framework()
            .given(vec![old])
            .when_async(PostCommand::Approve {
                by: AUTHOR.into(),
                role: Some("approver".into()),
            })
            .await
            .then_expect_events(vec![
                PostEvent::PostApprovalGiven {
                    stage: 0,
                    by: AUTHOR.into(),
                },
                PostEvent::PostApproved,
            ]);
    }

    #[tokio::test]
    async fn approval_rules() {
        framework()
            .given(vec![planned()])
            .when_async(PostCommand::Approve {
                by: AUTHOR.into(),
                role: Some("approver".into()),
            })
            .await
            .then_expect_error(DomainError::OwnPost);
        framework()
            .given(vec![planned()])
            .when_async(approve())
            .await
            .then_expect_events(vec![
                PostEvent::PostApprovalGiven {
                    stage: 0,
                    by: "approver-id".into(),
                },
                PostEvent::PostApproved,
            ]);
        // The standard review admits approvers and admins, not authors or viewers.
        framework()
            .given(vec![planned()])
            .when_async(PostCommand::Approve {
                by: "someone".into(),
                role: Some("author".into()),
            })
            .await
            .then_expect_error(DomainError::NotAnApprover {
                stage: "review".into(),
            });
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(approve())
            .await
            .then_expect_error(DomainError::AlreadyApproved);
        framework()
            .given(vec![planned(), PostEvent::PostCancelled])
            .when_async(approve())
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "cancelled",
                action: "approved",
            });
        framework()
            .given_no_previous_events()
            .when_async(approve())
            .await
            .then_expect_error(DomainError::NotFound);
    }

    fn staged() -> PostEvent {
        use crate::approval::Rule;
        let stage = |name: &str, roles: &[&str], users: &[&str], rule| Stage {
            name: name.into(),
            roles: roles.iter().map(|r| (*r).into()).collect(),
            users: users.iter().map(|u| (*u).into()).collect(),
            rule,
        };
        PostEvent::PostPlanned {
            workspace_id: WS,
            chat_ids: vec![CHAT],
            text: "hi".into(),
            parse_mode: None,
            publish_at: now() + TimeDelta::hours(1),
            author: Some(AUTHOR.into()),
            stages: vec![
                stage("editor", &["approver"], &[], Rule::Any),
                stage("legal", &[], &["lea", "leo"], Rule::All),
            ],
            segments: vec![],
            excluded: 0,
        }
    }

    fn approve_as(by: &str, role: &str) -> PostCommand {
        PostCommand::Approve {
            by: by.into(),
            role: Some(role.into()),
        }
    }

    fn given(stage: u32, by: &str) -> PostEvent {
        PostEvent::PostApprovalGiven {
            stage,
            by: by.into(),
        }
    }

    #[tokio::test]
    async fn stages_are_passed_in_order_and_all_means_every_named_user() {
        // Legal may not jump the queue.
        framework()
            .given(vec![staged()])
            .when_async(approve_as("lea", "viewer"))
            .await
            .then_expect_error(DomainError::NotAnApprover {
                stage: "editor".into(),
            });
        framework()
            .given(vec![staged()])
            .when_async(approve_as("ed", "approver"))
            .await
            .then_expect_events(vec![given(0, "ed")]);
        framework()
            .given(vec![staged(), given(0, "ed")])
            .when_async(approve_as("ann", "approver"))
            .await
            .then_expect_error(DomainError::NotAnApprover {
                stage: "legal".into(),
            });
        framework()
            .given(vec![staged(), given(0, "ed")])
            .when_async(approve_as("lea", "viewer"))
            .await
            .then_expect_events(vec![given(1, "lea")]);
        framework()
            .given(vec![staged(), given(0, "ed"), given(1, "lea")])
            .when_async(approve_as("lea", "viewer"))
            .await
            .then_expect_error(DomainError::AlreadyApprovedByYou);
        framework()
            .given(vec![staged(), given(0, "ed"), given(1, "lea")])
            .when_async(approve_as("leo", "viewer"))
            .await
            .then_expect_events(vec![given(1, "leo"), PostEvent::PostApproved]);
    }

    fn edited(by: &str) -> PostEvent {
        PostEvent::PostEdited {
            text: "better".into(),
            parse_mode: None,
            publish_at: now() + TimeDelta::hours(2),
            by: by.into(),
        }
    }

    #[tokio::test]
    async fn an_edit_voids_the_approvals_and_its_editor_may_not_approve() {
        let edit = |by: &str, publish_at| PostCommand::Edit {
            by: by.into(),
            text: "better".into(),
            sealed: SealedText::default(),
            parse_mode: None,
            publish_at,
            now: now(),
        };
        framework()
            .given(vec![staged(), given(0, "ed")])
            .when_async(edit("ann", now() + TimeDelta::hours(2)))
            .await
            .then_expect_events(vec![edited("ann")]);
        let mut post = Post::default();
        for event in [staged(), given(0, "ed"), edited("ann")] {
            post.apply(event);
        }
        assert_eq!(post.state, PostState::Planned);
        assert!(post.approvals.is_empty());
        assert_eq!(post.current_stage(&post.required_stages()), Some(0));
        framework()
            .given(vec![staged(), edited("ed")])
            .when_async(approve_as("ed", "approver"))
            .await
            .then_expect_error(DomainError::OwnPost);
        // An approved post may be edited until shortly before it goes out.
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(edit("ann", now() + TimeDelta::hours(2)))
            .await
            .then_expect_error(DomainError::TooLateToEdit);
        framework()
            .given(vec![staged(), PostEvent::PostApproved])
            .when_async(edit("ann", now() + TimeDelta::hours(2)))
            .await
            .then_expect_events(vec![edited("ann")]);
        framework()
            .given(vec![planned(), PostEvent::PostCancelled])
            .when_async(edit("ann", now() + TimeDelta::hours(2)))
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "cancelled",
                action: "edited",
            });
    }

    #[tokio::test]
    async fn a_rejection_sends_the_post_back_to_draft_until_it_is_edited() {
        let rejected = PostEvent::PostRejected {
            reason: "typo".into(),
        };
        framework()
            .given(vec![planned(), rejected.clone()])
            .when_async(approve())
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "draft",
                action: "approved",
            });
        framework()
            .given(vec![staged(), rejected.clone(), edited("ann")])
            .when_async(approve_as("ed", "approver"))
            .await
            .then_expect_events(vec![given(0, "ed")]);
        framework()
            .given(vec![planned(), rejected])
            .when_async(PostCommand::Comment {
                by: "ed".into(),
                text: "  fix the typo  ".into(),
                sealed: SealedText::default(),
            })
            .await
            .then_expect_events(vec![PostEvent::PostCommented {
                text: "fix the typo".into(),
                by: "ed".into(),
            }]);
    }

    #[tokio::test]
    async fn a_post_not_approved_in_time_expires_and_an_edit_resubmits_it() {
        let late = now() + PUBLISH_AT_GRACE;
        framework()
            .given(vec![planned()])
            .when_async(PostCommand::Expire { now: late })
            .await
            .then_expect_events(vec![PostEvent::PostExpired]);
        // Within the grace it may still be approved and go out.
        framework()
            .given(vec![planned()])
            .when_async(PostCommand::Expire {
                now: late - TimeDelta::seconds(1),
            })
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "planned",
                action: "expired",
            });
        framework()
            .given(vec![planned(), PostEvent::PostApproved])
            .when_async(PostCommand::Expire { now: late })
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "approved",
                action: "expired",
            });
        framework()
            .given(vec![planned(), PostEvent::PostExpired])
            .when_async(approve())
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "expired",
                action: "approved",
            });
        framework()
            .given(vec![planned(), PostEvent::PostExpired])
            .when_async(PostCommand::Edit {
                by: "ann".into(),
                text: "better".into(),
                sealed: SealedText::default(),
                parse_mode: None,
                publish_at: now() + TimeDelta::hours(2),
                now: now(),
            })
            .await
            .then_expect_events(vec![edited("ann")]);
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
        // During delivery a cancel stops the rest; once nothing is left it has nothing to do.
        let post = approved_post();
        let mut counts = DeliveryCounts::default();
        counts.add(DeliveryState::Pending, 1);
        assert_eq!(post.check_unsettled(&counts, "cancelled"), Ok(()));
        let counts = DeliveryCounts {
            delivered: 1,
            ..DeliveryCounts::default()
        };
        assert_eq!(
            post.check_unsettled(&counts, "cancelled"),
            Err(DomainError::InvalidTransition {
                state: "delivered",
                action: "cancelled",
            })
        );
    }

    fn approved_post() -> Post {
        let mut post = Post::default();
        post.apply(planned());
        post.apply(PostEvent::PostApproved);
        post
    }

    #[tokio::test]
    async fn a_post_to_many_chats_lists_them_over_several_events() {
        let mut directory = FakeDirectory::default();
        let chats: Vec<Id> = (0..2500).map(|i| Id::from_u128(1000 + i)).collect();
        for chat in &chats {
            directory.chats.insert(
                *chat,
                ChatInfo {
                    workspace_id: WS,
                    bot_id: Id::from_u128(2),
                    telegram_chat_id: 5,
                    opted_out: false,
                    has_lawful_basis: true,
                    blocked: None,
                    approval_policy: None,
                },
            );
        }
        let events = TestFramework::<Post>::with(directory.into_services())
            .given_no_previous_events()
            .when_async(plan(chats.clone(), "hi", now()))
            .await
            .inspect_result()
            .unwrap();
        let sizes: Vec<(String, usize)> = events
            .iter()
            .map(|e| match e {
                PostEvent::PostPlanned { chat_ids, .. }
                | PostEvent::PostTargetsAdded { chat_ids } => (e.event_type(), chat_ids.len()),
                other => (other.event_type(), 0),
            })
            .collect();
        assert_eq!(
            sizes,
            [
                ("PostPlanned".to_owned(), 1000),
                ("PostTargetsAdded".to_owned(), 1000),
                ("PostTargetsAdded".to_owned(), 500)
            ]
        );
        let mut post = Post::default();
        events.into_iter().for_each(|e| post.apply(e));
        assert_eq!(post.chat_ids, chats, "every chat, in planning order");

        let too_many: Vec<Id> = (0..=MAX_CHATS_PER_POST as u128)
            .map(|i| Id::from_u128(10_000_000 + i))
            .collect();
        expect_plan_error(
            plan(too_many, "hi", now()),
            DomainError::TooManyChats {
                count: MAX_CHATS_PER_POST + 1,
                max: MAX_CHATS_PER_POST,
            },
        )
        .await;
    }

    #[test]
    fn outcomes_recorded_on_posts_of_old_are_still_read() {
        let mut post = approved_post();
        post.apply(PostEvent::DeliveryUnknown {
            chat_id: CHAT,
            detail: "timeout".into(),
        });
        post.apply(PostEvent::DeliveryResolved {
            chat_id: CHAT,
            resolution: Resolution::Resend,
            automatic: true,
        });
        post.apply(PostEvent::PostDelivered {
            chat_id: CHAT,
            telegram_message_id: 3,
        });
        let status = &post.recorded_outcomes[&CHAT];
        assert_eq!(
            (
                status.status,
                status.telegram_message_id,
                status.auto_resends
            ),
            (DeliveryState::Delivered, Some(3), 1)
        );
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
            .given(vec![planned(), PostEvent::PostCancelled])
            .when_async(PostCommand::Reschedule {
                publish_at: later,
                now: now(),
            })
            .await
            .then_expect_error(DomainError::InvalidTransition {
                state: "cancelled",
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
