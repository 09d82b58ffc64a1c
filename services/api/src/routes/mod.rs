mod audience;
mod desk;
mod directory;
mod import;
mod people;
mod posts;
mod rules;
mod safety;
mod segments;
mod views;

use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router, middleware};
use serde_json::json;
use store::RequestContext;

use crate::auth::{Actor, require_bearer};
use crate::server::Limits;
use crate::{ApiError, AppState, OPENAPI, guard};

pub fn router(state: AppState, limits: Limits) -> Router {
    let desk_dir = state.desk_dir.clone();
    let bulk =
        |route: axum::routing::MethodRouter<AppState>| -> axum::routing::MethodRouter<AppState> {
            route
                .layer::<_, std::convert::Infallible>(middleware::from_fn_with_state(
                    limits.bulk_body_bytes,
                    guard::bulk_body,
                ))
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(limits.bulk_body_bytes))
        };
    let v1 = Router::new()
        .route("/v1/workspaces", post(directory::create_workspace))
        .route("/v1/workspaces/{ws}", get(directory::get_workspace))
        .route("/v1/workspaces/{ws}/policy", put(directory::set_policy))
        .route(
            "/v1/workspaces/{ws}/retention",
            put(directory::set_retention),
        )
        .route(
            "/v1/workspaces/{ws}/bots",
            post(directory::register_bot).get(desk::bots),
        )
        .route(
            "/v1/workspaces/{ws}/bots/{id}/token",
            put(directory::replace_token),
        )
        .route(
            "/v1/workspaces/{ws}/bots/{id}/limits",
            put(directory::set_bot_limits),
        )
        .route(
            "/v1/workspaces/{ws}/bots/{id}/safety-stats",
            get(safety::bot),
        )
        .route(
            "/v1/workspaces/{ws}/chats",
            post(directory::connect_chat).get(directory::list_chats),
        )
        .route(
            "/v1/workspaces/{ws}/chats/import",
            bulk(post(import::import_chats)),
        )
        .route("/v1/workspaces/{ws}/chats/{id}", get(directory::get_chat))
        .route(
            "/v1/workspaces/{ws}/chats/{id}/tags",
            put(directory::set_tags),
        )
        .route(
            "/v1/workspaces/{ws}/chats/{id}/erase",
            post(directory::erase),
        )
        .route(
            "/v1/workspaces/{ws}/segments",
            post(segments::define).get(segments::list),
        )
        .route(
            "/v1/workspaces/{ws}/segments/{id}",
            get(segments::get)
                .put(segments::change)
                .delete(segments::delete),
        )
        .route(
            "/v1/workspaces/{ws}/segments/{id}/audience-rules",
            put(audience::set_segment_rules),
        )
        .route(
            "/v1/workspaces/{ws}/chats/{id}/audience-rules",
            put(audience::set_chat_rules),
        )
        .route(
            "/v1/workspaces/{ws}/audience-rules",
            put(audience::set_workspace_rules),
        )
        .route(
            "/v1/workspaces/{ws}/chats/{id}/lawful-basis",
            put(directory::set_lawful_basis),
        )
        .route(
            "/v1/workspaces/{ws}/chats/{id}/opt-out",
            post(directory::opt_out),
        )
        .route(
            "/v1/workspaces/{ws}/chats/{id}/limits",
            put(directory::set_chat_limits),
        )
        .route(
            "/v1/workspaces/{ws}/chats/{id}/safety-stats",
            get(safety::chat),
        )
        .route(
            "/v1/workspaces/{ws}/posts",
            bulk(post(posts::plan)).get(posts::list),
        )
        .route(
            "/v1/workspaces/{ws}/posts/{id}",
            get(posts::get).patch(posts::edit),
        )
        .route(
            "/v1/workspaces/{ws}/posts/dry-run",
            bulk(post(rules::dry_run_new)),
        )
        .route(
            "/v1/workspaces/{ws}/posts/{id}/dry-run",
            post(rules::dry_run_post),
        )
        .route(
            "/v1/workspaces/{ws}/rules",
            get(rules::get_rules).put(rules::set_rules),
        )
        .route(
            "/v1/workspaces/{ws}/posts/{id}/comments",
            post(posts::comment),
        )
        .route(
            "/v1/workspaces/{ws}/posts/{id}/history",
            get(posts::history),
        )
        .route(
            "/v1/workspaces/{ws}/chats/{id}/approval-policy",
            put(directory::set_approval_policy).get(directory::approval_policy),
        )
        .route(
            "/v1/workspaces/{ws}/posts/{id}/deliveries",
            get(posts::deliveries),
        )
        .route(
            "/v1/workspaces/{ws}/posts/{id}/approve",
            post(posts::approve),
        )
        .route("/v1/workspaces/{ws}/posts/{id}/reject", post(posts::reject))
        .route("/v1/workspaces/{ws}/posts/{id}/erase", post(posts::erase))
        .route("/v1/workspaces/{ws}/privacy", put(directory::set_privacy))
        .route("/v1/workspaces/{ws}/posts/{id}/cancel", post(posts::cancel))
        .route(
            "/v1/workspaces/{ws}/posts/{id}/reschedule",
            post(posts::reschedule),
        )
        .route(
            "/v1/workspaces/{ws}/posts/{id}/deliveries/{chat}/resolve",
            post(posts::resolve),
        )
        .route("/v1/me", get(people::me))
        .route("/v1/sessions/current", delete(people::sign_out))
        .route("/v1/users", post(people::create_user).get(people::users))
        .route("/v1/users/{user}", get(people::user))
        .route("/v1/users/{user}/disable", post(people::disable))
        .route("/v1/users/{user}/enable", post(people::enable))
        .route(
            "/v1/users/{user}/tokens",
            post(people::issue_token).get(people::tokens),
        )
        .route(
            "/v1/users/{user}/tokens/{token}",
            delete(people::revoke_token),
        )
        .route("/v1/workspaces/{ws}/members", get(people::members))
        .route(
            "/v1/workspaces/{ws}/members/{user}",
            put(people::set_member).delete(people::remove_member),
        )
        .route("/v1/workspaces/{ws}/calendar", get(views::calendar))
        .route("/v1/workspaces/{ws}/live", get(desk::live))
        .route("/v1/workspaces/{ws}/operations", get(desk::operations))
        .route(
            "/v1/workspaces/{ws}/sandbox/messages",
            get(desk::sandbox_messages),
        )
        .route(
            "/v1/workspaces/{ws}/sandbox/chats",
            post(desk::sandbox_chat),
        )
        .route("/v1/desk/session", delete(crate::desk::sign_out))
        .route("/v1/workspaces/{ws}/audit", get(views::audit))
        .method_not_allowed_fallback(guard::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ));
    Router::new()
        .merge(v1)
        .route("/v1/sessions", post(people::sign_in))
        .route("/v1/desk/session", post(crate::desk::sign_in))
        .route("/v1/invitations/accept", post(people::accept_invitation))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/openapi.json", get(openapi))
        .method_not_allowed_fallback(guard::method_not_allowed)
        .fallback(move |request: axum::extract::Request| {
            desk_or_not_found(desk_dir.clone(), request)
        })
        .with_state(state)
        // Outermost last: every response, timeouts included, leaves through `json_errors`.
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(middleware::from_fn_with_state(
            limits,
            guard::request_timeout,
        ))
        .layer(middleware::map_response(guard::json_errors))
}

