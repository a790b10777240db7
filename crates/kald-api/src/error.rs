//! Errors as the client sees them: a status and `{"error": "..."}`, never personal data.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::model::ErrorBody;

/// Why a request failed; each variant maps to one status and a fixed or backend-given message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApiError {
    /// No valid session or token.
    #[error("not logged in")]
    Unauthorized,
    /// Wrong login or password.
    #[error("wrong login or password")]
    BadCredentials,
    /// The role may not do this.
    #[error("not allowed for your role")]
    Forbidden,
    /// No such thing.
    #[error("not found")]
    NotFound,
    /// The path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The JSON body is missing, malformed or has wrong fields (its text is not echoed).
    #[error("invalid request body")]
    BadBody,
    /// A body field has a value the API refuses.
    #[error("{0}")]
    Invalid(&'static str),
    /// The query string is malformed.
    #[error("invalid query: {0}")]
    BadQuery(&'static str),
    /// Too many failed log-ins for this login.
    #[error("too many failed log-ins; try again in a minute")]
    Throttled,
    /// The SIP loop refused the command (its message).
    #[error("{0}")]
    Refused(String),
    /// The SIP loop did not answer in time or is gone.
    #[error("the phone system did not answer in time")]
    Unavailable,
    /// No statistics source is configured or the store failed.
    #[error("statistics are not available")]
    NoStats,
    /// A body field has a value the API refuses, with a message made by kald (never the input).
    #[error("{0}")]
    InvalidText(String),
    /// No records source is configured (recordings, access requests, audit).
    #[error("records are not available")]
    NoRecords,
    /// Something internal failed (logged by the caller without personal data).
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadBody | Self::Invalid(_) | Self::InvalidText(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::BadQuery(_) => StatusCode::BAD_REQUEST,
            Self::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Self::Refused(_) => StatusCode::CONFLICT,
            Self::Unavailable | Self::NoStats | Self::NoRecords => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.to_string(),
            }),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"kald\""),
            );
        }
        response
    }
}

/// A JSON body whose rejection is an [`ApiError::BadBody`] (422) that does not echo the input.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(value)| Self(value))
            .map_err(|_: JsonRejection| ApiError::BadBody)
    }
}
