//! The desk's side of the API: signing in with a session cookie instead of a bearer token, the
//! CSRF rule that comes with cookies, and serving the desk's built assets at the API's origin.
//!
//! A cookie travels with every request the browser makes to this origin, whoever triggered it,
//! so a cookie-authenticated command must also carry `X-CSRF-Token`: a value derived from the
//! session token (never stored), which only a script of this origin can read from the
//! `herald_csrf` cookie. Both cookies are `SameSite=Strict`; the session cookie is `HttpOnly`
//! and, behind TLS, `Secure`.

use std::path::PathBuf;

use axum::extract::{Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::{Extension, Json};
use identity::{Error, Principal};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use crate::extract::ApiJson;
use crate::{ApiError, AppState};

pub const SESSION_COOKIE: &str = "herald_session";
pub const CSRF_COOKIE: &str = "herald_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token that goes with a session token: a keyed digest of it, so the server can check
/// it without storing anything and it changes with every session.
pub fn csrf_token(session: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"herald-desk-csrf\0")
        .chain_update(session.as_bytes())
        .finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A request authenticated by its cookie that changes something must prove it comes from the
/// desk's own pages: the CSRF header, matching the session.
pub fn check_csrf(method: &Method, headers: &HeaderMap, session: &str) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let expected = csrf_token(session);
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match presented {
        Some(token) if crate::auth::constant_time_eq(token.as_bytes(), expected.as_bytes()) => {
            Ok(())
        }
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "csrf_required",
            "a request signed in by cookie must send X-CSRF-Token with the value of the herald_csrf cookie; reload the desk and try again",
        )),
    }
}

/// Behind TLS (directly or through a proxy that says so) the cookies are `Secure`.
fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// Both cookies (appended: a response may carry several `Set-Cookie` headers).
fn set_cookies(
    headers: &HeaderMap,
    session: &str,
    max_age_s: i64,
) -> AppendHeaders<[(axum::http::HeaderName, HeaderValue); 2]> {
    let secure = if secure(headers) { "; Secure" } else { "" };
    let session_value = if max_age_s > 0 {
        session.to_owned()
    } else {
        String::new()
    };
    let csrf_value = if max_age_s > 0 {
        csrf_token(session)
    } else {
        String::new()
    };
    let cookie = |text: String| HeaderValue::from_str(&text).expect("cookie text is ASCII");
    AppendHeaders([
        (
            SET_COOKIE,
            cookie(format!(
                "{SESSION_COOKIE}={session_value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
            )),
        ),
        (
            SET_COOKIE,
            cookie(format!(
                "{CSRF_COOKIE}={csrf_value}; Path=/; SameSite=Strict; Max-Age={max_age_s}{secure}"
            )),
        ),
    ])
}

/// Sign-in: a person's login and password, or a token (an API token, or the administrator token
/// `herald up` printed, for the first sign-in of a new installation).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    login: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

/// How long the session cookie lives; the session token itself expires on its own schedule.
const COOKIE_MAX_AGE_S: i64 = 12 * 3600;

/// `POST /v1/desk/session`: signs in and sets the session and CSRF cookies.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignIn>,
) -> Response {
    let token = match (body.login, body.password, body.token) {
        (Some(login), Some(password), None) => {
            match state.identity().sign_in(&login, &password).await {
                Ok(issued) => issued.token,
                Err(Error::TooManyAttempts { retry_after_s }) => {
                    let error: ApiError = Error::TooManyAttempts { retry_after_s }.into();
                    return ([("retry-after", retry_after_s.to_string())], error).into_response();
                }
                Err(error) => return ApiError::from(error).into_response(),
            }
        }
        (None, None, Some(token)) => {
            // The token proves who signs in; the browser gets a session of its own, so the
            // cookie never holds an API token or the administrator token.
            let principal = match crate::auth::principal_of(&state, token.trim()).await {
                Ok(principal) => principal,
                Err(error) => return error.into_response(),
            };
            match state
                .identity()
                .session_for(principal.user_id, &principal.scopes)
                .await
            {
                Ok(issued) => issued.token,
                Err(error) => return ApiError::from(error).into_response(),
            }
        }
        _ => {
            return ApiError::invalid(
                "invalid_sign_in",
                "send either login and password, or token",
            )
            .into_response();
        }
    };
    let principal = match crate::auth::principal_of(&state, &token).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let user = match state.identity().user(principal.user_id).await {
        Ok(user) => user,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let csrf = csrf_token(&token);
    (
        StatusCode::CREATED,
        set_cookies(&headers, &token, COOKIE_MAX_AGE_S),
        Json(json!({ "user": user, "csrf": csrf })),
    )
        .into_response()
}

/// `DELETE /v1/desk/session`: signs out: the session is revoked and the cookies cleared. (A
/// bearer token that is not a session, used here, is left alone.)
pub async fn sign_out(
    State(state): State<AppState>,
    Extension(me): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = me.token_id
        && state.identity().is_session(token).await?
    {
        state.identity().revoke_token(me.user_id, token).await?;
    }
    Ok((StatusCode::NO_CONTENT, set_cookies(&headers, "", 0)).into_response())
}

/// The desk's files: what a path names under `dir`, and `index.html` for any other path (the
/// desk routes in the browser). Without a built desk, a page that says how to build it.
pub async fn assets(dir: Option<PathBuf>, request: Request) -> Response {
    let Some(dir) = dir.filter(|dir| dir.join("index.html").is_file()) else {
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "text/plain; charset=utf-8")],
            "The desk is not built. `scripts/herald up` builds it (npm ci && npm run build in desk/), \
             or set HERALD_DESK_DIR to a built desk. The API is at /v1 (GET /v1/openapi.json).\n",
        )
            .into_response();
    };
    let index = ServeFile::new(dir.join("index.html"));
    let files = ServeDir::new(&dir).fallback(index);
    match files.oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}
