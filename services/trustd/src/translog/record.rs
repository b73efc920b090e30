//! The byte layout of the log file: a header, then self-checking records.
//!
//! ```text
//! file   = "BKTLOG" 0x00 0x01 || record*
//! record = length (u32 BE) || !length (u32 BE) || leaf (length bytes) || SHA-256(0x00 || leaf)
//! ```
//!
//! - the header names the file and its format version, so a foreign file is never taken for a log;
//! - `leaf` is the encoded [`super::LogEntry`]; the trailing hash is its RFC 6962 leaf hash, so a
//!   record checks itself and loading needs no second file that could disagree with the first;
//! - the length's complement makes a damaged length detectable, which is what lets a torn write
//!   (an intact length whose record runs past the end of the file) be told apart from corruption.

use super::entry::MAX_ENTRY_LEN;
use super::merkle::MerkleHash;

/// File magic: the name and the format version (1).
pub(super) const FILE_MAGIC: &[u8; 8] = b"BKTLOG\x00\x01";
/// Length of the file header.
pub(super) const FILE_HEADER_LEN: u64 = FILE_MAGIC.len() as u64;
/// Length and complemented length.
pub(super) const RECORD_HEADER_LEN: u64 = 8;
/// The leaf hash after each entry.
pub(super) const RECORD_HASH_LEN: u64 = 32;

/// One record: the length, its complement, the leaf and its hash.
pub(super) fn encode_record(leaf: &[u8], hash: &MerkleHash) -> Vec<u8> {
    debug_assert!(
        leaf.len() <= MAX_ENTRY_LEN,
        "entries are bounded far below u32::MAX"
    );
    let len = leaf.len() as u32;
    let mut record =
        Vec::with_capacity(leaf.len() + (RECORD_HEADER_LEN + RECORD_HASH_LEN) as usize);
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&(!len).to_be_bytes());
    record.extend_from_slice(leaf);
    record.extend_from_slice(hash);
    record
}

/// The entry length of a record header, if the header is intact and the length possible.
pub(super) fn decode_record_header(header: &[u8]) -> Option<u32> {
    let len = u32::from_be_bytes(header.get(0..4)?.try_into().ok()?);
    let check = u32::from_be_bytes(header.get(4..8)?.try_into().ok()?);
    (check == !len && len != 0 && len as usize <= MAX_ENTRY_LEN).then_some(len)
}
