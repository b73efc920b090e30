use std::time::Duration;

use tokio::time::Instant;

use super::*;

/// A miner without power-target support: `watts` awake, `ths` TH/s.
fn miner(id: &str, watts: f64, ths: f64) -> MinerLoad {
    MinerLoad {
        id: id.into(),
        asleep: false,
        draw_w: watts,
        awake_draw_w: watts,
        awake_hashrate_ths: ths,
        power_target: None,
        can_sleep: true,
    }
}

fn with_target(mut m: MinerLoad, min_w: f64) -> MinerLoad {
    m.power_target = Some(PowerTarget {
        current_w: m.awake_draw_w,
        min_w,
        preferred_w: m.awake_draw_w,
    });
    m
}

fn settings() -> CurtailmentSettings {
    CurtailmentSettings {
        margin_w: 100.0,
        margin_fraction: 0.0,
        ..CurtailmentSettings::default()
    }
}

fn budget(power_w: f64) -> Budget {
    Budget {
        power_w,
        thermal_headroom_c: None,
    }
}

fn ids(actions: &[CurtailAction]) -> Vec<String> {
    actions
        .iter()
        .map(|a| match a {
            CurtailAction::Sleep { id } => format!("sleep {id}"),
            CurtailAction::Wake { id } => format!("wake {id}"),
            CurtailAction::SetPowerTarget { id, watts } => format!("target {id} {watts}"),
        })
        .collect()
}

/// J/TH: s9 = 1400/14 = 100, s17 = 2400/60 = 40, s19 = 3250/100 = 32.5, s19xp = 3000/140 ≈ 21.
fn fleet() -> Vec<MinerLoad> {
    vec![
        miner("s19", 3250.0, 100.0),
        miner("s9", 1400.0, 14.0),
        miner("s19xp", 3000.0, 140.0),
        miner("s17", 2400.0, 60.0),
    ]
}

/// The fleet with the actions applied, as the next poll would report it.
fn apply(fleet: &mut [MinerLoad], actions: &[CurtailAction]) {
    for action in actions {
        let m = fleet.iter_mut().find(|m| m.id == action.miner()).unwrap();
        match action {
            CurtailAction::Sleep { .. } => {
                m.asleep = true;
                m.draw_w = 15.0;
            }
            CurtailAction::Wake { .. } => {
                m.asleep = false;
                m.draw_w = m.awake_draw_w;
            }
            CurtailAction::SetPowerTarget { watts, .. } => {
                m.power_target.as_mut().unwrap().current_w = *watts;
                m.draw_w = *watts;
                m.awake_draw_w = *watts;
            }
        }
    }
}

#[test]
fn sheds_least_efficient_first_until_under_budget() {
    let mut planner = CurtailmentPlanner::new(settings());
    let total: f64 = fleet().iter().map(|m| m.draw_w).sum(); // 10,050 W
    let plan = planner.plan(Instant::now(), budget(total - 3000.0), &fleet());
    assert_eq!(ids(&plan.actions), ["sleep s9", "sleep s17"]);
    assert!(plan.projected_w <= plan.effective_budget_w);
    assert_eq!(plan.shortfall_w, 0.0);
}

#[test]
fn restores_most_efficient_first_after_the_hold() {
    let mut planner = CurtailmentPlanner::new(settings());
    let mut fleet = fleet();
    let t0 = Instant::now();
    let plan = planner.plan(t0, budget(4000.0), &fleet);
    assert_eq!(ids(&plan.actions), ["sleep s9", "sleep s17", "sleep s19"]);
    apply(&mut fleet, &plan.actions);

    // Plenty of budget again, but within the hold: nothing moves.
    let hold = settings().hold_time();
    let plan = planner.plan(t0 + hold / 2, budget(20_000.0), &fleet);
    assert!(plan.actions.is_empty());

    // After the hold, room for two of the three (3,045 W drawn, 100 W margin, waking costs
    // 3,235 W and 2,385 W): the most efficient come back first.
    let plan = planner.plan(t0 + hold, budget(8800.0), &fleet);
    assert_eq!(ids(&plan.actions), ["wake s19", "wake s17"]);
    apply(&mut fleet, &plan.actions);
    let plan = planner.plan(t0 + hold * 2, budget(20_000.0), &fleet);
    assert_eq!(ids(&plan.actions), ["wake s9"]);
}

#[test]
fn lowers_power_targets_before_sleeping_where_that_suffices() {
    let mut planner = CurtailmentPlanner::new(settings());
    let fleet = vec![
        with_target(miner("s19-bos", 3250.0, 100.0), 2000.0),
        miner("s9", 1400.0, 14.0),
    ];
    // 650 W over: the S9 is the least efficient and sleeps whole.
    let plan = planner.plan(Instant::now(), budget(4000.0), &fleet);
    assert_eq!(ids(&plan.actions), ["sleep s9"]);

    // Only the BOSminer miner: its target absorbs 650 W, no sleep.
    let mut planner = CurtailmentPlanner::new(settings());
    let plan = planner.plan(Instant::now(), budget(2600.0), &fleet[..1]);
    assert_eq!(ids(&plan.actions), ["target s19-bos 2600"]);
    assert_eq!(plan.projected_w, 2600.0);

    // More than its target range can give: it sleeps instead.
    let mut planner = CurtailmentPlanner::new(settings());
    let plan = planner.plan(Instant::now(), budget(1500.0), &fleet[..1]);
    assert_eq!(ids(&plan.actions), ["sleep s19-bos"]);
}

