//! Certificate signing requests, read as hostile network input.
//!
//! A CSR arrives over ACME, D-Bus or `bunkerctl` from a party the CA has not yet trusted. It is
//! parsed once, here, into a [`ParsedCsr`] that holds only what the CA uses: the public key and
//! the names asked for, each already well-formed. Everything else in the request is either
//! ignored on purpose (subject attributes other than CN, PKCS#9 attributes other than the
//! extension request: they never reach a certificate) or refused with its own [`CsrError`]
//! variant, so the refusal reaches the client as a sentence it can act on.
//!
//! Accepted keys, and why:
//! - ECDSA P-256 and P-384 (uncompressed points): what TLS stacks, TPMs and secure elements in
//!   miners and sensor gateways produce;
//! - Ed25519: small devices and modern tooling;
//! - RSA with a modulus of 3072 to 8192 bits: legacy devices only; 3072 is the NIST floor past
//!   2030, 8192 the largest aws-lc verifies.
//!
//! P-521, secp256k1, DSA, RSA-PSS-only keys and anything else are refused: rustls and webpki on
//! the relying side either cannot use them or gain nothing from them. SHA-1 signatures are
//! refused even on an otherwise good key.
//!
//! [`parse_csr`] is a pure function of its input so it can be fuzzed.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::extension_request::requested_names;
use super::names::{NameError, quote_untrusted};
use super::subject::{KeyKind, SubjectName};

/// Largest CSR accepted, PEM or DER. A CSR with 32 names and an RSA-8192 key is under 4 KiB.
pub const MAX_CSR_BYTES: usize = 16 * 1024;
/// Longest common name (RFC 5280's `ub-common-name`).
pub const MAX_COMMON_NAME_LEN: usize = 64;
/// Most subject alternative names in one request.
pub const MAX_NAMES: usize = 32;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 3072;
/// Largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: u32 = 8192;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_RSA_SHA256: &str = "1.2.840.113549.1.1.11";
const OID_RSA_SHA384: &str = "1.2.840.113549.1.1.12";
const OID_RSA_SHA512: &str = "1.2.840.113549.1.1.13";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_COMMON_NAME: &str = "2.5.4.3";

