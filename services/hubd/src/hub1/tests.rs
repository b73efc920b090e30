//! The Hub1 documents on one hand-made snapshot, then the interface on a private bus.
//!
//! The network, seen from madrid-1 (ES): two cables to lisbon-1 (PT), one of two configured to
//! paris-1 (FR, no transit) up; beyond lisbon-1, sao-paulo-1 (BR, two cables) and bogota-1 (CO),
//! trusted through vouchers; quito-1 (EC) held but no longer vouched for. lisbon-1 is the only
//! hub that carries madrid-1's traffic further.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::documents::{self, PathsRefused};
use super::*;
use crate::advertisement::{Advertisement, Timestamp};
use crate::flooding::{ControlPlaneView, FloodCounters};
use crate::grant::Grant;
use crate::link::{Latency, LinkId};
use crate::links::LinkKey;
use crate::path_policy::PathPolicy;
use crate::peering::{PeerLink, PeeringAgreement, Peers};
use crate::site_transit::TransitDecision;
use crate::testing::{Draft, Site, country, hub};
use crate::topology::Topology;
use crate::trust::TrustPath;

/// 2026-11-21T09:00:00Z.
const TAKEN_AT: u64 = 1_795_251_600;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn advertisement(draft: Draft) -> Advertisement {
    draft
        .sequence(TAKEN_AT * 1000)
        .expires_at(Timestamp::from_unix_secs(TAKEN_AT + 3600))
        .build()
}

fn agreement(peer: &str, code: &str, addresses: &[&str]) -> PeeringAgreement {
    let links = addresses
        .iter()
        .zip(1..)
        .map(|(address, id)| PeerLink {
            id: LinkId::new(id).unwrap(),
            address: address.parse().unwrap(),
        })
        .collect();
    PeeringAgreement::new(
        hub(peer),
        country(code),
        links,
        Site::new(peer).pinned(),
        Grant::default(),
    )
    .unwrap()
}

fn up(peer: &str, id: u16, millis: u64) -> (LinkKey, Latency) {
    let key = LinkKey {
        peer: hub(peer),
        link: LinkId::new(id).unwrap(),
    };
    (key, Latency::from_millis(millis))
}

/// The snapshot described in the module docs.
pub(crate) fn snapshot() -> HubSnapshot {
    let own = advertisement(
        Draft::new("madrid-1", "ES")
            .link("lisbon-1", 1, 5)
            .link("lisbon-1", 2, 7)
            .link("paris-1", 1, 10),
    );
    let held: BTreeMap<_, _> = [
        Draft::new("lisbon-1", "PT")
            .link("madrid-1", 1, 5)
            .link("madrid-1", 2, 7)
            .link("sao-paulo-1", 1, 40)
            .link("sao-paulo-1", 2, 45)
            .prefix("10.77.2.0/24"),
        Draft::new("paris-1", "FR")
            .no_transit()
            .link("madrid-1", 1, 10),
        Draft::new("sao-paulo-1", "BR")
            .link("lisbon-1", 1, 40)
            .link("lisbon-1", 2, 45)
            .link("bogota-1", 1, 30),
        Draft::new("bogota-1", "CO").link("sao-paulo-1", 1, 30),
        Draft::new("quito-1", "EC").link("bogota-1", 1, 20),
    ]
    .into_iter()
    .map(|draft| {
        let advertisement = advertisement(draft);
        (advertisement.origin().clone(), advertisement)
    })
    .collect();
    let trusted: BTreeMap<_, _> = [
        ("lisbon-1", TrustPath::Peer),
        ("paris-1", TrustPath::Peer),
        (
            "sao-paulo-1",
            TrustPath::Vouched {
                by: hub("lisbon-1"),
            },
        ),
        (
            "bogota-1",
            TrustPath::Vouched {
                by: hub("sao-paulo-1"),
            },
        ),
    ]
    .into_iter()
    .map(|(id, path)| (hub(id), path))
    .collect();
    let topology = Topology::from_advertisements(
        std::iter::once(&own).chain(trusted.keys().map(|id| &held[id])),
    );
    let mut peers = Peers::new(hub("madrid-1"));
    peers
        .add(agreement(
            "lisbon-1",
            "PT",
            &["198.51.100.7:7400", "203.0.113.9:7400"],
        ))
        .unwrap();
    peers
        .add(agreement(
            "paris-1",
            "FR",
            &["192.0.2.10:7400", "192.0.2.11:7400"],
        ))
        .unwrap();
    let counters = FloodCounters {
        accepted: 12,
        duplicates: 30,
        rejected: BTreeMap::from([("stale", 2), ("wrong_root", 1)]),
        malformed: BTreeMap::from([("empty", 1)]),
        held_back: 1,
        originated: 4,
        origination_failures: 0,
    };
    let policies = BTreeMap::from([
        (
            "no-portugal".to_owned(),
            PathPolicy {
                excluded_jurisdictions: [country("PT")].into(),
                ..PathPolicy::default()
            },
        ),
        (
            "no-france".to_owned(),
            PathPolicy {
                excluded_jurisdictions: [country("FR")].into(),
                disjoint_backup: true,
                ..PathPolicy::default()
            },
        ),
    ]);
    HubSnapshot {
        own: hub("madrid-1"),
        view: ControlPlaneView {
            own,
            advertisements: held,
            chains: BTreeMap::new(),
            trusted,
            topology,
            links: [
                up("lisbon-1", 1, 5),
                up("lisbon-1", 2, 7),
                up("paris-1", 1, 10),
            ]
            .into(),
            transit: true,
            held_back: 0,
            counters,
        },
        peers: Arc::new(peers),
        policies: Arc::new(policies),
        transit: TransitDecision {
            lockdown: false,
            reason: "sited reports normal".into(),
        },
        certificate_source: "trustd".into(),
        certificate_not_after: at(TAKEN_AT + 30 * 86_400),
        certificate_renewal_error: None,
        taken_at: at(TAKEN_AT),
    }
}

