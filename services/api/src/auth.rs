//! Authentication and authorisation of every `/v1` request: who presented the bearer token
//! (the configured administrator token, or a session or API token from `identity`), and
//! whether the permission matrix (`identity::access`) lets them do what the route does in the
//! workspace of its path. A workspace they have no role in is answered 404, as if it did not
//! exist; a role or token scope that does not allow the action is answered 403.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use identity::{Action, Principal};

use crate::{ApiError, AppState};

/// Who made the request, as recorded in event metadata: a user id.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// The requester's role in the workspace of the path, as approval stages see it: an instance
/// administrator counts as `admin`.
#[derive(Debug, Clone, Copy)]
pub struct WorkspaceRole(pub Option<identity::Role>);

/// What a route does, as the permission matrix sees it; `None` for routes any signed-in user
/// may call about themselves (`/v1/me`, their own tokens).
fn action(method: &Method, route: &str) -> Option<Action> {
    let path = route.strip_prefix("/v1/").unwrap_or(route);
    let read = *method == Method::GET;
    Some(match path {
        "workspaces" => Action::CreateWorkspace,
        "users" | "users/{user}" | "users/{user}/disable" | "users/{user}/enable" => {
            Action::ManageUsers
        }
        "me"
        | "users/{user}/tokens"
        | "users/{user}/tokens/{token}"
        | "sessions/current"
        | "desk/session" => {
            return None;
        }
        "workspaces/{ws}/audit" => Action::ReadAudit,
        p if p.starts_with("workspaces/{ws}/members") && !read => Action::ManageMembers,
        _ if read => Action::Read,
        p if p.ends_with("/approve") || p.ends_with("/reject") => Action::Approve,
        p if p.ends_with("/resolve") => Action::Resolve,
        p if p.ends_with("/comments") => Action::Comment,
        p if p.ends_with("/opt-out") => Action::OptOut,
        "workspaces/{ws}/posts" | "workspaces/{ws}/posts/{id}" => Action::Plan,
        p if p.ends_with("/cancel") || p.ends_with("/reschedule") => Action::Plan,
        // A dry-run writes nothing; its test send goes to the sandbox only.
        p if p.ends_with("/dry-run") => Action::Plan,
        _ => Action::Configure,
    })
}

pub async fn require_bearer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // The desk signs in with a cookie; a command it sends must also carry the CSRF header.
    let presented = match bearer {
        Some(token) => token.to_owned(),
        None => match crate::desk::cookie(request.headers(), crate::desk::SESSION_COOKIE) {
            Some(session) => {
                crate::desk::check_csrf(request.method(), request.headers(), session)?;
                session.to_owned()
            }
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send Authorization: Bearer <token>: a session from POST /v1/sessions, an API token, or the admin token printed by `herald up`",
                ));
            }
        },
    };
    let principal = principal_of(&state, &presented).await?;
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    // The workspace is always the segment after /v1/workspaces/ in routes that name one.
    let workspace = route
        .starts_with("/v1/workspaces/{ws}")
        .then(|| request.uri().path().split('/').nth(3).map(str::to_owned))
        .flatten();
    let mut role = None;
    if let Some(action) = action(request.method(), &route) {
        role = authorize(&state, &principal, action, workspace.as_deref()).await?;
    }
    if principal.instance_admin && workspace.is_some() {
        role = Some(identity::Role::Admin);
    }
    request.extensions_mut().insert(WorkspaceRole(role));
    request.extensions_mut().insert(Actor(principal.actor()));
    request.extensions_mut().insert(principal);
    // The database shows the handler this workspace's rows and no other's (row-level security,
    // `store::scope`); a route without one sees no workspace data at all.
    let scope = workspace.and_then(|ws| ws.parse::<uuid::Uuid>().ok());
    Ok(store::scope::within(scope, next.run(request)).await)
}

/// Who holds `presented`: the configured administrator token, or a live session or API token.
pub(crate) async fn principal_of(state: &AppState, presented: &str) -> Result<Principal, ApiError> {
    if constant_time_eq(presented.as_bytes(), state.admin_token.expose().as_bytes()) {
        return Ok(Principal::bootstrap_admin());
    }
    state
        .identity()
        .authenticate(presented)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the bearer token is not valid: unknown, expired or revoked, or its user is disabled; sign in again or ask for a new token",
            )
        })
}

