//! Passwords and tokens: how they are made, hashed and checked.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Prefix of every token Herald issues, so that a leaked one is recognisable (secret scanners).
const TOKEN_PREFIX: &str = "hrd_";

/// A new random token (256 bits, URL-safe) and the hash under which it is kept.
pub fn new_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = token_hash(&token);
    (token, hash)
}

/// Whether `token` has the form of a token Herald issued.
pub fn is_issued_form(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The lookup key of a presented token.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// An argon2id PHC string of `password`, with a fresh salt and the crate's default cost.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash to verify against when the login does not exist, so that an unknown login takes as
/// long as a wrong password and does not reveal which logins exist.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not a password anyone has").expect("argon2 hashes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password(
            "correct horse battery",
            "not a phc string"
        ));
    }

    #[test]
    fn tokens_are_random_and_kept_only_as_hashes() {
        let (a, hash_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(token_hash(&a), hash_a);
        assert!(is_issued_form(&a) && !is_issued_form("wrong") && !is_issued_form(&a[1..]));
        assert!(
            !hash_a
                .windows(a.len().min(8))
                .any(|w| a.as_bytes().starts_with(w))
        );
    }
}
