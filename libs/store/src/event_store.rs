use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::Aggregate;
use domain::{DomainError, Id, Services};
use sqlx::PgPool;
use sqlx::postgres::PgDatabaseError;

use crate::directory::{self, DirectoryEntry, Entry};
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

/// SQLSTATEs raised by the identity trigger (migration 0009) when an event would claim a
/// Telegram identity that another aggregate holds.
const CHAT_TAKEN: &str = "HI001";
const BOT_TAKEN: &str = "HI002";

/// Recognises the identity trigger's refusal in the error that aborted an event's insert.
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

/// The command side: every command of every aggregate is decided here and its events written
/// in one statement (see [`EventStore::execute`]).
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    services: Services,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        let services = Services::new(Arc::new(StoreDirectory::new(pool.clone())));
        Self { pool, services }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Executes `command` on aggregate `id` of `workspace_id`. Returns, once the resulting events
    /// are committed (and therefore in the outbox), the aggregate as they left it.
    ///
    /// The aggregate is loaded on a pooled connection that is released before it decides: a
    /// command asks the directory about other aggregates (a plan to 100,000 chats reads them
    /// all), and holding a connection meanwhile could starve the pool those reads draw on. The
    /// events are then inserted with the next sequences in one statement (with the directory's
    /// row of the aggregate, if it keeps one, in the same transaction); when another command
    /// on the same aggregate committed first, the sequence is taken and the command is decided
    /// again on the new state.
    pub async fn execute<A>(
        &self,
        workspace_id: Id,
        id: Id,
        command: A::Command,
        context: &RequestContext,
    ) -> Result<A, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = Services> + DirectoryEntry,
        A::Command: Clone,
    {
        let metadata = metadata_json(context, workspace_id)?;
        for _ in 0..CONFLICT_RETRIES {
            let (mut aggregate, mut sequence) = {
                let mut conn = self.pool.acquire().await.map_err(store_error)?;
                load_with_sequence_on::<A>(&mut conn, id).await?
            };
            let mut rows = EventRows::default();
            self.decide(
                &mut aggregate,
                &mut sequence,
                id,
                command.clone(),
                &metadata,
                &mut rows,
            )
            .await??;
            let entries: Vec<Entry> = if rows.is_empty() {
                Vec::new()
            } else {
                Entry::of(id, sequence, &aggregate).into_iter().collect()
            };
            match self.commit::<A>(rows, &entries).await {
                Ok(()) => return Ok(aggregate),
                Err(CommandError::Conflict) => continue,
                Err(error) => return Err(error),
            }
        }
        Err(CommandError::Conflict)
    }

    /// Inserts `rows`, and writes `entries` to the directory in the same transaction.
    async fn commit<A: Aggregate>(
        &self,
        rows: EventRows,
        entries: &[Entry],
    ) -> Result<(), CommandError> {
        if rows.is_empty() {
            return Ok(());
        }
        if entries.is_empty() {
            let mut conn = self.pool.acquire().await.map_err(store_error)?;
            return rows.insert::<A>(&mut conn).await;
        }
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        rows.insert::<A>(&mut tx).await?;
        directory::keep(&mut tx, entries).await?;
        tx.commit().await.map_err(store_error)
    }

    /// Lets `aggregate` (at `sequence`) handle `command`; applies the events it decided and
    /// adds them to `rows` with the next sequences. Returns how many it decided, or the
    /// domain's refusal (nothing added).
    async fn decide<A>(
        &self,
        aggregate: &mut A,
        sequence: &mut i64,
        id: Id,
        command: A::Command,
        metadata: &str,
        rows: &mut EventRows,
    ) -> Result<Result<usize, DomainError>, CommandError>
    where
        A: Aggregate<Error = DomainError, Services = Services>,
    {
        let sink = cqrs_es::event_sink::EventSink::default();
        if let Err(error) = aggregate.handle(command, &self.services, &sink).await {
            return Ok(Err(error));
        }
        let events = sink.collect().await;
        let decided = events.len();
        for event in events {
            *sequence += 1;
            rows.push::<A>(id, *sequence, &event, metadata)?;
            aggregate.apply(event);
        }
        Ok(Ok(decided))
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
        A: Aggregate<Error = DomainError, Services = Services> + DirectoryEntry,
    {
        let ids: Vec<Id> = commands.iter().map(|(_, id, _)| *id).collect();
        let mut loaded = load_many_on::<A>(conn, &ids).await?;
        let mut rows = EventRows::default();
        let mut results = Vec::with_capacity(commands.len());
        let mut changed = Vec::new();
        for (workspace_id, id, command) in commands {
            let (aggregate, sequence) = loaded.entry(id).or_default();
            let metadata = metadata_json(context, workspace_id)?;
            let result = self
                .decide(aggregate, sequence, id, command, &metadata, &mut rows)
                .await?;
            if matches!(result, Ok(written) if written > 0) {
                changed.push(id);
            }
            results.push(result);
        }
        changed.sort_unstable();
        changed.dedup();
        let entries: Vec<Entry> = changed
            .into_iter()
            .filter_map(|id| {
                let (aggregate, sequence) = &loaded[&id];
                Entry::of(id, *sequence, aggregate)
            })
            .collect();
        rows.insert::<A>(conn).await?;
        directory::keep(conn, &entries).await?;
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
    Ok(load_with_sequence_on::<A>(conn, id).await?.0)
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
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut conn = pool.acquire().await.map_err(store_error)?;
    let loaded = load_many_on::<A>(&mut conn, ids).await?;
    Ok(loaded
        .into_iter()
        .map(|(id, (aggregate, _))| (id, aggregate))
        .collect())
}

/// Each of `ids` with events, and its last sequence, read on the caller's connection. The
/// rows come unsorted (sorting 100,000 chats' events spilled to disk) and are put in order per
/// aggregate here.
async fn load_many_on<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    ids: &[Id],
) -> Result<HashMap<Id, (A, i64)>, CommandError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, payload::text FROM events
          WHERE aggregate_type = $1 AND aggregate_id = ANY($2)",
    )
    .bind(A::TYPE)
    .bind(&keys)
    .fetch_all(conn)
    .await
    .map_err(store_error)?;
    let mut streams: HashMap<String, Vec<(i64, String)>> = HashMap::with_capacity(ids.len());
    for (id, sequence, payload) in rows {
        streams.entry(id).or_default().push((sequence, payload));
    }
    let mut aggregates = HashMap::with_capacity(streams.len());
    for (id, mut events) in streams {
        let id: Id = id.parse().map_err(|_| {
            CommandError::Store(format!("stored aggregate id {id:?} is not a UUID"))
        })?;
        events.sort_unstable_by_key(|(sequence, _)| *sequence);
        let mut aggregate = A::default();
        let mut last = 0;
        for (sequence, payload) in events {
            aggregate.apply(decode_event::<A>(payload)?);
            last = sequence;
        }
        aggregates.insert(id, (aggregate, last));
    }
    Ok(aggregates)
}

