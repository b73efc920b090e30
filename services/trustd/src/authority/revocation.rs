//! Revoking certificates: permanent, recorded durably together with the CRL that lists it.
//!
//! A revocation is only acknowledged once a CRL that lists it is signed and stored with it in
//! one transaction. The CRL is signed *before* anything is written, so a sealed TPM (or any
//! signing failure) leaves no trace, and a crash before the commit loses nothing that was
//! acknowledged. Revocation is final: `certificateHold` (6) and `removeFromCRL` (8), which exist
//! to undo one, are refused.

use std::fmt;

use time::OffsetDateTime;

use super::error::AuthorityError;
use super::records::{CertificateRecord, ListFilter, Revocation};
use super::{Authority, Operation, check_requester};
use crate::ca::CertificateSerial;

/// An RFC 5280 §5.3.1 reason code this CA accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// 0: no reason given. The CRL entry then carries no reasonCode, as RFC 5280 asks.
    Unspecified,
    /// 1: the certificate's private key was exposed.
    KeyCompromise,
    /// 2: a CA key was exposed.
    CaCompromise,
    /// 3: the subject's name or affiliation changed.
    AffiliationChanged,
    /// 4: replaced by a new certificate.
    Superseded,
    /// 5: no longer needed (device decommissioned, service removed).
    CessationOfOperation,
    /// 9: a privilege in the certificate was withdrawn.
    PrivilegeWithdrawn,
    /// 10: an attribute authority was compromised.
    AaCompromise,
}

impl RevocationReason {
    /// Every accepted reason.
    pub const ALL: [Self; 8] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The RFC 5280 code.
    pub fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    /// The reason for an RFC 5280 (and RFC 8555 §7.6) code.
    pub fn from_code(code: u8) -> Result<Self, AuthorityError> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.code() == code)
            .ok_or(AuthorityError::BadRevocationReason(code))
    }

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// rcgen's form, or `None` for `unspecified` (written as an absent reasonCode).
    pub(super) fn to_rcgen(self) -> Option<rcgen::RevocationReason> {
        use rcgen::RevocationReason as R;
        Some(match self {
            Self::Unspecified => return None,
            Self::KeyCompromise => R::KeyCompromise,
            Self::CaCompromise => R::CaCompromise,
            Self::AffiliationChanged => R::AffiliationChanged,
            Self::Superseded => R::Superseded,
            Self::CessationOfOperation => R::CessationOfOperation,
            Self::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            Self::AaCompromise => R::AaCompromise,
        })
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Authority {
    /// Revokes the certificate with `serial` for `reason`, on behalf of `requester`, and
    /// publishes a new CRL that lists it. Refused in lockdown and when sealed; an unknown or
    /// already revoked serial is refused and changes nothing.
    pub fn revoke(
        &self,
        serial: &CertificateSerial,
        reason: RevocationReason,
        requester: &str,
    ) -> Result<Revocation, AuthorityError> {
        check_requester(requester)?;
        self.ensure_may_sign(Operation::Revoke)?;
        // One revocation or CRL refresh at a time: each takes the next CRL number.
        let mut crl_guard = self.lock_crl();
        let record = self
            .store
            .certificate(serial)?
            .ok_or(AuthorityError::UnknownSerial(*serial))?;
        if let Some(earlier) = record.revocation {
            return Err(AuthorityError::AlreadyRevoked {
                serial: *serial,
                at: rfc3339(earlier.revoked_at),
                reason: earlier.reason,
            });
        }
        let now = whole_seconds(OffsetDateTime::now_utc());
        let revocation = Revocation {
            reason,
            revoked_at: now,
            requester: requester.to_owned(),
        };
        let crl = self
            .sign_crl(&crl_guard, now, Some((*serial, revocation.clone())))
            .map_err(|e| self.note_sealed(e, Operation::Revoke))?;
        self.store.commit_revocation(serial, &revocation, &crl)?;
        tracing::warn!(
            %serial,
            reason = %reason,
            requester,
            crl_number = crl.number,
            "revoked a certificate"
        );
        *crl_guard = Some(crl);
        Ok(revocation)
    }

    /// The record of the certificate with `serial`, if this CA issued it.
    pub fn certificate(
        &self,
        serial: &CertificateSerial,
    ) -> Result<Option<CertificateRecord>, AuthorityError> {
        self.store.certificate(serial)
    }

    /// The issued certificates matching `filter`, in log order (for `bunkerctl ca list`).
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<CertificateRecord>, AuthorityError> {
        self.store.list(filter, OffsetDateTime::now_utc())
    }
}

/// RFC 3339 text of a time, for messages.
pub(super) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// `at` without its fraction of a second: certificates and CRLs carry whole seconds, and so do
/// the times recorded beside them.
pub(super) fn whole_seconds(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(0).unwrap_or(at)
}
