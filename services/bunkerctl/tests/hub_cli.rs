//! The real `bunkerctl hub` binary against hubd's real `org.bunkeros.Hub1` object, served on a
//! private `dbus-daemon` over a snapshot made here: madrid-1 (ES) — lisbon-1 (PT) — sao-paulo-1
//! (BR), lisbon-1 the only hub that carries madrid-1's traffic further. (hubd's own tests check
//! the documents; here the subject is the operator's tool: tables, JSON, exit statuses.)

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use appliance::dbus::contracts::HUB;
use appliance::dbus::testbus::TestBus;
use appliance::tls::PinnedRoot;
use hubd::advertisement::{AdvertisedLink, Advertisement, AdvertisementParts, Flags, Timestamp};
use hubd::flooding::{ControlPlaneView, FloodCounters};
use hubd::grant::Grant;
use hubd::hub_id::HubId;
use hubd::hub1::Hub1;
use hubd::jurisdiction::Jurisdiction;
use hubd::link::{Latency, LinkId};
use hubd::links::LinkKey;
use hubd::path_policy::PathPolicy;
use hubd::peering::{PeerLink, PeeringAgreement, Peers};
use hubd::site_transit::TransitDecision;
use hubd::snapshot::HubSnapshot;
use hubd::topology::Topology;
use hubd::trust::TrustPath;
use tokio::sync::watch;

fn hub(id: &str) -> HubId {
    HubId::parse(id).unwrap()
}

fn link(id: u16) -> LinkId {
    LinkId::new(id).unwrap()
}

/// `origin` in `code`, with links to `(neighbour, link, ms)`.
fn advertisement(origin: &str, code: &str, links: &[(&str, u16, u64)]) -> Advertisement {
    let now = Timestamp::from(SystemTime::now());
    Advertisement::new(AdvertisementParts {
        origin: hub(origin),
        jurisdiction: Jurisdiction::parse(code).unwrap(),
        flags: Flags::default(),
        sequence: 1,
        expires_at: now.plus_secs(3600),
        links: links
            .iter()
            .map(|(neighbour, id, ms)| AdvertisedLink {
                neighbour: hub(neighbour),
                link: link(*id),
                latency: Latency::from_millis(*ms),
            })
            .collect(),
        vouchers: Vec::new(),
        prefixes: Vec::new(),
    })
    .unwrap()
}

/// A site root for the peering agreement (only its pin matters here).
fn pinned_root() -> PinnedRoot {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "lisbon BunkerOS Site CA");
    let root = params.self_signed(&key).unwrap();
    PinnedRoot::from_der(root.der().clone()).unwrap()
}

/// The hub as hubd would publish it, with `up` links up.
fn snapshot(up: bool) -> HubSnapshot {
    let own = advertisement("madrid-1", "ES", &[("lisbon-1", 1, 5)]);
    let lisbon = advertisement(
        "lisbon-1",
        "PT",
        &[("madrid-1", 1, 5), ("sao-paulo-1", 1, 40)],
    );
    let sao_paulo = advertisement("sao-paulo-1", "BR", &[("lisbon-1", 1, 40)]);
    let topology = Topology::from_advertisements([&own, &lisbon, &sao_paulo]);
    let mut peers = Peers::new(hub("madrid-1"));
    peers
        .add(
            PeeringAgreement::new(
                hub("lisbon-1"),
                Jurisdiction::parse("PT").unwrap(),
                vec![PeerLink {
                    id: link(1),
                    address: "198.51.100.7:7400".parse().unwrap(),
                }],
                pinned_root(),
                Grant::default(),
            )
            .unwrap(),
        )
        .unwrap();
    let mut links = BTreeMap::new();
    if up {
        let key = LinkKey {
            peer: hub("lisbon-1"),
            link: link(1),
        };
        links.insert(key, Latency::from_millis(5));
    }
    let no_portugal = PathPolicy {
        excluded_jurisdictions: [Jurisdiction::parse("PT").unwrap()].into(),
        ..PathPolicy::default()
    };
    HubSnapshot {
        own: hub("madrid-1"),
        view: ControlPlaneView {
            own,
            advertisements: [(hub("lisbon-1"), lisbon), (hub("sao-paulo-1"), sao_paulo)].into(),
            chains: BTreeMap::new(),
            trusted: [
                (hub("lisbon-1"), TrustPath::Peer),
                (
                    hub("sao-paulo-1"),
                    TrustPath::Vouched {
                        by: hub("lisbon-1"),
                    },
                ),
            ]
            .into(),
            topology,
            links,
            transit: true,
            held_back: 0,
            counters: FloodCounters::default(),
        },
        peers: Arc::new(peers),
        policies: Arc::new([("no-portugal".to_owned(), no_portugal)].into()),
        transit: TransitDecision {
            lockdown: false,
            reason: "sited reports normal".into(),
        },
        certificate_source: "trustd".into(),
        certificate_not_after: SystemTime::now() + Duration::from_secs(30 * 86_400),
        certificate_renewal_error: None,
        taken_at: SystemTime::now(),
    }
}

