//! Why the authority refused or failed, in sentences an operator (or a D-Bus client) can act on.
//!
//! The variants are grouped by who has to act: the caller (bad request, unknown serial), the
//! site (lockdown), the platform (sealed TPM policy), or the operator of the appliance (damaged
//! state, which trustd refuses to repair on its own because the state is evidence).

use thiserror::Error;

use super::revocation::RevocationReason;
use crate::ca::{CaError, CertificateSerial, CsrError, IssueError};
use crate::ca_key::SignError;
use crate::tpm::TpmError;
use crate::translog::{EntryError, StoreError, TreeHeadError};

/// Why an operation of the authority did not happen.
#[derive(Debug, Error)]
pub enum AuthorityError {
    /// The site is in lockdown; the operation is one lockdown stops.
    #[error(
        "the site is in lockdown: trustd does not {0} until the site leaves lockdown; nothing was changed"
    )]
    Lockdown(&'static str),
    /// The CA key is sealed: the TPM refuses it because the boot measurements do not satisfy
    /// its policy. Nothing falls back to another key.
    #[error("the CA is sealed, so trustd does not {operation}: {reason}; nothing was changed")]
    Sealed {
        /// What was refused ("issue certificates").
        operation: &'static str,
        /// The TPM's refusal, in words.
        reason: String,
    },
    /// An earlier write to the log or the store failed; the state on disk must be checked again
    /// by a restart before anything else is written.
    #[error(
        "trustd stopped writing after an earlier failure ({0}); restart trustd so it checks its state again"
    )]
    Stopped(String),
    /// The certificate request is refused.
    #[error("the certificate request is refused: {0}")]
    Csr(#[from] CsrError),
    /// The CA refused or failed to issue.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The CA hierarchy could not be set up.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The authority's configuration is unusable.
    #[error("invalid trustd configuration: {0}")]
    BadConfig(String),
    /// The requester is not a usable label.
    #[error(
        "the requester {0} is refused: give 1 to {max} printable characters naming who asked (e.g. `acme:account/12` or `bunkerctl:uid=0`)",
        max = super::MAX_REQUESTER_LEN
    )]
    BadRequester(String),
    /// No certificate with this serial was issued by this CA.
    #[error("no certificate with serial {0} was issued by this CA")]
    UnknownSerial(CertificateSerial),
    /// The certificate is already revoked; the first revocation stands.
    #[error(
        "the certificate with serial {serial} was already revoked at {at} (reason: {reason}); nothing was changed"
    )]
    AlreadyRevoked {
        /// The serial.
        serial: CertificateSerial,
        /// When it was revoked, RFC 3339.
        at: String,
        /// Why it was revoked then.
        reason: RevocationReason,
    },
    /// A revocation reason code this CA does not use.
    #[error(
        "revocation reason code {0} is not accepted; use 0 (unspecified), 1 (keyCompromise), 2 (cACompromise), 3 (affiliationChanged), 4 (superseded), 5 (cessationOfOperation), 9 (privilegeWithdrawn) or 10 (aACompromise)"
    )]
    BadRevocationReason(u8),
    /// An audit signature was asked for with a service name that is not allowed.
    #[error(
        "the service name {0} is refused for audit signatures: use 1 to 32 characters from a-z, 0-9 and `-`"
    )]
    BadServiceName(String),
    /// A quote's nonce is empty or longer than a TPM2B_DATA holds.
    #[error("a quote nonce of {0} bytes is refused: use 1 to 64 bytes (e.g. 32 random bytes)")]
    BadQuoteNonce(usize),
    /// No CA certificate exists yet, so there is nothing to sign a CRL or a proof with.
    #[error("the CA has no certificate yet; create a root or install the intermediate chain first")]
    NoCaCertificate,
    /// The CA key refused or failed to sign something other than a certificate.
    #[error("the CA key did not sign the {what}: {source}")]
    Sign {
        /// What was being signed ("CRL", "tree head").
        what: &'static str,
        /// Why.
        source: SignError,
    },
    /// rcgen could not encode the CRL.
    #[error("cannot encode the CRL: {0}")]
    CrlEncode(String),
    /// The TPM could not be asked whether the policy holds.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The transparency log failed.
    #[error(transparent)]
    Log(#[from] StoreError),
    /// A certificate did not fit in a log entry (a fault: the CA's certificates always fit).
    #[error("the certificate cannot be logged: {0}")]
    Entry(#[from] EntryError),
    /// A tree head could not be signed or did not verify.
    #[error("the tree head: {0}")]
    TreeHead(#[from] TreeHeadError),
    /// The issued-certificate store failed.
    #[error("the issued-certificate store {path}: cannot {action}: {source}")]
    Store {
        /// The database file.
        path: String,
        /// What was being done ("reserve a serial number").
        action: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The store's database cannot be used by this build or on this file system.
    #[error("the issued-certificate store cannot be used: {0}")]
    StoreUnusable(String),
    /// The store, the log and the signed tree heads disagree in a way no crash can cause: a
    /// file was replaced, truncated or edited. trustd refuses to start rather than paper over
    /// evidence.
    #[error(
        "trustd's state is inconsistent: {0}. This is not something a crash causes (a file was replaced, truncated or edited); trustd does not repair evidence on its own: restore the state directory from a backup, or keep it for investigation"
    )]
    Integrity(String),
}

impl AuthorityError {
    /// Whether the refusal is the caller's to fix (bad request, unknown serial, ...), as
    /// opposed to the site's, the platform's or the appliance's.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Self::Csr(_)
                | Self::BadRequester(_)
                | Self::UnknownSerial(_)
                | Self::AlreadyRevoked { .. }
                | Self::BadRevocationReason(_)
                | Self::BadServiceName(_)
                | Self::BadQuoteNonce(_)
        ) || matches!(
            self,
            Self::Issue(
                IssueError::Names(_)
                    | IssueError::OutsideCaConstraints(_)
                    | IssueError::LifetimeTooShort { .. }
            )
        ) || matches!(
            self,
            // A chain, or a step of the set-up, that does not fit the CA as it stands.
            Self::Ca(
                CaError::Chain(_)
                    | CaError::NotARenewal(_)
                    | CaError::NoChainExpected(_)
                    | CaError::NoRequest(_)
                    | CaError::PolicyOutsideCaScope(_)
                    | CaError::AlreadyInitialised(_)
            )
        )
    }
}
