//! The appliance console: `bunkerctl status --watch N` on the local screen, redrawn every N seconds.
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
        Ok(appliance) => {
            let body = render_status(&appliance, now, palette);
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

async fn read(connection: &mut Option<Connection>) -> Result<crate::snapshot::ApplianceStatus> {
    let live = match connection {
        Some(live) => live,
        None => connection.insert(status::connect().await?),
    };
    status::read_appliance_status(live).await
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
        let body = render_status(&appliance, NOW_USEC, Palette::Plain);
        let frame = render_frame("bunker-01", NOW_USEC, &body, Duration::from_secs(5));
        let expected = "\x1b[H\x1b[2JBunkerOS — bunker-01 — 2026-01-01 12:00:00 UTC

BunkerOS on bunker-01: 1 of 1 installed units active
UNIT            STATE             SINCE   STATUS
trustd.service  active (running)  3m ago  issuing

This is the appliance console. Refreshes every 5 s. Operators manage this site with bunkerctl over the management network.
";
        assert_eq!(frame, expected);
    }
}
