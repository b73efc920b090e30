//! Flooding over real links on loopback.
//!
//! Four hubs, each of its own site and country: madrid-1 (ES), lisbon-1 (PT), sao-paulo-1 (BR)
//! and bogota-1 (CO); a triangle madrid—lisbon—são paulo and a tail são paulo—bogotá, one link
//! each. Bogotá is a peer of São Paulo only: Madrid and Lisbon trust it through São Paulo's
//! voucher.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::*;
use crate::flooding::driver::FloodingHandle;
use crate::links::{Link, LinkEndpoint, LinkTiming};
use crate::testing::loopback::{GUARD, guarded};

const HUBS: [(&str, &str); 4] = [
    ("madrid-1", "ES"),
    ("lisbon-1", "PT"),
    ("sao-paulo-1", "BR"),
    ("bogota-1", "CO"),
];

/// Each cable: the hub that dials, the hub that accepts (link 1 in both peering files).
const CABLES: [(&str, &str); 4] = [
    ("madrid-1", "lisbon-1"),
    ("lisbon-1", "sao-paulo-1"),
    ("madrid-1", "sao-paulo-1"),
    ("sao-paulo-1", "bogota-1"),
];

/// Links do not drop because the machine is busy; a closed link still goes down at once.
fn timing() -> LinkTiming {
    LinkTiming {
        idle_timeout: Duration::from_secs(10),
        rtt_report: Duration::from_millis(50),
        handshake_timeout: GUARD,
        ..LinkTiming::default()
    }
}

/// What every hub must agree on: hubs (id, jurisdiction, transit) and links by name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Graph {
    hubs: BTreeSet<(String, Jurisdiction, bool)>,
    links: BTreeSet<String>,
}

impl Graph {
    fn of(topology: &Topology) -> Self {
        let hubs = topology
            .hubs()
            .iter()
            .map(|hub| (hub.id.to_string(), hub.jurisdiction, hub.transit))
            .collect();
        let links = (0..topology.hub_count())
            .flat_map(|i| topology.neighbours(crate::topology::HubIndex::at(i)))
            .map(|&(_, link)| topology.link_name(link).to_string())
            .collect();
        Self { hubs, links }
    }

    /// The whole network, `no_transit` hubs marked, `cut` cables left out.
    fn expected(no_transit: &[&str], cut: &[(&str, &str)]) -> Self {
        let hubs = HUBS
            .iter()
            .map(|(id, code)| (id.to_string(), country(code), !no_transit.contains(id)))
            .collect();
        let links = CABLES
            .iter()
            .filter(|cable| !cut.contains(cable))
            .map(|(a, b)| {
                let (a, b) = if a < b { (a, b) } else { (b, a) };
                format!("{a}—{b} #1")
            })
            .collect();
        Self { hubs, links }
    }
}

/// The sites, certificates, sockets and peering files of the network.
struct Network {
    sites: BTreeMap<&'static str, Site>,
    certs: BTreeMap<&'static str, HubCert>,
    sockets: BTreeMap<&'static str, UdpSocket>,
    addresses: BTreeMap<&'static str, SocketAddr>,
}

impl Network {
    fn new() -> Self {
        let mut network = Self {
            sites: BTreeMap::new(),
            certs: BTreeMap::new(),
            sockets: BTreeMap::new(),
            addresses: BTreeMap::new(),
        };
        for (id, _) in HUBS {
            let site = Site::new(id);
            network.certs.insert(id, site.hub(id));
            network.sites.insert(id, site);
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            network.addresses.insert(id, socket.local_addr().unwrap());
            network.sockets.insert(id, socket);
        }
        network
    }

    fn code(id: &str) -> &'static str {
        HUBS.iter().find(|(hub, _)| *hub == id).unwrap().1
    }

    fn peers(&self, own: &str) -> Peers {
        let neighbours: Vec<_> = CABLES
            .iter()
            .filter_map(|&(a, b)| match () {
                _ if a == own => Some(b),
                _ if b == own => Some(a),
                _ => None,
            })
            .map(|peer| {
                (
                    peer,
                    Self::code(peer),
                    &self.sites[peer],
                    self.addresses[peer],
                )
            })
            .collect();
        peers_of(own, &neighbours)
    }

    /// Starts `id` on its reserved socket, or on a fresh one once that is used (a restart).
    fn start(&mut self, id: &'static str) -> RunningHub {
        let socket = self
            .sockets
            .remove(id)
            .unwrap_or_else(|| UdpSocket::bind("127.0.0.1:0").unwrap());
        RunningHub::start(id, socket, &self.certs[id], self.peers(id))
    }

    /// Every hub started, every cable up.
    async fn run(&mut self) -> BTreeMap<&'static str, RunningHub> {
        let hubs: BTreeMap<_, _> = HUBS.iter().map(|(id, _)| (*id, self.start(id))).collect();
        for (a, b) in CABLES {
            hubs[a].dial(b).await;
        }
        hubs
    }
}

