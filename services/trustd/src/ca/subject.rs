//! What a certificate is about: the subject's key type and its names.

use std::fmt;
use std::net::IpAddr;

use super::names::DnsName;

/// The kind of key a CSR carries; see [`super::csr`] for why exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus size.
        bits: u32,
    },
}

impl KeyKind {
    /// Whether the key can take part in an elliptic-curve Diffie-Hellman exchange, and may
    /// therefore carry `keyAgreement`.
    pub fn can_agree_keys(&self) -> bool {
        matches!(self, Self::EcdsaP256 | Self::EcdsaP384)
    }

    /// rcgen's description of the key, which decides how the SubjectPublicKeyInfo is written.
    pub(crate) fn rcgen_algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
            Self::Rsa { .. } => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcdsaP256 => f.write_str("ECDSA P-256"),
            Self::EcdsaP384 => f.write_str("ECDSA P-384"),
            Self::Ed25519 => f.write_str("Ed25519"),
            Self::Rsa { bits } => write!(f, "RSA-{bits}"),
        }
    }
}

/// One subject alternative name, well-formed (see [`super::names`] and [`super::csr`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectName {
    /// A DNS name, possibly a wildcard.
    Dns(DnsName),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A URI, e.g. `bunkeros:hub:oslo-1`.
    Uri(String),
    /// An e-mail address (`rfc822Name`).
    Email(String),
}

impl SubjectName {
    /// The kind, as used in messages: `DNS`, `IP`, `URI` or `e-mail`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "DNS",
            Self::Ip(_) => "IP",
            Self::Uri(_) => "URI",
            Self::Email(_) => "e-mail",
        }
    }

    /// The name as text, the way a CN that names the same thing would spell it.
    pub fn text(&self) -> String {
        match self {
            Self::Dns(name) => name.to_string(),
            Self::Ip(address) => address.to_string(),
            Self::Uri(text) | Self::Email(text) => text.clone(),
        }
    }

    /// The rcgen form, for writing the certificate. The texts are ASCII already.
    pub(crate) fn to_rcgen(&self) -> Result<rcgen::SanType, rcgen::Error> {
        Ok(match self {
            Self::Dns(name) => rcgen::SanType::DnsName(name.as_str().try_into()?),
            Self::Ip(address) => rcgen::SanType::IpAddress(*address),
            Self::Uri(text) => rcgen::SanType::URI(text.as_str().try_into()?),
            Self::Email(text) => rcgen::SanType::Rfc822Name(text.as_str().try_into()?),
        })
    }
}

impl fmt::Display for SubjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.text())
    }
}
