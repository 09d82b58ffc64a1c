//! Users, sessions, API tokens and workspace members (`identity`). Who may call each route is
//! decided in `auth`; handlers here check only what the matrix cannot see (a token is its
//! holder's or an instance administrator's business).

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{TimeDelta, Utc};
use identity::{Error, NewUser, Principal, Role, Scope, UserKind};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use domain::{Workspace, WorkspaceCommand};

use super::Context;
use crate::extract::{ApiJson, ApiPath, parse_id};
use crate::{ApiError, AppState};

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::LoginTaken(_) => ApiError::new(StatusCode::CONFLICT, "login_taken", message),
            Error::InvalidLogin => ApiError::invalid("invalid_login", message),
            Error::InvalidName => ApiError::invalid("invalid_name", message),
            Error::WeakPassword { min } => {
                ApiError::invalid("weak_password", message).with_field("min_chars", min)
            }
            Error::BadCredentials => {
                ApiError::new(StatusCode::UNAUTHORIZED, "bad_credentials", message)
            }
            Error::TooManyAttempts { retry_after_s } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
                    .with_field("retry_after", retry_after_s)
            }
            Error::NoSuchUser => ApiError::new(StatusCode::NOT_FOUND, "unknown_user", message),
            Error::BadInvitation => ApiError::new(StatusCode::NOT_FOUND, "bad_invitation", message),
            Error::Hash | Error::Db(_) => ApiError::internal(message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    login: String,
    password: String,
}

/// `POST /v1/sessions`: a session token for a person's login and password.
pub async fn sign_in(State(state): State<AppState>, ApiJson(body): ApiJson<SignIn>) -> Response {
    match state.identity().sign_in(&body.login, &body.password).await {
        Ok(session) => (StatusCode::CREATED, Json(json!(session))).into_response(),
        Err(Error::TooManyAttempts { retry_after_s }) => {
            let error: ApiError = Error::TooManyAttempts { retry_after_s }.into();
            ([("retry-after", retry_after_s.to_string())], error).into_response()
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// `DELETE /v1/sessions/current`: signs out (revokes the token of this request).
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(me): Extension<Principal>,
) -> Result<StatusCode, ApiError> {
    let Some(token) = me.token_id else {
        return Err(ApiError::bad_request(
            "not_a_session",
            "the admin token is configuration, not a session; change HERALD_ADMIN_TOKEN to retire it",
        ));
    };
    state.identity().revoke_token(me.user_id, token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accept {
    token: String,
    password: String,
}

/// `POST /v1/invitations/accept`: an invited person chooses their password.
pub async fn accept_invitation(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Accept>,
) -> Result<Json<Value>, ApiError> {
    let user = state
        .identity()
        .accept_invitation(&body.token, &body.password)
        .await?;
    Ok(Json(json!(user)))
}

/// `GET /v1/me`.
pub async fn me(
    State(state): State<AppState>,
    Extension(me): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let user = state.identity().user(me.user_id).await?;
    let scopes: Vec<&str> = me.scopes.iter().map(|s| s.as_str()).collect();
    let workspaces = workspaces_of(&state, &me).await?;
    Ok(Json(
        json!({ "user": user, "scopes": scopes, "workspaces": workspaces }),
    ))
}

/// The workspaces a person may open, with their role in each: every workspace for an instance
/// administrator (as `admin`). Each name is read inside its own workspace's scope.
async fn workspaces_of(state: &AppState, me: &Principal) -> Result<Vec<Value>, ApiError> {
    let mut roles: Vec<(Uuid, Role)> = state.identity().memberships(me.user_id).await?;
    if me.instance_admin {
        let all: Vec<Uuid> = sqlx::query_scalar("SELECT herald_workspace_ids()")
            .fetch_all(&state.pool)
            .await
            .map_err(ApiError::internal)?;
        roles = all.into_iter().map(|ws| (ws, Role::Admin)).collect();
    }
    let mut workspaces = Vec::with_capacity(roles.len());
    for (ws, role) in roles {
        let workspace: Workspace = store::scope::within(Some(ws), state.store.load(ws)).await?;
        if let Some(name) = workspace.name {
            workspaces.push(json!({ "id": ws, "name": name, "role": role.as_str() }));
        }
    }
    Ok(workspaces)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    login: String,
    name: String,
    #[serde(default = "person")]
    kind: UserKind,
    password: Option<String>,
    #[serde(default)]
    instance_admin: bool,
}

fn person() -> UserKind {
    UserKind::Person
}

/// `POST /v1/users`: a person (with a password, or invited) or a service account.
pub async fn create_user(
    State(state): State<AppState>,
    Extension(me): Extension<Principal>,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if body.kind == UserKind::Service && body.password.is_some() {
        return Err(ApiError::invalid(
            "service_password",
            "a service account never signs in: create it without a password and give it API tokens",
        ));
    }
    let (user, invitation) = state
        .identity()
        .create_user(
            NewUser {
                login: body.login,
                display_name: body.name,
                kind: body.kind,
                password: body.password,
                instance_admin: body.instance_admin,
            },
            &me.actor(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "user": user, "invitation": invitation })),
    ))
}

/// `GET /v1/users`.
pub async fn users(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "users": state.identity().users().await? })))
}

