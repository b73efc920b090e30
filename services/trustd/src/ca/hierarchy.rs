//! Where this CA sits: a self-signed site root, or an intermediate under an offline root.
//!
//! A site that trusts nobody else makes its CA a self-signed root: the root certificate is then
//! what every relying party pins. A site whose organisation keeps an offline root (a safe, an
//! air-gapped laptop) makes the TPM key an intermediate instead: trustd writes a request
//! ([`intermediate_request`]), the root's keeper signs it, and the returned chain is checked by
//! [`super::chain`] before it is installed. Either way the CA certificate is name-constrained to
//! the site (see [`super::constraints`]), limited to signing end-entity certificates
//! (pathLenConstraint 0), and carries keyCertSign and cRLSign only.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::chain::{ChainError, VerifiedChain};
use super::constraints::NameScope;
use super::serial::CertificateSerial;
use super::signer::{CaSigner, LayoutOnlySigner, SigningFailure, sign_with};

/// Lifetime of a self-signed site root: long, because replacing it means re-enrolling every
/// relying party; the key's safety comes from the TPM policy, not from expiry.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(3_653 * 86_400);
/// Suffix of the CA's common name after the site name.
pub const CA_NAME_SUFFIX: &str = " BunkerOS Site CA";
/// Longest site name, so the CA's common name stays within 64 characters.
pub const MAX_SITE_NAME_LEN: usize = 64 - CA_NAME_SUFFIX.len();
/// Longest organisation name (RFC 5280's `ub-organization-name`).
pub const MAX_ORGANISATION_LEN: usize = 64;

/// The names the CA certificate carries: `CN=<site> BunkerOS Site CA, O=<organisation>`.
/// Read from configuration or state through the same checks as [`SiteIdentity::new`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "SiteIdentityFields")]
pub struct SiteIdentity {
    site_name: String,
    organisation: String,
}

/// The unchecked form serde reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteIdentityFields {
    site_name: String,
    organisation: String,
}

impl TryFrom<SiteIdentityFields> for SiteIdentity {
    type Error = SiteIdentityError;
    fn try_from(fields: SiteIdentityFields) -> Result<Self, Self::Error> {
        Self::new(fields.site_name, fields.organisation)
    }
}

/// Why a site identity is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteIdentityError {
    /// Empty, too long, or with control characters.
    #[error("the {field} \"{value}\" is refused: use 1 to {max} printable characters")]
    Invalid {
        /// `site name` or `organisation`.
        field: &'static str,
        /// The value, quoted safely.
        value: String,
        /// Longest allowed.
        max: usize,
    },
}

impl SiteIdentity {
    /// Checks and wraps the site's name (e.g. `Oslo-1`) and organisation.
    pub fn new(
        site_name: impl Into<String>,
        organisation: impl Into<String>,
    ) -> Result<Self, SiteIdentityError> {
        let site_name = site_name.into();
        let organisation = organisation.into();
        check_text("site name", &site_name, MAX_SITE_NAME_LEN)?;
        check_text("organisation", &organisation, MAX_ORGANISATION_LEN)?;
        Ok(Self {
            site_name,
            organisation,
        })
    }

    /// The site's name.
    pub fn site_name(&self) -> &str {
        &self.site_name
    }

    /// The organisation.
    pub fn organisation(&self) -> &str {
        &self.organisation
    }

    /// The CA certificate's common name.
    pub fn ca_common_name(&self) -> String {
        format!("{}{CA_NAME_SUFFIX}", self.site_name)
    }

    fn distinguished_name(&self) -> DistinguishedName {
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, self.ca_common_name());
        name.push(DnType::OrganizationName, self.organisation.clone());
        name
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), SiteIdentityError> {
    let length = value.chars().count();
    let printable = !value.chars().any(char::is_control) && value.trim() == value;
    if length == 0 || length > max || !printable {
        return Err(SiteIdentityError::Invalid {
            field,
            value: super::names::quote_untrusted(value, 80),
            max,
        });
    }
    Ok(())
}

/// The parameters of a CA certificate (or request) for `site`, constrained to `scope`.
fn ca_params(site: &SiteIdentity, scope: &NameScope) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = site.distinguished_name();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    if !scope.is_unconstrained() {
        params.custom_extensions.push(scope.to_extension());
    }
    params
}

/// Signs the self-signed site root with the CA key.
pub fn root_certificate(
    site: &SiteIdentity,
    scope: &NameScope,
    serial: CertificateSerial,
    signer: &CaSigner,
    now: OffsetDateTime,
) -> Result<Vec<u8>, SigningFailure> {
    let mut params = ca_params(site, scope);
    params.serial_number = Some(serial.to_rcgen());
    params.not_before = now - super::lifetime::BACKDATE;
    params.not_after = super::lifetime::Lifetime::from(ROOT_LIFETIME).after(now);
    params.use_authority_key_identifier_extension = true;
    sign_with(signer, |signer| params.self_signed(signer)).map(|cert| cert.der().to_vec())
}

/// Writes the PKCS#10 request an offline root signs to make the CA key an intermediate. It asks
/// for CA:TRUE with pathLenConstraint 0, keyCertSign and cRLSign, and the site's name
/// constraints; whether the root copies them is its keeper's decision, and
/// [`super::chain::verify_chain`] reads what it actually did.
pub fn intermediate_request(
    site: &SiteIdentity,
    scope: &NameScope,
    signer: &CaSigner,
) -> Result<String, SigningFailure> {
    let params = ca_params(site, scope);
    let request = sign_with(signer, |signer| params.serialize_request(signer))?;
    request.pem().map_err(SigningFailure::Encode)
}

