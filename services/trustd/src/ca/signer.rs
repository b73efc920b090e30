//! The CA key as rcgen sees it.
//!
//! rcgen builds the DER `TBSCertificate` (and CSR info) and asks a [`rcgen::SigningKey`] to sign
//! it. [`CaSigner`] forwards that request to the [`CaKey`] in the TPM. rcgen's error type has no
//! room for the cause of a remote-key failure (`Error::RemoteKeyError` carries nothing), yet the
//! cause matters: a `sealed` key must be reported as such to the operator, to the ACME client
//! and on D-Bus, and must never look like a transient fault. The signer therefore keeps the real
//! [`SignError`] in a side slot, and [`sign_with`] puts it back in place of rcgen's empty error.

use std::sync::{Arc, Mutex, PoisonError};

use rcgen::{PKCS_ECDSA_P256_SHA256, PublicKeyData, SignatureAlgorithm, SigningKey};

use crate::ca_key::{CaKey, SignError};

/// Why a certificate or request could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SigningFailure {
    /// The CA key refused or failed to sign (sealed TPM policy, TPM fault).
    #[error(transparent)]
    Key(#[from] SignError),
    /// rcgen could not encode the structure (a value the CA should have refused earlier).
    #[error("cannot encode the certificate: {0}")]
    Encode(rcgen::Error),
}

/// The CA's TPM-held P-256 key, usable by rcgen.
///
/// Create one per signing operation: the side slot then belongs to that operation alone, so
/// concurrent issuances never see each other's failures.
pub struct CaSigner {
    key: Arc<dyn CaKey>,
    failure: Mutex<Option<SignError>>,
}

impl CaSigner {
    /// Wraps the CA key.
    pub fn new(key: Arc<dyn CaKey>) -> Self {
        Self {
            key,
            failure: Mutex::new(None),
        }
    }

    /// The reason of the last failed signature, if any; the slot is emptied.
    pub fn take_failure(&self) -> Option<SignError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner")
            .field("public_key", &hex::encode(self.key.public_key_sec1()))
            .finish_non_exhaustive()
    }
}

impl PublicKeyData for CaSigner {
    /// The uncompressed SEC1 point, which is what X.509 puts in the SubjectPublicKeyInfo BIT
    /// STRING for an `id-ecPublicKey` key.
    fn der_bytes(&self) -> &[u8] {
        self.key.public_key_sec1()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for CaSigner {
    /// `CaKey::sign` hashes with SHA-256 and returns the DER `ECDSA-Sig-Value` that
    /// `ecdsa-with-SHA256` requires, so the bytes go to rcgen unchanged.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key.sign(message).map_err(|failure| {
            tracing::warn!(%failure, "the CA key did not sign");
            *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(failure);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// Runs an rcgen operation that signs with `signer`, and reports a key failure with its real
/// cause instead of rcgen's payload-free `RemoteKeyError`.
pub fn sign_with<T>(
    signer: &CaSigner,
    operation: impl FnOnce(&CaSigner) -> Result<T, rcgen::Error>,
) -> Result<T, SigningFailure> {
    match operation(signer) {
        Ok(value) => Ok(value),
        Err(error) => Err(match signer.take_failure() {
            Some(failure) => SigningFailure::Key(failure),
            None => SigningFailure::Encode(error),
        }),
    }
}

/// A signer that signs nothing: it lets rcgen lay out a certificate with the CA as issuer
/// without spending a TPM signature, so the layout can be inspected (see
/// [`super::hierarchy`], which checks that the issuer name rcgen writes is byte-identical to
/// the subject of the CA certificate). Its output never leaves the process.
pub(crate) struct LayoutOnlySigner<'a> {
    pub(crate) public_key_sec1: &'a [u8],
}

impl PublicKeyData for LayoutOnlySigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.public_key_sec1
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for LayoutOnlySigner<'_> {
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        // A syntactically valid ECDSA-Sig-Value (r = s = 1) that verifies for nothing.
        Ok(vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01])
    }
}
