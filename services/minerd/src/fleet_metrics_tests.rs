use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use prometheus_client::encoding::text::encode;

use super::*;
use crate::cgminer::FirmwareKind;
use crate::discovery::DiscoveryReport;
use crate::inventory::{MinerId, ScanChanges};
use crate::telemetry::{PollFailure, TelemetrySettings};

#[path = "../tests/telemetry_fake_miner/mod.rs"]
mod telemetry_fake_miner;
use telemetry_fake_miner::{BOSMINER_JOINED, Behaviour, FakeMiner, S21_JOINED};

fn record(id: i64, addr: SocketAddr, owner: &str) -> MinerRecord {
    let SocketAddr::V4(addr) = addr else {
        panic!("IPv4 only")
    };
    MinerRecord {
        id: MinerId(id),
        addr,
        mac: None,
        serial: None,
        model: Some("Antminer S21 XP Hyd.".into()),
        firmware: FirmwareKind::Bmminer,
        firmware_version: None,
        location: "hall A".into(),
        owner: owner.into(),
        power_target_w: None,
        state: MinerState::Active,
        missed_scans: 0,
        first_seen: 0,
        last_seen: 0,
    }
}

fn text(registry: &Registry) -> String {
    let mut out = String::new();
    encode(&mut out, registry).unwrap();
    out
}

#[tokio::test]
async fn a_poll_fills_fleet_owner_and_miner_series_and_drops_those_gone() {
    let mut registry = Registry::default();
    let metrics = FleetMetrics::register(&mut registry);
    let up = FakeMiner::start(Ipv4Addr::LOCALHOST, 0, Behaviour::Joined(S21_JOINED)).await;
    // A port nobody listens on: refused.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let telemetry = Telemetry::new(TelemetrySettings {
        deadline_ms: 3000,
        ..TelemetrySettings::default()
    });
    let bos = FakeMiner::start(Ipv4Addr::LOCALHOST, 0, Behaviour::Joined(BOSMINER_JOINED)).await;
    let mut bos_record = record(3, bos.addr, "initech");
    bos_record.firmware = FirmwareKind::Bosminer;
    let fleet = [
        record(1, up.addr, "acme"),
        record(2, closed, "globex"),
        bos_record,
    ];
    let report = telemetry.poll(&fleet).await;
    assert_eq!(report.failures.get(&PollFailure::Refused), Some(&1));
    metrics.observe_poll(&report, &telemetry);
    metrics.observe_inventory(&fleet);
    let out = text(&registry);
    let up_label = format!("miner=\"{}\",owner=\"acme\"", up.addr);
    let down_label = format!("miner=\"{closed}\",owner=\"globex\"");
    assert!(
        out.contains(&format!("minerd_miner_up{{{up_label}}} 1")),
        "{out}"
    );
    assert!(
        out.contains(&format!("minerd_miner_up{{{down_label}}} 0")),
        "{out}"
    );
    assert!(out.contains(&format!(
        "minerd_miner_hashrate_terahashes{{{up_label}}} 483.97"
    )));
    assert!(out.contains(&format!("minerd_miner_hottest_chip_celsius{{{up_label}}} ")));
    assert!(!out.contains(&format!("minerd_miner_hashrate_terahashes{{{down_label}}}")));
    // Only the BOSminer reports power: 1280 W over its 14.12 TH/s.
    assert!(out.contains("minerd_fleet_power_watts 1280"), "{out}");
    assert!(
        out.contains("minerd_fleet_efficiency_joules_per_terahash{} 90.6"),
        "{out}"
    );
    assert!(out.contains("minerd_owner_efficiency_joules_per_terahash{owner=\"initech\"} 90.6"));
    assert!(out.contains("minerd_owner_hashrate_terahashes{owner=\"acme\"} 483.97"));
    assert!(out.contains("minerd_miners_polled{owner=\"globex\",status=\"down\"} 1"));
    assert!(out.contains("minerd_miners{state=\"active\"} 3"));
    assert!(out.contains("minerd_poll_failures_total{reason=\"refused\"} 1"));
    assert!(out.contains("minerd_poll_duration_seconds_count 1"));

    // globex's miner leaves the fleet: its series and its owner's go.
    let report = telemetry.poll(&[fleet[0].clone(), fleet[2].clone()]).await;
    metrics.observe_poll(&report, &telemetry);
    let out = text(&registry);
    assert!(!out.contains(&down_label), "{out}");
    assert!(!out.contains("owner=\"globex\""), "{out}");
    assert!(out.contains("minerd_poll_cycles_total 2"));
}

#[test]
fn discovery_reports_become_counters() {
    let mut registry = Registry::default();
    let metrics = FleetMetrics::register(&mut registry);
    let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 4028);
    let report = DiscoveryReport {
        addresses_scanned: 1022,
        miners_found: 900,
        changes: ScanChanges {
            new: vec![addr; 3],
            changed: vec![addr],
            missing: vec![addr; 2],
        },
        errors: [(PollFailure::Timeout, 4)].into_iter().collect(),
        duration: Duration::from_millis(1500),
    };
    metrics.observe_discovery(&report);
    let out = text(&registry);
    for line in [
        "minerd_discovery_scans_total 1",
        "minerd_discovery_addresses_scanned_total 1022",
        "minerd_discovery_miners_found 900",
        "minerd_discovery_miners_new_total 3",
        "minerd_discovery_miners_changed_total 1",
        "minerd_discovery_miners_missing_total 2",
        "minerd_discovery_errors_total{reason=\"timeout\"} 4",
        "minerd_discovery_duration_seconds 1.5",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
}
