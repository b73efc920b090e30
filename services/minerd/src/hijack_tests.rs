use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::cgminer::{Hashrate, MinerSnapshot, PoolState, PoolStatus};

const PROXY_A: &str = "stratum+tcp://10.0.0.1:3333";
const PROXY_B: &str = "stratum+tcp://10.0.0.2:3333";
const USER: &str = "client7.m-127-1-0-2";
const FOREIGN: &str = "stratum+tcp://evil.example:4444";

fn sanctioned() -> Vec<SanctionedPool> {
    [PROXY_A, PROXY_B]
        .iter()
        .map(|url| SanctionedPool {
            url: (*url).into(),
            user: USER.into(),
        })
        .collect()
}

fn pool(index: u32, url: &str, user: &str, active: bool) -> PoolStatus {
    PoolStatus {
        index,
        url: url.into(),
        user: user.into(),
        state: PoolState::Alive,
        priority: Some(index),
        stratum_active: active,
        accepted: 0,
        rejected: 0,
        stale: 0,
        last_share: None,
    }
}

fn snapshot(pools: Vec<PoolStatus>, ths: f64, uptime_s: u64) -> MinerSnapshot {
    MinerSnapshot {
        hashrate_5s: Hashrate::from_unit(ths, "TH"),
        uptime: Some(Duration::from_secs(uptime_s)),
        pools,
        ..MinerSnapshot::default()
    }
}

fn clean_pools() -> Vec<PoolStatus> {
    vec![pool(0, PROXY_A, USER, true), pool(1, PROXY_B, USER, false)]
}

fn proxy_healthy() -> ProxyView {
    ProxyView {
        connected: true,
        connected_for: Duration::from_secs(3600),
        authorized_user: Some(USER.into()),
        last_share_ago: Some(Duration::from_secs(4)),
        expected_share_interval: Duration::from_secs(10),
    }
}

fn proxy_silent() -> ProxyView {
    ProxyView {
        connected: false,
        connected_for: Duration::ZERO,
        authorized_user: None,
        last_share_ago: Some(Duration::from_secs(900)),
        expected_share_interval: Duration::from_secs(10),
    }
}

struct Poller {
    watch: HijackWatch,
    t: Instant,
}

impl Poller {
    fn new() -> Poller {
        Poller {
            watch: HijackWatch::new(sanctioned(), HijackSettings::default()),
            t: Instant::now(),
        }
    }

    /// One poll, 60 s after the previous one.
    fn poll(&mut self, snap: &MinerSnapshot, asleep: bool, proxy: &ProxyView) -> Vec<Finding> {
        self.t += Duration::from_secs(60);
        self.watch.observe(&Observation {
            at: self.t,
            snapshot: snap,
            asleep,
            proxy,
        })
    }
}

#[test]
fn a_clean_miner_has_no_findings() {
    let mut p = Poller::new();
    for _ in 0..10 {
        assert!(
            p.poll(
                &snapshot(clean_pools(), 95.0, 86_400),
                false,
                &proxy_healthy()
            )
            .is_empty()
        );
    }
}

#[test]
fn an_active_foreign_pool_is_critical_and_an_idle_one_a_warning() {
    let mut p = Poller::new();
    let hijacked = vec![
        pool(0, FOREIGN, "thief.1", true),
        pool(1, PROXY_A, USER, false),
    ];
    let findings = p.poll(&snapshot(hijacked, 95.0, 86_400), false, &proxy_silent());
    let foreign = findings
        .iter()
        .find(|f| f.kind() == "foreign_pool")
        .expect("foreign pool found");
    assert_eq!(foreign.severity(), Severity::Critical);
    let text = foreign.to_string();
    assert!(
        text.contains("evil.example") && text.contains("10.0.0.1"),
        "{text}"
    );

    let listed = vec![
        pool(0, PROXY_A, USER, true),
        pool(1, FOREIGN, "thief.1", false),
    ];
    let findings = p.poll(&snapshot(listed, 95.0, 86_400), false, &proxy_healthy());
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert!(matches!(
        &findings[0],
        Finding::ForeignPool { active: false, .. }
    ));
    assert_eq!(findings[0].severity(), Severity::Warning);
}

