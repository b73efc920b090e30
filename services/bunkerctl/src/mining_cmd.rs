//! `bunkerctl mining`: the operator's view and controls of minerd, over `org.bunkeros.Mining1`
//! on the system bus.
//!
//! Reads ask minerd once and print its document as text (or as minerd sent it, with `--json`).
//! Bulk actions start a job and follow it to the end ([`crate::mining_job`]); the audit log is
//! verified offline from the file ([`crate::audit_verify`]).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use appliance::dbus::contracts::{MINING, Mining1Proxy};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::audit_verify::{self, AuditCommand, Minerd};
use crate::bus_call;
use crate::mining_job::{self, BulkAction};
use crate::mining_view;
use crate::terminal::{Palette, print};
use crate::time_display::now_usec;

/// How long minerd may take to answer a read (it answers from what it last polled).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a scan of the configured ranges may take (minerd bounds each probe; a /22 takes
/// seconds).
const SCAN_TIMEOUT: Duration = Duration::from_secs(120);

/// `bunkerctl mining …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum MiningCommand {
    /// The fleet at a glance: miners up/down/sleeping/quarantined/missing, hashrate, power,
    /// J/TH, hottest chip, each owner with its shares, the proxy and its upstream pools,
    /// curtailment, open hijacks, the audit log
    Status {
        /// Print minerd's status document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// The miners a selection picks, by address: owner, location, state, hashrate, power,
    /// J/TH, hottest chip; model, firmware, pool and last poll on the line below
    #[command(after_help = SELECTION_HELP)]
    Miners {
        /// Which miners (default: all)
        #[arg(default_value = "all")]
        selection: String,
        /// Print minerd's JSON array as it sent it
        #[arg(long)]
        json: bool,
    },
    /// One miner in detail: boards, fans, pools as it reports them, what the proxy sees,
    /// hijack findings, the last hour
    Miner {
        /// The miner's address, e.g. 10.1.0.7
        ip: String,
        /// Print minerd's document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Crypto-jacking findings, open ones first, each with what minerd saw
    Hijacks {
        /// Print minerd's JSON array as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Restore the sanctioned pools on the selected miners
    #[command(name = "set-pools", after_help = ACTION_HELP)]
    SetPools(ActionArgs),
    /// Reboot the selected miners
    #[command(after_help = ACTION_HELP)]
    Reboot(ActionArgs),
    /// Put the selected miners to sleep (fans keep running)
    #[command(after_help = ACTION_HELP)]
    Sleep(ActionArgs),
    /// Wake the selected miners
    #[command(after_help = ACTION_HELP)]
    Wake(ActionArgs),
    /// Set the power target of the selected miners, in watts
    #[command(name = "power-target", after_help = ACTION_HELP)]
    PowerTarget {
        #[command(flatten)]
        action: ActionArgs,
        /// The power target, e.g. 2500
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        watts: u32,
    },
    /// Release a quarantined miner after looking at it; the note goes to the audit log
    Release {
        /// The miner's address
        ip: String,
        /// Why it may mine again (recorded with your user id)
        #[arg(long, value_name = "TEXT")]
        note: String,
    },
    /// Scan the configured ranges now and print what changed
    Scan {
        /// Print minerd's report (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// minerd's audit log
    Audit {
        #[command(subcommand)]
        cmd: AuditCommand<Minerd>,
    },
}

/// What every bulk action takes.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ActionArgs {
    /// Which miners: `all`, or terms such as owner=acme,state=active
    pub selection: String,
    /// Do not ask for confirmation when the selection is `all`
    #[arg(long, short = 'y')]
    pub yes: bool,
}

const SELECTION_HELP: &str = "\
A selection is `all`, or comma-separated terms that must all hold: ip=10.1.0.0/22 (or one \
address), owner=NAME, location=NAME, model=TEXT (substring), \
firmware=bmminer|bosminer|luxos|cgminer, state=active|sleeping|quarantined|missing.";

const ACTION_HELP: &str = "\
A selection is `all`, or comma-separated terms that must all hold: ip=10.1.0.0/22 (or one \
address), owner=NAME, location=NAME, model=TEXT (substring), \
firmware=bmminer|bosminer|luxos|cgminer, state=active|sleeping|quarantined|missing. \
The action runs in minerd as a job and is recorded in its audit log; bunkerctl follows it with \
a progress bar (plain lines when stdout is not a terminal) and lists every miner that failed. \
Exit status: 0 when every miner succeeded, 1 when any failed or minerd refused.";

/// Runs a `mining` subcommand and returns its exit status.
pub fn run(cmd: MiningCommand) -> Result<ExitCode> {
    let palette = Palette::for_stdout();
    match cmd {
        MiningCommand::SetPools(args) => mining_job::run(BulkAction::new("set-pools", args)),
        MiningCommand::Reboot(args) => mining_job::run(BulkAction::new("reboot", args)),
        MiningCommand::Sleep(args) => mining_job::run(BulkAction::new("sleep", args)),
        MiningCommand::Wake(args) => mining_job::run(BulkAction::new("wake", args)),
        MiningCommand::PowerTarget { action, watts } => {
            mining_job::run(BulkAction::new("power-target", action).with_argument(watts))
        }
        MiningCommand::Audit { cmd } => audit_verify::run(cmd),
        MiningCommand::Status { json } => read(Read::Status { json }, palette),
        MiningCommand::Miners { selection, json } => {
            read(Read::Miners { selection, json }, palette)
        }
        MiningCommand::Miner { ip, json } => read(Read::Miner { ip, json }, palette),
        MiningCommand::Hijacks { json } => read(Read::Hijacks { json }, palette),
        MiningCommand::Scan { json } => read(Read::Scan { json }, palette),
        MiningCommand::Release { ip, note } => read(Read::Release { ip, note }, palette),
    }
}

/// A call answered at once (a scan within [`SCAN_TIMEOUT`]), printed as it comes.
enum Read {
    Status { json: bool },
    Miners { selection: String, json: bool },
    Miner { ip: String, json: bool },
    Hijacks { json: bool },
    Scan { json: bool },
    Release { ip: String, note: String },
}

fn read(call: Read, palette: Palette) -> Result<ExitCode> {
    let timeout = match call {
        Read::Scan { .. } => SCAN_TIMEOUT,
        _ => ANSWER_TIMEOUT,
    };
    bus_call::on_system_bus(timeout, async |connection| {
        let mining = Mining1Proxy::new(connection)
            .await
            .context("creating the org.bunkeros.Mining1 proxy")?;
        let text = ask(&mining, call, palette).await?;
        print(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// How a document reads to a person, given the time now (µs) for "12s ago".
type Render = fn(&Value, u64, Palette) -> String;

/// What a read, a release or a scan prints.
async fn ask(mining: &Mining1Proxy<'_>, call: Read, palette: Palette) -> Result<String> {
    let now = now_usec();
    let (document, json, rendered): (String, bool, Render) = match call {
        Read::Status { json } => (mining.status().await.map_err(refused)?, json, |v, _, p| {
            mining_view::render_status(v, p)
        }),
        Read::Miners { selection, json } => (
            mining.miners(&selection).await.map_err(refused)?,
            json,
            mining_view::render_miners,
        ),
        Read::Miner { ip, json } => (
            mining.miner(&ip).await.map_err(refused)?,
            json,
            mining_view::miner::render_miner,
        ),
        Read::Hijacks { json } => (mining.hijacks().await.map_err(refused)?, json, |v, _, p| {
            mining_view::render_hijacks(v, p)
        }),
        Read::Scan { json } => (mining.scan().await.map_err(refused)?, json, |v, _, _| {
            mining_view::render_scan(v)
        }),
        Read::Release { ip, note } => {
            mining.release(&ip, &note).await.map_err(refused)?;
            return Ok(format!(
                "{ip} released from quarantine; the note is in minerd's audit log\n"
            ));
        }
    };
    if json {
        return Ok(format!("{document}\n"));
    }
    let value: Value = serde_json::from_str(&document).context("minerd's answer is not JSON")?;
    Ok(rendered(&value, now, palette))
}

/// A D-Bus refusal as one line: minerd's own sentence, or why minerd could not be asked.
pub fn refused(error: zbus::Error) -> anyhow::Error {
    bus_call::refused(
        MINING,
        "only root and members of bunkeros-operators may ask minerd \
         (org.bunkeros.Mining1.conf)",
        error,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use appliance::dbus::contracts::mining_errors;

    fn method_error(name: &str, message: &str) -> zbus::Error {
        bus_call::method_error("/org/bunkeros/Mining1", "Status", name, message)
    }

    #[test]
    fn refusals_are_one_sentence() {
        let not_found = refused(method_error(
            mining_errors::NOT_FOUND,
            "no miner at 10.9.9.9",
        ));
        assert_eq!(
            not_found.to_string(),
            "minerd refused (NotFound): no miner at 10.9.9.9"
        );
        let denied = refused(method_error(
            "org.freedesktop.DBus.Error.AccessDenied",
            "Rejected send message",
        ));
        assert_eq!(
            denied.to_string(),
            "the system bus refused the call: only root and members of bunkeros-operators may \
             ask minerd (org.bunkeros.Mining1.conf)"
        );
        let absent = refused(method_error(
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "The name is not activatable",
        ));
        assert_eq!(
            absent.to_string(),
            "minerd is not running (org.bunkeros.Mining1 is not on the system bus)"
        );
    }
}