/// Why a CSR is refused. Each variant is one thing the client can fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Nothing was sent.
    #[error("the certificate request is empty")]
    Empty,
    /// Larger than any sensible CSR.
    #[error("the certificate request is {len} bytes; at most {MAX_CSR_BYTES} are accepted")]
    TooLarge {
        /// Bytes received.
        len: usize,
    },
    /// Neither a PEM `CERTIFICATE REQUEST` block nor DER.
    #[error("the certificate request is neither PEM nor DER: {0}")]
    NotACsr(String),
    /// A PEM block of another kind (a certificate, a private key, ...).
    #[error("the PEM block is `{0}`, not `CERTIFICATE REQUEST`")]
    WrongPemLabel(String),
    /// The DER does not parse as PKCS#10.
    #[error("the certificate request is not valid PKCS#10 DER: {0}")]
    Malformed(String),
    /// Bytes after the end of the request.
    #[error("{0} bytes follow the end of the certificate request")]
    TrailingData(usize),
    /// A PKCS#10 version other than v1 (0).
    #[error("the certificate request has version {0}; only version 1 (0) exists")]
    UnsupportedVersion(u32),
    /// A key algorithm or curve the CA does not certify.
    #[error(
        "the key is {0}; this CA certifies ECDSA P-256 or P-384, Ed25519, or RSA of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits"
    )]
    UnsupportedKeyType(String),
    /// An RSA key outside the accepted sizes.
    #[error("the RSA key has {bits} bits; this CA accepts {MIN_RSA_BITS} to {MAX_RSA_BITS}")]
    RsaKeySize {
        /// Modulus size.
        bits: u32,
    },
    /// The key's encoding is invalid (compressed or malformed point, wrong length).
    #[error("the public key is malformed: {0}")]
    BadPublicKey(String),
    /// A signature algorithm that is weak or does not match the key.
    #[error("the request is signed with {0}, which this CA does not accept for this key")]
    UnsupportedSignatureAlgorithm(String),
    /// The self-signature does not verify: the request was altered, or the requester does not
    /// hold the private key.
    #[error(
        "the request's signature does not verify with its own public key (altered request, or not signed by the key holder)"
    )]
    BadSignature,
    /// More than one CN in the subject.
    #[error("the subject has {0} common names; at most one is accepted")]
    MultipleCommonNames(usize),
    /// A CN longer than RFC 5280 allows.
    #[error("the common name is {len} characters; at most {MAX_COMMON_NAME_LEN} are allowed")]
    CommonNameTooLong {
        /// Its length in characters.
        len: usize,
    },
    /// A CN that is empty, not a text string, or holds control characters.
    #[error("the common name is unusable: {0}")]
    BadCommonName(String),
    /// Too many subject alternative names.
    #[error("the request asks for {count} names; at most {MAX_NAMES} are accepted")]
    TooManyNames {
        /// Names requested.
        count: usize,
    },
    /// A DNS name that is not well-formed.
    #[error("the DNS name \"{name}\" is refused: {reason}")]
    BadDnsName {
        /// The name, quoted safely.
        name: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// An IP address name that is neither 4 nor 16 bytes.
    #[error("an IP address name has {0} bytes; IPv4 has 4 and IPv6 16")]
    BadIpAddress(usize),
    /// A URI name that is not printable ASCII of sensible length with a scheme.
    #[error("the URI \"{uri}\" is refused: {reason}")]
    BadUri {
        /// The URI, quoted safely.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An e-mail name that is not `local@domain` in lowercase.
    #[error("the e-mail address \"{email}\" is refused: {reason}")]
    BadEmail {
        /// The address, quoted safely.
        email: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A kind of name this CA never certifies (otherName, directoryName, ...).
    #[error(
        "the request asks for a {0} name; this CA certifies DNS, IP, URI and e-mail names only"
    )]
    UnsupportedNameType(&'static str),
    /// A name entry that does not decode.
    #[error("a subject alternative name entry does not decode")]
    MalformedName,
    /// `basicConstraints` with `cA` true.
    #[error(
        "the request asks to be a CA (basicConstraints cA=TRUE); this CA issues end-entity certificates only"
    )]
    CaRequested,
    /// Key usages reserved for CAs.
    #[error("the request asks for the key usage {0}, which only CA certificates carry")]
    ForbiddenKeyUsage(&'static str),
    /// An extended key usage other than TLS server or client authentication.
    #[error(
        "the request asks for the extended key usage {0}; only serverAuth and clientAuth are issued"
    )]
    ForbiddenExtendedKeyUsage(String),
    /// An extension this CA does not honour.
    #[error("the request asks for extension {oid}{}, which this CA does not honour", if *critical { " (critical)" } else { "" })]
    UnsupportedExtension {
        /// Its OID.
        oid: String,
        /// Whether it was marked critical.
        critical: bool,
    },
    /// An extension requested twice.
    #[error("the request asks for extension {0} twice")]
    DuplicateExtension(String),
    /// An extension whose content does not decode.
    #[error("the requested extension {0} does not decode")]
    MalformedExtension(String),
    /// More than one extensionRequest attribute.
    #[error("the request carries more than one extensionRequest attribute")]
    MultipleExtensionRequests,
}

/// A CSR that passed every syntactic and cryptographic check: its key is one the CA certifies,
/// its signature proves possession, and its names are well-formed. Whether the names may be
/// issued under a profile is decided later, by the profile rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCsr {
    der: Vec<u8>,
    key: KeyKind,
    public_key: Vec<u8>,
    common_name: Option<String>,
    names: Vec<SubjectName>,
}

impl ParsedCsr {
    /// The request as DER (decoded from PEM if it came as PEM), for logs and audit.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The key type.
    pub fn key(&self) -> KeyKind {
        self.key
    }

    /// The subjectPublicKey BIT STRING contents (SEC1 point, Ed25519 key or RSAPublicKey DER).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The subject common name, if the request has one.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The subject alternative names asked for, without duplicates, in request order.
    pub fn names(&self) -> &[SubjectName] {
        &self.names
    }
}

