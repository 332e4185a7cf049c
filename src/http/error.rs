//! The one error shape of the REST API, `{"error": code, "message": text}`, and the one table from
//! error to HTTP status.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::{Rejection, Reply};

use crate::actors::controller::ControllerError;
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

/// What the controller's errors answer: its own validation is a 400 naming the field, a host
/// refusing a command answers as that host's error, a storage failure is a 500, and a command
/// the view could not follow answers with the status of what failed.
impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> Self {
        let message = e.to_string();
        match e {
            ControllerError::InvalidHostName(_) => Self::BadRequest(format!("address: {message}")),
            ControllerError::InvalidAggregation(_) => Self::BadRequest(message),
            ControllerError::UnknownHost(_) => Self::NotFound(message),
            ControllerError::Offline(_) | ControllerError::Dropped(_) => Self::Unavailable(message),
            ControllerError::Timeout(_) => Self::Timeout(message),
            ControllerError::Refused { source, .. } => source.into(),
            ControllerError::Storage { .. } | ControllerError::Malformed { .. } => Self::Internal(message),
            ControllerError::Unconfirmed { source, .. } => {
                let cause = source.chain();
                Self::from(*source).with_message(format!("{message}: {cause}"))
            }
        }
    }
}

impl ApiError {
    /// The same status with another message.
    fn with_message(self, m: String) -> Self {
        match self {
            Self::BadRequest(_) => Self::BadRequest(m),
            Self::NotFound(_) => Self::NotFound(m),
            Self::Conflict(_) => Self::Conflict(m),
            Self::Unavailable(_) => Self::Unavailable(m),
            Self::Timeout(_) => Self::Timeout(m),
            Self::NotImplemented(_) => Self::NotImplemented(m),
            Self::Internal(_) => Self::Internal(m),
            other => other,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    fn status(e: ControllerError) -> (u16, String) {
        let api = ApiError::from(e);
        (api.status().0.as_u16(), api.to_string())
    }

    #[test]
    fn controller_errors_answer_the_status_of_their_kind() {
        let corrupt = serde_json::from_str::<u8>("x").unwrap_err();
        let storage = ControllerError::Storage {
            what: "known hosts",
            source: Box::new(StoreError::Corrupt { key: "k".into(), source: corrupt }),
        };
        assert_eq!(status(storage).0, 500, "a storage failure is never a 400");
        let (code, message) = status(ControllerError::InvalidHostName("a/b".into()));
        assert!(code == 400 && message.starts_with("address: "), "{code} {message}");
        let (code, message) = status(ControllerError::InvalidAggregation(std::time::Duration::ZERO));
        assert!(code == 400 && message.contains("aggregation"), "{code} {message}");
        assert_eq!(status(ControllerError::UnknownHost("h".into())).0, 404);
        assert_eq!(status(ControllerError::Offline("h".into())).0, 503);
        assert_eq!(status(ControllerError::Dropped("h".into())).0, 503);
        assert_eq!(status(ControllerError::Timeout("h".into())).0, 504);
        let refused = ControllerError::Refused { host: "h".into(), source: CommandError::NotFound("web".into()) };
        assert_eq!(status(refused), (404, "no container matches \"web\"".to_owned()));
        let conflict = ControllerError::Refused { host: "h".into(), source: CommandError::Conflict("ignored".into()) };
        assert_eq!(status(conflict).0, 409);
    }

    #[test]
    fn a_command_the_view_could_not_follow_answers_the_status_of_what_failed() {
        let source = Box::new(ControllerError::Timeout("h".into()));
        let (code, message) = status(ControllerError::Unconfirmed { host: "h".into(), source });
        assert_eq!(code, 504);
        assert!(message.contains("applied the command") && message.contains("did not answer"), "{message}");
    }
}
