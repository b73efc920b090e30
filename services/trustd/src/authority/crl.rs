//! The certificate revocation list, signed by the TPM-held CA key.
//!
//! One full CRL (no deltas, no partitions): the site's certificates are short-lived and few
//! enough that relying parties fetch it whole. It carries RFC 5280's required extensions — the
//! authority key identifier (the CA certificate's own subject key identifier, so OpenSSL and
//! webpki match it to the CA whatever method made that identifier) and a CRL number — and is
//! laid out by rcgen and signed through [`CaSigner`], the same remote-signer path certificates
//! take.
//!
//! **Numbers and dates.** The CRL number goes up by one for every CRL signed and is stored with
//! the CRL in the same transaction, so it never repeats and never goes back, across restarts
//! included. `thisUpdate` is the signing time, `nextUpdate` is `thisUpdate` plus the configured
//! validity (24 hours by default). A new CRL is signed on every revocation and, through
//! [`Authority::refresh_crl`], once the current one is within a quarter of its validity of
//! `nextUpdate`, so relying parties that fetch it on schedule never hold an expired CRL.
//!
//! **Lockdown.** A CRL refresh signs with the CA key, so lockdown stops it like issuance and
//! revocation. A lockdown longer than three quarters of the CRL validity therefore lets the CRL
//! expire, and relying parties that require a fresh CRL fail closed; that is the intended
//! side of the trade-off (nothing signs during lockdown but audit digests and tree heads).

use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateRevocationListParams, Issuer, KeyIdMethod, RevokedCertParams};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::error::AuthorityError;
use super::records::Revocation;
use super::store::StoredCrl;
use super::{Authority, Operation};
use crate::ca::CertificateSerial;
use crate::ca::signer::{CaSigner, SigningFailure, sign_with};
use crate::ca_key::CaKey;

/// How long a CRL is valid unless configured otherwise.
pub const DEFAULT_CRL_VALIDITY: Duration = Duration::from_secs(24 * 3600);

/// Shortest CRL validity accepted: an hour, so refreshes stay rare TPM work.
pub const MIN_CRL_VALIDITY: Duration = Duration::from_secs(3600);

/// PEM label of a CRL.
const CRL_PEM_LABEL: &str = "X509 CRL";

/// What status displays show about the current CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlStatus {
    /// Its CRL number.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate: relying parties consider the CRL stale after it.
    pub next_update: OffsetDateTime,
}

impl StoredCrl {
    fn status(&self) -> CrlStatus {
        let at = |seconds| {
            OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        };
        CrlStatus {
            number: self.number,
            this_update: at(self.this_update),
            next_update: at(self.next_update),
        }
    }

    /// Whether a new CRL is due at `now`: within a quarter of its validity of `nextUpdate`.
    fn due(&self, now: OffsetDateTime) -> bool {
        let validity = self.next_update - self.this_update;
        now.unix_timestamp() >= self.next_update - validity / 4
    }
}

impl Authority {
    /// The current CRL (DER), if one was signed yet.
    pub fn crl_der(&self) -> Option<Vec<u8>> {
        self.lock_crl().as_ref().map(|crl| crl.der.clone())
    }

    /// The current CRL (PEM, `X509 CRL`), if one was signed yet.
    pub fn crl_pem(&self) -> Option<String> {
        self.crl_der()
            .map(|der| pem::encode(&pem::Pem::new(CRL_PEM_LABEL, der)))
    }

    /// Number and dates of the current CRL.
    pub fn crl_status(&self) -> Option<CrlStatus> {
        self.lock_crl().as_ref().map(StoredCrl::status)
    }

    /// Whether a new CRL should be signed at `now`: there is none yet, or the current one is
    /// within a quarter of its validity of `nextUpdate`.
    pub fn needs_refresh(&self, now: OffsetDateTime) -> bool {
        self.lock_crl().as_ref().is_none_or(|crl| crl.due(now))
    }

    /// Signs a new CRL if one is due (see [`Authority::needs_refresh`]); returns its number, or
    /// `None` if none was due. Refused in lockdown and when sealed, with nothing changed.
    pub fn refresh_crl(&self, now: OffsetDateTime) -> Result<Option<u64>, AuthorityError> {
        if !self.needs_refresh(now) {
            return Ok(None);
        }
        self.sign_next_crl(now, false)
    }

