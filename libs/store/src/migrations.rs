use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// The schema's history, oldest first. Never edit an applied migration: add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "event store",
        include_str!("../migrations/0001_event_store.sql"),
    ),
    (
        2,
        "projections",
        include_str!("../migrations/0002_projections.sql"),
    ),
    (
        3,
        "delivery",
        include_str!("../migrations/0003_delivery.sql"),
    ),
    (
        4,
        "delivery safety",
        include_str!("../migrations/0004_delivery_safety.sql"),
    ),
    (
        5,
        "delivery partitions",
        include_str!("../migrations/0005_delivery_partitions.sql"),
    ),
    (
        6,
        "attempt worker",
        include_str!("../migrations/0006_attempt_worker.sql"),
    ),
    (
        7,
        "event log",
        include_str!("../migrations/0007_event_log.sql"),
    ),
    (
        8,
        "delivery owners",
        include_str!("../migrations/0008_delivery_owners.sql"),
    ),
    (
        9,
        "telegram identities",
        include_str!("../migrations/0009_telegram_identities.sql"),
    ),
    (
        10,
        "delivery aggregates",
        include_str!("../migrations/0010_delivery_aggregates.sql"),
    ),
    (
        11,
        "critical path",
        include_str!("../migrations/0011_critical_path.sql"),
    ),
    (
        12,
        "outbox by event",
        include_str!("../migrations/0012_outbox_by_event.sql"),
    ),
    (
        13,
        "next due",
        include_str!("../migrations/0013_next_due.sql"),
    ),
    (
        14,
        "identity",
        include_str!("../migrations/0014_identity.sql"),
    ),
    (
        15,
        "row level security",
        include_str!("../migrations/0015_row_level_security.sql"),
    ),
    (
        16,
        "post history",
        include_str!("../migrations/0016_post_history.sql"),
    ),
    (17, "expiry", include_str!("../migrations/0017_expiry.sql")),
    (
        18,
        "post list",
        include_str!("../migrations/0018_post_list.sql"),
    ),
    (
        19,
        "bot updates",
        include_str!("../migrations/0019_bot_updates.sql"),
    ),
    (
        20,
        "chat list",
        include_str!("../migrations/0020_chat_list.sql"),
    ),
    (
        21,
        "subject keys",
        include_str!("../migrations/0021_subject_keys.sql"),
    ),
    (
        22,
        "workspace index",
        include_str!("../migrations/0022_workspace_index.sql"),
    ),
    (
        23,
        "chat directory",
        include_str!("../migrations/0023_chat_directory.sql"),
    ),
    (
        24,
        "no projection positions",
        include_str!("../migrations/0024_no_projection_positions.sql"),
    ),
];

/// Migrations compiled into the binary, so a deployed `herald` needs no files beside it.
#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Brings the database schema up to date. Safe to call from several processes at once
/// (sqlx takes an advisory lock).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let migrator = Migrator::new(Embedded)
        .await
        .context("loading the embedded migrations")?;
    migrator
        .run(pool)
        .await
        .context("applying database migrations")?;
    crate::directory::add_missing_entries(pool)
        .await
        .context("adding the chat directory's missing rows")?;
    Ok(())
}