#[test]
fn a_changed_user_is_found_in_the_list_and_at_the_proxy() {
    let mut p = Poller::new();
    let pools = vec![pool(0, PROXY_A, "someone.else", true)];
    let findings = p.poll(&snapshot(pools, 95.0, 86_400), false, &proxy_healthy());
    assert_eq!(
        findings,
        vec![Finding::ChangedUser {
            url: PROXY_A.into(),
            user: "someone.else".into(),
            expected: USER.into(),
            active: true,
            at_proxy: false,
        }]
    );
    assert_eq!(findings[0].severity(), Severity::Critical);
    // The same entry waiting in the list while a sanctioned one mines: a warning.
    let pools = vec![
        pool(0, PROXY_B, USER, true),
        pool(1, PROXY_A, "someone.else", false),
    ];
    let findings = p.poll(&snapshot(pools, 95.0, 86_400), false, &proxy_healthy());
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].severity(), Severity::Warning);

    let proxy = ProxyView {
        authorized_user: Some("someone.else".into()),
        ..proxy_healthy()
    };
    let findings = p.poll(&snapshot(clean_pools(), 95.0, 86_400), false, &proxy);
    assert!(matches!(
        &findings[..],
        [Finding::ChangedUser { at_proxy: true, .. }]
    ));
    assert_eq!(findings[0].severity(), Severity::Critical);
}

#[test]
fn a_foreign_pool_active_for_a_while_then_back_is_a_devfee_redirect() {
    let mut p = Poller::new();
    let fee = vec![
        pool(0, PROXY_A, USER, false),
        pool(1, "stratum+tcp://fee.example:3333", "acct.x", true),
    ];
    p.poll(&snapshot(fee.clone(), 95.0, 86_400), false, &proxy_silent());
    p.poll(&snapshot(fee, 95.0, 86_400), false, &proxy_silent());
    let back = vec![
        pool(0, PROXY_A, USER, true),
        pool(1, "stratum+tcp://fee.example:3333", "acct.x", false),
    ];
    let findings = p.poll(&snapshot(back, 95.0, 86_400), false, &proxy_healthy());
    let redirect = findings
        .iter()
        .find_map(|f| match f {
            Finding::DevFeeRedirect { evidence, .. } => Some(*evidence),
            _ => None,
        })
        .expect("a devfee redirect");
    assert_eq!(
        redirect,
        DevFeeEvidence::ActiveThenBack {
            episodes: 1,
            lasted: Duration::from_secs(120)
        }
    );
}

#[test]
fn shares_accepted_by_an_idle_foreign_pool_are_a_devfee_redirect() {
    let mut p = Poller::new();
    let mut fee = pool(1, "stratum+tcp://fee.example:3333", "acct.x", false);
    fee.accepted = 10;
    let pools = |fee: &PoolStatus| vec![pool(0, PROXY_A, USER, true), fee.clone()];
    let first = p.poll(
        &snapshot(pools(&fee), 95.0, 86_400),
        false,
        &proxy_healthy(),
    );
    assert!(!first.iter().any(|f| f.kind() == "devfee_redirect"));
    fee.accepted = 14;
    let findings = p.poll(
        &snapshot(pools(&fee), 95.0, 86_400),
        false,
        &proxy_healthy(),
    );
    assert!(findings.iter().any(|f| matches!(
        f,
        Finding::DevFeeRedirect {
            evidence: DevFeeEvidence::SharesAccepted { shares: 4 },
            ..
        }
    )));
}

#[test]
fn a_devfee_named_entry_is_reported_as_such() {
    let mut p = Poller::new();
    let pools = vec![
        pool(0, PROXY_A, USER, true),
        pool(1, "stratum+tcp://pool.example:3333", "DevFee.42", false),
    ];
    let findings = p.poll(&snapshot(pools, 95.0, 86_400), false, &proxy_healthy());
    assert!(findings.iter().any(|f| matches!(
        f,
        Finding::DevFeeRedirect {
            evidence: DevFeeEvidence::Named,
            ..
        }
    )));
}

#[test]
fn hashrate_without_shares_at_the_proxy_is_hashing_elsewhere_after_confirmation() {
    let mut p = Poller::new();
    let snap = snapshot(clean_pools(), 95.0, 86_400);
    let confirm = HijackSettings::default().confirm_polls;
    for _ in 1..confirm {
        assert!(p.poll(&snap, false, &proxy_silent()).is_empty());
    }
    let findings = p.poll(&snap, false, &proxy_silent());
    assert!(matches!(
        &findings[..],
        [Finding::HashingElsewhere {
            proxy_connected: false,
            ..
        }]
    ));
    assert_eq!(findings[0].severity(), Severity::Critical);
    // Connected but silent for too long counts as well.
    let connected_silent = ProxyView {
        connected: true,
        connected_for: Duration::from_secs(3600),
        authorized_user: Some(USER.into()),
        last_share_ago: Some(Duration::from_secs(1800)),
        expected_share_interval: Duration::from_secs(10),
    };
    assert_eq!(p.poll(&snap, false, &connected_silent).len(), 1);
}

