//! Bilateral peering: the agreements this hub has with each of its direct peers.
//!
//! A [`PeeringAgreement`] is what two sites agree on and each writes into a peering file: the
//! peer's hub id and jurisdiction, the links between the two hubs (several cables are several
//! links, each with its number and the peer's address on it), the root certificate of the
//! peer's site (pinned: the only root the peer's certificates are ever checked against), and the
//! [`Grant`] of what the peer may use through this hub. [`Peers`] holds every agreement of this
//! hub and derives what the rest of hubd needs from them: the [`TrustAnchors`] and the vouchers
//! this hub's advertisements carry.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use appliance::tls::PinnedRoot;

use crate::advertisement::Voucher;
use crate::grant::Grant;
use crate::hub_certificate::{CertificateError, SpkiFingerprint};
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::LinkId;
use crate::trust::{AnchorError, TrustAnchors};

/// One link to a peer: its number (the same in both sites' files) and the peer's address on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLink {
    /// The link number.
    pub id: LinkId,
    /// Where the peer listens on this link: `IP:PORT`.
    pub address: SocketAddr,
}

/// Why values do not make a peering agreement, or an agreement does not fit with the others.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeeringError {
    /// No link at all: the peer could never be reached.
    #[error("peer {0} has no link; list at least one `[[link]]` with its `id` and `address`")]
    NoLinks(HubId),
    /// A link number used twice.
    #[error("link {link} is listed twice for peer {hub}")]
    DuplicateLinkId {
        /// The peer.
        hub: HubId,
        /// Position of the second use in the list.
        index: usize,
        /// The number.
        link: LinkId,
    },
    /// An address used by two links.
    #[error("address {address} is given for two links to peer {hub}")]
    DuplicateAddress {
        /// The peer.
        hub: HubId,
        /// Position of the second use in the list.
        index: usize,
        /// The address.
        address: SocketAddr,
    },
    /// The pinned root's key cannot be read.
    #[error("the pinned root of peer {hub}: {source}")]
    Root {
        /// The peer.
        hub: HubId,
        /// Why.
        source: CertificateError,
    },
    /// The agreement names this hub itself.
    #[error("hub {0} is this hub; it cannot be its own peer")]
    OwnHub(HubId),
    /// Two agreements for one peer.
    #[error("there is already a peering agreement with {0}")]
    DuplicatePeer(HubId),
}

/// What this hub and one peer hub agreed.
#[derive(Debug, Clone)]
pub struct PeeringAgreement {
    hub: HubId,
    jurisdiction: Jurisdiction,
    links: Vec<PeerLink>,
    root: PinnedRoot,
    root_fingerprint: SpkiFingerprint,
    grant: Grant,
}

impl PeeringAgreement {
    /// An agreement with `hub`; refuses no links, a link number or address used twice, and a
    /// root whose key cannot be read.
    pub fn new(
        hub: HubId,
        jurisdiction: Jurisdiction,
        links: Vec<PeerLink>,
        root: PinnedRoot,
        grant: Grant,
    ) -> Result<Self, PeeringError> {
        if links.is_empty() {
            return Err(PeeringError::NoLinks(hub));
        }
        for (index, link) in links.iter().enumerate() {
            let earlier = &links[..index];
            if earlier.iter().any(|other| other.id == link.id) {
                return Err(PeeringError::DuplicateLinkId {
                    hub,
                    index,
                    link: link.id,
                });
            }
            if earlier.iter().any(|other| other.address == link.address) {
                return Err(PeeringError::DuplicateAddress {
                    hub,
                    index,
                    address: link.address,
                });
            }
        }
        let root_fingerprint =
            SpkiFingerprint::of_certificate(root.der()).map_err(|source| PeeringError::Root {
                hub: hub.clone(),
                source,
            })?;
        Ok(Self {
            hub,
            jurisdiction,
            links,
            root,
            root_fingerprint,
            grant,
        })
    }

    /// The peer hub.
    pub fn hub(&self) -> &HubId {
        &self.hub
    }

    /// Its jurisdiction, as agreed.
    pub fn jurisdiction(&self) -> Jurisdiction {
        self.jurisdiction
    }

    /// The links to it, in the file's order.
    pub fn links(&self) -> &[PeerLink] {
        &self.links
    }

    /// The pinned root of its site (for TLS on the links, and for its advertisements).
    pub fn root(&self) -> &PinnedRoot {
        &self.root
    }

    /// The fingerprint of the root's key, as vouched for in advertisements.
    pub fn root_fingerprint(&self) -> SpkiFingerprint {
        self.root_fingerprint
    }

    /// What the peer may use through this hub.
    pub fn grant(&self) -> &Grant {
        &self.grant
    }
}

impl fmt::Display for PeeringAgreement {
    /// `paris-1 (FR, France): links #1 198.51.100.7:7400, #2 203.0.113.9:7400; root key
    /// <sha256>; granted transit; 10.20.0.0/16`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let links: Vec<String> = self
            .links
            .iter()
            .map(|link| format!("{} {}", link.id, link.address))
            .collect();
        write!(
            f,
            "{} ({}, {}): link{} {}; root key {}; granted {}",
            self.hub,
            self.jurisdiction,
            self.jurisdiction.name(),
            if links.len() == 1 { "" } else { "s" },
            links.join(", "),
            self.root_fingerprint,
            self.grant
        )
    }
}

/// Every peering agreement of this hub, by peer.
#[derive(Debug, Clone)]
pub struct Peers {
    own: HubId,
    agreements: BTreeMap<HubId, PeeringAgreement>,
}

