//! Links over loopback: two hubs of different sites, each with its own site root and hub
//! certificates made here, on ephemeral ports. Nothing is timed: a bounded wait only keeps a
//! broken test from hanging.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;

use super::*;
use crate::grant::Grant;
use crate::peering::{PeerLink, PeeringAgreement, Peers};
use crate::testing::loopback::{guarded, link_key};
use crate::testing::{HubCert, Site, country, hub};

/// Timing for tests that must not see a link drop because the machine is busy.
fn patient() -> LinkTiming {
    LinkTiming {
        idle_timeout: Duration::from_secs(5),
        rtt_report: Duration::from_millis(20),
        handshake_timeout: Duration::from_secs(60),
        ..LinkTiming::default()
    }
}

fn link(id: u16) -> LinkId {
    LinkId::new(id).unwrap()
}

fn socket() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    (socket, address)
}

fn agreement(peer: &str, code: &str, site: &Site, links: &[(u16, SocketAddr)]) -> PeeringAgreement {
    let links = links
        .iter()
        .map(|&(id, address)| PeerLink {
            id: link(id),
            address,
        })
        .collect();
    PeeringAgreement::new(
        hub(peer),
        country(code),
        links,
        site.pinned(),
        Grant::default(),
    )
    .unwrap()
}

fn peers(own: &str, agreements: Vec<PeeringAgreement>) -> Peers {
    let mut peers = Peers::new(hub(own));
    for agreement in agreements {
        peers.add(agreement).unwrap();
    }
    peers
}

fn endpoint(
    socket: UdpSocket,
    cert: &HubCert,
    peers: Peers,
    timing: LinkTiming,
) -> (LinkEndpoint, LinkEvents) {
    LinkEndpoint::on_socket(socket, cert.identity().clone(), peers, timing).unwrap()
}

/// The first event about `key` that `wanted` accepts, skipping others.
async fn event(
    events: &mut LinkEvents,
    key: &LinkKey,
    wanted: impl Fn(&LinkEvent) -> bool,
) -> LinkEvent {
    guarded(async {
        loop {
            let event = events.next().await.expect("events ended");
            if event.key() == key && wanted(&event) {
                return event;
            }
        }
    })
    .await
}

/// Dials from `dialer` and accepts on `acceptor` at once.
async fn connect(
    dialer: &LinkEndpoint,
    peer: &str,
    id: u16,
    acceptor: &LinkEndpoint,
) -> (Result<Link, LinkError>, Result<Link, LinkError>) {
    let peer = hub(peer);
    guarded(async {
        tokio::join!(dialer.dial(&peer, link(id)), async {
            acceptor
                .accept()
                .await
                .expect("endpoint open")
                .admit()
                .await
        })
    })
    .await
}

/// Madrid (ES, its own site) and Lisbon (PT, its own site), peers over two links. Each hub has
/// its endpoint's address and a second one, held but unused, so each link has its own address
/// as peering agreements require: Madrid is reached at its endpoint on link 2, Lisbon at its
/// endpoint on link 1.
struct Pair {
    madrid: Site,
    lisbon: Site,
    madrid_socket: Option<UdpSocket>,
    lisbon_socket: Option<UdpSocket>,
    madrid_address: SocketAddr,
    lisbon_address: SocketAddr,
    _spares: [UdpSocket; 2],
    madrid_spare: SocketAddr,
    lisbon_spare: SocketAddr,
}

impl Pair {
    fn new() -> Self {
        let (madrid_socket, madrid_address) = socket();
        let (lisbon_socket, lisbon_address) = socket();
        let (madrid_spare_socket, madrid_spare) = socket();
        let (lisbon_spare_socket, lisbon_spare) = socket();
        Self {
            _spares: [madrid_spare_socket, lisbon_spare_socket],
            madrid_spare,
            lisbon_spare,
            madrid: Site::new("madrid"),
            lisbon: Site::new("lisbon"),
            madrid_socket: Some(madrid_socket),
            lisbon_socket: Some(lisbon_socket),
            madrid_address,
            lisbon_address,
        }
    }

