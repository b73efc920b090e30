use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::sensor::LostReason;
use crate::site_model::SiteModelConfig;

fn id(name: &str) -> SensorId {
    SensorId::new(name).unwrap()
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn contact(sensor: &str, on: bool) -> SensorEvent {
    SensorEvent::Sample {
        sensor: id(sensor),
        value: Value::Contact(on),
        at: t(1),
    }
}

fn number(sensor: &str, value: f64) -> SensorEvent {
    SensorEvent::Sample {
        sensor: id(sensor),
        value: Value::Number(value),
        at: t(1),
    }
}

fn lost(sensor: &str) -> SensorEvent {
    SensorEvent::Lost {
        sensor: id(sensor),
        reason: LostReason::Timeout,
        at: t(1),
    }
}

const POWER: &str = r#"
grid_w = 200000.0
generator_w = 80000.0
battery_w = 10000.0
reserve_w = 30000.0
feeds = ["feed-1", "feed-2"]
generators = ["gen-1"]
on_battery = ["ups.on_battery"]
ups_charge = ["ups.charge"]
"#;

fn power(text: &str) -> PowerConfig {
    toml::from_str(text).unwrap()
}

fn model(power_text: &str, zones_text: &str) -> BudgetModel {
    let zones: SiteModelConfig = toml::from_str(zones_text).unwrap();
    BudgetModel::new(&power(power_text), &ThermalConfig::default(), &zones.zone)
}

/// Power and source of the budget an event gives, or `None` when it changes nothing.
fn after(model: &mut BudgetModel, event: SensorEvent) -> Option<(f64, PowerSource)> {
    model.on_event(&event).map(|b| (b.power_w, b.source))
}

#[test]
fn the_start_is_unknown_and_spends_nothing() {
    let m = model(POWER, "");
    let b = m.current();
    assert_eq!((b.power_w, b.source), (0.0, PowerSource::Unknown));
    assert_eq!(
        b.why,
        "no feed, generator or UPS contact has reported yet: nothing may be spent; no zone has a \
         temperature limit: 20 °C of headroom assumed"
    );
    assert_eq!(b.headroom_c, 20.0);
}

#[test]
fn feeds_dropping_one_by_one_shrink_the_grid_share_then_fall_to_battery() {
    let mut m = model(POWER, "");
    assert_eq!(
        after(&mut m, contact("feed-1", true)),
        Some((70_000.0, PowerSource::Grid)),
        "feed 2 not read yet counts as absent: half of the grid less the reserve"
    );
    assert_eq!(
        m.current().why,
        "1 of 2 feeds present: 100000 W of grid less 30000 W reserve; no zone has a temperature \
         limit: 20 °C of headroom assumed"
    );
    assert_eq!(
        after(&mut m, contact("feed-2", true)),
        Some((170_000.0, PowerSource::Grid))
    );
    assert_eq!(after(&mut m, contact("feed-2", true)), None, "no change");
    assert_eq!(
        after(&mut m, contact("feed-1", false)),
        Some((70_000.0, PowerSource::Grid))
    );
    assert_eq!(
        after(&mut m, contact("feed-2", false)),
        Some((0.0, PowerSource::Battery)),
        "no feed, no generator: battery, and the unread charge sheds everything"
    );
    assert!(
        m.current().why.starts_with(
            "no grid feed present and no generator running: on battery and the charge \
             `ups.charge` is not known: nothing may be spent"
        ),
        "{}",
        m.current().why
    );
}

#[test]
fn a_generator_start_carries_the_site_until_a_feed_returns() {
    let mut m = model(POWER, "");
    after(&mut m, contact("feed-1", false));
    after(&mut m, contact("feed-2", false));
    assert_eq!(
        after(&mut m, contact("gen-1", true)),
        Some((50_000.0, PowerSource::Generator))
    );
    assert!(
        m.current()
            .why
            .starts_with("no grid feed present, generator running: 80000 W of generator less"),
        "{}",
        m.current().why
    );
    assert_eq!(
        after(&mut m, contact("feed-2", true)),
        Some((70_000.0, PowerSource::Grid)),
        "the grid takes over again"
    );
    assert_eq!(after(&mut m, contact("gen-1", false)), None);
    after(&mut m, contact("feed-2", false));
    assert_eq!(m.current().source, PowerSource::Battery);
    assert_eq!(
        after(&mut m, lost("gen-1")),
        None,
        "a lost generator contact counts as stopped"
    );
}

#[test]
fn a_ups_on_battery_overrides_the_feeds_until_its_charge_runs_low() {
    let mut m = model(POWER, "");
    after(&mut m, contact("feed-1", true));
    after(&mut m, contact("feed-2", true));
    after(&mut m, number("ups.charge", 100.0));
    assert_eq!(
        after(&mut m, contact("ups.on_battery", true)),
        Some((10_000.0, PowerSource::Battery)),
        "on battery whatever the feeds say: battery_w for the loads, no reserve taken again"
    );
    assert_eq!(
        m.current().why,
        "on battery (`ups.on_battery`): the loads may draw 10000 W on battery; no zone has a \
         temperature limit: 20 °C of headroom assumed"
    );
    assert_eq!(after(&mut m, number("ups.charge", 60.0)), None);
    assert_eq!(
        after(&mut m, number("ups.charge", 49.0)),
        Some((0.0, PowerSource::Battery))
    );
    assert!(
        m.current()
            .why
            .starts_with("on battery (`ups.on_battery`) and `ups.charge` at 49 % is below 50 %"),
        "{}",
        m.current().why
    );
    assert_eq!(
        after(&mut m, number("ups.charge", 55.0)),
        Some((10_000.0, PowerSource::Battery))
    );
    assert_eq!(
        after(&mut m, lost("ups.charge")),
        Some((0.0, PowerSource::Battery)),
        "a charge nobody can read is a low one"
    );
    assert_eq!(
        after(&mut m, contact("ups.on_battery", false)),
        Some((170_000.0, PowerSource::Grid))
    );
}

#[test]
fn a_lost_feed_counts_as_absent_but_a_lost_on_battery_does_not_mean_battery() {
    let mut m = model(POWER, "");
    after(&mut m, contact("feed-1", true));
    after(&mut m, contact("feed-2", true));
    assert_eq!(
        after(&mut m, lost("feed-1")),
        Some((70_000.0, PowerSource::Grid))
    );
    assert_eq!(after(&mut m, lost("ups.on_battery")), None);
    assert_eq!(m.current().source, PowerSource::Grid);
    assert_eq!(
        after(&mut m, number("feed-2", 1.0)),
        Some((0.0, PowerSource::Battery)),
        "a number where a contact belongs is not a present feed"
    );
}

#[test]
fn without_feed_contacts_the_grid_counts_as_present() {
    let mut m = model(
        "grid_w = 50000.0\nreserve_w = 5000.0\non_battery = [\"ups.on_battery\"]\n\
         battery_w = 2000.0\n",
        "",
    );
    assert_eq!(
        m.current().source,
        PowerSource::Unknown,
        "an on-battery contact is configured"
    );
    assert_eq!(
        after(&mut m, contact("ups.on_battery", false)),
        Some((45_000.0, PowerSource::Grid))
    );
    assert!(
        m.current()
            .why
            .starts_with("grid assumed present (no feed contacts): 50000 W of grid less 5000 W"),
        "{}",
        m.current().why
    );
    assert_eq!(
        after(&mut m, contact("ups.on_battery", true)),
        Some((2_000.0, PowerSource::Battery)),
        "no charge sensors: battery_w as configured"
    );

    let m = model("grid_w = 50000.0\nreserve_w = 5000.0\n", "");
    let b = m.current();
    assert_eq!(
        (b.power_w, b.source),
        (45_000.0, PowerSource::Grid),
        "nothing to watch: the grid is all there is, from the start"
    );
}

#[test]
fn the_budget_never_goes_below_zero() {
    let m = model("grid_w = 20000.0\nreserve_w = 30000.0\n", "");
    assert_eq!(m.current().power_w, 0.0);
    let m = model(
        "grid_w = 20000.0\nbattery_w = -5.0\non_battery = [\"ob\"]\n",
        "",
    );
    let mut m = m;
    assert_eq!(
        after(&mut m, contact("ob", true)),
        Some((0.0, PowerSource::Battery))
    );
}

const HALLS: &str = r#"
[[zone]]
name = "hall-a"
temperature = ["a.t1", "a.t2"]
limit_c = 35.0
[[zone]]
name = "hall-b"
temperature = ["b.t1"]
limit_c = 30.0
[[zone]]
name = "corridor"
temperature = ["c.t1"]
"#;

fn headroom(m: &mut BudgetModel, event: SensorEvent) -> Option<f64> {
    m.on_event(&event).map(|b| b.headroom_c)
}

#[test]
fn zones_heating_shrink_the_headroom_to_the_tightest_zone() {
    let mut m = model("grid_w = 1000.0\n", HALLS);
    assert_eq!(m.current().headroom_c, 0.0, "no zone has been read yet");
    assert!(
        m.current()
            .why
            .ends_with("zone `hall-a` has no temperature reading: no headroom"),
        "{}",
        m.current().why
    );
    assert_eq!(
        headroom(&mut m, number("a.t1", 22.5)),
        None,
        "hall-b still unread"
    );
    assert_eq!(headroom(&mut m, number("b.t1", 21.0)), Some(9.0));
    assert_eq!(
        headroom(&mut m, number("a.t2", 27.0)),
        Some(8.0),
        "hall-a's hottest probe is now closer"
    );
    assert!(
        m.current()
            .why
            .ends_with("zone `hall-a` is 8 °C below its limit of 35 °C"),
        "{}",
        m.current().why
    );
    assert_eq!(
        headroom(&mut m, number("c.t1", 60.0)),
        None,
        "a zone without a limit is not counted"
    );
    assert_eq!(headroom(&mut m, number("b.t1", 32.5)), Some(-2.5));
    assert!(
        m.current()
            .why
            .ends_with("zone `hall-b` is 2.5 °C over its limit of 30 °C"),
        "{}",
        m.current().why
    );
}

#[test]
fn a_lost_zone_probe_leaves_the_others_and_all_lost_leaves_no_headroom() {
    let mut m = model("grid_w = 1000.0\n", HALLS);
    for (sensor, value) in [("a.t1", 20.0), ("a.t2", 25.0), ("b.t1", 10.0)] {
        m.on_event(&number(sensor, value));
    }
    assert_eq!(m.current().headroom_c, 10.0);
    assert_eq!(headroom(&mut m, lost("a.t2")), Some(15.0));
    assert_eq!(headroom(&mut m, lost("a.t1")), Some(0.0));
    assert!(
        m.current()
            .why
            .ends_with("zone `hall-a` has no temperature reading: no headroom"),
        "{}",
        m.current().why
    );
    assert_eq!(
        headroom(&mut m, number("a.t1", f64::NAN)),
        None,
        "a non-finite sample is no reading"
    );
    assert!(m.current().headroom_c.is_finite());
}

#[test]
fn without_zone_limits_the_unmonitored_headroom_is_published() {
    let thermal: ThermalConfig = toml::from_str("unmonitored_headroom_c = 12.0\n").unwrap();
    let zones: SiteModelConfig =
        toml::from_str("[[zone]]\nname = \"a\"\ntemperature = [\"a.t1\"]\n").unwrap();
    let mut m = BudgetModel::new(&power("grid_w = 1000.0\n"), &thermal, &zones.zone);
    assert_eq!(m.current().headroom_c, 12.0);
    assert_eq!(m.on_event(&number("a.t1", 80.0)), None);
}

#[test]
fn events_of_other_sensors_change_nothing() {
    let mut m = model(POWER, HALLS);
    let before = m.current().clone();
    assert_eq!(m.on_event(&contact("door-1.open", true)), None);
    assert_eq!(m.current(), &before);
}

#[test]
fn config_defaults_and_unknown_keys() {
    let p = power("grid_w = 1000.0\n");
    assert_eq!(
        (p.generator_w, p.battery_w, p.reserve_w, p.low_charge_pct),
        (0.0, 0.0, 0.0, 50.0)
    );
    assert!(p.feeds.is_empty() && p.ups_charge.is_empty());
    assert!(
        toml::from_str::<PowerConfig>("").is_err(),
        "grid_w is required"
    );
    let err = toml::from_str::<PowerConfig>("grid_w = 1.0\nreserve = 5.0\n").unwrap_err();
    assert!(err.to_string().contains("unknown field `reserve`"), "{err}");
    assert_eq!(
        toml::from_str::<ThermalConfig>("").unwrap(),
        ThermalConfig::default()
    );
    assert_eq!(ThermalConfig::default().unmonitored_headroom_c, 20.0);
    assert!(toml::from_str::<ThermalConfig>("headroom = 3.0\n").is_err());
    assert_eq!(PowerSource::Generator.as_str(), "generator");
    assert_eq!(PowerSource::Unknown.to_string(), "unknown");
}

fn known(sensor: &SensorId) -> bool {
    ["feed-1", "feed-2", "gen-1", "ups.on_battery", "ups.charge"].contains(&sensor.as_str())
}

#[test]
fn bad_power_and_thermal_sections_are_refused_with_their_keys() {
    assert_eq!(power(POWER).validate(&known), Ok(()));
    let bad = power(
        r#"
grid_w = -1.0
generator_w = 5000.0
reserve_w = inf
low_charge_pct = 120.0
feeds = ["feed-1", "feed-9"]
on_battery = ["feed-1"]
"#,
    );
    let found: Vec<String> = bad
        .validate(&known)
        .unwrap_err()
        .into_iter()
        .map(|p| format!("{}: {}", p.key, p.reason))
        .collect();
    assert_eq!(
        found,
        [
            "power.grid_w: -1 W is not a power: use 0 or more",
            "power.reserve_w: inf W is not a power: use 0 or more",
            "power.low_charge_pct: 120 % is not a charge: use 0 to 100",
            "power.generator_w: is set but no `generators` contact says when a generator runs",
            "power.feeds[1]: no sensor driver provides `feed-9`",
            "power.on_battery[0]: `feed-1` is already listed above",
        ]
    );
    let thermal: ThermalConfig = toml::from_str("unmonitored_headroom_c = -3.0\n").unwrap();
    let problems = thermal.validate().unwrap_err();
    assert_eq!(problems[0].key, "thermal.unmonitored_headroom_c");
    assert_eq!(problems[0].reason, "-3 °C is not a headroom: use 0 to 100");
    assert_eq!(ThermalConfig::default().validate(), Ok(()));
}

#[test]
fn power_problems_point_at_the_file_line() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        power: PowerConfig,
    }
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("sited.toml");
    std::fs::write(
        &path,
        "[power]\ngrid_w = 1000.0\nfeeds = [\"feed-1\",\n  \"feed-3\"]\n",
    )
    .unwrap();
    let err = appliance::config::load_file(&path, |d: &Doc| d.power.validate(&known))
        .unwrap_err()
        .to_string()
        .replace(&path.display().to_string(), "/etc/sited.toml");
    assert!(
        err.starts_with(
            "/etc/sited.toml:4:3: `power.feeds[1]`: no sensor driver provides `feed-3`"
        ),
        "{err}"
    );
}
