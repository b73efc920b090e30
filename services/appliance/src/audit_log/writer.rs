//! The writer: appends records, each acknowledged only after it is on disk, and seals the
//! head when the caller says a seal is due.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::record::{
    Entry, GENESIS, RESERVED_ACTION_PREFIX, Record, SEAL_ACTION, SEAL_SKIPPED_ACTION,
};
use super::scan::{MAX_LINE_BYTES, TornTail, scan, walk_chain};
use super::seal::{SealDetail, SealSigner, valid_service_name};
use super::verify::{Anchor, VerifyError};
use crate::config::{DurationSecs, Invalid};

/// When to seal: after `every_records` records or `every` time, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SealPolicy {
    pub every_records: u64,
    /// Whole seconds, 1 s to a day.
    pub every: DurationSecs<1, 86_400>,
}

impl Default for SealPolicy {
    /// A TPM signature costs tens of milliseconds: sealing every 100 records or 10 minutes
    /// bounds what a rewrite could hide to that window at negligible cost.
    fn default() -> Self {
        Self {
            every_records: 100,
            every: DurationSecs::from_const(600),
        }
    }
}

impl SealPolicy {
    /// Refuses a policy that would seal after every record.
    pub fn validate(&self, prefix: &str) -> Result<(), Invalid> {
        if self.every_records < 2 {
            return Err(Invalid::new(
                format!("{prefix}.every_records"),
                "must be at least 2 (a seal is a record of its own)",
            ));
        }
        Ok(())
    }
}

/// Why the log could not be opened. Nothing is repaired but an unfinished last line.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{0}` is not a service name trustd signs for ([a-z0-9-]{{1,32}})")]
    BadServiceName(String),
    #[error("{path}: {source}; the log is left as it is for inspection")]
    Damaged { path: PathBuf, source: VerifyError },
}

/// Why a record was not appended (and so not acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("{path}: writing the record: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("actions starting with `{RESERVED_ACTION_PREFIX}` are written by the log itself")]
    ReservedAction,
    /// A line this long could not be read back (it would look torn and be cut on reopen).
    #[error("the record is {bytes} bytes; at most {MAX_LINE_BYTES} fit on a line")]
    TooLarge { bytes: usize },
}

/// What opening found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Complete records in the file.
    pub records: u64,
    /// True when the file (and its directory entry) was created.
    pub created: bool,
    /// The unfinished line cut off, if a crash left one.
    pub torn_tail: Option<TornTail>,
}

/// What a call to [`AuditLog::seal`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealOutcome {
    /// The head was signed; the seal is record `seq`.
    Sealed { seq: u64 },
    /// No signer, or it failed: a `audit.seal-skipped` record `seq` says why.
    Skipped { seq: u64, reason: String },
    /// Nothing was appended since the last seal or skip.
    NothingNew,
}

/// An open audit log. Appends are serialised by `&mut self`; share it behind a mutex.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    service: String,
    head: Option<Anchor>,
    head_is_seal: bool,
    since_seal: u64,
    last_seal_at: Instant,
}