    /// Madrid's endpoint, presenting `cert`, with Lisbon as its peer on links 1 and 2.
    fn madrid(&mut self, cert: &HubCert, timing: LinkTiming) -> (LinkEndpoint, LinkEvents) {
        let lisbon = agreement(
            "lisbon-1",
            "PT",
            &self.lisbon,
            &[(1, self.lisbon_address), (2, self.lisbon_spare)],
        );
        let socket = self.madrid_socket.take().unwrap();
        endpoint(socket, cert, peers("madrid-1", vec![lisbon]), timing)
    }

    /// Lisbon's endpoint, presenting `cert`, with Madrid as its peer on links 1 and 2.
    fn lisbon(&mut self, cert: &HubCert, timing: LinkTiming) -> (LinkEndpoint, LinkEvents) {
        let madrid = agreement(
            "madrid-1",
            "ES",
            &self.madrid,
            &[(1, self.madrid_spare), (2, self.madrid_address)],
        );
        let socket = self.lisbon_socket.take().unwrap();
        endpoint(socket, cert, peers("lisbon-1", vec![madrid]), timing)
    }
}

#[tokio::test]
async fn links_come_up_both_ways_and_report_their_rtt() {
    let mut pair = Pair::new();
    let (madrid, mut madrid_events) = pair.madrid(&pair.madrid.hub("madrid-1"), patient());
    let (lisbon, mut lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), patient());

    // Madrid dials link 1, Lisbon dials link 2: two connections between the same two hubs.
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    let (mut madrid_1, mut lisbon_1) = (dialed.unwrap(), accepted.unwrap());
    assert_eq!(madrid_1.key(), &link_key("lisbon-1", 1));
    assert_eq!(lisbon_1.key(), &link_key("madrid-1", 1));
    let (dialed, accepted) = connect(&lisbon, "madrid-1", 2, &madrid).await;
    let (lisbon_2, madrid_2) = (dialed.unwrap(), accepted.unwrap());
    assert_eq!(lisbon_2.key(), &link_key("madrid-1", 2));
    assert_eq!(madrid_2.key(), &link_key("lisbon-1", 2));
    assert_eq!(madrid_1.remote_address(), pair.lisbon_address);

    for (events, peer) in [
        (&mut madrid_events, "lisbon-1"),
        (&mut lisbon_events, "madrid-1"),
    ] {
        // Each link reports Up, then RTT estimates; events of the two links interleave.
        let mut up = Vec::new();
        let mut measured = Vec::new();
        guarded(async {
            while measured.len() < 2 {
                match events.next().await.expect("events ended") {
                    LinkEvent::Up { key, .. } => up.push(key),
                    LinkEvent::Rtt { key, rtt } => {
                        assert!(up.contains(&key), "RTT of {key} before it was up");
                        assert!(rtt > Duration::ZERO);
                        if !measured.contains(&key) {
                            measured.push(key);
                        }
                    }
                    down => panic!("{down:?}"),
                }
            }
        })
        .await;
        measured.sort();
        assert_eq!(measured, [link_key(peer, 1), link_key(peer, 2)]);
    }

    // Frames cross in both directions on the control stream.
    guarded(madrid_1.send_frame(b"advertisement from madrid-1"))
        .await
        .unwrap();
    assert_eq!(
        guarded(lisbon_1.recv_frame()).await.unwrap(),
        b"advertisement from madrid-1"
    );
    guarded(lisbon_1.send_frame(b"and back")).await.unwrap();
    assert_eq!(guarded(madrid_1.recv_frame()).await.unwrap(), b"and back");
}

#[tokio::test]
async fn a_server_with_another_sites_certificate_is_refused() {
    let mut pair = Pair::new();
    let rome = Site::new("rome");
    let (madrid, _madrid_events) = pair.madrid(&pair.madrid.hub("madrid-1"), patient());
    // Lisbon's hub id, but certified by Rome's root, not the root Madrid pinned for Lisbon.
    let (lisbon, _lisbon_events) = pair.lisbon(&rome.hub("lisbon-1"), patient());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    assert_eq!(dialed.unwrap_err().refusal(), Some(&LinkRefusal::WrongRoot));
    let refusal = accepted.unwrap_err();
    assert!(
        matches!(refusal.refusal(), Some(LinkRefusal::RefusedByPeer(_))),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn a_client_with_another_sites_certificate_is_refused() {
    let mut pair = Pair::new();
    let rome = Site::new("rome");
    // Madrid's hub id, certified by Rome's root, which Lisbon pinned for no one.
    let (madrid, _madrid_events) = pair.madrid(&rome.hub("madrid-1"), patient());
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), patient());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    assert_eq!(
        accepted.unwrap_err().refusal(),
        Some(&LinkRefusal::WrongRoot)
    );
    assert!(dialed.is_err());
}

