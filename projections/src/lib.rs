//! Read models built from the JetStream event stream: the content [`Calendar`], the
//! [`PostList`] and the [`Audit`] log, plus the [`runner`] that feeds any [`Projection`] exactly once.
//!
//! Architecture invariant: a projection's rows and its stream checkpoint change in one
//! PostgreSQL transaction, so a crash can neither skip nor double-apply an event (the relay puts
//! each event at exactly one stream position, decision 0006). Every projection can be dropped and rebuilt from the stream ([`runner::rebuild`]).

pub mod audit;
pub mod calendar;
pub mod chats;
pub mod posts;
pub mod runner;

use std::collections::HashSet;
use std::future::Future;
use std::hash::Hash;

use anyhow::Context as _;

pub use audit::Audit;
pub use calendar::Calendar;
pub use chats::ChatList;
pub use posts::PostList;
use schemas::v1::EventEnvelope;
use sqlx::PgConnection;

/// The post an outcome is about: named by the event (a `Delivery` aggregate's), or, for
/// outcomes published before events named it, the post whose subject carried it.
/// Characters of a post's text its list rows keep.
pub const PREVIEW_CHARS: usize = 80;

/// The start of a post's text, for lists. A sealed text is kept whole: a reader can open it
/// (and shows it erased once its key is gone); a cut one could not be opened.
pub fn preview(text: &str) -> String {
    if text.starts_with(domain::consent::SEALED_PREFIX) {
        return text.to_owned();
    }
    text.chars().take(PREVIEW_CHARS).collect()
}

pub fn outcome_post_id<'a>(envelope: &'a EventEnvelope, named: &'a str) -> &'a str {
    if named.is_empty() {
        &envelope.aggregate_id
    } else {
        named
    }
}

/// Chat or post ids as events carry them.
pub(crate) fn parse_ids(ids: &[String]) -> anyhow::Result<Vec<uuid::Uuid>> {
    Ok(ids.iter().map(|id| id.parse()).collect::<Result<_, _>>()?)
}

/// The rows a run of consecutive events gives a projection, to be written with one statement.
/// A row whose key is already in the batch has to wait for the next one: one statement cannot
/// apply two changes to the same row in their order.
pub struct Batch<K, T> {
    keys: HashSet<K>,
    rows: Vec<T>,
}

impl<K: Eq + Hash, T> Default for Batch<K, T> {
    fn default() -> Self {
        Self {
            keys: HashSet::new(),
            rows: Vec::new(),
        }
    }
}

impl<K: Eq + Hash, T> Batch<K, T> {
    /// Whether a row for `key` can join this batch.
    pub fn accepts(&self, key: &K) -> bool {
        !self.keys.contains(key)
    }

    pub fn push(&mut self, key: K, row: T) {
        self.keys.insert(key);
        self.rows.push(row);
    }

    /// The rows so far, in event order, leaving the batch empty.
    pub fn take(&mut self) -> Vec<T> {
        self.keys.clear();
        std::mem::take(&mut self.rows)
    }
}

/// A read model fed from the event stream.
pub trait Projection: Send + Sync + 'static {
    /// Stable name: the checkpoint key and the durable consumer's name.
    fn name(&self) -> &'static str;

    /// Applies one event inside the runner's transaction. `position` is the event's JetStream
    /// stream sequence. Must only touch this projection's tables.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        position: u64,
        event: &'a EventEnvelope,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a;

    /// Applies a batch of events, in stream order, inside the runner's transaction. By default
    /// one by one; a projection that sees many events of one kind (delivery outcomes) writes a
    /// run of them with one statement, leaving the same rows as one by one would.
    fn apply_all<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [(u64, EventEnvelope)],
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        async move {
            for (position, event) in events {
                self.apply(conn, *position, event)
                    .await
                    .with_context(|| format!("applying {}", event.event_id))?;
            }
            Ok(())
        }
    }

    /// Deletes every row of this projection (before a rebuild).
    fn reset<'a>(
        &'a self,
        conn: &'a mut PgConnection,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a;
}

#[cfg(test)]
mod tests {
    use super::Batch;

    #[test]
    fn a_row_already_in_the_batch_waits_for_the_next_one() {
        let mut batch = Batch::default();
        batch.push("a", 1);
        batch.push("b", 2);
        assert!(!batch.accepts(&"a"), "a second change to row a");
        assert!(batch.accepts(&"c"));
        assert_eq!(batch.take(), vec![1, 2], "in event order");
        assert!(batch.accepts(&"a"), "an empty batch takes any row");
        assert!(batch.take().is_empty());
    }
}
