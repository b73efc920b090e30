//! The TLS 1.3 session between a circuit's source and destination, inside the circuit stream.
//!
//! Transit hubs forward its records and cannot read them. Both ends authenticate with their own
//! hub identity (the one their links use), and each checks the other against what the control
//! plane vouches for ([`VouchedHubs`]), never a system store or the peering files of links:
//!
//! - the source (client) accepts only a server chain whose leaf names the destination hub and
//!   chains to the site root the control plane holds for the destination
//!   ([`HubServerVerifier`], as links check their dialed peer);
//! - the destination (server) requires a client chain to the site root the control plane holds
//!   for the route's source whose leaf names that source (`SourceVerifier`), built per
//!   circuit once the route is known.
//!
//! aws-lc-rs only ([`appliance::tls::provider`]), TLS 1.3 only, ALPN [`CIRCUIT_ALPN`].

use std::fmt;
use std::sync::Arc;

use appliance::tls::{self, Identity, PinnedRoot, TlsError};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::vouched::VouchedHubs;
use crate::hub_certificate;
use crate::hub_id::HubId;
use crate::links::peer_verifier::HubServerVerifier;

/// The ALPN protocol of the end-to-end session.
pub const CIRCUIT_ALPN: &[u8] = b"bunkeros-circuit/1";

/// Why no end-to-end configuration can be made for a hub.
#[derive(Debug, thiserror::Error)]
pub enum EndToEndError {
    /// The control plane holds no chain for the hub at the other end.
    #[error("hub {0} is not vouched for by the control plane")]
    NotVouched(HubId),
    /// The root held for it, or this hub's identity, does not make a TLS configuration.
    #[error("cannot build the end-to-end TLS configuration")]
    Tls(#[from] TlsError),
}

/// The source's configuration for a circuit to `destination`.
pub fn client_config(
    identity: &Identity,
    destination: &HubId,
    vouched: &VouchedHubs,
) -> Result<Arc<ClientConfig>, EndToEndError> {
    let root = vouched_root(vouched, destination)?;
    let mut config = tls::client_config(identity, &PinnedRoot::from_der(root.clone())?)?;
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(HubServerVerifier::new(
            root.clone(),
            destination.clone(),
        )));
    config.alpn_protocols = vec![CIRCUIT_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The destination's configuration for a circuit from `source`.
pub fn server_config(
    identity: &Identity,
    source: &HubId,
    vouched: &VouchedHubs,
) -> Result<Arc<ServerConfig>, EndToEndError> {
    let root = vouched_root(vouched, source)?;
    let provider = tls::provider();
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).map_err(TlsError::BadRoot)?;
    let chain_to_root =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(TlsError::Verifier)?;
    let verifier = SourceVerifier {
        chain_to_root,
        source: source.clone(),
    };
    let key = CertifiedKey::new(identity.chain().to_vec(), Arc::clone(identity.key()));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![CIRCUIT_ALPN.to_vec()];
    Ok(Arc::new(config))
}

fn vouched_root<'v>(
    vouched: &'v VouchedHubs,
    hub: &HubId,
) -> Result<&'v CertificateDer<'static>, EndToEndError> {
    vouched
        .root(hub)
        .ok_or_else(|| EndToEndError::NotVouched(hub.clone()))
}

/// Accepts a client chain to the source's root (checked by rustls' webpki verifier, client-auth
/// usage) only if its leaf names the source hub: another hub of the same site is refused.
struct SourceVerifier {
    chain_to_root: Arc<dyn ClientCertVerifier>,
    source: HubId,
}

impl fmt::Debug for SourceVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceVerifier")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for SourceVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain_to_root.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .chain_to_root
            .verify_client_cert(end_entity, intermediates, now)?;
        match hub_certificate::hub_id_of(end_entity) {
            Ok(hub) if hub == self.source => Ok(verified),
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain_to_root
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain_to_root
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.chain_to_root.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests;