#[tokio::test]
async fn a_root_pinned_for_one_peer_does_not_vouch_for_another() {
    // Lisbon peers with Madrid and Rome. A certificate from Rome's root naming madrid-1 passes
    // TLS (Rome's root is pinned) but is not from the root pinned for madrid-1.
    let madrid_site = Site::new("madrid");
    let lisbon_site = Site::new("lisbon");
    let rome_site = Site::new("rome");
    let (madrid_socket, madrid_address) = socket();
    let (lisbon_socket, lisbon_address) = socket();
    let lisbon_peers = peers(
        "lisbon-1",
        vec![
            agreement("madrid-1", "ES", &madrid_site, &[(1, madrid_address)]),
            agreement(
                "rome-1",
                "IT",
                &rome_site,
                &[(1, "127.0.0.1:9".parse().unwrap())],
            ),
        ],
    );
    let (lisbon, _lisbon_events) = endpoint(
        lisbon_socket,
        &lisbon_site.hub("lisbon-1"),
        lisbon_peers,
        patient(),
    );
    let madrid_peers = peers(
        "madrid-1",
        vec![agreement(
            "lisbon-1",
            "PT",
            &lisbon_site,
            &[(1, lisbon_address)],
        )],
    );
    let (impostor, _events) = endpoint(
        madrid_socket,
        &rome_site.hub("madrid-1"),
        madrid_peers,
        patient(),
    );
    let (dialed, accepted) = connect(&impostor, "lisbon-1", 1, &lisbon).await;
    assert_eq!(
        accepted.unwrap_err().refusal(),
        Some(&LinkRefusal::WrongRoot)
    );
    assert_eq!(
        dialed.unwrap_err().refusal(),
        Some(&LinkRefusal::RefusedByPeer("wrong_root".into()))
    );
}

#[tokio::test]
async fn another_hub_of_the_right_site_is_refused() {
    let mut pair = Pair::new();
    let (madrid, _madrid_events) = pair.madrid(&pair.madrid.hub("madrid-1"), patient());
    // The right site's root, but the certificate of lisbon-2, not lisbon-1.
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-2"), patient());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    assert_eq!(
        dialed.unwrap_err().refusal(),
        Some(&LinkRefusal::HubIdMismatch {
            expected: hub("lisbon-1"),
            presented: hub("lisbon-2"),
        })
    );
    assert!(accepted.is_err());
}

#[tokio::test]
async fn a_server_certificate_that_names_no_hub_is_refused() {
    let mut pair = Pair::new();
    let (madrid, _madrid_events) = pair.madrid(&pair.madrid.hub("madrid-1"), patient());
    // Lisbon's own root, but a service certificate, not a hub certificate.
    let service = pair
        .lisbon
        .hub_with_names("records", &["records.lisbon.bunker.test"]);
    let (lisbon, _lisbon_events) = pair.lisbon(&service, patient());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    let refusal = dialed.unwrap_err();
    assert!(
        matches!(
            refusal.refusal(),
            Some(LinkRefusal::NotAHubCertificate(
                crate::hub_certificate::CertificateError::NotAHubName(_)
            ))
        ),
        "{refusal:?}"
    );
    assert!(accepted.is_err());
}