/// A hub running: its endpoint, its flooding, and a task admitting the links it is dialed on.
struct RunningHub {
    id: &'static str,
    endpoint: Arc<LinkEndpoint>,
    flooding: Arc<FloodingHandle>,
    acceptor: JoinHandle<()>,
}

impl RunningHub {
    fn start(id: &'static str, socket: UdpSocket, cert: &HubCert, peers: Peers) -> Self {
        let (endpoint, events) =
            LinkEndpoint::on_socket(socket, cert.identity().clone(), peers.clone(), timing())
                .unwrap();
        let flooding = Flooding::new(
            cert.identity().clone(),
            country(Network::code(id)),
            &peers,
            FloodingSettings::default(),
            SystemTime::now(),
        )
        .unwrap();
        let endpoint = Arc::new(endpoint);
        let flooding = Arc::new(FloodingHandle::spawn(flooding, events));
        let acceptor = {
            let (endpoint, flooding) = (Arc::clone(&endpoint), Arc::clone(&flooding));
            tokio::spawn(async move {
                while let Some(incoming) = endpoint.accept().await {
                    let flooding = Arc::clone(&flooding);
                    tokio::spawn(async move {
                        if let Ok(link) = incoming.admit().await {
                            let _ = flooding.add_link(link).await;
                        }
                    });
                }
            })
        };
        Self {
            id,
            endpoint,
            flooding,
            acceptor,
        }
    }

    /// Dials link 1 to `peer` and hands it to flooding.
    async fn dial(&self, peer: &str) {
        let link: Link = guarded(self.endpoint.dial(&hub(peer), LinkId::new(1).unwrap()))
            .await
            .unwrap_or_else(|error| panic!("{} cannot dial {peer}: {error}", self.id));
        self.flooding.add_link(link).await.unwrap();
    }

    async fn view(&self) -> ControlPlaneView {
        self.flooding.view().await.unwrap()
    }

    /// Stops the hub: its links close, its endpoint goes away.
    async fn stop(self) {
        self.acceptor.abort();
        let _ = self.acceptor.await;
        self.endpoint.close();
        let flooding = Arc::try_unwrap(self.flooding).expect("only the hub holds its flooding");
        flooding.stop().await;
        guarded(self.endpoint.wait_idle()).await;
    }
}

