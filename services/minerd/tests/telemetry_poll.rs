//! Poll cycles over in-test miners where some hang, trickle, garble, flood or refuse: the
//! cycle ends within a bound far below the hang, each failure is counted by its kind, and every
//! other miner is fresh.

mod scan_support;
mod telemetry_fake_miner;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minerd::cgminer::FirmwareKind;
use minerd::discovery::{DiscoverySettings, discover};
use minerd::inventory::{Inventory, MinerFilter, Resolution};
use minerd::telemetry::{PollFailure, Telemetry, TelemetrySettings};
use scan_support::{inventory_in, one_range_layout};
use telemetry_fake_miner::{BOSMINER_JOINED, Behaviour, FakeMiner, S21_JOINED};

/// Each test has its own /24 of loopback (tests run in parallel).
fn ip(net: u8, last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 78, net, last)
}

/// 40 addresses: misbehaving miners at .1 to .8, healthy ones from .9 on.
async fn fleet(net: u8) -> Vec<FakeMiner> {
    let slow_within = Behaviour::Slow(
        Duration::from_millis(100),
        Box::new(Behaviour::Joined(S21_JOINED)),
    );
    let slow_beyond = Behaviour::Slow(
        Duration::from_secs(60),
        Box::new(Behaviour::Joined(S21_JOINED)),
    );
    let mut miners = vec![
        FakeMiner::start(ip(net, 1), 4028, Behaviour::Hang).await,
        FakeMiner::start(ip(net, 2), 4028, Behaviour::Hang).await,
        FakeMiner::start(ip(net, 3), 4028, slow_beyond).await,
        FakeMiner::start(ip(net, 4), 4028, slow_within).await,
        FakeMiner::start(ip(net, 5), 4028, Behaviour::Malformed).await,
        FakeMiner::start(ip(net, 6), 4028, Behaviour::Truncated).await,
        FakeMiner::start(ip(net, 7), 4028, Behaviour::Oversized).await,
        // .8: nothing listens (rebooting): refused.
        FakeMiner::start(ip(net, 9), 4028, Behaviour::SinglesOnlyS9).await,
    ];
    for last in 10..=40 {
        let behaviour = if last % 2 == 0 {
            Behaviour::Joined(S21_JOINED)
        } else {
            Behaviour::Joined(BOSMINER_JOINED)
        };
        miners.push(FakeMiner::start(ip(net, last), 4028, behaviour).await);
    }
    miners
}

fn records(inventory: &Inventory) -> Vec<minerd::inventory::MinerRecord> {
    inventory.list(&MinerFilter::default()).unwrap()
}

/// An inventory holding all 40 addresses; the misbehaving ones entered as what they were
/// before they broke (the scan is done against healthy stand-ins first).
async fn inventory_of_fleet(net: u8, dir: &std::path::Path) -> Arc<Inventory> {
    let layout = one_range_layout(&format!("127.78.{net}.0/26"), "acme", "hall A");
    let inventory = inventory_in(dir);
    let mut stand_ins = Vec::new();
    for last in 1..=8 {
        stand_ins.push(FakeMiner::start(ip(net, last), 4028, Behaviour::Joined(S21_JOINED)).await);
    }
    let settings = DiscoverySettings {
        deadline_ms: 1000,
        ..DiscoverySettings::default()
    };
    let mut healthy = Vec::new();
    for last in 9..=40 {
        healthy.push(FakeMiner::start(ip(net, last), 4028, Behaviour::Joined(S21_JOINED)).await);
    }
    let report = discover(&layout, &settings, Arc::clone(&inventory))
        .await
        .unwrap();
    assert_eq!(report.miners_found, 40);
    for m in stand_ins.into_iter().chain(healthy) {
        m.stop().await;
    }
    inventory
}

