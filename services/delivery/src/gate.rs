//! The gate every send passes just before its request, for many sends at once.
//!
//! From the final check until the request has gone out, a send holds shared advisory locks on
//! its post, its chat and its bot. Every event on one of them takes the exclusive lock when it
//! is written (a trigger on `events`) and keeps it to its commit. So a command acknowledged
//! before the final check (an opt-out, a cancel, a pause...) is seen by it, and one that commits
//! later was acknowledged after the request left. The locks are held until the answer or
//! [`GATE_HOLD`], whichever comes first, so a command waits at most about that long.
//!
//! Sends arriving together pass together: one transaction on one connection locks the keys of
//! the whole group (in one order, so groups never deadlock each other), reads its posts, chats,
//! bots, leases and hourly counts in five statements (and one more for the first events of
//! the posts this worker has not seen yet), and stays open until every send of the group was
//! answered (or [`GATE_HOLD`] passed). A group is whatever waits when a gate connection is
//! free, so a quiet worker passes each send at once and a busy one pays a transaction per
//! group rather than per message.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use domain::audience::{AudienceRules, Sent};
use domain::{Bot, Chat, Id, Segment, Workspace};
use futures::future::join_all;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot};

use crate::decide::{Fresh, TextState};
use crate::queue::budget;
use crate::queue::claims::Due;
use crate::shared::Shared;

/// How long the gate stays closed behind a request that has not been answered yet.
pub const GATE_HOLD: Duration = Duration::from_millis(250);
/// Sends passing in one group at most.
const GROUP: usize = 256;

/// What a request needs, when it may go.
pub struct Content {
    pub bot: teloxide::Bot,
    pub telegram_chat_id: i64,
    pub text: String,
    pub parse_mode: Option<domain::ParseMode>,
}

/// A send let through the gate: what was read for it, under the group's locks.
pub struct Pass {
    pub fresh: Fresh,
    /// `None` when the bot cannot send (no client).
    pub content: Option<Content>,
    /// Keeps the group's locks: drop it once the request was answered, or [`GATE_HOLD`] after
    /// it went out, or at once when nothing is sent.
    pub hold: Hold,
}

/// See [`Pass::hold`].
pub struct Hold(#[allow(dead_code)] oneshot::Sender<()>);

struct Entry {
    due: Due,
    shared: Arc<Shared>,
    reply: oneshot::Sender<Result<Pass, String>>,
}

/// The handle send tasks enter the gate through.
pub struct Gate {
    entries: mpsc::UnboundedSender<Entry>,
}

impl Gate {
    /// Starts the gate over `pool`, whose size bounds how many groups are open at once.
    pub fn start(pool: PgPool) -> Self {
        let (entries, mut waiting) = mpsc::unbounded_channel::<Entry>();
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                // A connection first: sends arriving while every one is busy join this group.
                let conn = match pool.acquire().await {
                    Ok(conn) => conn,
                    Err(error) => {
                        let _ = first
                            .reply
                            .send(Err(format!("no gate connection: {error}")));
                        continue;
                    }
                };
                let mut group = vec![first];
                while group.len() < GROUP {
                    match waiting.try_recv() {
                        Ok(next) => group.push(next),
                        Err(_) => break,
                    }
                }
                tokio::spawn(pass_group(conn, group));
            }
        });
        Self { entries }
    }

    /// Waits for `due`'s turn at the gate and returns what was read for it, under the locks.
    pub async fn enter(&self, shared: Arc<Shared>, due: Due) -> anyhow::Result<Pass> {
        let (reply, passed) = oneshot::channel();
        self.entries
            .send(Entry { due, shared, reply })
            .map_err(|_| anyhow::anyhow!("the gate stopped"))?;
        passed
            .await
            .map_err(|_| anyhow::anyhow!("the gate dropped the send"))?
            .map_err(|error| anyhow::anyhow!(error))
    }
}