#[tokio::test]
async fn a_client_hub_without_a_peering_agreement_is_refused() {
    let mut pair = Pair::new();
    // madrid-2 of Madrid's site: the right root, but Lisbon's agreement is with madrid-1.
    let (madrid, _madrid_events) = pair.madrid(&pair.madrid.hub("madrid-2"), patient());
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), patient());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    assert_eq!(
        accepted.unwrap_err().refusal(),
        Some(&LinkRefusal::UnknownPeer(hub("madrid-2")))
    );
    assert_eq!(
        dialed.unwrap_err().refusal(),
        Some(&LinkRefusal::RefusedByPeer("unknown_peer".into()))
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let mut pair = Pair::new();
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), patient());
    // A client that trusts Lisbon properly but presents no certificate of its own.
    let verifier =
        peer_verifier::HubServerVerifier::new(pair.lisbon.root().clone(), hub("lisbon-1"));
    let mut tls = rustls::ClientConfig::builder_with_provider(appliance::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![LINK_ALPN.to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connecting = client
        .connect_with(config, pair.lisbon_address, "lisbon-1")
        .unwrap();
    let (accepted, _client) = guarded(async {
        tokio::join!(
            async { lisbon.accept().await.expect("endpoint open").admit().await },
            async {
                // The client may see its handshake complete before the server refuses it.
                if let Ok(connection) = connecting.await {
                    connection.closed().await;
                }
            }
        )
    })
    .await;
    assert_eq!(
        accepted.unwrap_err().refusal(),
        Some(&LinkRefusal::NoCertificate)
    );
}

#[tokio::test]
async fn a_peer_that_stalls_its_hello_delays_only_itself() {
    let mut pair = Pair::new();
    let madrid_1 = pair.madrid.hub("madrid-1");
    let (madrid, _madrid_events) = pair.madrid(&madrid_1, patient());
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), patient());
    // Madrid's own certificate, but a client that completes TLS and never sends the hello.
    let verifier =
        peer_verifier::HubServerVerifier::new(pair.lisbon.root().clone(), hub("lisbon-1"));
    let mut tls =
        appliance::tls::client_config(madrid_1.identity(), &pair.lisbon.pinned()).unwrap();
    tls.dangerous().set_certificate_verifier(Arc::new(verifier));
    tls.alpn_protocols = vec![LINK_ALPN.to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let staller = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let stalled = guarded(async {
        let connecting = staller
            .connect_with(config, pair.lisbon_address, "lisbon-1")
            .unwrap();
        let knocking = lisbon.accept().await.expect("endpoint open");
        let admission = tokio::spawn(knocking.admit());
        (connecting.await.unwrap(), admission)
    })
    .await;
    // While that admission waits, a real link comes up on the same endpoint.
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    assert_eq!(accepted.unwrap().key(), &link_key("madrid-1", 1));
    assert_eq!(dialed.unwrap().key(), &link_key("lisbon-1", 1));
    assert!(!stalled.1.is_finished());
    stalled.0.close(quinn::VarInt::from_u32(0), b"done");
    let refused = guarded(stalled.1).await.unwrap();
    assert!(refused.is_err());
}

#[tokio::test]
async fn a_link_number_outside_the_agreement_is_refused() {
    let mut pair = Pair::new();
    let lisbon_agreement = agreement("lisbon-1", "PT", &pair.lisbon, &[(9, pair.lisbon_address)]);
    let (madrid, _madrid_events) = endpoint(
        pair.madrid_socket.take().unwrap(),
        &pair.madrid.hub("madrid-1"),
        peers("madrid-1", vec![lisbon_agreement]),
        patient(),
    );
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), patient());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 9, &lisbon).await;
    assert_eq!(
        accepted.unwrap_err().refusal(),
        Some(&LinkRefusal::UnknownLink {
            peer: hub("madrid-1"),
            link: 9
        })
    );
    assert_eq!(
        dialed.unwrap_err().refusal(),
        Some(&LinkRefusal::RefusedByPeer("unknown_link".into()))
    );
    // Dialing what no agreement lists does not even start a connection.
    assert!(matches!(
        madrid.dial(&hub("lisbon-1"), link(1)).await,
        Err(LinkError::NotALink { .. })
    ));
    assert!(matches!(
        madrid.dial(&hub("paris-1"), link(1)).await,
        Err(LinkError::NotAPeer(_))
    ));
}

#[tokio::test]
async fn a_link_goes_down_when_the_peer_endpoint_closes() {
    let mut pair = Pair::new();
    let (madrid, mut madrid_events) =
        pair.madrid(&pair.madrid.hub("madrid-1"), LinkTiming::default());
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), LinkTiming::default());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    let (_madrid_1, _lisbon_1) = (dialed.unwrap(), accepted.unwrap());
    let lisbon_1 = link_key("lisbon-1", 1);
    event(&mut madrid_events, &lisbon_1, |e| {
        matches!(e, LinkEvent::Up { .. })
    })
    .await;
    lisbon.close();
    let down = event(&mut madrid_events, &lisbon_1, |e| {
        matches!(e, LinkEvent::Down { .. })
    })
    .await;
    assert_eq!(
        down,
        LinkEvent::Down {
            key: lisbon_1,
            reason: DownReason::ClosedByPeer("hub stopping".into())
        }
    );
}

