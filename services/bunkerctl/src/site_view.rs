//! How `bunkerctl site …` reads to a person.
//!
//! Each function renders one of sited's own JSON documents (the methods of
//! `org.bunkeros.Site1`, see `appliance::dbus::contracts::Site1Proxy`); a field sited does not
//! send shows as `-`, so an older or newer sited still renders. Laid out for the 80-column
//! serial console as `bunkerctl mining` is: wide facts (an alarm's summary, why a sensor is
//! lost, a silence's comment) go on an indented line under their row.

use serde_json::Value;

use crate::ca_view::text;
use crate::layout::{labelled, list, with_details, wrapped};
use crate::mining_view::audit_line;
use crate::mining_view::units::{power, rfc3339_usec, temperature};
use crate::site_args::glob_matches;
use crate::table::{self, Cell};
use crate::terminal::{Palette, Tone};
use crate::time_display::{humanize_since, humanize_until};

/// The tone of a site state word.
pub fn state_tone(state: &str) -> Tone {
    match state {
        "normal" => Tone::Good,
        "warning" => Tone::Pending,
        _ => Tone::Bad,
    }
}

/// The site on one screen, e.g.
///
/// ```text
/// sited: warning
///   reason        ups-1 is on battery (runtime 14 min)
///   budget        18.00 kW from battery: the grid feed is lost
///   headroom      8.5 °C
///   sensors       42: 39 ok, 2 lost, 1 waiting (bunkerctl site sensors --lost)
///   alarms        3 active, 2 unacknowledged, 1 critical (bunkerctl site alarms)
///   …
/// ```
/// then silences, relays, the uplink's store-and-forward queue and the event log.
pub fn render_state(status: &Value, palette: Palette) -> String {
    let state = text(&status["state"]);
    let mut out = format!("sited: {}\n", palette.paint(state_tone(&state), &state));
    let mut row = |label: &str, value: String| out.push_str(&labelled(label, &value));
    if let Some(reason) = status["reason"].as_str().filter(|r| !r.is_empty()) {
        row("reason", reason.to_owned());
    }
    row("budget", budget_line(status));
    row("headroom", headroom_line(&status["thermal_headroom_c"]));
    row("sensors", sensor_counts(&status["sensors"]));
    row("alarms", alarm_counts(&status["alarms"], palette));
    row("silences", silence_count(&status["silences"]));
    row("relays", relays_line(&status["relays"]));
    row("uplink", uplink_line(&status["uplink"]));
    row("log", audit_line(&status["log"]));
    row("taken at", text(&status["taken_at"]));
    out
}

fn budget_line(status: &Value) -> String {
    let source = &status["power"];
    let mut line = power(&status["power_budget_w"]);
    match source["source"].as_str() {
        Some("unknown") | None => {}
        Some(from) => line.push_str(&format!(" from {from}")),
    }
    if let Some(why) = source["why"].as_str().filter(|w| !w.is_empty()) {
        line.push_str(&format!(": {why}"));
    }
    line
}

fn headroom_line(headroom: &Value) -> String {
    match headroom.as_f64() {
        Some(c) if c < 0.0 => format!("{}: a zone is over its limit", temperature(headroom)),
        _ => temperature(headroom),
    }
}

fn sensor_counts(sensors: &Value) -> String {
    let mut line = format!(
        "{}: {} ok, {} lost",
        text(&sensors["total"]),
        text(&sensors["ok"]),
        text(&sensors["lost"])
    );
    let count = |key: &str| sensors[key].as_u64().unwrap_or(0);
    let waiting = count("total").saturating_sub(count("ok") + count("lost"));
    if waiting > 0 {
        line.push_str(&format!(", {waiting} waiting"));
    }
    if count("lost") > 0 {
        line.push_str(" (bunkerctl site sensors --lost)");
    }
    line
}

fn alarm_counts(alarms: &Value, palette: Palette) -> String {
    let line = format!(
        "{} active, {} unacknowledged, {} critical",
        text(&alarms["active"]),
        text(&alarms["unacknowledged"]),
        text(&alarms["critical"])
    );
    let attention = ["active", "unacknowledged"]
        .iter()
        .any(|key| alarms[*key].as_u64().is_some_and(|n| n > 0));
    if !attention {
        return line;
    }
    let tone = if alarms["critical"].as_u64().is_some_and(|n| n > 0) {
        Tone::Bad
    } else {
        Tone::Pending
    };
    format!("{} (bunkerctl site alarms)", palette.paint(tone, &line))
}

