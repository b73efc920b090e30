//! The seam between the CA's logic and the key that signs for it.
//!
//! The CA key is an ECDSA P-256 key that lives in the TPM ([`crate::tpm`]); everything that signs
//! (certificates, CRLs, signed tree heads, audit digests) does so through [`CaKey`], so the
//! certificate, revocation and log code never sees key material and cannot fall back to a software
//! key. Domain separation is the callers' job: each builds the exact bytes it signs (a DER
//! `TBSCertificate`, a tree head with its own prefix, ...), so a signature made for one purpose can
//! never be valid for another.

use thiserror::Error;

/// Why the CA key could not sign.
#[derive(Debug, Error)]
pub enum SignError {
    /// The TPM refused the policy session: the boot measurements no longer match the policy
    /// (tampered or unexpected boot). The CA is `sealed` until the platform is trusted again.
    #[error("the CA key is sealed: the TPM policy is not satisfied ({0})")]
    Sealed(String),
    /// The TPM could not be reached or failed for another reason.
    #[error("the TPM failed to sign: {0}")]
    Tpm(String),
}

/// A P-256 signing key held somewhere the CA cannot read it.
pub trait CaKey: Send + Sync {
    /// The public key as an uncompressed SEC1 point (`04 || X || Y`, 65 bytes).
    fn public_key_sec1(&self) -> &[u8];

    /// Signs `SHA-256(message)` and returns the signature as a DER `ECDSA-Sig-Value`, the form
    /// X.509, CRLs and TLS carry.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError>;
}