/// Whether this CA's certificate is its own root or was signed by an offline root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaKind {
    /// Self-signed site root.
    Root,
    /// Intermediate under an offline root.
    Intermediate,
}

impl std::fmt::Display for CaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Root => "a self-signed site root",
            Self::Intermediate => "an intermediate under an offline root",
        })
    }
}

/// A CA certificate (and its chain) that issuance may sign under.
#[derive(Debug, Clone)]
pub struct ActiveCa {
    /// Root or intermediate.
    pub kind: CaKind,
    /// DER certificates, this CA's first, the self-signed root last (one entry for a root).
    pub chain: Vec<Vec<u8>>,
    /// Name constraints of every certificate in the chain; leaves must satisfy all.
    pub scopes: Vec<NameScope>,
    /// The CA certificate's subject, for status displays.
    pub subject: String,
    /// Start of the CA certificate's validity.
    pub not_before: OffsetDateTime,
    /// End of the CA certificate's validity: no leaf outlives it.
    pub not_after: OffsetDateTime,
}

impl ActiveCa {
    /// Takes a verified chain into use, after checking rcgen can name its issuer exactly.
    pub fn new(kind: CaKind, verified: VerifiedChain, key_sec1: &[u8]) -> Result<Self, ChainError> {
        let own = &verified.certificates[0];
        let malformed = |reason: String| ChainError::Malformed {
            position: 1,
            reason,
        };
        let (_, certificate) =
            X509Certificate::from_der(own).map_err(|e| malformed(e.to_string()))?;
        check_issuer_name_reproducible(own, &certificate, key_sec1)?;
        let validity = certificate.validity();
        Ok(Self {
            kind,
            subject: certificate.subject().to_string(),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            chain: verified.certificates,
            scopes: verified.scopes,
        })
    }

    /// An rcgen issuer for this CA signing with `signer`.
    pub fn issuer<'a>(
        &self,
        signer: &'a CaSigner,
    ) -> Result<Issuer<'static, &'a CaSigner>, rcgen::Error> {
        Issuer::from_ca_cert_der(&CertificateDer::from(self.chain[0].as_slice()), signer)
    }

    /// The self-signed root at the top of the chain.
    pub fn root_der(&self) -> &[u8] {
        self.chain.last().map_or(&[][..], Vec::as_slice)
    }

    /// SHA-256 of the root certificate's DER, lowercase hex: what relying parties pin.
    pub fn root_fingerprint(&self) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(self.root_der()))
    }
}

/// rustls-webpki matches a leaf's issuer to its CA's subject byte for byte, and rcgen writes the
/// issuer name by re-encoding the CA certificate's subject. A subject rcgen cannot reproduce
/// exactly (multi-valued RDNs, repeated attribute types, non-canonical encodings an offline root
/// may produce) would yield leaves that fail verification: better refuse the chain now. The
/// check lays out a throwaway certificate with a signer that signs nothing.
fn check_issuer_name_reproducible(
    own_der: &[u8],
    own: &X509Certificate<'_>,
    key_sec1: &[u8],
) -> Result<(), ChainError> {
    let unusable = || ChainError::Malformed {
        position: 1,
        reason: "its subject name cannot be reproduced byte for byte as the issuer of leaves \
                 (multi-valued or repeated name attributes?); ask the root's keeper to keep the \
                 subject of the request"
            .into(),
    };
    let layout = LayoutOnlySigner {
        public_key_sec1: key_sec1,
    };
    let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(own_der), &layout)
        .map_err(|_| unusable())?;
    let mut params = CertificateParams::default();
    params.serial_number = Some(rcgen::SerialNumber::from(1u64));
    let probe = params.signed_by(&layout, &issuer).map_err(|_| unusable())?;
    let (_, probe) = X509Certificate::from_der(probe.der()).map_err(|_| unusable())?;
    if probe.issuer().as_raw() == own.subject().as_raw() {
        Ok(())
    } else {
        Err(unusable())
    }
}

/// What `ca.json` in the state directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredCa {
    /// Format of this file.
    pub format: u32,
    /// The CA key the file belongs to (hex of the SEC1 point), so a state file restored beside
    /// another key is noticed instead of producing certificates for the wrong key.
    pub public_key: String,
    /// The names of the CA certificate.
    pub site: SiteIdentity,
    /// Where the CA stands.
    pub mode: StoredMode,
}

/// The stored mode. Serial numbers need no counter here: they are random (see
/// [`super::serial`]), and the issued-certificate store records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoredMode {
    /// Self-signed root.
    Root {
        /// The root certificate (PEM).
        certificate: String,
    },
    /// A request was written for an offline root; no certificate yet.
    AwaitingChain {
        /// The request (PEM), so `bunkerctl ca csr` can show it again.
        request: String,
    },
    /// Intermediate with its chain.
    Intermediate {
        /// PEM certificates, this CA's first, the root last.
        chain: Vec<String>,
    },
}

/// Current format of `ca.json`.
pub const STORED_FORMAT: u32 = 1;
/// Name of the CA state file.
pub const CA_STATE_FILE: &str = "ca.json";

/// DER → PEM certificate, with Unix line endings (what openssl and operators' tools write).
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
