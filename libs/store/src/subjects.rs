//! Personal data that can be erased without rewriting history. A value about a person (a
//! contact's name) is sealed, before it enters an event, under a key of that person's own
//! (`subject_keys`, the key itself encrypted under Herald's secret key). Readers open sealed
//! values where they show them; erasing the person destroys the key, so the events keep
//! their sealed bytes and every reading, projection and rebuild shows the value as erased.
//!
//! A sealed value names its subject: `sealed:<subject id>:<ciphertext>`, so opening needs no
//! context, and [`open_json`] can open every sealed string of a document (an audit entry).

use std::collections::HashMap;

use platform::{Secret, TokenCipher};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use domain::consent::SEALED_PREFIX;

/// What a reader shows for a value whose subject was erased.
pub const ERASED: &str = "[erased]";
/// What a reader shows when none of its configured keys opens the subject's key (a key
/// removed too early after a rotation): the data is there, this process cannot read it.
pub const UNREADABLE: &str = "[sealed]";

/// Seals `value` under the key of `subject` (made on first use).
pub async fn seal(
    conn: &mut PgConnection,
    cipher: &TokenCipher,
    workspace_id: Uuid,
    subject: Uuid,
    value: &str,
) -> anyhow::Result<String> {
    let stored: Option<Option<String>> =
        sqlx::query_scalar("SELECT key FROM subject_keys WHERE subject_id = $1")
            .bind(subject)
            .fetch_optional(&mut *conn)
            .await?;
    let key = match stored {
        Some(Some(encrypted)) => cipher.decrypt(&encrypted)?,
        Some(None) => {
            anyhow::bail!("subject {subject} was erased; nothing more is stored about it")
        }
        None => {
            let key = TokenCipher::generate_key();
            sqlx::query(
                "INSERT INTO subject_keys (subject_id, workspace_id, key) VALUES ($1, $2, $3)",
            )
            .bind(subject)
            .bind(workspace_id)
            .bind(cipher.encrypt(&key))
            .execute(&mut *conn)
            .await?;
            key
        }
    };
    let sealed = TokenCipher::from_base64_key(&key)?.encrypt(&Secret::new(value.to_owned()));
    Ok(format!("{SEALED_PREFIX}{subject}:{sealed}"))
}

/// The subject a sealed value belongs to, if `value` is sealed.
pub fn subject_of(value: &str) -> Option<Uuid> {
    let rest = value.strip_prefix(SEALED_PREFIX)?;
    rest.split_once(':')?.0.parse().ok()
}

/// Opens sealed values (anything else is returned as it is): [`ERASED`] for an erased subject,
/// and for one whose key this pool cannot see (another workspace's).
pub struct Opener {
    keys: HashMap<Uuid, Key>,
}

enum Key {
    Open(Box<TokenCipher>),
    Erased,
    Unreadable,
}

impl Opener {
    /// Loads the keys of every subject among `values`.
    pub async fn for_values<'a>(
        pool: &PgPool,
        cipher: &TokenCipher,
        values: impl IntoIterator<Item = &'a str>,
    ) -> anyhow::Result<Self> {
        let subjects: Vec<Uuid> = values.into_iter().filter_map(subject_of).collect();
        let mut keys: HashMap<Uuid, Key> = subjects.iter().map(|s| (*s, Key::Erased)).collect();
        if !subjects.is_empty() {
            let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as(
                "SELECT subject_id, key FROM subject_keys WHERE subject_id = ANY($1)",
            )
            .bind(&subjects)
            .fetch_all(pool)
            .await?;
            for (subject, key) in rows {
                let opened = match key {
                    None => Key::Erased,
                    Some(encrypted) => match cipher
                        .decrypt(&encrypted)
                        .ok()
                        .and_then(|k| TokenCipher::from_base64_key(&k).ok())
                    {
                        Some(key) => Key::Open(Box::new(key)),
                        None => {
                            tracing::warn!(%subject, "no configured key opens a contact's key: add the previous secret key (runbooks/rotate-the-secret-key.md)");
                            Key::Unreadable
                        }
                    },
                };
                keys.insert(subject, opened);
            }
        }
        Ok(Self { keys })
    }

    pub fn open(&self, value: &str) -> String {
        let Some(subject) = subject_of(value) else {
            return value.to_owned();
        };
        let sealed = value
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .map_or("", |(_, sealed)| sealed);
        match self.keys.get(&subject) {
            Some(Key::Open(key)) => key
                .decrypt(sealed)
                .map_or_else(|_| UNREADABLE.to_owned(), |plain| plain.expose().clone()),
            Some(Key::Unreadable) => UNREADABLE.to_owned(),
            Some(Key::Erased) | None => ERASED.to_owned(),
        }
    }

    /// Opens every sealed string inside `value`, in place.
    pub fn open_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) if s.starts_with(SEALED_PREFIX) => *s = self.open(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.open_json(v)),
            serde_json::Value::Object(fields) => {
                fields.values_mut().for_each(|v| self.open_json(v))
            }
            _ => {}
        }
    }
}

/// Every sealed string inside `value` (to load their keys at once).
pub fn sealed_strings(value: &serde_json::Value, found: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) if s.starts_with(SEALED_PREFIX) => found.push(s.clone()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| sealed_strings(v, found)),
        serde_json::Value::Object(fields) => fields.values().for_each(|v| sealed_strings(v, found)),
        _ => {}
    }
}

/// How many subject keys are under each of Herald's keys (by fingerprint).
pub async fn key_counts(pool: &PgPool) -> sqlx::Result<HashMap<String, u64>> {
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT key FROM subject_keys WHERE key IS NOT NULL")
            .fetch_all(pool)
            .await?;
    let mut counts = HashMap::new();
    for key in keys {
        let id = TokenCipher::key_id_of(&key).unwrap_or("unnamed").to_owned();
        *counts.entry(id).or_default() += 1;
    }
    Ok(counts)
}

/// Re-encrypts under the current key every subject key under another one (a key rotation);
/// returns how many were re-encrypted and the subjects whose key no configured key can read.
pub async fn rekey(pool: &PgPool, cipher: &TokenCipher) -> anyhow::Result<(u64, Vec<Uuid>)> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT subject_id, key FROM subject_keys WHERE key IS NOT NULL")
            .fetch_all(pool)
            .await?;
    let current = cipher.current_key_id();
    let (mut rekeyed, mut unreadable) = (0, Vec::new());
    for (subject, key) in rows {
        if TokenCipher::key_id_of(&key) == Some(current) {
            continue;
        }
        let Ok(plain) = cipher.decrypt(&key) else {
            unreadable.push(subject);
            continue;
        };
        sqlx::query("UPDATE subject_keys SET key = $2 WHERE subject_id = $1 AND key = $3")
            .bind(subject)
            .bind(cipher.encrypt(&plain))
            .bind(&key)
            .execute(pool)
            .await?;
        rekeyed += 1;
    }
    Ok((rekeyed, unreadable))
}

/// Destroys the subject's key: what was sealed under it can no longer be read by anyone.
/// Returns whether there was a key to destroy.
pub async fn erase(pool: &PgPool, subject: Uuid) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE subject_keys SET key = NULL, erased_at = now() WHERE subject_id = $1 AND key IS NOT NULL",
    )
    .bind(subject)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}
