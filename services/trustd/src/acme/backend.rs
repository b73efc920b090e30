//! The seam between the ACME protocol and the issuance pipeline.
//!
//! The ACME server decides *whether* a requester has proven control of the names (accounts,
//! orders, challenges); what happens once it has (the lockdown check, the serial, the TPM
//! signature, the issued-certificate store, the transparency log, the CRL) belongs to the
//! issuance pipeline, which D-Bus and `bunkerctl` share. This trait is that hand-over, so the
//! protocol code never reaches into the pipeline and can be tested over any CA.
//!
//! Backend calls may block (the TPM signs in tens of milliseconds); the server runs them on
//! tokio's blocking pool.

use crate::ca::{Profile, SubjectName};

/// A certificate the backend issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// What the client downloads (`application/pem-certificate-chain`): the leaf first, then
    /// every CA certificate up to and including the site root. The root is included on
    /// purpose: certbot 2.1 refuses a download of fewer than two certificates, which a leaf
    /// signed directly by the site root would otherwise be, and TLS peers ignore a root sent
    /// to them (they use their own pinned copy).
    pub chain_pem: String,
    /// The serial number, lowercase hex, for logs.
    pub serial: String,
}

/// Why the backend did not issue or revoke. Each variant maps to one ACME error type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The CSR is unusable (key type, size, signature, fields): `badCSR`.
    #[error("{0}")]
    BadCsr(String),
    /// The names may not be certified under the profile: `rejectedIdentifier`.
    #[error("{0}")]
    NamesRefused(String),
    /// The CA cannot issue now (sealed by the TPM policy, site lockdown, not initialised,
    /// expired): `serverInternal` with HTTP 503, so clients retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The certificate to revoke was not issued by this CA: `malformed` (404).
    #[error("{0}")]
    UnknownCertificate(String),
    /// The certificate is already revoked: `alreadyRevoked`.
    #[error("{0}")]
    AlreadyRevoked(String),
    /// Anything else (the TPM failed, a store write failed): `serverInternal`.
    #[error("{0}")]
    Internal(String),
}

/// The issuance pipeline, as the ACME server uses it.
pub trait AcmeBackend: Send + Sync + 'static {
    /// Issues a certificate for `csr_der` under `profile`. The ACME server has already checked
    /// that `requester` (`acme:<account URL>`) proved control of every name in the CSR; the
    /// backend applies the CA's own rules (which it must, whoever asks).
    fn issue(
        &self,
        csr_der: &[u8],
        profile: Profile,
        requester: &str,
    ) -> Result<IssuedCert, BackendError>;

    /// Revokes the certificate `cert_der` with the RFC 5280 reason code `reason`. The ACME
    /// server has already checked that `requester` may revoke it.
    fn revoke(&self, cert_der: &[u8], reason: u8, requester: &str) -> Result<(), BackendError>;

    /// Whether `names` could be certified under `profile` at all, so that a new order for
    /// names the CA would never certify is refused at once (`rejectedIdentifier`) instead of
    /// after the client proved control. The default accepts: `issue` checks again anyway.
    fn check_names(&self, profile: Profile, names: &[SubjectName]) -> Result<(), BackendError> {
        let _ = (profile, names);
        Ok(())
    }
}