/// Locks and reads for the whole group, hands each send its pass, and keeps the transaction
/// (and the locks) until every pass is dropped.
async fn pass_group(mut conn: sqlx::pool::PoolConnection<sqlx::Postgres>, group: Vec<Entry>) {
    use sqlx::Connection as _;
    let started = std::time::Instant::now();
    let mut tx = match conn.begin().await {
        Ok(tx) => tx,
        Err(error) => return refuse(group, &error.into()),
    };
    let read = async {
        lock(&mut tx, &group).await?;
        read(&mut tx, &group).await
    }
    .await;
    let passes = match read {
        Ok(passes) => passes,
        // Dropping the transaction rolls it back.
        Err(error) => return refuse(group, &error),
    };
    let read_in = started.elapsed();
    let size = passes.len();
    let mut held = Vec::with_capacity(passes.len());
    for (entry, (fresh, content)) in group.into_iter().zip(passes) {
        let (hold, released) = oneshot::channel();
        held.push(released);
        let _ = entry.reply.send(Ok(Pass {
            fresh,
            content,
            hold: Hold(hold),
        }));
    }
    // Every hold is dropped within GATE_HOLD of its request; the bound only guards against a
    // send task that never lets go.
    let _ = tokio::time::timeout(GATE_HOLD * 4, join_all(held)).await;
    if let Err(error) = tx.commit().await {
        tracing::warn!(%error, "closing a gate group failed");
    }
    tracing::debug!(
        sends = size,
        read_ms = read_in.as_millis() as u64,
        open_ms = started.elapsed().as_millis() as u64,
        "gate group closed"
    );
}

fn refuse(group: Vec<Entry>, error: &anyhow::Error) {
    let error = format!("{error:#}");
    for entry in group {
        let _ = entry.reply.send(Err(error.clone()));
    }
}

/// Shared locks on the group's posts, chats and bots, in one statement and one order.
async fn lock(conn: &mut PgConnection, group: &[Entry]) -> sqlx::Result<()> {
    let mut keys: Vec<String> = group
        .iter()
        .flat_map(|e| [e.due.post_id, e.due.chat_id, e.due.bot_id])
        .collect::<HashSet<Id>>()
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    keys.sort();
    sqlx::query(
        "SELECT count(pg_advisory_xact_lock_shared(hashtextextended(k, 0)))
           FROM (SELECT k FROM UNNEST($1::text[]) AS t(k) ORDER BY k) s",
    )
    .bind(&keys)
    .execute(conn)
    .await?;
    Ok(())
}

/// Each chat's quiet hours and caps (its own, else those of the segment the post reached it
/// through, else its workspace's) and what it was sent in its local day and week, for the
/// chats that have rules.
async fn audience_rules(
    conn: &mut PgConnection,
    group: &[Entry],
    posts: &HashMap<Id, domain::Post>,
    chats: &HashMap<Id, Chat>,
) -> anyhow::Result<HashMap<Id, (AudienceRules, Sent)>> {
    let mut segments: HashMap<Id, Segment> = group
        .iter()
        .filter(|e| {
            chats
                .get(&e.due.chat_id)
                .is_some_and(|c| c.audience_rules.is_none())
        })
        .filter_map(|e| posts.get(&e.due.post_id))
        .flat_map(|p| p.segments.iter().map(|id| (*id, Segment::default())))
        .collect();
    store::apply_many_on(conn, &mut segments, 1..=i64::MAX, &[]).await?;
    let mut workspaces: HashMap<Id, Workspace> = group
        .iter()
        .filter(|e| {
            chats
                .get(&e.due.chat_id)
                .is_some_and(|c| c.audience_rules.is_none())
        })
        .map(|e| (e.due.workspace_id, Workspace::default()))
        .collect();
    store::apply_many_on(conn, &mut workspaces, 1..=i64::MAX, &[]).await?;
    let now = chrono::Utc::now();
    let mut rules = HashMap::new();
    let mut periods = Vec::new();
    for entry in group {
        let chat_id = entry.due.chat_id;
        let chat = chats.get(&chat_id);
        let through_segment = posts.get(&entry.due.post_id).and_then(|post| {
            domain::audience::of_segments(
                post.segments.iter().filter_map(|id| segments.get(id)),
                chat_id,
                chat.map_or(&[][..], |c| c.tags.as_slice()),
            )
        });
        let Some(found) = domain::audience::in_force(
            chat.and_then(|c| c.audience_rules.as_ref()),
            through_segment,
            workspaces
                .get(&entry.due.workspace_id)
                .and_then(|w| w.audience_rules.as_ref()),
        )
        .cloned() else {
            continue;
        };
        if found.max_per_day.is_some() || found.max_per_week.is_some() {
            let (day, week) = found.periods(now);
            periods.push((chat_id, day, week));
        }
        rules.insert(chat_id, found);
    }
    let sent = budget::chats_sent_since(conn, &periods).await?;
    Ok(rules
        .into_iter()
        .map(|(chat_id, rules)| {
            let (today, this_week) = sent.get(&chat_id).copied().unwrap_or((0, 0));
            (chat_id, (rules, Sent { today, this_week }))
        })
        .collect())
}

