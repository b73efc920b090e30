//! How `bunkerctl hub …` reads to a person.
//!
//! Each function renders one of hubd's own JSON documents (the methods of `org.bunkeros.Hub1`,
//! see `appliance::dbus::contracts::Hub1Proxy`); a field hubd does not send shows as `-`, so an
//! older or newer hubd still renders.

pub mod sessions;

use serde_json::Value;

use crate::ca_view::text;
use crate::table::{self, Cell};
use crate::terminal::{Palette, Tone};

/// The status screen, e.g.
///
/// ```text
/// hubd: madrid-1 (ES): 3/4 links up, 4 hubs trusted, transit offered
///   transit       offered (sited reports normal)
///   certificate   from trustd, valid until 2026-12-21T09:00:00Z
///   renewal       failing, the certificate above stays in use: <why> (only while it fails)
///   advertisement sequence 1795251600000, expires 2026-11-21T10:00:00Z
///   held back     0 advertisements waiting for a voucher
///   accepted      12 advertisements, 30 duplicate copies
///   rejected      3: stale 2, wrong_root 1
///   malformed     1: empty 1
/// ```
pub fn render_status(status: &Value, palette: Palette) -> String {
    let up = status["links"]["up"].as_u64().unwrap_or(0);
    let transit = status["transit"] == Value::Bool(true);
    let tone = match (up, transit) {
        (0, _) => Tone::Bad,
        (_, false) => Tone::Pending,
        _ => Tone::Good,
    };
    let headline = format!(
        "{} ({}): {up}/{} links up, {} hubs trusted, {}",
        text(&status["hub"]),
        text(&status["jurisdiction"]),
        text(&status["links"]["configured"]),
        text(&status["hubs_trusted"]),
        if transit {
            "transit offered"
        } else {
            "no transit"
        },
    );
    let mut out = format!("hubd: {}\n", palette.paint(tone, &headline));
    let mut row = |label: &str, value: String| out.push_str(&format!("  {label:<14}{value}\n"));
    row(
        "transit",
        format!(
            "{} ({})",
            if transit { "offered" } else { "withdrawn" },
            text(&status["transit_reason"])
        ),
    );
    row(
        "certificate",
        format!(
            "from {}, valid until {}",
            text(&status["certificate"]["source"]),
            text(&status["certificate"]["not_after"])
        ),
    );
    if let Some(error) = status["certificate"]["renewal_error"].as_str() {
        row(
            "renewal",
            format!("failing, the certificate above stays in use: {error}"),
        );
    }
    row(
        "advertisement",
        format!(
            "sequence {}, expires {}",
            text(&status["advertisement"]["sequence"]),
            text(&status["advertisement"]["expires_at"])
        ),
    );
    row(
        "held back",
        format!(
            "{} advertisements waiting for a voucher",
            text(&status["held_back"])
        ),
    );
    let counters = &status["counters"];
    row(
        "accepted",
        format!(
            "{} advertisements, {} duplicate copies",
            text(&counters["accepted"]),
            text(&counters["duplicates"])
        ),
    );
    row("rejected", by_label(&counters["rejected"]));
    row("malformed", by_label(&counters["malformed"]));
    if up == 0 {
        out.push_str(
            "\nNo link is up: this hub reaches no other. Check that the peers' addresses in the \
             peering files are reachable and that the peers pin this site's root; `journalctl -u \
             hubd` names each refused link.\n",
        );
    }
    out
}

/// `3: stale 2, wrong_root 1` from `{"stale": 2, "wrong_root": 1}`; `0` when empty.
fn by_label(counts: &Value) -> String {
    let Some(counts) = counts.as_object() else {
        return text(counts);
    };
    let total: u64 = counts.values().filter_map(Value::as_u64).sum();
    if counts.is_empty() {
        return "0".to_owned();
    }
    let each: Vec<String> = counts
        .iter()
        .map(|(label, count)| format!("{label} {}", text(count)))
        .collect();
    format!("{total}: {}", each.join(", "))
}