#[test]
fn a_sleeping_miner_is_not_hashing_elsewhere() {
    let mut p = Poller::new();
    for _ in 0..10 {
        // Asleep: no hashrate, no connection.
        let snap = snapshot(clean_pools(), 0.0, 86_400);
        assert!(p.poll(&snap, true, &proxy_silent()).is_empty());
    }
}

#[test]
fn a_freshly_woken_miner_gets_its_grace() {
    let mut p = Poller::new();
    p.poll(&snapshot(clean_pools(), 0.0, 86_400), true, &proxy_silent());
    // Woken: hashes at once, the proxy sees nothing yet for a few polls (60 s apart).
    let snap = snapshot(clean_pools(), 95.0, 86_400);
    for _ in 0..4 {
        assert!(p.poll(&snap, false, &proxy_silent()).is_empty());
    }
}

#[test]
fn a_rebooting_miner_is_not_a_hijack() {
    let mut p = Poller::new();
    // Boards up (hashrate reported), uptime short, not yet reconnected to the proxy.
    for uptime in [30, 90, 150, 210, 270] {
        let snap = snapshot(clean_pools(), 40.0, uptime);
        assert!(p.poll(&snap, false, &proxy_silent()).is_empty());
    }
    assert!(
        p.poll(&snapshot(clean_pools(), 95.0, 330), false, &proxy_healthy())
            .is_empty()
    );
}

#[test]
fn failing_over_between_sanctioned_proxy_urls_is_clean() {
    let mut p = Poller::new();
    let mut dead_a = pool(0, PROXY_A, USER, false);
    dead_a.state = PoolState::Dead;
    let on_b = vec![dead_a, pool(1, PROXY_B, USER, true)];
    // One poll catches the reconnect gap.
    let gap = ProxyView {
        connected: false,
        ..proxy_healthy()
    };
    assert!(
        p.poll(&snapshot(on_b.clone(), 95.0, 86_400), false, &gap)
            .is_empty()
    );
    for _ in 0..5 {
        assert!(
            p.poll(
                &snapshot(on_b.clone(), 95.0, 86_400),
                false,
                &proxy_healthy()
            )
            .is_empty()
        );
    }
    assert!(
        p.poll(
            &snapshot(clean_pools(), 95.0, 86_400),
            false,
            &proxy_healthy()
        )
        .is_empty()
    );
}

#[test]
fn the_active_pool_falls_back_to_priority_order() {
    let mut a = pool(0, PROXY_A, USER, false);
    a.priority = Some(1);
    let mut b = pool(1, FOREIGN, "thief", false);
    b.priority = Some(0);
    let mut p = Poller::new();
    let findings = p.poll(&snapshot(vec![a, b], 95.0, 86_400), false, &proxy_healthy());
    assert!(matches!(
        &findings[0],
        Finding::ForeignPool { active: true, .. }
    ));
}

#[test]
fn settings_refuse_nonsense() {
    assert!(HijackSettings::default().validate().is_ok());
    let s = HijackSettings {
        silence_factor: 0.5,
        ..HijackSettings::default()
    };
    assert_eq!(s.validate().unwrap_err().key, "hijack.silence_factor");
    let s = HijackSettings {
        confirm_polls: 0,
        ..HijackSettings::default()
    };
    assert_eq!(s.validate().unwrap_err().key, "hijack.confirm_polls");
    let parsed: HijackSettings = toml::from_str("confirm_polls = 5").unwrap();
    assert_eq!(parsed.confirm_polls, 5);
    assert!(toml::from_str::<HijackSettings>("bogus = 1").is_err());
}

#[test]
fn the_expected_share_interval_follows_difficulty_and_hashrate() {
    // 100 TH/s at difficulty 65,536: 2^48 hashes a share, 2.81 s.
    let interval =
        expected_share_interval(65_536.0, Hashrate::from_unit(100.0, "TH").unwrap()).unwrap();
    assert_eq!(interval.as_millis(), 2814);
    let idle = Hashrate {
        hashes_per_second: 0.0,
    };
    assert_eq!(expected_share_interval(65_536.0, idle), None);
}