/// The posts' sealed texts, opened (a workspace that seals post texts, decision 0013); posts
/// whose text is plain are not listed.
async fn open_texts(
    shared: &Shared,
    posts: &HashMap<Id, domain::Post>,
) -> anyhow::Result<HashMap<Id, (String, TextState)>> {
    let sealed: Vec<(Id, &str)> = posts
        .iter()
        .filter(|(_, p)| p.text.starts_with(store::subjects::SEALED_PREFIX))
        .map(|(id, p)| (*id, p.text.as_str()))
        .collect();
    if sealed.is_empty() {
        return Ok(HashMap::new());
    }
    let opener = store::subjects::Opener::for_values(
        &shared.pool,
        &shared.cipher,
        sealed.iter().map(|(_, t)| *t),
    )
    .await?;
    Ok(sealed
        .into_iter()
        .map(|(id, text)| {
            let opened = opener.open(text);
            let state = match opened.as_str() {
                store::subjects::ERASED => TextState::Erased,
                store::subjects::UNREADABLE => TextState::Unreadable,
                _ => TextState::Readable,
            };
            (id, (opened, state))
        })
        .collect())
}

/// The posts, chats, bots, leases and hourly counts of the group, read on the gate's
/// connection (a send at the gate needs no other, so it never waits for a pool that commands
/// queued behind its locks are holding).
async fn read(
    conn: &mut PgConnection,
    group: &[Entry],
) -> anyhow::Result<Vec<(Fresh, Option<Content>)>> {
    let shared = &group[0].shared;
    let posts = shared
        .posts_at_gate(conn, group.iter().map(|e| e.due.post_id).collect())
        .await?;
    let mut chats: HashMap<Id, Chat> = group
        .iter()
        .map(|e| (e.due.chat_id, Chat::default()))
        .collect();
    store::apply_many_on(conn, &mut chats, 1..=i64::MAX, &[]).await?;
    let mut bots: HashMap<Id, Bot> = group
        .iter()
        .map(|e| (e.due.bot_id, Bot::default()))
        .collect();
    store::apply_many_on(conn, &mut bots, 1..=i64::MAX, &[]).await?;
    let partitions: Vec<i16> = group
        .iter()
        .map(|e| crate::partition_of(e.due.chat_id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let leased = crate::leases::owned_now(conn, &partitions, &shared.worker_id).await?;
    let chat_ids: Vec<Id> = chats.keys().copied().collect();
    let sent = budget::chats_sent_last_hour(conn, &chat_ids).await?;
    let audience = audience_rules(conn, group, &posts, &chats).await?;
    let texts = open_texts(shared, &posts).await?;

    let mut passes = Vec::with_capacity(group.len());
    for entry in group {
        let due = &entry.due;
        let (post, chat, bot) = (
            &posts[&due.post_id],
            &chats[&due.chat_id],
            &bots[&due.bot_id],
        );
        let (bot_state, client) = shared.bot_client(due.bot_id, bot).await?;
        let (sent_last_hour, oldest) = sent.get(&due.chat_id).copied().unwrap_or((0, None));
        let fresh = Fresh {
            post_state: post.state,
            publish_at: post.publish_at,
            opted_out: chat.opted_out,
            blocked: chat.blocked.clone(),
            bot: bot_state,
            lease_held: leased.contains(&crate::partition_of(due.chat_id)),
            chat_sent_last_hour: sent_last_hour,
            chat_hourly_cap: chat.effective_hourly_cap(),
            chat_oldest_in_hour: oldest,
            audience: audience.get(&due.chat_id).cloned(),
            text: texts
                .get(&due.post_id)
                .map_or(TextState::Readable, |(_, state)| *state),
        };
        let content = client.map(|client| Content {
            bot: client,
            telegram_chat_id: chat.telegram_chat_id,
            text: texts
                .get(&due.post_id)
                .map_or_else(|| post.text.clone(), |(text, _)| text.clone()),
            parse_mode: post.parse_mode,
        });
        passes.push((fresh, content));
    }
    Ok(passes)
}
