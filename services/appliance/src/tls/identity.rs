//! [`Identity`]: this node's certificate chain and the key that proves it owns it.

use std::fmt;
use std::sync::Arc;

use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{Error as RustlsError, InconsistentKeys};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{TlsError, provider};

/// A certificate chain (leaf first) and the signing key of the leaf.
///
/// The key is held as a `rustls::sign::SigningKey`, never as bytes this crate can print: a key
/// from a PEM file is loaded into aws-lc-rs at once, and a TPM-resident key never leaves the TPM
/// at all. `Debug` shows the chain length and key algorithm only.
#[derive(Clone)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
}

impl Identity {
    /// An identity from a chain (leaf first) and any signing key, e.g. one backed by the TPM.
    ///
    /// Refuses an empty chain, and a key whose public half is known and differs from the
    /// leaf's (a swapped key file would otherwise only show up as failed handshakes). A key that
    /// cannot tell its public half (some hardware keys) is accepted.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: Arc<dyn SigningKey>,
    ) -> Result<Self, TlsError> {
        if chain.is_empty() {
            return Err(TlsError::EmptyChain);
        }
        let identity = Self { chain, key };
        match identity.certified_key().keys_match() {
            Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(identity),
            Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::KeyMismatch)
            }
            Err(other) => Err(TlsError::Key(other)),
        }
    }

    /// An identity from PEM: a certificate chain (leaf first) and a PKCS#8, SEC1 or PKCS#1 key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "certificate chain",
                source,
            })?;
        let key_der = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
            what: "private key",
            source,
        })?;
        let key = provider()
            .key_provider
            .load_private_key(key_der)
            .map_err(TlsError::Key)?;
        Self::new(chain, key)
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The signing key.
    pub fn key(&self) -> &Arc<dyn SigningKey> {
        &self.key
    }

    pub(super) fn certified_key(&self) -> CertifiedKey {
        CertifiedKey::new(self.chain.clone(), Arc::clone(&self.key))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_len", &self.chain.len())
            .field("key_algorithm", &self.key.algorithm())
            .finish_non_exhaustive()
    }
}