/// Hub1 on a private bus, serving what `publish` last sent.
struct Hub {
    bus: TestBus,
    publish: watch::Sender<Arc<HubSnapshot>>,
    _served: zbus::Connection,
}

impl Hub {
    async fn start() -> Self {
        let bus = TestBus::start().expect("dbus-daemon starts (Debian package dbus-daemon)");
        let (publish, snapshots) = watch::channel(Arc::new(snapshot(true)));
        let served = appliance::dbus::serve(
            &bus.bus(),
            HUB.bus_name,
            HUB.object_path,
            Hub1::new(snapshots, hubd::forwarding::SessionTable::default()),
        )
        .await
        .unwrap();
        Self {
            bus,
            publish,
            _served: served,
        }
    }

    fn bunkerctl(&self, args: &[&str]) -> Output {
        tokio::task::block_in_place(|| bunkerctl(&self.bus, args))
    }
}

fn bunkerctl(bus: &TestBus, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
        .output()
        .expect("bunkerctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_reads_the_hub_and_is_refused_a_non_compliant_path() {
    let hub = Hub::start().await;

    let status = hub.bunkerctl(&["hub", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(
        stdout(&status)
            .starts_with("hubd: madrid-1 (ES): 1/1 links up, 2 hubs trusted, transit offered\n"),
        "{}",
        stdout(&status)
    );

    let links = stdout(&hub.bunkerctl(&["hub", "links"]));
    assert!(
        links.contains("lisbon-1  PT            #1    198.51.100.7:7400  up     10.0 ms"),
        "{links}"
    );
    let hubs = stdout(&hub.bunkerctl(&["hub", "hubs"]));
    assert!(hubs.contains("vouched via lisbon-1"), "{hubs}");
    let routes = stdout(&hub.bunkerctl(&["hub", "routes", "--json"]));
    let routes: serde_json::Value = serde_json::from_str(&routes).unwrap();
    assert_eq!(routes[1]["primary"]["latency_ms"], serde_json::json!(45.0));

    let paths = hub.bunkerctl(&["hub", "paths", "sao-paulo-1"]);
    assert_eq!(paths.status.code(), Some(0), "{}", stderr(&paths));
    assert!(
        stdout(&paths).contains(
            "primary  madrid-1 (ES) —#1→ lisbon-1 (PT) —#1→ sao-paulo-1 (BR): 2 hops, 45.0 ms"
        ),
        "{}",
        stdout(&paths)
    );

    let refused = hub.bunkerctl(&["hub", "paths", "sao-paulo-1", "--policy", "no-portugal"]);
    assert_eq!(refused.status.code(), Some(3));
    assert_eq!(
        stdout(&refused),
        "no compliant path from madrid-1 (ES) to sao-paulo-1 (BR): every route crosses hub \
         lisbon-1 (PT, an excluded jurisdiction)\n"
    );
    let refused_json = hub.bunkerctl(&[
        "hub",
        "paths",
        "sao-paulo-1",
        "--policy",
        "no-portugal",
        "--json",
    ]);
    assert_eq!(refused_json.status.code(), Some(3));
    assert!(
        stdout(&refused_json).contains(r#""refusal":"no compliant path from madrid-1"#),
        "{}",
        stdout(&refused_json)
    );

    let unknown = hub.bunkerctl(&["hub", "paths", "sao-paulo-1", "--policy", "no-spain"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        stderr(&unknown),
        "bunkerctl: hubd refused (UnknownPolicy): hubd.toml has no path policy named \
         `no-spain`; it names no-portugal\n"
    );

    // The links go down: the next snapshot says so, and the status says no.
    hub.publish.send_replace(Arc::new(snapshot(false)));
    let down = hub.bunkerctl(&["hub", "status"]);
    assert_eq!(down.status.code(), Some(3));
    assert!(stdout(&down).contains("No link is up"), "{}", stdout(&down));

    // Renewing the certificate fails: the status says why, under the certificate.
    let mut failing = snapshot(true);
    failing.certificate_renewal_error =
        Some("trustd did not issue the hub certificate: sealed".into());
    hub.publish.send_replace(Arc::new(failing));
    let renewal = stdout(&hub.bunkerctl(&["hub", "status"]));
    assert!(
        renewal.contains(
            "  renewal       failing, the certificate above stays in use: trustd did not issue \
             the hub certificate: sealed\n"
        ),
        "{renewal}"
    );
}

#[test]
fn without_hubd_the_operator_is_told_so() {
    let bus = TestBus::start().expect("dbus-daemon starts");
    for args in [&["hub", "status"][..], &["hub", "paths", "sao-paulo-1"]] {
        let output = bunkerctl(&bus, args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&output),
            "bunkerctl: hubd is not running (org.bunkeros.Hub1 is not on the system bus)\n"
        );
    }
}
