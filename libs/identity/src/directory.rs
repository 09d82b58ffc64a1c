//! The identity tables (migration 0014), and nothing else: users, passwords, tokens, sign-in
//! failures and workspace members.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::access::{Action, Role, Scope};
use crate::secrets;

/// Failed sign-ins of one login within [`SIGN_IN_WINDOW`] after which it is refused until the
/// oldest of them leaves the window, even with the right password.
pub const MAX_FAILED_SIGN_INS: i64 = 5;
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a session lasts.
const SESSION: TimeDelta = TimeDelta::hours(12);
/// How long an invitation may be accepted.
const INVITATION: TimeDelta = TimeDelta::days(7);
const MAX_LOGIN: usize = 64;
const MAX_NAME: usize = 200;

/// Users are stored under an id derived from their login, so the bootstrap administrator has
/// the same id on every instance and a login is taken at most once.
pub fn user_id_for_login(login: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6865_7261_6c64_4000_8000_0000_7573_6572);
    Uuid::new_v5(&NAMESPACE, login.to_lowercase().as_bytes())
}

/// The user `herald up` makes first, whose token is `HERALD_ADMIN_TOKEN`.
pub fn bootstrap_admin_id() -> Uuid {
    user_id_for_login(BOOTSTRAP_LOGIN)
}
const BOOTSTRAP_LOGIN: &str = "admin";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the login {0:?} is taken")]
    LoginTaken(String),
    #[error("a login is 1-{MAX_LOGIN} lowercase letters, digits or .-_@")]
    InvalidLogin,
    #[error("a name is 1-{MAX_NAME} characters")]
    InvalidName,
    #[error("a password has at least {min} characters")]
    WeakPassword { min: usize },
    #[error("the login or the password is wrong")]
    BadCredentials,
    #[error("too many failed sign-ins for this login; try again in {retry_after_s} s")]
    TooManyAttempts { retry_after_s: u64 },
    #[error("no such user")]
    NoSuchUser,
    #[error("the invitation is not valid (unknown, used or expired)")]
    BadInvitation,
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserKind {
    Person,
    Service,
}

impl UserKind {
    fn as_str(self) -> &'static str {
        match self {
            UserKind::Person => "person",
            UserKind::Service => "service",
        }
    }
    fn parse(s: &str) -> UserKind {
        if s == "service" {
            UserKind::Service
        } else {
            UserKind::Person
        }
    }
}

/// A user as the API shows it (no secret).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    pub login: String,
    pub display_name: String,
    pub kind: UserKind,
    pub instance_admin: bool,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

pub struct NewUser {
    pub login: String,
    pub display_name: String,
    pub kind: UserKind,
    /// `None`: a person is sent an invitation to choose one; a service account never signs in.
    pub password: Option<String>,
    pub instance_admin: bool,
}

/// A secret made now: shown to its holder once, never again.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub id: Uuid,
    pub token: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token as its holder may list it (no secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub kind: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub user_id: Uuid,
    pub login: String,
    pub display_name: String,
    pub role: Role,
}

/// Who presented a valid token, and what the token lets them do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: Uuid,
    pub instance_admin: bool,
    pub scopes: Vec<Scope>,
    /// The token used (`None`: the configured administrator token).
    pub token_id: Option<Uuid>,
}

impl Principal {
    /// The configured administrator token's holder: every scope, every workspace.
    pub fn bootstrap_admin() -> Self {
        Self {
            user_id: bootstrap_admin_id(),
            instance_admin: true,
            scopes: Scope::ALL.to_vec(),
            token_id: None,
        }
    }

    /// Whether this principal may do `action`, holding `role` in the workspace concerned
    /// (`None`: not a member, or an instance-wide action).
    pub fn may(&self, action: Action, role: Option<Role>) -> bool {
        if !self.scopes.contains(&action.scope()) {
            return false;
        }
        self.instance_admin || (!action.instance_wide() && role.is_some_and(|r| r.allows(action)))
    }

    /// What event metadata records as the actor: the user's id, never a name.
    pub fn actor(&self) -> String {
        self.user_id.to_string()
    }
}

/// The identity tables' one owner.
#[derive(Clone)]
pub struct Directory {
    pool: PgPool,
}

