//! The certificate chain an offline root returns for this CA's intermediate request.
//!
//! `bunkerctl ca install-chain` hands trustd a PEM bundle: this CA's certificate first, then any
//! intermediates, then the offline root. Before trustd signs a single leaf under it, the bundle
//! must prove three things: the first certificate is for *this* CA key (a chain for another key
//! would make every leaf unverifiable, or worse, belong to someone else); it makes the key a CA
//! allowed to sign certificates; and every link up to a self-signed root carries a valid
//! signature. Otherwise the bundle is refused and the CA stays as it was.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::constraints::{ConstraintError, NameScope};

/// Largest bundle accepted.
pub const MAX_CHAIN_BYTES: usize = 64 * 1024;
/// Most certificates in a bundle.
pub const MAX_CHAIN_CERTIFICATES: usize = 8;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const WEAK_SIGNATURES: [&str; 5] = [
    "1.2.840.113549.1.1.4",
    "1.2.840.113549.1.1.5",
    "1.3.14.3.2.29",
    "1.2.840.10045.4.1",
    "1.2.840.10040.4.3",
];

/// Why a chain is refused. Positions count from 1, this CA's certificate being 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Larger than any sensible bundle.
    #[error("the chain is {0} bytes; at most {MAX_CHAIN_BYTES} are accepted")]
    TooLarge(usize),
    /// More certificates than any sensible hierarchy.
    #[error("the chain has {0} certificates; at most {MAX_CHAIN_CERTIFICATES} are accepted")]
    TooManyCertificates(usize),
    /// No PEM certificate at all.
    #[error("the chain holds no PEM certificate")]
    Empty,
    /// Only this CA's certificate, without the root that signed it.
    #[error("the chain ends without a root; append the offline root's certificate")]
    NoRoot,
    /// Not PEM.
    #[error("the chain is not PEM: {0}")]
    NotPem(String),
    /// A PEM block that is not a certificate.
    #[error("block {position} of the chain is `{label}`, not `CERTIFICATE`")]
    NotACertificate {
        /// Position in the bundle.
        position: usize,
        /// Its PEM label.
        label: String,
    },
    /// A certificate that does not parse.
    #[error("certificate {position} of the chain does not parse: {reason}")]
    Malformed {
        /// Position in the bundle.
        position: usize,
        /// Why.
        reason: String,
    },
    /// The first certificate certifies another key.
    #[error(
        "the first certificate is for another key, not this CA's TPM key; was the request of another trustd signed?"
    )]
    NotOurKey,
    /// A certificate in the chain is not a CA.
    #[error(
        "certificate {0} of the chain is not a CA certificate (basicConstraints cA is not TRUE)"
    )]
    NotACa(usize),
    /// A CA certificate whose key usage forbids signing certificates.
    #[error("certificate {0} of the chain may not sign certificates (keyUsage lacks keyCertSign)")]
    CannotSignCertificates(usize),
    /// A pathLenConstraint the chain below violates.
    #[error(
        "certificate {position} of the chain allows {allowed} CA certificates below it, but the chain puts {below} there"
    )]
    PathTooLong {
        /// Position in the bundle.
        position: usize,
        /// Its pathLenConstraint.
        allowed: u32,
        /// CA certificates below it, this CA included.
        below: usize,
    },
    /// The issuer name of a certificate is not the subject of the next.
    #[error("certificate {0} of the chain was not issued by certificate {next} (issuer and subject differ)", next = .0 + 1)]
    NotIssuedByNext(usize),
    /// A signature that does not verify with the next certificate's key.
    #[error(
        "the signature on certificate {0} of the chain does not verify with the key of the certificate after it"
    )]
    BadSignature(usize),
    /// A broken signature algorithm.
    #[error("certificate {0} of the chain is signed with a broken algorithm (MD5 or SHA-1)")]
    WeakSignature(usize),
    /// The last certificate is not self-signed.
    #[error("the last certificate of the chain is not a self-signed root")]
    LastNotSelfSigned,
    /// A certificate outside its validity period.
    #[error(
        "certificate {position} of the chain is not valid now (valid from {not_before} to {not_after})"
    )]
    NotValidNow {
        /// Position in the bundle.
        position: usize,
        /// Its notBefore.
        not_before: OffsetDateTime,
        /// Its notAfter.
        not_after: OffsetDateTime,
    },
    /// A critical extension verifiers would refuse.
    #[error(
        "certificate {position} of the chain has the critical extension {oid}, which verifiers do not know"
    )]
    UnknownCriticalExtension {
        /// Position in the bundle.
        position: usize,
        /// The extension.
        oid: String,
    },
    /// Name constraints this CA cannot honour.
    #[error("certificate {position} of the chain: {source}")]
    Constraints {
        /// Position in the bundle.
        position: usize,
        /// What is wrong.
        source: ConstraintError,
    },
}