#[test]
fn an_oscillating_budget_does_not_flap_miners() {
    let mut planner = CurtailmentPlanner::new(settings());
    let mut fleet = fleet();
    let draw: f64 = fleet.iter().map(|m| m.draw_w).sum();
    let t0 = Instant::now();
    let mut all_actions = Vec::new();
    // Budget swings ±300 W around the full draw every 5 s for 20 minutes.
    for step in 0..240u32 {
        let b = if step % 2 == 0 {
            draw - 300.0
        } else {
            draw + 300.0
        };
        let plan = planner.plan(
            t0 + Duration::from_secs(5 * u64::from(step)),
            budget(b),
            &fleet,
        );
        apply(&mut fleet, &plan.actions);
        all_actions.extend(ids(&plan.actions));
    }
    assert_eq!(all_actions, ["sleep s9"], "one shed, then held");
}

#[test]
fn recently_issued_actions_count_as_done() {
    let mut planner = CurtailmentPlanner::new(settings());
    let fleet = fleet();
    let t0 = Instant::now();
    let first = planner.plan(t0, budget(8700.0), &fleet);
    assert_eq!(ids(&first.actions), ["sleep s9"]);
    // The next poll, one second later, still shows the S9 drawing: no second shed.
    let again = planner.plan(t0 + Duration::from_secs(1), budget(8700.0), &fleet);
    assert!(again.actions.is_empty(), "{:?}", again.actions);
    // The sleep failed: forgotten, it is asked for again.
    planner.forget("s9");
    let retry = planner.plan(t0 + Duration::from_secs(2), budget(8700.0), &fleet);
    assert_eq!(ids(&retry.actions), ["sleep s9"]);
}

#[test]
fn thermal_headroom_derates_the_budget() {
    let s = settings();
    let b = |h| Budget {
        power_w: 10_000.0,
        thermal_headroom_c: Some(h),
    };
    assert_eq!(s.effective_budget_w(b(12.0)), 10_000.0);
    assert_eq!(s.effective_budget_w(b(5.0)), 10_000.0);
    assert_eq!(s.effective_budget_w(b(2.5)), 7_500.0);
    assert_eq!(s.effective_budget_w(b(0.0)), 5_000.0);
    assert_eq!(s.effective_budget_w(b(-1.0)), 0.0);

    // The fleet fits 10.1 kW nominally; with 2.5 °C of headroom it must shed to 7.6 kW.
    let mut planner = CurtailmentPlanner::new(settings());
    let plan = planner.plan(
        Instant::now(),
        Budget {
            power_w: 10_100.0,
            thermal_headroom_c: Some(2.5),
        },
        &fleet(),
    );
    assert_eq!(ids(&plan.actions), ["sleep s9", "sleep s17"]);
}

#[test]
fn a_budget_of_zero_sheds_everything_and_reports_the_rest() {
    let mut planner = CurtailmentPlanner::new(settings());
    let mut fleet = fleet();
    let mut stubborn = miner("old", 1000.0, 10.0);
    stubborn.can_sleep = false;
    fleet.push(stubborn);
    let plan = planner.plan(Instant::now(), budget(0.0), &fleet);
    assert_eq!(plan.actions.len(), 4);
    assert!(
        plan.actions
            .iter()
            .all(|a| matches!(a, CurtailAction::Sleep { .. }))
    );
    // Four sleeping miners at 15 W, and the one that cannot sleep.
    assert_eq!(plan.shortfall_w, 4.0 * 15.0 + 1000.0);
}

#[test]
fn a_fleet_under_budget_is_left_alone() {
    let mut planner = CurtailmentPlanner::new(settings());
    let plan = planner.plan(Instant::now(), budget(20_000.0), &fleet());
    assert!(plan.actions.is_empty());
    assert_eq!(plan.shortfall_w, 0.0);
    assert_eq!(plan.draw_w, 10_050.0);
}

#[test]
fn restoring_raises_lowered_targets_back_to_the_operators_preference() {
    let mut planner = CurtailmentPlanner::new(settings());
    let mut fleet = vec![with_target(miner("bos", 3000.0, 100.0), 1500.0)];
    let t0 = Instant::now();
    let plan = planner.plan(t0, budget(2500.0), &fleet);
    assert_eq!(ids(&plan.actions), ["target bos 2500"]);
    apply(&mut fleet, &plan.actions);
    let plan = planner.plan(t0 + settings().hold_time(), budget(10_000.0), &fleet);
    assert_eq!(ids(&plan.actions), ["target bos 3000"]);
}

#[test]
fn settings_refuse_nonsense_and_parse_with_defaults() {
    assert!(CurtailmentSettings::default().validate().is_ok());
    let bad = CurtailmentSettings {
        static_budget_w: -1.0,
        ..CurtailmentSettings::default()
    };
    assert_eq!(
        bad.validate().unwrap_err().key,
        "curtailment.static_budget_w"
    );
    let bad = CurtailmentSettings {
        derate_floor: 1.5,
        ..CurtailmentSettings::default()
    };
    assert_eq!(bad.validate().unwrap_err().key, "curtailment.derate_floor");
    let parsed: CurtailmentSettings =
        toml::from_str("static_budget_w = 50000.0\nhold = 60").unwrap();
    assert_eq!(parsed.static_budget_w, 50_000.0);
    assert_eq!(parsed.hold_time(), Duration::from_secs(60));
    assert!(toml::from_str::<CurtailmentSettings>("budget = 1").is_err());
}
