//! How `bunkerctl mining …` reads to a person.
//!
//! Each function renders one of minerd's own JSON documents (the methods of
//! `org.bunkeros.Mining1`, see `appliance::dbus::contracts::Mining1Proxy`); a field minerd does
//! not send shows as `-`, so an older or newer minerd still renders. Everything is laid out to
//! be read on an 80-column serial console: wide facts (pools, failures, hijack sentences) go on
//! an indented line under their row instead of widening the table.

pub mod job;
pub mod miner;
pub mod units;

use serde_json::Value;

use crate::ca_view::text;
use crate::layout::{labelled, list, with_details, wrapped};
use crate::table::{self, Cell};
use crate::terminal::{Palette, Tone};
use crate::time_display::humanize_since;
use units::{efficiency, hashrate, power, rfc3339_usec, temperature};

/// The fleet at a glance, e.g.
///
/// ```text
/// minerd: 1196/1200 miners up, 120.45 PH/s, 3.61 MW, 30.0 J/TH, hottest chip 81.5 °C
///   miners        1200: 1196 up, 1 down, 2 sleeping, 1 quarantined, 0 missing
///   …
/// ```
/// then one line per owner with its shares, and the proxy's upstream pools.
pub fn render_status(status: &Value, palette: Palette) -> String {
    let miners = &status["miners"];
    let up = miners["up"].as_u64().unwrap_or(0);
    let total = miners["total"].as_u64().unwrap_or(0);
    let hijacks = status["hijacks_open"].as_u64().unwrap_or(0);
    let tone = if hijacks > 0 || up < total {
        Tone::Pending
    } else {
        Tone::Good
    };
    let headline = format!(
        "{up}/{total} up, {}, {}, {}, hottest {}",
        hashrate(&status["hashrate_ths"]),
        power(&status["power_w"]),
        efficiency(&status["efficiency_j_per_th"]),
        temperature(&status["hottest_chip_c"]),
    );
    let mut out = format!("minerd: {}\n", palette.paint(tone, &headline));
    let mut row = |label: &str, value: String| out.push_str(&labelled(label, &value));
    row("miners", miner_counts(miners));
    row("poll", poll_line(&status["poll"]));
    row("discovery", discovery_line(&status["discovery"]));
    row("proxy", proxy_line(&status["proxy"]));
    row("curtailment", curtailment_line(&status["curtailment"]));
    row("", draw_line(&status["curtailment"]));
    let hijack_line = match hijacks {
        0 => "none open".to_owned(),
        n => palette.paint(Tone::Bad, &format!("{n} open (bunkerctl mining hijacks)")),
    };
    row("hijacks", hijack_line);
    row("audit", audit_line(&status["audit"]));
    row("taken at", text(&status["taken_at"]));
    out.push('\n');
    out.push_str(&owners_table(&status["owners"], palette));
    let upstreams = status["proxy"]["upstreams"].as_array();
    if upstreams.is_some_and(|u| !u.is_empty()) {
        out.push('\n');
        out.push_str(&upstreams_table(&status["proxy"]["upstreams"], palette));
    }
    out
}

fn positive(value: &Value) -> Option<f64> {
    value.as_f64().filter(|v| *v > 0.0)
}

fn miner_counts(miners: &Value) -> String {
    format!(
        "{}: {} up, {} down, {} sleeping, {} quarantined, {} missing",
        text(&miners["total"]),
        text(&miners["up"]),
        text(&miners["down"]),
        text(&miners["sleeping"]),
        text(&miners["quarantined"]),
        text(&miners["missing"]),
    )
}

fn poll_line(poll: &Value) -> String {
    format!(
        "{} in {} ms; failures: {}",
        text(&poll["last_at"]),
        text(&poll["duration_ms"]),
        counts(&poll["failures"])
    )
}

fn discovery_line(discovery: &Value) -> String {
    format!(
        "{}: {} addresses scanned, {} miners found",
        text(&discovery["last_at"]),
        text(&discovery["scanned"]),
        text(&discovery["found"]),
    )
}

fn proxy_line(proxy: &Value) -> String {
    format!(
        "stratum on {}, {} miners connected",
        text(&proxy["listen"]),
        text(&proxy["connected"])
    )
}

fn curtailment_line(curtailment: &Value) -> String {
    format!(
        "{}: budget {}, effective {}, headroom {}",
        text(&curtailment["source"]),
        power(&curtailment["budget_w"]),
        power(&curtailment["effective_budget_w"]),
        temperature(&curtailment["headroom_c"]),
    )
}

