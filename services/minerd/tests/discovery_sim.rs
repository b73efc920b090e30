//! Discovery of a simulated /22: 900 simulated miners (every personality of the simulator:
//! bmminer, BOSminer, LuxOS, cgminer) with holes between them, each on its own loopback
//! address answering the cgminer API like its firmware. The scan must find exactly them, with
//! models and firmware.
//!
//! The region is 127.81.0.0/22 rather than 127.1.0.0/22 so that this test never meets the
//! simulator's own tests, which may run at the same time on the same machine.

mod scan_support;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use minerd::cgminer::FirmwareKind;
use minerd::inventory::MinerFilter;
use minerd::site_layout::SiteLayout;
use scan_support::{inventory_in, one_range_layout, scan};
use sim::fleet::{Firmware, Fleet, FleetSpec, raise_fd_limit};

fn layout() -> SiteLayout {
    one_range_layout("127.81.0.0/22", "acme", "hall A")
}

fn firmware_kind(firmware: Firmware) -> FirmwareKind {
    match firmware {
        Firmware::Bmminer => FirmwareKind::Bmminer,
        Firmware::Bosminer => FirmwareKind::Bosminer,
        Firmware::Cgminer => FirmwareKind::Cgminer,
        Firmware::Luxos => FirmwareKind::Luxos,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_of_a_simulated_slash_22_finds_exactly_the_miners() {
    raise_fd_limit().unwrap();
    let first = Ipv4Addr::new(127, 81, 0, 1);
    let mut spec = FleetSpec::new(first, 900);
    // Every tenth address of the run is empty.
    spec.holes = (0..1000u32)
        .filter(|i| i % 10 == 7)
        .map(|i| Ipv4Addr::from(u32::from(first) + i))
        .collect();
    // No pools: the miners only answer the API; the budget is the smallest allowed.
    spec.hash_budget = 1.0;
    let fleet = Fleet::start(spec).await.unwrap();
    let expected: BTreeSet<SocketAddr> = fleet.api_addresses().into_iter().collect();
    assert_eq!(expected.len(), 900);

    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_in(dir.path());
    let started = Instant::now();
    let report = scan(&layout(), &inventory).await;
    // Generous bound separating "scanned" from "stuck" on a loaded two-core machine.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.addresses_scanned, 1022);
    assert_eq!(report.miners_found, 900);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let found: BTreeSet<SocketAddr> = report
        .changes
        .new
        .iter()
        .map(|a| SocketAddr::V4(*a))
        .collect();
    assert_eq!(found, expected);

    let records = inventory.list(&MinerFilter::default()).unwrap();
    assert_eq!(records.len(), 900);
    let mut kinds = BTreeSet::new();
    for record in &records {
        let view = fleet.miner(*record.addr.ip()).unwrap().view();
        assert_eq!(
            record.model.as_deref(),
            Some(view.model.as_str()),
            "{}",
            record.addr
        );
        assert_eq!(
            record.firmware,
            firmware_kind(view.firmware),
            "{}",
            record.addr
        );
        assert_eq!(
            (record.owner.as_str(), record.location.as_str()),
            ("acme", "hall A")
        );
        kinds.insert(format!("{:?} {}", record.firmware, view.model));
    }
    // The default mix has every personality the simulator knows.
    assert_eq!(kinds.len(), sim::fleet::Personality::ALL.len(), "{kinds:?}");

    // A second scan changes nothing.
    let report = scan(&layout(), &inventory).await;
    assert_eq!(report.miners_found, 900);
    assert!(report.changes.new.is_empty() && report.changes.changed.is_empty());
    assert!(report.changes.missing.is_empty());
    let hole = SocketAddrV4::new(Ipv4Addr::from(u32::from(first) + 7), 4028);
    assert!(inventory.find(hole).unwrap().is_none());
    fleet.stop().await;
}
