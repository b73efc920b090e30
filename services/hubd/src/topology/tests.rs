//! The link-state database and the graph: bidirectional links only, expiry, trust, no transit.

use super::*;
use crate::testing::{Draft, Site, hub, now};

fn link_names(topology: &Topology) -> Vec<String> {
    let mut names: Vec<String> = (0..topology.link_count())
        .map(|i| {
            let link = &topology.links()[i];
            let a = &topology.hub(link.ends[0]).id;
            let b = &topology.hub(link.ends[1]).id;
            format!("{a}-{b}{} {}", link.id, link.latency)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn only_links_both_ends_advertise_count() {
    let ads = [
        Draft::new("a", "ES")
            .link("b", 1, 5)
            .link("b", 2, 7)
            .link("c", 1, 3)
            .build(),
        // b confirms link 1 (measuring it slower) and link 2; c never mentions a.
        Draft::new("b", "FR")
            .link("a", 1, 6)
            .link("a", 2, 7)
            .link("c", 1, 4)
            .build(),
        // c claims a link 3 to b that b does not list, and a link to an unknown hub.
        Draft::new("c", "PT")
            .link("b", 1, 4)
            .link("b", 3, 1)
            .link("z", 1, 1)
            .build(),
    ];
    let topology = Topology::from_advertisements(&ads);
    assert_eq!(topology.hub_count(), 3);
    assert_eq!(
        link_names(&topology),
        ["a-b#1 6.0 ms", "a-b#2 7.0 ms", "b-c#1 4.0 ms"],
        "the larger latency of the two ends; one-sided links left out"
    );
    let a = topology.index_of(&hub("a")).unwrap();
    assert_eq!(topology.neighbours(a).len(), 2, "two cables to b");
    let name = topology.link_name(topology.neighbours(a)[0].1);
    assert_eq!(name.to_string(), "a—b #1");
    assert_eq!(topology.index_of(&hub("z")), None);
}

#[test]
fn no_transit_hubs_stay_in_the_graph_without_transit() {
    let ads = [
        Draft::new("a", "ES").link("b", 1, 5).build(),
        Draft::new("b", "FR").link("a", 1, 5).no_transit().build(),
    ];
    let topology = Topology::from_advertisements(&ads);
    let b = topology.index_of(&hub("b")).unwrap();
    assert!(!topology.hub(b).transit);
    assert!(topology.hub(topology.index_of(&hub("a")).unwrap()).transit);
    assert_eq!(topology.link_count(), 1, "still reachable as a destination");
}

/// madrid-1 with peers paris-1 and lisbon-1; lisbon-1 vouches for sao-paulo-1.
struct Network {
    paris: Site,
    lisbon: Site,
    sao_paulo: Site,
    lsdb: LinkStateDatabase,
}

impl Network {
    fn new() -> Self {
        let (paris, lisbon) = (Site::new("paris"), Site::new("lisbon"));
        let mut anchors = TrustAnchors::new(hub("madrid-1"));
        anchors.pin(hub("paris-1"), &paris.pinned()).unwrap();
        anchors.pin(hub("lisbon-1"), &lisbon.pinned()).unwrap();
        let mut lsdb = LinkStateDatabase::new(anchors);
        lsdb.originate(
            Draft::new("madrid-1", "ES")
                .link("paris-1", 1, 10)
                .link("lisbon-1", 1, 5)
                .build(),
        )
        .unwrap();
        Self {
            paris,
            lisbon,
            sao_paulo: Site::new("sao-paulo"),
            lsdb,
        }
    }

    fn lisbon_ad(&self, sequence: u64, vouch: bool, expires_in: u64) -> SignedAdvertisement {
        let mut draft = Draft::new("lisbon-1", "PT")
            .sequence(sequence)
            .expires_at(now().plus_secs(expires_in))
            .link("madrid-1", 1, 5)
            .link("sao-paulo-1", 1, 40);
        if vouch {
            draft = draft.vouch("sao-paulo-1", self.sao_paulo.fingerprint());
        }
        self.lisbon.hub("lisbon-1").sign(draft.build())
    }

    fn sao_paulo_ad(&self) -> SignedAdvertisement {
        self.sao_paulo.hub("sao-paulo-1").sign(
            Draft::new("sao-paulo-1", "BR")
                .link("lisbon-1", 1, 40)
                .build(),
        )
    }

    fn hub_ids(&self, at: Timestamp) -> Vec<String> {
        let topology = self.lsdb.topology(at);
        topology.hubs().iter().map(|h| h.id.to_string()).collect()
    }
}

#[test]
fn the_graph_holds_this_hub_and_the_trusted_hubs() {
    let mut net = Network::new();
    assert_eq!(net.hub_ids(now()), ["madrid-1"]);
    let accepted = net
        .lsdb
        .accept(net.lisbon_ad(1, true, 3600), now())
        .unwrap();
    assert_eq!(
        accepted,
        Accepted {
            origin: hub("lisbon-1"),
            sequence: 1,
            replaced: None
        }
    );
    net.lsdb.accept(net.sao_paulo_ad(), now()).unwrap();
    assert_eq!(net.hub_ids(now()), ["lisbon-1", "madrid-1", "sao-paulo-1"]);
    let topology = net.lsdb.topology(now());
    assert_eq!(
        link_names(&topology),
        [
            "lisbon-1-madrid-1#1 5.0 ms",
            "lisbon-1-sao-paulo-1#1 40.0 ms"
        ],
        "paris-1 has not advertised, so madrid-1's link to it does not count"
    );
    let again = net
        .lsdb
        .accept(net.lisbon_ad(2, true, 3600), now())
        .unwrap();
    assert_eq!(again.replaced, Some(1));
}

#[test]
fn a_rejected_advertisement_changes_nothing() {
    let mut net = Network::new();
    net.lsdb
        .accept(net.lisbon_ad(5, true, 3600), now())
        .unwrap();
    let before: Vec<_> = net.lsdb.held().cloned().collect();
    let stale = net.lisbon_ad(4, false, 3600);
    assert!(net.lsdb.accept(stale, now()).is_err());
    let forged_site = Site::new("paris-impostor");
    let forged = forged_site
        .hub("paris-1")
        .sign(Draft::new("paris-1", "FR").link("madrid-1", 1, 1).build());
    assert_eq!(
        net.lsdb.accept(forged, now()).unwrap_err().reason(),
        "wrong_root"
    );
    let after: Vec<_> = net.lsdb.held().cloned().collect();
    assert_eq!(before, after);
    assert!(net.lsdb.get(&hub("paris-1")).is_none());
}

#[test]
fn expired_advertisements_leave_the_graph() {
    let mut net = Network::new();
    net.lsdb.accept(net.lisbon_ad(1, true, 60), now()).unwrap();
    net.lsdb.accept(net.sao_paulo_ad(), now()).unwrap();
    let later = now().plus_secs(120);
    // lisbon-1 expired: it leaves, and sao-paulo-1, trusted only through it, leaves too.
    assert_eq!(net.hub_ids(later), ["madrid-1"]);
    assert_eq!(net.lsdb.expire(later), [hub("lisbon-1")]);
    assert!(net.lsdb.get(&hub("lisbon-1")).is_none());
    assert!(
        net.lsdb.get(&hub("sao-paulo-1")).is_some(),
        "not expired, only untrusted"
    );
}

#[test]
fn a_withdrawn_voucher_removes_the_hub_from_the_graph() {
    let mut net = Network::new();
    net.lsdb
        .accept(net.lisbon_ad(1, true, 3600), now())
        .unwrap();
    net.lsdb.accept(net.sao_paulo_ad(), now()).unwrap();
    net.lsdb
        .accept(net.lisbon_ad(2, false, 3600), now())
        .unwrap();
    assert_eq!(net.hub_ids(now()), ["lisbon-1", "madrid-1"]);
    assert_eq!(net.lsdb.trusted(now()).len(), 1);
}

#[test]
fn only_this_hubs_advertisement_is_originated() {
    let mut net = Network::new();
    let error = net
        .lsdb
        .originate(Draft::new("paris-1", "FR").build())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the advertisement is from paris-1, not from this hub (madrid-1)"
    );
    assert_eq!(net.lsdb.own().unwrap().origin(), &hub("madrid-1"));
    let paris = net.paris.hub("paris-1");
    net.lsdb
        .accept(
            paris.sign(
                Draft::new("paris-1", "FR")
                    .link("madrid-1", 1, 12)
                    .no_transit()
                    .build(),
            ),
            now(),
        )
        .unwrap();
    let topology = net.lsdb.topology(now());
    let paris_index = topology.index_of(&hub("paris-1")).unwrap();
    assert!(!topology.hub(paris_index).transit);
    assert_eq!(link_names(&topology), ["madrid-1-paris-1#1 12.0 ms"]);
}
