//! Bot tokens are encrypted at rest with AES-256-GCM under the workspace secret key
//! (`HERALD_SECRET_KEY`). The stored form is `v1:<base64(nonce || ciphertext)>`; the version
//! prefix leaves room for key rotation.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::Secret;

const PREFIX: &str = "v1:";
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

/// Encrypts and decrypts bot tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher([redacted])")
    }
}

impl TokenCipher {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64_key(key: &Secret<String>) -> Result<Self, CryptoError> {
        let bytes = B64
            .decode(key.expose().trim())
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(Self {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
        })
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> Secret<String> {
        Secret::new(B64.encode(Aes256Gcm::generate_key(OsRng)))
    }

    pub fn encrypt(&self, plaintext: &Secret<String>) -> String {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.expose().as_bytes())
            .expect("AES-GCM encryption of a short token cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", B64.encode(blob))
    }

    pub fn decrypt(&self, stored: &str) -> Result<Secret<String>, CryptoError> {
        let blob = stored
            .strip_prefix(PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .filter(|b| b.len() > NONCE_LEN)
            .ok_or(CryptoError::Undecryptable)?;
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Undecryptable)?;
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
        assert!(stored.starts_with("v1:"));
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
        assert!(a.decrypt("plain").is_err());
        assert!(TokenCipher::from_base64_key(&Secret::new("short".into())).is_err());
    }
}
