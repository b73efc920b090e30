//! The control messages links carry, one per frame: a kind byte, then the body.
//!
//! ```text
//! kind  1 = advertisement   u8
//! body  the advertisement's wire encoding (see crate::advertisement::wire)
//! ```
//!
//! Other kinds are refused, so a later version adds kinds rather than changing this one.

use crate::advertisement::SignedAdvertisement;
use crate::advertisement::wire::DecodeError;

/// The kind byte of an advertisement.
const ADVERTISEMENT: u8 = 1;

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlMessage {
    /// A signed link-state advertisement, flooded unchanged from its origin.
    Advertisement(SignedAdvertisement),
}

/// Why a frame is not a control message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The frame is empty.
    #[error("an empty control frame")]
    Empty,
    /// A kind this version does not know.
    #[error("control message kind {0} is not known")]
    UnknownKind(u8),
    /// The advertisement does not decode.
    #[error("the advertisement does not decode: {0}")]
    Advertisement(#[from] DecodeError),
}

impl MessageError {
    /// A stable label for counting malformed messages.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::UnknownKind(_) => "unknown_kind",
            Self::Advertisement(_) => "undecodable_advertisement",
        }
    }
}

impl ControlMessage {
    /// The frame payload.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Advertisement(signed) => {
                let mut bytes = vec![ADVERTISEMENT];
                bytes.extend_from_slice(&signed.encode());
                bytes
            }
        }
    }

    /// The message a frame payload holds; only its form is checked.
    pub fn decode(bytes: &[u8]) -> Result<Self, MessageError> {
        match bytes.split_first() {
            None => Err(MessageError::Empty),
            Some((&ADVERTISEMENT, body)) => {
                Ok(Self::Advertisement(SignedAdvertisement::decode(body)?))
            }
            Some((&kind, _)) => Err(MessageError::UnknownKind(kind)),
        }
    }
}
