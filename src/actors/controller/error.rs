//! `ControllerError`: why the controller refused or could not carry out a request (a command, a
//! pull, a change of its settings). REST maps it to a status in one table (`crate::http::error`).

use std::time::Duration;

use crate::actors::protocol::CommandError;
use crate::actors::protocol::wire::WireError;
use crate::store::StoreError;

/// Longest host name accepted (a DNS name's limit).
pub const MAX_HOST_NAME: usize = 253;

/// Longest aggregation window accepted.
pub const MAX_AGGREGATION: Duration = Duration::from_secs(3600);

/// Every error of the controller's replies.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A host name that is empty, too long, or holds a `/` or a control character.
    #[error("invalid host name {0:?}: 1 to {MAX_HOST_NAME} characters, no '/' nor control characters")]
    InvalidHostName(String),
    /// An aggregation window outside (0, 3600] seconds.
    #[error("aggregation must be within (0, 3600] seconds, got {}", .0.as_secs_f64())]
    InvalidAggregation(Duration),
    /// The controller's durable store refused a write.
    #[error("cannot persist the {what}")]
    Storage {
        what: &'static str,
        #[source]
        source: Box<StoreError>,
    },
    /// No such host in the fleet view.
    #[error("unknown host {0}")]
    UnknownHost(String),
    /// The host is known but not connected.
    #[error("host {0} is offline")]
    Offline(String),
    /// The host's link went away before it answered.
    #[error("host {0} dropped the request")]
    Dropped(String),
    /// The host did not answer within the call timeout.
    #[error("host {0} did not answer in time")]
    Timeout(String),
    /// The host answered with a frame that does not decode.
    #[error("host {host} answered a malformed frame")]
    Malformed {
        host: String,
        #[source]
        source: WireError,
    },
    /// The host refused the command.
    #[error("host {host} refused the command")]
    Refused {
        host: String,
        #[source]
        source: CommandError,
    },
    /// The host applied a command, but the pull that should show it in the view failed.
    #[error("host {host} applied the command, but the fleet view could not follow it")]
    Unconfirmed {
        host: String,
        #[source]
        source: Box<ControllerError>,
    },
}

impl ControllerError {
    /// The error with its causes, `: `-separated, for logs.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    }
}

/// Checks a host name given to the controller.
pub fn check_host_name(host: &str) -> Result<(), ControllerError> {
    let bad = host.is_empty() || host.len() > MAX_HOST_NAME || host.chars().any(|c| c.is_control() || c == '/');
    if bad { Err(ControllerError::InvalidHostName(host.to_owned())) } else { Ok(()) }
}

/// Checks an aggregation window.
pub fn check_aggregation(window: Duration) -> Result<(), ControllerError> {
    if window.is_zero() || window > MAX_AGGREGATION { Err(ControllerError::InvalidAggregation(window)) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_windows_are_checked_at_the_controller() {
        assert!(check_host_name("vm-1.example").is_ok());
        for bad in ["", "a/b", "a\nb", &"x".repeat(254)] {
            assert!(matches!(check_host_name(bad), Err(ControllerError::InvalidHostName(_))), "{bad:?}");
        }
        assert!(check_aggregation(Duration::from_millis(1)).is_ok());
        assert!(check_aggregation(MAX_AGGREGATION).is_ok());
        assert!(check_aggregation(Duration::ZERO).is_err());
        assert!(check_aggregation(MAX_AGGREGATION + Duration::from_millis(1)).is_err());
    }

    #[test]
    fn the_chain_names_the_cause() {
        let e = ControllerError::Refused { host: "vm1".into(), source: CommandError::NotFound("web".into()) };
        assert_eq!(e.chain(), "host vm1 refused the command: no container matches \"web\"");
    }
}
