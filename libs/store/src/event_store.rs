use std::sync::Arc;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore as _};
use domain::{Bot, Chat, DomainError, Id, Post, Services, Workspace};
use postgres_es::{PostgresCqrs, PostgresEventRepository, postgres_cqrs};
use sqlx::PgPool;

use crate::{RequestContext, StoreDirectory};

/// How often a command is retried when another command on the same aggregate committed first.
const CONFLICT_RETRIES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The domain refused the command; the message is meant for the caller.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Other commands kept changing the aggregate; the caller may retry.
    #[error("the target was changed concurrently, please retry")]
    Conflict,
    /// The store failed; nothing was committed.
    #[error("event store failure: {0}")]
    Store(String),
}

impl From<AggregateError<DomainError>> for CommandError {
    fn from(error: AggregateError<DomainError>) -> Self {
        match error {
            AggregateError::UserError(e) => Self::Domain(e),
            AggregateError::AggregateConflict => Self::Conflict,
            other => Self::Store(other.to_string()),
        }
    }
}

/// The command side: one cqrs-es framework per aggregate over one PostgreSQL pool.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    workspaces: Arc<PostgresCqrs<Workspace>>,
    bots: Arc<PostgresCqrs<Bot>>,
    chats: Arc<PostgresCqrs<Chat>>,
    posts: Arc<PostgresCqrs<Post>>,
}

/// Gives generic code the framework of one aggregate type.
pub trait Handles<A: Aggregate> {
    fn framework(&self) -> &PostgresCqrs<A>;
}

macro_rules! handles {
    ($aggregate:ty, $field:ident) => {
        impl Handles<$aggregate> for EventStore {
            fn framework(&self) -> &PostgresCqrs<$aggregate> {
                &self.$field
            }
        }
    };
}
handles!(Workspace, workspaces);
handles!(Bot, bots);
handles!(Chat, chats);
handles!(Post, posts);

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        let services = Services::new(Arc::new(StoreDirectory::new(pool.clone())));
        Self {
            workspaces: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            bots: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            chats: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            posts: Arc::new(postgres_cqrs(pool.clone(), vec![], services)),
            pool,
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Executes `command` on aggregate `id` of `workspace_id`. Returns once the resulting events
    /// are committed (and therefore in the outbox).
    pub async fn execute<A>(
        &self,
        workspace_id: Id,
        id: Id,
        command: A::Command,
        context: &RequestContext,
    ) -> Result<(), CommandError>
    where
        A: Aggregate<Error = DomainError>,
        A::Command: Clone,
        Self: Handles<A>,
    {
        let id = id.to_string();
        for _ in 0..CONFLICT_RETRIES {
            let result = self
                .framework()
                .execute_with_metadata(&id, command.clone(), context.metadata(workspace_id))
                .await;
            match result {
                Err(AggregateError::AggregateConflict) => continue,
                other => return other.map_err(CommandError::from),
            }
        }
        Err(CommandError::Conflict)
    }

    /// The current state of an aggregate (its `Default` when it has no events).
    pub async fn load<A: Aggregate>(&self, id: Id) -> Result<A, CommandError> {
        load_aggregate(&self.pool, id).await
    }
}

/// Loads an aggregate by replaying its events.
pub(crate) async fn load_aggregate<A: Aggregate>(pool: &PgPool, id: Id) -> Result<A, CommandError> {
    let store: PersistedEventStore<PostgresEventRepository, A> =
        PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone()));
    let context = store
        .load_aggregate(&id.to_string())
        .await
        .map_err(|e| CommandError::Store(e.to_string()))?;
    Ok(context.aggregate)
}
