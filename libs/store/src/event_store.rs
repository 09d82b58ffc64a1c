use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateError, EventStore as _};
use domain::{Bot, Chat, Delivery, DomainError, Id, Post, Segment, Services, Workspace};
use postgres_es::{PostgresCqrs, PostgresEventRepository, postgres_cqrs};
use sqlx::PgPool;
use sqlx::postgres::PgDatabaseError;

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
    /// The Telegram chat is already connected to the bot, as chat `existing_chat_id`. Enforced
    /// by the database (identity tables filled in the event's transaction): nothing was
    /// committed.
    #[error(
        "Telegram chat {telegram_chat_id} is already connected to this bot as chat {existing_chat_id}"
    )]
    ChatAlreadyConnected {
        telegram_chat_id: i64,
        existing_chat_id: Id,
    },
    /// The Telegram bot is already registered, as bot `existing_bot_id` of `workspace_id`
    /// (possibly another tenant's: the message does not name them). Nothing was committed.
    #[error("Telegram bot {telegram_bot_id} is already registered")]
    BotAlreadyRegistered {
        telegram_bot_id: i64,
        existing_bot_id: Id,
        workspace_id: Id,
    },
}

impl From<AggregateError<DomainError>> for CommandError {
    fn from(error: AggregateError<DomainError>) -> Self {
        match error {
            AggregateError::UserError(e) => Self::Domain(e),
            AggregateError::AggregateConflict => Self::Conflict,
            AggregateError::UnexpectedError(e) => {
                identity_taken(&*e).unwrap_or_else(|| Self::Store(e.to_string()))
            }
            other => Self::Store(other.to_string()),
        }
    }
}

/// SQLSTATEs raised by the identity trigger (migration 0009) when an event would claim a
/// Telegram identity that another aggregate holds.
const CHAT_TAKEN: &str = "HI001";
const BOT_TAKEN: &str = "HI002";