fn silence_count(silences: &Value) -> String {
    match silences.as_u64() {
        Some(0) => "none".to_owned(),
        Some(n) => format!("{n} in force (bunkerctl site silences)"),
        None => text(silences),
    }
}

/// Each relay as `siren on`, with what sited wants of it when that differs and why it could not
/// be set; `none configured` for a site without relays.
fn relays_line(relays: &Value) -> String {
    let relays = list(relays);
    if relays.is_empty() {
        return "none configured".to_owned();
    }
    relays
        .iter()
        .map(|relay| {
            let mut shown = format!("{} {}", text(&relay["name"]), on_off(&relay["on"]));
            if relay["wanted"].is_boolean() && relay["wanted"] != relay["on"] {
                shown.push_str(&format!(", wanted {}", on_off(&relay["wanted"])));
            }
            if let Some(error) = relay["error"].as_str() {
                shown.push_str(&format!(": {error}"));
            }
            shown
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn on_off(value: &Value) -> &'static str {
    match value.as_bool() {
        Some(true) => "on",
        Some(false) => "off",
        None => "unknown",
    }
}

fn uplink_line(uplink: &Value) -> String {
    let queued = text(&uplink["queued"]);
    if uplink["configured"] == false {
        return match uplink["queued"].as_u64() {
            Some(0) => "not configured".to_owned(),
            _ => format!("not configured; {queued} notifications queued"),
        };
    }
    let mut line = format!(
        "{queued} queued, {} delivered, last delivery {}",
        text(&uplink["delivered"]),
        uplink["last_delivery_at"].as_str().unwrap_or("never")
    );
    if let Some(error) = uplink["last_error"].as_str() {
        line.push_str(&format!("; last error: {error}"));
    }
    line
}

/// Which sensors `bunkerctl site sensors` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorFilter {
    /// Only the lost ones (`--lost`).
    pub lost_only: bool,
    /// Only names matching this pattern (`--match`, `*` any run of characters).
    pub pattern: Option<String>,
}

impl SensorFilter {
    /// Whether `sensor` (an item of sited's `Sensors` array) is shown.
    pub fn keeps(&self, sensor: &Value) -> bool {
        let lost = sensor["state"] == "lost";
        let name = sensor["sensor"].as_str().unwrap_or_default();
        (!self.lost_only || lost)
            && self
                .pattern
                .as_deref()
                .is_none_or(|pattern| glob_matches(pattern, name))
    }

    fn is_active(&self) -> bool {
        self.lost_only || self.pattern.is_some()
    }
}

/// The sensors the filter keeps, by name as sited sends them, why each lost one is lost on the
/// line under it, e.g.
///
/// ```text
/// SENSOR              BUS          VALUE     STATE  SINCE
/// hall-a.door-1.open  modbus:io-1  no        ok     12s ago
/// hall-a.temp         modbus:io-1  -         lost   2m ago
///     lost: no answer within the deadline
/// ```
pub fn render_sensors(
    sensors: &Value,
    filter: &SensorFilter,
    now_usec: u64,
    palette: Palette,
) -> String {
    let all = list(sensors);
    let shown: Vec<&Value> = all.iter().filter(|s| filter.keeps(s)).collect();
    if shown.is_empty() {
        return match all.len() {
            0 => "No sensors.\n".to_owned(),
            n => format!("No sensor matches ({n} sensors in all).\n"),
        };
    }
    let rows: Vec<Vec<Cell>> = shown
        .iter()
        .map(|sensor| {
            let state = text(&sensor["state"]);
            vec![
                Cell::plain(text(&sensor["sensor"])),
                Cell::plain(text(&sensor["bus"])),
                Cell::plain(sensor_value(&sensor["value"], &sensor["unit"])),
                Cell::toned(sensor_tone(&state), state),
                Cell::plain(humanize_since(now_usec, rfc3339_usec(&sensor["at"]))),
            ]
        })
        .collect();
    let details: Vec<String> = shown
        .iter()
        .map(|sensor| match sensor["reason"].as_str() {
            Some(reason) if sensor["state"] == "lost" => detail_lines(&format!("lost: {reason}")),
            _ => String::new(),
        })
        .collect();
    let headings = ["SENSOR", "BUS", "VALUE", "STATE", "SINCE"];
    let mut out = with_details(&table::render(&headings, &rows, palette), &details);
    let with_state = |state: &str| shown.iter().filter(|s| s["state"] == state).count();
    let mut footer = format!(
        "{}: {} ok, {} lost, {} waiting",
        counted(shown.len(), "sensor"),
        with_state("ok"),
        with_state("lost"),
        with_state("waiting"),
    );
    if filter.is_active() {
        footer.push_str(&format!(" ({} in all)", all.len()));
    }
    out.push_str(&footer);
    out.push('\n');
    out
}

fn sensor_tone(state: &str) -> Tone {
    match state {
        "ok" => Tone::Good,
        "lost" => Tone::Bad,
        _ => Tone::Pending,
    }
}

/// A number with its unit (`81.25 dB`, `97 %`), a contact as `yes`/`no` (`yes`: the contact's
/// active state, e.g. the door is open), `-` when lost or not read yet.
pub fn sensor_value(value: &Value, unit: &Value) -> String {
    let number = match value {
        Value::Bool(true) => return "yes".to_owned(),
        Value::Bool(false) => return "no".to_owned(),
        Value::Number(n) => n.as_f64().map(two_places).unwrap_or_else(|| n.to_string()),
        _ => return "-".to_owned(),
    };
    match unit.as_str().filter(|u| !u.is_empty()) {
        Some(unit) => format!("{number} {unit}"),
        None => number,
    }
}

/// At most two decimal places, without trailing zeros: `81.25`, `97`, `0.5`.
fn two_places(n: f64) -> String {
    let fixed = format!("{n:.2}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    match trimmed {
        "-0" => "0".to_owned(),
        other => other.to_owned(),
    }
}

/// `1 alarm`, `2 alarms`.
fn counted(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// `text` wrapped under a row, indented by four, without the last newline (as
/// [`with_details`] takes it).
fn detail_lines(text: &str) -> String {
    let mut lines = wrapped("    ", 4, text);
    lines.pop();
    lines
}

/// Whether an alarm is held back from the default list: silenced or inhibited.
pub fn held_back(alarm: &Value) -> bool {
    !alarm["silenced_by"].is_null() || !alarm["inhibited_by"].is_null()
}

/// The alarms in raise order with each one's summary (and when it cleared, who acknowledged
/// it and why) on the lines under it; silenced and inhibited ones only with `all`, and counted
/// either way, e.g.
///
/// ```text
/// ALARM             SEVERITY  STATE    RAISED   ACK BY  ESCALATION  SILENCED
/// ups-on-battery    warning   active   20m ago  alice   -           -
///     ups-1 is on battery; acknowledged 18m ago: generator starting
/// ```
pub fn render_alarms(alarms: &Value, all: bool, now_usec: u64, palette: Palette) -> String {
    let every = list(alarms);
    let shown: Vec<&Value> = every.iter().filter(|a| all || !held_back(a)).collect();
    let hidden = every.len() - shown.len();
    let hidden_note = match hidden {
        0 => String::new(),
        n => format!("; {n} silenced or inhibited not shown (--all)"),
    };
    if shown.is_empty() {
        return format!("No alarms{hidden_note}.\n");
    }
    let rows: Vec<Vec<Cell>> = shown
        .iter()
        .map(|alarm| {
            let (state, tone) = alarm_state(alarm);
            vec![
                Cell::plain(text(&alarm["alarm"])),
                Cell::toned(severity_tone(&alarm["severity"]), text(&alarm["severity"])),
                Cell::toned(tone, state),
                Cell::plain(humanize_since(now_usec, rfc3339_usec(&alarm["raised_at"]))),
                Cell::plain(text(&alarm["acknowledged"]["by"])),
                Cell::plain(escalation(&alarm["escalation_step"])),
                Cell::plain(match alarm["silenced_by"].as_u64() {
                    Some(id) => format!("id {id}"),
                    None => text(&alarm["silenced_by"]),
                }),
            ]
        })
        .collect();
    let details: Vec<String> = shown
        .iter()
        .map(|alarm| detail_lines(&alarm_detail(alarm, now_usec)))
        .collect();
    let headings = [
        "ALARM",
        "SEVERITY",
        "STATE",
        "RAISED",
        "ACK BY",
        "ESCALATION",
        "SILENCED",
    ];
    let mut out = with_details(&table::render(&headings, &rows, palette), &details);
    let active = shown.iter().filter(|a| a["active"] == true).count();
    let unacknowledged = shown.iter().filter(|a| a["acknowledged"].is_null()).count();
    out.push_str(&format!(
        "{}: {active} active, {unacknowledged} unacknowledged{hidden_note}\n",
        counted(shown.len(), "alarm")
    ));
    out
}

fn alarm_state(alarm: &Value) -> (&'static str, Tone) {
    if alarm["active"] != true {
        ("cleared", Tone::Dim)
    } else if !alarm["inhibited_by"].is_null() {
        ("inhibited", Tone::Dim)
    } else if alarm["severity"] == "critical" {
        ("active", Tone::Bad)
    } else {
        ("active", Tone::Pending)
    }
}

fn severity_tone(severity: &Value) -> Tone {
    match severity.as_str() {
        Some("critical") => Tone::Bad,
        Some("warning") => Tone::Pending,
        _ => Tone::Dim,
    }
}

/// `step 2` once escalation has started, `-` before.
fn escalation(step: &Value) -> String {
    match step.as_u64() {
        Some(0) | None => "-".to_owned(),
        Some(n) => format!("step {n}"),
    }
}

fn alarm_detail(alarm: &Value, now_usec: u64) -> String {
    let mut parts = vec![text(&alarm["summary"])];
    if alarm["active"] != true {
        let cleared = humanize_since(now_usec, rfc3339_usec(&alarm["cleared_at"]));
        parts.push(format!("cleared {cleared}"));
    }
    if let Some(inhibitor) = alarm["inhibited_by"].as_str() {
        parts.push(format!("inhibited by {inhibitor}"));
    }
    let acknowledged = &alarm["acknowledged"];
    if acknowledged.is_object() {
        let at = humanize_since(now_usec, rfc3339_usec(&acknowledged["at"]));
        let mut ack = format!("acknowledged {at}");
        if let Some(note) = acknowledged["note"].as_str().filter(|n| !n.is_empty()) {
            ack.push_str(&format!(": {note}"));
        }
        parts.push(ack);
    }
    parts.join("; ")
}

/// The silences in force by id, each one's comment under it, e.g.
///
/// ```text
/// ID  MATCH   PATTERN       AUTHOR  UNTIL                 ENDS
/// 7   sensor  hall-a.temp*  alice   2026-11-21T11:00:10Z  in 2h
///     set 2m ago: probe being replaced (ticket 4411)
/// ```
pub fn render_silences(silences: &Value, now_usec: u64, palette: Palette) -> String {
    let silences = list(silences);
    if silences.is_empty() {
        return "No silences in force.\n".to_owned();
    }
    let rows: Vec<Vec<Cell>> = silences
        .iter()
        .map(|silence| {
            vec![
                Cell::plain(text(&silence["id"])),
                Cell::plain(text(&silence["match"])),
                Cell::plain(text(&silence["pattern"])),
                Cell::plain(text(&silence["author"])),
                Cell::plain(text(&silence["until"])),
                Cell::plain(humanize_until(now_usec, rfc3339_usec(&silence["until"]))),
            ]
        })
        .collect();
    let details: Vec<String> = silences
        .iter()
        .map(|silence| {
            let created = humanize_since(now_usec, rfc3339_usec(&silence["created_at"]));
            detail_lines(&format!("set {created}: {}", text(&silence["comment"])))
        })
        .collect();
    let headings = ["ID", "MATCH", "PATTERN", "AUTHOR", "UNTIL", "ENDS"];
    let mut out = with_details(&table::render(&headings, &rows, palette), &details);
    out.push_str(&format!("{}\n", counted(silences.len(), "silence")));
    out
}

#[cfg(test)]
mod tests;
