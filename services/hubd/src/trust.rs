//! Who is trusted, and whether an advertisement is accepted.
//!
//! Trust is local and bilateral. This hub trusts:
//! - its **direct peers**, each through the site root pinned in that peer's peering file
//!   ([`TrustAnchors`]); a voucher from anyone else never overrides such a pin;
//! - any other hub only through a **chain of vouchers**: a trusted hub's current advertisement
//!   vouches for its own peers by hub id and root-key fingerprint, so trust extends hop by hop
//!   from our peers ([`trusted_hubs`]). When the voucher's advertisement expires or stops
//!   vouching, the hubs trusted through it stop being trusted.
//!
//! [`admit`] decides on one advertisement: not our own name, not expired and not valid for
//! unreasonably long, newer than the one held from the same hub, a chain ending in the root
//! pinned or vouched for that hub, the hub id its certificate proves equal to the advertised
//! origin, the chain valid now, and the signature by the certified key. Every refusal is a
//! [`Rejection`] with a stable [`Rejection::reason`] for metrics; a refusal changes nothing.

use std::collections::{BTreeMap, VecDeque};

use appliance::tls::PinnedRoot;
use rustls_pki_types::CertificateDer;

use crate::advertisement::{Advertisement, SignedAdvertisement, Timestamp};
use crate::hub_certificate::{
    self, CertificateError, SignatureError, SpkiFingerprint, verify_chain, verify_signature,
};
use crate::hub_id::HubId;

/// Longest an advertisement may be valid for from the moment it is received: one day. A hub
/// re-advertises long before; a longer expiry could only keep a stale view alive.
pub const MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// The roots this hub pins: one per direct peer, from the peering files.
#[derive(Debug, Clone)]
pub struct TrustAnchors {
    own: HubId,
    peers: BTreeMap<HubId, PeerAnchor>,
}

#[derive(Debug, Clone)]
struct PeerAnchor {
    root: CertificateDer<'static>,
    fingerprint: SpkiFingerprint,
}

/// Why a root cannot be pinned for a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// Our own hub id: we are not our own peer.
    #[error("hub {0} is this hub; it cannot be its own peer")]
    OwnHub(HubId),
    /// The root does not parse as X.509.
    #[error("the pinned root does not parse as X.509")]
    Unparsable,
}

impl TrustAnchors {
    /// No peers yet; `own` is this hub.
    pub fn new(own: HubId) -> Self {
        Self {
            own,
            peers: BTreeMap::new(),
        }
    }

    /// Pins `root` for the direct peer `peer` (replacing an earlier pin: root rotation).
    /// Several peers of one site share its root.
    pub fn pin(&mut self, peer: HubId, root: &PinnedRoot) -> Result<(), AnchorError> {
        if peer == self.own {
            return Err(AnchorError::OwnHub(peer));
        }
        let fingerprint =
            SpkiFingerprint::of_certificate(root.der()).map_err(|_| AnchorError::Unparsable)?;
        self.peers.insert(
            peer,
            PeerAnchor {
                root: root.der().clone(),
                fingerprint,
            },
        );
        Ok(())
    }

    /// This hub.
    pub fn own_hub(&self) -> &HubId {
        &self.own
    }

    /// The fingerprint of the root pinned for `peer`, if it is a direct peer.
    pub fn peer_root(&self, peer: &HubId) -> Option<SpkiFingerprint> {
        self.peers.get(peer).map(|anchor| anchor.fingerprint)
    }

    /// The direct peers and their root fingerprints, by hub id: what this hub vouches for.
    pub fn peers(&self) -> impl Iterator<Item = (&HubId, SpkiFingerprint)> {
        self.peers
            .iter()
            .map(|(hub, anchor)| (hub, anchor.fingerprint))
    }
}

/// An advertisement that passed [`admit`], with the root its chain was verified against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAdvertisement {
    signed: SignedAdvertisement,
    root: SpkiFingerprint,
}

impl VerifiedAdvertisement {
    /// The content.
    pub fn advertisement(&self) -> &Advertisement {
        self.signed.advertisement()
    }

    /// As received, to pass on to other peers unchanged.
    pub fn signed(&self) -> &SignedAdvertisement {
        &self.signed
    }

    /// The fingerprint of the site root the chain led to.
    pub fn root(&self) -> SpkiFingerprint {
        self.root
    }
}

/// How a hub came to be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPath {
    /// A direct peer, through the root pinned in its peering file.
    Peer,
    /// Through the voucher of `by`, itself trusted (see [`trusted_hubs`] for the whole chain).
    Vouched {
        /// The hub whose advertisement vouches for this one.
        by: HubId,
    },
}

