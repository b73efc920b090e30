//! Seals: the chain head's hash signed by trustd's CA key, so that a log rewritten from some
//! record on (hashes recomputed) no longer matches a signature the writer could not forge.
//!
//! trustd (`SignAuditDigest(service, digest)`, `authority::audit` in trustd) never signs the
//! caller's digest as given. It signs the domain-separated statement (version 1)
//!
//! ```text
//! "bunkeros-audit-v1" 0x00 || len(service) (u8) || service || digest (32 bytes)
//! ```
//!
//! with the CA's TPM-held P-256 key: ECDSA over SHA-256 of the statement, DER-encoded. The
//! digest a log seals is the hash of its head record; the seal record that follows carries
//! the service name (part of the statement), the key id and the signature, and its `prev` is
//! the sealed hash. The verifier needs the CA's public key: `public_key` (hex SEC1) in
//! trustd's `Status()` document, or the public key of the CA certificate. The key id in a seal
//! is the hex SHA-256 of the uncompressed SEC1 point, so a verifier can tell which key signed
//! before it tries to verify (the CA key changes when the CA is re-created).
//!
//! The statement encoding is repeated here because services must not depend on trustd's crate;
//! trustd's `tests/audit_seal.rs` checks that a real trustd signature verifies with this code.

use std::future::Future;
use std::pin::Pin;

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Domain separator of trustd's audit statements.
pub const AUDIT_DOMAIN: &[u8] = b"bunkeros-audit-v1\0";

/// Longest service name trustd accepts in a statement.
pub const MAX_SERVICE_NAME_LEN: usize = 32;

/// A boxed future, so that [`SealSigner`] can be used as `dyn SealSigner`.
pub type SignFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SealSignature, SignError>> + Send + 'a>>;

/// Signs the digest of a log's head. trustd over D-Bus in production
/// ([`super::trustd_signer::TrustdSigner`]); anything holding a P-256 key in tests.
pub trait SealSigner: Send + Sync {
    /// Signs `digest` as trustd's statement for this signer's service.
    fn sign(&self, digest: [u8; 32]) -> SignFuture<'_>;
}

/// What a signer returns: enough to write a seal and to check it before writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealSignature {
    /// The service name inside the signed statement.
    pub service: String,
    /// The signer's public key, SEC1 (compressed or not).
    pub public_key_sec1: Vec<u8>,
    /// DER ECDSA signature over the statement.
    pub signature_der: Vec<u8>,
}

/// Why a seal could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// trustd is not on the bus, refused, or is sealed.
    #[error("the signer is unavailable: {0}")]
    Unavailable(String),
    /// The signer answered with something that does not verify.
    #[error("the signer's answer does not verify: {0}")]
    Invalid(String),
}

/// A service name trustd accepts: `[a-z0-9-]{1,32}`.
pub fn valid_service_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    !name.is_empty() && name.len() <= MAX_SERVICE_NAME_LEN && name.bytes().all(allowed)
}

/// The bytes trustd signs for `service`'s `digest` (see the module documentation).
pub fn audit_statement(service: &str, digest: &[u8; 32]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(AUDIT_DOMAIN.len() + 1 + service.len() + 32);
    bytes.extend_from_slice(AUDIT_DOMAIN);
    // Callers check the name first (at most 32 bytes): the length fits in one byte.
    bytes.push(service.len() as u8);
    bytes.extend_from_slice(service.as_bytes());
    bytes.extend_from_slice(digest);
    bytes
}

/// The public key a verifier trusts to have signed seals, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    key: VerifyingKey,
    id: String,
}

/// Why a public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not hex")]
    NotHex,
    #[error("not a P-256 public key")]
    NotP256,
}

impl TrustedKey {
    /// From SEC1 bytes (trustd's `Status().public_key`, hex-decoded).
    pub fn from_sec1(bytes: &[u8]) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_sec1_bytes(bytes).map_err(|_| KeyError::NotP256)?;
        Ok(Self::from_key(key))
    }

    /// From hex SEC1, as trustd's `Status()` document shows it.
    pub fn from_sec1_hex(text: &str) -> Result<Self, KeyError> {
        Self::from_sec1(&hex::decode(text.trim()).map_err(|_| KeyError::NotHex)?)
    }

    /// From a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), e.g. `openssl x509 -pubkey` of the CA
    /// certificate.
    pub fn from_public_key_pem(pem: &str) -> Result<Self, KeyError> {
        use p256::pkcs8::DecodePublicKey as _;
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|_| KeyError::NotP256)?;
        Ok(Self::from_key(key))
    }

    fn from_key(key: VerifyingKey) -> Self {
        let id = key_id(&key);
        Self { key, id }
    }

    /// Hex SHA-256 of the uncompressed SEC1 point.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Checks a DER signature over `service`'s statement for `digest`.
    pub fn verifies(&self, service: &str, digest: &[u8; 32], signature_der: &[u8]) -> bool {
        let Ok(signature) = Signature::from_der(signature_der) else {
            return false;
        };
        valid_service_name(service)
            && self
                .key
                .verify(&audit_statement(service, digest), &signature)
                .is_ok()
    }
}

fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.to_encoded_point(false).as_bytes()))
}

/// The `detail` of a seal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealDetail {
    pub service: String,
    pub key_id: String,
    pub signature_der: Vec<u8>,
}

impl SealDetail {
    /// Checks what the signer returned against `digest`, and keeps what a verifier needs.
    pub fn checked(signed: SealSignature, digest: &[u8; 32]) -> Result<Self, SignError> {
        let key = TrustedKey::from_sec1(&signed.public_key_sec1)
            .map_err(|e| SignError::Invalid(format!("public key: {e}")))?;
        if !key.verifies(&signed.service, digest, &signed.signature_der) {
            return Err(SignError::Invalid(format!(
                "the signature does not verify for service `{}` and the head's hash",
                signed.service
            )));
        }
        Ok(Self {
            service: signed.service,
            key_id: key.id().to_owned(),
            signature_der: signed.signature_der,
        })
    }

    /// As stored in the record.
    pub fn to_json(&self) -> Value {
        json!({
            "service": self.service,
            "key_id": self.key_id,
            "signature": hex::encode(&self.signature_der),
        })
    }

    /// From a seal record's `detail`; `None` when a field is missing or mistyped.
    pub fn from_json(detail: &Value) -> Option<Self> {
        let object = detail.as_object()?;
        if object.len() != 3 {
            return None;
        }
        Some(Self {
            service: object.get("service")?.as_str()?.to_owned(),
            key_id: object.get("key_id")?.as_str()?.to_owned(),
            signature_der: hex::decode(object.get("signature")?.as_str()?).ok()?,
        })
    }
}