    /// Signs the next CRL with the current revocations: if one is due, or always if `force`
    /// (a new CA certificate). Returns its number, or `None` if none was due.
    pub(super) fn sign_next_crl(
        &self,
        now: OffsetDateTime,
        force: bool,
    ) -> Result<Option<u64>, AuthorityError> {
        self.ensure_may_sign(Operation::RefreshCrl)?;
        let mut current = self.lock_crl();
        if !force && current.as_ref().is_some_and(|crl| !crl.due(now)) {
            return Ok(None); // another caller refreshed it meanwhile
        }
        let now = super::revocation::whole_seconds(now);
        let crl = self
            .sign_crl(&current, now, None)
            .map_err(|e| self.note_sealed(e, Operation::RefreshCrl))?;
        self.store.store_crl(&crl)?;
        tracing::info!(
            number = crl.number,
            next_update = crl.next_update,
            "signed a new CRL"
        );
        let number = crl.number;
        *current = Some(crl);
        Ok(Some(number))
    }

    /// Signs the CRL that follows `current` at `now`: every recorded revocation still worth
    /// listing, plus `extra` (a revocation about to be committed with it).
    pub(super) fn sign_crl(
        &self,
        current: &Option<StoredCrl>,
        now: OffsetDateTime,
        extra: Option<(CertificateSerial, Revocation)>,
    ) -> Result<StoredCrl, AuthorityError> {
        let validity =
            time::Duration::try_from(self.config.crl_validity).unwrap_or(time::Duration::DAY);
        let next_update = now + validity;
        let number = current.as_ref().map_or(1, |crl| crl.number + 1);
        let mut revoked = self.store.revocations_for_crl(now - validity)?;
        revoked.extend(extra);
        let ca_der = self
            .ca_certificate_der()
            .ok_or(AuthorityError::NoCaCertificate)?;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update,
            crl_number: rcgen::SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|(serial, revocation)| RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from_slice(&serial.to_integer_bytes()),
                    revocation_time: revocation.revoked_at,
                    reason_code: revocation.reason.to_rcgen(),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::PreSpecified(subject_key_id(&ca_der)?),
        };
        let signer = CaSigner::new(Arc::clone(&self.key) as Arc<dyn CaKey>);
        let crl = sign_with(&signer, |signer| {
            let issuer =
                Issuer::from_ca_cert_der(&CertificateDer::from(ca_der.as_slice()), signer)?;
            params.signed_by(&issuer)
        })
        .map_err(|failure| match failure {
            SigningFailure::Key(source) => AuthorityError::Sign {
                what: "CRL",
                source,
            },
            SigningFailure::Encode(e) => AuthorityError::CrlEncode(e.to_string()),
        })?;
        let der = crl.der().to_vec();
        check_crl(&der, &ca_der, number)?;
        Ok(StoredCrl {
            number,
            this_update: now.unix_timestamp(),
            next_update: next_update.unix_timestamp(),
            der,
        })
    }
}

/// The CA certificate's subject key identifier, which the CRL's authority key identifier must
/// repeat for verifiers to pair them.
fn subject_key_id(ca_der: &[u8]) -> Result<Vec<u8>, AuthorityError> {
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(|e| {
        AuthorityError::CrlEncode(format!("the CA certificate does not parse: {e}"))
    })?;
    ca.extensions()
        .iter()
        .find_map(|extension| match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .ok_or_else(|| {
            AuthorityError::CrlEncode(
                "the CA certificate has no subject key identifier to name in the CRL".into(),
            )
        })
}

/// Parses the signed CRL back and checks its signature with the CA certificate's key and its
/// number, so a TPM or encoder fault can never publish a CRL relying parties would reject.
fn check_crl(der: &[u8], ca_der: &[u8], number: u64) -> Result<(), AuthorityError> {
    let failed = |what: String| {
        AuthorityError::CrlEncode(format!("the signed CRL failed its own check: {what}"))
    };
    let (rest, crl) =
        CertificateRevocationList::from_der(der).map_err(|e| failed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(failed("bytes follow the CRL".into()));
    }
    let (_, ca) = X509Certificate::from_der(ca_der).map_err(|e| failed(e.to_string()))?;
    crl.verify_signature(ca.public_key())
        .map_err(|_| failed("its signature does not verify with the CA key".into()))?;
    let written = crl.crl_number().map(|n| n.to_u64_digits());
    if written != Some(if number == 0 { vec![] } else { vec![number] }) {
        return Err(failed(format!("its CRL number is not {number}")));
    }
    Ok(())
}
