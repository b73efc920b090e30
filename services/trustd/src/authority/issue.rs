//! Issuance: a request becomes a certificate that is in the transparency log before anyone
//! sees it.
//!
//! The steps, and why in this order:
//! 1. refuse in lockdown, after a write failure, or while sealed — before touching anything;
//! 2. parse and check the request (hostile input; refusals change nothing);
//! 3. the CA checks names, profile and lifetime, takes a serial that the store reserved
//!    *durably* (many at a time, see [`super::store`]), and has the TPM sign
//!    ([`crate::ca::CertificateAuthority::issue`]);
//! 4. append the certificate to the transparency log and wait for the flush;
//! 5. record it in the store with its log index;
//! 6. return it.
//!
//! So a certificate reaches its requester only once it is logged: nobody can be handed a
//! certificate that auditors cannot see. What a crash between the steps leaves, and how the
//! next start settles it, is in [`super::reconcile`].
//!
//! If the CA fails after it was given a serial, the serial is abandoned (never reused); if the
//! TPM refused to sign at all (sealed), no certificate carries it and it is handed back for the
//! next issuance, so a refused issuance leaves the store as it was. A failed log append or
//! store write stops the authority until a restart checks the state again (`Stopped`), because
//! the state on disk is then not known for certain.
//!
//! Tree heads are not signed per certificate: that would double the TPM work of every issuance
//! (the TPM is the bottleneck). The log entry is durable before the certificate is returned,
//! which is what makes silent issuance impossible; a signed head covering it is made on demand
//! ([`Authority::proof_bundle`]) or at the next checkpoint ([`Authority::checkpoint`]), and one
//! head covers every entry before it.

use std::time::Duration;

use time::OffsetDateTime;

use super::error::AuthorityError;
use super::records::{CertificateFacts, NewRecord};
use super::{Authority, Operation, check_requester};
use crate::ca::{CertificateSerial, IssueError, IssuedCertificate, Profile, parse_csr};
use crate::translog::LogEntry;

/// A certificate issued and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The certificate, its PEM, and the chain a peer sends (leaf first).
    pub certificate: IssuedCertificate,
    /// Its index in the transparency log; [`Authority::proof_bundle`] proves it.
    pub log_index: u64,
    /// When it was logged, milliseconds since the Unix epoch (part of the log entry).
    pub logged_at_ms: u64,
}

impl Authority {
    /// Issues a certificate for `csr` (PEM or DER) under `profile`, for `lifetime` (cut to the
    /// profile's maximum; `None` for its default), on behalf of `requester` (who asked, as the
    /// calling layer authenticated it: `acme:<account>`, `dbus:uid=<n>`, ...).
    pub fn issue(
        &self,
        csr: &[u8],
        profile: Profile,
        lifetime: Option<Duration>,
        requester: &str,
    ) -> Result<Issued, AuthorityError> {
        check_requester(requester)?;
        self.ensure_may_sign(Operation::Issue)?;
        let request = parse_csr(csr)?;

        let certificate = {
            let ca = self.ca_read();
            let scope = self.store.reservations(Some(profile), Some(requester));
            let result = ca.issue(&request, profile, lifetime);
            let reserved = scope.finish();
            match result {
                Ok(certificate) => certificate,
                Err(error) => return Err(self.settle_refusal(error, &reserved)),
            }
        };

        let logged_at_ms = now_ms();
        let entry = LogEntry::new(logged_at_ms, certificate.der.clone()).map_err(|e| {
            // Never logged, so never valid: its serial is spent.
            if let Err(error) = self.store.abandon(&[certificate.serial]) {
                tracing::error!(%error, "could not abandon the serial of an unloggable certificate");
            }
            AuthorityError::from(e)
        })?;
        let leaf_hash = entry.leaf_hash();
        let log_index = self
            .lock_log()
            .append(&entry)
            .map_err(|e| self.stop("a transparency log append failed", e.into()))?;

        let facts = CertificateFacts::from_der(&certificate.der).map_err(|e| {
            self.stop(
                "an issued certificate could not be read back",
                AuthorityError::Integrity(format!("the certificate just issued: {e}")),
            )
        })?;
        self.store
            .record_issued(&NewRecord {
                facts: &facts,
                der: &certificate.der,
                log_index,
                leaf_hash: &leaf_hash,
                logged_at_ms,
            })
            .map_err(|e| self.stop("recording an issued certificate failed", e))?;
        tracing::debug!(serial = %certificate.serial, log_index, requester, "logged and recorded");
        Ok(Issued {
            certificate,
            log_index,
            logged_at_ms,
        })
    }

    /// Settles the serials an issuance was given before it failed, and returns the error to
    /// report. A sealed refusal means the TPM signed nothing, so they are handed back; after
    /// any other failure a signature may exist, so they are abandoned for good.
    fn settle_refusal(&self, error: IssueError, reserved: &[CertificateSerial]) -> AuthorityError {
        let settled = match &error {
            _ if reserved.is_empty() => Ok(()),
            IssueError::Sealed(_) => self.store.release(reserved),
            _ => self.store.abandon(reserved),
        };
        if let Err(settle_error) = settled {
            // They stay `reserved`; the next start abandons them. Nothing is reused either way.
            tracing::error!(%settle_error, "could not settle the serials of a failed issuance");
        }
        match error {
            IssueError::Sealed(reason) => {
                self.remember_seal(Some(reason.clone()));
                AuthorityError::Sealed {
                    operation: Operation::Issue.phrase(),
                    reason,
                }
            }
            other => other.into(),
        }
    }

    /// Stops further writes after a failure that leaves the disk state uncertain, and returns
    /// `error` for the caller.
    pub(super) fn stop(&self, what: &str, error: AuthorityError) -> AuthorityError {
        tracing::error!(%error, "{what}; trustd stops issuing until it is restarted");
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        stopped.get_or_insert_with(|| format!("{what}: {error}"));
        error
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> u64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64
}