/// A path's hub ids, for short assertions.
fn hub_ids(path: &Value) -> Vec<&str> {
    path["hubs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hub| hub["id"].as_str().unwrap())
        .collect()
}

#[test]
fn status_says_who_the_hub_is_its_links_trust_and_counters() {
    let status = documents::status(&snapshot());
    assert_eq!(
        status,
        json!({
            "hub": "madrid-1",
            "jurisdiction": "ES",
            "transit": true,
            "transit_reason": "sited reports normal",
            "links": {"up": 3, "configured": 4},
            "hubs_trusted": 4,
            "certificate": {
                "source": "trustd", "not_after": "2026-12-21T09:00:00Z", "renewal_error": null,
            },
            "advertisement": {"sequence": 1_795_251_600_000_u64, "expires_at": "2026-11-21T10:00:00Z"},
            "held_back": 0,
            "counters": {
                "accepted": 12, "duplicates": 30,
                "rejected": {"stale": 2, "wrong_root": 1},
                "malformed": {"empty": 1},
                "held_back": 1, "originated": 4, "origination_failures": 0,
            },
            "taken_at": "2026-11-21T09:00:00Z",
        })
    );
}

#[test]
fn links_list_every_configured_link_with_its_rtt_while_up() {
    let links = documents::links(&snapshot());
    assert_eq!(
        links,
        json!([
            {"peer": "lisbon-1", "jurisdiction": "PT", "link": 1, "address": "198.51.100.7:7400", "up": true, "rtt_ms": 10.0},
            {"peer": "lisbon-1", "jurisdiction": "PT", "link": 2, "address": "203.0.113.9:7400", "up": true, "rtt_ms": 14.0},
            {"peer": "paris-1", "jurisdiction": "FR", "link": 1, "address": "192.0.2.10:7400", "up": true, "rtt_ms": 20.0},
            {"peer": "paris-1", "jurisdiction": "FR", "link": 2, "address": "192.0.2.11:7400", "up": false, "rtt_ms": null},
        ])
    );
}

#[test]
fn hubs_say_how_each_is_trusted_and_what_it_advertises() {
    let hubs = documents::hubs(&snapshot());
    let by_id = |id: &str| -> Value {
        hubs.as_array()
            .unwrap()
            .iter()
            .find(|hub| hub["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {hubs}"))
    };
    let ids: Vec<&str> = hubs
        .as_array()
        .unwrap()
        .iter()
        .map(|hub| hub["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "bogota-1",
            "lisbon-1",
            "madrid-1",
            "paris-1",
            "quito-1",
            "sao-paulo-1"
        ]
    );
    assert_eq!(
        by_id("lisbon-1")["prefixes"],
        serde_json::json!(["10.77.2.0/24"])
    );
    assert_eq!(by_id("paris-1")["prefixes"], serde_json::json!([]));
    let trust = |id: &str| {
        (
            by_id(id)["trust"].clone(),
            by_id(id)["vouched_through"].clone(),
        )
    };
    assert_eq!(trust("madrid-1"), (json!("self"), json!([])));
    assert_eq!(trust("lisbon-1"), (json!("pinned"), json!([])));
    assert_eq!(
        trust("sao-paulo-1"),
        (json!("vouched"), json!(["lisbon-1"]))
    );
    assert_eq!(
        trust("bogota-1"),
        (json!("vouched"), json!(["lisbon-1", "sao-paulo-1"]))
    );
    assert_eq!(trust("quito-1"), (json!("untrusted"), json!([])));
    let paris = by_id("paris-1");
    assert_eq!(paris["transit"], json!(false));
    assert_eq!(paris["jurisdiction"], json!("FR"));
    assert_eq!(paris["expires_at"], json!("2026-11-21T10:00:00Z"));
    assert_eq!(
        paris["links"],
        json!([{"neighbour": "madrid-1", "link": 1, "latency_ms": 10.0}])
    );
    assert_eq!(by_id("lisbon-1")["links"].as_array().unwrap().len(), 4);
}

#[test]
fn routes_give_the_best_path_and_a_disjoint_backup_when_one_exists() {
    let routes = documents::routes(&snapshot());
    let routes = routes.as_array().unwrap();
    let destinations: Vec<&str> = routes
        .iter()
        .map(|route| route["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        destinations,
        ["bogota-1", "lisbon-1", "paris-1", "sao-paulo-1"],
        "every trusted hub, never quito-1 or madrid-1 itself"
    );
    let sao_paulo = &routes[3];
    assert_eq!(sao_paulo["jurisdiction"], json!("BR"));
    assert_eq!(sao_paulo["refusal"], Value::Null);
    assert_eq!(
        sao_paulo["primary"],
        json!({
            "hubs": [
                {"id": "madrid-1", "jurisdiction": "ES"},
                {"id": "lisbon-1", "jurisdiction": "PT"},
                {"id": "sao-paulo-1", "jurisdiction": "BR"},
            ],
            "links": [
                {"a": "lisbon-1", "b": "madrid-1", "link": 1},
                {"a": "lisbon-1", "b": "sao-paulo-1", "link": 1},
            ],
            "hops": 2,
            "latency_ms": 45.0,
        })
    );
    assert_eq!(sao_paulo["backup"]["latency_ms"], json!(52.0));
    assert_eq!(sao_paulo["backup"]["links"][1]["link"], json!(2));
    let bogota = &routes[0];
    assert_eq!(
        hub_ids(&bogota["primary"]),
        ["madrid-1", "lisbon-1", "sao-paulo-1", "bogota-1"]
    );
    assert_eq!(
        bogota["backup"],
        Value::Null,
        "one cable to bogota-1: no disjoint backup"
    );
    assert_eq!(routes[2]["primary"]["latency_ms"], json!(10.0));
}

#[test]
fn paths_follow_the_named_policy() {
    let snapshot = snapshot();
    let any = documents::paths(&snapshot, "bogota-1", "").unwrap();
    assert_eq!(any["policy"], json!(""));
    assert_eq!(any["rules"], json!("any path"));
    assert_eq!(any["primary"]["latency_ms"], json!(75.0));
    let no_france = documents::paths(&snapshot, "sao-paulo-1", "no-france").unwrap();
    assert_eq!(no_france["destination"], json!("sao-paulo-1"));
    assert_eq!(no_france["policy"], json!("no-france"));
    assert!(
        no_france["rules"].as_str().unwrap().contains("FR"),
        "{no_france}"
    );
    assert_eq!(
        hub_ids(&no_france["primary"]),
        ["madrid-1", "lisbon-1", "sao-paulo-1"]
    );
    assert_eq!(no_france["backup"]["latency_ms"], json!(52.0));
}

#[test]
fn paths_refuse_when_the_policy_excludes_the_only_transit_hub() {
    let refused = documents::paths(&snapshot(), "sao-paulo-1", "no-portugal").unwrap_err();
    assert!(
        matches!(refused, PathsRefused::NoCompliantPath(_)),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "no compliant path from madrid-1 (ES) to sao-paulo-1 (BR): every route crosses hub \
         lisbon-1 (PT, an excluded jurisdiction)"
    );
    let error = HubError::from(refused);
    assert!(matches!(error, HubError::NoCompliantPath(_)), "{error:?}");
}

#[test]
fn paths_name_the_policies_that_exist_and_refuse_what_is_not_a_hub() {
    let snapshot = snapshot();
    let unknown = documents::paths(&snapshot, "sao-paulo-1", "no-spain").unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "hubd.toml has no path policy named `no-spain`; it names no-france, no-portugal"
    );
    for destination in ["", "Sao Paulo", "madrid-1"] {
        let refused = documents::paths(&snapshot, destination, "").unwrap_err();
        assert!(
            matches!(refused, PathsRefused::InvalidDestination(_)),
            "{destination}: {refused:?}"
        );
    }
    let stranger = documents::paths(&snapshot, "quito-1", "").unwrap_err();
    assert!(
        stranger.to_string().contains("not in the topology"),
        "{stranger}"
    );
}

#[test]
fn every_error_has_a_name_from_the_contract() {
    use appliance::dbus::contracts::hub_errors;
    use zbus::DBusError as _;
    let text = || String::from("x");
    for error in [
        HubError::NoCompliantPath(text()),
        HubError::UnknownPolicy(text()),
        HubError::InvalidArgument(text()),
    ] {
        let name = error.name().to_string();
        assert!(hub_errors::ALL.contains(&name.as_str()), "{name}");
    }
}

#[tokio::test]
async fn the_interface_answers_on_a_private_bus_from_the_latest_snapshot() {
    use appliance::dbus::contracts::{HUB, Hub1Proxy, hub_errors};
    use appliance::dbus::testbus::TestBus;
    use appliance::dbus::{Bus, connect, serve};

    let bus = TestBus::start().unwrap();
    let bus = Bus::Address(bus.address().to_owned());
    let (publish, snapshots) = tokio::sync::watch::channel(Arc::new(snapshot()));
    let _served = serve(
        &bus,
        HUB.bus_name,
        HUB.object_path,
        Hub1::new(snapshots, crate::forwarding::SessionTable::default()),
    )
    .await
    .unwrap();
    let client = connect(&bus).await.unwrap();
    let hub1 = Hub1Proxy::new(&client).await.unwrap();

    let status: Value = serde_json::from_str(&hub1.status().await.unwrap()).unwrap();
    assert_eq!(status, documents::status(&snapshot()));
    let links: Value = serde_json::from_str(&hub1.links().await.unwrap()).unwrap();
    assert_eq!(links.as_array().unwrap().len(), 4);
    let hubs: Value = serde_json::from_str(&hub1.hubs().await.unwrap()).unwrap();
    assert_eq!(hubs.as_array().unwrap().len(), 6);
    let routes: Value = serde_json::from_str(&hub1.routes().await.unwrap()).unwrap();
    assert_eq!(routes.as_array().unwrap().len(), 4);
    let paths: Value =
        serde_json::from_str(&hub1.paths("sao-paulo-1", "no-france").await.unwrap()).unwrap();
    assert_eq!(paths["primary"]["hops"], json!(2));

    for ((destination, policy), expected) in [
        (
            ("sao-paulo-1", "no-portugal"),
            hub_errors::NO_COMPLIANT_PATH,
        ),
        (("sao-paulo-1", "no-spain"), hub_errors::UNKNOWN_POLICY),
        (("São Paulo", ""), hub_errors::INVALID_ARGUMENT),
    ] {
        match hub1.paths(destination, policy).await {
            Err(zbus::Error::MethodError(name, message, _)) => {
                assert_eq!(name.as_str(), expected);
                assert!(message.is_some_and(|m| !m.is_empty()), "{expected}");
            }
            other => panic!("{destination} under {policy:?}: {other:?}"),
        }
    }

    // The next snapshot is what the next call sees: transit withdrawn in a lockdown.
    let mut locked = snapshot();
    locked.view.transit = false;
    locked.transit = TransitDecision {
        lockdown: true,
        reason: "sited reports lockdown: door 2 forced".into(),
    };
    publish.send_replace(Arc::new(locked));
    let status: Value = serde_json::from_str(&hub1.status().await.unwrap()).unwrap();
    assert_eq!(status["transit"], json!(false));
    assert_eq!(
        status["transit_reason"],
        json!("sited reports lockdown: door 2 forced")
    );
}