/// The links table: peer, jurisdiction, link number, address, up or down, RTT.
pub fn render_links(links: &Value, palette: Palette) -> String {
    let links = links.as_array().map(Vec::as_slice).unwrap_or_default();
    if links.is_empty() {
        return "no links configured: hubd has no peering files\n".to_owned();
    }
    let rows: Vec<Vec<Cell>> = links
        .iter()
        .map(|link| {
            let up = link["up"] == Value::Bool(true);
            vec![
                Cell::plain(text(&link["peer"])),
                Cell::plain(text(&link["jurisdiction"])),
                Cell::plain(format!("#{}", text(&link["link"]))),
                Cell::plain(text(&link["address"])),
                if up {
                    Cell::toned(Tone::Good, "up")
                } else {
                    Cell::toned(Tone::Bad, "down")
                },
                Cell::plain(milliseconds(&link["rtt_ms"])),
            ]
        })
        .collect();
    table::render(
        &["PEER", "JURISDICTION", "LINK", "ADDRESS", "STATE", "RTT"],
        &rows,
        palette,
    )
}

/// The hubs table: id, jurisdiction, how it is trusted, transit, sequence, expiry, its links.
pub fn render_hubs(hubs: &Value, palette: Palette) -> String {
    let hubs = hubs.as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<Cell>> = hubs
        .iter()
        .map(|hub| {
            let trust = match hub["trust"].as_str() {
                Some("vouched") => Cell::plain(format!(
                    "vouched via {}",
                    list(&hub["vouched_through"], " → ")
                )),
                Some("untrusted") => Cell::toned(Tone::Pending, "untrusted"),
                _ => Cell::plain(text(&hub["trust"])),
            };
            let links: Vec<String> = hub["links"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|link| {
                    format!(
                        "{} #{} {}",
                        text(&link["neighbour"]),
                        text(&link["link"]),
                        milliseconds(&link["latency_ms"])
                    )
                })
                .collect();
            vec![
                Cell::plain(text(&hub["id"])),
                Cell::plain(text(&hub["jurisdiction"])),
                trust,
                Cell::plain(yes_no(&hub["transit"])),
                Cell::plain(text(&hub["sequence"])),
                Cell::plain(text(&hub["expires_at"])),
                Cell::plain(links.join(", ")),
            ]
        })
        .collect();
    table::render(
        &[
            "HUB",
            "JURISDICTION",
            "TRUST",
            "TRANSIT",
            "SEQUENCE",
            "EXPIRES",
            "LINKS",
        ],
        &rows,
        palette,
    )
}

/// The routes table: each destination, the primary path's latency, hops and the hubs it goes
/// through, and its backup; then, one per line, the destinations without a path and why.
pub fn render_routes(routes: &Value, palette: Palette) -> String {
    let routes = routes.as_array().map(Vec::as_slice).unwrap_or_default();
    if routes.is_empty() {
        return "no other hub is trusted: no routes\n".to_owned();
    }
    let destination = |route: &Value| {
        format!(
            "{} ({})",
            text(&route["destination"]),
            text(&route["jurisdiction"])
        )
    };
    let (routed, refused): (Vec<&Value>, Vec<&Value>) =
        routes.iter().partition(|route| !route["primary"].is_null());
    let rows: Vec<Vec<Cell>> = routed
        .iter()
        .map(|route| {
            let (primary, backup) = (&route["primary"], &route["backup"]);
            vec![
                Cell::plain(destination(route)),
                Cell::plain(milliseconds(&primary["latency_ms"])),
                Cell::plain(text(&primary["hops"])),
                Cell::plain(via(primary)),
                if backup.is_null() {
                    Cell::toned(Tone::Pending, "none")
                } else {
                    Cell::plain(format!(
                        "{}, {}",
                        milliseconds(&backup["latency_ms"]),
                        match via(backup).as_str() {
                            "direct" => "direct".to_owned(),
                            hubs => format!("via {hubs}"),
                        }
                    ))
                },
            ]
        })
        .collect();
    let mut out = if rows.is_empty() {
        String::new()
    } else {
        table::render(
            &["DESTINATION", "LATENCY", "HOPS", "VIA", "BACKUP"],
            &rows,
            palette,
        )
    };
    for route in refused {
        let line = format!("no path: {}", text(&route["refusal"]));
        out.push_str(&format!(
            "{}: {}\n",
            destination(route),
            palette.paint(Tone::Bad, &line)
        ));
    }
    out
}