/// Parses and checks a CSR given as PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`)
/// or DER. Pure: no I/O, no clock, no randomness.
pub fn parse_csr(bytes: &[u8]) -> Result<ParsedCsr, CsrError> {
    if bytes.is_empty() {
        return Err(CsrError::Empty);
    }
    if bytes.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge { len: bytes.len() });
    }
    let der = decode_envelope(bytes)?;
    let (rest, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::TrailingData(rest.len()));
    }
    let info = &csr.certification_request_info;
    if info.version.0 != 0 {
        return Err(CsrError::UnsupportedVersion(info.version.0));
    }
    let key = check_key(&info.subject_pki)?;
    check_signature_algorithm(key, &csr)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let common_name = common_name(&csr)?;
    let names = requested_names(&csr)?;
    let public_key = info.subject_pki.subject_public_key.data.to_vec();
    Ok(ParsedCsr {
        der,
        key,
        public_key,
        common_name,
        names,
    })
}

/// PEM → DER, or DER as is.
fn decode_envelope(bytes: &[u8]) -> Result<Vec<u8>, CsrError> {
    if bytes.first() == Some(&0x30) {
        return Ok(bytes.to_vec());
    }
    let trimmed = bytes.trim_ascii();
    if !trimmed.starts_with(b"-----BEGIN ") {
        return Err(CsrError::NotACsr(
            "it starts with neither `-----BEGIN ` nor a DER SEQUENCE".into(),
        ));
    }
    let blocks = trimmed.windows(11).filter(|w| w == b"-----BEGIN ").count();
    if blocks != 1 || !trimmed.ends_with(b"-----") {
        return Err(CsrError::NotACsr(
            "expected exactly one PEM block and nothing around it".into(),
        ));
    }
    let block = pem::parse(trimmed).map_err(|e| CsrError::NotACsr(e.to_string()))?;
    match block.tag() {
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Ok(block.into_contents()),
        other => Err(CsrError::WrongPemLabel(quote_untrusted(other, 40))),
    }
}

/// The key type, with the encoding checks the signature check does not make.
fn check_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyKind, CsrError> {
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let key_bits = &spki.subject_public_key.data;
    if spki.subject_public_key.unused_bits != 0 {
        return Err(CsrError::BadPublicKey(
            "the key BIT STRING has unused bits".into(),
        ));
    }
    match algorithm.as_str() {
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .ok_or_else(|| {
                    CsrError::BadPublicKey("the EC key names no curve (namedCurve)".into())
                })?;
            let (kind, len) = match curve.as_str() {
                OID_P256 => (KeyKind::EcdsaP256, 65),
                OID_P384 => (KeyKind::EcdsaP384, 97),
                other => return Err(CsrError::UnsupportedKeyType(curve_name(other))),
            };
            if key_bits.first() != Some(&0x04) || key_bits.len() != len {
                return Err(CsrError::BadPublicKey(format!(
                    "a {kind} key must be an uncompressed point of {len} bytes"
                )));
            }
            if kind == KeyKind::EcdsaP256 {
                p256::PublicKey::from_sec1_bytes(key_bits).map_err(|_| {
                    CsrError::BadPublicKey("the point is not on the P-256 curve".into())
                })?;
            }
            Ok(kind)
        }
        OID_ED25519 => {
            if spki.algorithm.parameters.is_some() || key_bits.len() != 32 {
                return Err(CsrError::BadPublicKey(
                    "an Ed25519 key is 32 bytes with no parameters".into(),
                ));
            }
            Ok(KeyKind::Ed25519)
        }
        OID_RSA => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let bits = modulus_bits(rsa.modulus);
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(CsrError::RsaKeySize { bits });
                }
                Ok(KeyKind::Rsa { bits })
            }
            _ => Err(CsrError::BadPublicKey(
                "the RSA key is not a valid RSAPublicKey".into(),
            )),
        },
        other => Err(CsrError::UnsupportedKeyType(key_algorithm_name(other))),
    }
}

