//! The human view of `bunkerctl status`: a summary line and one table row per BunkerOS unit.
//!
//! ```text
//! BunkerOS on bunker-01: 2 of 4 installed units active
//! UNIT                      STATE                      SINCE      STATUS
//! trustd.service            active (running)           3m ago     issuing; CA key sealed to PCRs 0,2,4,7
//! hubd.service              failed                     2h 5m ago
//! minerd.service            activating (auto-restart)  4s ago
//! sited.service             not installed
//! updated.service           not installed
//! bunkeros-console.service  active (running)           3m ago
//! ```
//!
//! Columns are as wide as their widest cell and separated by two spaces; STATUS is the service's
//! own `STATUS=` text, shown only while its main process runs. A pure function of the snapshot,
//! the clock and the palette.

use crate::snapshot::{ApplianceStatus, UnitSnapshot};
use crate::terminal::{Palette, Tone};
use crate::time_display::humanize_since;

const GAP: &str = "  ";

/// The summary line and the table, each line ending in a newline.
pub fn render_status(status: &ApplianceStatus, now_usec: u64, palette: Palette) -> String {
    let mut text = summary_line(status);
    text.push('\n');
    text.push_str(&render_table(&status.units, now_usec, palette));
    text
}

/// `BunkerOS on <hostname>: <n> of <m> installed units active`.
pub fn summary_line(status: &ApplianceStatus) -> String {
    let installed = status.installed().count();
    if installed == 0 {
        return format!(
            "BunkerOS on {}: no BunkerOS units installed",
            status.hostname
        );
    }
    let active = status.installed().filter(|unit| unit.is_active()).count();
    format!(
        "BunkerOS on {}: {active} of {installed} installed units active",
        status.hostname
    )
}

/// The cells of an installed unit's row, before padding and colour.
struct Row<'a> {
    unit: &'a str,
    state: String,
    tone: Tone,
    since: String,
    status: String,
}

