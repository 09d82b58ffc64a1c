//! Who may do what: people and service accounts, their passwords, sessions and API tokens, and
//! their role in each workspace. The API asks [`Directory::authenticate`] who presented a
//! bearer token and [`Principal::may`] whether that one may do an [`Action`] in a workspace;
//! [`access`] holds the permission matrix, the one place those rules live.
//!
//! Secrets never leave this crate in the clear except once, to the person they were made for:
//! passwords are kept as argon2id hashes, tokens as the SHA-256 of 256 random bits.

pub mod access;
mod directory;
mod secrets;

pub use access::{Action, Role, Scope};
pub use directory::{
    Directory, Error, Issued, MAX_FAILED_SIGN_INS, Member, NewUser, Principal, SIGN_IN_WINDOW,
    TokenInfo, User, UserKind, bootstrap_admin_id, user_id_for_login,
};
pub use secrets::{MIN_PASSWORD_CHARS, new_token};