fn now_rfc3339() -> String {
    // Formatting a UTC time as RFC 3339 fails only for years outside 0..=9999.
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

impl AuditLog {
    /// Opens (or creates) the log of `service` at `path`: checks the whole chain, cuts an
    /// unfinished last line, and refuses anything else that is wrong.
    pub async fn open(path: &Path, service: &str) -> Result<(Self, OpenReport), OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_owned(),
            source,
        };
        if !valid_service_name(service) {
            return Err(OpenError::BadServiceName(service.to_owned()));
        }
        let (bytes, created) = match tokio::fs::read(path).await {
            Ok(bytes) => (bytes, false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), true),
            Err(e) => return Err(io(e)),
        };
        let damaged = |source| OpenError::Damaged {
            path: path.to_owned(),
            source,
        };
        let scanned = scan(&bytes).map_err(damaged)?;
        walk_chain(&scanned.records, |_| Ok(())).map_err(damaged)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(io)?;
        if let Some(torn) = scanned.torn {
            tracing::warn!(path = %path.display(), line = torn.line, bytes = torn.torn_bytes,
                "cutting an unfinished last line left by a crash (it was never acknowledged)");
            file.set_len(torn.keep_bytes).await.map_err(io)?;
            file.sync_all().await.map_err(io)?;
        }
        if created {
            file.sync_all().await.map_err(io)?;
            sync_parent(path).await.map_err(io)?;
        }
        let last = scanned.records.last().map(|r| &r.record);
        let since_seal = scanned
            .records
            .iter()
            .rev()
            .take_while(|r| !is_seal_like(&r.record.action))
            .count() as u64;
        let log = AuditLog {
            path: path.to_owned(),
            file,
            service: service.to_owned(),
            head: last.map(|r| Anchor {
                seq: r.seq,
                hash: r.recomputed_hash(),
            }),
            head_is_seal: last.is_some_and(|r| is_seal_like(&r.action)),
            since_seal,
            last_seal_at: Instant::now(),
        };
        let report = OpenReport {
            records: scanned.records.len() as u64,
            created,
            torn_tail: scanned.torn,
        };
        Ok((log, report))
    }

    /// The last record's seq and hash.
    pub fn head(&self) -> Option<Anchor> {
        self.head
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry`; returns once the record is on disk (written and fsynced).
    pub async fn append(&mut self, entry: Entry) -> Result<Record, AppendError> {
        if entry.action.starts_with(RESERVED_ACTION_PREFIX) {
            return Err(AppendError::ReservedAction);
        }
        self.write(entry).await
    }

    /// True when `policy` says a seal is due now.
    pub fn seal_due(&self, policy: &SealPolicy) -> bool {
        !self.head_is_seal
            && self.head.is_some()
            && (self.since_seal >= policy.every_records
                || self.last_seal_at.elapsed() >= policy.every.as_duration())
    }

    /// Seals the head with `signer`. Without a signer, or when it fails, the log records that
    /// the seal was skipped and why, so a verifier sees why a stretch is unsealed. The log is
    /// held while trustd signs (tens of milliseconds on a TPM), so the head cannot move
    /// between the signature and the seal record that carries it.
    pub async fn seal(
        &mut self,
        signer: Option<&dyn SealSigner>,
    ) -> Result<SealOutcome, AppendError> {
        let Some(head) = self.head.filter(|_| !self.head_is_seal) else {
            return Ok(SealOutcome::NothingNew);
        };
        self.last_seal_at = Instant::now();
        let signed = match signer {
            None => Err("no signer (trustd is not configured)".to_owned()),
            Some(signer) => match signer.sign(head.hash).await {
                Ok(signed) => SealDetail::checked(signed, &head.hash).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
        };
        match signed {
            Ok(detail) => {
                let entry = Entry::new(&self.service, SEAL_ACTION, "", detail.to_json());
                let record = self.write(entry).await?;
                Ok(SealOutcome::Sealed { seq: record.seq })
            }
            Err(reason) => {
                tracing::warn!(path = %self.path.display(), %reason,
                    "audit log not sealed; its records stay chained but unsigned");
                let detail = serde_json::json!({ "sealed_seq": head.seq, "reason": reason });
                let entry = Entry::new(&self.service, SEAL_SKIPPED_ACTION, "", detail);
                let record = self.write(entry).await?;
                Ok(SealOutcome::Skipped {
                    seq: record.seq,
                    reason,
                })
            }
        }
    }

    async fn write(&mut self, entry: Entry) -> Result<Record, AppendError> {
        let (seq, prev) = match self.head {
            Some(head) => (head.seq + 1, head.hash),
            None => (1, GENESIS),
        };
        let seal_like = is_seal_like(&entry.action);
        let record = Record::chained(seq, now_rfc3339(), entry, &prev);
        let line = record.to_line();
        if line.len() - 1 > MAX_LINE_BYTES {
            return Err(AppendError::TooLarge { bytes: line.len() });
        }
        let io = |source| AppendError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&line).await.map_err(io)?;
        self.file.flush().await.map_err(io)?;
        self.file.sync_data().await.map_err(io)?;
        self.head = Some(Anchor {
            seq,
            hash: record.recomputed_hash(),
        });
        self.head_is_seal = seal_like;
        self.since_seal = if seal_like { 0 } else { self.since_seal + 1 };
        Ok(record)
    }
}

fn is_seal_like(action: &str) -> bool {
    action == SEAL_ACTION || action == SEAL_SKIPPED_ACTION
}

/// Makes a new file's directory entry durable.
async fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent).await?.sync_all().await
}
