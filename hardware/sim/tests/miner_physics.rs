//! The physical model as a poller sees it: a lower power target gives lower hashrate and
//! power (and better J/TH), sleep drops to idle power with the fans still turning, a warmer
//! room gives warmer chips, and units of one model differ a little, deterministically.

mod common;

use std::net::Ipv4Addr;

use common::{ANSWER_BOUND, ask_json, eventually, one_miner, snapshot};
use minerd::cgminer::{Command, MinerSnapshot, Request};
use sim::fleet::{Fleet, FleetSpec, ModelMix, Personality, Privileged};

fn bosminer_request() -> Request {
    Request::joined(vec![
        Command::Summary,
        Command::Fans,
        Command::Temps,
        Command::TunerStatus,
        Command::Devs,
        Command::DevDetails,
    ])
    .unwrap()
}

fn hashrate(snap: &MinerSnapshot) -> f64 {
    snap.hashrate_average
        .expect("average hashrate")
        .terahashes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lower_power_target_lowers_hashrate_and_power_and_improves_efficiency() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 40, 2),
        Personality::S19jProBosminer,
        Privileged::All,
    )
    .await;
    let miner = site.miner();
    let full = snapshot(site.addr(), &bosminer_request()).await;
    miner.set_power_target(2000.0);
    let tuned = snapshot(site.addr(), &bosminer_request()).await;
    assert_eq!(tuned.power_target_watts, Some(2000.0));
    let (full_w, tuned_w) = (full.power_watts.unwrap(), tuned.power_watts.unwrap());
    assert!(tuned_w < full_w, "power {tuned_w} W vs {full_w} W");
    assert!(hashrate(&tuned) < hashrate(&full));
    assert!(
        tuned_w / hashrate(&tuned) < full_w / hashrate(&full),
        "J/TH"
    );
    let view = miner.view();
    assert!((view.power_w - tuned_w).abs() < 1.0);
    assert!((view.hashrate_ths - hashrate(&tuned)).abs() < 0.01);
    // out of the model's range: clamped to its minimum
    miner.set_power_target(10.0);
    assert_eq!(miner.view().power_target_w, 1300.0);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_firmware_has_no_power_target() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 40, 3),
        Personality::S19ProBmminer,
        Privileged::All,
    )
    .await;
    let miner = site.miner();
    let before = miner.view();
    miner.set_power_target(1800.0);
    let after = miner.view();
    assert_eq!(after.power_target_w, before.power_target_w);
    assert_eq!(after.power_w, before.power_w);
    // and no sleep over its API: bmminer does not know pause
    let reply = ask_json(site.addr(), "pause", None).await;
    assert!(reply.section("pause").is_err());
    assert!(!miner.view().sleeping);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bosminer_pause_sleeps_at_idle_power_with_fans_on_and_resume_wakes() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 40, 4),
        Personality::S19jProBosminer,
        Privileged::All,
    )
    .await;
    let miner = site.miner();
    let awake = snapshot(site.addr(), &bosminer_request()).await;
    let reply = ask_json(site.addr(), "pause", None).await;
    assert!(reply.section("pause").is_ok());
    let asleep = snapshot(site.addr(), &bosminer_request()).await;
    let view = miner.view();
    assert!(view.sleeping);
    assert_eq!(hashrate(&asleep), 0.0);
    assert!(asleep.power_watts.unwrap() < 150.0, "idle power");
    assert!(asleep.power_watts.unwrap() < awake.power_watts.unwrap() / 10.0);
    assert!(!asleep.fans.is_empty() && asleep.fans.iter().all(|f| f.rpm > 0));
    let warm = awake.boards[0].chip_temps_c[0];
    assert!(asleep.boards[0].chip_temps_c[0] < warm);
    eventually("Stratum off while asleep", ANSWER_BOUND, || {
        miner.view().active_pool().is_none()
    })
    .await;
    let reply = ask_json(site.addr(), "resume", None).await;
    assert!(reply.section("resume").is_ok());
    eventually("mining again", ANSWER_BOUND, || {
        miner.view().active_pool().is_some()
    })
    .await;
    assert!(hashrate(&snapshot(site.addr(), &bosminer_request()).await) > 50.0);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmer_room_warmer_chips_and_units_differ_deterministically() {
    let mut temps = Vec::new();
    for (i, ambient) in [15.0, 35.0].into_iter().enumerate() {
        let mut spec = FleetSpec::new(Ipv4Addr::new(127, 1, 41, 2 + 10 * i as u8), 3);
        spec.models = ModelMix::only(Personality::S9Bmminer);
        spec.ambient_c = ambient;
        spec.seed = 7;
        let fleet = Fleet::start(spec).await.unwrap();
        let views: Vec<_> = fleet.miners().iter().map(|m| m.view()).collect();
        // no pool configured: no work, so idle; the physics still answer for the room
        assert!(
            views
                .iter()
                .all(|v| v.hashrate_ths == 0.0 && v.fan_rpm[0] > 0)
        );
        temps.push(views[0].chip_temp_c[0]);
        fleet.stop().await;
    }
    assert!(temps[1] > temps[0] + 15.0, "{temps:?}");

    let pool = common::test_pool().await;
    let mut hashrates = Vec::new();
    for seed in [7, 7] {
        let mut spec = FleetSpec::new(Ipv4Addr::new(127, 1, 42, 2), 3);
        spec.models = ModelMix::only(Personality::S19ProBmminer);
        spec.pools = common::sanctioned(std::slice::from_ref(&pool));
        spec.hash_budget = 3_000.0;
        spec.seed = seed;
        let fleet = Fleet::start(spec).await.unwrap();
        let miners = fleet.miners();
        eventually("all mining", ANSWER_BOUND, || {
            miners.iter().all(|m| m.view().active_pool().is_some())
        })
        .await;
        hashrates.push(
            miners
                .iter()
                .map(|m| m.view().hashrate_ths)
                .collect::<Vec<_>>(),
        );
        fleet.stop().await;
    }
    assert_eq!(hashrates[0], hashrates[1], "same seed, same units");
    assert!(
        hashrates[0].windows(2).all(|w| w[0] != w[1]),
        "units differ: {:?}",
        hashrates[0]
    );
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn luxos_profiles_and_curtail_work_over_the_api_with_the_logon_session() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 40, 5),
        Personality::S19jProLuxos,
        Privileged::All,
    )
    .await;
    let addr = site.addr();
    let miner = site.miner();
    let full = miner.view();
    // without the session the firmware refuses, and nothing changes
    let refused = ask_json(addr, "profileset", Some("bogus,-3")).await;
    assert!(refused.section("profileset").is_err());
    let refused = ask_json(addr, "curtail", Some("sleep")).await;
    assert!(refused.section("curtail").is_err());
    assert_eq!(miner.view().power_target_w, full.power_target_w);
    assert!(!miner.view().sleeping);

    let logon = ask_json(addr, "logon", None).await;
    let session = logon.section("logon").unwrap().records("SESSION")[0]["SessionID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!session.is_empty());
    let set = ask_json(addr, "profileset", Some(&format!("{session},-3"))).await;
    assert!(set.section("profileset").is_ok());
    let tuned = miner.view();
    assert_eq!(tuned.power_target_w, 2332.0);
    assert!(tuned.power_w < full.power_w && tuned.hashrate_ths < full.hashrate_ths);
    let power = ask_json(addr, "power", None).await;
    let watts = power.section("power").unwrap().records("POWER")[0]["Watts"]
        .as_f64()
        .unwrap();
    assert!((watts - tuned.power_w).abs() <= 1.0);

    let sleep = ask_json(addr, "curtail", Some(&format!("{session},sleep"))).await;
    assert!(sleep.section("curtail").is_ok());
    let asleep = miner.view();
    assert!(asleep.sleeping && asleep.hashrate_ths == 0.0 && asleep.power_w < 150.0);
    let wake = ask_json(addr, "curtail", Some(&format!("{session},wakeup"))).await;
    assert!(wake.section("curtail").is_ok());
    assert!(!miner.view().sleeping);
    site.stop().await;
}
