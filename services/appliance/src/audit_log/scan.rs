//! Reading a log file into records, and the chain rules both the writer (on open) and the
//! verifier apply: each record's hash matches its fields, `seq` counts up from 1 without a
//! gap, and `prev` is the previous record's hash.

use std::collections::HashSet;

use super::record::{GENESIS, Record};
use super::verify::{Truncation, VerifyError};

/// Longest line accepted; real records are a few hundred bytes.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// A final line that a crash left unfinished (never acknowledged, since append returns only
/// after the fsync of a whole line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Its line number (from 1).
    pub line: u64,
    /// Where the complete records end: the file is cut back to this length.
    pub keep_bytes: u64,
    /// How many bytes the torn line had.
    pub torn_bytes: u64,
}

/// A parsed record with where it was.
#[derive(Debug, Clone)]
pub struct ScannedRecord {
    pub line: u64,
    pub record: Record,
}

/// A whole file: its complete records and, if a crash left one, its torn tail.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    pub records: Vec<ScannedRecord>,
    pub torn: Option<TornTail>,
}

/// Splits `bytes` into records. A bad line that is not the last one is `Malformed`; the last
/// line is torn when it has no newline or does not parse.
pub fn scan(bytes: &[u8]) -> Result<Scan, VerifyError> {
    let mut scan = Scan::default();
    let mut start = 0usize;
    let mut line = 0u64;
    while start < bytes.len() {
        line += 1;
        let newline = bytes[start..].iter().position(|b| *b == b'\n');
        let end = newline.map_or(bytes.len(), |i| start + i);
        let is_last = newline.is_none() || end + 1 == bytes.len();
        let parsed = if end - start > MAX_LINE_BYTES {
            Err(format!("line longer than {MAX_LINE_BYTES} bytes"))
        } else {
            Record::parse(&bytes[start..end]).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(record) if newline.is_some() => scan.records.push(ScannedRecord { line, record }),
            Err(reason) if !is_last => return Err(VerifyError::Malformed { line, reason }),
            // A line without newline is always the last one.
            _ => {
                scan.torn = Some(TornTail {
                    line,
                    keep_bytes: start as u64,
                    torn_bytes: (bytes.len() - start) as u64,
                });
            }
        }
        start = end + 1;
    }
    Ok(scan)
}

/// Walks records in file order and calls `each` for every record that is correctly chained.
/// The first problem ends the walk.
pub fn walk_chain(
    records: &[ScannedRecord],
    mut each: impl FnMut(&Record) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    let present: HashSet<u64> = records.iter().map(|r| r.record.seq).collect();
    let mut prev = GENESIS;
    for (i, ScannedRecord { record, .. }) in records.iter().enumerate() {
        let expected = i as u64 + 1;
        let hash = record.recomputed_hash();
        if record.stated_hash() != Some(hash) {
            return Err(VerifyError::EditedRecord { seq: record.seq });
        }
        if record.seq != expected {
            // A record from later (or a repeat of an earlier one) where `expected` should be,
            // while `expected` is elsewhere in the file: the lines were moved, not lost.
            if record.seq < expected || present.contains(&expected) {
                return Err(VerifyError::BrokenChain { seq: record.seq });
            }
            return Err(VerifyError::Truncated(Truncation::Gap {
                missing: expected,
                found: record.seq,
            }));
        }
        if record.prev_bytes() != prev {
            return Err(VerifyError::BrokenChain { seq: record.seq });
        }
        each(record)?;
        prev = hash;
    }
    Ok(())
}