/// A chain that passed every check: DER certificates, this CA's first, the root last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The certificates as DER.
    pub certificates: Vec<Vec<u8>>,
    /// The name constraints of every certificate, which all apply to this CA's leaves.
    pub scopes: Vec<NameScope>,
}

/// Splits a PEM bundle into DER certificates.
pub fn decode_pem_chain(chain_pem: &str) -> Result<Vec<Vec<u8>>, ChainError> {
    if chain_pem.len() > MAX_CHAIN_BYTES {
        return Err(ChainError::TooLarge(chain_pem.len()));
    }
    let blocks = pem::parse_many(chain_pem).map_err(|e| ChainError::NotPem(e.to_string()))?;
    if blocks.is_empty() {
        return Err(ChainError::Empty);
    }
    if blocks.len() > MAX_CHAIN_CERTIFICATES {
        return Err(ChainError::TooManyCertificates(blocks.len()));
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(index, block)| {
            if block.tag() == "CERTIFICATE" {
                Ok(block.into_contents())
            } else {
                Err(ChainError::NotACertificate {
                    position: index + 1,
                    label: super::names::quote_untrusted(block.tag(), 40),
                })
            }
        })
        .collect()
}

/// Checks `certificates` (this CA's first, root last) for the CA key `key_sec1` at `now`.
pub fn verify_chain(
    certificates: Vec<Vec<u8>>,
    key_sec1: &[u8],
    now: OffsetDateTime,
) -> Result<VerifiedChain, ChainError> {
    if certificates.is_empty() {
        return Err(ChainError::Empty);
    }
    let parsed = certificates
        .iter()
        .enumerate()
        .map(|(index, der)| parse(index + 1, der))
        .collect::<Result<Vec<_>, _>>()?;
    if !is_our_key(&parsed[0], key_sec1) {
        return Err(ChainError::NotOurKey);
    }
    let mut scopes = Vec::with_capacity(parsed.len());
    for (index, certificate) in parsed.iter().enumerate() {
        let position = index + 1;
        check_ca(position, certificate, index)?;
        check_validity(position, certificate, now)?;
        check_critical_extensions(position, certificate)?;
        if WEAK_SIGNATURES.contains(
            &certificate
                .signature_algorithm
                .algorithm
                .to_id_string()
                .as_str(),
        ) {
            return Err(ChainError::WeakSignature(position));
        }
        scopes.push(
            NameScope::from_certificate(certificate)
                .map_err(|source| ChainError::Constraints { position, source })?,
        );
        match parsed.get(index + 1) {
            Some(issuer) => {
                if certificate.issuer().as_raw() != issuer.subject().as_raw() {
                    return Err(ChainError::NotIssuedByNext(position));
                }
                certificate
                    .verify_signature(Some(issuer.public_key()))
                    .map_err(|_| ChainError::BadSignature(position))?;
            }
            None if parsed.len() == 1 => return Err(ChainError::NoRoot),
            None => {
                let self_issued = certificate.issuer().as_raw() == certificate.subject().as_raw();
                if !self_issued || certificate.verify_signature(None).is_err() {
                    return Err(ChainError::LastNotSelfSigned);
                }
            }
        }
    }
    Ok(VerifiedChain {
        certificates,
        scopes,
    })
}

