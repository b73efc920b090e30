//! The site on the appliance console: under the unit table, what a guard at the screen needs
//! without a shell, e.g.
//!
//! ```text
//! Site: lockdown — intrusion at door 1
//!   budget 550.00 kW from grid · alarms 1 active, 1 unacknowledged, 1 critical
//!   critical intrusion-1: door 1 intrusion detector tripped
//! ```
//!
//! The third line only while a critical alarm is active (the first one raised). sited not on the
//! bus is a site without monitoring, shown as such: it is not an error of the console, which
//! shows the same screen whether or not the site layer is provisioned. Every line fits the
//! 80-column console; sited's sentences are cut with `…` and cannot send escape sequences.
//!
//! The reads are sited's `Status` and `Alarms` documents (the bus policy lets the console's user
//! call these two and nothing else that changes anything).

use std::time::Duration;

use appliance::dbus::contracts::{SITE, Site1Proxy};
use serde_json::Value;
use zbus::Connection;

use crate::ca_view::text;
use crate::layout::{CONSOLE_WIDTH, list};
use crate::mining_view::units::power;
use crate::site_view::state_tone;
use crate::status_view::printable;
use crate::terminal::{Palette, Tone};

/// How long sited may take to answer the console; the screen is redrawn without the site
/// rather than waiting for it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// What the console learned about the site at one refresh.
#[derive(Debug, Clone, PartialEq)]
pub enum SiteSummary {
    /// Nobody owns `org.bunkeros.Site1`: sited is not provisioned or not running.
    Absent,
    /// sited is on the bus but did not answer usefully (the sentence says how).
    Unreadable(String),
    /// sited's `Status` document and its `Alarms` array.
    Present { status: Value, alarms: Value },
}

/// Asks the bus whether sited is there and, if it is, for its status and alarms.
pub async fn read(connection: &Connection) -> SiteSummary {
    match tokio::time::timeout(ANSWER_TIMEOUT, ask(connection)).await {
        Ok(summary) => summary,
        Err(_) => SiteSummary::Unreadable(format!(
            "sited did not answer within {} s",
            ANSWER_TIMEOUT.as_secs()
        )),
    }
}

async fn ask(connection: &Connection) -> SiteSummary {
    match on_bus(connection).await {
        Ok(false) => return SiteSummary::Absent,
        Ok(true) => {}
        Err(e) => return SiteSummary::Unreadable(format!("asking the bus for sited: {e}")),
    }
    let documents = async {
        let site = Site1Proxy::new(connection).await?;
        let status = site.status().await?;
        let alarms = site.alarms().await?;
        zbus::Result::Ok((status, alarms))
    };
    match documents.await {
        Ok((status, alarms)) => parsed(&status, &alarms),
        Err(e) if is_absent(&e) => SiteSummary::Absent,
        Err(e) => SiteSummary::Unreadable(format!("sited: {}", error_sentence(&e))),
    }
}

async fn on_bus(connection: &Connection) -> zbus::Result<bool> {
    let bus = zbus::fdo::DBusProxy::new(connection).await?;
    let name = zbus::names::BusName::try_from(SITE.bus_name)?;
    Ok(bus.name_has_owner(name).await?)
}

/// sited left the bus between the two questions.
fn is_absent(error: &zbus::Error) -> bool {
    matches!(error, zbus::Error::MethodError(name, _, _)
        if name.as_str() == "org.freedesktop.DBus.Error.ServiceUnknown"
            || name.as_str() == "org.freedesktop.DBus.Error.NameHasNoOwner")
}

fn error_sentence(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, message, _) => {
            let short = name.as_str().rsplit('.').next().unwrap_or(name.as_str());
            format!(
                "{short}: {}",
                message.as_deref().unwrap_or("no reason given")
            )
        }
        other => other.to_string(),
    }
}

/// Both documents parsed; one that is not JSON makes the summary unreadable.
pub fn parsed(status: &str, alarms: &str) -> SiteSummary {
    match (
        serde_json::from_str(status),
        serde_json::from_str::<Value>(alarms),
    ) {
        (Ok(status), Ok(alarms)) => SiteSummary::Present { status, alarms },
        _ => SiteSummary::Unreadable("sited sent a document that is not JSON".to_owned()),
    }
}

/// The site's lines for the console, each ending in a newline.
pub fn render(summary: &SiteSummary, palette: Palette) -> String {
    match summary {
        SiteSummary::Absent => {
            let line = "Site: not monitored (sited is not on the system bus)";
            format!("{}\n", palette.paint(Tone::Dim, line))
        }
        SiteSummary::Unreadable(why) => {
            let line = fitted(&format!("Site: unknown ({})", printable(why)));
            format!("{}\n", palette.paint(Tone::Pending, &line))
        }
        SiteSummary::Present { status, alarms } => present(status, alarms, palette),
    }
}

fn present(status: &Value, alarms: &Value, palette: Palette) -> String {
    let state = printable(&text(&status["state"]));
    let mut head = format!("Site: {state}");
    if let Some(reason) = status["reason"].as_str().filter(|r| !r.is_empty()) {
        head.push_str(&format!(" — {}", printable(reason)));
    }
    // Paint only the state word: fitting counts characters, not escape sequences.
    let head = fitted(&head).replacen(&state, &palette.paint(state_tone(&state), &state), 1);
    let mut out = format!("{head}\n");
    let counts = &status["alarms"];
    let budget = format!(
        "  budget {}{} · alarms {} active, {} unacknowledged, {} critical",
        power(&status["power_budget_w"]),
        source(&status["power"]["source"]),
        text(&counts["active"]),
        text(&counts["unacknowledged"]),
        text(&counts["critical"]),
    );
    out.push_str(&fitted(&budget));
    out.push('\n');
    if let Some(alarm) = first_critical(alarms) {
        let line = fitted(&format!(
            "  critical {}: {}",
            printable(&text(&alarm["alarm"])),
            printable(&text(&alarm["summary"]))
        ));
        out.push_str(&palette.paint(Tone::Bad, &line));
        out.push('\n');
    }
    out
}

/// ` from grid`; nothing when sited does not know where the power comes from.
fn source(source: &Value) -> String {
    match source.as_str() {
        Some("unknown") | None => String::new(),
        Some(from) => format!(" from {}", printable(from)),
    }
}

/// The first alarm (sited lists them in raise order) that is critical and active.
fn first_critical(alarms: &Value) -> Option<&Value> {
    list(alarms)
        .iter()
        .find(|alarm| alarm["severity"] == "critical" && alarm["active"] == true)
}

/// The line cut to the console's width, `…` marking the cut.
fn fitted(line: &str) -> String {
    if line.chars().count() <= CONSOLE_WIDTH {
        return line.to_owned();
    }
    let mut cut: String = line.chars().take(CONSOLE_WIDTH - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
#[path = "console_site_tests.rs"]
mod tests;
