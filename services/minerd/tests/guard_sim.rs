//! The hijack guard over simulated miners mining through minerd's real proxy: every hijack
//! kind the simulator can inject is found, alarmed at a stand-in sited, quarantined, and the
//! miner's sanctioned pools restored; a clean, a rebooting and a sleeping miner raise nothing;
//! findings survive reopening; with sited gone the guard still acts; release lifts it all.
//!
//! Region 127.62.1.0/24 to 127.62.3.0/24.

mod guard_support;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use appliance::config::DurationSecs;
use guard_support::{BOUND, OWNER, Rig, pool, proxy_url, rig, wait_until};
use minerd::cgminer::ClientConfig;
use minerd::hijack::HijackSettings;
use minerd::hijack_guard::{GuardConfig, HijackGuard, NewFinding, alarm_key};
use minerd::inventory::MinerState;
use minerd::operations::{BulkLimits, MinerAction, MinerTarget, run_on_miners};
use minerd::site_alarms::SiteAlarms;
use sim::fleet::{Fault, ModelMix};
use sim::miner::model::Personality;

/// Quick thresholds: silence counts after 3 s over two polls; no boot or wake grace unless a
/// test sets one.
fn quick_settings() -> HijackSettings {
    HijackSettings {
        silence_factor: 1.0,
        min_silence: DurationSecs::from_const(3),
        confirm_polls: 2,
        startup_grace: DurationSecs::from_const(0),
        wake_grace: DurationSecs::from_const(0),
        ..HijackSettings::default()
    }
}

fn guard(rig: &Rig, settings: HijackSettings) -> HijackGuard {
    HijackGuard::open(
        rig.dir.path(),
        GuardConfig {
            miner_urls: vec![proxy_url(&rig.proxy)],
            pool_password: "x".into(),
            settings,
            restore_limits: BulkLimits::default(),
            client: ClientConfig::default(),
        },
        rig.layout.clone(),
        Arc::clone(&rig.inventory),
        Arc::clone(&rig.proxy),
        Arc::clone(&rig.audit),
        Arc::new(SiteAlarms::new(rig.bus.bus())),
    )
    .unwrap()
}

fn identity(ip: Ipv4Addr) -> String {
    format!("{OWNER}.{}", ip.to_string().replace('.', "-"))
}

