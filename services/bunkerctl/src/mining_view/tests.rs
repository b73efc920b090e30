//! The views on recorded documents shaped exactly as the `Mining1` contract describes them
//! (`appliance::dbus::contracts::Mining1Proxy`; minerd's own tests check that it serves these
//! shapes). The same files are served by the in-test minerd of `tests/mining_cli.rs`.

use serde_json::Value;

use super::job::render_job_summary;
use super::miner::render_miner;
use super::*;
use crate::layout::CONSOLE_WIDTH;

const STATUS: &str = include_str!("../../tests/mining/status.json");
const MINERS: &str = include_str!("../../tests/mining/miners.json");
const MINER: &str = include_str!("../../tests/mining/miner.json");
const HIJACKS: &str = include_str!("../../tests/mining/hijacks.json");
const SCAN: &str = include_str!("../../tests/mining/scan.json");

/// 2026-11-21T09:00:10Z, ten seconds after the recorded poll.
const NOW_USEC: u64 = 1_795_251_610_000_000;

fn document(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

const JOB: &str = r#"{"id":"7","action":"reboot","argument":"","selection":"owner=acme","started_at":"2026-11-21T09:01:00Z","finished_at":"2026-11-21T09:01:10Z","total":3,"done":3,"failed":1,"results":[{"ip":"10.1.0.2","ok":true,"message":"rebooted"},{"ip":"10.1.0.7","ok":false,"message":"the miner refused: Access denied to 'restart' command"},{"ip":"10.1.0.10","ok":true,"message":"rebooted"}]}"#;

/// Every line fits the 80-column serial console.
fn assert_fits_console(text: &str) {
    for line in text.lines() {
        assert!(line.chars().count() <= CONSOLE_WIDTH, "too wide: {line:?}");
    }
}

fn assert_golden(rendered: String, golden: &str) {
    assert_eq!(rendered, golden, "\n{rendered}");
    assert_fits_console(&rendered);
}

#[test]
fn the_status_reads_at_a_glance_on_80_columns() {
    assert_golden(
        render_status(&document(STATUS), Palette::Plain),
        r#"minerd: 2/4 up, 1.21 PH/s, 36.42 kW, 30.1 J/TH, hottest 81.5 °C
  miners        4: 2 up, 0 down, 1 sleeping, 1 quarantined, 0 missing
  poll          2026-11-21T09:00:00Z in 412 ms; failures: timeout 1
  discovery     2026-11-21T08:00:00Z: 1024 addresses scanned, 4 miners found
  proxy         stratum on 10.1.255.1:3333, 3 miners connected
  curtailment   sited: budget 40.00 kW, effective 38.00 kW, headroom 12.0 °C
                draw 36.42 kW; miners asleep: 1; at a lower power profile: 2
  hijacks       1 open (bunkerctl mining hijacks)
  audit         57 records, last sealed at record 50
  taken at      2026-11-21T09:00:02Z

OWNER  UP   HASHRATE    POWER     ACCEPTED  REJECTED  STALE
acme   2/3  1.11 PH/s   33.17 kW  48211     37        5
bravo  0/1  104.5 TH/s  3.25 kW   0         0         0

OWNER  UPSTREAM POOL                          STATE      MINERS
acme   stratum+tcp://pool.acme.example:3333   connected  2
bravo  stratum+tcp://pool.bravo.example:3333  failover   0
"#,
    );
}

#[test]
fn miners_are_sorted_by_address_with_their_pool_and_poll_below() {
    assert_golden(
        render_miners(&document(MINERS), NOW_USEC, Palette::Plain),
        r#"IP         OWNER  LOCATION   STATE        HASHRATE    POWER     J/TH  HOTTEST
10.1.0.2   acme   hall-a/r1  active       1.00 PH/s   29.88 kW  29.9  81.5 °C
    Antminer S21, bmminer; pool stratum+tcp://10.1.255.1:3333; polled 12s ago
10.1.0.7   acme   hall-a/r1  quarantined  104.5 TH/s  3.25 kW   31.1  72.0 °C
    Antminer S19j Pro, bosminer; pool stratum+tcp://evil.example:4444; polled
    11s ago
10.1.0.9   bravo  hall-b/r4  active       -           -         -     -
    Antminer S19j Pro, luxos; pool -; poll failed: no answer within 5 s
10.1.0.10  acme   hall-a/r2  sleeping     0.0 TH/s    45 W      -     38.0 °C
    Antminer S19 Pro, bmminer; pool stratum+tcp://10.1.255.1:3333; polled 12s
    ago
4 miners
"#,
    );
}

#[test]
fn one_miner_shows_boards_fans_pools_proxy_findings_and_the_last_hour() {
    assert_golden(
        render_miner(&document(MINER), NOW_USEC, Palette::Plain),
        r#"10.1.0.7: Antminer S19j Pro, bosminer, owner acme at hall-a/r1, quarantined
  output        104.5 TH/s, 3.25 kW, 31.1 J/TH, hottest chip 72.0 °C
  pool          stratum+tcp://evil.example:4444
  last poll     2026-11-21T08:59:59Z (11s ago)
  fans          #0 5400 rpm, #1 5460 rpm
  proxy         not connected
  history       ##?_# 52.0..104.6 TH/s over 5 points

BOARD  CHIPS  HASHRATE   HOTTEST CHIP  HW ERRORS
0      126    34.9 TH/s  70.5 °C       3
1      126    34.8 TH/s  72.0 °C       0
2      126    34.8 TH/s  71.0 °C       1

PRIO  POOL (as it reports)             USER           STATE   ACC/REJ
0     stratum+tcp://evil.example:4444  x9             active  210/0
1     stratum+tcp://10.1.255.1:3333    acme.10-1-0-7  alive   9120/4

IP        OWNER  KIND          SEVERITY  STATUS
10.1.0.7  acme   foreign_pool  critical  open, quarantined
    2026-11-21T08:40:00Z to 2026-11-21T08:59:59Z: reports pool
    stratum+tcp://evil.example:4444 (user x9), not sanctioned
1 open, 0 closed
"#,
    );
}

#[test]
fn hijacks_list_open_findings_first_with_minerds_sentence() {
    assert_golden(
        render_hijacks(&document(HIJACKS), Palette::Plain),
        r#"IP        OWNER  KIND             SEVERITY  STATUS
10.1.0.7  acme   foreign_pool     critical  open, quarantined
    2026-11-21T08:40:00Z to 2026-11-21T08:59:59Z: reports pool
    stratum+tcp://evil.example:4444 (user x9), not sanctioned
10.1.0.9  bravo  devfee_redirect  warning   closed
    2026-11-20T11:00:00Z to 2026-11-20T11:02:00Z: mined for
    stratum+tcp://fee.example:3333 for 2 minutes, then returned
1 open, 1 closed
"#,
    );
}

#[test]
fn a_scan_report_is_one_sentence() {
    assert_golden(
        render_scan(&document(SCAN)),
        r#"scanned 1024 addresses in 850 ms: 4 found, 1 new, 0 changed, 1 missing; errors:
  refused 1019, timeout 1
"#,
    );
}

#[test]
fn a_finished_job_lists_each_failed_miner_with_its_sentence() {
    assert_golden(
        render_job_summary(&document(JOB), Palette::Plain),
        r#"reboot on owner=acme: 3 miners, 2 ok, 1 failed
  job 7, finished 2026-11-21T09:01:10Z
FAILED MINER  WHY
10.1.0.7      the miner refused: Access denied to 'restart' command
"#,
    );
}

#[test]
fn missing_fields_show_as_a_dash_and_nothing_panics() {
    let empty = Value::Object(Default::default());
    let status = render_status(&empty, Palette::Plain);
    assert!(
        status.starts_with("minerd: 0/0 up, -, -, -, hottest -\n"),
        "{status}"
    );
    assert_fits_console(&status);
    assert_eq!(
        render_hijacks(&Value::Null, Palette::Plain),
        "No crypto-jacking findings.\n"
    );
    assert!(
        render_miner(&empty, NOW_USEC, Palette::Plain).contains("  proxy         not connected\n")
    );
    assert!(render_miners(&Value::Null, NOW_USEC, Palette::Plain).ends_with("0 miners\n"));
}

#[test]
fn colour_marks_open_hijacks_and_failures_without_moving_columns() {
    let painted = render_hijacks(&document(HIJACKS), Palette::Ansi);
    assert!(
        painted.contains("\x1b[31mopen, quarantined\x1b[0m"),
        "{painted}"
    );
    let summary = render_job_summary(&document(JOB), Palette::Ansi);
    assert!(
        summary.contains("\x1b[31m3 miners, 2 ok, 1 failed\x1b[0m"),
        "{summary}"
    );
}

#[test]
fn words_wrap_at_the_console_width_under_their_label() {
    let long = "word ".repeat(30);
    let text = labelled("label", &long);
    assert_fits_console(&text);
    assert!(text.starts_with("  label         word word"));
    assert!(
        text.lines()
            .skip(1)
            .all(|line| line.starts_with(&" ".repeat(16)))
    );
    let unbreakable = format!("stratum+tcp://{}.example:3333", "x".repeat(90));
    assert_eq!(
        wrapped("    ", 4, &unbreakable),
        format!("    {unbreakable}\n")
    );
}
