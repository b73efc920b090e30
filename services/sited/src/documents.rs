//! The JSON documents `Site1` answers with (fields as the contract in
//! `appliance::dbus::contracts::Site1Proxy` lists them; only ever added to).

use std::collections::BTreeMap;
use std::time::SystemTime;

use appliance::time_text::rfc3339;
use serde_json::{Value as Json, json};

use crate::relay_driver::RelayState;
use crate::rules::{Alarm, RuleEngine, Silence, SilenceMatch};
use crate::sensor_table::SensorCounts;

/// What the status document says beyond the engine and the sensors.
pub struct StatusParts<'a> {
    pub power_budget_w: f64,
    pub thermal_headroom_c: f64,
    pub power_source: &'a str,
    pub power_why: &'a str,
    pub sensors: SensorCounts,
    pub relays: &'a BTreeMap<String, RelayState>,
    pub uplink: Json,
    pub log_records: u64,
    pub last_sealed_seq: u64,
}

/// `Site1.Status`.
pub fn status(engine: &RuleEngine, parts: &StatusParts<'_>, now: SystemTime) -> Json {
    let site = engine.site_status();
    let alarms = engine.alarms();
    let relays: Vec<Json> = parts
        .relays
        .iter()
        .map(|(name, relay)| {
            json!({
                "name": name,
                "bus": relay.bus,
                "on": relay.on,
                "wanted": relay.wanted,
                "error": relay.error,
            })
        })
        .collect();
    json!({
        "state": site.state.as_str(),
        "reason": site.reason,
        "power_budget_w": parts.power_budget_w,
        "thermal_headroom_c": parts.thermal_headroom_c,
        "power": { "source": parts.power_source, "why": parts.power_why },
        "sensors": {
            "total": parts.sensors.total,
            "ok": parts.sensors.ok,
            "lost": parts.sensors.lost,
        },
        "alarms": {
            "active": alarms.iter().filter(|a| a.active).count(),
            "unacknowledged": alarms.iter().filter(|a| a.acknowledged.is_none()).count(),
            "critical": alarms.iter().filter(|a| a.active && a.severity == crate::rules::Severity::Critical).count(),
        },
        "silences": engine.silences().iter().filter(|s| s.until > now).count(),
        "relays": relays,
        "uplink": parts.uplink,
        "log": { "records": parts.log_records, "last_sealed_seq": parts.last_sealed_seq },
        "taken_at": rfc3339(now),
    })
}

/// `Site1.Alarms`: active alarms and cleared ones waiting for acknowledgement.
pub fn alarms(engine: &RuleEngine, now: SystemTime) -> Json {
    Json::Array(
        engine
            .alarms()
            .iter()
            .map(|alarm| alarm_json(engine, alarm, now))
            .collect(),
    )
}

fn alarm_json(engine: &RuleEngine, alarm: &Alarm, now: SystemTime) -> Json {
    let silenced_by = engine
        .silences()
        .iter()
        .find(|s| s.until > now && s.matcher.matches(alarm))
        .map(|s| s.id);
    let detail = serde_json::from_str::<Json>(&alarm.detail).unwrap_or(Json::Null);
    json!({
        "alarm": alarm.key.to_string(),
        "severity": alarm.severity.as_str(),
        "summary": alarm.summary,
        "active": alarm.active,
        "raised_at": rfc3339(alarm.raised_at),
        "cleared_at": alarm.cleared_at.map(rfc3339),
        "acknowledged": alarm.acknowledged.as_ref().map(|ack| json!({
            "by": ack.by,
            "at": rfc3339(ack.at),
            "note": ack.note,
        })),
        "escalation_step": alarm.escalation_step,
        "site_state": alarm.site_effect().as_str(),
        "inhibited_by": engine.inhibited_by(&alarm.key),
        "silenced_by": silenced_by,
        "sensors": alarm.sensors.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "detail": detail,
    })
}

/// `Site1.Silences`: those in force.
pub fn silences(engine: &RuleEngine, now: SystemTime) -> Json {
    Json::Array(
        engine
            .silences()
            .iter()
            .filter(|s| s.until > now)
            .map(silence_json)
            .collect(),
    )
}

fn silence_json(silence: &Silence) -> Json {
    let (what, pattern) = match &silence.matcher {
        SilenceMatch::Alarm(p) => ("alarm", p),
        SilenceMatch::Sensor(p) => ("sensor", p),
    };
    json!({
        "id": silence.id,
        "match": what,
        "pattern": pattern,
        "author": silence.author,
        "comment": silence.comment,
        "created_at": rfc3339(silence.created),
        "until": rfc3339(silence.until),
    })
}
