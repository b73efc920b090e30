//! The curtailment driver over simulated BOSminer miners (S9s at ~100 J/TH, S19j Pros at
//! ~30 J/TH) with a stand-in sited: a budget drop sleeps the least efficient first, reacting
//! to the signal (the poll interval is 60 s and nothing polls); a restored budget wakes the
//! most efficient first, after the hold; an oscillating budget does not flap miners; without
//! sited the static budget applies; miners that cannot sleep over their API (stock bmminer)
//! idle because the proxy withholds their work; LuxOS miners step down their power profiles
//! before anything sleeps, and back up when the budget allows.
//!
//! Region 127.62.11.0/24 to 127.62.14.0/24 and 127.62.16.0/24.

#[path = "guard_support/mod.rs"]
mod guard_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use appliance::config::DurationSecs;
use appliance::site_watch::SiteWatch;
use guard_support::{BOUND, Rig, rig};
use minerd::cgminer::ClientConfig;
use minerd::curtailment::CurtailmentSettings;
use minerd::curtailment_driver::{BudgetSource, CurtailmentDriver};
use minerd::inventory::MinerState;
use minerd::operations::BulkLimits;
use minerd::telemetry::aggregate;
use sim::fleet::ModelMix;
use sim::miner::model::Personality;
use tokio::task::JoinHandle;

/// Reacting to the budget signal takes well under this; waiting for a poll would take 60 s.
const REACTION: Duration = Duration::from_secs(5);

fn settings(hold_s: u64) -> CurtailmentSettings {
    CurtailmentSettings {
        static_budget_w: 1_000_000.0,
        margin_w: 10.0,
        margin_fraction: 0.0,
        hold: DurationSecs::from_const(hold_s),
        settle: DurationSecs::from_const(2),
        ..CurtailmentSettings::default()
    }
}

async fn curtailed_rig(net: u8) -> Rig {
    let rig = rig(
        net,
        4,
        ModelMix::even(&[Personality::S9Bosminer, Personality::S19jProBosminer]),
    )
    .await;
    rig.poll().await;
    rig
}

fn driver(rig: &Rig, settings: CurtailmentSettings) -> Arc<CurtailmentDriver> {
    Arc::new(CurtailmentDriver::new(
        settings,
        Arc::clone(&rig.inventory),
        Arc::clone(&rig.telemetry),
        Arc::clone(&rig.audit),
        BulkLimits::default(),
        ClientConfig::default(),
        Some(Arc::clone(&rig.proxy)),
    ))
}

/// Runs `driver` on sited's budget reports, as the daemon does.
async fn run_driver(rig: &Rig, driver: &Arc<CurtailmentDriver>) -> JoinHandle<()> {
    let watch = SiteWatch::start(rig.bus.bus()).await.unwrap();
    tokio::spawn(Arc::clone(driver).run(Some(watch.reports())))
}

/// `run_driver`, returning once the driver's first round follows sited's budget.
async fn run_following_sited(rig: &Rig, driver: &Arc<CurtailmentDriver>) -> JoinHandle<()> {
    let run = run_driver(rig, driver).await;
    wait_for("the first round follows sited", BOUND, || {
        driver
            .status()
            .is_some_and(|s| s.source == BudgetSource::Sited)
    })
    .await;
    run
}

/// Miners by efficiency, least efficient first, with their draw and J/TH, as the last poll
/// saw them (what the driver plans with).
fn by_efficiency(rig: &Rig) -> Vec<(Ipv4Addr, f64, f64)> {
    let mut miners: Vec<(Ipv4Addr, f64, f64)> = rig
        .ips()
        .into_iter()
        .map(|ip| {
            let status = rig.telemetry.status(rig.record(ip).id).unwrap();
            let snapshot = status.snapshot.unwrap();
            let power = snapshot
                .power_watts
                .or(rig.record(ip).power_target_w)
                .unwrap();
            (ip, power, power / aggregate::hashrate_ths(&snapshot))
        })
        .collect();
    miners.sort_by(|a, b| b.2.total_cmp(&a.2));
    miners
}

fn sleeping(rig: &Rig, ip: Ipv4Addr) -> bool {
    rig.fleet.miner(ip).unwrap().view().sleeping
}