/// A UDP relay on loopback between a dialer and a peer; `cut` drops everything, like a cable
/// cut or a peer that died without a word.
struct Relay {
    address: SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Relay {
    async fn start(peer: SocketAddr) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let address = socket.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let cut_flag = Arc::clone(&cut);
        tokio::spawn(async move {
            let mut dialer = None;
            let mut buffer = vec![0u8; 65536];
            while let Ok((len, from)) = socket.recv_from(&mut buffer).await {
                if cut_flag.load(Ordering::SeqCst) {
                    continue;
                }
                let to = if from == peer {
                    match dialer {
                        Some(dialer) => dialer,
                        None => continue,
                    }
                } else {
                    dialer = Some(from);
                    peer
                };
                let _ = socket.send_to(&buffer[..len], to).await;
            }
        });
        Self { address, cut }
    }
}

#[tokio::test]
async fn a_silent_peer_is_declared_down_by_the_idle_timeout() {
    let mut pair = Pair::new();
    let relay = Relay::start(pair.lisbon_address).await;
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), LinkTiming::default());
    let through_relay = agreement("lisbon-1", "PT", &pair.lisbon, &[(1, relay.address)]);
    let (madrid, mut madrid_events) = endpoint(
        pair.madrid_socket.take().unwrap(),
        &pair.madrid.hub("madrid-1"),
        peers("madrid-1", vec![through_relay]),
        LinkTiming::default(),
    );
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    let (_madrid_1, _lisbon_1) = (dialed.unwrap(), accepted.unwrap());
    let lisbon_1 = link_key("lisbon-1", 1);
    event(&mut madrid_events, &lisbon_1, |e| {
        matches!(e, LinkEvent::Up { .. })
    })
    .await;
    relay.cut.store(true, Ordering::SeqCst);
    // No close arrives: only the idle timeout (250 ms by default) can tell the link is gone.
    let down = event(&mut madrid_events, &lisbon_1, |e| {
        matches!(e, LinkEvent::Down { .. })
    })
    .await;
    assert_eq!(
        down,
        LinkEvent::Down {
            key: lisbon_1,
            reason: DownReason::TimedOut
        }
    );
}

#[tokio::test]
async fn a_frame_over_the_bound_is_refused_and_closes_the_link() {
    let mut pair = Pair::new();
    let (madrid, mut madrid_events) = pair.madrid(&pair.madrid.hub("madrid-1"), patient());
    let (lisbon, _lisbon_events) = pair.lisbon(&pair.lisbon.hub("lisbon-1"), patient());
    let (dialed, accepted) = connect(&madrid, "lisbon-1", 1, &lisbon).await;
    let (mut madrid_1, mut lisbon_1) = (dialed.unwrap(), accepted.unwrap());
    // Refused by the sender, nothing sent: the link stays up and carries the next frame.
    let too_big = vec![0; MAX_FRAME_LEN + 1];
    assert!(matches!(
        guarded(madrid_1.send_frame(&too_big)).await,
        Err(FrameError::TooLarge { .. })
    ));
    guarded(madrid_1.send_frame(b"fine")).await.unwrap();
    assert_eq!(guarded(lisbon_1.recv_frame()).await.unwrap(), b"fine");
    // A hostile header: the receiver refuses it and closes the link.
    let hostile = u32::try_from(MAX_FRAME_LEN + 1).unwrap().to_be_bytes();
    guarded(madrid_1.send_raw(&hostile)).await;
    assert!(matches!(
        guarded(lisbon_1.recv_frame()).await,
        Err(FrameError::TooLarge { .. })
    ));
    let lisbon_key = link_key("lisbon-1", 1);
    let down = event(&mut madrid_events, &lisbon_key, |e| {
        matches!(e, LinkEvent::Down { .. })
    })
    .await;
    assert_eq!(
        down,
        LinkEvent::Down {
            key: lisbon_key,
            reason: DownReason::ClosedByPeer("frame_too_large".into())
        }
    );
}
