//! Bot tokens are encrypted at rest with AES-256-GCM under the secret key
//! (`HERALD_SECRET_KEY`). The stored form is `v2:<key id>:<base64(nonce || ciphertext)>`, where
//! the key id is a short fingerprint of the key, so that during a rotation a value is decrypted
//! with the key it was encrypted under (`HERALD_PREVIOUS_SECRET_KEYS` keeps the old ones until
//! `herald keys rotate` has re-encrypted everything). Values of the first form,
//! `v1:<base64(...)>`, carry no id and are tried with every key.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::Secret;

const PREFIX_V1: &str = "v1:";
const PREFIX_V2: &str = "v2:";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "the secret key must be 32 bytes encoded in base64 (generate one with `herald keygen`)"
    )]
    BadKey,
    #[error("the encrypted value is malformed or was encrypted under another key")]
    Undecryptable,
}

/// One key and its fingerprint.
#[derive(Clone)]
struct KeyEntry {
    id: String,
    cipher: Aes256Gcm,
}

impl KeyEntry {
    fn from_base64(key: &Secret<String>) -> Result<Self, CryptoError> {
        let bytes = B64
            .decode(key.expose().trim())
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        // 32 bits of the key's hash: enough to pick among a few keys, useless for guessing it.
        let digest = Sha256::digest(&bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            id,
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }
}

/// Encrypts bot tokens under the current key and decrypts them under any key it holds. Cheap
/// to clone.
#[derive(Clone)]
pub struct TokenCipher {
    current: KeyEntry,
    previous: Vec<KeyEntry>,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher([redacted])")
    }
}

impl TokenCipher {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64_key(key: &Secret<String>) -> Result<Self, CryptoError> {
        Ok(Self {
            current: KeyEntry::from_base64(key)?,
            previous: Vec::new(),
        })
    }

    /// Also decrypts values encrypted under `keys` (the keys a rotation replaces).
    pub fn with_previous_keys(mut self, keys: &[Secret<String>]) -> Result<Self, CryptoError> {
        for key in keys {
            let entry = KeyEntry::from_base64(key)?;
            if entry.id != self.current.id && !self.previous.iter().any(|p| p.id == entry.id) {
                self.previous.push(entry);
            }
        }
        Ok(self)
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> Secret<String> {
        Secret::new(B64.encode(Aes256Gcm::generate_key(OsRng)))
    }

    /// The fingerprint of the key new values are encrypted under.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// The fingerprint a stored value names (`None` for the first form, which names none).
    pub fn key_id_of(stored: &str) -> Option<&str> {
        stored
            .strip_prefix(PREFIX_V2)?
            .split_once(':')
            .map(|(id, _)| id)
    }

    pub fn encrypt(&self, plaintext: &Secret<String>) -> String {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let ciphertext = self
            .current
            .cipher
            .encrypt(&nonce, plaintext.expose().as_bytes())
            .expect("AES-GCM encryption of a short token cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("{PREFIX_V2}{}:{}", self.current.id, B64.encode(blob))
    }

    pub fn decrypt(&self, stored: &str) -> Result<Secret<String>, CryptoError> {
        let keys = std::iter::once(&self.current).chain(&self.previous);
        let (candidates, blob): (Vec<&KeyEntry>, &str) =
            if let Some(rest) = stored.strip_prefix(PREFIX_V2) {
                let (id, blob) = rest.split_once(':').ok_or(CryptoError::Undecryptable)?;
                (keys.filter(|k| k.id == id).collect(), blob)
            } else if let Some(blob) = stored.strip_prefix(PREFIX_V1) {
                (keys.collect(), blob)
            } else {
                return Err(CryptoError::Undecryptable);
            };
        let blob = B64
            .decode(blob)
            .ok()
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(CryptoError::Undecryptable)?;
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plaintext = candidates
            .iter()
            .find_map(|k| k.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).ok())
            .ok_or(CryptoError::Undecryptable)?;
        String::from_utf8(plaintext)
            .map(Secret::new)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

/// A random URL-safe token, e.g. for a generated admin token.
pub fn random_token() -> Secret<String> {
    let key = Aes256Gcm::generate_key(OsRng);
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_the_plaintext() {
        let cipher = TokenCipher::from_base64_key(&TokenCipher::generate_key()).unwrap();
        let token = Secret::new("123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw".to_string());
        let stored = cipher.encrypt(&token);
        assert!(stored.starts_with(&format!("v2:{}:", cipher.current_key_id())));
        assert!(!stored.contains("AAHdq"));
        assert_ne!(stored, cipher.encrypt(&token), "a fresh nonce every time");
        assert_eq!(cipher.decrypt(&stored).unwrap(), token);
    }

    #[test]
    fn another_key_or_tampering_is_refused() {
        let a = TokenCipher::from_base64_key(&TokenCipher::generate_key()).unwrap();
        let b = TokenCipher::from_base64_key(&TokenCipher::generate_key()).unwrap();
        let stored = a.encrypt(&Secret::new("1:x".to_string()));
        assert!(b.decrypt(&stored).is_err());
        assert!(a.decrypt("v1:AAAA").is_err());
        assert!(
            a.decrypt(&format!("v2:{}:AAAA", a.current_key_id()))
                .is_err()
        );
        assert!(a.decrypt("plain").is_err());
        assert!(TokenCipher::from_base64_key(&Secret::new("short".into())).is_err());
    }

    #[test]
    fn a_rotated_cipher_reads_values_under_its_previous_keys_and_writes_under_the_new_one() {
        let old_key = TokenCipher::generate_key();
        let new_key = TokenCipher::generate_key();
        let old = TokenCipher::from_base64_key(&old_key).unwrap();
        let token = Secret::new("1:secret".to_string());
        let under_old = old.encrypt(&token);
        let rotated = TokenCipher::from_base64_key(&new_key)
            .unwrap()
            .with_previous_keys(std::slice::from_ref(&old_key))
            .unwrap();
        assert_eq!(rotated.decrypt(&under_old).unwrap(), token);
        let under_new = rotated.encrypt(&token);
        assert_eq!(
            TokenCipher::key_id_of(&under_new),
            Some(rotated.current_key_id())
        );
        assert_ne!(rotated.current_key_id(), old.current_key_id());
        assert!(
            old.decrypt(&under_new).is_err(),
            "the old key cannot read the new value"
        );
        // Without the previous key, the old value is unreadable.
        let new_only = TokenCipher::from_base64_key(&new_key).unwrap();
        assert!(new_only.decrypt(&under_old).is_err());
    }

    #[test]
    fn values_of_the_first_form_are_tried_with_every_key() {
        let old_key = TokenCipher::generate_key();
        let old = TokenCipher::from_base64_key(&old_key).unwrap();
        let token = Secret::new("1:secret".to_string());
        // The first form: nonce and ciphertext without a key id.
        let v2 = old.encrypt(&token);
        let blob = v2.rsplit_once(':').unwrap().1;
        let v1 = format!("v1:{blob}");
        assert_eq!(TokenCipher::key_id_of(&v1), None);
        let rotated = TokenCipher::from_base64_key(&TokenCipher::generate_key())
            .unwrap()
            .with_previous_keys(&[old_key])
            .unwrap();
        assert_eq!(rotated.decrypt(&v1).unwrap(), token);
    }
}
