//! Extractors that turn malformed requests into [`ApiError`]s instead of axum's plain-text ones.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::ApiError;
use crate::guard::BodyLimits;

/// `Json<T>` with Herald's error shape, read within the request's body deadline.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = req.extensions().get::<BodyLimits>().copied();
        match within_deadline(limits, axum::Json::<T>::from_request(req, state)).await? {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::BytesRejection(rejection)) => Err(body_error(rejection, limits)),
            Err(rejection) => Err(json_error(rejection)),
        }
    }
}

/// The raw body (for endpoints whose body is optional), with Herald's error shape and deadline.
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = req.extensions().get::<BodyLimits>().copied();
        match within_deadline(limits, Bytes::from_request(req, state)).await? {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) => Err(body_error(rejection, limits)),
        }
    }
}

/// Reading the body is the caller's part of the request: a body that has not arrived by the
/// deadline is 408, not a slow Herald.
async fn within_deadline<T>(
    limits: Option<BodyLimits>,
    read: impl Future<Output = T>,
) -> Result<T, ApiError> {
    let Some(limits) = limits else {
        return Ok(read.await);
    };
    tokio::time::timeout_at(limits.deadline, read)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body did not arrive in time; send it without pauses",
            )
        })
}

fn body_error(rejection: BytesRejection, limits: Option<BodyLimits>) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = limits.map_or(String::new(), |l| format!(" of {} bytes", l.bytes));
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit{limit}"),
        );
    }
    ApiError::bad_request(
        "invalid_body",
        format!(
            "the request body could not be read: {}",
            rejection.body_text()
        ),
    )
}

/// `Path<T>` with Herald's error shape (e.g. a segment that is not valid percent-encoded UTF-8).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection @ PathRejection::FailedToDeserializePathParams(_))
                if rejection.status().is_client_error() =>
            {
                Err(ApiError::bad_request(
                    "invalid_path",
                    format!("the path is not valid: {}", rejection.body_text()),
                ))
            }
            // A route whose parameters do not match its handler: Herald's bug, not the caller's.
            Err(rejection) => Err(ApiError::internal(rejection.body_text())),
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