/// One aggregate and its last sequence (0 when it has no events), read on the caller's
/// connection.
async fn load_with_sequence_on<A: Aggregate>(
    conn: &mut sqlx::PgConnection,
    id: Id,
) -> Result<(A, i64), CommandError> {
    Ok(load_many_on::<A>(conn, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default())
}

/// Events to insert in one statement, as cqrs-es stores them.
#[derive(Default)]
struct EventRows {
    ids: Vec<String>,
    sequences: Vec<i64>,
    types: Vec<String>,
    versions: Vec<String>,
    payloads: Vec<String>,
    metadata: Vec<String>,
}

impl EventRows {
    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn push<A: Aggregate>(
        &mut self,
        id: Id,
        sequence: i64,
        event: &A::Event,
        metadata: &str,
    ) -> Result<(), CommandError> {
        use cqrs_es::DomainEvent as _;
        self.ids.push(id.to_string());
        self.sequences.push(sequence);
        self.types.push(event.event_type());
        self.versions.push(event.event_version());
        self.payloads
            .push(serde_json::to_string(event).map_err(|e| CommandError::Store(e.to_string()))?);
        self.metadata.push(metadata.to_owned());
        Ok(())
    }

    async fn insert<A: Aggregate>(self, conn: &mut sqlx::PgConnection) -> Result<(), CommandError> {
        if self.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             SELECT $1, t.id, t.sequence, t.event_type, t.event_version, t.payload::json, t.metadata::json
               FROM UNNEST($2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
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

/// Loads an aggregate by replaying its events, on a pooled connection.
pub(crate) async fn load_aggregate<A: Aggregate>(pool: &PgPool, id: Id) -> Result<A, CommandError> {
    let mut conn = pool.acquire().await.map_err(store_error)?;
    Ok(load_with_sequence_on::<A>(&mut conn, id).await?.0)
}

/// The metadata stored with every event of a command, as the JSON text its column holds.
fn metadata_json(context: &RequestContext, workspace_id: Id) -> Result<String, CommandError> {
    serde_json::to_string(&context.metadata(workspace_id))
        .map_err(|e| CommandError::Store(e.to_string()))
}

pub(crate) fn store_error(error: sqlx::Error) -> CommandError {
    CommandError::Store(error.to_string())
}
