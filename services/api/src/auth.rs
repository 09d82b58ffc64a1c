//! Bearer-token authentication. Today there is one administrator token; the actor it yields
//! ("admin") is recorded on every event, ready for per-user tokens and roles.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;

use crate::{ApiError, AppState};

/// Who made the request, as recorded in event metadata.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

pub async fn require_bearer(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send Authorization: Bearer <token> (the admin token printed by `herald up` or set in HERALD_ADMIN_TOKEN)",
        ));
    };
    if !constant_time_eq(presented.as_bytes(), state.admin_token.expose().as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid",
        ));
    }
    request.extensions_mut().insert(Actor("admin".into()));
    Ok(next.run(request).await)
}

/// Compares without revealing through timing how much of the token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