/// `GET /v1/users/{user}`.
pub async fn user(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&user, "user id")?;
    let user = state.identity().user(id).await?.ok_or(Error::NoSuchUser)?;
    Ok(Json(json!(user)))
}

pub async fn disable(
    state: State<AppState>,
    user: ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(state, user, true).await
}

pub async fn enable(
    state: State<AppState>,
    user: ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    set_disabled(state, user, false).await
}

async fn set_disabled(
    State(state): State<AppState>,
    ApiPath(user): ApiPath<String>,
    disabled: bool,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&user, "user id")?;
    if id == identity::bootstrap_admin_id() {
        return Err(ApiError::invalid(
            "bootstrap_admin",
            "the bootstrap administrator holds the configured admin token and cannot be disabled; change HERALD_ADMIN_TOKEN instead",
        ));
    }
    Ok(Json(json!(
        state.identity().set_disabled(id, disabled).await?
    )))
}

/// The user of a token route: oneself, or anyone for an instance administrator.
fn token_owner(me: &Principal, user: &str) -> Result<Uuid, ApiError> {
    let id = parse_id(user, "user id")?;
    if id != me.user_id && !me.instance_admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the user themselves or an instance administrator manages a user's tokens",
        ));
    }
    Ok(id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    scopes: Vec<String>,
    /// Days until it expires; none: until revoked.
    expires_in_days: Option<u32>,
}

/// `POST /v1/users/{user}/tokens`: an API token, shown once in the answer.
pub async fn issue_token(
    State(state): State<AppState>,
    Extension(me): Extension<Principal>,
    ApiPath(user): ApiPath<String>,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let owner = token_owner(&me, &user)?;
    let mut scopes = Vec::new();
    for name in &body.scopes {
        let scope = Scope::parse(name).ok_or_else(|| {
            ApiError::invalid(
                "invalid_scope",
                format!("unknown scope {name:?}; scopes are read, write, approve and admin"),
            )
        })?;
        // A token never carries more than the token that made it.
        if !me.scopes.contains(&scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("your own token lacks the {name:?} scope, so it cannot grant it"),
            ));
        }
        scopes.push(scope);
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid(
            "invalid_scope",
            "give the token at least one scope: read, write, approve or admin",
        ));
    }
    let expires_at = match body.expires_in_days {
        Some(0) | Some(3651..) => {
            return Err(ApiError::invalid(
                "invalid_expiry",
                "expires_in_days is 1-3650, or left out for a token that lasts until revoked",
            ));
        }
        Some(days) => Some(Utc::now() + TimeDelta::days(i64::from(days))),
        None => None,
    };
    let issued = state
        .identity()
        .issue_token(owner, &body.name, &scopes, expires_at)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(issued))))
}

