//! What a hub's certificate chain proves: which hub it names, which site root it leads to, and
//! whether the hub key signed a message.
//!
//! A hub certificate (trustd's `hub` profile) carries exactly one name: the DNS name
//! `<hub-id>.hub.<site domain>` or the URI `bunkeros:hub:<hub-id>`. A site root is identified by
//! the SHA-256 of its SubjectPublicKeyInfo ([`SpkiFingerprint`]): that is what peers pin and
//! vouch for, and it stays the same when a site re-issues its root certificate with the same key.
//!
//! Chains are checked with rustls-webpki (aws-lc-rs algorithms) against exactly one anchor,
//! chosen by [`crate::trust`]; signatures with p256. Neither ever consults a system store.
//! [`sign_message`] is the one place a hub key signs: each kind of message starts with its own
//! domain prefix (advertisements, transit receipts), so no signature passes for another kind.

use std::fmt;

use appliance::tls::Identity;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use rustls::SignatureScheme;
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use webpki::{ALL_VERIFICATION_ALGS, EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::advertisement::{AdvertisementSignature, SignError, Timestamp};
use crate::hub_id::HubId;

/// The URI prefix of a hub identity in a certificate.
pub const HUB_URI_PREFIX: &str = "bunkeros:hub:";

/// SHA-256 of a certificate's SubjectPublicKeyInfo (DER): how a site root is pinned and vouched
/// for. Shown as 64 lower-case hex digits, as
/// `openssl x509 -in root.pem -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`
/// prints it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpkiFingerprint([u8; 32]);

impl SpkiFingerprint {
    /// A fingerprint from its 32 bytes (from the wire).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The fingerprint of the key certified by `der`.
    pub fn of_certificate(der: &CertificateDer<'_>) -> Result<Self, CertificateError> {
        let (_, cert) =
            X509Certificate::from_der(der.as_ref()).map_err(|_| CertificateError::Unparsable)?;
        Ok(Self(Sha256::digest(cert.public_key().raw).into()))
    }
}

impl fmt::Display for SpkiFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SpkiFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpkiFingerprint({self})")
    }
}

/// Why a certificate does not name a hub.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Not X.509 DER, or an extension that does not parse.
    #[error("the certificate does not parse as X.509")]
    Unparsable,
    /// No subject alternative name at all.
    #[error("the certificate names no hub (it has no subject alternative name)")]
    NoHubName,
    /// More than one name: a hub certificate has exactly one identity.
    #[error("the certificate carries {0} names; a hub certificate carries exactly one")]
    SeveralNames(usize),
    /// A name that is not `<id>.hub.<site>` or `bunkeros:hub:<id>`.
    #[error(
        "the certificate's name \"{0}\" is not a hub name (`<hub-id>.hub.<site>` or `bunkeros:hub:<hub-id>`)"
    )]
    NotAHubName(String),
}

/// The hub id a hub certificate certifies.
pub fn hub_id_of(leaf: &CertificateDer<'_>) -> Result<HubId, CertificateError> {
    let (_, cert) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|_| CertificateError::Unparsable)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| CertificateError::Unparsable)?
        .ok_or(CertificateError::NoHubName)?;
    let names = &san.value.general_names;
    let [name] = names.as_slice() else {
        return Err(if names.is_empty() {
            CertificateError::NoHubName
        } else {
            CertificateError::SeveralNames(names.len())
        });
    };
    let id = match name {
        GeneralName::DNSName(dns) => {
            let mut labels = dns.split('.');
            match (labels.next(), labels.next(), labels.next()) {
                (Some(id), Some("hub"), Some(site)) if !site.is_empty() => Some(id),
                _ => None,
            }
        }
        GeneralName::URI(uri) => uri.strip_prefix(HUB_URI_PREFIX),
        _ => None,
    };
    id.and_then(|id| HubId::parse(id).ok())
        .ok_or_else(|| CertificateError::NotAHubName(printable(name)))
}

fn printable(name: &GeneralName<'_>) -> String {
    let text = match name {
        GeneralName::DNSName(text) | GeneralName::URI(text) | GeneralName::RFC822Name(text) => {
            (*text).to_owned()
        }
        other => format!("{other:?}"),
    };
    text.chars().take(80).flat_map(char::escape_debug).collect()
}

