//! The JSON documents of `org.bunkeros.Mining1`, built from a [`MiningSnapshot`] alone (plus a
//! miner's history, read from the inventory by the caller), exactly as the contract in
//! [`appliance::dbus::contracts::Mining1Proxy`] lists their fields.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::cgminer::{FirmwareKind, MinerSnapshot, PoolState};
use crate::curtailment_driver::BudgetSource;
use crate::discovery::DiscoveryReport;
use crate::hijack_guard::StoredFinding;
use crate::inventory::{HistoryPoint, MinerRecord, MinerState};
use crate::proxy::{MinerView, ShareCounts};
use crate::snapshot::MiningSnapshot;
use crate::telemetry::MinerStatus;
use crate::telemetry::aggregate::{hashrate_ths, hottest_chip};

pub use appliance::time_text::rfc3339;

/// RFC 3339 of Unix seconds.
pub fn rfc3339_unix(seconds: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    rfc3339(at)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `Status()`. `hijacks_open` is null when the findings cannot be read.
pub fn status(snapshot: &MiningSnapshot) -> Value {
    let hijacks_open = snapshot
        .hijacks
        .as_ref()
        .ok()
        .map(|found| found.iter().filter(|f| f.open).count());
    let curtailment = curtailment(snapshot);
    let fleet = &snapshot.aggregates.fleet;
    let count = |state: MinerState| snapshot.miners.iter().filter(|m| m.state == state).count();
    let owners: Vec<Value> = owner_names(snapshot)
        .into_iter()
        .map(|owner| {
            let aggregate = snapshot
                .aggregates
                .owners
                .get(&owner)
                .copied()
                .unwrap_or_default();
            let miners = snapshot.miners.iter().filter(|m| m.owner == owner).count();
            let shares = snapshot
                .proxy
                .owners
                .get(&owner)
                .cloned()
                .unwrap_or_default();
            json!({
                "owner": owner,
                "miners": miners,
                "up": aggregate.up,
                "hashrate_ths": aggregate.hashrate_ths,
                "power_w": aggregate.power_w,
                "shares": shares_document(&shares),
            })
        })
        .collect();
    json!({
        "miners": {
            "total": snapshot.miners.len(),
            "up": fleet.up,
            "down": fleet.down,
            "sleeping": count(MinerState::Sleeping),
            "quarantined": count(MinerState::Quarantined),
            "missing": count(MinerState::Missing),
        },
        "hashrate_ths": fleet.hashrate_ths,
        "power_w": fleet.power_w,
        "efficiency_j_per_th": fleet.efficiency_j_per_th,
        "hottest_chip_c": fleet.hottest_chip_c,
        "owners": owners,
        "poll": snapshot.poll.as_ref().map(|poll| json!({
            "last_at": rfc3339(poll.at),
            "duration_ms": millis(poll.duration),
            "polled": poll.polled,
            "ok": poll.ok,
            "failures": failures(&poll.failures),
        })),
        "discovery": snapshot.discovery.as_ref().map(|d| json!({
            "last_at": rfc3339(d.at),
            "scanned": d.report.addresses_scanned,
            "found": d.report.miners_found,
        })),
        "proxy": {
            "listen": snapshot.proxy.listen.map(|a| a.to_string()),
            "connected": snapshot.proxy.connected(),
            "refused_connections": snapshot.proxy.refused_connections,
            "upstreams": snapshot.proxy.upstreams.iter().map(|u| json!({
                "owner": u.owner,
                "pool": u.pool_url,
                "state": if !u.usable { "down" } else if u.active { "active" } else { "standby" },
                "miners": u.miners,
            })).collect::<Vec<_>>(),
        },
        "curtailment": curtailment,
        "hijacks_open": hijacks_open,
        "audit": {
            "records": snapshot.audit.records,
            "last_sealed_seq": snapshot.audit.last_sealed_seq,
        },
        "taken_at": rfc3339(snapshot.taken_at),
    })
}

/// The curtailment driver's latest round; before its first, the budget followed and the
/// fleet's draw (the plan's fields null).
pub fn curtailment(snapshot: &MiningSnapshot) -> Value {
    let Some(round) = &snapshot.curtailment else {
        return budget_document(snapshot);
    };
    json!({
        "source": match round.source {
            BudgetSource::Sited => "sited",
            BudgetSource::Static => "static",
        },
        "budget_w": round.budget_w,
        "headroom_c": round.thermal_headroom_c,
        "effective_budget_w": round.effective_budget_w,
        "draw_w": round.draw_w,
        "asleep": round.asleep,
        "lowered": round.lowered,
        "shortfall_w": round.shortfall_w,
        "actions": round.actions,
    })
}

fn budget_document(snapshot: &MiningSnapshot) -> Value {
    let budget = snapshot.budget;
    json!({
        "source": if budget.from_sited { "sited" } else { "static" },
        "budget_w": budget.power_w,
        "headroom_c": budget.headroom_c,
        "effective_budget_w": null,
        "draw_w": snapshot.aggregates.fleet.power_w,
        "asleep": snapshot.miners.iter().filter(|m| m.state == MinerState::Sleeping).count(),
        "lowered": null,
        "shortfall_w": null,
    })
}

/// `Hijacks()`: the findings (open first), or of one miner with `only`.
pub fn hijacks(
    snapshot: &MiningSnapshot,
    findings: &[StoredFinding],
    only: Option<IpAddr>,
) -> Value {
    let only = only.map(|ip| ip.to_string());
    Value::Array(
        findings
            .iter()
            .filter(|f| only.as_ref().is_none_or(|ip| *ip == f.ip))
            .map(|f| {
                let quarantined =
                    f.ip.parse::<IpAddr>()
                        .ok()
                        .and_then(|ip| snapshot.miner_at(ip))
                        .is_some_and(|m| m.state == MinerState::Quarantined);
                json!({
                    "ip": f.ip,
                    "owner": f.owner,
                    "kind": f.kind,
                    "subject": f.subject,
                    "severity": f.severity,
                    "seen": f.sentence,
                    "first_at": rfc3339_unix(f.first_seen),
                    "last_at": rfc3339_unix(f.last_seen),
                    "quarantined": quarantined,
                    "open": f.open,
                    "closed_at": f.closed_at.map(rfc3339_unix),
                    "closed_by": f.closed_by,
                    "close_note": f.close_note,
                })
            })
            .collect(),
    )
}

fn owner_names(snapshot: &MiningSnapshot) -> Vec<String> {
    let mut names: Vec<String> = snapshot.miners.iter().map(|m| m.owner.clone()).collect();
    names.extend(snapshot.proxy.owners.keys().cloned());
    names.sort();
    names.dedup();
    names
}

fn failures<K: AsFailureName>(failures: &BTreeMap<K, usize>) -> Value {
    failures
        .iter()
        .map(|(kind, count)| (kind.name().to_owned(), json!(count)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A failure kind's name in documents.
trait AsFailureName {
    fn name(&self) -> &'static str;
}

impl AsFailureName for crate::telemetry::PollFailure {
    fn name(&self) -> &'static str {
        self.as_str()
    }
}

fn shares_document(counts: &ShareCounts) -> Value {
    json!({
        "accepted": counts.accepted,
        "rejected": counts.rejected_total(),
        "stale": counts.stale,
        "accepted_difficulty": counts.accepted_difficulty,
    })
}

pub fn firmware_name(kind: FirmwareKind) -> &'static str {
    match kind {
        FirmwareKind::Cgminer => "cgminer",
        FirmwareKind::Bmminer => "bmminer",
        FirmwareKind::Bosminer => "bosminer",
        FirmwareKind::Luxos => "luxos",
        FirmwareKind::Unknown => "unknown",
    }
}

/// One element of `Miners(selection)`.
pub fn miner_summary(record: &MinerRecord, status: Option<&MinerStatus>) -> Value {
    let live = status.and_then(|s| s.snapshot.as_deref().filter(|_| s.is_up()));
    let up = status.is_some_and(MinerStatus::is_up) && record.state != MinerState::Sleeping;
    let ths = live.map(hashrate_ths);
    let power = live.and_then(|s| s.power_watts);
    json!({
        "ip": record.addr.ip().to_string(),
        "owner": record.owner,
        "location": record.location,
        "model": record.model,
        "firmware": firmware_name(record.firmware),
        "state": record.state.as_str(),
        "up": up,
        "hashrate_ths": ths,
        "power_w": power,
        "efficiency_j_per_th": match (power, ths) {
            (Some(w), Some(t)) if t > 0.0 => Some(w / t),
            _ => None,
        },
        "hottest_chip_c": live.and_then(hottest_chip),
        "pool": live.and_then(active_pool),
        "last_poll_at": status.map(|s| rfc3339(s.last_poll_at)),
        "poll_failure": status.and_then(|s| s.last_poll.err()).map(|f| f.as_str()),
    })
}

fn active_pool(snapshot: &MinerSnapshot) -> Option<String> {
    snapshot
        .pools
        .iter()
        .find(|p| p.stratum_active)
        .map(|p| p.url.clone())
}

/// `Miner(ip)`: the summary, then boards, fans, pools, the proxy's view, the miner's hijack
/// findings (`hijacks`, from the guard) and its last hour.
pub fn miner_detail(
    record: &MinerRecord,
    status: Option<&MinerStatus>,
    proxy: Option<&MinerView>,
    hijacks: Value,
    history: &[HistoryPoint],
) -> Value {
    let mut document = miner_summary(record, status);
    let latest = status.and_then(|s| s.snapshot.as_deref());
    let extra = json!({
        "boards": latest.map(|s| s.boards.iter().map(|b| json!({
            "index": b.index,
            "chips": b.chips,
            "hashrate_ths": b.hashrate.map(|h| h.terahashes()),
            "chip_temps_c": b.chip_temps_c,
            "pcb_temps_c": b.pcb_temps_c,
            "hardware_errors": b.hardware_errors,
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "fans": latest.map(|s| s.fans.iter().map(|f| json!({"index": f.index, "rpm": f.rpm}))
            .collect::<Vec<_>>()).unwrap_or_default(),
        "pools": latest.map(|s| s.pools.iter().map(|p| json!({
            "index": p.index,
            "url": p.url,
            "user": p.user,
            "alive": p.state == PoolState::Alive,
            "active": p.stratum_active,
            "priority": p.priority,
            "accepted": p.accepted,
            "rejected": p.rejected,
            "stale": p.stale,
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "power_target_w": record.power_target_w,
        "uptime_s": latest.and_then(|s| s.uptime).map(|u| u.as_secs()),
        "firmware_version": record.firmware_version,
        "serial": record.serial,
        "mac": record.mac,
        "first_seen_at": rfc3339_unix(record.first_seen),
        "last_seen_at": rfc3339_unix(record.last_seen),
        "proxy": proxy.map(|view| json!({
            "connected": view.connected,
            "user": view.authorized_user,
            "pool": view.upstream_pool,
            "difficulty": view.difficulty,
            "last_share_at": view.last_share_unix
                .map(|s| rfc3339_unix(i64::try_from(s).unwrap_or(i64::MAX))),
            "quarantined": view.quarantined,
            "refused_users": view.refused_users,
            "protocol_errors": view.protocol_errors,
            "shares": shares_document(&view.counts),
        })),
        "hijacks": hijacks,
        "history": history.iter().map(|point| json!({
            "at": rfc3339_unix(point.bucket_start),
            "hashrate_ths": point.avg_hashrate_ths,
            "power_w": point.avg_power_w,
            "hottest_chip_c": point.max_chip_temp_c,
        })).collect::<Vec<_>>(),
    });
    if let (Value::Object(base), Value::Object(more)) = (&mut document, extra) {
        base.extend(more);
    }
    document
}

/// `Miners(selection)`: the picked miners as an array by address.
pub fn miners<'a>(
    snapshot: &MiningSnapshot,
    picked: impl IntoIterator<Item = &'a MinerRecord>,
) -> Value {
    let mut picked: Vec<&MinerRecord> = picked.into_iter().collect();
    picked.sort_by_key(|m| *m.addr.ip());
    Value::Array(
        picked
            .into_iter()
            .map(|m| miner_summary(m, snapshot.telemetry.get(&m.id)))
            .collect(),
    )
}

/// `Scan()`'s report.
pub fn scan_report(report: &DiscoveryReport) -> Value {
    let errors: serde_json::Map<String, Value> = report
        .errors
        .iter()
        .map(|(kind, count)| (kind.as_str().to_owned(), json!(count)))
        .collect();
    json!({
        "scanned": report.addresses_scanned,
        "found": report.miners_found,
        "new": report.changes.new.len(),
        "changed": report.changes.changed.len(),
        "missing": report.changes.missing.len(),
        "errors": errors,
        "duration_ms": millis(report.duration),
    })
}

/// The proxy's view of `ip`, if it has seen it.
pub fn proxy_view(snapshot: &MiningSnapshot, ip: IpAddr) -> Option<&MinerView> {
    snapshot.proxy.miners.get(&ip)
}

#[cfg(test)]
#[path = "documents_tests.rs"]
mod tests;
