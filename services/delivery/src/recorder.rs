//! Outcomes are recorded in groups: one transaction writes the event of each delivery in the
//! group (its [`domain::Delivery`] aggregate), ends this worker's claim on it and books the
//! answer of its request (the bot slot's end, the attempt log), so a busy
//! worker pays one commit for many messages and an outcome and its claim's end are atomic.
//!
//! A send task hands its outcome over and waits until it is committed: nothing is
//! acknowledged before it is durable. The group is whatever is waiting when the previous one
//! committed, so a quiet worker writes each outcome at once.

use domain::{Delivery, DeliveryCommand, DeliveryOutcome, delivery_id};
use sqlx::PgPool;
use store::{CommandError, EventStore, RequestContext};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Duration;

use crate::attempt::ACTOR;
use crate::queue::budget::{self, Answer};
use crate::queue::claims::{self, Due};

/// Outcomes written in one transaction at most.
const GROUP: usize = 256;

struct Outcome {
    due: Due,
    outcome: DeliveryOutcome,
    /// The answer of the request this outcome came from, booked in the same transaction.
    answer: Option<Answer>,
    /// Whether the claim was still this worker's when the outcome was committed.
    committed: oneshot::Sender<bool>,
}

/// The handle send tasks record through.
pub struct Recorder {
    outcomes: mpsc::UnboundedSender<Outcome>,
}

impl Recorder {
    pub fn start(pool: PgPool, store: EventStore, worker: String) -> Self {
        let (outcomes, mut waiting) = mpsc::unbounded_channel::<Outcome>();
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut group = vec![first];
                while group.len() < GROUP {
                    match waiting.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                let mine = write_until_done(&pool, &store, &worker, &group).await;
                for (outcome, mine) in group.into_iter().zip(mine) {
                    let _ = outcome.committed.send(mine);
                }
            }
        });
        Self { outcomes }
    }

    /// Records `outcome` of a delivery this worker claimed, books its request's `answer` and
    /// ends the claim. Returns false
    /// when the claim had been taken over (the delivery was flagged in doubt by another worker
    /// after this one went silent; the first outcome stays).
    pub async fn record(
        &self,
        due: &Due,
        outcome: DeliveryOutcome,
        answer: Option<Answer>,
    ) -> anyhow::Result<bool> {
        let (committed, done) = oneshot::channel();
        self.outcomes
            .send(Outcome {
                due: due.clone(),
                outcome,
                answer,
                committed,
            })
            .map_err(|_| anyhow::anyhow!("the outcome recorder stopped"))?;
        Ok(done.await?)
    }
}

/// Writes the group, retrying while the database is unavailable or another writer took a
/// sequence first (the retry sees its event: the first outcome wins).
async fn write_until_done(
    pool: &PgPool,
    store: &EventStore,
    worker: &str,
    group: &[Outcome],
) -> Vec<bool> {
    let mut wait = Duration::from_millis(100);
    loop {
        match write(pool, store, worker, group).await {
            Ok(mine) => return mine,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    outcomes = group.len(),
                    "recording delivery outcomes failed, retrying"
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn write(
    pool: &PgPool,
    store: &EventStore,
    worker: &str,
    group: &[Outcome],
) -> anyhow::Result<Vec<bool>> {
    let commands = group
        .iter()
        .map(|o| {
            let due = &o.due;
            let command = DeliveryCommand::Record {
                post_id: due.post_id,
                chat_id: due.chat_id,
                outcome: o.outcome.clone(),
            };
            (
                due.workspace_id,
                delivery_id(due.post_id, due.chat_id),
                command,
            )
        })
        .collect();
    let mut tx = pool.begin().await?;
    let results = match store
        .execute_on::<Delivery>(&mut tx, commands, &RequestContext::new(ACTOR))
        .await
    {
        Ok(results) => results,
        Err(CommandError::Conflict) => anyhow::bail!("another writer recorded one of them first"),
        Err(error) => return Err(error.into()),
    };
    for (outcome, result) in group.iter().zip(&results) {
        if let Err(error) = result {
            // Recording never refuses (a second outcome is a no-op); say so if it ever does.
            tracing::warn!(post_id = %outcome.due.post_id, code = error.code(), "delivery outcome refused");
        }
    }
    let deliveries: Vec<_> = group
        .iter()
        .map(|o| (o.due.post_id, o.due.chat_id))
        .collect();
    let mine = claims::release_done_on(&mut tx, worker, &deliveries).await?;
    let answers: Vec<Answer> = group.iter().filter_map(|o| o.answer.clone()).collect();
    budget::book_answers_on(&mut tx, &answers).await?;
    tx.commit().await?;
    Ok(mine)
}