fn draw_line(curtailment: &Value) -> String {
    let mut line = format!(
        "draw {}; miners asleep: {}",
        power(&curtailment["draw_w"]),
        text(&curtailment["asleep"]),
    );
    if let Some(lowered) = positive(&curtailment["lowered"]) {
        line.push_str(&format!("; at a lower power profile: {lowered}"));
    }
    if let Some(shortfall) = positive(&curtailment["shortfall_w"]) {
        line.push_str(&format!(
            "; {} over the budget with every miner that may sleep asleep",
            power(&Value::from(shortfall))
        ));
    }
    line
}

/// An audit log's records and last seal: `57 records, last sealed at record 50`.
pub fn audit_line(audit: &Value) -> String {
    let sealed = match audit["last_sealed_seq"].as_u64() {
        Some(seq) => format!("last sealed at record {seq}"),
        None => "not sealed yet".to_owned(),
    };
    format!("{} records, {sealed}", text(&audit["records"]))
}

/// `{kind: count}` as `kind n, kind n` by kind, or `none`.
pub fn counts(map: &Value) -> String {
    let Some(map) = map.as_object().filter(|m| !m.is_empty()) else {
        return "none".to_owned();
    };
    let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(kind, n)| format!("{kind} {}", text(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn owners_table(owners: &Value, palette: Palette) -> String {
    let rows: Vec<Vec<Cell>> = list(owners)
        .iter()
        .map(|owner| {
            let shares = &owner["shares"];
            vec![
                Cell::plain(text(&owner["owner"])),
                Cell::plain(format!("{}/{}", text(&owner["up"]), text(&owner["miners"]))),
                Cell::plain(hashrate(&owner["hashrate_ths"])),
                Cell::plain(power(&owner["power_w"])),
                Cell::plain(text(&shares["accepted"])),
                Cell::plain(text(&shares["rejected"])),
                Cell::plain(text(&shares["stale"])),
            ]
        })
        .collect();
    let headings = [
        "OWNER", "UP", "HASHRATE", "POWER", "ACCEPTED", "REJECTED", "STALE",
    ];
    table::render(&headings, &rows, palette)
}

fn upstreams_table(upstreams: &Value, palette: Palette) -> String {
    let rows: Vec<Vec<Cell>> = list(upstreams)
        .iter()
        .map(|upstream| {
            let state = text(&upstream["state"]);
            let tone = if state == "connected" || state == "active" {
                Tone::Good
            } else {
                Tone::Pending
            };
            vec![
                Cell::plain(text(&upstream["owner"])),
                Cell::plain(text(&upstream["pool"])),
                Cell::toned(tone, state),
                Cell::plain(text(&upstream["miners"])),
            ]
        })
        .collect();
    table::render(
        &["OWNER", "UPSTREAM POOL", "STATE", "MINERS"],
        &rows,
        palette,
    )
}

/// The tone of a miner's state word.
pub fn state_tone(state: &str) -> Tone {
    match state {
        "active" => Tone::Good,
        "sleeping" => Tone::Dim,
        "quarantined" | "missing" | "down" => Tone::Bad,
        _ => Tone::Pending,
    }
}

/// The miners, one row each by address, with what they are and where they mine on the line
/// under the row, e.g.
///
/// ```text
/// IP         OWNER  LOCATION   STATE        HASHRATE     POWER    J/TH  HOTTEST
/// 10.1.0.2   acme   hall-a/r1  active       104.5 TH/s   3.25 kW  31.1  71.0 °C
///     S19j Pro, bosminer; pool stratum+tcp://10.0.0.1:3333; polled 12s ago
/// ```
pub fn render_miners(miners: &Value, now_usec: u64, palette: Palette) -> String {
    let mut sorted: Vec<&Value> = list(miners).iter().collect();
    sorted.sort_by_key(|miner| address_key(&miner["ip"]));
    let rows: Vec<Vec<Cell>> = sorted
        .iter()
        .map(|miner| {
            let state = text(&miner["state"]);
            vec![
                Cell::plain(text(&miner["ip"])),
                Cell::plain(text(&miner["owner"])),
                Cell::plain(text(&miner["location"])),
                Cell::toned(state_tone(&state), state),
                Cell::plain(hashrate(&miner["hashrate_ths"])),
                Cell::plain(power(&miner["power_w"])),
                Cell::plain(units::number(&miner["efficiency_j_per_th"], 1)),
                Cell::plain(temperature(&miner["hottest_chip_c"])),
            ]
        })
        .collect();
    let headings = [
        "IP", "OWNER", "LOCATION", "STATE", "HASHRATE", "POWER", "J/TH", "HOTTEST",
    ];
    let details: Vec<String> = sorted
        .iter()
        .map(|miner| miner_detail_lines(miner, now_usec))
        .collect();
    let mut out = with_details(&table::render(&headings, &rows, palette), &details);
    out.push_str(&format!("{} miners\n", sorted.len()));
    out
}

/// The lines under a miner's row: model, firmware, pool, and the last poll or why it failed.
fn miner_detail_lines(miner: &Value, now_usec: u64) -> String {
    let polled = match miner["poll_failure"].as_str() {
        Some(failure) => format!("poll failed: {failure}"),
        None => format!(
            "polled {}",
            humanize_since(now_usec, rfc3339_usec(&miner["last_poll_at"]))
        ),
    };
    let detail = format!(
        "{}, {}; pool {}; {polled}",
        text(&miner["model"]),
        text(&miner["firmware"]),
        text(&miner["pool"]),
    );
    let mut lines = wrapped("    ", 4, &detail);
    lines.pop();
    lines
}

/// Sorts IPv4 addresses numerically (10.1.0.10 after 10.1.0.9); anything else after them.
fn address_key(ip: &Value) -> (u8, u32, String) {
    let shown = text(ip);
    match shown.parse::<std::net::Ipv4Addr>() {
        Ok(address) => (0, u32::from(address), shown),
        Err(_) => (1, 0, shown),
    }
}

/// Crypto-jacking findings, open ones first, each with minerd's sentence under it, e.g.
///
/// ```text
/// IP         OWNER  KIND          SEVERITY  STATUS             LAST SEEN
/// 10.1.0.7   acme   foreign_pool  critical  open, quarantined  2026-11-21T08:59:30Z
///     reports pool stratum+tcp://evil.example:3333 (user x), not sanctioned
/// ```
pub fn render_hijacks(hijacks: &Value, palette: Palette) -> String {
    let mut sorted: Vec<&Value> = list(hijacks).iter().collect();
    // Open findings first; among equals the newest first, as minerd orders them.
    sorted.sort_by_key(|finding| finding["open"] != Value::Bool(true));
    if sorted.is_empty() {
        return "No crypto-jacking findings.\n".to_owned();
    }
    let open = sorted.iter().filter(|f| f["open"] == Value::Bool(true));
    let open = open.count();
    let rows: Vec<Vec<Cell>> = sorted
        .iter()
        .map(|finding| {
            let is_open = finding["open"] == Value::Bool(true);
            let status = match (is_open, finding["quarantined"] == Value::Bool(true)) {
                (true, true) => "open, quarantined",
                (true, false) => "open",
                (false, _) => "closed",
            };
            let tone = if is_open { Tone::Bad } else { Tone::Dim };
            vec![
                Cell::plain(text(&finding["ip"])),
                Cell::plain(text(&finding["owner"])),
                Cell::plain(text(&finding["kind"])),
                Cell::plain(text(&finding["severity"])),
                Cell::toned(tone, status),
            ]
        })
        .collect();
    let details: Vec<String> = sorted
        .iter()
        .map(|finding| {
            let seen = format!(
                "{} to {}: {}",
                text(&finding["first_at"]),
                text(&finding["last_at"]),
                text(&finding["seen"])
            );
            let mut lines = wrapped("    ", 4, &seen);
            lines.pop();
            lines
        })
        .collect();
    let headings = ["IP", "OWNER", "KIND", "SEVERITY", "STATUS"];
    let mut out = with_details(&table::render(&headings, &rows, palette), &details);
    out.push_str(&format!("{open} open, {} closed\n", sorted.len() - open));
    out
}

/// The report of a scan, e.g.
/// `scanned 1024 addresses in 850 ms: 1200 found, 3 new, 1 changed, 2 missing; errors: timeout 20`.
pub fn render_scan(report: &Value) -> String {
    let report = format!(
        "scanned {} addresses in {} ms: {} found, {} new, {} changed, {} missing; errors: {}",
        text(&report["scanned"]),
        text(&report["duration_ms"]),
        text(&report["found"]),
        text(&report["new"]),
        text(&report["changed"]),
        text(&report["missing"]),
        counts(&report["errors"]),
    );
    wrapped("", 2, &report)
}

#[cfg(test)]
mod tests;
