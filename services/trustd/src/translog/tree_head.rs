//! Signed tree heads: the CA key's statement "my log had this root at this size".
//!
//! A tree head is signed through [`CaKey`], i.e. by the TPM-held key, over a domain-separated
//! encoding (version 1):
//!
//! ```text
//! signed bytes = "bunkeros-tree-head-v1" 0x00 || size (u64 BE) || timestamp_ms (u64 BE) || root (32 bytes)
//! ```
//!
//! The CA key also signs certificates, CRLs and audit digests; the prefix (with its terminating
//! NUL, so no other purpose's prefix can extend it) guarantees that no signature made for one of
//! those can be presented as a tree head, nor the other way round. All fields are fixed-width, so
//! the encoding is unambiguous without length prefixes. The signature is ECDSA P-256 over
//! `SHA-256(signed bytes)`, DER-encoded, and verifies with nothing but the CA's public key.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use thiserror::Error;

use super::merkle::MerkleHash;
use crate::ca_key::{CaKey, SignError};

/// Domain separator of tree-head signatures; versioned with the encoding.
pub const TREE_HEAD_DOMAIN: &[u8] = b"bunkeros-tree-head-v1\0";

/// Length of the signed encoding.
const SIGNED_LEN: usize = TREE_HEAD_DOMAIN.len() + 8 + 8 + 32;

/// Longest DER `ECDSA-Sig-Value` for P-256: two 33-byte integers with their headers.
pub const MAX_SIGNATURE_LEN: usize = 72;

/// Why a tree head could not be signed or does not verify.
#[derive(Debug, Error)]
pub enum TreeHeadError {
    /// The CA key refused or failed to sign (sealed, TPM failure).
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The public key is not a P-256 SEC1 point.
    #[error("the CA public key is not a valid P-256 point")]
    BadPublicKey,
    /// The signature is not a DER ECDSA signature.
    #[error("the tree head signature is not a DER ECDSA signature")]
    BadSignatureEncoding,
    /// The signature does not match the tree head and key.
    #[error("the tree head signature does not verify with the CA public key")]
    SignatureMismatch,
    /// The CA key returned a signature that does not verify with its own public key.
    #[error("the CA key produced a signature its own public key rejects; nothing was published")]
    KeyInconsistent,
}

/// The state of the log at one moment: how many entries, and their Merkle root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root of the first `size` entries.
    pub root: MerkleHash,
    /// When the head was made, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

impl TreeHead {
    /// The exact bytes the CA key signs (see the module documentation).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SIGNED_LEN);
        bytes.extend_from_slice(TREE_HEAD_DOMAIN);
        bytes.extend_from_slice(&self.size.to_be_bytes());
        bytes.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        bytes.extend_from_slice(&self.root);
        bytes
    }

    /// Signs the head with the CA key.
    ///
    /// The signature is checked against the key's own public key before it is returned: a head
    /// that third parties would reject must never be served.
    pub fn sign(self, key: &dyn CaKey) -> Result<SignedTreeHead, TreeHeadError> {
        let signature = key.sign(&self.signed_bytes())?;
        let signed = SignedTreeHead {
            head: self,
            signature,
        };
        signed
            .verify(key.public_key_sec1())
            .map_err(|_| TreeHeadError::KeyInconsistent)?;
        Ok(signed)
    }
}

/// A tree head with the CA's signature over it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// What is signed.
    pub head: TreeHead,
    /// DER ECDSA P-256 signature over [`TreeHead::signed_bytes`].
    pub signature: Vec<u8>,
}

impl SignedTreeHead {
    /// Checks the signature with the CA public key (SEC1, as [`CaKey::public_key_sec1`] gives it).
    pub fn verify(&self, ca_public_key_sec1: &[u8]) -> Result<(), TreeHeadError> {
        let key = VerifyingKey::from_sec1_bytes(ca_public_key_sec1)
            .map_err(|_| TreeHeadError::BadPublicKey)?;
        self.verify_with(&key)
    }

    /// Same as [`SignedTreeHead::verify`] with an already parsed key.
    pub fn verify_with(&self, ca_public_key: &VerifyingKey) -> Result<(), TreeHeadError> {
        if self.signature.len() > MAX_SIGNATURE_LEN {
            return Err(TreeHeadError::BadSignatureEncoding);
        }
        let signature = Signature::from_der(&self.signature)
            .map_err(|_| TreeHeadError::BadSignatureEncoding)?;
        ca_public_key
            .verify(&self.head.signed_bytes(), &signature)
            .map_err(|_| TreeHeadError::SignatureMismatch)
    }
}
