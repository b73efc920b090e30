//! What one leaf of the log is: a versioned byte string around an issued certificate.
//!
//! The leaf bytes are what third parties hash, so their layout is a published contract and is
//! versioned from the first byte on:
//!
//! ```text
//! leaf (version 1) = 0x01 || timestamp_ms (u64, big-endian) || certificate (DER)
//! ```
//!
//! - `0x01` lets a later layout (say, a precertificate or a revocation record) coexist in the same
//!   tree without any old leaf becoming ambiguous.
//! - `timestamp_ms` is when the CA logged the certificate, in milliseconds since the Unix epoch.
//!   It is part of the leaf (and so of the tree) so an auditor can tell *when* a certificate
//!   entered the log without trusting anyone's word. It does not depend on the leaf's index, so
//!   the same entry hashes the same wherever it lands.
//! - The certificate is the exact DER the CA issued: one DER `SEQUENCE` with nothing after it.
//!   Only its outer framing is checked here; this module never interprets X.509.
//!
//! The Merkle leaf hash is RFC 6962's `SHA-256(0x00 || leaf)` over these bytes.

use thiserror::Error;

use super::merkle::{MerkleHash, leaf_hash};

/// The leaf layout this module writes and the only one it reads.
pub const ENTRY_VERSION: u8 = 1;

/// Largest certificate the log accepts.
///
/// The CA's own profiles produce certificates of one to two kilobytes; the bound exists so a
/// damaged length on disk or a hostile proof bundle cannot make a reader allocate without limit.
pub const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// Bytes before the certificate: the version and the timestamp.
const PREFIX_LEN: usize = 1 + 8;

/// Largest encoded entry: the prefix and the largest certificate.
pub const MAX_ENTRY_LEN: usize = PREFIX_LEN + MAX_CERTIFICATE_LEN;

/// ASN.1 tag of a constructed `SEQUENCE`, the outer element of every X.509 certificate.
const DER_SEQUENCE: u8 = 0x30;

/// Why bytes are not a log entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryError {
    /// The leaf is shorter than its fixed prefix plus a minimal DER element.
    #[error("a log entry is at least {min} bytes; this one has {len}")]
    TooShort {
        /// Bytes present.
        len: usize,
        /// Bytes required.
        min: usize,
    },
    /// The leaf was written by a layout this build does not know.
    #[error("log entry version {0} is unknown; this build reads version {ENTRY_VERSION}")]
    UnknownVersion(u8),
    /// The certificate exceeds [`MAX_CERTIFICATE_LEN`].
    #[error("the certificate is {len} bytes; the log accepts at most {MAX_CERTIFICATE_LEN}")]
    CertificateTooLong {
        /// Bytes in the certificate.
        len: usize,
    },
    /// The certificate is not exactly one DER `SEQUENCE`.
    #[error("the certificate is not one DER SEQUENCE: {0}")]
    NotDer(&'static str),
}

/// One issued certificate as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    timestamp_ms: u64,
    certificate_der: Vec<u8>,
}

impl LogEntry {
    /// An entry for `certificate_der`, logged at `timestamp_ms` (milliseconds since the epoch).
    ///
    /// Refuses anything that is not one DER `SEQUENCE` of at most [`MAX_CERTIFICATE_LEN`]
    /// bytes, so the log can never hold a leaf that a verifier would fail to read back.
    pub fn new(timestamp_ms: u64, certificate_der: Vec<u8>) -> Result<Self, EntryError> {
        check_certificate_framing(&certificate_der)?;
        Ok(Self {
            timestamp_ms,
            certificate_der,
        })
    }

    /// When the CA logged the certificate, in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The certificate exactly as issued.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The leaf bytes (see the module documentation for the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut leaf = Vec::with_capacity(PREFIX_LEN + self.certificate_der.len());
        leaf.push(ENTRY_VERSION);
        leaf.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        leaf.extend_from_slice(&self.certificate_der);
        leaf
    }

    /// Reads leaf bytes back; the exact inverse of [`LogEntry::encode`].
    ///
    /// Strict, because leaves arrive from disk and from proof bundles: an unknown version, a
    /// truncated prefix or trailing bytes after the certificate are all errors.
    pub fn decode(leaf: &[u8]) -> Result<Self, EntryError> {
        let min = PREFIX_LEN + 2;
        if leaf.len() < min {
            return Err(EntryError::TooShort {
                len: leaf.len(),
                min,
            });
        }
        let (prefix, certificate) = leaf.split_at(PREFIX_LEN);
        if prefix[0] != ENTRY_VERSION {
            return Err(EntryError::UnknownVersion(prefix[0]));
        }
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&prefix[1..]);
        Self::new(u64::from_be_bytes(timestamp), certificate.to_vec())
    }

    /// The RFC 6962 leaf hash of this entry: `SHA-256(0x00 || encode())`.
    pub fn leaf_hash(&self) -> MerkleHash {
        leaf_hash(&self.encode())
    }
}

/// Checks that `der` is one definite-length DER `SEQUENCE` covering every byte.
///
/// This is framing only (tag, minimal length, no trailing data): enough to keep arbitrary bytes
/// out of the log, without pulling an X.509 parser into offline verifiers.
fn check_certificate_framing(der: &[u8]) -> Result<(), EntryError> {
    if der.len() > MAX_CERTIFICATE_LEN {
        return Err(EntryError::CertificateTooLong { len: der.len() });
    }
    let [tag, first_len, rest @ ..] = der else {
        return Err(EntryError::NotDer("shorter than a tag and a length"));
    };
    if *tag != DER_SEQUENCE {
        return Err(EntryError::NotDer("the outer tag is not SEQUENCE"));
    }
    let (content_len, content) = if *first_len < 0x80 {
        (usize::from(*first_len), rest)
    } else {
        let count = usize::from(first_len & 0x7f);
        // 0x80 is BER's indefinite length; more than 3 length bytes exceeds MAX_CERTIFICATE_LEN.
        if count == 0 || count > 3 || rest.len() < count {
            return Err(EntryError::NotDer("the length field is malformed"));
        }
        let (len_bytes, content) = rest.split_at(count);
        if len_bytes[0] == 0 {
            return Err(EntryError::NotDer("the length has a leading zero byte"));
        }
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, byte| (acc << 8) | usize::from(*byte));
        if len < 0x80 {
            return Err(EntryError::NotDer("a short length is in the long form"));
        }
        (len, content)
    };
    if content.len() != content_len {
        return Err(EntryError::NotDer(
            "the length does not match the bytes present",
        ));
    }
    Ok(())
}