async fn authorize(
    state: &AppState,
    principal: &Principal,
    action: Action,
    workspace: Option<&str>,
) -> Result<Option<identity::Role>, ApiError> {
    let role = match workspace {
        Some(ws) if !principal.instance_admin => {
            // Only the plain form names a workspace here: a percent-encoded id would reach the
            // handler decoded, past this check.
            let Ok(ws) = ws.parse::<uuid::Uuid>() else {
                return Err(ApiError::bad_request(
                    "invalid_id",
                    "the workspace id in the path is not a UUID",
                ));
            };
            let role = state
                .identity()
                .role(ws, principal.user_id)
                .await
                .map_err(ApiError::internal)?;
            if role.is_none() {
                // The very answer a workspace that does not exist gets.
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "workspace_not_found",
                    format!("workspace {ws} does not exist"),
                ));
            }
            role
        }
        _ => None,
    };
    if principal.may(action, role) {
        return Ok(role);
    }
    let scope = action.scope();
    let why = if !principal.scopes.contains(&scope) {
        format!(
            "this token lacks the {:?} scope; use a token with it",
            scope.as_str()
        )
    } else if let Some(role) = role {
        format!(
            "your role {:?} in this workspace does not allow this; ask a workspace admin (docs/permissions.md)",
            role.as_str()
        )
    } else {
        "only an instance administrator may do this".to_owned()
    };
    Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", why)
        .with_field("needs_scope", scope.as_str()))
}

/// Compares without revealing through timing how much of the token matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_maps_to_the_action_its_handler_performs() {
        let post = Method::POST;
        let get = Method::GET;
        let put = Method::PUT;
        let cases = [
            (&post, "/v1/workspaces", Some(Action::CreateWorkspace)),
            (&get, "/v1/workspaces/{ws}", Some(Action::Read)),
            (&put, "/v1/workspaces/{ws}/policy", Some(Action::Configure)),
            (&post, "/v1/workspaces/{ws}/bots", Some(Action::Configure)),
            (
                &post,
                "/v1/workspaces/{ws}/chats/import",
                Some(Action::Configure),
            ),
            (
                &post,
                "/v1/workspaces/{ws}/chats/{id}/opt-out",
                Some(Action::OptOut),
            ),
            (&post, "/v1/workspaces/{ws}/posts", Some(Action::Plan)),
            (
                &post,
                "/v1/workspaces/{ws}/posts/{id}/approve",
                Some(Action::Approve),
            ),
            (
                &post,
                "/v1/workspaces/{ws}/posts/{id}/reject",
                Some(Action::Approve),
            ),
            (
                &post,
                "/v1/workspaces/{ws}/posts/{id}/cancel",
                Some(Action::Plan),
            ),
            (
                &post,
                "/v1/workspaces/{ws}/posts/{id}/reschedule",
                Some(Action::Plan),
            ),
            (
                &post,
                "/v1/workspaces/{ws}/posts/{id}/deliveries/{chat}/resolve",
                Some(Action::Resolve),
            ),
            (&get, "/v1/workspaces/{ws}/audit", Some(Action::ReadAudit)),
            (&get, "/v1/workspaces/{ws}/calendar", Some(Action::Read)),
            (&get, "/v1/workspaces/{ws}/members", Some(Action::Read)),
            (
                &put,
                "/v1/workspaces/{ws}/members/{user}",
                Some(Action::ManageMembers),
            ),
            (&post, "/v1/users", Some(Action::ManageUsers)),
            (&post, "/v1/users/{user}/disable", Some(Action::ManageUsers)),
            (&get, "/v1/me", None),
            (&post, "/v1/users/{user}/tokens", None),
            (&get, "/v1/workspaces/{ws}/live", Some(Action::Read)),
            (&get, "/v1/workspaces/{ws}/bots", Some(Action::Read)),
            (&get, "/v1/workspaces/{ws}/operations", Some(Action::Read)),
            (
                &get,
                "/v1/workspaces/{ws}/sandbox/messages",
                Some(Action::Read),
            ),
            (&Method::DELETE, "/v1/desk/session", None),
            (&put, "/v1/workspaces/{ws}/privacy", Some(Action::Configure)),
            (
                &put,
                "/v1/workspaces/{ws}/segments/{id}/audience-rules",
                Some(Action::Configure),
            ),
            (
                &post,
                "/v1/workspaces/{ws}/posts/{id}/erase",
                Some(Action::Configure),
            ),
            (
                &post,
                "/v1/workspaces/{ws}/sandbox/chats",
                Some(Action::Configure),
            ),
        ];
        for (method, route, expected) in cases {
            assert_eq!(action(method, route), expected, "{method} {route}");
        }
    }
}
