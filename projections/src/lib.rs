//! Read models built from the JetStream event stream: the content [`Calendar`], the
//! [`PostList`] and the [`Audit`] log, plus the [`runner`] that feeds any [`Projection`] exactly once.
//!
//! Architecture invariant: a projection's rows, its stream checkpoint and its per-aggregate
//! positions change in one PostgreSQL transaction, so a crash can neither skip nor double-apply
//! an event. Every projection can be dropped and rebuilt from the stream ([`runner::rebuild`]).

pub mod audit;
pub mod calendar;
pub mod chats;
pub mod posts;
pub mod runner;

use std::future::Future;

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

    /// Deletes every row of this projection (before a rebuild).
    fn reset<'a>(
        &'a self,
        conn: &'a mut PgConnection,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a;
}