type UserRow = (
    Uuid,
    String,
    String,
    String,
    bool,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn user(row: UserRow) -> User {
    User {
        id: row.0,
        login: row.1,
        display_name: row.2,
        kind: UserKind::parse(&row.3),
        instance_admin: row.4,
        created_at: row.5,
        disabled: row.6.is_some(),
    }
}

const USER_COLUMNS: &str = "id, login, display_name, kind, instance_admin, created_at, disabled_at";

impl Directory {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Makes the bootstrap administrator if it does not exist yet.
    pub async fn ensure_bootstrap_admin(&self) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO identity_users (id, login, display_name, kind, instance_admin, created_by)
             VALUES ($1, $2, 'Administrator', 'person', true, 'herald')
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(bootstrap_admin_id())
        .bind(BOOTSTRAP_LOGIN)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Creates a user; a person without a password gets an invitation to choose one.
    pub async fn create_user(
        &self,
        new: NewUser,
        created_by: &str,
    ) -> Result<(User, Option<Issued>), Error> {
        let login = new.login.trim().to_lowercase();
        let valid_login = !login.is_empty()
            && login.len() <= MAX_LOGIN
            && login
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_@".contains(&b));
        if !valid_login {
            return Err(Error::InvalidLogin);
        }
        let name = new.display_name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(Error::InvalidName);
        }
        let hash = match &new.password {
            Some(password) => Some(checked_hash(password)?),
            None => None,
        };
        let id = user_id_for_login(&login);
        let mut tx = self.pool.begin().await?;
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "INSERT INTO identity_users (id, login, display_name, kind, instance_admin, created_by)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING {USER_COLUMNS}"
        ))
        .bind(id)
        .bind(&login)
        .bind(&name)
        .bind(new.kind.as_str())
        .bind(new.instance_admin)
        .bind(created_by)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(Error::LoginTaken(login));
        };
        let mut invitation = None;
        match hash {
            Some(hash) => {
                sqlx::query("INSERT INTO identity_passwords (user_id, hash) VALUES ($1, $2)")
                    .bind(id)
                    .bind(hash)
                    .execute(&mut *tx)
                    .await?;
            }
            None if new.kind == UserKind::Person => {
                invitation = Some(
                    insert_token(
                        &mut tx,
                        id,
                        "invitation",
                        "invitation",
                        &[],
                        Some(Utc::now() + INVITATION),
                    )
                    .await?,
                );
            }
            None => {}
        }
        tx.commit().await?;
        Ok((user(row), invitation))
    }

    /// Sets the password of the invited user and uses the invitation up; returns the user.
    pub async fn accept_invitation(&self, token: &str, password: &str) -> Result<User, Error> {
        let hash = checked_hash(password)?;
        let mut tx = self.pool.begin().await?;
        let user_id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE identity_tokens SET revoked_at = now()
              WHERE hash = $1 AND kind = 'invitation' AND revoked_at IS NULL AND expires_at > now()
              RETURNING user_id",
        )
        .bind(secrets::token_hash(token))
        .fetch_optional(&mut *tx)
        .await?;
        let user_id = user_id.ok_or(Error::BadInvitation)?;
        sqlx::query(
            "INSERT INTO identity_passwords (user_id, hash) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET hash = EXCLUDED.hash, set_at = now()",
        )
        .bind(user_id)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.user(user_id).await?.ok_or(Error::NoSuchUser)
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>, Error> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM identity_users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(user))
    }

    pub async fn users(&self) -> Result<Vec<User>, Error> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM identity_users ORDER BY login"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(user).collect())
    }

    /// Disables or enables a user; a disabled user's tokens stop working at once.
    pub async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<User, Error> {
        let row: Option<UserRow> = sqlx::query_as(&format!(
            "UPDATE identity_users
                SET disabled_at = CASE WHEN $2 THEN coalesce(disabled_at, now()) END
              WHERE id = $1 RETURNING {USER_COLUMNS}"
        ))
        .bind(id)
        .bind(disabled)
        .fetch_optional(&self.pool)
        .await?;
        row.map(user).ok_or(Error::NoSuchUser)
    }

    /// Signs a person in with a password: a session token with every scope their roles allow.
    /// Refused after [`MAX_FAILED_SIGN_INS`] failures of the login within [`SIGN_IN_WINDOW`].
    pub async fn sign_in(&self, login: &str, password: &str) -> Result<Issued, Error> {
        let login = login.trim().to_lowercase();
        let window = SIGN_IN_WINDOW.as_secs_f64();
        let (failures, oldest): (i64, Option<f64>) = sqlx::query_as(
            "SELECT count(*), EXTRACT(EPOCH FROM min(at) + make_interval(secs => $2) - now())::float8
               FROM identity_sign_in_failures
              WHERE login = $1 AND at > now() - make_interval(secs => $2)",
        )
        .bind(&login)
        .bind(window)
        .fetch_one(&self.pool)
        .await?;
        if failures >= MAX_FAILED_SIGN_INS {
            return Err(Error::TooManyAttempts {
                retry_after_s: oldest.unwrap_or(window).ceil().max(1.0) as u64,
            });
        }
        let stored: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT u.id, p.hash FROM identity_users u JOIN identity_passwords p ON p.user_id = u.id
              WHERE u.login = $1 AND u.disabled_at IS NULL AND u.kind = 'person'",
        )
        .bind(&login)
        .fetch_optional(&self.pool)
        .await?;
        let hash = stored
            .as_ref()
            .map_or(secrets::decoy_hash(), |(_, h)| h.as_str());
        let matches = secrets::verify_password(password, hash);
        let (Some((user_id, _)), true) = (stored, matches) else {
            sqlx::query("INSERT INTO identity_sign_in_failures (login) VALUES ($1)")
                .bind(&login)
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "DELETE FROM identity_sign_in_failures WHERE at < now() - interval '1 day'",
            )
            .execute(&self.pool)
            .await?;
            return Err(Error::BadCredentials);
        };
        let mut conn = self.pool.acquire().await?;
        let scopes: Vec<Scope> = Scope::ALL.to_vec();
        insert_token(
            &mut conn,
            user_id,
            "session",
            "session",
            &scopes,
            Some(Utc::now() + SESSION),
        )
        .await
    }

    /// A session for someone who proved who they are another way (the desk's sign-in with a
    /// token): the same user, no more scopes than `scopes`, expiring like a password session.
    /// The browser then holds this session, never the token itself.
    pub async fn session_for(&self, user_id: Uuid, scopes: &[Scope]) -> Result<Issued, Error> {
        let mut conn = self.pool.acquire().await?;
        insert_token(
            &mut conn,
            user_id,
            "session",
            "session",
            scopes,
            Some(Utc::now() + SESSION),
        )
        .await
    }

    /// An API token for `user_id`, limited to `scopes`, valid until `expires_at` (`None`: until
    /// revoked).
    pub async fn issue_token(
        &self,
        user_id: Uuid,
        name: &str,
        scopes: &[Scope],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Issued, Error> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME {
            return Err(Error::InvalidName);
        }
        if self.user(user_id).await?.is_none() {
            return Err(Error::NoSuchUser);
        }
        let mut conn = self.pool.acquire().await?;
        insert_token(&mut conn, user_id, "api", name, scopes, expires_at).await
    }

    pub async fn tokens(&self, user_id: Uuid) -> Result<Vec<TokenInfo>, Error> {
        type Row = (
            Uuid,
            String,
            String,
            Vec<String>,
            DateTime<Utc>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, kind, name, scopes, created_at, expires_at, revoked_at, last_used_at
               FROM identity_tokens WHERE user_id = $1 AND kind <> 'invitation' ORDER BY created_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| TokenInfo {
                id: r.0,
                kind: r.1,
                name: r.2,
                scopes: r.3,
                created_at: r.4,
                expires_at: r.5,
                revoked_at: r.6,
                last_used_at: r.7,
            })
            .collect())
    }

    /// Revokes one of `user_id`'s tokens; false when it has none by that id. The next request
    /// with it is refused.
    pub async fn revoke_token(&self, user_id: Uuid, token_id: Uuid) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE identity_tokens SET revoked_at = coalesce(revoked_at, now())
              WHERE id = $1 AND user_id = $2",
        )
        .bind(token_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// True when token `token_id` is a session of a password sign-in (not an API token).
    pub async fn is_session(&self, token_id: Uuid) -> Result<bool, Error> {
        let kind: Option<String> =
            sqlx::query_scalar("SELECT kind FROM identity_tokens WHERE id = $1")
                .bind(token_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(kind.as_deref() == Some("session"))
    }

    /// The workspaces `user_id` has a role in, with that role.
    pub async fn memberships(&self, user_id: Uuid) -> Result<Vec<(Uuid, Role)>, Error> {
        let rows: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT workspace_id, role FROM identity_members WHERE user_id = $1 ORDER BY granted_at",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(ws, role)| Some((ws, Role::parse(&role)?)))
            .collect())
    }

    /// Who holds `token`, if it is a live session or API token of an enabled user.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, Error> {
        if !secrets::is_issued_form(token) {
            // Not one of ours: no need to ask the database (which may be down).
            return Ok(None);
        }
        let row: Option<(Uuid, Uuid, Vec<String>, bool, bool)> = sqlx::query_as(
            "SELECT t.id, u.id, t.scopes, u.instance_admin,
                    t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'
               FROM identity_tokens t JOIN identity_users u ON u.id = t.user_id
              WHERE t.hash = $1 AND t.kind IN ('session', 'api') AND t.revoked_at IS NULL
                AND (t.expires_at IS NULL OR t.expires_at > now())
                AND u.disabled_at IS NULL",
        )
        .bind(secrets::token_hash(token))
        .fetch_optional(&self.pool)
        .await?;
        // `last_used_at` to the minute: a token used by many requests at once (an integration,
        // a load run) would otherwise queue them all on one row's lock.
        if let Some((token_id, _, _, _, true)) = row {
            sqlx::query("UPDATE identity_tokens SET last_used_at = now() WHERE id = $1")
                .bind(token_id)
                .execute(&self.pool)
                .await?;
        }
        let row = row.map(|(token, user, scopes, admin, _)| (token, user, scopes, admin));
        Ok(
            row.map(|(token_id, user_id, scopes, instance_admin)| Principal {
                user_id,
                instance_admin,
                scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
                token_id: Some(token_id),
            }),
        )
    }

    /// The role of `user_id` in `workspace_id`, if any.
    pub async fn role(&self, workspace_id: Uuid, user_id: Uuid) -> Result<Option<Role>, Error> {
        let role: Option<String> = sqlx::query_scalar(
            "SELECT role FROM identity_members WHERE workspace_id = $1 AND user_id = $2",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(role.as_deref().and_then(Role::parse))
    }

    /// Gives `user_id` `role` in the workspace (replacing any other).
    /// Inside the caller's transaction `conn`, so that the grant commits with its record in the
    /// workspace's history.
    pub async fn set_member(
        &self,
        conn: &mut sqlx::PgConnection,
        workspace_id: Uuid,
        user_id: Uuid,
        role: Role,
        granted_by: &str,
    ) -> Result<(), Error> {
        if self.user(user_id).await?.is_none() {
            return Err(Error::NoSuchUser);
        }
        sqlx::query(
            "INSERT INTO identity_members (workspace_id, user_id, role, granted_by) VALUES ($1, $2, $3, $4)
             ON CONFLICT (workspace_id, user_id) DO UPDATE
                SET role = EXCLUDED.role, granted_by = EXCLUDED.granted_by, granted_at = now()",
        )
        .bind(workspace_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(granted_by)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Inside the caller's transaction `conn`, like [`Directory::set_member`].
    pub async fn remove_member(
        &self,
        conn: &mut sqlx::PgConnection,
        workspace_id: Uuid,
        user_id: Uuid,
    ) -> Result<bool, Error> {
        let done =
            sqlx::query("DELETE FROM identity_members WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace_id)
                .bind(user_id)
                .execute(conn)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    pub async fn members(&self, workspace_id: Uuid) -> Result<Vec<Member>, Error> {
        let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
            "SELECT u.id, u.login, u.display_name, m.role FROM identity_members m
               JOIN identity_users u ON u.id = m.user_id
              WHERE m.workspace_id = $1 ORDER BY u.login",
        )
        .bind(workspace_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(user_id, login, display_name, role)| {
                Some(Member {
                    user_id,
                    login,
                    display_name,
                    role: Role::parse(&role)?,
                })
            })
            .collect())
    }
}

fn checked_hash(password: &str) -> Result<String, Error> {
    if password.chars().count() < secrets::MIN_PASSWORD_CHARS {
        return Err(Error::WeakPassword {
            min: secrets::MIN_PASSWORD_CHARS,
        });
    }
    secrets::hash_password(password).map_err(|_| Error::Hash)
}

async fn insert_token(
    conn: &mut sqlx::PgConnection,
    user_id: Uuid,
    kind: &str,
    name: &str,
    scopes: &[Scope],
    expires_at: Option<DateTime<Utc>>,
) -> Result<Issued, Error> {
    let (token, hash) = secrets::new_token();
    let id = Uuid::now_v7();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query(
        "INSERT INTO identity_tokens (id, user_id, hash, kind, name, scopes, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(user_id)
    .bind(hash)
    .bind(kind)
    .bind(name)
    .bind(&scopes)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(Issued {
        id,
        token,
        expires_at,
    })
}
