//! Who is at the other end of a link, and why a peer is refused.
//!
//! A link comes up only when the peer's certificate chains to the root pinned in *that* peer's
//! peering file and names *that* peer's hub id. Dialing, the peer is known in advance, so
//! [`HubServerVerifier`] checks both during the TLS handshake (instead of a DNS name: hub
//! certificates may name the hub only as `bunkeros:hub:<id>`). Accepting, rustls first checks
//! that the client chains to one of the pinned roots (`appliance::tls::server_config`); then
//! [`identify_client`] reads the hub id, finds its peering agreement and checks the chain against
//! that agreement's root alone, so one site's certificate can never pass for another site's hub.
//!
//! Every refusal is a [`LinkRefusal`] with a label for the metrics.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use webpki::{ALL_VERIFICATION_ALGS, EndEntityCert, KeyUsage};

use crate::advertisement::Timestamp;
use crate::hub_certificate::{self, CertificateError};
use crate::hub_id::HubId;
use crate::peering::Peers;

/// TLS alert `certificate_required` (RFC 8446): the client sent no certificate.
const ALERT_CERTIFICATE_REQUIRED: u8 = 116;
/// TLS alert `unknown_ca`: the chain leads to no root this side pinned.
const ALERT_UNKNOWN_CA: u8 = 48;
/// QUIC carries TLS alerts as transport error codes `0x100 + alert`.
const QUIC_CRYPTO_ERROR_BASE: u64 = 0x100;

/// Why a peer was refused a link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The chain does not lead to the root pinned for that peer (e.g. another site's certificate).
    #[error("the peer's certificate does not chain to the root pinned for it")]
    WrongRoot,
    /// The certificate does not name a hub.
    #[error("the peer's certificate is not a hub certificate: {0}")]
    NotAHubCertificate(CertificateError),
    /// The certificate names another hub than the one dialed (another hub of the right site).
    #[error("the certificate names hub {presented}, but the link is to {expected}")]
    HubIdMismatch {
        /// The hub the peering file names.
        expected: HubId,
        /// The hub the certificate names.
        presented: HubId,
    },
    /// The certificate names a hub this hub has no peering agreement with.
    #[error("hub {0} is not a peer of this hub")]
    UnknownPeer(HubId),
    /// The peer asked for a link number its peering agreement does not list.
    #[error("link {link} is not in the peering agreement with {peer}")]
    UnknownLink {
        /// The peer.
        peer: HubId,
        /// The number it asked for.
        link: u16,
    },
    /// The peer broke the link protocol (bad hello) or did not complete it in time.
    #[error("the peer did not follow the link protocol: {0}")]
    Protocol(&'static str),
    /// The other end refused this hub; its reason, as it sent it.
    #[error("the peer refused the link: {0}")]
    RefusedByPeer(String),
    /// Any other TLS or QUIC handshake failure, with its reason.
    #[error("the handshake failed: {0}")]
    Handshake(String),
}

impl LinkRefusal {
    /// A short label for the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::WrongRoot => "wrong_root",
            Self::NotAHubCertificate(_) => "not_a_hub_certificate",
            Self::HubIdMismatch { .. } => "hub_id_mismatch",
            Self::UnknownPeer(_) => "unknown_peer",
            Self::UnknownLink { .. } => "unknown_link",
            Self::Protocol(_) => "protocol",
            Self::RefusedByPeer(_) => "refused_by_peer",
            Self::Handshake(_) => "handshake",
        }
    }

    /// The refusal a failed QUIC handshake stands for: a TLS alert this side raised (read from
    /// its QUIC error code), or the peer's own close.
    pub(crate) fn from_handshake(error: &quinn::ConnectionError) -> Self {
        match error {
            quinn::ConnectionError::TransportError(transport) => {
                let alert = u64::from(transport.code)
                    .checked_sub(QUIC_CRYPTO_ERROR_BASE)
                    .and_then(|alert| u8::try_from(alert).ok());
                match alert {
                    Some(ALERT_CERTIFICATE_REQUIRED) => Self::NoCertificate,
                    Some(ALERT_UNKNOWN_CA) => Self::WrongRoot,
                    _ => Self::Handshake(error.to_string()),
                }
            }
            quinn::ConnectionError::ConnectionClosed(close) => {
                Self::RefusedByPeer(close.to_string())
            }
            quinn::ConnectionError::ApplicationClosed(close) => {
                Self::RefusedByPeer(String::from_utf8_lossy(&close.reason).into_owned())
            }
            other => Self::Handshake(other.to_string()),
        }
    }
}

/// The hub an accepted client is, checked against its own peering agreement's root at `now`.
pub fn identify_client(
    chain: &[CertificateDer<'_>],
    peers: &Peers,
    now: Timestamp,
) -> Result<HubId, LinkRefusal> {
    let leaf = chain.first().ok_or(LinkRefusal::NoCertificate)?;
    let hub = hub_certificate::hub_id_of(leaf).map_err(LinkRefusal::NotAHubCertificate)?;
    let agreement = peers
        .get(&hub)
        .ok_or_else(|| LinkRefusal::UnknownPeer(hub.clone()))?;
    hub_certificate::verify_chain(chain, agreement.root().der(), now)
        .map_err(|_| LinkRefusal::WrongRoot)?;
    Ok(hub)
}

/// Where a [`HubServerVerifier`] leaves its refusal, for the dialer to read after the handshake.
pub type RefusalSlot = Arc<Mutex<Option<LinkRefusal>>>;

/// Checks a server's chain against one pinned root and its hub id against one expected hub.
///
/// Made for one dial: the refusal, if any, is left in the slot (rustls itself only carries a
/// string to the caller), so the dialer can report it typed.
pub struct HubServerVerifier {
    root: CertificateDer<'static>,
    expected: HubId,
    provider: Arc<CryptoProvider>,
    refusal: RefusalSlot,
}

impl HubServerVerifier {
    /// A verifier accepting only `expected`'s certificate under `root`.
    pub fn new(root: CertificateDer<'static>, expected: HubId) -> Self {
        Self {
            root,
            expected,
            provider: appliance::tls::provider(),
            refusal: RefusalSlot::default(),
        }
    }

    /// Where the refusal will be.
    pub fn refusal_slot(&self) -> RefusalSlot {
        Arc::clone(&self.refusal)
    }

    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), LinkRefusal> {
        let anchor =
            webpki::anchor_from_trusted_cert(&self.root).map_err(|_| LinkRefusal::WrongRoot)?;
        let leaf = EndEntityCert::try_from(end_entity)
            .map_err(|_| LinkRefusal::NotAHubCertificate(CertificateError::Unparsable))?;
        leaf.verify_for_usage(
            ALL_VERIFICATION_ALGS,
            &[anchor],
            intermediates,
            now,
            KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|_| LinkRefusal::WrongRoot)?;
        let presented =
            hub_certificate::hub_id_of(end_entity).map_err(LinkRefusal::NotAHubCertificate)?;
        if presented != self.expected {
            return Err(LinkRefusal::HubIdMismatch {
                expected: self.expected.clone(),
                presented,
            });
        }
        Ok(())
    }
}

impl fmt::Debug for HubServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubServerVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for HubServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.check(end_entity, intermediates, now) {
            Ok(()) => Ok(ServerCertVerified::assertion()),
            Err(refusal) => {
                let error = match &refusal {
                    LinkRefusal::WrongRoot => rustls::CertificateError::UnknownIssuer,
                    _ => rustls::CertificateError::ApplicationVerificationFailure,
                };
                *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some(refusal);
                Err(rustls::Error::InvalidCertificate(error))
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
