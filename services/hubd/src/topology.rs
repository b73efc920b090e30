//! The link-state database and the network graph built from it.
//!
//! [`LinkStateDatabase`] holds this hub's own advertisement and the newest accepted
//! advertisement of every other hub ([`crate::trust::admit`] decides what is accepted). A
//! [`Topology`] is a snapshot for path selection: only hubs trusted at that instant with an
//! unexpired advertisement, and only **bidirectional** links: a link counts when both of its
//! ends advertise it (same two hubs, same link id), so a hub cannot invent a link to a hub that
//! does not confirm it. The link's latency is the larger of the two measurements. A hub whose
//! advertisement sets no-transit stays in the graph as a possible source or destination but is
//! marked [`TopologyHub::transit`] `false`, and paths never cross it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::advertisement::{Advertisement, SignedAdvertisement, Timestamp};
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::{Latency, LinkId};
use crate::trust::{self, Rejection, TrustAnchors, TrustPath, VerifiedAdvertisement};

/// Everything this hub knows about the network: its anchors, its own advertisement, and the
/// newest accepted advertisement of each other hub.
#[derive(Debug, Clone)]
pub struct LinkStateDatabase {
    anchors: TrustAnchors,
    own: Option<Advertisement>,
    held: BTreeMap<HubId, VerifiedAdvertisement>,
}

/// An advertisement taken into the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Its origin.
    pub origin: HubId,
    /// Its sequence number.
    pub sequence: u64,
    /// The sequence number it replaced, `None` for a hub not held before.
    pub replaced: Option<u64>,
}

/// An advertisement given as this hub's own that names another origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the advertisement is from {origin}, not from this hub ({own})")]
pub struct NotOwnAdvertisement {
    /// This hub.
    pub own: HubId,
    /// The advertisement's origin.
    pub origin: HubId,
}

impl LinkStateDatabase {
    /// An empty database for the hub `anchors` belongs to.
    pub fn new(anchors: TrustAnchors) -> Self {
        Self {
            anchors,
            own: None,
            held: BTreeMap::new(),
        }
    }

    /// The anchors (this hub and its pinned peers).
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// Replaces this hub's own advertisement (its links as it measures them, its flags).
    pub fn originate(&mut self, own: Advertisement) -> Result<(), NotOwnAdvertisement> {
        if own.origin() != self.anchors.own_hub() {
            return Err(NotOwnAdvertisement {
                own: self.anchors.own_hub().clone(),
                origin: own.origin().clone(),
            });
        }
        self.own = Some(own);
        Ok(())
    }

    /// This hub's own advertisement, once originated.
    pub fn own(&self) -> Option<&Advertisement> {
        self.own.as_ref()
    }

    /// Accepts `signed` if [`trust::admit`] does; a rejection changes nothing.
    pub fn accept(
        &mut self,
        signed: SignedAdvertisement,
        now: Timestamp,
    ) -> Result<Accepted, Rejection> {
        let verified = trust::admit(&self.anchors, &self.held, signed, now)?;
        let advertisement = verified.advertisement();
        let accepted = Accepted {
            origin: advertisement.origin().clone(),
            sequence: advertisement.sequence(),
            replaced: self
                .held
                .get(advertisement.origin())
                .map(|held| held.advertisement().sequence()),
        };
        self.held.insert(accepted.origin.clone(), verified);
        Ok(accepted)
    }

    /// Drops every held advertisement expired at `now`; returns their origins.
    pub fn expire(&mut self, now: Timestamp) -> Vec<HubId> {
        let expired: Vec<HubId> = self
            .held
            .iter()
            .filter(|(_, held)| held.advertisement().is_expired(now))
            .map(|(hub, _)| hub.clone())
            .collect();
        for hub in &expired {
            self.held.remove(hub);
        }
        expired
    }

    /// The advertisement held from `hub`.
    pub fn get(&self, hub: &HubId) -> Option<&VerifiedAdvertisement> {
        self.held.get(hub)
    }

    /// Every held advertisement, by origin.
    pub fn held(&self) -> impl Iterator<Item = &VerifiedAdvertisement> {
        self.held.values()
    }

    /// The hubs trusted at `now`, and how (see [`trust::trusted_hubs`]).
    pub fn trusted(&self, now: Timestamp) -> BTreeMap<HubId, TrustPath> {
        trust::trusted_hubs(&self.anchors, &self.held, now)
    }

    /// The graph at `now`: this hub and every hub trusted at `now` with an unexpired
    /// advertisement, joined by the links both ends advertise.
    pub fn topology(&self, now: Timestamp) -> Topology {
        let trusted = self.trusted(now);
        let others = trusted
            .keys()
            .filter_map(|hub| self.held.get(hub))
            .map(VerifiedAdvertisement::advertisement)
            .filter(|advertisement| !advertisement.is_expired(now));
        Topology::from_advertisements(self.own.iter().chain(others))
    }
}

/// A hub's position in a [`Topology`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HubIndex(usize);

impl HubIndex {
    /// The hub at position `i` (valid for the topology `i` came from).
    pub(crate) fn at(i: usize) -> Self {
        Self(i)
    }

    /// The position, `0..topology.hub_count()`.
    pub fn get(self) -> usize {
        self.0
    }
}

