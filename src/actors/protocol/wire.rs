//! The frame every cross-node message field travels in: a protocol version byte, then the
//! bincode encoding of a [`super::protocol`] type.
//!
//! ractor_cluster's `BytesConvertable::from_bytes` cannot fail, so [`Wire`] keeps the decoding
//! outcome instead of panicking: a receiver checks [`Wire::open`], drops what does not decode and
//! counts it ([`malformed_total`]). Frames are bounded by [`MAX_FRAME`] both ways.

use std::sync::atomic::{AtomicU64, Ordering};

use ractor::BytesConvertable;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the host ↔ controller protocol. A peer speaking another version is refused.
/// 2: `Content::patches` (field-level deltas) and `CommandOk` with the antagonist's answers.
/// 3: patches carry restart times and addresses in binary (`protocol::Stamp`, `IpAddr`).
pub const PROTOCOL_VERSION: u8 = 3;

/// Largest accepted frame (well under ractor_cluster's 16 MiB transport limit).
pub const MAX_FRAME: usize = 4 << 20;

static MALFORMED: AtomicU64 = AtomicU64::new(0);

/// Frames dropped by this process because they did not decode.
pub fn malformed_total() -> u64 {
    MALFORMED.load(Ordering::Relaxed)
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty frame")]
    Empty,
    #[error("peer speaks protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    Version(u8),
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("frame does not decode: {0}")]
    Decode(String),
    #[error("message could not be encoded: {0}")]
    Encode(String),
}

/// A message field as it crosses nodes: the value, or why it could not be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Wire<T>(pub Result<T, WireError>);

impl<T> Wire<T> {
    pub fn new(value: T) -> Self {
        Self(Ok(value))
    }

    /// The value, or the decoding error (counted once, here).
    pub fn open(self) -> Result<T, WireError> {
        self.0.inspect_err(|e| {
            MALFORMED.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "dropped a malformed frame");
        })
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// Encodes `value` as a frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let mut out = vec![PROTOCOL_VERSION];
    bincode::serde::encode_into_std_write(value, &mut out, config()).map_err(|e| WireError::Encode(e.to_string()))?;
    if out.len() > MAX_FRAME {
        return Err(WireError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Decodes a frame made by [`encode`]; never panics, whatever the bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(WireError::Version(version));
    }
    if bytes.len() > MAX_FRAME {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (value, used) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| WireError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(WireError::Decode(format!("{} trailing bytes", body.len() - used)));
    }
    Ok(value)
}

impl<T: Serialize + DeserializeOwned> BytesConvertable for Wire<T> {
    fn into_bytes(self) -> Vec<u8> {
        // an unencodable value becomes an empty frame, which the receiver refuses
        self.0.and_then(|v| encode(&v)).unwrap_or_default()
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(decode(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::actors::protocol::{Content, Heartbeat};

    #[test]
    fn frames_round_trip() {
        let hb = Heartbeat { host: "vm1".into(), version: 42, signals: Default::default() };
        let back: Wire<Heartbeat> = Wire::from_bytes(Wire::new(hb.clone()).into_bytes());
        assert_eq!(back.open(), Ok(hb));
    }

    #[test]
    fn another_protocol_version_is_refused_by_name() {
        let mut bytes = encode(&Heartbeat { host: "vm1".into(), version: 1, signals: Default::default() }).unwrap();
        bytes[0] = PROTOCOL_VERSION + 1;
        let err = decode::<Heartbeat>(&bytes).unwrap_err();
        assert_eq!(err, WireError::Version(PROTOCOL_VERSION + 1));
        assert!(err.to_string().contains("protocol version"));
    }

    #[test]
    fn empty_and_truncated_frames_are_errors() {
        assert_eq!(decode::<Heartbeat>(&[]), Err(WireError::Empty));
        let bytes = encode(&Heartbeat { host: "vm1".into(), version: 1, signals: Default::default() }).unwrap();
        assert!(matches!(decode::<Heartbeat>(&bytes[..bytes.len() - 1]), Err(WireError::Decode(_))));
    }

    #[test]
    fn a_huge_length_prefix_does_not_allocate_or_panic() {
        // version, then a varint claiming a string of u64::MAX bytes
        let bytes = [PROTOCOL_VERSION, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(decode::<Content>(&bytes).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Content>(&bytes);
            let _ = decode::<Heartbeat>(&bytes);
        }
    }
}