/// The table: a heading row, then one row per unit in the given order.
pub fn render_table(units: &[UnitSnapshot], now_usec: u64, palette: Palette) -> String {
    let rows: Vec<Option<Row>> = units
        .iter()
        .map(|unit| unit.is_installed().then(|| row(unit, now_usec)))
        .collect();
    let installed = || rows.iter().flatten();
    let unit_width = width("UNIT", units.iter().map(|unit| unit.unit.as_str()));
    let state_width = width("STATE", installed().map(|row| row.state.as_str()));
    let since_width = width("SINCE", installed().map(|row| row.since.as_str()));

    let heading = format!(
        "{:<unit_width$}{GAP}{:<state_width$}{GAP}{:<since_width$}{GAP}STATUS",
        "UNIT", "STATE", "SINCE"
    );
    let mut text = palette.paint(Tone::Heading, &heading);
    text.push('\n');
    for (unit, row) in units.iter().zip(&rows) {
        let line = match row {
            None => palette.paint(
                Tone::Dim,
                &format!("{:<unit_width$}{GAP}not installed", unit.unit),
            ),
            Some(row) => {
                let state = palette.paint(row.tone, &row.state);
                let state_pad = " ".repeat(state_width - row.state.chars().count());
                let line = format!(
                    "{:<unit_width$}{GAP}{state}{state_pad}{GAP}{:<since_width$}{GAP}{}",
                    row.unit, row.since, row.status
                );
                line.trim_end().to_owned()
            }
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn row(unit: &UnitSnapshot, now_usec: u64) -> Row<'_> {
    Row {
        unit: &unit.unit,
        state: state_label(unit),
        tone: state_tone(unit),
        since: humanize_since(now_usec, unit.since_usec),
        status: printable(unit.live_status_text().unwrap_or_default()),
    }
}

/// The text with control characters (escape sequences, tabs) shown as `?`, so a service's
/// `STATUS=` line can neither repaint the operator's terminal nor break the columns.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `active (running)`, `activating (auto-restart)`; just `failed` when the sub-state says the same.
fn state_label(unit: &UnitSnapshot) -> String {
    if unit.sub_state.is_empty() || unit.sub_state == unit.active_state {
        unit.active_state.clone()
    } else {
        format!("{} ({})", unit.active_state, unit.sub_state)
    }
}

fn state_tone(unit: &UnitSnapshot) -> Tone {
    match unit.active_state.as_str() {
        _ if unit.is_active() => Tone::Good,
        "failed" => Tone::Bad,
        _ => Tone::Pending,
    }
}

fn width<'a>(heading: &str, cells: impl Iterator<Item = &'a str>) -> usize {
    cells
        .map(|cell| cell.chars().count())
        .fold(heading.len(), usize::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::fixtures::*;

    const MINUTE: u64 = 60_000_000;

    fn site() -> ApplianceStatus {
        appliance(vec![
            running(
                "trustd.service",
                NOW_USEC - 3 * MINUTE,
                "issuing; CA key sealed to PCRs 0,2,4,7",
            ),
            failed(
                "hubd.service",
                NOW_USEC - 125 * MINUTE,
                "linking to 3 peers",
            ),
            restarting("minerd.service", NOW_USEC - 4_000_000),
            not_installed("sited.service"),
            not_installed("updated.service"),
            running("bunkeros-console.service", NOW_USEC - 3 * MINUTE, ""),
        ])
    }

    #[test]
    fn plain_table_layout() {
        let expected = "\
BunkerOS on bunker-01: 2 of 4 installed units active
UNIT                      STATE                      SINCE      STATUS
trustd.service            active (running)           3m ago     issuing; CA key sealed to PCRs 0,2,4,7
hubd.service              failed                     2h 5m ago
minerd.service            activating (auto-restart)  4s ago
sited.service             not installed
updated.service           not installed
bunkeros-console.service  active (running)           3m ago
";
        assert_eq!(render_status(&site(), NOW_USEC, Palette::Plain), expected);
    }

    #[test]
    fn summary_when_everything_runs() {
        let status = appliance(vec![running("trustd.service", NOW_USEC, "ready")]);
        assert_eq!(
            summary_line(&status),
            "BunkerOS on bunker-01: 1 of 1 installed units active"
        );
    }

    #[test]
    fn summary_when_nothing_is_installed() {
        let status = appliance(vec![not_installed("trustd.service")]);
        assert_eq!(
            summary_line(&status),
            "BunkerOS on bunker-01: no BunkerOS units installed"
        );
    }

    #[test]
    fn colours_mark_state_and_dim_missing_units() {
        let text = render_table(&site().units, NOW_USEC, Palette::Ansi);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("\x1b[1mUNIT"));
        assert!(lines[1].contains("\x1b[32mactive (running)\x1b[0m"));
        assert!(lines[2].contains("\x1b[31mfailed\x1b[0m"));
        assert!(lines[3].contains("\x1b[33mactivating (auto-restart)\x1b[0m"));
        assert_eq!(
            lines[4],
            "\x1b[2msited.service             not installed\x1b[0m"
        );
    }

    #[test]
    fn colour_does_not_shift_columns() {
        let strip = |text: String| {
            text.replace("\x1b[0m", "")
                .replace("\x1b[1m", "")
                .replace("\x1b[2m", "")
                .replace("\x1b[31m", "")
                .replace("\x1b[32m", "")
                .replace("\x1b[33m", "")
        };
        assert_eq!(
            strip(render_table(&site().units, NOW_USEC, Palette::Ansi)),
            render_table(&site().units, NOW_USEC, Palette::Plain)
        );
    }

    #[test]
    fn a_stopped_service_shows_no_stale_status() {
        let text = render_table(&site().units, NOW_USEC, Palette::Plain);
        assert!(!text.contains("linking to 3 peers"));
    }

    #[test]
    fn status_text_cannot_send_escape_sequences() {
        let unit = running("sited.service", NOW_USEC, "door\x1b[2Jopen\tnow");
        let text = render_table(&[unit], NOW_USEC, Palette::Plain);
        assert!(text.ends_with("just now  door?[2Jopen?now\n"), "{text:?}");
    }

    #[test]
    fn a_unit_without_timestamp_shows_a_dash() {
        let mut unit = running("sited.service", NOW_USEC, "");
        unit.since_usec = None;
        let text = render_table(&[unit], NOW_USEC, Palette::Plain);
        assert_eq!(
            text.lines().nth(1),
            Some("sited.service  active (running)  -")
        );
    }
}
