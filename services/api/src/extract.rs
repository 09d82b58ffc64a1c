//! Extractors that turn malformed requests into [`ApiError`]s instead of axum's plain-text ones.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::ApiError;

/// `Json<T>` with Herald's error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let (code, hint) = match &rejection {
        JsonRejection::MissingJsonContentType(_) => (
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonDataError(_) => {
            ("invalid_field", "a field is missing or has the wrong type")
        }
        JsonRejection::JsonSyntaxError(_) => ("invalid_json", "the body is not valid JSON"),
        _ => ("invalid_body", "the request body could not be read"),
    };
    ApiError::new(
        rejection.status(),
        code,
        format!("{hint}: {}", rejection.body_text()),
    )
}

/// `Query<T>` with Herald's error shape.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection @ QueryRejection::FailedToDeserializeQueryString(_)) => Err(
                ApiError::bad_request("invalid_query", rejection.body_text()),
            ),
            Err(rejection) => Err(ApiError::bad_request(
                "invalid_query",
                rejection.body_text(),
            )),
        }
    }
}

/// Parses an id from the path or body, naming the field in the error.
pub fn parse_id(value: &str, field: &str) -> Result<Uuid, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("{field} {value:?} is not a valid id (a UUID)"),
        )
    })
}