/// Bits in an unsigned big-endian modulus.
fn modulus_bits(modulus: &[u8]) -> u32 {
    let significant = modulus
        .iter()
        .position(|b| *b != 0)
        .map_or(&[][..], |first| &modulus[first..]);
    match significant.first() {
        Some(first) => (significant.len() as u32 - 1) * 8 + (8 - first.leading_zeros()),
        None => 0,
    }
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.35" => "ECDSA P-521".into(),
        "1.3.132.0.10" => "ECDSA secp256k1".into(),
        other => format!("an EC key on curve {other}"),
    }
}

fn key_algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.10040.4.1" => "DSA".into(),
        "1.2.840.113549.1.1.10" => "an RSA-PSS-only key".into(),
        "1.3.101.110" | "1.3.101.111" => "an X25519/X448 key-agreement key".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("of algorithm {other}"),
    }
}

/// The signature algorithm must be strong and belong to the key's family; x509-parser would
/// otherwise verify SHA-1 signatures too.
fn check_signature_algorithm(
    key: KeyKind,
    csr: &X509CertificationRequest<'_>,
) -> Result<(), CsrError> {
    let algorithm = csr.signature_algorithm.algorithm.to_id_string();
    let accepted = match key {
        KeyKind::EcdsaP256 | KeyKind::EcdsaP384 => {
            matches!(algorithm.as_str(), OID_ECDSA_SHA256 | OID_ECDSA_SHA384)
        }
        KeyKind::Ed25519 => algorithm == OID_ED25519,
        KeyKind::Rsa { .. } => matches!(
            algorithm.as_str(),
            OID_RSA_SHA256 | OID_RSA_SHA384 | OID_RSA_SHA512 | OID_RSA_PSS
        ),
    };
    if accepted {
        Ok(())
    } else {
        Err(CsrError::UnsupportedSignatureAlgorithm(
            signature_algorithm_name(&algorithm),
        ))
    }
}

fn signature_algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => "SHA-1 with RSA (broken)".into(),
        "1.2.840.10045.4.1" => "ECDSA with SHA-1 (broken)".into(),
        "1.2.840.113549.1.1.4" => "MD5 with RSA (broken)".into(),
        OID_ECDSA_SHA256 => "ECDSA with SHA-256".into(),
        OID_ECDSA_SHA384 => "ECDSA with SHA-384".into(),
        "1.2.840.10045.4.3.4" => "ECDSA with SHA-512".into(),
        OID_ED25519 => "Ed25519".into(),
        OID_RSA_SHA256 | OID_RSA_SHA384 | OID_RSA_SHA512 | OID_RSA_PSS => {
            format!("RSA ({oid})")
        }
        other => format!("algorithm {other}"),
    }
}

/// The single CN, if any.
fn common_name(csr: &X509CertificationRequest<'_>) -> Result<Option<String>, CsrError> {
    let subject = &csr.certification_request_info.subject;
    let values: Vec<_> = subject
        .iter_attributes()
        .filter(|attr| attr.attr_type().to_id_string() == OID_COMMON_NAME)
        .collect();
    let value = match values.as_slice() {
        [] => return Ok(None),
        [one] => one,
        many => return Err(CsrError::MultipleCommonNames(many.len())),
    };
    let text = value.as_str().map_err(|_| {
        CsrError::BadCommonName("it is not a UTF8String, PrintableString or IA5String".into())
    })?;
    let len = text.chars().count();
    if len == 0 {
        return Err(CsrError::BadCommonName("it is empty".into()));
    }
    if len > MAX_COMMON_NAME_LEN {
        return Err(CsrError::CommonNameTooLong { len });
    }
    if text.chars().any(char::is_control) {
        return Err(CsrError::BadCommonName(format!(
            "\"{}\" contains control characters",
            quote_untrusted(text, MAX_COMMON_NAME_LEN)
        )));
    }
    if text.trim() != text {
        return Err(CsrError::BadCommonName(
            "it starts or ends with white space".into(),
        ));
    }
    Ok(Some(text.to_owned()))
}