/// Recognises the identity trigger's refusal in the error that aborted an event's insert.
fn identity_taken(error: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<CommandError> {
    identity_taken_in(error.downcast_ref::<sqlx::Error>()?)
}

fn identity_taken_in(error: &sqlx::Error) -> Option<CommandError> {
    let database = error.as_database_error()?;
    let code = database.code()?;
    if code != CHAT_TAKEN && code != BOT_TAKEN {
        return None;
    }
    let detail = database
        .try_downcast_ref::<PgDatabaseError>()
        .and_then(|e| e.detail())
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
    let Some(detail) = detail else {
        tracing::error!(%code, "identity refusal without its detail");
        return None;
    };
    let id = |key: &str| detail[key].as_str().and_then(|s| s.parse::<Id>().ok());
    let number = |key: &str| detail[key].as_i64();
    let taken = if code == CHAT_TAKEN {
        CommandError::ChatAlreadyConnected {
            telegram_chat_id: number("telegram_chat_id")?,
            existing_chat_id: id("existing_id")?,
        }
    } else {
        CommandError::BotAlreadyRegistered {
            telegram_bot_id: number("telegram_bot_id")?,
            existing_bot_id: id("existing_id")?,
            workspace_id: id("workspace_id")?,
        }
    };
    Some(taken)
}

/// The command side: one cqrs-es framework per aggregate over one PostgreSQL pool.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    workspaces: Arc<PostgresCqrs<Workspace>>,
    bots: Arc<PostgresCqrs<Bot>>,
    chats: Arc<PostgresCqrs<Chat>>,
    posts: Arc<PostgresCqrs<Post>>,
    deliveries: Arc<PostgresCqrs<Delivery>>,
    segments: Arc<PostgresCqrs<Segment>>,
    services: Services,
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
handles!(Delivery, deliveries);
handles!(Segment, segments);

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        let services = Services::new(Arc::new(StoreDirectory::new(pool.clone())));
        Self {
            workspaces: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            bots: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            chats: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            posts: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            deliveries: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            segments: Arc::new(postgres_cqrs(pool.clone(), vec![], services.clone())),
            services,
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

    /// Refuses, as the identity trigger would, to connect Telegram chat `telegram_chat_id` to
    /// `bot_id` of `workspace_id` when a chat holds it already (as its current or a former id).
    /// A friendly early answer only: the trigger is what makes it race-free.
    pub async fn ensure_chat_unclaimed(
        &self,
        workspace_id: Id,
        bot_id: Id,
        telegram_chat_id: i64,
    ) -> Result<(), CommandError> {
        let existing: Option<Id> = sqlx::query_scalar(
            "SELECT chat_id FROM telegram_chat_identities
              WHERE bot_id = $1 AND telegram_chat_id = $2 AND workspace_id = $3",
        )
        .bind(bot_id)
        .bind(telegram_chat_id)
        .bind(workspace_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| CommandError::Store(e.to_string()))?;
        match existing {
            Some(existing_chat_id) => Err(CommandError::ChatAlreadyConnected {
                telegram_chat_id,
                existing_chat_id,
            }),
            None => Ok(()),
        }
    }

    /// Refuses, as the identity trigger would, to register Telegram bot `telegram_bot_id` when
    /// a bot of any workspace holds it already.
    pub async fn ensure_bot_unclaimed(&self, telegram_bot_id: i64) -> Result<(), CommandError> {
        let existing: Option<(Id, Id)> = sqlx::query_as(
            "SELECT bot_id, workspace_id FROM telegram_bot_identities WHERE telegram_bot_id = $1",
        )
        .bind(telegram_bot_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| CommandError::Store(e.to_string()))?;
        match existing {
            Some((existing_bot_id, workspace_id)) => Err(CommandError::BotAlreadyRegistered {
                telegram_bot_id,
                existing_bot_id,
                workspace_id,
            }),
            None => Ok(()),
        }
    }

    /// Executes one command on each of many aggregates inside the caller's transaction (so
    /// the caller commits its own rows with the events, and many commands cost one commit):
    /// all are loaded in one read, each handles its command, and their events are inserted in
    /// one statement with the next sequences. A concurrent writer to one of them makes the
    /// insert fail (the sequence is taken) and with it the transaction: the caller retries.
    /// Returns, per command, how many events it wrote or why the domain refused it.
    pub async fn execute_on<A>(
        &self,
        conn: &mut sqlx::PgConnection,
        commands: Vec<(Id, Id, A::Command)>,
        context: &RequestContext,
    ) -> Result<Vec<Result<usize, DomainError>>, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = Services>,
    {
        let ids: Vec<Id> = commands.iter().map(|(_, id, _)| *id).collect();
        let mut loaded = load_many_on::<A>(conn, &ids).await?;
        let mut rows = EventRows::default();
        let mut results = Vec::with_capacity(commands.len());
        for (workspace_id, id, command) in commands {
            let (aggregate, sequence) = loaded.entry(id).or_default();
            let sink = cqrs_es::event_sink::EventSink::default();
            match aggregate.handle(command, &self.services, &sink).await {
                Ok(()) => {
                    let events = sink.collect().await;
                    let written = events.len();
                    let metadata = serde_json::to_value(context.metadata(workspace_id))
                        .map_err(|e| CommandError::Store(e.to_string()))?;
                    for event in events {
                        *sequence += 1;
                        aggregate.apply(event.clone());
                        rows.push::<A>(id, *sequence, &event, metadata.clone())?;
                    }
                    results.push(Ok(written));
                }
                Err(error) => results.push(Err(error)),
            }
        }
        rows.insert::<A>(conn).await?;
        Ok(results)
    }

    /// The current state of an aggregate (its `Default` when it has no events).
    pub async fn load<A: Aggregate>(&self, id: Id) -> Result<A, CommandError> {
        load_aggregate(&self.pool, id).await
    }
}

/// Loads an aggregate by replaying its events, on the caller's connection (inside its
/// transaction, with whatever locks it holds, and without drawing on any pool).
pub async fn load_on<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    id: Id,
) -> Result<A, CommandError> {
    let mut aggregate = A::default();
    apply_on(conn, id, &mut aggregate, 1..=i64::MAX, &[]).await?;
    Ok(aggregate)
}

/// Applies to `aggregate` its events with sequences in `sequences`, leaving out the types in
/// `skip`, on the caller's connection: for a reader that keeps an aggregate's immutable first
/// events and only reads what came since, or whose questions some events never change (a send
/// needs a post's state, not its long list of targets).
pub async fn apply_on<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    id: Id,
    aggregate: &mut A,
    sequences: std::ops::RangeInclusive<i64>,
    skip: &[&str],
) -> Result<(), CommandError> {
    let payloads: Vec<String> = sqlx::query_scalar(
        "SELECT payload::text FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence BETWEEN $3 AND $4
            AND NOT (event_type = ANY($5))
          ORDER BY sequence",
    )
    .bind(A::TYPE)
    .bind(id.to_string())
    .bind(sequences.start())
    .bind(sequences.end())
    .bind(skip)
    .fetch_all(conn)
    .await
    .map_err(|e| CommandError::Store(e.to_string()))?;
    for payload in payloads {
        aggregate.apply(decode_event::<A>(payload)?);
    }
    Ok(())
}