/// Why an advertisement is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// It claims to come from this hub, but this hub did not send it here.
    #[error("the advertisement claims to come from this hub (sequence {sequence})")]
    OwnOrigin {
        /// Its sequence number: this hub advertises above it from now on.
        sequence: u64,
    },
    /// Its expiry has passed.
    #[error("the advertisement of {origin} expired at {} (Unix time)", .expired_at.as_unix_secs())]
    Expired {
        /// Origin.
        origin: HubId,
        /// When it expired.
        expired_at: Timestamp,
    },
    /// It claims validity for longer than [`MAX_LIFETIME_SECS`].
    #[error(
        "the advertisement of {origin} is valid for {secs} s from now; at most {MAX_LIFETIME_SECS} s are accepted"
    )]
    ExpiresTooLate {
        /// Origin.
        origin: HubId,
        /// Seconds from now to its expiry.
        secs: u64,
    },
    /// The very sequence number already held: a copy, or a replay.
    #[error("sequence {sequence} of {origin} is already held (a replay or a duplicate)")]
    Replayed {
        /// Origin.
        origin: HubId,
        /// The sequence number.
        sequence: u64,
    },
    /// Older than the one held.
    #[error("sequence {received} of {origin} is older than the held sequence {held}")]
    Stale {
        /// Origin.
        origin: HubId,
        /// The sequence number held.
        held: u64,
        /// The one received.
        received: u64,
    },
    /// Neither a direct peer nor vouched for by any trusted hub.
    #[error("hub {0} is not a peer and no trusted hub vouches for it")]
    UnknownHub(HubId),
    /// The chain is only a leaf: the root it belongs to is not shown.
    #[error("the certificate chain of {0} does not include its site root")]
    ChainWithoutRoot(HubId),
    /// The chain ends in a root other than the one pinned or vouched for this hub: e.g. a hub
    /// presenting another site's certificate.
    #[error(
        "the certificate chain of {origin} ends in root {presented}, which is not the root pinned or vouched for {origin}"
    )]
    WrongRoot {
        /// Origin.
        origin: HubId,
        /// The root the chain presents.
        presented: SpkiFingerprint,
        /// The roots pinned or vouched for this hub.
        expected: Vec<SpkiFingerprint>,
    },
    /// The leaf is not a hub certificate.
    #[error("the certificate of {origin} is not a hub certificate: {source}")]
    NotAHubCertificate {
        /// Origin.
        origin: HubId,
        /// What is wrong with it.
        source: CertificateError,
    },
    /// The certificate certifies another hub.
    #[error(
        "the advertisement claims to come from {advertised}, but its certificate is for {certified}"
    )]
    HubIdMismatch {
        /// The origin in the advertisement.
        advertised: HubId,
        /// The hub the certificate names.
        certified: HubId,
    },
    /// The chain does not verify to the root now (expired, not yet valid, bad signature,
    /// wrong usage).
    #[error("the certificate chain of {origin} does not verify: {error}")]
    InvalidChain {
        /// Origin.
        origin: HubId,
        /// webpki's verdict.
        error: webpki::Error,
    },
    /// The signature does not verify under the certified key.
    #[error("the signature of {origin}'s advertisement is invalid: {source}")]
    BadSignature {
        /// Origin.
        origin: HubId,
        /// Why.
        source: SignatureError,
    },
}

impl Rejection {
    /// A stable label for counting rejections (`hubd_advertisements_rejected_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::OwnOrigin { .. } => "own_origin",
            Self::Expired { .. } => "expired",
            Self::ExpiresTooLate { .. } => "expires_too_late",
            Self::Replayed { .. } => "replayed",
            Self::Stale { .. } => "stale",
            Self::UnknownHub(_) => "unknown_hub",
            Self::ChainWithoutRoot(_) => "chain_without_root",
            Self::WrongRoot { .. } => "wrong_root",
            Self::NotAHubCertificate { .. } => "not_a_hub_certificate",
            Self::HubIdMismatch { .. } => "hub_id_mismatch",
            Self::InvalidChain { .. } => "invalid_chain",
            Self::BadSignature { .. } => "bad_signature",
        }
    }
}

/// Decides whether to accept `signed`, given the anchors and the advertisements already held
/// (by origin). Cheap checks come first, so a flood of junk costs no signature verification.
pub fn admit(
    anchors: &TrustAnchors,
    held: &BTreeMap<HubId, VerifiedAdvertisement>,
    signed: SignedAdvertisement,
    now: Timestamp,
) -> Result<VerifiedAdvertisement, Rejection> {
    let advertisement = signed.advertisement();
    let origin = advertisement.origin().clone();
    if origin == anchors.own {
        return Err(Rejection::OwnOrigin {
            sequence: advertisement.sequence(),
        });
    }
    check_freshness(advertisement, held.get(&origin), now)?;
    let (leaf, root) = match signed.chain() {
        [leaf, .., root] => (leaf, root),
        _ => return Err(Rejection::ChainWithoutRoot(origin)),
    };
    let (anchor, fingerprint) = expected_root(anchors, held, &origin, root, now)?;
    let certified =
        hub_certificate::hub_id_of(leaf).map_err(|source| Rejection::NotAHubCertificate {
            origin: origin.clone(),
            source,
        })?;
    if certified != origin {
        return Err(Rejection::HubIdMismatch {
            advertised: origin,
            certified,
        });
    }
    verify_chain(signed.chain(), &anchor, now).map_err(|error| Rejection::InvalidChain {
        origin: origin.clone(),
        error,
    })?;
    verify_signature(leaf, &advertisement.signed_message(), signed.signature())
        .map_err(|source| Rejection::BadSignature { origin, source })?;
    Ok(VerifiedAdvertisement {
        signed,
        root: fingerprint,
    })
}

