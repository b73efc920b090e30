//! minersim's control commands, one line each on its control socket ([`crate::control`]):
//! `list`, `view 127.1.0.5`, `fault 127.1.0.5 hang`, `clear 127.1.0.5`, `sleep`/`wake`,
//! `power 127.1.0.5 2000`. Replies are one line: JSON for `list` and `view`, `ok` for changes,
//! `error: …` for a command that is not understood (and changes nothing).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{Fault, Fleet, MinerHandle};
use crate::control::Handler;

#[derive(Debug, Clone, PartialEq)]
pub enum ControlCommand {
    List,
    View(Ipv4Addr),
    Fault(Ipv4Addr, Fault),
    Clear(Ipv4Addr),
    Sleep(Ipv4Addr, bool),
    PowerTarget(Ipv4Addr, f64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("empty command")]
    Empty,
    #[error(
        "unknown command '{0}' (list, view IP, fault IP KIND [ARGS], clear IP, sleep IP, wake IP, power IP WATTS)"
    )]
    Unknown(String),
    #[error("'{0}' is not an IPv4 address")]
    BadAddress(String),
    #[error("'{what}' needs {expected}")]
    Arguments {
        what: &'static str,
        expected: &'static str,
    },
    #[error("'{0}' is not a positive number")]
    BadNumber(String),
    #[error(
        "unknown fault '{0}' (hang, slow MS, malformed, truncated, oversized, rebooting SECS, hijack URL USER, user USER, devfee URL USER EVERY_SECS FOR_SECS, hidden)"
    )]
    UnknownFault(String),
    #[error("no miner at {0}")]
    NoMiner(Ipv4Addr),
}

fn address(word: Option<&str>, what: &'static str) -> Result<Ipv4Addr, ControlError> {
    let word = word.ok_or(ControlError::Arguments {
        what,
        expected: "a miner address",
    })?;
    word.parse()
        .map_err(|_| ControlError::BadAddress(word.to_string()))
}

fn positive(word: Option<&str>, what: &'static str) -> Result<f64, ControlError> {
    let word = word.ok_or(ControlError::Arguments {
        what,
        expected: "a number",
    })?;
    word.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .ok_or_else(|| ControlError::BadNumber(word.to_string()))
}

fn text(
    word: Option<&str>,
    what: &'static str,
    expected: &'static str,
) -> Result<String, ControlError> {
    word.map(str::to_string)
        .ok_or(ControlError::Arguments { what, expected })
}

fn parse_fault<'a>(mut words: impl Iterator<Item = &'a str>) -> Result<Fault, ControlError> {
    let kind = words.next().ok_or(ControlError::Arguments {
        what: "fault",
        expected: "a fault kind",
    })?;
    let fault = match kind {
        "hang" => Fault::Hang,
        "slow" => Fault::Slow(Duration::from_secs_f64(
            positive(words.next(), "slow")? / 1000.0,
        )),
        "malformed" => Fault::Malformed,
        "truncated" => Fault::Truncated,
        "oversized" => Fault::Oversized,
        "rebooting" => Fault::Rebooting(Duration::from_secs_f64(positive(
            words.next(),
            "rebooting",
        )?)),
        "hijack" => Fault::SelfHijack {
            url: text(words.next(), "hijack", "a pool URL and a user")?,
            user: text(words.next(), "hijack", "a pool URL and a user")?,
        },
        "user" => Fault::UserChange {
            user: text(words.next(), "user", "a user")?,
        },
        "devfee" => Fault::DevFee {
            url: text(words.next(), "devfee", "URL USER EVERY_SECS FOR_SECS")?,
            user: text(words.next(), "devfee", "URL USER EVERY_SECS FOR_SECS")?,
            every: Duration::from_secs_f64(positive(words.next(), "devfee")?),
            for_: Duration::from_secs_f64(positive(words.next(), "devfee")?),
        },
        "hidden" => Fault::HiddenHashing,
        other => return Err(ControlError::UnknownFault(other.to_string())),
    };
    Ok(fault)
}

pub fn parse(line: &str) -> Result<ControlCommand, ControlError> {
    let mut words = line.split_whitespace();
    let verb = words.next().ok_or(ControlError::Empty)?;
    let command = match verb {
        "list" => ControlCommand::List,
        "view" => ControlCommand::View(address(words.next(), "view")?),
        "fault" => {
            let ip = address(words.next(), "fault")?;
            ControlCommand::Fault(ip, parse_fault(words)?)
        }
        "clear" => ControlCommand::Clear(address(words.next(), "clear")?),
        "sleep" => ControlCommand::Sleep(address(words.next(), "sleep")?, true),
        "wake" => ControlCommand::Sleep(address(words.next(), "wake")?, false),
        "power" => {
            let ip = address(words.next(), "power")?;
            ControlCommand::PowerTarget(ip, positive(words.next(), "power")?)
        }
        other => return Err(ControlError::Unknown(other.to_string())),
    };
    Ok(command)
}

/// One line of `list`.
#[derive(Debug, Serialize)]
struct ListEntry {
    ip: Ipv4Addr,
    model: String,
    firmware: super::Firmware,
    hashrate_ths: f64,
    power_w: f64,
    sleeping: bool,
    rebooting: bool,
}

fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("error: {e}"))
}

/// Runs one command against the fleet's miners.
pub fn execute(miners: &BTreeMap<Ipv4Addr, MinerHandle>, command: ControlCommand) -> String {
    let miner = |ip: Ipv4Addr| miners.get(&ip).ok_or(ControlError::NoMiner(ip));
    let result = match command {
        ControlCommand::List => {
            let entries: Vec<ListEntry> = miners
                .values()
                .map(|m| {
                    let v = m.view();
                    ListEntry {
                        ip: v.ip,
                        model: v.model,
                        firmware: v.firmware,
                        hashrate_ths: v.hashrate_ths,
                        power_w: v.power_w,
                        sleeping: v.sleeping,
                        rebooting: v.rebooting,
                    }
                })
                .collect();
            Ok(to_json(&entries))
        }
        ControlCommand::View(ip) => miner(ip).map(|m| to_json(&m.view())),
        ControlCommand::Fault(ip, fault) => miner(ip).map(|m| {
            m.inject(fault);
            "ok".to_string()
        }),
        ControlCommand::Clear(ip) => miner(ip).map(|m| {
            m.clear_faults();
            "ok".to_string()
        }),
        ControlCommand::Sleep(ip, sleeping) => miner(ip).map(|m| {
            m.set_sleeping(sleeping);
            "ok".to_string()
        }),
        ControlCommand::PowerTarget(ip, watts) => miner(ip).map(|m| {
            m.set_power_target(watts);
            "ok".to_string()
        }),
    };
    result.unwrap_or_else(|e| format!("error: {e}"))
}

/// The control-socket handler for a fleet.
pub fn handler(fleet: &Fleet) -> Handler {
    let miners: BTreeMap<Ipv4Addr, MinerHandle> =
        fleet.miners().into_iter().map(|m| (m.ip(), m)).collect();
    Arc::new(move |line: &str| match parse(line) {
        Ok(command) => execute(&miners, command),
        Err(e) => format!("error: {e}"),
    })
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
