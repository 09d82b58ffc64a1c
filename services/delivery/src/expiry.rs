//! Posts that were not fully approved in time never go out late: once their publish time is
//! more than [`domain::PUBLISH_AT_GRACE`] past, each is expired (`PostExpired`, in the audit
//! and on NATS for whoever watches), and the schedule drops its rows.
//!
//! Every worker runs this; the post's aggregate decides, so two workers expiring one post (or
//! an approval that commits first) leave exactly one outcome.

use std::time::Duration;

use chrono::Utc;
use domain::{DomainError, Post, PostCommand};
use platform::Shutdown;
use sqlx::PgPool;
use store::{CommandError, EventStore, RequestContext};

/// Who expires posts, in event metadata.
pub const ACTOR: &str = "service:expiry";
const TICK: Duration = Duration::from_secs(1);
const BATCH: i64 = 100;

pub async fn run(pool: PgPool, store: EventStore, shutdown: Shutdown) -> anyhow::Result<()> {
    loop {
        if let Err(error) = expire_overdue(&pool, &store).await {
            tracing::warn!(%error, "expiring overdue posts failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Expires every post overdue now; returns how many it expired.
pub async fn expire_overdue(pool: &PgPool, store: &EventStore) -> anyhow::Result<usize> {
    let now = Utc::now();
    let mut conn = pool.acquire().await?;
    let overdue = crate::queue::schedule::overdue_unapproved(
        &mut conn,
        now - domain::PUBLISH_AT_GRACE,
        BATCH,
    )
    .await?;
    drop(conn);
    let mut expired = 0;
    for (post_id, workspace_id) in overdue {
        let command = PostCommand::Expire { now };
        let context = RequestContext::new(ACTOR);
        match store
            .execute::<Post>(workspace_id, post_id, command, &context)
            .await
        {
            Ok(_) => {
                expired += 1;
                tracing::warn!(%post_id, "a post was not approved in time and expired; it will not go out");
            }
            // Approved, cancelled or expired meanwhile: the schedule catches up from its event.
            Err(CommandError::Domain(DomainError::InvalidTransition { .. })) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(expired)
}
