//! Signing the audit logs of the other services, without becoming a signing oracle.
//!
//! A service (`hubd`, `minerd`, `sited`, `updated`) hashes a segment of its audit log and asks
//! trustd to sign the SHA-256 digest. The CA key never signs the caller's bytes as given: it
//! signs a domain-separated statement (version 1)
//!
//! ```text
//! signed bytes = "bunkeros-audit-v1" 0x00 || len(service) (u8) || service || digest (32 bytes)
//! ```
//!
//! and the signature is ECDSA P-256 over `SHA-256(signed bytes)`, DER-encoded. Why that shape:
//! - the prefix (NUL-terminated, so no other purpose's prefix can extend it) can never start a
//!   DER `TBSCertificate` or `TBSCertList` (those begin with `0x30`) nor a tree head (whose
//!   prefix is `bunkeros-tree-head-v1`), so no audit signature is a valid certificate, CRL or
//!   tree head, whatever digest a caller chooses;
//! - the signature is over a hash of the statement, not over the caller's digest, so it is not
//!   a signature over that digest either (a verifier of "raw" digests would reject it);
//! - the service name is length-prefixed and restricted to `[a-z0-9-]{1,32}`, so "hubd" cannot
//!   obtain a statement that reads as one from "hub" plus a longer digest, and the name in the
//!   statement is exactly the one the D-Bus layer authenticated.
//!
//! Audit signing continues in lockdown (the audit trail matters most then) and stops when the
//! CA is sealed, where the TPM refuses anyway (see [`super::status`]).

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};

use super::error::AuthorityError;
use super::{Authority, Operation};
use crate::ca_key::CaKey as _;

// The statement's encoding is shared with the services' audit logs, which verify seals offline
// (`appliance::audit_log::seal`): one definition of what the CA key signs.
pub use appliance::audit_log::seal::{AUDIT_DOMAIN, MAX_SERVICE_NAME_LEN};

/// A service name allowed in an audit statement: `[a-z0-9-]{1,32}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuditService(String);

impl AuditService {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<Self, AuthorityError> {
        if !appliance::audit_log::seal::valid_service_name(name) {
            return Err(AuthorityError::BadServiceName(
                crate::ca::names::quote_untrusted(name, 40),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The exact bytes the CA key signs for `service`'s `digest` (see the module documentation).
pub fn audit_signed_bytes(service: &AuditService, digest: &[u8; 32]) -> Vec<u8> {
    appliance::audit_log::seal::audit_statement(&service.0, digest)
}

/// Why an audit signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditVerifyError {
    /// The public key is not a P-256 SEC1 point.
    #[error("the CA public key is not a valid P-256 point")]
    BadPublicKey,
    /// The signature is not DER ECDSA.
    #[error("the audit signature is not a DER ECDSA signature")]
    BadSignatureEncoding,
    /// The signature does not match the service, digest and key.
    #[error("the audit signature does not verify for this service and digest with the CA key")]
    Mismatch,
}

/// Checks an audit signature with nothing but the CA public key (SEC1), e.g. in `bunkerctl` or
/// in an offline audit.
pub fn verify_audit_signature(
    ca_public_key_sec1: &[u8],
    service: &AuditService,
    digest: &[u8; 32],
    signature_der: &[u8],
) -> Result<(), AuditVerifyError> {
    let key = VerifyingKey::from_sec1_bytes(ca_public_key_sec1)
        .map_err(|_| AuditVerifyError::BadPublicKey)?;
    let signature =
        Signature::from_der(signature_der).map_err(|_| AuditVerifyError::BadSignatureEncoding)?;
    key.verify(&audit_signed_bytes(service, digest), &signature)
        .map_err(|_| AuditVerifyError::Mismatch)
}

impl Authority {
    /// Signs `digest` (SHA-256 of a segment of `service`'s audit log) as described in the
    /// module documentation; returns the DER ECDSA signature. Allowed in lockdown, refused
    /// when sealed.
    pub fn sign_audit_digest(
        &self,
        service: &str,
        digest: [u8; 32],
    ) -> Result<Vec<u8>, AuthorityError> {
        let service = AuditService::new(service)?;
        self.ensure_may_sign(Operation::SignAudit)?;
        let bytes = audit_signed_bytes(&service, &digest);
        let signature = self
            .key
            .sign(&bytes)
            .map_err(|source| AuthorityError::Sign {
                what: "audit digest",
                source,
            })
            .map_err(|e| self.note_sealed(e, Operation::SignAudit))?;
        tracing::debug!(service = service.as_str(), digest = %hex::encode(digest), "signed an audit digest");
        Ok(signature)
    }
}
