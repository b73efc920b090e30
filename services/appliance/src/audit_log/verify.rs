//! Offline verification of a log from the file alone and the trusted public key: every
//! record's hash, the chain, every seal's signature, and (given an anchor remembered from
//! before) that nothing was cut from the end.

use std::fmt;
use std::path::Path;

use super::record::{SEAL_ACTION, SEAL_SKIPPED_ACTION};
use super::scan::{scan, walk_chain};
use super::seal::{SealDetail, TrustedKey};

/// A point of the chain: a record's seq and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.seq, hex::encode(self.hash))
    }
}

/// What the verifier trusts beyond the file.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// trustd's CA public key. Without it seals are counted but not checked.
    pub key: Option<TrustedKey>,
    /// The service whose log this is; a seal made under another name is refused.
    pub service: Option<String>,
    /// A head seen earlier (a previous verification, or a seal exported off the appliance):
    /// the log must still contain it, unchanged.
    pub known_head: Option<Anchor>,
}

/// A log that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedLog {
    /// Records, seals included.
    pub records: u64,
    /// Seals whose signature verified with the trusted key.
    pub seals: u64,
    /// Seals not checked because no key was given.
    pub unchecked_seals: u64,
    /// Times a seal was due but no signer could sign.
    pub skipped_seals: u64,
    /// The last record a verified seal covers.
    pub last_sealed_seq: Option<u64>,
    /// Records after the last verified seal: chained, but not yet signed.
    pub unsealed_records: u64,
    /// The last record.
    pub head: Option<Anchor>,
}

/// How records went missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truncation {
    /// Record `missing` is absent; the next one found is `found`.
    Gap { missing: u64, found: u64 },
    /// The file ends at `last_seq`, before the known head `known_seq`.
    MissingTail { last_seq: u64, known_seq: u64 },
    /// The last line is unfinished (cut mid-line, or a crash the writer has not yet cleaned).
    TornTail { line: u64 },
}

/// Why a log does not verify: the first problem in file order.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the log: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line} is not an audit record: {reason}")]
    Malformed { line: u64, reason: String },
    #[error("record {seq} was edited: its hash does not match its fields")]
    EditedRecord { seq: u64 },
    #[error("the chain breaks at record {seq}: it does not follow the record before it")]
    BrokenChain { seq: u64 },
    #[error("the seal at record {seq} is not valid: {problem}")]
    BadSeal { seq: u64, problem: SealProblem },
    #[error("the log was truncated: {0}")]
    Truncated(Truncation),
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Truncation::Gap { missing, found } => {
                write!(f, "record {missing} is missing (next is {found})")
            }
            Truncation::MissingTail {
                last_seq,
                known_seq,
            } => write!(
                f,
                "it ends at record {last_seq}, before record {known_seq} seen earlier"
            ),
            Truncation::TornTail { line } => write!(f, "line {line} is unfinished"),
        }
    }
}

/// What is wrong with a seal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealProblem {
    #[error("its detail lacks the service, key id or signature")]
    MalformedDetail,
    #[error("it was signed by key {key_id}, not the trusted key")]
    UnknownKey { key_id: String },
    #[error("it was signed for service `{found}`, not `{expected}`")]
    WrongService { expected: String, found: String },
    #[error("the signature does not verify over the sealed record's hash")]
    BadSignature,
}

/// Verifies the log at `path`.
pub async fn verify_file(path: &Path, options: &VerifyOptions) -> Result<VerifiedLog, VerifyError> {
    verify_bytes(&tokio::fs::read(path).await?, options)
}

/// Verifies a log's bytes.
pub fn verify_bytes(bytes: &[u8], options: &VerifyOptions) -> Result<VerifiedLog, VerifyError> {
    let scanned = scan(bytes)?;
    let mut log = VerifiedLog {
        records: 0,
        seals: 0,
        unchecked_seals: 0,
        skipped_seals: 0,
        last_sealed_seq: None,
        unsealed_records: 0,
        head: None,
    };
    let mut hashes = Vec::with_capacity(scanned.records.len());
    walk_chain(&scanned.records, |record| {
        if record.action == SEAL_ACTION {
            match &options.key {
                Some(key) => {
                    check_seal(record, key, options.service.as_deref())?;
                    log.seals += 1;
                    log.last_sealed_seq = Some(record.seq - 1);
                }
                None => log.unchecked_seals += 1,
            }
        } else if record.action == SEAL_SKIPPED_ACTION {
            log.skipped_seals += 1;
        }
        log.records += 1;
        hashes.push(record.recomputed_hash());
        Ok(())
    })?;
    if let Some(torn) = scanned.torn {
        return Err(VerifyError::Truncated(Truncation::TornTail {
            line: torn.line,
        }));
    }
    if let Some(known) = options.known_head {
        check_known_head(&hashes, known)?;
    }
    log.head = hashes.last().map(|hash| Anchor {
        seq: hashes.len() as u64,
        hash: *hash,
    });
    log.unsealed_records = log.records - log.last_sealed_seq.map_or(0, |s| s + 1);
    Ok(log)
}

fn check_seal(
    record: &super::record::Record,
    key: &TrustedKey,
    service: Option<&str>,
) -> Result<(), VerifyError> {
    let bad = |problem| VerifyError::BadSeal {
        seq: record.seq,
        problem,
    };
    let detail = SealDetail::from_json(&record.detail).ok_or(bad(SealProblem::MalformedDetail))?;
    if let Some(expected) = service
        && detail.service != expected
    {
        return Err(bad(SealProblem::WrongService {
            expected: expected.to_owned(),
            found: detail.service,
        }));
    }
    if detail.key_id != key.id() {
        return Err(bad(SealProblem::UnknownKey {
            key_id: detail.key_id,
        }));
    }
    if !key.verifies(&detail.service, &record.prev_bytes(), &detail.signature_der) {
        return Err(bad(SealProblem::BadSignature));
    }
    Ok(())
}

/// `hashes[i]` is record `i + 1`'s hash (the chain walk checked the numbering).
fn check_known_head(hashes: &[[u8; 32]], known: Anchor) -> Result<(), VerifyError> {
    let last_seq = hashes.len() as u64;
    if known.seq > last_seq {
        return Err(VerifyError::Truncated(Truncation::MissingTail {
            last_seq,
            known_seq: known.seq,
        }));
    }
    if known.seq == 0 || hashes[(known.seq - 1) as usize] != known.hash {
        return Err(VerifyError::BrokenChain { seq: known.seq });
    }
    Ok(())
}