/// [`apply_on`] for many aggregates in one read: applies to each of `aggregates` its events
/// with a sequence in `sequences` (`1..=i64::MAX` for all), leaving out the types in `skip`.
pub async fn apply_many_on<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    aggregates: &mut HashMap<Id, A>,
    sequences: std::ops::RangeInclusive<i64>,
    skip: &[&str],
) -> Result<(), CommandError> {
    if aggregates.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = aggregates.keys().map(ToString::to_string).collect();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, payload::text FROM events
          WHERE aggregate_type = $1 AND aggregate_id = ANY($2) AND sequence BETWEEN $3 AND $4
            AND NOT (event_type = ANY($5))
          ORDER BY aggregate_id, sequence",
    )
    .bind(A::TYPE)
    .bind(&keys)
    .bind(sequences.start())
    .bind(sequences.end())
    .bind(skip)
    .fetch_all(conn)
    .await
    .map_err(|e| CommandError::Store(e.to_string()))?;
    for (id, payload) in rows {
        let id: Id = id.parse().map_err(|_| {
            CommandError::Store(format!("stored aggregate id {id:?} is not a UUID"))
        })?;
        if let Some(aggregate) = aggregates.get_mut(&id) {
            aggregate.apply(decode_event::<A>(payload)?);
        }
    }
    Ok(())
}

/// The current state of each of `ids` that has events, in one read.
pub async fn load_many<A: Aggregate>(
    pool: &PgPool,
    ids: &[Id],
) -> Result<HashMap<Id, A>, CommandError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| CommandError::Store(e.to_string()))?;
    let loaded = load_many_on::<A>(&mut conn, ids).await?;
    Ok(loaded
        .into_iter()
        .map(|(id, (aggregate, _))| (id, aggregate))
        .collect())
}

/// Each of `ids` with events, and its last sequence, read on the caller's connection.
async fn load_many_on<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    ids: &[Id],
) -> Result<HashMap<Id, (A, i64)>, CommandError> {
    let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, payload::text FROM events
          WHERE aggregate_type = $1 AND aggregate_id = ANY($2)
          ORDER BY aggregate_id, sequence",
    )
    .bind(A::TYPE)
    .bind(&keys)
    .fetch_all(conn)
    .await
    .map_err(|e| CommandError::Store(e.to_string()))?;
    let mut aggregates: HashMap<Id, (A, i64)> = HashMap::new();
    for (id, sequence, payload) in rows {
        let id: Id = id.parse().map_err(|_| {
            CommandError::Store(format!("stored aggregate id {id:?} is not a UUID"))
        })?;
        let (aggregate, last) = aggregates.entry(id).or_default();
        aggregate.apply(decode_event::<A>(payload)?);
        *last = sequence;
    }
    Ok(aggregates)
}

/// Events to insert in one statement, as cqrs-es stores them.
#[derive(Default)]
struct EventRows {
    ids: Vec<String>,
    sequences: Vec<i64>,
    types: Vec<String>,
    versions: Vec<String>,
    payloads: Vec<serde_json::Value>,
    metadata: Vec<serde_json::Value>,
}

impl EventRows {
    fn push<A: Aggregate>(
        &mut self,
        id: Id,
        sequence: i64,
        event: &A::Event,
        metadata: serde_json::Value,
    ) -> Result<(), CommandError> {
        use cqrs_es::DomainEvent as _;
        self.ids.push(id.to_string());
        self.sequences.push(sequence);
        self.types.push(event.event_type());
        self.versions.push(event.event_version());
        self.payloads
            .push(serde_json::to_value(event).map_err(|e| CommandError::Store(e.to_string()))?);
        self.metadata.push(metadata);
        Ok(())
    }

    async fn insert<A: Aggregate>(self, conn: &mut sqlx::PgConnection) -> Result<(), CommandError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT $1, t.id, t.sequence, t.event_type, t.event_version, t.payload::json, t.metadata::json
               FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::jsonb[])
                    AS t(id, sequence, event_type, event_version, payload, metadata)
              ORDER BY t.id, t.sequence",
        )
        .bind(A::TYPE)
        .bind(&self.ids)
        .bind(&self.sequences)
        .bind(&self.types)
        .bind(&self.versions)
        .bind(&self.payloads)
        .bind(&self.metadata)
        .execute(conn)
        .await
        .map_err(|error| {
            if let Some(taken) = identity_taken_in(&error) {
                return taken;
            }
            match error.as_database_error().and_then(|e| e.code()) {
                Some(code) if code == "23505" => CommandError::Conflict,
                _ => CommandError::Store(error.to_string()),
            }
        })?;
        Ok(())
    }
}

/// Decodes a stored payload straight from its JSON text (no intermediate value: a post's plan
/// reads 100,000 chats' events).
fn decode_event<A: Aggregate>(payload: String) -> Result<A::Event, CommandError> {
    serde_json::from_str(&payload)
        .map_err(|e| CommandError::Store(format!("stored event does not decode: {e}")))
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
