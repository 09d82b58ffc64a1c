//! A delivery worker that dies hands its chats to the others within 3 s (its leases lapse after
//! the worker timeout, 2 s, and the survivors renew every fifth of it), and what it had on the
//! wire is flagged in doubt, never resent.

use std::time::{Duration, Instant};

use system_tests::{TestApp, spawn_app};

/// Partitions with a live lease, per owner.
async fn owners(app: &TestApp) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT owner, count(*) FROM delivery_partitions
          WHERE owner IS NOT NULL AND lease_until > now() GROUP BY owner ORDER BY owner",
    )
    .fetch_all(&app.herald.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_partitions_are_taken_over_within_three_seconds() {
    let mut app = spawn_app().await;
    let survivor = app.delivery_worker();
    let shared = app
        .eventually(
            "both workers to share the partitions",
            Duration::from_secs(20),
            || async {
                let owners = owners(&app).await;
                (owners.len() == 2 && owners.iter().map(|(_, n)| n).sum::<i64>() == 32)
                    .then_some(owners)
            },
        )
        .await;

    app.delivery.take().unwrap().kill().await;
    let died = Instant::now();
    let taken_over = app
        .eventually(
            "the survivor to own every partition",
            Duration::from_secs(20),
            || async {
                let owners = owners(&app).await;
                (owners.len() == 1 && owners[0].1 == 32).then_some(died.elapsed())
            },
        )
        .await;
    eprintln!("partitions before: {shared:?}; all taken over {taken_over:?} after the kill");
    assert!(
        taken_over <= Duration::from_secs(3),
        "the survivor took {taken_over:?} to take over"
    );
    survivor.stop().await;
    app.cleanup().await;
}
