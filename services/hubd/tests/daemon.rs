//! The real `hubd` daemon, several of them on loopback: each hub of its own site (its own root,
//! its own private bus with a stand-in for its sited), peering files pinning the neighbours'
//! roots. What an operator would check from the outside: links come up, trust reaches hubs
//! that are not direct peers, a hub killed with SIGKILL rejoins, a peer presenting another
//! site's certificate is refused and counted, a lockdown withdraws transit. Observed through
//! the metrics endpoint, as Prometheus would.

mod common;

use std::fs;

use appliance::dbus::Bus;
use appliance::dbus::contracts::SiteState;
use appliance::dbus::testsite::StandInSite;
use common::three_hubs;

fn up(count: f64) -> impl Fn(f64) -> bool {
    move |value| value == count
}

#[tokio::test(flavor = "multi_thread")]
async fn hubs_link_trust_through_a_neighbour_and_rejoin_after_sigkill() {
    let (mut madrid, mut lisbon, mut paris, _sites) = three_hubs().await;
    madrid.start();
    lisbon.start();
    paris.start();
    lisbon
        .wait_for("hubd_links_up", "both links up", up(2.0))
        .await;
    // Paris is not Madrid's peer: Madrid trusts it through Lisbon's voucher.
    madrid
        .wait_for("hubd_hubs_trusted", "madrid trusts lisbon and paris", |n| {
            n >= 2.0
        })
        .await;
    paris
        .wait_for("hubd_hubs_trusted", "paris trusts lisbon and madrid", |n| {
            n >= 2.0
        })
        .await;
    // Paths are computed over both links, each advertised by both of its ends.
    madrid
        .wait_for("hubd_topology_links", "madrid sees both links", up(2.0))
        .await;
    assert_eq!(madrid.metric("hubd_links_configured"), Some(1.0));
    assert_eq!(madrid.metric("hubd_transit"), Some(1.0));
    assert!(
        madrid
            .metric("hubd_link_rtt_seconds{peer=\"lisbon-1\",link=\"1\"}")
            .is_some()
    );

    // Lisbon dies without a word and comes back: both links return, trust converges again.
    lisbon.kill();
    madrid
        .wait_for("hubd_links_up", "madrid sees the link go", up(0.0))
        .await;
    madrid
        .wait_for("hubd_topology_links", "the link gone from the paths", |n| {
            n < 2.0
        })
        .await;
    lisbon.start();
    lisbon
        .wait_for("hubd_links_up", "both links back", up(2.0))
        .await;
    madrid
        .wait_for("hubd_links_up", "madrid's link back", up(1.0))
        .await;
    madrid
        .wait_for("hubd_hubs_trusted", "madrid trusts paris again", |n| {
            n >= 2.0
        })
        .await;
    assert!(
        lisbon.log().contains("READY=1"),
        "the status line is logged at READY: {}",
        lisbon.log()
    );

    // A clean stop closes the links at once and exits 0.
    assert_eq!(paris.stop(), Some(0));
    lisbon
        .wait_for("hubd_links_up", "paris's link closed", up(1.0))
        .await;
    assert_eq!(madrid.stop(), Some(0));
    assert_eq!(lisbon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_with_another_sites_certificate_is_refused_and_counted() {
    let (mut madrid, mut lisbon, _paris, sites) = three_hubs().await;
    // Lisbon presents a certificate from Paris's site; Madrid pinned Lisbon's root, not that.
    // Lisbon dials (its id sorts first), so Madrid refuses it at the handshake.
    let (chain, key) = sites[2].hub("lisbon-1");
    fs::write(lisbon.dir.path().join("chain.pem"), chain).unwrap();
    fs::write(lisbon.dir.path().join("key.pem"), key).unwrap();
    madrid.start();
    lisbon.start();
    madrid
        .wait_for(
            "hubd_link_refusals_total{reason=\"wrong_root\"}",
            "madrid refuses lisbon's foreign certificate",
            |n| n >= 1.0,
        )
        .await;
    lisbon
        .wait_for(
            "hubd_link_dial_failures_total{reason=\"refused:refused_by_peer\"}",
            "lisbon told it was refused",
            |n| n >= 1.0,
        )
        .await;
    assert_eq!(lisbon.metric("hubd_links_up"), Some(0.0));
    assert_eq!(madrid.metric("hubd_links_up"), Some(0.0));
    assert_eq!(
        madrid.metric("hubd_hubs_trusted"),
        Some(0.0),
        "no advertisement came through"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lockdown_at_the_site_withdraws_transit_and_survives_a_restart_without_sited() {
    let (_madrid, mut lisbon, _paris, _sites) = three_hubs().await;
    lisbon.start();
    lisbon
        .wait_for("hubd_transit", "transit offered", up(1.0))
        .await;
    let site = lisbon.site.as_ref().unwrap();
    site.set(SiteState::Lockdown, "intrusion at door 2")
        .await
        .unwrap();
    lisbon
        .wait_for("hubd_transit", "transit withdrawn", up(0.0))
        .await;

    // sited and hubd both go; hubd comes back alone: still out of transit.
    lisbon.site.take().unwrap().stop().await.unwrap();
    lisbon.kill();
    lisbon.start();
    lisbon
        .wait_for("hubd_links_configured", "hubd back", up(2.0))
        .await;
    assert_eq!(lisbon.metric("hubd_transit"), Some(0.0));
    assert!(lisbon.log().contains("lockdown"), "{}", lisbon.log());

    // sited is back and the site is normal: transit again.
    let bus = Bus::Address(lisbon.bus.address().to_owned());
    lisbon.site = Some(
        StandInSite::start(&bus, SiteState::Normal, "")
            .await
            .unwrap(),
    );
    lisbon
        .wait_for("hubd_transit", "transit offered again", up(1.0))
        .await;
}

/// The test plays `lisbon-1` with its genuine certificate, as a compromised peer would, and
/// sends Madrid what a hostile hub can: an advertisement for a hub nobody vouches for (held
/// back, never trusted; dropped when no voucher comes), one for itself whose signature was
/// tampered with, a replay of an older one, and frames that are not control messages. Each is
/// refused and counted; Madrid's view stays what it was.
#[tokio::test(flavor = "multi_thread")]
async fn forged_replayed_and_malformed_advertisements_from_a_linked_peer_are_refused() {
    use std::time::{Duration, SystemTime};

    use appliance::tls::{Identity, PinnedRoot};
    use hubd::advertisement::{
        Advertisement, AdvertisementParts, Flags, SignedAdvertisement, Timestamp,
    };
    use hubd::flooding::message::ControlMessage;
    use hubd::grant::Grant;
    use hubd::hub_id::HubId;
    use hubd::jurisdiction::Jurisdiction;
    use hubd::link::LinkId;
    use hubd::links::{LinkEndpoint, LinkTiming};
    use hubd::peering::{PeerLink, PeeringAgreement, Peers};

    let (mut madrid, lisbon, _paris, sites) = three_hubs().await;
    madrid.start();
    let (chain, key) = sites[1].hub("lisbon-1");
    let identity = Identity::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let mut peers = Peers::new(HubId::parse("lisbon-1").unwrap());
    peers
        .add(
            PeeringAgreement::new(
                HubId::parse("madrid-1").unwrap(),
                Jurisdiction::parse("ES").unwrap(),
                vec![PeerLink {
                    id: LinkId::new(1).unwrap(),
                    address: madrid.link_address,
                }],
                PinnedRoot::from_pem(sites[0].root_pem.as_bytes()).unwrap(),
                Grant::default(),
            )
            .unwrap(),
        )
        .unwrap();
    let (endpoint, _events) = LinkEndpoint::bind(
        lisbon.link_address,
        identity.clone(),
        peers,
        LinkTiming {
            idle_timeout: Duration::from_secs(5),
            ..LinkTiming::default()
        },
    )
    .unwrap();
    let madrid_id = HubId::parse("madrid-1").unwrap();
    let mut link = loop {
        match endpoint.dial(&madrid_id, LinkId::new(1).unwrap()).await {
            Ok(link) => break link,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    madrid
        .wait_for("hubd_links_up", "the rogue's link is up", |n| n == 1.0)
        .await;

    let advertise = |origin: &str, sequence: u64| {
        let parts = AdvertisementParts {
            origin: HubId::parse(origin).unwrap(),
            jurisdiction: Jurisdiction::parse("PT").unwrap(),
            flags: Flags::default(),
            sequence,
            expires_at: Timestamp::from(SystemTime::now()).plus_secs(600),
            links: Vec::new(),
            vouchers: Vec::new(),
            prefixes: Vec::new(),
        };
        SignedAdvertisement::sign(Advertisement::new(parts).unwrap(), &identity).unwrap()
    };
    let frame =
        |signed: &SignedAdvertisement| ControlMessage::Advertisement(signed.clone()).encode();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;

    // Its own, genuine: accepted (the baseline).
    link.send_frame(&frame(&advertise("lisbon-1", now_ms)))
        .await
        .unwrap();
    madrid
        .wait_for("hubd_hubs_trusted", "lisbon trusted", |n| n == 1.0)
        .await;
    // A hub nobody vouches for, signed with Lisbon's key.
    link.send_frame(&frame(&advertise("bogota-1", now_ms)))
        .await
        .unwrap();
    // Its own, newer, with the signature tampered with (a bit of r flipped).
    let mut tampered = frame(&advertise("lisbon-1", now_ms + 10));
    let at = tampered.len() - 64;
    tampered[at] ^= 0x01;
    link.send_frame(&tampered).await.unwrap();
    // An older one of its own: a replay.
    link.send_frame(&frame(&advertise("lisbon-1", now_ms - 10_000)))
        .await
        .unwrap();
    // Frames that are not control messages.
    link.send_frame(&[0x09, 1, 2, 3]).await.unwrap();
    link.send_frame(&[0x01, 0xde, 0xad]).await.unwrap();

    // The hub nobody vouches for is held back (a voucher may still come), never trusted; it is
    // counted `unknown_hub` when it is dropped, 30 s later.
    madrid
        .wait_for("hubd_advertisements_held_back", "bogota-1 held back", |n| {
            n == 1.0
        })
        .await;
    for (sample, what) in [
        (
            "hubd_advertisements_rejected_total{reason=\"bad_signature\"}",
            "the tampered signature refused",
        ),
        (
            "hubd_frames_malformed_total{reason=\"unknown_kind\"}",
            "the unknown kind counted",
        ),
        (
            "hubd_frames_malformed_total{reason=\"undecodable_advertisement\"}",
            "the garbage counted",
        ),
    ] {
        madrid.wait_for(sample, what, |n| n == 1.0).await;
    }
    madrid
        .wait_for(
            "hubd_advertisements_rejected_total{reason=\"stale\"}",
            "the replay refused",
            |n| n == 1.0,
        )
        .await;
    // Nothing else changed: Lisbon is still trusted, no other hub is, and the link is still up.
    assert_eq!(madrid.metric("hubd_hubs_trusted"), Some(1.0));
    assert_eq!(madrid.metric("hubd_links_up"), Some(1.0));
    assert_eq!(
        madrid.metric("hubd_advertisements_accepted_total"),
        Some(1.0)
    );
    link.close();
    endpoint.close();
}

/// A hub just provisioned, with no peering file yet, runs (and accepts nobody) rather than
/// failing to start.
#[tokio::test(flavor = "multi_thread")]
async fn a_hub_without_peers_runs_and_stops_cleanly() {
    let site = common::Site::new("oslo");
    let mut oslo = common::Hub::new("oslo-1", "NO", &site).await;
    oslo.start();
    oslo.wait_for("hubd_links_configured", "hubd serves its metrics", |n| {
        n == 0.0
    })
    .await;
    assert_eq!(oslo.metric("hubd_transit"), Some(1.0));
    assert_eq!(oslo.stop(), Some(0), "{}", oslo.log());
}
