//! One miner in detail (`bunkerctl mining miner IP`): what `Miners` says of it, then its boards,
//! fans, pools as it reports them, what the proxy sees of it, its findings and the last hour.
//!
//! The sub-documents are read as: `boards` [{`index`, `chips`, `hashrate_ths`, `chip_temps_c`
//! [°C…], `hardware_errors`}], `fans` [{`index`, `rpm`}], `pools` [{`url`, `user`, `state`,
//! `priority`, `active`, `accepted`, `rejected`}], `proxy` {`connected`, `user`, `difficulty`,
//! `last_share_at`, `accepted`, `rejected`, `stale`}, `hijacks` (as `Hijacks`), `history`
//! [{`at`, `hashrate_ths`, `power_w`}]; anything missing shows as `-`.

use serde_json::Value;

use super::units::{efficiency, hashrate, power, rfc3339_usec, temperature};
use super::{render_hijacks, state_tone};
use crate::ca_view::text;
use crate::layout::{labelled, list};
use crate::table::{self, Cell};
use crate::terminal::{Palette, Tone};
use crate::time_display::humanize_since;

/// The detail screen of one miner.
pub fn render_miner(miner: &Value, now_usec: u64, palette: Palette) -> String {
    let state = text(&miner["state"]);
    let mut out = format!(
        "{}: {}, {}, owner {} at {}, {}\n",
        text(&miner["ip"]),
        text(&miner["model"]),
        text(&miner["firmware"]),
        text(&miner["owner"]),
        text(&miner["location"]),
        palette.paint(state_tone(&state), &state),
    );
    let mut row = |label: &str, value: String| out.push_str(&labelled(label, &value));
    row(
        "output",
        format!(
            "{}, {}, {}, hottest chip {}",
            hashrate(&miner["hashrate_ths"]),
            power(&miner["power_w"]),
            efficiency(&miner["efficiency_j_per_th"]),
            temperature(&miner["hottest_chip_c"]),
        ),
    );
    row("pool", text(&miner["pool"]));
    let polled = format!(
        "{} ({})",
        text(&miner["last_poll_at"]),
        humanize_since(now_usec, rfc3339_usec(&miner["last_poll_at"]))
    );
    row("last poll", polled);
    if let Some(failure) = miner["poll_failure"].as_str() {
        row("poll failure", failure.to_owned());
    }
    row("fans", fans_line(&miner["fans"]));
    row("proxy", proxy_line(&miner["proxy"]));
    row("history", history_line(&miner["history"]));
    out.push('\n');
    out.push_str(&boards_table(&miner["boards"], palette));
    out.push('\n');
    out.push_str(&pools_table(&miner["pools"], palette));
    if !list(&miner["hijacks"]).is_empty() {
        out.push('\n');
        out.push_str(&render_hijacks(&miner["hijacks"], palette));
    }
    out
}

fn fans_line(fans: &Value) -> String {
    let fans = list(fans);
    if fans.is_empty() {
        return "none reported".to_owned();
    }
    fans.iter()
        .map(|fan| format!("#{} {} rpm", text(&fan["index"]), text(&fan["rpm"])))
        .collect::<Vec<_>>()
        .join(", ")
}

fn proxy_line(proxy: &Value) -> String {
    if proxy["connected"] != Value::Bool(true) {
        return "not connected".to_owned();
    }
    format!(
        "connected as {}, difficulty {}, last share {}; {} accepted, {} rejected, {} stale",
        text(&proxy["user"]),
        text(&proxy["difficulty"]),
        text(&proxy["last_share_at"]),
        text(&proxy["accepted"]),
        text(&proxy["rejected"]),
        text(&proxy["stale"]),
    )
}

/// The last hour in one line: a sparkline of the hashrate (one character a point) and its
/// range, so a miner that dipped or stopped stands out.
fn history_line(history: &Value) -> String {
    let rates: Vec<Option<f64>> = list(history)
        .iter()
        .map(|point| point["hashrate_ths"].as_f64())
        .collect();
    let known: Vec<f64> = rates.iter().flatten().copied().collect();
    let (Some(low), Some(high)) = (
        known.iter().copied().reduce(f64::min),
        known.iter().copied().reduce(f64::max),
    ) else {
        return "no points yet".to_owned();
    };
    format!(
        "{} {}..{} TH/s over {} points",
        sparkline(&rates, low, high),
        format_args!("{low:.1}"),
        format_args!("{high:.1}"),
        rates.len()
    )
}

/// One character a point, `_` for the low end up to `#` for the high, `?` for no figure.
fn sparkline(rates: &[Option<f64>], low: f64, high: f64) -> String {
    const STEPS: &[u8] = b"_.-=+*#";
    let span = (high - low).max(f64::EPSILON);
    rates
        .iter()
        .map(|rate| match rate {
            None => '?',
            Some(rate) => {
                let step = ((rate - low) / span * (STEPS.len() - 1) as f64).round() as usize;
                STEPS[step.min(STEPS.len() - 1)] as char
            }
        })
        .collect()
}

fn boards_table(boards: &Value, palette: Palette) -> String {
    let rows: Vec<Vec<Cell>> = list(boards)
        .iter()
        .map(|board| {
            let hottest = list(&board["chip_temps_c"])
                .iter()
                .filter_map(Value::as_f64)
                .reduce(f64::max);
            vec![
                Cell::plain(text(&board["index"])),
                Cell::plain(text(&board["chips"])),
                Cell::plain(hashrate(&board["hashrate_ths"])),
                Cell::plain(temperature(&hottest.map_or(Value::Null, Value::from))),
                Cell::plain(text(&board["hardware_errors"])),
            ]
        })
        .collect();
    let headings = ["BOARD", "CHIPS", "HASHRATE", "HOTTEST CHIP", "HW ERRORS"];
    table::render(&headings, &rows, palette)
}

fn pools_table(pools: &Value, palette: Palette) -> String {
    let rows: Vec<Vec<Cell>> = list(pools)
        .iter()
        .map(|pool| {
            let active = pool["active"] == Value::Bool(true);
            vec![
                Cell::plain(text(&pool["priority"])),
                Cell::plain(text(&pool["url"])),
                Cell::plain(text(&pool["user"])),
                if active {
                    Cell::toned(Tone::Good, "active")
                } else {
                    Cell::plain(text(&pool["state"]))
                },
                Cell::plain(format!(
                    "{}/{}",
                    text(&pool["accepted"]),
                    text(&pool["rejected"])
                )),
            ]
        })
        .collect();
    let headings = ["PRIO", "POOL (as it reports)", "USER", "STATE", "ACC/REJ"];
    table::render(&headings, &rows, palette)
}
