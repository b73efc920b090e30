//! One audit record, its canonical encoding and its hash.
//!
//! On disk a record is one JSON line `{seq, time, actor, action, target, detail, prev, hash}`.
//! The hash never covers the JSON text (whose key order and spacing a serializer may change);
//! it covers a fixed binary encoding of the fields (version 1):
//!
//! ```text
//! SHA-256( "bunkeros-audit-record-v1" 0x00
//!          || seq (u64 big-endian)
//!          || field(time) || field(actor) || field(action) || field(target)
//!          || field(canonical JSON of detail)
//!          || prev (the previous record's hash, 32 bytes; zeros for the first record) )
//! field(x) = len(x) (u32 big-endian) || x
//! ```
//!
//! The canonical JSON of `detail` has object keys sorted by their bytes and no whitespace, so
//! the same value read back from the file hashes the same whatever wrote it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Domain separator of record hashes; versioned with the encoding.
pub const RECORD_DOMAIN: &[u8] = b"bunkeros-audit-record-v1\0";

/// The `prev` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// Actions that start with this prefix are written by the log itself (seals); callers cannot
/// append them, so a seal record always means the log sealed.
pub const RESERVED_ACTION_PREFIX: &str = "audit.";

/// The action of a seal record.
pub const SEAL_ACTION: &str = "audit.seal";

/// The action of the record written when a seal was due but no signer could sign.
pub const SEAL_SKIPPED_ACTION: &str = "audit.seal-skipped";

/// What a caller asks to record: who did what to which thing, with details.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Who: `operator:alice` (a D-Bus caller's user), `minerd` (an automatic decision).
    pub actor: String,
    /// What, as a dotted verb: `miner.set-pools`, `miner.reboot`, `curtailment.sleep`.
    pub action: String,
    /// Which thing: a miner's address, a pool URL, an alarm id.
    pub target: String,
    /// Anything else worth keeping (parameters, outcome), as JSON.
    pub detail: Value,
}

impl Entry {
    /// An entry with the given fields.
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
        detail: Value,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            detail,
        }
    }
}

/// One line of the log, as written and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// 1 for the first record, then one more for each.
    pub seq: u64,
    /// When it was appended, RFC 3339 in UTC; kept as the exact text that was hashed.
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Value,
    /// Hex SHA-256 of the previous record (64 zeros for the first).
    pub prev: String,
    /// Hex SHA-256 of this record's canonical encoding (see the module documentation).
    pub hash: String,
}

/// Why a line is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a JSON audit record: {0}")]
    Json(String),
    #[error("`{field}` is not 64 hex digits")]
    BadHash { field: &'static str },
    #[error("`seq` is 0; records count from 1")]
    ZeroSeq,
}

impl Record {
    /// Builds the record that follows `prev` (hash `prev_hash`, or [`GENESIS`]).
    pub fn chained(seq: u64, time: String, entry: Entry, prev_hash: &[u8; 32]) -> Self {
        let mut record = Record {
            seq,
            time,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            detail: entry.detail,
            prev: hex::encode(prev_hash),
            hash: String::new(),
        };
        record.hash = hex::encode(record.computed_hash(prev_hash));
        record
    }

    /// Parses one line (without its newline) and checks its shape, not its hash.
    pub fn parse(line: &[u8]) -> Result<Self, RecordError> {
        let record: Record =
            serde_json::from_slice(line).map_err(|e| RecordError::Json(e.to_string()))?;
        if record.seq == 0 {
            return Err(RecordError::ZeroSeq);
        }
        decode_hash(&record.prev).ok_or(RecordError::BadHash { field: "prev" })?;
        decode_hash(&record.hash).ok_or(RecordError::BadHash { field: "hash" })?;
        Ok(record)
    }

    /// The line to write, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        // A Record holds only strings, numbers and JSON values: serialising cannot fail.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// `prev` as bytes (checked by [`Record::parse`] and [`Record::chained`]).
    pub fn prev_bytes(&self) -> [u8; 32] {
        decode_hash(&self.prev).unwrap_or(GENESIS)
    }

    /// `hash` as bytes, as written in the record.
    pub fn stated_hash(&self) -> Option<[u8; 32]> {
        decode_hash(&self.hash)
    }

    /// The hash the record's fields give, whatever its `hash` field says.
    pub fn recomputed_hash(&self) -> [u8; 32] {
        self.computed_hash(&self.prev_bytes())
    }

    fn computed_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(RECORD_DOMAIN);
        h.update(self.seq.to_be_bytes());
        for field in [&self.time, &self.actor, &self.action, &self.target] {
            update_field(&mut h, field.as_bytes());
        }
        update_field(&mut h, canonical_json(&self.detail).as_bytes());
        h.update(prev);
        h.finalize().into()
    }
}

fn update_field(h: &mut Sha256, bytes: &[u8]) {
    // Fields longer than 4 GiB cannot occur: a line is read whole into memory, bounded far below.
    h.update((bytes.len() as u32).to_be_bytes());
    h.update(bytes);
}

/// 64 hex digits to bytes.
pub fn decode_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if text.len() != 64 {
        return None;
    }
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// JSON with object keys sorted by their bytes and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}