/// Paths outside the API are the desk's (its files, or its pages routed in the browser).
async fn desk_or_not_found(
    desk_dir: Option<std::path::PathBuf>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let path = request.uri().path();
    let api = path == "/v1" || path.starts_with("/v1/");
    let read = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if api || !read || desk_dir.is_none() {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no_such_route",
            "no such route; see GET /v1/openapi.json",
        )
        .into_response();
    }
    crate::desk::assets(desk_dir, request).await
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready only when PostgreSQL and NATS are reachable.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let postgres = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let nats = state.bus.as_ref().is_some_and(|bus| bus.is_connected());
    let status = if postgres && nats {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    (
        status,
        Json(json!({ "ready": postgres && nats, "postgres": word(postgres), "nats": word(nats) })),
    )
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The request context of a command: the authenticated actor and a correlation id (taken
/// from `X-Correlation-Id` when the caller sends a sane one).
pub struct Context(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let actor = parts
            .extensions
            .get::<Actor>()
            .map_or("anonymous".to_owned(), |a| a.0.clone());
        let mut context = RequestContext::new(actor);
        if let Some(id) = parts
            .headers
            .get("x-correlation-id")
            .and_then(|v| v.to_str().ok())
        {
            let sane = !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
            if !sane {
                return Err(ApiError::bad_request(
                    "invalid_correlation_id",
                    "X-Correlation-Id must be 1-128 letters, digits or -_.:",
                ));
            }
            context.correlation_id = id.to_owned();
        }
        Ok(Self(context))
    }
}