/// Checks a single self-signed root of this CA (the state of a `root` mode CA).
pub fn verify_own_root(
    der: Vec<u8>,
    key_sec1: &[u8],
    now: OffsetDateTime,
) -> Result<VerifiedChain, ChainError> {
    let certificate = parse(1, &der)?;
    if !is_our_key(&certificate, key_sec1) {
        return Err(ChainError::NotOurKey);
    }
    check_ca(1, &certificate, 0)?;
    check_validity(1, &certificate, now)?;
    if certificate.verify_signature(None).is_err() {
        return Err(ChainError::LastNotSelfSigned);
    }
    let scope =
        NameScope::from_certificate(&certificate).map_err(|source| ChainError::Constraints {
            position: 1,
            source,
        })?;
    Ok(VerifiedChain {
        certificates: vec![der],
        scopes: vec![scope],
    })
}

fn parse(position: usize, der: &[u8]) -> Result<X509Certificate<'_>, ChainError> {
    let malformed = |reason: String| ChainError::Malformed { position, reason };
    let (rest, certificate) =
        X509Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} bytes follow the certificate",
            rest.len()
        )));
    }
    Ok(certificate)
}

/// Whether the certificate's key is the P-256 point `key_sec1`.
fn is_our_key(certificate: &X509Certificate<'_>, key_sec1: &[u8]) -> bool {
    let spki = certificate.public_key();
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|oid| oid.to_id_string());
    spki.algorithm.algorithm.to_id_string() == OID_EC_PUBLIC_KEY
        && curve.as_deref() == Some(OID_P256)
        && spki.subject_public_key.data.as_ref() == key_sec1
}

/// CA:TRUE, keyCertSign, and a pathLenConstraint that admits the `below` CA certificates
/// between it and the leaves.
fn check_ca(
    position: usize,
    certificate: &X509Certificate<'_>,
    below: usize,
) -> Result<(), ChainError> {
    let malformed = |reason: &str| ChainError::Malformed {
        position,
        reason: reason.to_owned(),
    };
    let constraints = certificate
        .basic_constraints()
        .map_err(|_| malformed("basicConstraints appears twice or does not decode"))?
        .filter(|bc| bc.value.ca)
        .ok_or(ChainError::NotACa(position))?;
    if let Some(allowed) = constraints.value.path_len_constraint
        && (allowed as usize) < below
    {
        return Err(ChainError::PathTooLong {
            position,
            allowed,
            below,
        });
    }
    match certificate
        .key_usage()
        .map_err(|_| malformed("keyUsage appears twice or does not decode"))?
    {
        Some(usage) if !usage.value.key_cert_sign() => {
            Err(ChainError::CannotSignCertificates(position))
        }
        _ => Ok(()),
    }
}

fn check_validity(
    position: usize,
    certificate: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<(), ChainError> {
    let validity = certificate.validity();
    let not_before = validity.not_before.to_datetime();
    let not_after = validity.not_after.to_datetime();
    if now < not_before || now > not_after {
        return Err(ChainError::NotValidNow {
            position,
            not_before,
            not_after,
        });
    }
    Ok(())
}

fn check_critical_extensions(
    position: usize,
    certificate: &X509Certificate<'_>,
) -> Result<(), ChainError> {
    for extension in certificate.extensions() {
        let unknown = matches!(
            extension.parsed_extension(),
            ParsedExtension::UnsupportedExtension { .. } | ParsedExtension::ParseError { .. }
        );
        if extension.critical && unknown {
            return Err(ChainError::UnknownCriticalExtension {
                position,
                oid: extension.oid.to_id_string(),
            });
        }
    }
    Ok(())
}