/// What the driver and the simulator show, for a failure's message.
fn picture(rig: &Rig, driver: &CurtailmentDriver) -> String {
    let views: Vec<(Ipv4Addr, f64, bool)> = rig
        .fleet
        .miners()
        .iter()
        .map(|m| {
            let v = m.view();
            (v.ip, v.power_w, v.sleeping)
        })
        .collect();
    format!("status {:?}; miners {views:?}", driver.status())
}

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A budget that sheds exactly the `n` least efficient miners: what is left awake fits with
/// half the last shed miner's saving to spare (so shedding one fewer is not enough, and a
/// sleeping miner's real draw, fans and controller, is no reason to shed another).
fn budget_shedding(miners: &[(Ipv4Addr, f64, f64)], n: usize, sleep_draw_w: f64) -> f64 {
    let total: f64 = miners.iter().map(|m| m.1).sum();
    let saved: f64 = miners[..n].iter().map(|m| m.1 - sleep_draw_w).sum();
    let spare = (miners[n - 1].1 - sleep_draw_w) / 2.0;
    total - saved + spare
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_drop_sleeps_the_least_efficient_first_on_the_signal_then_restores_after_the_hold()
{
    let rig = curtailed_rig(11).await;
    let settings = settings(4);
    let driver = driver(&rig, settings.clone());
    let run = run_following_sited(&rig, &driver).await;
    let miners = by_efficiency(&rig);
    assert!(miners[0].2 > miners[3].2 * 1.5, "{miners:?}");
    // The two least efficient must go; the budget signal alone must do it (no poll runs).
    let site = rig.site.as_ref().unwrap();
    let low = budget_shedding(&miners, 2, settings.sleep_draw_w);
    site.set_budget(low, 20.0).await.unwrap();
    let what = format!("the two least efficient miners of {miners:?} asleep");
    wait_for(&what, REACTION, || {
        sleeping(&rig, miners[0].0) && sleeping(&rig, miners[1].0)
    })
    .await;
    assert!(!sleeping(&rig, miners[2].0) && !sleeping(&rig, miners[3].0));
    // The driver records the sleep in the inventory once the miner has answered, so the
    // simulator can show it asleep a moment before the inventory does.
    wait_for("the two asleep in the inventory", REACTION, || {
        miners[..2]
            .iter()
            .all(|(ip, ..)| rig.record(*ip).state == MinerState::Sleeping)
    })
    .await;
    wait_for("the driver's status counts them", REACTION, || {
        driver.status().is_some_and(|s| s.asleep == 2)
    })
    .await;
    assert_eq!(driver.status().unwrap().budget_w, low);

    // Everything to sleep, then room for one miner: the most efficient wakes, after the hold.
    site.set_budget(0.0, 20.0).await.unwrap();
    wait_for("every miner asleep", REACTION, || {
        miners.iter().all(|m| sleeping(&rig, m.0))
    })
    .await;
    rig.poll().await;
    let asleep_draw: f64 = rig
        .telemetry
        .statuses()
        .iter()
        .filter_map(|s| s.snapshot.as_ref()?.power_watts)
        .sum();
    let best = miners[3];
    let room = asleep_draw + best.1 + 50.0;
    site.set_budget(room, 20.0).await.unwrap();
    wait_for("the raise is planned on", REACTION, || {
        driver.status().is_some_and(|s| s.budget_w == room)
    })
    .await;
    // Planned on, and held: nobody woke on the signal.
    assert!(miners.iter().all(|m| sleeping(&rig, m.0)));
    // Telemetry cycles go on; once the hold has passed one of them restores the best miner.
    let started = std::time::Instant::now();
    while sleeping(&rig, best.0) {
        assert!(
            started.elapsed() < BOUND,
            "the most efficient miner never woke"
        );
        rig.poll().await;
        driver.after_cycle();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        miners[..3].iter().all(|m| sleeping(&rig, m.0)),
        "only the most efficient miner fits"
    );
    wait_for("the woken miner active in the inventory", REACTION, || {
        rig.record(best.0).state == MinerState::Active
    })
    .await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oscillating_budget_does_not_flap_miners() {
    let rig = curtailed_rig(12).await;
    let settings = settings(30);
    let driver = driver(&rig, settings.clone());
    let run = run_driver(&rig, &driver).await;
    let miners = by_efficiency(&rig);
    let site = rig.site.as_ref().unwrap();
    let low = budget_shedding(&miners, 1, settings.sleep_draw_w);
    let high = 1_000_000.0;
    site.set_budget(low, 20.0).await.unwrap();
    wait_for("the least efficient miner asleep", REACTION, || {
        sleeping(&rig, miners[0].0)
    })
    .await;
    // Up and down every 300 ms for 6 s, with telemetry cycles in between.
    for round in 0..20 {
        let budget = if round % 2 == 0 { high } else { low };
        site.set_budget(budget, 20.0).await.unwrap();
        if round % 5 == 0 {
            rig.poll().await;
            driver.after_cycle();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(sleeping(&rig, miners[0].0), "woken in round {round}");
        assert!(
            miners[1..].iter().all(|m| !sleeping(&rig, m.0)),
            "another miner shed in round {round}"
        );
    }
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sited_the_static_budget_applies() {
    let mut rig = curtailed_rig(13).await;
    rig.site.take().unwrap().stop().await.unwrap();
    let miners = by_efficiency(&rig);
    let mut settings = settings(4);
    settings.static_budget_w = budget_shedding(&miners, 1, settings.sleep_draw_w);
    let driver = driver(&rig, settings);
    let run = run_driver(&rig, &driver).await;
    let started = std::time::Instant::now();
    while !sleeping(&rig, miners[0].0) {
        let picture = picture(&rig, &driver);
        assert!(started.elapsed() < REACTION, "{miners:?} {picture}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(miners[1..].iter().all(|m| !sleeping(&rig, m.0)));
    let status = driver.status().unwrap();
    assert_eq!(status.source, BudgetSource::Static);
    assert_eq!(status.thermal_headroom_c, None);
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miners_that_cannot_sleep_are_curtailed_by_withholding_their_work() {
    // Stock bmminer has no sleep over its API.
    let rig = rig(14, 4, ModelMix::only(Personality::S19ProBmminer)).await;
    // Stock bmminer reports no power: the operator's figures, one miner drawing more for its hashrate.
    for (i, ip) in rig.ips().into_iter().enumerate() {
        let watts = 3_000.0 + 200.0 * i as f64;
        rig.inventory
            .set_power_target(rig.record(ip).id, Some(watts))
            .unwrap();
    }
    rig.poll().await;
    let settings = settings(2);
    let driver = driver(&rig, settings.clone());
    let run = run_driver(&rig, &driver).await;
    let miners = by_efficiency(&rig);
    let (worst, awake_w) = (miners[0].0, miners[0].1);
    let idle = |ip: Ipv4Addr| {
        let v = rig.fleet.miner(ip).unwrap().view();
        v.hashrate_ths == 0.0 && v.power_w < awake_w / 2.0
    };
    let site = rig.site.as_ref().unwrap();
    site.set_budget(budget_shedding(&miners, 1, settings.sleep_draw_w), 20.0)
        .await
        .unwrap();
    // No sleep over the API: the proxy stops giving it work and it idles.
    wait_for("the least efficient miner idles", REACTION, || idle(worst)).await;
    assert!(rig.proxy.is_withholding_work(worst.into()));
    wait_for("the idled miner asleep in the inventory", REACTION, || {
        rig.record(worst).state == MinerState::Sleeping
    })
    .await;
    assert!(miners[1..].iter().all(|m| !idle(m.0)));
    // Room again: after the hold, a telemetry cycle gives it work back and it hashes.
    site.set_budget(1_000_000.0, 20.0).await.unwrap();
    let started = std::time::Instant::now();
    while rig.fleet.miner(worst).unwrap().view().hashrate_ths == 0.0 {
        assert!(started.elapsed() < BOUND, "{}", picture(&rig, &driver));
        rig.poll().await;
        driver.after_cycle();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!rig.proxy.is_withholding_work(worst.into()));
    wait_for("the miner active in the inventory again", REACTION, || {
        rig.record(worst).state == MinerState::Active
    })
    .await;
    run.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn luxos_miners_step_down_power_profiles_before_sleeping_and_back_up_after_the_hold() {
    // Three miners of one model: their J/TH differ by little, so the test counts what happened
    // rather than naming which miner the driver chose.
    let rig = rig(16, 3, ModelMix::only(Personality::S19jProLuxos)).await;
    rig.poll().await;
    let driver = driver(&rig, settings(3));
    let run = run_following_sited(&rig, &driver).await;
    let miners = by_efficiency(&rig);
    let view = |ip: Ipv4Addr| rig.fleet.miner(ip).unwrap().view();
    let stock: Vec<(Ipv4Addr, f64)> = miners
        .iter()
        .map(|m| (m.0, view(m.0).power_target_w))
        .collect();
    // (asleep, lowered and awake) counts as the simulator shows them.
    let counts = || {
        stock.iter().fold((0, 0), |(asleep, lowered), (ip, w)| {
            let v = view(*ip);
            (
                asleep + usize::from(v.sleeping),
                lowered + usize::from(!v.sleeping && v.power_target_w < *w),
            )
        })
    };
    let total: f64 = miners.iter().map(|m| m.1).sum();
    let site = rig.site.as_ref().unwrap();

    // 200 W over: one profile step (8 % of ~3.2 kW) of one miner absorbs it; nothing sleeps.
    site.set_budget(total - 200.0, 20.0).await.unwrap();
    wait_for("one miner on a lower profile", REACTION, || {
        counts() == (0, 1)
    })
    .await;
    rig.poll().await;
    driver.after_cycle();
    wait_for("the status counts one lowered miner", REACTION, || {
        driver
            .status()
            .is_some_and(|s| s.lowered == 1 && s.asleep == 0)
    })
    .await;
    let status = driver.status().unwrap();
    assert!(status.draw_w <= total - 200.0, "{}", picture(&rig, &driver));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        counts(),
        (0, 1),
        "one step was enough: {}",
        picture(&rig, &driver)
    );

    // Room again: after the hold, a telemetry cycle puts it back on its stock profile.
    site.set_budget(1_000_000.0, 20.0).await.unwrap();
    let started = std::time::Instant::now();
    while counts() != (0, 0) {
        assert!(started.elapsed() < BOUND, "{}", picture(&rig, &driver));
        rig.poll().await;
        driver.after_cycle();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(stock.iter().all(|(ip, w)| view(*ip).power_target_w == *w));

    // More than a whole miner's draw over: no profile saves that much, so one miner sleeps and
    // another steps down for the rest; the third is untouched.
    site.set_budget(total - miners[0].1 - 300.0, 20.0)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    while counts() != (1, 1) {
        assert!(started.elapsed() < REACTION, "{}", picture(&rig, &driver));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    run.abort();
}
