//! The JSON form of tree heads and proof bundles, as D-Bus, HTTP and `bunkerctl` carry them.
//!
//! This is network input, so the reading side is strict and total: unknown or duplicate fields,
//! wrong lengths, upper-case or odd-length hex, and oversized documents are refused with the name
//! of the offending field, and nothing here can panic or allocate beyond the document's size.
//! Every binary field is lower-case hex (one canonical spelling, so a bundle's text identifies
//! it); integers are plain JSON numbers.
//!
//! ```json
//! {"size": 8, "timestamp_ms": 1767225600000, "root": "<64 hex>", "signature": "<DER, hex>"}
//! ```

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::entry::{EntryError, LogEntry, MAX_ENTRY_LEN};
use super::merkle::MerkleHash;
use super::tree_head::{MAX_SIGNATURE_LEN, SignedTreeHead, TreeHead};

/// Largest signed tree head document accepted: the fields with generous room for whitespace.
pub const MAX_TREE_HEAD_JSON_LEN: usize = 4 * 1024;

/// Why a JSON document was refused.
#[derive(Debug, Error)]
pub enum WireError {
    /// The document is larger than any valid one.
    #[error("the document is {len} bytes; at most {max} are accepted")]
    TooLarge {
        /// Size of the document.
        len: usize,
        /// Largest accepted size.
        max: usize,
    },
    /// Not JSON, or not the expected shape (unknown, duplicate, missing or mistyped fields).
    #[error("not a valid document: {0}")]
    Json(#[from] serde_json::Error),
    /// The document declares a format this build does not read.
    #[error("unknown format {found:?}; this build reads {expected:?}")]
    UnknownFormat {
        /// What the document says.
        found: String,
        /// What this build reads.
        expected: &'static str,
    },
    /// A field has the right JSON type but an unacceptable value.
    #[error("field `{field}`: {reason}")]
    Field {
        /// Dotted path of the field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The log entry carried by the document is not a valid entry.
    #[error("field `{field}`: {source}")]
    Entry {
        /// Dotted path of the field.
        field: String,
        /// Why the entry was refused.
        source: EntryError,
    },
}

/// A signed tree head on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TreeHeadWire {
    size: u64,
    timestamp_ms: u64,
    root: String,
    signature: String,
}

impl TreeHeadWire {
    pub(super) fn from_signed(signed: &SignedTreeHead) -> Self {
        Self {
            size: signed.head.size,
            timestamp_ms: signed.head.timestamp_ms,
            root: hex::encode(signed.head.root),
            signature: hex::encode(&signed.signature),
        }
    }

    pub(super) fn into_signed(self, field: &str) -> Result<SignedTreeHead, WireError> {
        let root = decode_hash(&format!("{field}.root"), &self.root)?;
        let signature = decode_bytes(
            &format!("{field}.signature"),
            &self.signature,
            MAX_SIGNATURE_LEN,
        )?;
        if signature.is_empty() {
            return Err(field_error(&format!("{field}.signature"), "it is empty"));
        }
        Ok(SignedTreeHead {
            head: TreeHead {
                size: self.size,
                root,
                timestamp_ms: self.timestamp_ms,
            },
            signature,
        })
    }
}

/// The inclusion part of a proof bundle on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InclusionWire {
    pub(super) index: u64,
    pub(super) entry: String,
    pub(super) path: Vec<String>,
}

/// The consistency part of a proof bundle on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsistencyWire {
    pub(super) old_tree_head: TreeHeadWire,
    pub(super) path: Vec<String>,
}

/// A whole proof bundle on the wire.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BundleWire {
    pub(super) format: String,
    pub(super) tree_head: TreeHeadWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) inclusion: Option<InclusionWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) consistency: Option<ConsistencyWire>,
}

impl SignedTreeHead {
    /// The JSON form (see the module documentation), compact.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&TreeHeadWire::from_signed(self))
            .expect("a tree head serialises: integers and strings only")
    }

    /// Reads the JSON form strictly. Does not check the signature: call
    /// [`SignedTreeHead::verify`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, WireError> {
        check_len(bytes, MAX_TREE_HEAD_JSON_LEN)?;
        serde_json::from_slice::<TreeHeadWire>(bytes)?.into_signed("tree_head")
    }
}

/// Refuses documents larger than `max` before parsing anything.
pub(super) fn check_len(bytes: &[u8], max: usize) -> Result<(), WireError> {
    if bytes.len() > max {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

/// A 32-byte hash as exactly 64 lower-case hex digits.
pub(super) fn decode_hash(field: &str, text: &str) -> Result<MerkleHash, WireError> {
    if text.len() != 64 {
        return Err(field_error(
            field,
            &format!(
                "a hash is 64 hex digits; this has {} characters",
                text.len()
            ),
        ));
    }
    let mut hash = [0u8; 32];
    decode_lower_hex(field, text, &mut hash)?;
    Ok(hash)
}

/// A list of hashes of at most `max` entries.
pub(super) fn decode_path(
    field: &str,
    texts: &[String],
    max: usize,
) -> Result<Vec<MerkleHash>, WireError> {
    if texts.len() > max {
        return Err(field_error(
            field,
            &format!(
                "{} hashes; no tree of fewer than 2^64 entries needs more than {max}",
                texts.len()
            ),
        ));
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| decode_hash(&format!("{field}[{i}]"), text))
        .collect()
}

/// A log entry as the lower-case hex of its leaf bytes.
pub(super) fn decode_entry(field: &str, text: &str) -> Result<LogEntry, WireError> {
    let leaf = decode_bytes(field, text, MAX_ENTRY_LEN)?;
    LogEntry::decode(&leaf).map_err(|source| WireError::Entry {
        field: field.to_string(),
        source,
    })
}

/// Variable-length bytes as lower-case hex, at most `max` bytes.
fn decode_bytes(field: &str, text: &str, max: usize) -> Result<Vec<u8>, WireError> {
    if text.len() > 2 * max {
        return Err(field_error(
            field,
            &format!("longer than the {max} bytes this field can hold"),
        ));
    }
    if !text.len().is_multiple_of(2) {
        return Err(field_error(field, "odd number of hex digits"));
    }
    let mut bytes = vec![0u8; text.len() / 2];
    decode_lower_hex(field, text, &mut bytes)?;
    Ok(bytes)
}

fn decode_lower_hex(field: &str, text: &str, out: &mut [u8]) -> Result<(), WireError> {
    if let Some(bad) = text
        .bytes()
        .position(|b| !(b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(field_error(
            field,
            &format!("character {bad} is not a lower-case hex digit"),
        ));
    }
    hex::decode_to_slice(text, out).map_err(|e| field_error(field, &e.to_string()))
}

fn field_error(field: &str, reason: &str) -> WireError {
    WireError::Field {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}
