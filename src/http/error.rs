//! The one error shape of the REST API, `{"error": code, "message": text}`, and the one table from
//! error to HTTP status.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::actors::controller::HostUnavailable;
use crate::actors::protocol::CommandError;

/// Every error a handler can answer with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type: send application/json")]
    UnsupportedMediaType,
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// The status and code of each error: the only place they are decided.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "host_offline"),
            Self::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "host_timeout"),
            Self::NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, "not_implemented"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::NotFound(_) => Self::NotFound(e.to_string()),
            CommandError::Ambiguous { .. } | CommandError::Conflict(_) => Self::Conflict(e.to_string()),
            CommandError::Invalid(_) => Self::BadRequest(e.to_string()),
            CommandError::Storage(_) => Self::Internal(e.to_string()),
        }
    }
}

impl From<HostUnavailable> for ApiError {
    fn from(e: HostUnavailable) -> Self {
        match e {
            HostUnavailable::Unknown(_) => Self::NotFound(e.to_string()),
            HostUnavailable::Offline(_) => Self::Unavailable(e.to_string()),
        }
    }
}

/// The JSON shape of every error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `unauthorized`, `not_found`, `method_not_allowed`, `conflict`,
    /// `payload_too_large`, `host_offline`, `host_timeout`, `not_implemented`, `internal`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// The JSON reply for an error.
pub fn reply(e: &ApiError) -> warp::reply::Response {
    let (status, code) = e.status();
    let body = warp::reply::json(&ErrorBody { error: code.to_owned(), message: e.to_string() });
    warp::reply::with_status(body, status).into_response()
}

/// Turns every rejection into the JSON error shape.
pub async fn recover(r: Rejection) -> Result<warp::reply::Response, Infallible> {
    let e = if let Some(e) = r.find::<ApiError>() {
        e.clone()
    } else if r.is_not_found() {
        ApiError::NotFound("no such path".to_owned())
    } else if let Some(e) = r.find::<warp::filters::body::BodyDeserializeError>() {
        ApiError::BadRequest(format!("invalid JSON body: {e}"))
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else if r.find::<warp::reject::UnsupportedMediaType>().is_some() {
        ApiError::UnsupportedMediaType
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::BadRequest("a Content-Length is required".to_owned())
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::BadRequest("invalid query string".to_owned())
    } else if r.find::<warp::reject::MissingHeader>().is_some() || r.find::<warp::reject::InvalidHeader>().is_some() {
        ApiError::BadRequest("missing or invalid header".to_owned())
    } else {
        tracing::warn!(rejection = ?r, "unhandled rejection");
        ApiError::BadRequest("bad request".to_owned())
    };
    Ok(reply(&e))
}
