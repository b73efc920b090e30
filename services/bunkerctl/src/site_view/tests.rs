//! The views on documents shaped exactly as the `Site1` contract describes them
//! (`appliance::dbus::contracts::Site1Proxy`: `Status`, `Sensors`, `Alarms`, `Silences`),
//! including nulls, lost sensors and a site with nothing configured yet.

use serde_json::{Value, json};

use super::*;
use crate::layout::CONSOLE_WIDTH;

const STATUS: &str = include_str!("../../tests/site/status.json");
const STATUS_EMPTY: &str = include_str!("../../tests/site/status-empty.json");
const SENSORS: &str = include_str!("../../tests/site/sensors.json");
const ALARMS: &str = include_str!("../../tests/site/alarms.json");
const SILENCES: &str = include_str!("../../tests/site/silences.json");

/// 2026-11-21T09:00:10Z, eight seconds after the recorded status was taken.
const NOW_USEC: u64 = 1_795_251_610_000_000;

fn document(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn assert_golden(rendered: String, golden: &str) {
    assert_eq!(rendered, golden, "\n{rendered}");
    for line in rendered.lines() {
        assert!(line.chars().count() <= CONSOLE_WIDTH, "too wide: {line:?}");
    }
}

fn sensors(filter: &SensorFilter) -> String {
    render_sensors(&document(SENSORS), filter, NOW_USEC, Palette::Plain)
}

#[test]
fn the_state_reads_at_a_glance_on_80_columns() {
    assert_golden(
        render_state(&document(STATUS), Palette::Plain),
        "sited: warning
  reason        ups-1 is on battery (runtime 14 min); the power budget follows
                the UPS
  budget        18.00 kW from battery: the grid feed is lost; ups-1 carries the
                load
  headroom      8.5 °C
  sensors       42: 39 ok, 2 lost, 1 waiting (bunkerctl site sensors --lost)
  alarms        3 active, 2 unacknowledged, 1 critical (bunkerctl site alarms)
  silences      1 in force (bunkerctl site silences)
  relays        siren on; beacon off; door-interlock unknown, wanted on: no
                answer within 1 s
  uplink        4 queued, 120 delivered, last delivery 2026-11-21T08:41:07Z;
                last error: connection refused by 10.0.0.5:443
  log           1204 records, last sealed at record 1200
  taken at      2026-11-21T09:00:02Z
",
    );
}

#[test]
fn an_empty_site_with_nulls_reads_as_nothing_yet() {
    assert_golden(
        render_state(&document(STATUS_EMPTY), Palette::Plain),
        "sited: normal
  budget        -
  headroom      -
  sensors       0: 0 ok, 0 lost
  alarms        0 active, 0 unacknowledged, 0 critical
  silences      none
  relays        none configured
  uplink        not configured
  log           1 records, not sealed yet
  taken at      2026-11-21T09:00:02Z
",
    );
}

#[test]
fn a_zone_over_its_limit_and_a_lockdown_stand_out() {
    let mut status = document(STATUS);
    status["state"] = json!("lockdown");
    status["thermal_headroom_c"] = json!(-2.0);
    let plain = render_state(&status, Palette::Plain);
    assert!(plain.starts_with("sited: lockdown\n"), "{plain}");
    assert!(
        plain.contains("  headroom      -2.0 °C: a zone is over its limit\n"),
        "{plain}"
    );
    let painted = render_state(&status, Palette::Ansi);
    assert!(
        painted.starts_with("sited: \x1b[31mlockdown\x1b[0m\n"),
        "{painted:?}"
    );
    assert!(
        painted.contains("\x1b[31m3 active, 2 unacknowledged, 1 critical\x1b[0m"),
        "a critical alarm is red: {painted:?}"
    );
    assert!(
        render_state(&document(STATUS_EMPTY), Palette::Ansi)
            .starts_with("sited: \x1b[32mnormal\x1b[0m\n")
    );
}

#[test]
fn a_state_missing_every_field_still_renders() {
    assert_golden(
        render_state(&json!({}), Palette::Plain),
        "sited: -
  budget        -
  headroom      -
  sensors       -: - ok, - lost
  alarms        - active, - unacknowledged, - critical
  silences      -
  relays        none configured
  uplink        - queued, - delivered, last delivery never
  log           - records, not sealed yet
  taken at      -
",
    );
}

#[test]
fn sensors_show_value_and_unit_and_why_a_lost_one_is_lost() {
    assert_golden(
        sensors(&SensorFilter::default()),
        "SENSOR                     BUS             VALUE     STATE    SINCE
hall-a.door-1.open         modbus:io-1     no        ok       12s ago
hall-a.field.shielding-db  modbus:probe-1  81.25 dB  ok       10s ago
hall-a.temp                modbus:io-1     -         lost     3m ago
    lost: no answer within the deadline
pdu-2.current              snmp:pdu-2      -         waiting  -
ups-1.charge               nut:ups-1       97 %      ok       9s ago
ups-1.on-battery           nut:ups-1       yes       ok       20m ago
ups-1.runtime              nut:ups-1       -         lost     30s ago
    lost: unreachable: connection refused
7 sensors: 4 ok, 2 lost, 1 waiting
",
    );
}

#[test]
fn lost_and_match_narrow_the_sensors() {
    let lost = SensorFilter {
        lost_only: true,
        pattern: None,
    };
    assert_golden(
        sensors(&lost),
        "SENSOR         BUS          VALUE  STATE  SINCE
hall-a.temp    modbus:io-1  -      lost   3m ago
    lost: no answer within the deadline
ups-1.runtime  nut:ups-1    -      lost   30s ago
    lost: unreachable: connection refused
2 sensors: 0 ok, 2 lost, 0 waiting (7 in all)
",
    );
    let ups = SensorFilter {
        lost_only: false,
        pattern: Some("ups-1.*".into()),
    };
    let text = sensors(&ups);
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        ["ups-1.charge", "ups-1.on-battery", "ups-1.runtime", "3"],
        "{text}"
    );
    assert!(text.ends_with("3 sensors: 2 ok, 1 lost, 0 waiting (7 in all)\n"));
    let both = SensorFilter {
        lost_only: true,
        pattern: Some("hall-a.*".into()),
    };
    assert!(sensors(&both).contains("hall-a.temp "));
    assert!(!sensors(&both).contains("ups-1.runtime"));
    let none = SensorFilter {
        lost_only: false,
        pattern: Some("generator-*".into()),
    };
    assert_eq!(sensors(&none), "No sensor matches (7 sensors in all).\n");
}

