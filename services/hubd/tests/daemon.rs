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
