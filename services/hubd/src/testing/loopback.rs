//! Hubs on loopback, each of its own site and country, with real link endpoints on
//! `127.0.0.1:0` and real QUIC links between them: the scaffolding for tests of what runs over
//! links. Nothing is timed: [`guarded`] only keeps a broken test from hanging.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use super::{HubCert, Site, country, hub};
use crate::grant::Grant;
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::LinkId;
use crate::links::{Link, LinkEndpoint, LinkEvents, LinkKey, LinkTiming};
use crate::peering::{PeerLink, PeeringAgreement, Peers};

/// Long enough for anything on a loaded machine (flooding over four hubs included); only a
/// guard against hanging.
pub const GUARD: Duration = Duration::from_secs(60);

/// `work`, or a panic after [`GUARD`].
pub async fn guarded<T>(work: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, work)
        .await
        .expect("the test hung")
}

/// Links that do not drop because the machine is busy; a closed link still goes down at once.
pub fn patient() -> LinkTiming {
    LinkTiming {
        idle_timeout: Duration::from_secs(10),
        handshake_timeout: GUARD,
        ..LinkTiming::default()
    }
}

/// The key of link `id` to `peer`.
pub fn link_key(peer: &str, id: u16) -> LinkKey {
    LinkKey {
        peer: hub(peer),
        link: LinkId::new(id).unwrap(),
    }
}

/// One hub of the network: its site, certificate, agreements, endpoint and links up.
pub struct LoopbackHub {
    /// Its jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// Its own site.
    pub site: Site,
    /// Its hub certificate under that site.
    pub cert: HubCert,
    /// Its peering agreements.
    pub peers: Peers,
    /// Its endpoint.
    pub endpoint: LinkEndpoint,
    /// Its links up, by key.
    pub links: BTreeMap<LinkKey, Link>,
    _events: LinkEvents,
}

/// A network to build: hubs, cables between them (one per pair), and transit grants.
#[derive(Default)]
pub struct Loopback {
    hubs: Vec<(&'static str, &'static str)>,
    cables: Vec<(&'static str, &'static str, u16)>,
    transit_grants: Vec<(&'static str, &'static str)>,
}

impl Loopback {
    /// Hub `id` in country `code`, of its own site.
    pub fn hub(mut self, id: &'static str, code: &'static str) -> Self {
        self.hubs.push((id, code));
        self
    }

    /// A cable between `dialer` and `acceptor`, link number `id` in both peering files.
    pub fn cable(mut self, dialer: &'static str, acceptor: &'static str, id: u16) -> Self {
        self.cables.push((dialer, acceptor, id));
        self
    }

    /// `by` grants `to` transit through it (in `by`'s agreement with `to`).
    pub fn grant_transit(mut self, by: &'static str, to: &'static str) -> Self {
        self.transit_grants.push((by, to));
        self
    }

    /// Every hub on its endpoint, every cable up as a link.
    pub async fn start(self, timing: LinkTiming) -> BTreeMap<&'static str, LoopbackHub> {
        let mut sockets: BTreeMap<_, _> = self
            .hubs
            .iter()
            .map(|&(id, _)| (id, UdpSocket::bind("127.0.0.1:0").unwrap()))
            .collect();
        let addresses: BTreeMap<_, SocketAddr> = sockets
            .iter()
            .map(|(id, socket)| (*id, socket.local_addr().unwrap()))
            .collect();
        let mut sites: BTreeMap<_, _> = self
            .hubs
            .iter()
            .map(|&(id, _)| (id, Site::new(id)))
            .collect();
        let all_peers: BTreeMap<_, _> = self
            .hubs
            .iter()
            .map(|&(id, _)| (id, self.peers_of(id, &sites, &addresses)))
            .collect();
        let mut hubs = BTreeMap::new();
        for (id, peers) in all_peers {
            let site = sites.remove(id).unwrap();
            let cert = site.hub(id);
            let (endpoint, events) = LinkEndpoint::on_socket(
                sockets.remove(id).unwrap(),
                cert.identity().clone(),
                peers.clone(),
                timing,
            )
            .unwrap();
            let loopback_hub = LoopbackHub {
                jurisdiction: country(self.code(id)),
                site,
                cert,
                peers,
                endpoint,
                links: BTreeMap::new(),
                _events: events,
            };
            hubs.insert(id, loopback_hub);
        }
        for &(dialer, acceptor, number) in &self.cables {
            connect(&mut hubs, dialer, acceptor, number).await;
        }
        hubs
    }

    fn code(&self, id: &str) -> &'static str {
        self.hubs.iter().find(|(hub, _)| *hub == id).unwrap().1
    }

    /// The agreements of `id`: one per cable, granting transit as asked.
    fn peers_of(
        &self,
        id: &'static str,
        sites: &BTreeMap<&'static str, Site>,
        addresses: &BTreeMap<&'static str, SocketAddr>,
    ) -> Peers {
        let mut peers = Peers::new(hub(id));
        for (peer, number) in self.neighbours(id) {
            let grant = Grant {
                transit: self.transit_grants.contains(&(id, peer)),
                ..Grant::default()
            };
            let links = vec![PeerLink {
                id: LinkId::new(number).unwrap(),
                address: addresses[peer],
            }];
            let agreement = PeeringAgreement::new(
                hub(peer),
                country(self.code(peer)),
                links,
                sites[peer].pinned(),
                grant,
            );
            peers.add(agreement.unwrap()).unwrap();
        }
        peers
    }

    /// The hubs `id` has a cable to, with the link number.
    fn neighbours(&self, id: &str) -> Vec<(&'static str, u16)> {
        self.cables
            .iter()
            .filter_map(|&(a, b, number)| match () {
                _ if a == id => Some((b, number)),
                _ if b == id => Some((a, number)),
                _ => None,
            })
            .collect()
    }
}

/// Dials link `number` from `dialer` to `acceptor` and admits it there, at once.
async fn connect(
    hubs: &mut BTreeMap<&'static str, LoopbackHub>,
    dialer: &'static str,
    acceptor: &'static str,
    number: u16,
) {
    let peer = hub(acceptor);
    let (dialed, accepted) = guarded(async {
        tokio::join!(
            hubs[dialer]
                .endpoint
                .dial(&peer, LinkId::new(number).unwrap()),
            async {
                let incoming = hubs[acceptor]
                    .endpoint
                    .accept()
                    .await
                    .expect("endpoint open");
                incoming.admit().await
            }
        )
    })
    .await;
    let (dialed, accepted) = (dialed.unwrap(), accepted.unwrap());
    let dialer_hub = hubs.get_mut(dialer).unwrap();
    dialer_hub.links.insert(dialed.key().clone(), dialed);
    let acceptor_hub = hubs.get_mut(acceptor).unwrap();
    acceptor_hub.links.insert(accepted.key().clone(), accepted);
}

/// Every hub's chain (hub certificate, site root) and jurisdiction: what a control plane that
/// trusts them all holds.
pub fn vouching_for_all(
    hubs: &BTreeMap<&'static str, LoopbackHub>,
) -> (
    BTreeMap<HubId, Vec<CertificateDer<'static>>>,
    BTreeMap<HubId, Jurisdiction>,
) {
    let chains = hubs
        .iter()
        .map(|(id, running)| (hub(id), running.cert.chain().to_vec()))
        .collect();
    let jurisdictions = hubs
        .iter()
        .map(|(id, running)| (hub(id), running.jurisdiction))
        .collect();
    (chains, jurisdictions)
}