/// A link's position in a [`Topology`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkIndex(usize);

impl LinkIndex {
    /// The position, `0..topology.link_count()`.
    pub fn get(self) -> usize {
        self.0
    }
}

/// A hub in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyHub {
    /// Its id.
    pub id: HubId,
    /// Its jurisdiction, as it advertises it.
    pub jurisdiction: Jurisdiction,
    /// Whether paths may cross it (its advertisement does not set no-transit).
    pub transit: bool,
}

/// A link confirmed by both its ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyLink {
    /// Its two ends, the smaller hub id first.
    pub ends: [HubIndex; 2],
    /// Which of the links between them.
    pub id: LinkId,
    /// The larger of the latencies its two ends measure.
    pub latency: Latency,
}

impl TopologyLink {
    /// The end that is not `hub`.
    pub fn other_end(&self, hub: HubIndex) -> HubIndex {
        if self.ends[0] == hub {
            self.ends[1]
        } else {
            self.ends[0]
        }
    }
}

/// A link named by its ends and number, as operators read it: `madrid-1—paris-1 #2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkName {
    /// The end with the smaller hub id.
    pub a: HubId,
    /// The other end.
    pub b: HubId,
    /// The link number.
    pub id: LinkId,
}

impl fmt::Display for LinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}—{} {}", self.a, self.b, self.id)
    }
}

/// The network graph at one instant (see the module docs for what it contains).
#[derive(Debug, Clone, Default)]
pub struct Topology {
    hubs: Vec<TopologyHub>,
    index: HashMap<HubId, HubIndex>,
    links: Vec<TopologyLink>,
    adjacency: Vec<Vec<(HubIndex, LinkIndex)>>,
}

impl Topology {
    /// The graph of these advertisements (at most one per origin; a later one of the same
    /// origin replaces an earlier). They are taken as trusted and current: the
    /// [`LinkStateDatabase`] decides that.
    pub fn from_advertisements<'a>(
        advertisements: impl IntoIterator<Item = &'a Advertisement>,
    ) -> Self {
        let by_origin: BTreeMap<&HubId, &Advertisement> = advertisements
            .into_iter()
            .map(|advertisement| (advertisement.origin(), advertisement))
            .collect();
        let hubs: Vec<TopologyHub> = by_origin
            .values()
            .map(|advertisement| TopologyHub {
                id: advertisement.origin().clone(),
                jurisdiction: advertisement.jurisdiction(),
                transit: !advertisement.flags().no_transit,
            })
            .collect();
        let index: HashMap<HubId, HubIndex> = hubs
            .iter()
            .enumerate()
            .map(|(i, hub)| (hub.id.clone(), HubIndex(i)))
            .collect();
        let mut topology = Self {
            adjacency: vec![Vec::new(); hubs.len()],
            hubs,
            index,
            links: Vec::new(),
        };
        for (origin, advertisement) in &by_origin {
            for link in advertisement.links() {
                // Each link once, from its smaller end, and only if the other end confirms it.
                if link.neighbour <= **origin {
                    continue;
                }
                let Some(other) = by_origin.get(&link.neighbour) else {
                    continue;
                };
                let Some(confirmed) = other
                    .links()
                    .iter()
                    .find(|back| back.neighbour == **origin && back.link == link.link)
                else {
                    continue;
                };
                topology.add_link(
                    origin,
                    &link.neighbour,
                    link.link,
                    link.latency.max(confirmed.latency),
                );
            }
        }
        topology
    }

    fn add_link(&mut self, a: &HubId, b: &HubId, id: LinkId, latency: Latency) {
        let (a, b) = (self.index[a], self.index[b]);
        let link = LinkIndex(self.links.len());
        self.links.push(TopologyLink {
            ends: [a, b],
            id,
            latency,
        });
        self.adjacency[a.0].push((b, link));
        self.adjacency[b.0].push((a, link));
    }

    /// Number of hubs.
    pub fn hub_count(&self) -> usize {
        self.hubs.len()
    }

    /// Number of links.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }

    /// Every hub, in hub id order (`HubIndex(i)` is the i-th).
    pub fn hubs(&self) -> &[TopologyHub] {
        &self.hubs
    }

    /// The hub at `index`.
    pub fn hub(&self, index: HubIndex) -> &TopologyHub {
        &self.hubs[index.0]
    }

    /// Where `id` is, if it is in the graph.
    pub fn index_of(&self, id: &HubId) -> Option<HubIndex> {
        self.index.get(id).copied()
    }

    /// Every link.
    pub fn links(&self) -> &[TopologyLink] {
        &self.links
    }

    /// The link at `index`.
    pub fn link(&self, index: LinkIndex) -> &TopologyLink {
        &self.links[index.0]
    }

    /// The link at `index`, by name.
    pub fn link_name(&self, index: LinkIndex) -> LinkName {
        let link = self.link(index);
        LinkName {
            a: self.hub(link.ends[0]).id.clone(),
            b: self.hub(link.ends[1]).id.clone(),
            id: link.id,
        }
    }

    /// The hubs next to `hub`, with the link to each (one entry per link).
    pub fn neighbours(&self, hub: HubIndex) -> &[(HubIndex, LinkIndex)] {
        &self.adjacency[hub.0]
    }
}

#[cfg(test)]
mod tests;