#[test]
fn a_site_without_sensors_says_so() {
    let text = render_sensors(
        &json!([]),
        &SensorFilter::default(),
        NOW_USEC,
        Palette::Plain,
    );
    assert_eq!(text, "No sensors.\n");
    let lost = SensorFilter {
        lost_only: true,
        pattern: None,
    };
    assert_eq!(
        render_sensors(&json!([]), &lost, NOW_USEC, Palette::Plain),
        "No sensors.\n"
    );
}

#[test]
fn sensor_values_read_with_their_units() {
    assert_eq!(sensor_value(&json!(81.25), &json!("dB")), "81.25 dB");
    assert_eq!(sensor_value(&json!(97), &json!("%")), "97 %");
    assert_eq!(sensor_value(&json!(21.5), &json!("degC")), "21.5 degC");
    assert_eq!(sensor_value(&json!(0.004), &json!("A")), "0 A");
    assert_eq!(sensor_value(&json!(-0.001), &Value::Null), "0");
    assert_eq!(sensor_value(&json!(-3.456), &Value::Null), "-3.46");
    assert_eq!(sensor_value(&json!(1234), &json!("")), "1234");
    assert_eq!(sensor_value(&json!(true), &Value::Null), "yes");
    assert_eq!(sensor_value(&json!(false), &json!("x")), "no");
    assert_eq!(sensor_value(&Value::Null, &json!("degC")), "-");
    assert_eq!(sensor_value(&json!("garbage"), &json!("degC")), "-");
}