/// Waits until every hub's view satisfies `holds`; returns the views.
async fn until(
    hubs: &BTreeMap<&'static str, RunningHub>,
    what: &str,
    holds: impl Fn(&str, &ControlPlaneView) -> bool,
) -> BTreeMap<&'static str, ControlPlaneView> {
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let mut views = BTreeMap::new();
        for (id, running) in hubs {
            views.insert(*id, running.view().await);
        }
        if views.iter().all(|(id, view)| holds(id, view)) {
            return views;
        }
        if tokio::time::Instant::now() > deadline {
            let graphs: BTreeMap<_, _> = views
                .iter()
                .map(|(id, view)| (*id, (Graph::of(&view.topology), &view.counters)))
                .collect();
            panic!("never true: {what}\n{graphs:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `view` holds an advertisement of `a` (its own or received) that lists a link to `b`.
fn advertises_link(view: &ControlPlaneView, a: &str, b: &str) -> bool {
    let advertisement = if view.own.origin() == &hub(a) {
        &view.own
    } else {
        match view.advertisements.get(&hub(a)) {
            Some(advertisement) => advertisement,
            None => return false,
        }
    };
    advertisement
        .links()
        .iter()
        .any(|link| link.neighbour == hub(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hubs_converge_and_a_hub_two_sites_away_is_trusted_through_a_voucher() {
    let mut network = Network::new();
    let hubs = network.run().await;
    let all = Graph::expected(&[], &[]);
    let views = until(&hubs, "every hub sees the whole network", |_, view| {
        Graph::of(&view.topology) == all
    })
    .await;
    for id in ["madrid-1", "lisbon-1"] {
        assert_eq!(
            views[id].trusted.get(&hub("bogota-1")),
            Some(&TrustPath::Vouched {
                by: hub("sao-paulo-1")
            }),
            "{id}"
        );
        assert_eq!(
            views[id].trusted.get(&hub("sao-paulo-1")),
            Some(&TrustPath::Peer)
        );
    }
    assert_eq!(
        views["bogota-1"].trusted.get(&hub("lisbon-1")),
        Some(&TrustPath::Vouched {
            by: hub("sao-paulo-1")
        })
    );
    for (id, view) in &views {
        assert_eq!(view.trusted.len(), 3, "{id} trusts every other hub");
        assert_eq!(view.counters.malformed, BTreeMap::new(), "{id}");
        // (`stale` is not among them: an older copy may arrive late over a longer path.)
        for reason in ["bad_signature", "wrong_root", "invalid_chain", "replayed"] {
            assert_eq!(view.counters.rejected(reason), 0, "{id}: {reason}");
        }
    }
    // Every latency measured on loopback is advertised as at least 1 µs and far below a second.
    for link in views["madrid-1"].own.links() {
        assert!(link.latency < Latency::from_millis(1000), "{link:?}");
    }

    // Lisbon withdraws transit (site lockdown): everyone sees it, and nothing else changes.
    hubs["lisbon-1"].flooding.set_transit(false).await.unwrap();
    let lockdown = Graph::expected(&["lisbon-1"], &[]);
    until(
        &hubs,
        "everyone sees lisbon-1 without transit",
        |_, view| Graph::of(&view.topology) == lockdown,
    )
    .await;
    hubs["lisbon-1"].flooding.set_transit(true).await.unwrap();
    until(
        &hubs,
        "everyone sees lisbon-1 offer transit again",
        |_, view| Graph::of(&view.topology) == all,
    )
    .await;
    for (_, running) in hubs {
        running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_link_leaves_every_hubs_view() {
    let mut network = Network::new();
    let hubs = network.run().await;
    let all = Graph::expected(&[], &[]);
    until(&hubs, "every hub sees the whole network", |_, view| {
        Graph::of(&view.topology) == all
    })
    .await;
    hubs["lisbon-1"]
        .flooding
        .close_link(link_key("sao-paulo-1", 1))
        .await
        .unwrap();
    let cut = Graph::expected(&[], &[("lisbon-1", "sao-paulo-1")]);
    let views = until(
        &hubs,
        "both ends re-advertise without the link, everywhere",
        |_, view| {
            Graph::of(&view.topology) == cut
                && !advertises_link(view, "lisbon-1", "sao-paulo-1")
                && !advertises_link(view, "sao-paulo-1", "lisbon-1")
        },
    )
    .await;
    // The rest of what each end advertises is intact.
    for view in views.values() {
        assert!(advertises_link(view, "lisbon-1", "madrid-1"));
        assert!(advertises_link(view, "sao-paulo-1", "bogota-1"));
    }
    for (_, running) in hubs {
        running.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_rejoins_and_everyone_converges() {
    let mut network = Network::new();
    let mut hubs = network.run().await;
    let all = Graph::expected(&[], &[]);
    let views = until(&hubs, "every hub sees the whole network", |_, view| {
        Graph::of(&view.topology) == all
    })
    .await;
    let before = views["lisbon-1"].own.sequence();

    // Lisbon stops; its peers see its links go and re-advertise without them.
    hubs.remove("lisbon-1").unwrap().stop().await;
    let without = Graph::expected(
        &[],
        &[("madrid-1", "lisbon-1"), ("lisbon-1", "sao-paulo-1")],
    );
    until(&hubs, "lisbon-1's links are gone", |_, view| {
        let graph = Graph::of(&view.topology);
        graph.links == without.links
            && !advertises_link(view, "madrid-1", "lisbon-1")
            && !advertises_link(view, "sao-paulo-1", "lisbon-1")
    })
    .await;

    // Lisbon comes back with the same identity and no state, on a new port, and dials out.
    let lisbon = network.start("lisbon-1");
    lisbon.dial("madrid-1").await;
    lisbon.dial("sao-paulo-1").await;
    hubs.insert("lisbon-1", lisbon);
    let views = until(&hubs, "everyone converges again", |_, view| {
        Graph::of(&view.topology) == all
            && (view.own.origin() == &hub("lisbon-1")
                || view
                    .advertisements
                    .get(&hub("lisbon-1"))
                    .is_some_and(|a| a.sequence() > before))
    })
    .await;
    assert!(views["lisbon-1"].own.sequence() > before);
    assert_eq!(views["lisbon-1"].trusted.len(), 3);
    for (_, running) in hubs {
        running.stop().await;
    }
}

/// Madrid runs flooding; its peer Lisbon is played by the test, which holds the link itself
/// and sends what it likes on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_advertisements_are_refused_counted_and_change_nothing() {
    let madrid_site = Site::new("madrid");
    let lisbon_site = Site::new("lisbon");
    let (madrid_cert, lisbon_cert) = (madrid_site.hub("madrid-1"), lisbon_site.hub("lisbon-1"));
    let madrid_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let madrid_address = madrid_socket.local_addr().unwrap();
    let lisbon_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let lisbon_address = lisbon_socket.local_addr().unwrap();
    let madrid_peers = peers_of(
        "madrid-1",
        &[("lisbon-1", "PT", &lisbon_site, lisbon_address)],
    );
    let lisbon_peers = peers_of(
        "lisbon-1",
        &[("madrid-1", "ES", &madrid_site, madrid_address)],
    );
    let madrid = RunningHub::start("madrid-1", madrid_socket, &madrid_cert, madrid_peers);
    let madrid_hubs = BTreeMap::from([("madrid-1", madrid)]);
    let (lisbon, _events) = LinkEndpoint::on_socket(
        lisbon_socket,
        lisbon_cert.identity().clone(),
        lisbon_peers,
        timing(),
    )
    .unwrap();
    let mut link = guarded(lisbon.dial(&hub("madrid-1"), LinkId::new(1).unwrap()))
        .await
        .unwrap();

    // On the link coming up, Madrid sends its advertisement, now listing the link.
    let first = advertisement_of(&guarded(link.recv_frame()).await.unwrap());
    assert_eq!(first.advertisement().origin(), &hub("madrid-1"));
    assert!(
        first
            .advertisement()
            .links()
            .iter()
            .any(|l| l.neighbour == hub("lisbon-1"))
    );

    let draft = |sequence| {
        Draft::new("lisbon-1", "PT")
            .sequence(sequence)
            .link("madrid-1", 1, 1)
            .vouch("madrid-1", madrid_site.fingerprint())
            .build()
    };
    let send = async |link: &mut Link, signed: &SignedAdvertisement| {
        let frame = ControlMessage::Advertisement(signed.clone()).encode();
        guarded(link.send_frame(&frame)).await.unwrap();
    };
    let lisbon_sequence = |view: &ControlPlaneView| {
        view.advertisements
            .get(&hub("lisbon-1"))
            .map(|advertisement| advertisement.sequence())
    };

    let ten = lisbon_cert.sign(draft(10));
    send(&mut link, &ten).await;
    let views = until(&madrid_hubs, "lisbon-1's sequence 10 is held", |_, view| {
        lisbon_sequence(view) == Some(10) && view.topology.link_count() == 1
    })
    .await;
    let held = views["madrid-1"].advertisements.clone();

    // Forged: Lisbon's chain, signed by another key of Lisbon's site.
    let content = draft(11);
    let signature = sign_bytes(&lisbon_site.hub("lisbon-1"), &content.signed_message());
    let forged = SignedAdvertisement::from_parts(content, lisbon_cert.chain().to_vec(), signature);
    send(&mut link, &forged).await;
    let views = until(&madrid_hubs, "the forgery is counted", |_, view| {
        view.counters.rejected("bad_signature") == 1
    })
    .await;
    assert_eq!(views["madrid-1"].advertisements, held, "nothing changed");

    // Junk on the link: counted as malformed, the link stays up.
    guarded(link.send_frame(&[7, 7, 7])).await.unwrap();
    until(&madrid_hubs, "the junk is counted", |_, view| {
        view.counters.malformed("unknown_kind") == 1
    })
    .await;

    let twenty = lisbon_cert.sign(draft(20));
    send(&mut link, &twenty).await;
    until(&madrid_hubs, "lisbon-1's sequence 20 is held", |_, view| {
        lisbon_sequence(view) == Some(20)
    })
    .await;
    // Replayed: the genuine sequence 10, sent again.
    send(&mut link, &ten).await;
    let views = until(&madrid_hubs, "the replay is refused as stale", |_, view| {
        view.counters.rejected("stale") == 1
    })
    .await;
    assert_eq!(lisbon_sequence(&views["madrid-1"]), Some(20));
    // The very sequence held, sent again: a duplicate, not a refusal.
    send(&mut link, &twenty).await;
    let views = until(&madrid_hubs, "the copy is a duplicate", |_, view| {
        view.counters.duplicates == 1
    })
    .await;
    let counters = &views["madrid-1"].counters;
    assert_eq!(counters.accepted, 2);
    assert_eq!(
        counters.rejected,
        BTreeMap::from([("bad_signature", 1), ("stale", 1)])
    );
    assert_eq!(lisbon_sequence(&views["madrid-1"]), Some(20));
    assert_eq!(views["madrid-1"].links.len(), 1, "the link stayed up");

    lisbon.close();
    for (_, running) in madrid_hubs {
        running.stop().await;
    }
}