fn settings() -> TelemetrySettings {
    TelemetrySettings {
        deadline_ms: 700,
        concurrency: 16,
        ..TelemetrySettings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_miners_are_counted_by_kind_and_never_stall_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_of_fleet(1, dir.path()).await;
    let _fleet = fleet(1).await;
    let telemetry = Telemetry::new(settings());
    let miners = records(&inventory);

    let started = Instant::now();
    let report = telemetry.poll(&miners).await;
    // Hung miners cost one deadline (0.7 s) each in parallel, never their hour; 10 s is far
    // below the 60 s trickle and the hang, and generous for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.polled, 40);
    let expected: BTreeMap<PollFailure, usize> = [
        (PollFailure::Timeout, 3),
        (PollFailure::Malformed, 2),
        (PollFailure::Oversized, 1),
        (PollFailure::Refused, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(report.failures, expected);
    assert_eq!(report.ok, 33);
    assert_eq!(report.samples.len(), 33);

    let by_ip = |last: u8| {
        let addr = SocketAddr::V4(SocketAddrV4::new(ip(1, last), 4028));
        telemetry
            .statuses()
            .into_iter()
            .find(|s| s.addr == addr)
            .unwrap()
    };
    for (last, kind) in [
        (1, PollFailure::Timeout),
        (3, PollFailure::Timeout),
        (5, PollFailure::Malformed),
        (6, PollFailure::Malformed),
        (7, PollFailure::Oversized),
        (8, PollFailure::Refused),
    ] {
        let s = by_ip(last);
        assert_eq!(s.last_poll, Err(kind), ".{last}");
        assert_eq!(s.consecutive_failures, 1);
        assert!(s.snapshot.is_none());
    }
    // Everyone else is fresh from this very cycle, including the slow-but-in-time one and
    // the firmware that refuses joined commands.
    for last in [4, 9, 10, 11, 25, 40] {
        let s = by_ip(last);
        assert_eq!(s.last_poll, Ok(()), ".{last}");
        assert_eq!(s.last_ok_at, Some(report.started_at));
        assert!(s.snapshot.as_ref().unwrap().hashrate_5s.is_some());
    }
    assert_eq!(
        by_ip(9).snapshot.as_ref().unwrap().model.as_deref(),
        Some("Antminer S9")
    );
    assert_eq!(
        by_ip(11).snapshot.as_ref().unwrap().firmware,
        Some(FirmwareKind::Bosminer),
        "the inventory says bmminer (stand-in), the reply says BOSminer"
    );

    // A second cycle: failures accumulate, the S9 is polled one command at a time.
    let report = telemetry.poll(&miners).await;
    assert_eq!(report.ok, 33);
    assert_eq!(by_ip(1).consecutive_failures, 2);
    assert_eq!(by_ip(9).last_poll, Ok(()));

    let all = telemetry.aggregates().fleet;
    assert_eq!((all.up, all.down, all.sleeping), (33, 7, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_writes_history_for_the_miners_that_answered() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_of_fleet(2, dir.path()).await;
    let _fleet = fleet(2).await;
    let telemetry = Telemetry::new(settings());
    let report = telemetry.cycle(&inventory, true).await.unwrap();
    assert_eq!(report.ok, 33);
    let miners = records(&inventory);
    let history = |last: u8| {
        let m = miners
            .iter()
            .find(|m| m.addr.ip().octets()[3] == last)
            .unwrap();
        inventory
            .history(m.id, Resolution::Minute, 0, i64::MAX)
            .unwrap()
    };
    let healthy = history(10);
    assert_eq!(healthy.len(), 1);
    assert_eq!(healthy[0].samples, 1);
    assert!((healthy[0].avg_hashrate_ths - 483.97925).abs() < 1e-3);
    assert_eq!(healthy[0].max_chip_temp_c, Some(63.0));
    assert!(history(1).is_empty(), "a hung miner has no sample");
    assert_eq!(
        inventory
            .history(miners[0].id, Resolution::Hour, 0, i64::MAX)
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_poll_loop_runs_cycle_after_cycle_and_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory_of_fleet(3, dir.path()).await;
    let _fleet = fleet(3).await;
    let telemetry = Arc::new(Telemetry::new(TelemetrySettings {
        interval_secs: 1,
        ..settings()
    }));
    let (reports, mut received) = tokio::sync::mpsc::unbounded_channel();
    let loop_task = tokio::spawn(Arc::clone(&telemetry).run(
        Arc::clone(&inventory),
        move |report, telemetry| {
            let _ = reports.send((report.ok, telemetry.aggregates().fleet.up));
        },
    ));
    for _ in 0..2 {
        let (ok, up) = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .expect("a cycle within 20 s")
            .unwrap();
        assert_eq!((ok, up), (33, 33));
    }
    loop_task.abort();
    // The first cycle pruned and both wrote history: two samples in the current minute or
    // one in each of two.
    let miners = records(&inventory);
    let healthy = miners
        .iter()
        .find(|m| m.addr.ip().octets()[3] == 10)
        .unwrap();
    let samples: u32 = inventory
        .history(healthy.id, Resolution::Minute, 0, i64::MAX)
        .unwrap()
        .iter()
        .map(|p| p.samples)
        .sum();
    assert!(samples >= 2, "{samples}");
}
