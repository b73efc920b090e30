//! The appliance console: `bunkerctl status --watch N` on the local screen, redrawn every N seconds:
//! the units, then the site as sited sees it ([`console_site`]; a line saying the site is not
//! monitored when sited is not on the bus).
//!
//! There is no login prompt on the console; this screen is all it shows. It never gives up: when
//! systemd cannot be reached it shows why and tries again at the next refresh. It ends, with exit
//! code 0, on SIGTERM (systemd stopping it) or SIGINT.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use zbus::Connection;

use crate::console_site::{self, SiteSummary};
use crate::snapshot::ApplianceStatus;
use crate::status;
use crate::status_view::render_status;
use crate::terminal::Palette;
use crate::time_display::{format_utc, now_usec};

/// Moves the cursor home and clears the screen.
const CLEAR_SCREEN: &str = "\x1b[H\x1b[2J";

/// Redraws the screen every `refresh` until SIGTERM or SIGINT.
pub async fn run(refresh: Duration, palette: Palette) -> Result<ExitCode> {
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut connection = None;
    loop {
        let redraw = async {
            let frame = next_frame(&mut connection, refresh, palette).await;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(frame.as_bytes())
                .and_then(|()| stdout.flush())?;
            tokio::time::sleep(refresh).await;
            std::io::Result::Ok(())
        };
        tokio::select! {
            drawn = redraw => drawn.context("drawing the console screen")?,
            _ = terminate.recv() => return Ok(ExitCode::SUCCESS),
            _ = interrupt.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// Reads systemd (reconnecting when needed) and composes the screen, or the error it met.
async fn next_frame(
    connection: &mut Option<Connection>,
    refresh: Duration,
    palette: Palette,
) -> String {
    let now = now_usec();
    match read(connection).await {
        Ok((appliance, site)) => {
            let body = render_body(&appliance, &site, now, palette);
            render_frame(&appliance.hostname, now, &body, refresh)
        }
        Err(error) => {
            // A broken connection is not reused: the next refresh connects afresh.
            *connection = None;
            let hostname =
                status::read_hostname().unwrap_or_else(|_| "(hostname unknown)".to_owned());
            let body = format!("{error:#}\nTrying again in {} s.\n", refresh.as_secs());
            render_frame(&hostname, now, &body, refresh)
        }
    }
}

/// systemd's units, then the site (which never fails the screen: see [`console_site::read`]).
async fn read(connection: &mut Option<Connection>) -> Result<(ApplianceStatus, SiteSummary)> {
    let live = match connection {
        Some(live) => live,
        None => connection.insert(status::connect().await?),
    };
    let appliance = status::read_appliance_status(live).await?;
    let site = console_site::read(live).await;
    Ok((appliance, site))
}

/// The screen's body: the unit table, a blank line, the site.
pub fn render_body(
    appliance: &ApplianceStatus,
    site: &SiteSummary,
    now_usec: u64,
    palette: Palette,
) -> String {
    format!(
        "{}\n{}",
        render_status(appliance, now_usec, palette),
        console_site::render(site, palette)
    )
}

/// One screen: clear, header with the UTC clock, the body, and the footer saying what this is.
pub fn render_frame(hostname: &str, now_usec: u64, body: &str, refresh: Duration) -> String {
    format!(
        "{CLEAR_SCREEN}BunkerOS — {hostname} — {}\n\n{body}\nThis is the appliance console. \
         Refreshes every {} s. Operators manage this site with bunkerctl over the management network.\n",
        format_utc(now_usec),
        refresh.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::fixtures::*;

    #[test]
    fn frame_layout() {
        let appliance = appliance(vec![running(
            "trustd.service",
            NOW_USEC - 180_000_000,
            "issuing",
        )]);
        let body = render_body(&appliance, &SiteSummary::Absent, NOW_USEC, Palette::Plain);
        let frame = render_frame("bunker-01", NOW_USEC, &body, Duration::from_secs(5));
        let expected = "\x1b[H\x1b[2JBunkerOS — bunker-01 — 2026-01-01 12:00:00 UTC

BunkerOS on bunker-01: 1 of 1 installed units active
UNIT            STATE             SINCE   STATUS
trustd.service  active (running)  3m ago  issuing

Site: not monitored (sited is not on the system bus)

This is the appliance console. Refreshes every 5 s. Operators manage this site with bunkerctl over the management network.
";
        assert_eq!(frame, expected);
    }

    #[test]
    fn the_site_follows_the_unit_table() {
        let appliance = appliance(vec![running("sited.service", NOW_USEC, "lockdown")]);
        let site = console_site::parsed(
            r#"{"state":"lockdown","reason":"intrusion contact 1 is active",
                "power_budget_w":550000.0,"power":{"source":"grid"},
                "alarms":{"active":1,"unacknowledged":1,"critical":1}}"#,
            r#"[{"alarm":"intrusion-1","severity":"critical","active":true,
                 "summary":"intrusion contact 1 is active"}]"#,
        );
        let body = render_body(&appliance, &site, NOW_USEC, Palette::Plain);
        let expected = "\
BunkerOS on bunker-01: 1 of 1 installed units active
UNIT           STATE             SINCE     STATUS
sited.service  active (running)  just now  lockdown

Site: lockdown — intrusion contact 1 is active
  budget 550.00 kW from grid · alarms 1 active, 1 unacknowledged, 1 critical
  critical intrusion-1: intrusion contact 1 is active
";
        assert_eq!(body, expected);
    }
}