/// Checks that `chain` (leaf first; its last certificate is the presented root, not used as an
/// intermediate) leads to `anchor` and is valid at `now` for a hub's use.
pub fn verify_chain(
    chain: &[CertificateDer<'_>],
    anchor: &CertificateDer<'_>,
    now: Timestamp,
) -> Result<(), webpki::Error> {
    let Some((leaf, rest)) = chain.split_first() else {
        return Err(webpki::Error::BadDer);
    };
    let intermediates = match rest.split_last() {
        Some((_root, intermediates)) => intermediates,
        None => &[],
    };
    let anchors = [webpki::anchor_from_trusted_cert(anchor)?];
    let leaf = EndEntityCert::try_from(leaf)?;
    leaf.verify_for_usage(
        ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        now.to_unix_time(),
        KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
}

/// Why a signature does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The certified key is not a P-256 key.
    #[error("the hub certificate's key is not an ECDSA P-256 key")]
    NotP256,
    /// `s` in the upper half of the order: a malleated copy of a valid signature.
    #[error("the signature is not in canonical (low-s) form")]
    NotCanonical,
    /// The signature does not match the message and key.
    #[error("the signature does not verify")]
    Mismatch,
}

/// Signs `message` with the hub key of `identity` (a PEM key or one held by the TPM): ECDSA
/// P-256 SHA-256, normalised to low-s. `message` must start with its kind's domain prefix.
pub fn sign_message(
    identity: &Identity,
    message: &[u8],
) -> Result<AdvertisementSignature, SignError> {
    let signer = identity
        .key()
        .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
        .ok_or(SignError::NotP256)?;
    let der = signer.sign(message).map_err(SignError::Signer)?;
    let signature = Signature::from_der(&der).map_err(|_| SignError::MalformedSignature)?;
    let signature = signature.normalize_s().unwrap_or(signature);
    Ok(AdvertisementSignature(signature.to_bytes().into()))
}

/// Checks `signature` over `message` with the key certified by `leaf`.
pub fn verify_signature(
    leaf: &CertificateDer<'_>,
    message: &[u8],
    signature: AdvertisementSignature,
) -> Result<(), SignatureError> {
    let (_, cert) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|_| SignatureError::NotP256)?;
    let key = VerifyingKey::from_public_key_der(cert.public_key().raw)
        .map_err(|_| SignatureError::NotP256)?;
    let signature = signature.to_p256().ok_or(SignatureError::Mismatch)?;
    if signature.normalize_s().is_some() {
        return Err(SignatureError::NotCanonical);
    }
    key.verify(message, &signature)
        .map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Site, sign_bytes};

    #[test]
    fn the_hub_name_comes_from_the_dns_or_uri_form() {
        let site = Site::new("madrid");
        let uri = site.hub("madrid-1");
        assert_eq!(hub_id_of(uri.leaf()).unwrap().as_str(), "madrid-1");
        let dns = site.hub_with_names("madrid-2", &["madrid-2.hub.madrid.bunker.test"]);
        assert_eq!(hub_id_of(dns.leaf()).unwrap().as_str(), "madrid-2");
    }

    #[test]
    fn a_certificate_without_exactly_one_hub_name_names_no_hub() {
        let site = Site::new("madrid");
        let two = site.hub_with_names("x", &["bunkeros:hub:a", "bunkeros:hub:b"]);
        assert_eq!(
            hub_id_of(two.leaf()),
            Err(CertificateError::SeveralNames(2))
        );
        let service = site.hub_with_names("x", &["api.madrid.bunker.test"]);
        assert!(matches!(
            hub_id_of(service.leaf()),
            Err(CertificateError::NotAHubName(_))
        ));
        let bare = site.hub_with_names("x", &["madrid-1.hub"]);
        assert!(matches!(
            hub_id_of(bare.leaf()),
            Err(CertificateError::NotAHubName(_))
        ));
        let bad_id = site.hub_with_names("x", &["bunkeros:hub:Madrid"]);
        assert!(matches!(
            hub_id_of(bad_id.leaf()),
            Err(CertificateError::NotAHubName(_))
        ));
        let operator = site.hub_with_names("x", &["bunkeros:operator:ana"]);
        assert!(matches!(
            hub_id_of(operator.leaf()),
            Err(CertificateError::NotAHubName(_))
        ));
        assert_eq!(
            hub_id_of(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])),
            Err(CertificateError::Unparsable)
        );
    }

    #[test]
    fn chains_verify_only_to_their_own_root() {
        let madrid = Site::new("madrid");
        let paris = Site::new("paris");
        let hub = madrid.hub("madrid-1");
        let now = Timestamp::from(std::time::SystemTime::now());
        verify_chain(hub.chain(), madrid.root(), now).unwrap();
        assert!(verify_chain(hub.chain(), paris.root(), now).is_err());
        let later = now.plus_secs(400 * 24 * 3600);
        assert!(
            verify_chain(hub.chain(), madrid.root(), later).is_err(),
            "expired"
        );
        assert!(verify_chain(&[], madrid.root(), now).is_err());
    }

    #[test]
    fn root_fingerprints_are_of_the_key_not_the_certificate() {
        let madrid = Site::new("madrid");
        let reissued = madrid.reissued_root();
        assert_ne!(madrid.root(), &reissued);
        assert_eq!(
            SpkiFingerprint::of_certificate(madrid.root()).unwrap(),
            SpkiFingerprint::of_certificate(&reissued).unwrap()
        );
        assert_ne!(
            SpkiFingerprint::of_certificate(madrid.root()).unwrap(),
            SpkiFingerprint::of_certificate(Site::new("paris").root()).unwrap()
        );
        assert_eq!(madrid.fingerprint().to_string().len(), 64);
    }

    #[test]
    fn signatures_verify_with_the_certified_key_only() {
        let site = Site::new("madrid");
        let hub = site.hub("madrid-1");
        let other = site.hub("madrid-2");
        let signature = sign_bytes(&hub, b"message");
        verify_signature(hub.leaf(), b"message", signature).unwrap();
        assert_eq!(
            verify_signature(hub.leaf(), b"massage", signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(other.leaf(), b"message", signature),
            Err(SignatureError::Mismatch)
        );
        // The same signature with s replaced by n - s verifies mathematically; it is refused.
        let high = p256::ecdsa::Signature::from_slice(&signature.to_bytes()).unwrap();
        let (r, s) = high.split_scalars();
        let flipped = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
        let flipped = AdvertisementSignature(flipped.to_bytes().into());
        assert_eq!(
            verify_signature(hub.leaf(), b"message", flipped),
            Err(SignatureError::NotCanonical)
        );
        assert_eq!(
            verify_signature(hub.leaf(), b"message", AdvertisementSignature([0; 64])),
            Err(SignatureError::Mismatch)
        );
    }
}
