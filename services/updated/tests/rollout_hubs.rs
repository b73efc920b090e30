//! The exchange between hubs with the certificates the real trustds issue: the coordinator's
//! site and a hub's site, each its own trustd on swtpm on its own private bus. updated asks each
//! for its certificate (a `service` certificate for the coordinator's DNS name, a `hub`
//! certificate for `bunkeros:hub:lisbon-1`), then the hub reads its instruction and writes its
//! report over mutual TLS, trusting nothing but the roots pinned on each side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use appliance::dbus::testbus::TestBus;
use appliance::testtrustd::{SITE_DOMAIN, Trustd};
use appliance::tls::PinnedRoot;
use appliance::tls::trustd_issue::RequestedName;
use rustls_pki_types::ServerName;
use tokio_util::sync::CancellationToken;
use updated::rollout::exchange::DirectoryExchange;
use updated::rollout::remote_exchange::{
    CLIENT_PROFILE, CoordinatorExchange, ExchangeCertificate, ExchangeServer, SERVER_PROFILE,
    hub_uri, load_hub_roots,
};
use updated::rollout::{Instruction, Report, ReportOutcome};

/// Waits until trustd issued the certificate (keep_fresh asks at once).
async fn issued(certificate: &ExchangeCertificate) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(why) = certificate.identity() {
        assert!(Instant::now() < deadline, "trustd issued nothing: {why}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn keep_fresh(certificate: &Arc<ExchangeCertificate>, bus: &TestBus, cancel: &CancellationToken) {
    let (certificate, bus, cancel) = (Arc::clone(certificate), bus.bus(), cancel.clone());
    tokio::spawn(async move { certificate.keep_fresh(bus, cancel).await });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_follows_the_coordinator_with_certificates_from_both_sites_trustds() {
    let geneva_bus = TestBus::start().unwrap();
    let lisbon_bus = TestBus::start().unwrap();
    let (_geneva, geneva_root) = Trustd::start(geneva_bus.address(), "").await;
    let (_lisbon, lisbon_root) = Trustd::start(lisbon_bus.address(), "").await;
    let cancel = CancellationToken::new();
    let name = format!("rollout.{SITE_DOMAIN}");

    let server_certificate = Arc::new(ExchangeCertificate::from_trustd(
        RequestedName::Dns(name.clone()),
        SERVER_PROFILE,
    ));
    let hub_certificate = Arc::new(ExchangeCertificate::from_trustd(
        RequestedName::Uri(hub_uri("lisbon-1")),
        CLIENT_PROFILE,
    ));
    keep_fresh(&server_certificate, &geneva_bus, &cancel);
    keep_fresh(&hub_certificate, &lisbon_bus, &cancel);
    issued(&server_certificate).await;
    issued(&hub_certificate).await;

    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("hub-roots");
    std::fs::create_dir(&roots).unwrap();
    std::fs::write(roots.join("lisbon-1.pem"), &lisbon_root).unwrap();
    let exchange = DirectoryExchange::new(dir.path().join("exchange"));
    exchange
        .publish_plan("spring", "id = \"spring\"\n")
        .unwrap();
    let instruction = Instruction {
        plan_id: "spring".to_owned(),
        hub: "lisbon-1".to_owned(),
        wave: "canary".to_owned(),
        release_version: "0.2.0".to_owned(),
        source: "usb".to_owned(),
        nonce: "5a".repeat(32),
        attempt: 1,
        issued_at: 1000,
    };
    exchange.write_instruction(&instruction).unwrap();
    let server = ExchangeServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        server_certificate,
        load_hub_roots(&roots).unwrap(),
        exchange.clone(),
    )
    .await
    .unwrap();
    let address = server.local_addr();
    tokio::spawn(server.serve(cancel.clone()));

    let lisbon = CoordinatorExchange::new(
        "lisbon-1",
        address,
        ServerName::try_from(name.clone()).unwrap(),
        PinnedRoot::from_pem(geneva_root.as_bytes()).unwrap(),
        Arc::clone(&hub_certificate),
    );
    let received = lisbon.instructions().await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].as_ref().unwrap(), &instruction);
    let report = Report {
        plan_id: "spring".to_owned(),
        hub: "lisbon-1".to_owned(),
        nonce: instruction.nonce.clone(),
        booted_version: "0.1.0".to_owned(),
        outcome: ReportOutcome::Failed {
            reason: "the hub runs BunkerOS 0.1.0, not the release 0.2.0: the new slot fell back"
                .to_owned(),
        },
        evidence: None,
        reported_at: 1100,
    };
    lisbon.write_report(&report).await.unwrap();
    assert_eq!(
        exchange.read_report("spring", "lisbon-1").unwrap(),
        Some(report)
    );

    // The hub pinning its own site's root for the coordinator does not believe geneva.
    let misled = CoordinatorExchange::new(
        "lisbon-1",
        address,
        ServerName::try_from(name).unwrap(),
        PinnedRoot::from_pem(lisbon_root.as_bytes()).unwrap(),
        hub_certificate,
    );
    assert!(misled.instructions().await.is_err());
    cancel.cancel();
}
