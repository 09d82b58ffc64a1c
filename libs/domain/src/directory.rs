//! What rules need to know about other aggregates, behind a trait so the domain stays pure.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Id;

/// A boxed future, so [`Directory`] can be used as a trait object.
pub type DirectoryFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// What a rule needs to know about a chat. The store keeps it as JSON in `chat_directory`: a
/// change of its fields comes with a migration that empties that table (`migrate` then refills
/// it from the chats' events).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatInfo {
    pub workspace_id: Id,
    pub bot_id: Id,
    pub telegram_chat_id: i64,
    pub opted_out: bool,
    /// Why Telegram refused this chat for good, if it did.
    pub blocked: Option<String>,
    /// False for a contact (private chat) without a lawful basis: it may not be targeted.
    pub has_lawful_basis: bool,
    /// Who must approve posts to it (`None`: the standard review).
    pub approval_policy: Option<crate::approval::ApprovalPolicy>,
}

/// What a rule needs to know about a bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotInfo {
    pub workspace_id: Id,
}

/// Read access to the current state of chats and bots. Implementations must be strongly
/// consistent with the event store (read the aggregates, not an eventually updated projection),
/// so a chat connected a moment ago is known.
pub trait Directory: Send + Sync {
    fn chat(&self, chat_id: Id) -> DirectoryFuture<'_, Option<ChatInfo>>;
    /// The chats among `chat_ids` that exist, in one read (a post may target 100,000).
    fn chats<'a>(&'a self, chat_ids: &'a [Id]) -> DirectoryFuture<'a, HashMap<Id, ChatInfo>>;
    fn bot(&self, bot_id: Id) -> DirectoryFuture<'_, Option<BotInfo>>;
}

/// The services every aggregate gets: cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub directory: Arc<dyn Directory>,
}

impl Services {
    pub fn new(directory: Arc<dyn Directory>) -> Self {
        Self { directory }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// An in-memory directory for given/when/then tests.
    #[derive(Default)]
    pub struct FakeDirectory {
        pub chats: HashMap<Id, ChatInfo>,
        pub bots: HashMap<Id, BotInfo>,
    }

    impl Directory for FakeDirectory {
        fn chat(&self, chat_id: Id) -> DirectoryFuture<'_, Option<ChatInfo>> {
            let found = self.chats.get(&chat_id).cloned();
            Box::pin(async move { Ok(found) })
        }
        fn chats<'a>(&'a self, chat_ids: &'a [Id]) -> DirectoryFuture<'a, HashMap<Id, ChatInfo>> {
            let found = chat_ids
                .iter()
                .filter_map(|id| self.chats.get(id).map(|c| (*id, c.clone())))
                .collect();
            Box::pin(async move { Ok(found) })
        }
        fn bot(&self, bot_id: Id) -> DirectoryFuture<'_, Option<BotInfo>> {
            let found = self.bots.get(&bot_id).cloned();
            Box::pin(async move { Ok(found) })
        }
    }

    impl FakeDirectory {
        pub fn into_services(self) -> Services {
            Services::new(Arc::new(self))
        }
    }
}