#[test]
fn alarms_hide_silenced_and_inhibited_ones_but_count_them() {
    assert_golden(
        render_alarms(&document(ALARMS), false, NOW_USEC, Palette::Plain),
        "ALARM           SEVERITY  STATE    RAISED   ACK BY  ESCALATION  SILENCED
ups-on-battery  warning   active   20m ago  alice   -           -
    ups-1 is on battery; acknowledged 18m ago: generator starting
door-1-open     warning   cleared  50m ago  -       step 1      -
    shielded door hall-a door-1 open for more than 60 s; cleared 47m ago
2 alarms: 1 active, 1 unacknowledged; 2 silenced or inhibited not shown (--all)
",
    );
}

#[test]
fn all_alarms_in_raise_order_with_escalation_and_silence() {
    assert_golden(
        render_alarms(&document(ALARMS), true, NOW_USEC, Palette::Plain),
        "ALARM               SEVERITY  STATE      RAISED   ACK BY  ESCALATION  SILENCED
ups-on-battery      warning   active     20m ago  alice   -           -
    ups-1 is on battery; acknowledged 18m ago: generator starting
hall-a-temp-lost    critical  active     3m ago   -       step 2      id 7
    sensor hall-a.temp is lost: no answer within the deadline
door-1-open         warning   cleared    50m ago  -       step 1      -
    shielded door hall-a door-1 open for more than 60 s; cleared 47m ago
pdu-2-current-high  info      inhibited  2m ago   -       -           -
    pdu-2 current above 28 A; inhibited by ups-on-battery
4 alarms: 3 active, 3 unacknowledged
",
    );
    let painted = render_alarms(&document(ALARMS), true, NOW_USEC, Palette::Ansi);
    assert!(
        painted.contains("\x1b[31mcritical\x1b[0m  \x1b[31mactive\x1b[0m"),
        "{painted:?}"
    );
}

#[test]
fn no_alarms_says_so_and_still_counts_the_held_back_ones() {
    assert_eq!(
        render_alarms(&json!([]), false, NOW_USEC, Palette::Plain),
        "No alarms.\n"
    );
    let alarms = document(ALARMS);
    let held: Vec<Value> = list(&alarms)
        .iter()
        .filter(|a| held_back(a))
        .cloned()
        .collect();
    assert_eq!(
        render_alarms(&Value::Array(held), false, NOW_USEC, Palette::Plain),
        "No alarms; 2 silenced or inhibited not shown (--all).\n"
    );
}

#[test]
fn an_alarm_with_nulls_everywhere_renders_dashes() {
    let sparse = json!([{"alarm": "minerd/hijack-10.1.0.7", "severity": "critical",
        "active": true, "raised_at": null, "acknowledged": null, "escalation_step": null,
        "inhibited_by": null, "silenced_by": null}]);
    assert_golden(
        render_alarms(&sparse, false, NOW_USEC, Palette::Plain),
        "ALARM                   SEVERITY  STATE   RAISED  ACK BY  ESCALATION  SILENCED
minerd/hijack-10.1.0.7  critical  active  -       -       -           -
    -
1 alarm: 1 active, 1 unacknowledged
",
    );
}

#[test]
fn silences_show_what_they_match_until_when_and_why() {
    assert_golden(
        render_silences(&document(SILENCES), NOW_USEC, Palette::Plain),
        "ID  MATCH   PATTERN       AUTHOR  UNTIL                 ENDS
7   sensor  hall-a.temp*  alice   2026-11-21T11:00:10Z  in 2h
    set 2m ago: probe being replaced (ticket 4411)
9   alarm   door-*        root    2026-11-22T09:00:10Z  in 1d
    set 1m ago: door maintenance
2 silences
",
    );
    let later = NOW_USEC + 3 * 3600 * 1_000_000;
    let text = render_silences(&document(SILENCES), later, Palette::Plain);
    assert!(
        text.contains("2026-11-21T11:00:10Z  ended\n"),
        "one that ran out while being read: {text}"
    );
    assert_eq!(
        render_silences(&json!([]), NOW_USEC, Palette::Plain),
        "No silences in force.\n"
    );
}
