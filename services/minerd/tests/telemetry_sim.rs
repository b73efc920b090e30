//! Poll cycles over simulated miners with faults injected: 5 % hung, and slow, malformed,
//! truncated, oversized and rebooting ones. The cycle ends within a bound far below the hang,
//! the faulty miners are counted by kind, and every other miner is fresh.
//!
//! Regions 127.82.0.0/24 and 127.82.1.0/24 (not the simulator's 127.1/16, so as never to meet its own tests).

mod scan_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minerd::inventory::{Inventory, MinerFilter};
use minerd::telemetry::{PollFailure, Telemetry, TelemetrySettings};
use scan_support::{inventory_in, one_range_layout, scan};
use sim::fleet::{Fault, Fleet, FleetSpec, SimPool, raise_fd_limit};
use sim::pool::{PoolSpec, TestPool};

const MINERS: usize = 200;

/// A simulated fleet mining on a test pool (boards hash only with work from a pool), found
/// by a discovery scan, once every miner hashes.
async fn discovered_fleet(net: u8, dir: &std::path::Path) -> (Fleet, TestPool, Arc<Inventory>) {
    raise_fd_limit().unwrap();
    let pool = TestPool::start(PoolSpec::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut spec = FleetSpec::new(Ipv4Addr::new(127, 82, net, 1), MINERS);
    spec.pools = vec![SimPool {
        url: pool.url(),
        user: "acme.{ip-with-dashes}".into(),
        password: "x".into(),
    }];
    // Real share search is not what this test is about: keep its CPU small.
    spec.hash_budget = 2_000.0;
    let fleet = Fleet::start(spec).await.unwrap();
    let waited = Instant::now();
    while fleet.miners().iter().any(|m| m.view().hashrate_ths <= 0.0) {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the fleet never started hashing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let layout = one_range_layout(&format!("127.82.{net}.0/24"), "acme", "hall A");
    let inventory = inventory_in(dir);
    let report = scan(&layout, &inventory).await;
    assert_eq!(report.miners_found, MINERS);
    (fleet, pool, inventory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_slow_and_broken_miners_never_stall_the_poll() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, pool, inventory) = discovered_fleet(0, dir.path()).await;
    let miners = fleet.miners();
    // 5 % hung; then a few of each other kind.
    let mut faulty: BTreeMap<SocketAddr, PollFailure> = BTreeMap::new();
    let mut inject = |range: std::ops::Range<usize>, fault: Fault, kind: PollFailure| {
        for m in &miners[range] {
            m.inject(fault.clone());
            faulty.insert(m.api_address(), kind);
        }
    };
    inject(0..10, Fault::Hang, PollFailure::Timeout);
    inject(
        10..13,
        Fault::Slow(Duration::from_secs(30)),
        PollFailure::Timeout,
    );
    inject(13..16, Fault::Malformed, PollFailure::Malformed);
    inject(16..18, Fault::Truncated, PollFailure::Malformed);
    inject(18..20, Fault::Oversized, PollFailure::Oversized);
    inject(
        20..22,
        Fault::Rebooting(Duration::from_secs(120)),
        PollFailure::Refused,
    );
    // Slow but within the deadline: still fresh.
    for m in &miners[22..25] {
        m.inject(Fault::Slow(Duration::from_millis(200)));
    }

    let telemetry = Telemetry::new(TelemetrySettings {
        deadline_ms: 1000,
        ..TelemetrySettings::default()
    });
    let records = inventory.list(&MinerFilter::default()).unwrap();
    let started = Instant::now();
    let report = telemetry.poll(&records).await;
    // One deadline (1 s) for the hung ones, in parallel with everyone else: 10 s is far
    // below the hang (forever) and the 30 s trickle, and generous for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let mut expected: BTreeMap<PollFailure, usize> = BTreeMap::new();
    for kind in faulty.values() {
        *expected.entry(*kind).or_default() += 1;
    }
    assert_eq!(report.failures, expected);
    assert_eq!(report.ok, MINERS - faulty.len());

    for status in telemetry.statuses() {
        let view = fleet
            .miner(match status.addr.ip() {
                std::net::IpAddr::V4(ip) => ip,
                other => panic!("{other}"),
            })
            .unwrap()
            .view();
        match faulty.get(&status.addr) {
            Some(kind) => {
                assert_eq!(status.last_poll, Err(*kind), "{}", status.addr);
                assert!(status.snapshot.is_none());
            }
            None => {
                assert_eq!(status.last_poll, Ok(()), "{}", status.addr);
                assert_eq!(status.last_ok_at, Some(report.started_at));
                let snapshot = status.snapshot.as_ref().unwrap();
                assert_eq!(snapshot.model.as_deref(), Some(view.model.as_str()));
                let ths = snapshot.hashrate_5s.unwrap().terahashes();
                assert!(ths > 0.0, "{}: {ths} TH/s", status.addr);
            }
        }
    }

    // The faults clear (the rebooting ones come back later): the next poll is clean for all
    // but those still rebooting.
    for m in &miners[..20] {
        m.clear_faults();
    }
    let report = telemetry.poll(&records).await;
    assert_eq!(report.failures.get(&PollFailure::Timeout), None);
    assert_eq!(report.ok + report.failures.values().sum::<usize>(), MINERS);
    assert!(report.ok >= MINERS - 2, "{:?}", report.failures);
    fleet.stop().await;
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_follow_the_simulated_fleet() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, pool, inventory) = discovered_fleet(1, dir.path()).await;
    let telemetry = Telemetry::new(TelemetrySettings::default());
    let report = telemetry.cycle(&inventory, false).await.unwrap();
    assert_eq!(report.ok, MINERS);
    let fleet_view: f64 = fleet.miners().iter().map(|m| m.view().hashrate_ths).sum();
    let aggregate = telemetry.aggregates().fleet;
    assert_eq!((aggregate.up, aggregate.down), (MINERS, 0));
    // The simulator's hashrate moves a little between its view and the poll.
    let ratio = aggregate.hashrate_ths / fleet_view;
    assert!(
        (0.8..1.25).contains(&ratio),
        "polled {} vs simulated {fleet_view}",
        aggregate.hashrate_ths
    );
    assert!(aggregate.hottest_chip_c.is_some());
    assert_eq!(report.samples.len(), MINERS);
    fleet.stop().await;
    pool.stop().await;
}