/// Expiry within bounds, and newer than what is held.
fn check_freshness(
    advertisement: &Advertisement,
    held: Option<&VerifiedAdvertisement>,
    now: Timestamp,
) -> Result<(), Rejection> {
    let origin = advertisement.origin();
    if advertisement.is_expired(now) {
        return Err(Rejection::Expired {
            origin: origin.clone(),
            expired_at: advertisement.expires_at(),
        });
    }
    let secs = advertisement.expires_at().as_unix_secs() - now.as_unix_secs();
    if secs > MAX_LIFETIME_SECS {
        return Err(Rejection::ExpiresTooLate {
            origin: origin.clone(),
            secs,
        });
    }
    let Some(held) = held else { return Ok(()) };
    let (held, received) = (held.advertisement().sequence(), advertisement.sequence());
    if received == held {
        Err(Rejection::Replayed {
            origin: origin.clone(),
            sequence: received,
        })
    } else if received < held {
        Err(Rejection::Stale {
            origin: origin.clone(),
            held,
            received,
        })
    } else {
        Ok(())
    }
}

/// The anchor to verify `origin`'s chain against, if the presented `root` is the one pinned for
/// it (a peer) or vouched for it by a trusted hub; and that root's fingerprint.
fn expected_root(
    anchors: &TrustAnchors,
    held: &BTreeMap<HubId, VerifiedAdvertisement>,
    origin: &HubId,
    root: &CertificateDer<'static>,
    now: Timestamp,
) -> Result<(CertificateDer<'static>, SpkiFingerprint), Rejection> {
    let presented =
        SpkiFingerprint::of_certificate(root).map_err(|source| Rejection::NotAHubCertificate {
            origin: origin.clone(),
            source,
        })?;
    let (anchor, expected) = match anchors.peers.get(origin) {
        // A peer's chain is verified against the certificate pinned in its peering file.
        Some(pinned) => (pinned.root.clone(), vec![pinned.fingerprint]),
        None => {
            let vouched = vouched_roots(anchors, held, origin, now);
            if vouched.is_empty() {
                return Err(Rejection::UnknownHub(origin.clone()));
            }
            // Only the key is vouched for, so the presented root certificate is the anchor once
            // its key is the vouched one.
            (root.clone(), vouched)
        }
    };
    if expected.contains(&presented) {
        Ok((anchor, presented))
    } else {
        Err(Rejection::WrongRoot {
            origin: origin.clone(),
            presented,
            expected,
        })
    }
}

/// The root fingerprints trusted hubs currently vouch for `hub` with (sorted, no repeats).
/// Empty for a direct peer (its pin is authoritative) and for this hub.
pub fn vouched_roots(
    anchors: &TrustAnchors,
    held: &BTreeMap<HubId, VerifiedAdvertisement>,
    hub: &HubId,
    now: Timestamp,
) -> Vec<SpkiFingerprint> {
    if *hub == anchors.own || anchors.peers.contains_key(hub) {
        return Vec::new();
    }
    let mut roots: Vec<SpkiFingerprint> = trusted_hubs(anchors, held, now)
        .keys()
        .filter_map(|voucher| held.get(voucher)?.advertisement().voucher_for(hub).copied())
        .collect();
    roots.sort_unstable();
    roots.dedup();
    roots
}

/// Every hub trusted at `now` among those whose advertisements are held, and how: breadth
/// first from the direct peers (whose held advertisement must still chain to the pinned root),
/// then through the vouchers of unexpired advertisements of hubs already trusted.
pub fn trusted_hubs(
    anchors: &TrustAnchors,
    held: &BTreeMap<HubId, VerifiedAdvertisement>,
    now: Timestamp,
) -> BTreeMap<HubId, TrustPath> {
    let current = |hub: &HubId| held.get(hub).filter(|v| !v.advertisement().is_expired(now));
    let mut trusted = BTreeMap::new();
    let mut queue = VecDeque::new();
    for (peer, anchor) in &anchors.peers {
        if current(peer).is_some_and(|v| v.root == anchor.fingerprint) {
            trusted.insert(peer.clone(), TrustPath::Peer);
            queue.push_back(peer.clone());
        }
    }
    while let Some(voucher) = queue.pop_front() {
        let Some(advertisement) = current(&voucher) else {
            continue;
        };
        for vouch in advertisement.advertisement().vouchers() {
            let hub = &vouch.hub;
            if *hub == anchors.own || anchors.peers.contains_key(hub) || trusted.contains_key(hub) {
                continue;
            }
            if current(hub).is_some_and(|v| v.root == vouch.root) {
                trusted.insert(
                    hub.clone(),
                    TrustPath::Vouched {
                        by: voucher.clone(),
                    },
                );
                queue.push_back(hub.clone());
            }
        }
    }
    trusted
}

#[cfg(test)]
mod tests;
