//! What a hub checks before it carries a circuit that arrives on one of its links.
//!
//! The decision only: no sockets, no clock. Each check that fails is one [`CircuitRefusal`],
//! and nothing else changes. In order: this hub is on the route, after the source; the circuit
//! came from the hub before it on the route, over the link the route names; it carries exactly
//! the receipts of the transit hubs before this one. Then, as destination, the source must be
//! vouched for (or it could not be authenticated); as transit, this hub must offer transit, the
//! peer the circuit came from must be granted transit, and the link to the next hub must be up.

use super::refusal::CircuitRefusal;
use super::vouched::VouchedHubs;
use super::wire::CircuitOpen;
use crate::hub_id::HubId;
use crate::links::LinkKey;
use crate::peering::Peers;

/// Where a circuit arrived and what this hub offers now.
pub struct Here<'a> {
    /// This hub.
    pub own: &'a HubId,
    /// The link the circuit arrived on.
    pub arrived_on: &'a LinkKey,
    /// Whether this hub offers transit now.
    pub transit: bool,
    /// This hub's peering agreements (the grants).
    pub peers: &'a Peers,
    /// What the control plane vouches for.
    pub vouched: &'a VouchedHubs,
    /// Whether a link of this hub is up.
    pub link_up: &'a dyn Fn(&LinkKey) -> bool,
}

/// What this hub is to an admitted circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The circuit ends here.
    Destination,
    /// The circuit goes on over this link.
    Transit {
        /// The link to the next hub.
        next: LinkKey,
    },
}

/// A circuit this hub will carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// This hub's place on the route (1 = the hub after the source).
    pub position: usize,
    /// Destination or transit.
    pub role: Role,
}

