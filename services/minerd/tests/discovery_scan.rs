//! Discovery over real loopback addresses: in-test miners (captured fixture replies) at some
//! addresses of a small range, misbehaving listeners at others, nothing at the rest.

mod scan_support;
mod telemetry_fake_miner;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minerd::cgminer::FirmwareKind;
use minerd::discovery::{DiscoverySettings, discover};
use minerd::inventory::{MinerFilter, MinerState};
use minerd::site_layout::SiteLayout;
use minerd::telemetry::PollFailure;
use scan_support::{inventory_in, one_range_layout};
use telemetry_fake_miner::{BOSMINER_JOINED, Behaviour, FakeMiner, S21_JOINED};

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 77, 1, last)
}

fn layout() -> SiteLayout {
    one_range_layout("127.77.1.0/27", "acme", "hall A")
}

fn settings() -> DiscoverySettings {
    DiscoverySettings {
        concurrency: 8,
        deadline_ms: 500,
        missing_after_scans: 1,
        ..DiscoverySettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_finds_exactly_the_miners_and_names_them() {
    let mut miners = vec![
        FakeMiner::start(ip(2), 4028, Behaviour::Joined(S21_JOINED)).await,
        FakeMiner::start(ip(3), 4028, Behaviour::Joined(S21_JOINED)).await,
        FakeMiner::start(ip(5), 4028, Behaviour::Joined(BOSMINER_JOINED)).await,
        // Refuses joined commands: identified through single ones.
        FakeMiner::start(ip(7), 4028, Behaviour::SinglesOnlyS9).await,
    ];
    let _hung = FakeMiner::start(ip(9), 4028, Behaviour::Hang).await;
    let _garbage = FakeMiner::start(ip(11), 4028, Behaviour::Malformed).await;
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_in(dir.path());

    let started = Instant::now();
    let report = discover(&layout(), &settings(), Arc::clone(&inventory))
        .await
        .unwrap();
    // The hung listener costs one deadline (0.5 s), not an hour.
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(report.addresses_scanned, 30);
    assert_eq!(report.miners_found, 4);
    let found = |last: &[u8]| -> Vec<SocketAddrV4> {
        last.iter()
            .map(|l| SocketAddrV4::new(ip(*l), 4028))
            .collect()
    };
    assert_eq!(report.changes.new, found(&[2, 3, 5, 7]));
    assert_eq!(report.errors.get(&PollFailure::Timeout), Some(&1));
    assert_eq!(report.errors.get(&PollFailure::Malformed), Some(&1));

    let all = inventory.list(&MinerFilter::default()).unwrap();
    let named: Vec<(u8, Option<&str>, FirmwareKind)> = all
        .iter()
        .map(|m| (m.addr.ip().octets()[3], m.model.as_deref(), m.firmware))
        .collect();
    assert_eq!(
        named,
        [
            (2, Some("Antminer S21 XP Hyd."), FirmwareKind::Bmminer),
            (3, Some("Antminer S21 XP Hyd."), FirmwareKind::Bmminer),
            (5, Some("Antminer S9"), FirmwareKind::Bosminer),
            (7, Some("Antminer S9"), FirmwareKind::Bmminer),
        ]
    );
    assert!(
        all.iter()
            .all(|m| m.owner == "acme" && m.location == "hall A")
    );

    // .3 is switched off: the next scan (missing after one miss) marks it missing; the hung
    // and garbled listeners were never miners and stay out of the inventory.
    miners.remove(1).stop().await;
    let report = discover(&layout(), &settings(), Arc::clone(&inventory))
        .await
        .unwrap();
    assert_eq!(report.miners_found, 3);
    assert!(report.changes.new.is_empty());
    assert_eq!(report.changes.missing, found(&[3]));
    let gone = inventory.find(found(&[3])[0]).unwrap().unwrap();
    assert_eq!(gone.state, MinerState::Missing);
    assert_eq!(inventory.list(&MinerFilter::default()).unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firmware_change_is_reported() {
    let addr = Ipv4Addr::new(127, 77, 2, 4);
    let layout = one_range_layout("127.77.2.0/29", "acme", "hall B");
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_in(dir.path());
    let stock = FakeMiner::start(addr, 4028, Behaviour::SinglesOnlyS9).await;
    let report = discover(&layout, &settings(), Arc::clone(&inventory))
        .await
        .unwrap();
    assert_eq!(report.changes.new.len(), 1);
    stock.stop().await;
    // The same S9 reflashed with Braiins OS.
    let _reflashed = FakeMiner::start(addr, 4028, Behaviour::Joined(BOSMINER_JOINED)).await;
    let report = discover(&layout, &settings(), Arc::clone(&inventory))
        .await
        .unwrap();
    assert_eq!(report.changes.changed, [SocketAddrV4::new(addr, 4028)]);
    let record = inventory
        .find(SocketAddrV4::new(addr, 4028))
        .unwrap()
        .unwrap();
    assert_eq!(record.firmware, FirmwareKind::Bosminer);
    assert_eq!(record.state, MinerState::Active);
}
