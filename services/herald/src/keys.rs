//! Rotation of the secret key that encrypts bot tokens.
//!
//! Events are immutable, so a token is never rewritten where it was first recorded: rotation
//! records each bot's token again, encrypted under the current key (`BotTokenReencrypted`),
//! and the bot reads its newest. The procedure, safe while Herald runs:
//! 1. make a new key current and keep the old one as a previous key (`herald keys new` for
//!    the key file; or set `HERALD_SECRET_KEY` and `HERALD_PREVIOUS_SECRET_KEYS`), and
//!    restart Herald's processes, which then read under both keys and write under the new one;
//! 2. `herald keys rotate` re-encrypts every token still under another key (resumable: a
//!    token already under the current key is left alone);
//! 3. when `herald keys status` shows every token under the current key, drop the previous
//!    key and restart. Values under the dropped key, in old events, can no longer be read.

use std::collections::BTreeMap;

use anyhow::Context;
use domain::{Bot, BotCommand, Id};
use platform::TokenCipher;
use store::RequestContext;

use crate::Herald;

/// Who re-encrypts, in event metadata.
pub const ACTOR: &str = "service:keys";

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    pub bots: u64,
    pub reencrypted: u64,
    /// Bots whose token no configured key can read (their ids): add the key they were
    /// encrypted under as a previous key, then rotate again.
    pub unreadable: Vec<Id>,
    /// Per-subject keys (of contacts' personal data) re-encrypted, and those no key can read.
    pub subject_keys: u64,
    pub unreadable_subjects: Vec<Id>,
}

async fn bots(herald: &Herald) -> anyhow::Result<Vec<Id>> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT aggregate_id FROM events WHERE aggregate_type = 'Bot' AND sequence = 1 ORDER BY aggregate_id",
    )
    .fetch_all(&herald.pool)
    .await?;
    ids.iter()
        .map(|id| {
            id.parse()
                .context("a bot id in the event store is not a UUID")
        })
        .collect()
}

/// How many bots' tokens, and how many per-subject keys, are under each key (by key
/// fingerprint; `unnamed` for values of the first form, which name no key).
pub async fn status(herald: &Herald) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for id in bots(herald).await? {
        let bot: Bot = herald.store.load(id).await?;
        let key = TokenCipher::key_id_of(&bot.encrypted_token).unwrap_or("unnamed");
        counts.entry(key.to_owned()).or_default().0 += 1;
    }
    for (key, subjects) in store::subjects::key_counts(&herald.pool).await? {
        counts.entry(key).or_default().1 += subjects;
    }
    Ok(counts)
}

/// Re-encrypts under the current key every bot token that is under another one.
pub async fn rotate(
    herald: &Herald,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> anyhow::Result<Rotation> {
    let ids = bots(herald).await?;
    let current = herald.cipher.current_key_id().to_owned();
    let mut rotation = Rotation {
        bots: ids.len() as u64,
        ..Rotation::default()
    };
    for (done, id) in ids.into_iter().enumerate() {
        progress(done as u64, rotation.bots);
        let bot: Bot = herald.store.load(id).await?;
        let Some(workspace_id) = bot.workspace_id else {
            continue;
        };
        if TokenCipher::key_id_of(&bot.encrypted_token) == Some(current.as_str()) {
            continue;
        }
        let Ok(token) = herald.cipher.decrypt(&bot.encrypted_token) else {
            rotation.unreadable.push(id);
            continue;
        };
        let command = BotCommand::Reencrypt {
            encrypted_token: herald.cipher.encrypt(&token),
        };
        herald
            .store
            .execute::<Bot>(workspace_id, id, command, &RequestContext::new(ACTOR))
            .await
            .with_context(|| format!("re-encrypting the token of bot {id}"))?;
        rotation.reencrypted += 1;
    }
    progress(rotation.bots, rotation.bots);
    let (rekeyed, unreadable) = store::subjects::rekey(&herald.pool, &herald.cipher).await?;
    rotation.subject_keys = rekeyed;
    rotation.unreadable_subjects = unreadable;
    Ok(rotation)
}

/// Makes a fresh key current in `<data dir>/secret.key` and appends the one it replaces to
/// `secret.key.previous` (step 1 for a key file). Returns the new key's fingerprint.
pub fn new_key_file(config: &platform::Config) -> anyhow::Result<String> {
    anyhow::ensure!(
        config.secret_key.is_none(),
        "HERALD_SECRET_KEY is set, so the key file is not in use: set HERALD_SECRET_KEY to a new key (herald keygen) and HERALD_PREVIOUS_SECRET_KEYS to the old one, and restart"
    );
    let path = config.data_dir.join("secret.key");
    let old = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run `herald up` once to create it)",
            path.display()
        )
    })?;
    TokenCipher::from_base64_key(&platform::Secret::new(old.clone()))
        .with_context(|| format!("{} is not a valid key", path.display()))?;
    let previous = config.data_dir.join("secret.key.previous");
    crate::private_file(&previous, &format!("{}\n", old.trim()), true)?;
    let key = TokenCipher::generate_key();
    let fresh = config.data_dir.join("secret.key.new");
    let _ = std::fs::remove_file(&fresh);
    crate::write_private(&fresh, key.expose())?;
    std::fs::rename(&fresh, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(TokenCipher::from_base64_key(&key)?
        .current_key_id()
        .to_owned())
}