/// Checks `open` as it arrived `here` (see the module docs for the order).
pub fn admit(open: &CircuitOpen, here: &Here<'_>) -> Result<Admitted, CircuitRefusal> {
    let route = &open.route;
    let position = route
        .position(here.own)
        .filter(|position| *position > 0)
        .ok_or(CircuitRefusal::NotOnRoute)?;
    let before = route
        .link_before(position)
        .expect("a hub after the source has one before it");
    if before.peer != here.arrived_on.peer {
        return Err(CircuitRefusal::WrongPreviousHop);
    }
    if before.link != here.arrived_on.link {
        return Err(CircuitRefusal::WrongLink);
    }
    if open.receipts.len() != position - 1 {
        return Err(CircuitRefusal::Malformed);
    }
    let Some(next) = route.link_after(position) else {
        if here.vouched.root(route.source()).is_none() {
            return Err(CircuitRefusal::UnknownSource);
        }
        return Ok(Admitted {
            position,
            role: Role::Destination,
        });
    };
    if !here.transit {
        return Err(CircuitRefusal::NoTransit);
    }
    let granted = here
        .peers
        .get(&before.peer)
        .is_some_and(|agreement| agreement.grant().allows_transit());
    if !granted {
        return Err(CircuitRefusal::NotGranted);
    }
    if !(here.link_up)(&next) {
        return Err(CircuitRefusal::NoLink);
    }
    Ok(Admitted {
        position,
        role: Role::Transit { next },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::circuit::route::Route;
    use crate::grant::Grant;
    use crate::link::LinkId;
    use crate::peering::{PeerLink, PeeringAgreement};
    use crate::session_id::SessionId;
    use crate::testing::{Site, country, hub};

    fn link(id: u16) -> LinkId {
        LinkId::new(id).unwrap()
    }

    fn key(peer: &str, id: u16) -> LinkKey {
        LinkKey {
            peer: hub(peer),
            link: link(id),
        }
    }

    /// Lisbon, peer of Madrid (granted transit) and of Rome (not granted).
    fn lisbon_peers(site: &Site) -> Peers {
        let mut peers = Peers::new(hub("lisbon-1"));
        for (peer, transit, port) in [("madrid-1", true, 1), ("rome-1", false, 2)] {
            let agreement = PeeringAgreement::new(
                hub(peer),
                country("ES"),
                vec![PeerLink {
                    id: link(1),
                    address: ([127, 0, 0, 1], port).into(),
                }],
                site.pinned(),
                Grant {
                    transit,
                    ..Grant::default()
                },
            )
            .unwrap();
            peers.add(agreement).unwrap();
        }
        peers
    }

    fn open(hubs: &[&str], receipts: usize) -> CircuitOpen {
        let route = Route::new(
            hubs.iter().map(|id| hub(id)).collect(),
            vec![link(1); hubs.len() - 1],
        )
        .unwrap();
        let site = Site::new("any");
        let signer = site.hub("madrid-1");
        let receipt = super::super::TransitReceipt::sign(
            signer.identity(),
            SessionId::from_bytes([0; 16]),
            super::super::Hop {
                hub: hub("madrid-1"),
                jurisdiction: country("ES"),
                previous: None,
                next: None,
                epoch: 0,
            },
        )
        .unwrap();
        CircuitOpen {
            session: SessionId::from_bytes([0; 16]),
            route,
            receipts: vec![receipt; receipts],
        }
    }

    fn decide(
        open: &CircuitOpen,
        arrived_on: LinkKey,
        transit: bool,
        up: &[LinkKey],
    ) -> Result<Admitted, CircuitRefusal> {
        let site = Site::new("madrid");
        let peers = lisbon_peers(&site);
        let chains = BTreeMap::from([(hub("madrid-1"), site.hub("madrid-1").chain().to_vec())]);
        let vouched = VouchedHubs::new(chains, BTreeMap::new());
        let link_up = |key: &LinkKey| up.contains(key);
        admit(
            open,
            &Here {
                own: &hub("lisbon-1"),
                arrived_on: &arrived_on,
                transit,
                peers: &peers,
                vouched: &vouched,
                link_up: &link_up,
            },
        )
    }

    #[test]
    fn a_granted_peer_transits_to_a_link_that_is_up() {
        let through = open(&["madrid-1", "lisbon-1", "sao-paulo-1"], 0);
        let next = key("sao-paulo-1", 1);
        assert_eq!(
            decide(
                &through,
                key("madrid-1", 1),
                true,
                std::slice::from_ref(&next)
            ),
            Ok(Admitted {
                position: 1,
                role: Role::Transit { next: next.clone() }
            })
        );
        let refused = |open: &CircuitOpen, from, transit, up: &[LinkKey]| {
            decide(open, from, transit, up).unwrap_err()
        };
        let up = [next];
        assert_eq!(
            refused(&through, key("madrid-1", 1), false, &up),
            CircuitRefusal::NoTransit
        );
        assert_eq!(
            refused(&through, key("madrid-1", 1), true, &[]),
            CircuitRefusal::NoLink
        );
        assert_eq!(
            refused(&through, key("madrid-1", 2), true, &up),
            CircuitRefusal::WrongLink
        );
        assert_eq!(
            refused(&through, key("rome-1", 1), true, &up),
            CircuitRefusal::WrongPreviousHop
        );
        let from_rome = open(&["rome-1", "lisbon-1", "sao-paulo-1"], 0);
        assert_eq!(
            refused(&from_rome, key("rome-1", 1), true, &up),
            CircuitRefusal::NotGranted
        );
        let elsewhere = open(&["madrid-1", "paris-1", "sao-paulo-1"], 0);
        assert_eq!(
            refused(&elsewhere, key("madrid-1", 1), true, &up),
            CircuitRefusal::NotOnRoute
        );
        let back_to_source = open(&["lisbon-1", "madrid-1"], 0);
        assert_eq!(
            refused(&back_to_source, key("madrid-1", 1), true, &up),
            CircuitRefusal::NotOnRoute
        );
        let stuffed = open(&["madrid-1", "lisbon-1", "sao-paulo-1"], 1);
        assert_eq!(
            refused(&stuffed, key("madrid-1", 1), true, &up),
            CircuitRefusal::Malformed
        );
    }

    #[test]
    fn a_destination_needs_no_transit_but_a_vouched_source() {
        let to_lisbon = open(&["madrid-1", "lisbon-1"], 0);
        assert_eq!(
            decide(&to_lisbon, key("madrid-1", 1), false, &[]),
            Ok(Admitted {
                position: 1,
                role: Role::Destination
            })
        );
        let from_rome = open(&["rome-1", "lisbon-1"], 0);
        assert_eq!(
            decide(&from_rome, key("rome-1", 1), true, &[]),
            Err(CircuitRefusal::UnknownSource)
        );
    }
}