/// Polls and checks every 300 ms until every miner in `ips` has a new finding.
async fn check_until_found(rig: &Rig, guard: &HijackGuard, ips: &[Ipv4Addr]) -> Vec<NewFinding> {
    let started = std::time::Instant::now();
    let mut found: Vec<NewFinding> = Vec::new();
    while !ips.iter().all(|ip| found.iter().any(|f| f.ip == *ip)) {
        assert!(
            started.elapsed() < BOUND,
            "not every hijack found within {BOUND:?}: {found:?}"
        );
        rig.poll().await;
        found.extend(guard.check(&rig.telemetry).await.unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    found
}

/// The simulator's own view: the pool its Stratum client mines on is the proxy, as the
/// miner's identity.
fn mines_sanctioned(rig: &Rig, ip: Ipv4Addr) -> bool {
    let view = rig.fleet.miner(ip).unwrap().view();
    view.pools
        .iter()
        .any(|p| p.active && p.url == proxy_url(&rig.proxy) && p.user == identity(ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hijack_kind_is_found_alarmed_quarantined_and_the_pools_restored() {
    let rig = rig(1, 5, ModelMix::only(Personality::S19ProBmminer)).await;
    let foreign = pool().await;
    let ips = rig.ips();
    let (hijacked, changed, devfee, hidden, clean) = (ips[0], ips[1], ips[2], ips[3], ips[4]);
    let miner = |ip| rig.fleet.miner(ip).unwrap();
    miner(hijacked).inject(Fault::SelfHijack {
        url: foreign.url(),
        user: "thief.1".into(),
    });
    miner(changed).inject(Fault::UserChange {
        user: "thief.2".into(),
    });
    let devfee_url = format!("{}/devfee", foreign.url());
    miner(devfee).inject(Fault::DevFee {
        url: devfee_url.clone(),
        user: "dev.fee".into(),
        every: Duration::from_millis(800),
        for_: Duration::from_millis(700),
    });
    miner(hidden).inject(Fault::HiddenHashing);

    let guard = guard(&rig, quick_settings());
    let found = check_until_found(&rig, &guard, &[hijacked, changed, devfee, hidden]).await;
    let kinds_of = |ip| -> Vec<&str> {
        found
            .iter()
            .filter(|f| f.ip == ip)
            .map(|f| f.finding.kind())
            .collect()
    };
    assert!(kinds_of(hijacked).contains(&"foreign_pool"), "{found:?}");
    assert!(kinds_of(changed).contains(&"changed_user"), "{found:?}");
    assert!(
        found.iter().any(|f| f.ip == devfee
            && matches!(f.finding.kind(), "foreign_pool" | "devfee_redirect")
            && f.finding.to_string().contains(&devfee_url)),
        "{found:?}"
    );
    assert!(kinds_of(hidden).contains(&"hashing_elsewhere"), "{found:?}");
    assert!(found.iter().all(|f| f.owner == OWNER));

    // Alarmed at sited, one key per miner, as minerd.
    let alarms = rig.site.as_ref().unwrap().alarms().await.unwrap();
    for ip in [hijacked, changed, devfee, hidden] {
        let alarm = alarms
            .iter()
            .find(|a| a.key == alarm_key(ip))
            .unwrap_or_else(|| panic!("no alarm for {ip}: {alarms:?}"));
        assert_eq!(alarm.source, "minerd");
        assert!(alarm.severity.is_some());
        assert!(alarm.summary.contains(&ip.to_string()), "{}", alarm.summary);
        // Quarantined in the inventory and at the proxy.
        assert_eq!(rig.record(ip).state, MinerState::Quarantined);
        assert!(rig.proxy.miner(IpAddr::V4(ip)).unwrap().quarantined);
    }
    // The sanctioned pools are back on the miners (the dev fee keeps interrupting, but the
    // proxy is what it returns to).
    // Hidden hashing leaves the list as it was (sanctioned): nothing to restore; once the
    // firmware stops hiding, the quarantined miner mines for its owner through the proxy again.
    let hidden_pools = miner(hidden).view().pools;
    assert!(
        hidden_pools
            .iter()
            .all(|p| p.url == proxy_url(&rig.proxy) && p.user == identity(hidden)),
        "{hidden_pools:?}"
    );
    miner(hidden).clear_faults();
    for ip in [hijacked, changed, devfee, hidden] {
        let what = format!("{ip} mines on the sanctioned pool again");
        let started = std::time::Instant::now();
        while !mines_sanctioned(&rig, ip) {
            let view = rig.fleet.miner(ip).unwrap().view();
            assert!(started.elapsed() < BOUND, "{what}: {:?}", view.pools);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let view = miner(hijacked).view();
    assert!(
        view.pools.iter().all(|p| p.url != foreign.url()),
        "{:?}",
        view.pools
    );
    // The clean miner: nothing, and still mining as before.
    assert!(kinds_of(clean).is_empty());
    assert!(alarms.iter().all(|a| a.key != alarm_key(clean)));
    assert_eq!(rig.record(clean).state, MinerState::Active);
    // Each open finding is kept.
    let kept = guard.findings().unwrap();
    assert!(kept.iter().filter(|f| f.open).count() >= 4, "{kept:?}");
    assert!(kept.iter().all(|f| f.ip != clean.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_a_rebooting_and_a_sleeping_miner_raise_nothing() {
    let rig = rig(2, 3, ModelMix::only(Personality::S19jProBosminer)).await;
    let ips = rig.ips();
    let (rebooting, sleeping) = (ips[0], ips[1]);
    rig.fleet
        .miner(rebooting)
        .unwrap()
        .inject(Fault::Rebooting(Duration::from_secs(3)));
    let record = rig.record(sleeping);
    let report = run_on_miners(
        "operator:test",
        MinerAction::Sleep,
        vec![MinerTarget {
            id: sleeping.to_string(),
            api: record.addr.into(),
            firmware: record.firmware,
        }],
        BulkLimits::default(),
        ClientConfig::default(),
        &rig.audit,
        None,
    )
    .await
    .unwrap();
    assert_eq!(report.done, 1, "{report:?}");
    rig.inventory
        .set_state(record.id, MinerState::Sleeping)
        .unwrap();
    wait_until("the miner sleeps", || {
        rig.fleet.miner(sleeping).unwrap().view().sleeping
    })
    .await;

    // A reboot takes the firmware's boot time to reconnect: the grace covers it.
    let settings = HijackSettings {
        startup_grace: DurationSecs::from_const(20),
        ..quick_settings()
    };
    let guard = guard(&rig, settings);
    // 12 s of polls: the reboot ends, the silence limit passes several times over.
    let started = std::time::Instant::now();
    let mut saw_reboot_back = false;
    while started.elapsed() < Duration::from_secs(12) {
        rig.poll().await;
        let found = guard.check(&rig.telemetry).await.unwrap();
        assert!(found.is_empty(), "{found:?}");
        let view = rig.fleet.miner(rebooting).unwrap().view();
        saw_reboot_back |= !view.rebooting && view.hashrate_ths > 0.0;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(saw_reboot_back, "the rebooting miner never came back");
    assert!(guard.findings().unwrap().is_empty());
    let alarms = rig.site.as_ref().unwrap().alarms().await.unwrap();
    assert!(alarms.is_empty(), "{alarms:?}");
    for ip in ips {
        assert_ne!(rig.record(ip).state, MinerState::Quarantined);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sited_the_guard_still_acts_and_findings_survive_reopening_until_release() {
    let mut rig = rig(3, 2, ModelMix::only(Personality::S9Bmminer)).await;
    // sited leaves the bus: alarms cannot be delivered, and nothing else may fail.
    rig.site.take().unwrap().stop().await.unwrap();
    let foreign = pool().await;
    let hijacked = rig.ips()[0];
    rig.fleet
        .miner(hijacked)
        .unwrap()
        .inject(Fault::SelfHijack {
            url: foreign.url(),
            user: "thief.1".into(),
        });
    let first = guard(&rig, quick_settings());
    let found = check_until_found(&rig, &first, &[hijacked]).await;
    assert!(found.iter().any(|f| f.finding.kind() == "foreign_pool"));
    assert_eq!(rig.record(hijacked).state, MinerState::Quarantined);
    let before = first.findings().unwrap();
    drop(first);

    // Reopened (a restart): the findings are there, still open, and the proxy quarantine is
    // re-applied from the inventory even after it was lifted behind the guard's back.
    rig.proxy.quarantine(IpAddr::V4(hijacked), false);
    let reopened = guard(&rig, quick_settings());
    let after = reopened.findings().unwrap();
    assert_eq!(before, after);
    assert!(after.iter().any(|f| f.ip == hijacked.to_string()
        && f.kind == "foreign_pool"
        && f.open
        // critical once it mined there; warning when caught while still only configured
        && matches!(f.severity.as_str(), "critical" | "warning")
        && f.sentence.contains(&foreign.url())));
    assert!(rig.proxy.miner(IpAddr::V4(hijacked)).unwrap().quarantined);

    // sited is back; the operator releases the miner.
    let site = appliance::dbus::testsite::StandInSite::start(
        &rig.bus.bus(),
        appliance::dbus::contracts::SiteState::Normal,
        "all well",
    )
    .await
    .unwrap();
    reopened
        .release(hijacked, "operator:alice", "pools checked by hand")
        .await
        .unwrap();
    assert_eq!(rig.record(hijacked).state, MinerState::Active);
    assert!(!rig.proxy.miner(IpAddr::V4(hijacked)).unwrap().quarantined);
    let closed = reopened.findings().unwrap();
    assert!(closed.iter().all(|f| !f.open), "{closed:?}");
    assert!(
        closed
            .iter()
            .all(|f| f.closed_by.as_deref() == Some("operator:alice"))
    );
    let alarms = site.alarms().await.unwrap();
    assert!(
        alarms
            .iter()
            .any(|a| a.key == alarm_key(hijacked) && a.severity.is_none()),
        "{alarms:?}"
    );
    // The miner mines cleanly again: further checks find nothing new.
    wait_until("the sanctioned pool is active again", || {
        mines_sanctioned(&rig, hijacked)
    })
    .await;
    for _ in 0..3 {
        rig.poll().await;
        let found = reopened.check(&rig.telemetry).await.unwrap();
        assert!(found.is_empty(), "{found:?}");
    }
}
