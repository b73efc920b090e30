//! An append-only, hash-chained audit log of state-changing actions, periodically sealed by a
//! trustd signature, verifiable offline (minerd's operations, sited's event log).
//!
//! - [`record`]: one JSON line per record, `{seq, time, actor, action, target, detail, prev,
//!   hash}`, and the canonical encoding its SHA-256 covers (including `prev`, which chains it).
//! - [`writer`]: [`AuditLog`] appends a record and acknowledges it only after `fsync`; on open
//!   it checks the chain and cuts only an unfinished last line a crash left (never
//!   acknowledged); anything else wrong is refused, never repaired.
//! - [`seal`]: when the caller's [`SealPolicy`] says so, the head's hash is signed through a
//!   [`SealSigner`] (trustd's `SignAuditDigest`, see [`trustd_signer`]); without trustd the
//!   records are still chained and an `audit.seal-skipped` record says why there is no seal.
//! - [`service_log`]: a daemon's own log as minerd and sited run it: `audit.log` in the state
//!   directory opened with a `service.start` record ([`open_service_log`]), sealed on its policy
//!   through trustd ([`seal_loop`]).
//! - [`verify`]: from the file and trustd's public key alone, typed verdicts
//!   ([`VerifiedLog`] or [`VerifyError`]).
//!
//! What the chain proves, and what it cannot: an edited, reordered or deleted record breaks
//! the chain; a rewrite of everything from some record on (hashes recomputed) is caught by the
//! next seal, which the writer could not forge. Records after the last seal can be cut from
//! the end without a trace in the file itself; a verifier that remembers an earlier head
//! ([`VerifyOptions::known_head`]) detects that too.

pub mod record;
pub mod scan;
pub mod seal;
pub mod service_log;
pub mod trustd_signer;
pub mod verify;
pub mod writer;

pub use record::{Entry, Record};
pub use scan::TornTail;
pub use seal::{SealSignature, SealSigner, SignError, SignFuture, TrustedKey};
pub use service_log::{
    SERVICE_LOG_FILE, ServiceLogError, SharedAuditLog, open_service_log, seal_loop,
    service_log_path,
};
pub use trustd_signer::TrustdSigner;
pub use verify::{
    Anchor, SealProblem, Truncation, VerifiedLog, VerifyError, VerifyOptions, verify_bytes,
    verify_file,
};
pub use writer::{AppendError, AuditLog, OpenError, OpenReport, SealOutcome, SealPolicy};
