//! Pinned roots: the CA certificates a node trusts, one per peer, and nothing else.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{TlsError, provider};

/// The SHA-256 fingerprint of a certificate's DER encoding.
///
/// Displayed as `openssl x509 -fingerprint -sha256` does (`AB:CD:…`), so an operator can compare
/// a pinned root with what the peer site read out over the phone.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`, hashed by the aws-lc-rs provider's SHA-256.
    pub fn of(der: &[u8]) -> Self {
        // The provider's own SHA-256 (through its TLS 1.3 suite), so no second crypto library.
        let sha256 = TLS13_AES_128_GCM_SHA256
            .tls13()
            .expect("TLS13_AES_128_GCM_SHA256 is a TLS 1.3 suite")
            .common
            .hash_provider;
        let digest = sha256.hash(der);
        Self(
            digest
                .as_ref()
                .try_into()
                .expect("SHA-256 digests are 32 bytes"),
        )
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// One CA certificate this node trusts, pinned explicitly.
#[derive(Clone, PartialEq, Eq)]
pub struct PinnedRoot {
    der: CertificateDer<'static>,
    fingerprint: Fingerprint,
}

impl PinnedRoot {
    /// A root from PEM holding exactly one certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Self, TlsError> {
        let mut certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "root certificate",
                source,
            })?;
        match certs.len() {
            1 => Self::from_der(certs.remove(0)),
            n => Err(TlsError::RootCount(n)),
        }
    }

    /// A root from its DER encoding; refused unless it can serve as a trust anchor.
    pub fn from_der(der: CertificateDer<'static>) -> Result<Self, TlsError> {
        RootCertStore::empty()
            .add(der.clone())
            .map_err(TlsError::BadRoot)?;
        let fingerprint = Fingerprint::of(&der);
        Ok(Self { der, fingerprint })
    }

    /// The certificate.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// Its SHA-256 fingerprint, for display and comparison.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

impl fmt::Debug for PinnedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PinnedRoot")
            .field(&self.fingerprint)
            .finish()
    }
}

/// Named pinned roots: for hubd, one root per peer hub, agreed bilaterally with that peer.
///
/// A server built with all of them (see [`PeerRoots::roots`]) accepts any of these peers; after
/// the handshake, [`peer_root_of`] says which peer it was. A root may be pinned under one name
/// only, so a chain can always be attributed to exactly one peer.
#[derive(Clone, Default)]
pub struct PeerRoots {
    peers: BTreeMap<String, Peer>,
}

#[derive(Clone)]
struct Peer {
    root: PinnedRoot,
    /// A client verifier trusting only this root, built once rather than per handshake.
    verifier: Arc<dyn ClientCertVerifier>,
}

impl PeerRoots {
    /// No peers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pins `root` for peer `name`, replacing that peer's previous root (root rotation).
    ///
    /// Refuses a root already pinned for another peer.
    pub fn insert(&mut self, name: impl Into<String>, root: PinnedRoot) -> Result<(), TlsError> {
        let name = name.into();
        if let Some((existing, _)) = self
            .peers
            .iter()
            .find(|(other, peer)| **other != name && peer.root == root)
        {
            return Err(TlsError::DuplicateRoot {
                fingerprint: root.fingerprint(),
                existing: existing.clone(),
            });
        }
        let mut store = RootCertStore::empty();
        store.add(root.der().clone()).map_err(TlsError::BadRoot)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider())
            .build()
            .map_err(TlsError::Verifier)?;
        self.peers.insert(name, Peer { root, verifier });
        Ok(())
    }

    /// Unpins a peer's root (the peer is no longer trusted).
    pub fn remove(&mut self, name: &str) -> Option<PinnedRoot> {
        self.peers.remove(name).map(|peer| peer.root)
    }

    /// The root pinned for `name`.
    pub fn get(&self, name: &str) -> Option<&PinnedRoot> {
        self.peers.get(name).map(|peer| &peer.root)
    }

    /// Every peer and its root, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PinnedRoot)> {
        self.peers
            .iter()
            .map(|(name, peer)| (name.as_str(), &peer.root))
    }

    /// Every pinned root, for [`server_config`](super::server_config).
    pub fn roots(&self) -> Vec<PinnedRoot> {
        self.peers.values().map(|peer| peer.root.clone()).collect()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is pinned.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The peer whose root a client chain (leaf first) validates against, checked now and for
    /// client authentication; `None` when no pinned root vouches for it.
    pub fn root_of(&self, chain: &[CertificateDer<'_>]) -> Option<&str> {
        let (leaf, intermediates) = chain.split_first()?;
        let now = UnixTime::now();
        self.peers
            .iter()
            .find(|(_, peer)| {
                peer.verifier
                    .verify_client_cert(leaf, intermediates, now)
                    .is_ok()
            })
            .map(|(name, _)| name.as_str())
    }
}

impl fmt::Debug for PeerRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// After a server-side handshake, the peer whose pinned root the client's chain belongs to.
pub fn peer_root_of<'r>(conn: &ServerConnection, roots: &'r PeerRoots) -> Option<&'r str> {
    roots.root_of(conn.peer_certificates()?)
}