/// `GET /v1/users/{user}/tokens`: without their secrets.
pub async fn tokens(
    State(state): State<AppState>,
    Extension(me): Extension<Principal>,
    ApiPath(user): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let owner = token_owner(&me, &user)?;
    Ok(Json(
        json!({ "tokens": state.identity().tokens(owner).await? }),
    ))
}

/// `DELETE /v1/users/{user}/tokens/{token}`: effective on the token's next request.
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(me): Extension<Principal>,
    ApiPath((user, token)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let owner = token_owner(&me, &user)?;
    let token = parse_id(&token, "token id")?;
    if !state.identity().revoke_token(owner, token).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_token",
            "this user has no token with that id",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    role: String,
}

/// `PUT /v1/workspaces/{ws}/members/{user}`: gives a user a role in the workspace.
pub async fn set_member(
    State(state): State<AppState>,
    Context(ctx): Context,
    ApiPath((ws, user)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Membership>,
) -> Result<Json<Value>, ApiError> {
    let ws = super::directory::workspace(&state, &ws).await?;
    let user = parse_id(&user, "user id")?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::invalid(
            "invalid_role",
            "roles are viewer, author, approver, admin and auditor",
        )
    })?;
    grant(&state, ws, user, role, &ctx).await?;
    Ok(Json(
        json!({ "workspace_id": ws, "user_id": user, "role": role }),
    ))
}

/// `DELETE /v1/workspaces/{ws}/members/{user}`.
pub async fn remove_member(
    State(state): State<AppState>,
    Context(ctx): Context,
    ApiPath((ws, user)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let ws = super::directory::workspace(&state, &ws).await?;
    let user = parse_id(&user, "user id")?;
    let revoked = change_member(&state, ws, user, None, &ctx).await?;
    if !revoked {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_member",
            "this user has no role in this workspace",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Gives `user` `role` in `ws` and records it in the workspace's history, in one transaction.
pub(crate) async fn grant(
    state: &AppState,
    ws: uuid::Uuid,
    user: uuid::Uuid,
    role: Role,
    ctx: &store::RequestContext,
) -> Result<(), ApiError> {
    change_member(state, ws, user, Some(role), ctx)
        .await
        .map(|_| ())
}

/// Gives `user` `role` in `ws` (`None`: takes their role away) and commits it with its
/// record in the workspace's history, retrying when another command wrote to the workspace
/// meanwhile. Returns whether anything changed (a user without a role has none to lose).
async fn change_member(
    state: &AppState,
    ws: uuid::Uuid,
    user: uuid::Uuid,
    role: Option<Role>,
    ctx: &store::RequestContext,
) -> Result<bool, ApiError> {
    let identity = state.identity();
    for _ in 0..5 {
        let mut tx = state.pool.begin().await.map_err(ApiError::internal)?;
        let command = match role {
            Some(role) => {
                identity
                    .set_member(&mut tx, ws, user, role, &ctx.actor)
                    .await?;
                WorkspaceCommand::RecordRoleGranted {
                    user_id: user.to_string(),
                    role: role.as_str().to_owned(),
                }
            }
            None => {
                if !identity.remove_member(&mut tx, ws, user).await? {
                    return Ok(false);
                }
                WorkspaceCommand::RecordRoleRevoked {
                    user_id: user.to_string(),
                }
            }
        };
        let recorded = state
            .store
            .execute_on::<Workspace>(&mut tx, vec![(ws, ws, command)], ctx)
            .await;
        match recorded {
            Ok(results) => {
                results.into_iter().next().unwrap_or(Ok(0))?;
                tx.commit().await.map_err(ApiError::internal)?;
                return Ok(true);
            }
            // A concurrent command took the sequence: nothing was committed; again.
            Err(store::CommandError::Conflict | store::CommandError::Store(_)) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(store::CommandError::Conflict.into())
}

/// `GET /v1/workspaces/{ws}/members`.
pub async fn members(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = super::directory::workspace(&state, &ws).await?;
    Ok(Json(
        json!({ "members": state.identity().members(ws).await? }),
    ))
}
