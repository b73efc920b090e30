//! Mutual TLS for every BunkerOS network listener: TLS 1.3 only, pinned roots only, aws-lc-rs only.
//!
//! Every listener except loopback metrics requires mutual TLS, and trust is local and bilateral:
//! a hub trusts exactly the roots it pinned for its peers, never the system trust store (a
//! bunker's appliance must not accept a certificate because some public CA signed it). So:
//!
//! - [`Identity`] is this node's certificate chain and signing key. The key is a
//!   `rustls::sign::SigningKey`, so a TPM-resident key (trustd's, or a hub's link key) plugs in
//!   through [`Identity::new`] exactly like a PEM file does through [`Identity::from_pem`].
//! - [`PinnedRoot`] is one CA certificate we trust, with its SHA-256 fingerprint for operators;
//!   [`PeerRoots`] names several (hubd: one per peer hub) and tells which one a peer's chain
//!   belongs to ([`peer_root_of`]).
//! - [`server_config`] and [`client_config`] build the rustls configurations: TLS 1.3 only, the
//!   peer always authenticated against the given roots and nothing else.
//!
//! Only the aws-lc-rs provider is used, always passed explicitly ([`provider`]): tough already
//! pulls aws-lc-rs into the image, one provider avoids any ambiguity about which code does the
//! cryptography, and rustls' process-wide default is never installed or relied on.

mod identity;
mod roots;
pub mod trustd_issue;

#[cfg(test)]
mod tests;

pub use identity::Identity;
pub use roots::{Fingerprint, PeerRoots, PinnedRoot, peer_root_of};

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The only TLS versions BunkerOS speaks: TLS 1.3 (also what QUIC requires).
static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The crypto provider every BunkerOS TLS configuration is built with: aws-lc-rs defaults.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// What went wrong building an identity, a pinned root or a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM text could not be read at all.
    #[error("cannot read the {what} PEM")]
    Pem {
        /// `certificate chain`, `private key` or `root certificate`.
        what: &'static str,
        /// The PEM parser's complaint.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate chain is empty: there must be at least the node's own certificate.
    #[error("the certificate chain holds no certificate")]
    EmptyChain,
    /// A pinned root must be exactly one certificate, so an operator knows what they pinned.
    #[error("a pinned root must be exactly one certificate; the PEM holds {0}")]
    RootCount(usize),
    /// The private key is not a key aws-lc-rs can sign with (unsupported algorithm, corrupt).
    #[error("the private key is not usable for TLS")]
    Key(#[source] rustls::Error),
    /// The signing key is not the key certified by the first certificate of the chain.
    #[error("the signing key does not match the certificate's public key")]
    KeyMismatch,
    /// The certificate cannot serve as a trust anchor (it does not parse as X.509).
    #[error("the certificate is not usable as a trust anchor")]
    BadRoot(#[source] rustls::Error),
    /// The same root is pinned under two names, so a peer's chain could not be attributed.
    #[error("root {fingerprint} is already pinned for {existing:?}")]
    DuplicateRoot {
        /// The root's fingerprint.
        fingerprint: Fingerprint,
        /// The name it is already pinned under.
        existing: String,
    },
    /// A server without client roots would have no one to accept.
    #[error("mutual TLS needs at least one client root")]
    NoClientRoots,
    /// rustls refused the certificate verifier.
    #[error("cannot build the certificate verifier")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// rustls refused the configuration (e.g. the provider lacks TLS 1.3 suites).
    #[error("cannot build the TLS configuration")]
    Config(#[source] rustls::Error),
}

/// A server configuration that requires a client certificate chaining to one of `client_roots`.
///
/// TLS 1.3 only; a client without a certificate, or with one from any other CA, fails the
/// handshake. Set `alpn_protocols` on the result to advertise ALPN (e.g. hubd's link protocol).
/// Use [`peer_root_of`] after the handshake to learn which root the client belongs to.
pub fn server_config(
    identity: &Identity,
    client_roots: &[PinnedRoot],
) -> Result<ServerConfig, TlsError> {
    if client_roots.is_empty() {
        return Err(TlsError::NoClientRoots);
    }
    let provider = provider();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(root_store(client_roots)?, provider.clone())
            .build()
            .map_err(TlsError::Verifier)?;
    Ok(ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS13_ONLY)
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified_key()))))
}

/// A client configuration that accepts only a server chaining to `server_root`, and presents
/// `identity` as its client certificate.
///
/// TLS 1.3 only. The server name given at connect time is checked against the server's
/// certificate as usual. Set `alpn_protocols` on the result to offer ALPN.
pub fn client_config(
    identity: &Identity,
    server_root: &PinnedRoot,
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        root_store(std::slice::from_ref(server_root))?,
        provider.clone(),
    )
    .build()
    .map_err(TlsError::Verifier)?;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS13_ONLY)
        .map_err(TlsError::Config)?
        .with_webpki_verifier(verifier)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified_key()))))
}

/// Whether `certificate` (DER) carries `uri` among its subject alternative names: after the
/// chain is verified, how a listener checks that a client presents the kind of certificate it
/// must (e.g. a hub's `bunkeros:hub:<id>`, not a device's from the same site).
pub fn names_uri(certificate: &[u8], uri: &str) -> bool {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(certificate) else {
        return false;
    };
    let Ok(Some(names)) = parsed.subject_alternative_name() else {
        return false;
    };
    names
        .value
        .general_names
        .iter()
        .any(|name| matches!(name, GeneralName::URI(found) if *found == uri))
}

/// A root store holding exactly the given roots, nothing from the system.
fn root_store(roots: &[PinnedRoot]) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.der().clone()).map_err(TlsError::BadRoot)?;
    }
    Ok(Arc::new(store))
}