/// The paths `hub paths` found, e.g.
///
/// ```text
/// paths to sao-paulo-1 under no-france (excluding FR, a link-disjoint backup)
///   primary  madrid-1 (ES) —#1→ lisbon-1 (PT) —#1→ sao-paulo-1 (BR): 2 hops, 45.0 ms
///   backup   madrid-1 (ES) —#2→ lisbon-1 (PT) —#2→ sao-paulo-1 (BR): 2 hops, 52.0 ms
/// ```
pub fn render_paths(paths: &Value, palette: Palette) -> String {
    let policy = match paths["policy"].as_str() {
        None | Some("") => "no policy".to_owned(),
        Some(name) => name.to_owned(),
    };
    let mut out = format!(
        "paths to {} under {policy} ({})\n",
        text(&paths["destination"]),
        text(&paths["rules"])
    );
    out.push_str(&format!(
        "  primary  {}\n",
        palette.paint(Tone::Good, &path_line(&paths["primary"]))
    ));
    let backup = &paths["backup"];
    out.push_str(&if backup.is_null() {
        format!(
            "  backup   {}\n",
            palette.paint(
                Tone::Pending,
                "none: every other path shares a link with the primary"
            )
        )
    } else {
        format!("  backup   {}\n", path_line(backup))
    });
    out
}

/// `madrid-1 (ES) —#1→ lisbon-1 (PT): 1 hop, 5.0 ms`.
fn path_line(path: &Value) -> String {
    let hubs = path["hubs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let links = path["links"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut line = String::new();
    for (i, hub) in hubs.iter().enumerate() {
        if i > 0 {
            let link = links
                .get(i - 1)
                .map_or_else(|| "-".to_owned(), |l| text(&l["link"]));
            line.push_str(&format!(" —#{link}→ "));
        }
        line.push_str(&format!(
            "{} ({})",
            text(&hub["id"]),
            text(&hub["jurisdiction"])
        ));
    }
    let hops = path["hops"].as_u64().unwrap_or(0);
    let plural = if hops == 1 { "" } else { "s" };
    format!(
        "{line}: {hops} hop{plural}, {}",
        milliseconds(&path["latency_ms"])
    )
}

/// The hubs between the ends: `lisbon-1 (PT), sao-paulo-1 (BR)`, or `direct`.
fn via(path: &Value) -> String {
    let hubs = path["hubs"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if hubs.len() <= 2 {
        return "direct".to_owned();
    }
    hubs[1..hubs.len() - 1]
        .iter()
        .map(|hub| format!("{} ({})", text(&hub["id"]), text(&hub["jurisdiction"])))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `45.0 ms`, `0.25 ms`; `-` when absent.
fn milliseconds(value: &Value) -> String {
    match value.as_f64() {
        Some(ms) if ms >= 1.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{ms} ms"),
        None => "-".to_owned(),
    }
}

fn yes_no(value: &Value) -> String {
    match value {
        Value::Bool(true) => "yes".to_owned(),
        Value::Bool(false) => "no".to_owned(),
        other => text(other),
    }
}

fn list(values: &Value, separator: &str) -> String {
    values
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(text)
        .collect::<Vec<_>>()
        .join(separator)
}

#[cfg(test)]
mod tests;