impl Peers {
    /// No agreements yet; `own` is this hub.
    pub fn new(own: HubId) -> Self {
        Self {
            own,
            agreements: BTreeMap::new(),
        }
    }

    /// Adds an agreement; refuses one with this hub itself or a second one with the same peer.
    pub fn add(&mut self, agreement: PeeringAgreement) -> Result<(), PeeringError> {
        if agreement.hub == self.own {
            return Err(PeeringError::OwnHub(agreement.hub));
        }
        if self.agreements.contains_key(&agreement.hub) {
            return Err(PeeringError::DuplicatePeer(agreement.hub));
        }
        self.agreements.insert(agreement.hub.clone(), agreement);
        Ok(())
    }

    /// This hub.
    pub fn own_hub(&self) -> &HubId {
        &self.own
    }

    /// The agreement with `hub`.
    pub fn get(&self, hub: &HubId) -> Option<&PeeringAgreement> {
        self.agreements.get(hub)
    }

    /// Every agreement, by peer id.
    pub fn iter(&self) -> impl Iterator<Item = &PeeringAgreement> {
        self.agreements.values()
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.agreements.len()
    }

    /// Whether there is no peer.
    pub fn is_empty(&self) -> bool {
        self.agreements.is_empty()
    }

    /// The roots to trust: each peer's pinned root, for that peer only.
    pub fn trust_anchors(&self) -> Result<TrustAnchors, AnchorError> {
        let mut anchors = TrustAnchors::new(self.own.clone());
        for agreement in self.agreements.values() {
            anchors.pin(agreement.hub.clone(), &agreement.root)?;
        }
        Ok(anchors)
    }

    /// The vouchers this hub's advertisements carry: each peer with its root's key fingerprint.
    pub fn vouchers(&self) -> Vec<Voucher> {
        self.agreements
            .values()
            .map(|agreement| Voucher {
                hub: agreement.hub.clone(),
                root: agreement.root_fingerprint,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Site, country, hub};

    fn link(id: u16, address: &str) -> PeerLink {
        PeerLink {
            id: LinkId::new(id).unwrap(),
            address: address.parse().unwrap(),
        }
    }

    #[test]
    fn an_agreement_needs_links_with_distinct_numbers_and_addresses() {
        let paris = Site::new("paris");
        let make = |links| {
            PeeringAgreement::new(
                hub("paris-1"),
                country("FR"),
                links,
                paris.pinned(),
                Grant::default(),
            )
        };
        let two = make(vec![
            link(1, "198.51.100.7:7400"),
            link(2, "203.0.113.9:7400"),
        ])
        .unwrap();
        assert_eq!(two.links().len(), 2);
        assert_eq!(two.root_fingerprint(), paris.fingerprint());
        assert!(two.to_string().starts_with(
            "paris-1 (FR, France): links #1 198.51.100.7:7400, #2 203.0.113.9:7400; root key "
        ));
        assert!(two.to_string().ends_with("; granted nothing"));
        assert_eq!(
            make(vec![]).unwrap_err(),
            PeeringError::NoLinks(hub("paris-1"))
        );
        assert!(matches!(
            make(vec![
                link(1, "198.51.100.7:7400"),
                link(1, "203.0.113.9:7400")
            ]),
            Err(PeeringError::DuplicateLinkId { index: 1, .. })
        ));
        assert!(matches!(
            make(vec![
                link(1, "198.51.100.7:7400"),
                link(2, "198.51.100.7:7400")
            ]),
            Err(PeeringError::DuplicateAddress { index: 1, .. })
        ));
    }

    #[test]
    fn peers_give_the_anchors_and_the_vouchers() {
        let paris = Site::new("paris");
        let lisbon = Site::new("lisbon");
        let mut peers = Peers::new(hub("madrid-1"));
        let agreement = |id: &str, code: &str, site: &Site| {
            PeeringAgreement::new(
                hub(id),
                country(code),
                vec![link(1, "192.0.2.1:7400")],
                site.pinned(),
                Grant::default(),
            )
            .unwrap()
        };
        peers.add(agreement("paris-1", "FR", &paris)).unwrap();
        peers.add(agreement("paris-2", "FR", &paris)).unwrap();
        peers.add(agreement("lisbon-1", "PT", &lisbon)).unwrap();
        assert_eq!(
            peers.add(agreement("lisbon-1", "PT", &lisbon)).unwrap_err(),
            PeeringError::DuplicatePeer(hub("lisbon-1"))
        );
        assert_eq!(
            peers.add(agreement("madrid-1", "ES", &lisbon)).unwrap_err(),
            PeeringError::OwnHub(hub("madrid-1"))
        );
        assert_eq!(peers.len(), 3);
        let anchors = peers.trust_anchors().unwrap();
        assert_eq!(anchors.own_hub(), &hub("madrid-1"));
        assert_eq!(
            anchors.peer_root(&hub("paris-2")),
            Some(paris.fingerprint())
        );
        assert_eq!(
            anchors.peer_root(&hub("lisbon-1")),
            Some(lisbon.fingerprint())
        );
        assert_eq!(anchors.peer_root(&hub("sao-paulo-1")), None);
        let vouchers = peers.vouchers();
        assert_eq!(vouchers.len(), 3);
        assert_eq!(vouchers[0].hub, hub("lisbon-1"));
        assert_eq!(vouchers[0].root, lisbon.fingerprint());
    }
}
