//! updated's rollout exchange carried by real `hubd` processes: the coordinating hub (Paris)
//! serves its directory exchange over updated's mutual TLS on its loopback and publishes it as
//! the `[[service]]` `rollout`; a hub (Madrid) reaches it only through its own hubd's listener,
//! across a transit hub. Through that path the hub reads its instruction and the plan, and its
//! report lands in the coordinator's exchange — so plans, instructions and reports travel hubd's
//! links end to end, the hub known to the coordinator by its own certificate inside the session.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use appliance::tls::{Identity, PeerRoots, PinnedRoot};
use common::CONVERGE;
use common::network::network_with;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, SanType,
};
use rustls_pki_types::ServerName;
use tokio_util::sync::CancellationToken;
use updated::rollout::exchange::DirectoryExchange;
use updated::rollout::remote_exchange::{
    CoordinatorExchange, ExchangeCertificate, ExchangeServer, hub_uri,
};
use updated::rollout::{Instruction, Report, ReportOutcome};

/// The DNS name of the coordinator's exchange certificate.
const COORDINATOR_NAME: &str = "rollout.paris.bunker.test";
const PLAN: &str = "spring";
const PLAN_TEXT: &str = "id = \"spring\"\n";

/// A site root for updated's certificates, as a site's trustd holds it.
struct TestSite {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestSite {
    fn new(name: &str) -> TestSite {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} site root"));
        TestSite {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn root(&self) -> PinnedRoot {
        PinnedRoot::from_pem(self.issuer.pem().as_bytes()).unwrap()
    }

    fn certificate(
        &self,
        name: SanType,
        usage: ExtendedKeyUsagePurpose,
    ) -> Arc<ExchangeCertificate> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![name];
        params.extended_key_usages = vec![usage];
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        let identity =
            Identity::from_pem(certificate.pem().as_bytes(), key.serialize_pem().as_bytes())
                .unwrap();
        Arc::new(ExchangeCertificate::fixed(identity))
    }

    /// The coordinator's `service` certificate (a DNS name, serverAuth).
    fn server_certificate(&self, dns: &str) -> Arc<ExchangeCertificate> {
        self.certificate(
            SanType::DnsName(dns.try_into().unwrap()),
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A hub's `hub` certificate (`bunkeros:hub:<hub>`, clientAuth).
    fn hub_certificate(&self, hub: &str) -> Arc<ExchangeCertificate> {
        self.certificate(
            SanType::URI(hub_uri(hub).try_into().unwrap()),
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }
}

fn instruction() -> Instruction {
    Instruction {
        plan_id: PLAN.to_owned(),
        hub: "madrid-1".to_owned(),
        wave: "canary".to_owned(),
        release_version: "0.2.0".to_owned(),
        source: "usb".to_owned(),
        nonce: "ab".repeat(32),
        attempt: 1,
        issued_at: 1000,
    }
}

fn report() -> Report {
    Report {
        plan_id: PLAN.to_owned(),
        hub: "madrid-1".to_owned(),
        nonce: "ab".repeat(32),
        booted_version: "0.2.0".to_owned(),
        outcome: ReportOutcome::Failed {
            reason: "the gate failed: hubd".to_owned(),
        },
        evidence: None,
        reported_at: 1100,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_reaches_the_coordinators_rollout_exchange_through_hubd() {
    // The coordinator (Paris's updated): plan `spring` and an instruction for madrid-1, served
    // on Paris's loopback to madrid-1 as known by its site's root.
    let paris_site = TestSite::new("paris");
    let madrid_site = TestSite::new("madrid");
    let dir = tempfile::tempdir().unwrap();
    let exchange = DirectoryExchange::new(dir.path());
    exchange.publish_plan(PLAN, PLAN_TEXT).unwrap();
    exchange.write_instruction(&instruction()).unwrap();
    let mut hub_roots = PeerRoots::new();
    hub_roots.insert("madrid-1", madrid_site.root()).unwrap();
    let server = ExchangeServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        paris_site.server_certificate(COORDINATOR_NAME),
        hub_roots,
        exchange.clone(),
    )
    .await
    .unwrap();
    let coordinator = server.local_addr();
    let cancel = CancellationToken::new();
    let serving = tokio::spawn(server.serve(cancel.clone()));

    // Paris's hubd publishes it as `rollout`; Madrid's reaches it through Lisbon.
    let mut net = network_with(&[("lisbon-1", "PT")], "", &[("rollout", coordinator)]).await;
    net.start();
    net.converged(2.0).await;

    // Madrid's updated knows only its hubd's listener, never the coordinator's address.
    let listener = net.listeners["rollout"];
    assert_ne!(listener, coordinator);
    let madrid = CoordinatorExchange::new(
        "madrid-1",
        listener,
        ServerName::try_from(COORDINATOR_NAME).unwrap(),
        paris_site.root(),
        madrid_site.hub_certificate("madrid-1"),
    );

    // The first request is retried while the control plane settles (a refused session is reset).
    let deadline = Instant::now() + CONVERGE;
    let instructions = loop {
        match madrid.instructions().await {
            Ok(instructions) => break instructions,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the exchange not reached through hubd within {CONVERGE:?}: {error}; \
                     madrid:\n{}",
                    net.madrid.log()
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(instructions.len(), 1, "madrid-1's own instruction");
    assert_eq!(instructions[0].as_ref().unwrap(), &instruction());
    assert_eq!(madrid.plan(PLAN).await.unwrap().as_deref(), Some(PLAN_TEXT));
    madrid.write_report(&report()).await.unwrap();
    assert_eq!(
        exchange.read_report(PLAN, "madrid-1").unwrap(),
        Some(report()),
        "the report is in the coordinator's exchange as Madrid sent it"
    );

    // The requests went through hubd: sessions along Madrid → Lisbon → Paris, ended at Paris.
    let log = net.madrid.log();
    assert!(
        log.contains("madrid-1 (ES) → lisbon-1 (PT) → paris-1 (FR)"),
        "the sessions' path is logged as proven by the receipts:\n{log}"
    );
    let paris_log = net.paris.log();
    assert!(
        paris_log
            .lines()
            .any(|line| line.contains("session started") && line.contains("rollout")),
        "Paris ended the `rollout` sessions:\n{paris_log}"
    );
    net.madrid
        .wait_for(
            "hubd_sessions_started_total",
            "one session per request at madrid",
            |n| n >= 3.0,
        )
        .await;

    cancel.cancel();
    serving.await.unwrap();
}
