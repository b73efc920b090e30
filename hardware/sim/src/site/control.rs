//! sitesim's control commands, one line each on its control socket ([`crate::control`]):
//! `door 1 open`, `grid off [FEED]`, `load 350`, `arrester 2 trip`, `intrusion 1 on`,
//! `degrade 30 [ZONE]`, `fault door-1.seal-kpa stuck`, `fault site-power lost`, `clear all`,
//! `relays`, `read hall-1.temperature-1`, `advance 60`. Replies are one line: `ok`, JSON for
//! `relays` and `read`, `error: …` for a command refused (which changes nothing).

use std::sync::Arc;

use super::SiteHandle;
use super::fault::{Fault, FaultTarget, parse_exception};
use super::register_map::DEVICES;
use crate::control::Handler;

/// A change to the site's inputs or faults, or a question about it.
#[derive(Debug, Clone, PartialEq)]
pub enum SiteCommand {
    Door {
        door: u16,
        open: bool,
    },
    /// `feed: None` is every feed.
    Grid {
        feed: Option<u16>,
        present: bool,
    },
    ItLoad {
        kw: f64,
    },
    Filter {
        filter: u16,
        tripped: bool,
    },
    Arrester {
        arrester: u16,
        tripped: bool,
    },
    Intrusion {
        contact: u16,
        active: bool,
    },
    /// The shield of `zone` (None: every zone) loses `db` of effectiveness; 0 repairs it.
    DegradeShielding {
        zone: Option<u16>,
        db: f64,
    },
    OutsideField {
        zone: Option<u16>,
        dbuv: f64,
    },
    Fault {
        target: FaultTarget,
        fault: Fault,
    },
    /// `None` clears every fault.
    Clear(Option<FaultTarget>),
    Relays,
    Read {
        sensor: String,
    },
    /// Steps the model by this many simulated seconds.
    Advance {
        seconds: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("empty command")]
    Empty,
    #[error(
        "unknown command '{0}' (door N open|close, grid on|off [FEED], load KW, filter N trip|reset, arrester N trip|reset, intrusion N on|off, degrade DB [ZONE], outside DBUV [ZONE], fault TARGET KIND, clear TARGET|all, relays, read SENSOR, advance SECS)"
    )]
    Unknown(String),
    #[error("'{what}' needs {expected}")]
    Arguments {
        what: &'static str,
        expected: &'static str,
    },
    #[error("'{0}' is not a number from 1")]
    BadNumber(String),
    #[error("'{0}' is not a non-negative number")]
    BadValue(String),
    #[error("unknown fault '{0}' (stuck, lost, noisy AMPLITUDE, exception CODE|NAME, garbage)")]
    UnknownFault(String),
    #[error("'{0}' is not an exception (illegal-data-address, server-device-failure, … or 1-127)")]
    BadException(String),
    #[error("unexpected '{0}' at the end")]
    Trailing(String),
}

fn word<'a>(
    words: &mut impl Iterator<Item = &'a str>,
    what: &'static str,
    expected: &'static str,
) -> Result<&'a str, ControlError> {
    words
        .next()
        .ok_or(ControlError::Arguments { what, expected })
}

fn number(word: &str) -> Result<u16, ControlError> {
    word.parse::<u16>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ControlError::BadNumber(word.to_string()))
}

fn value(word: &str) -> Result<f64, ControlError> {
    word.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| ControlError::BadValue(word.to_string()))
}

fn choice(
    word: &str,
    what: &'static str,
    expected: &'static str,
    yes: &str,
    no: &str,
) -> Result<bool, ControlError> {
    match word {
        w if w == yes => Ok(true),
        w if w == no => Ok(false),
        _ => Err(ControlError::Arguments { what, expected }),
    }
}

fn optional_number(word: Option<&str>) -> Result<Option<u16>, ControlError> {
    word.map(number).transpose()
}

/// A device name, or else a sensor name (the site checks it exists).
fn target(word: &str) -> FaultTarget {
    if DEVICES.contains(&word) {
        FaultTarget::Device(word.to_string())
    } else {
        FaultTarget::Sensor(word.to_string())
    }
}

fn parse_fault<'a>(words: &mut impl Iterator<Item = &'a str>) -> Result<Fault, ControlError> {
    let kind = word(words, "fault", "TARGET and a fault kind")?;
    Ok(match kind {
        "stuck" => Fault::Stuck,
        "lost" => Fault::Lost,
        "garbage" => Fault::Garbage,
        "noisy" => Fault::Noisy(value(word(words, "noisy", "an amplitude")?)?),
        "exception" => {
            let code = word(words, "exception", "a code or name")?;
            Fault::Exception(
                parse_exception(code)
                    .ok_or_else(|| ControlError::BadException(code.to_string()))?,
            )
        }
        other => return Err(ControlError::UnknownFault(other.to_string())),
    })
}

pub fn parse(line: &str) -> Result<SiteCommand, ControlError> {
    let mut words = line.split_whitespace();
    let verb = words.next().ok_or(ControlError::Empty)?;
    let w = &mut words;
    let command = match verb {
        "door" => SiteCommand::Door {
            door: number(word(w, "door", "N open|close")?)?,
            open: choice(
                word(w, "door", "N open|close")?,
                "door",
                "N open|close",
                "open",
                "close",
            )?,
        },
        "grid" => SiteCommand::Grid {
            present: choice(
                word(w, "grid", "on|off [FEED]")?,
                "grid",
                "on|off [FEED]",
                "on",
                "off",
            )?,
            feed: optional_number(w.next())?,
        },
        "load" => SiteCommand::ItLoad {
            kw: value(word(w, "load", "kW")?)?,
        },
        "filter" => SiteCommand::Filter {
            filter: number(word(w, "filter", "N trip|reset")?)?,
            tripped: choice(
                word(w, "filter", "N trip|reset")?,
                "filter",
                "N trip|reset",
                "trip",
                "reset",
            )?,
        },
        "arrester" => SiteCommand::Arrester {
            arrester: number(word(w, "arrester", "N trip|reset")?)?,
            tripped: choice(
                word(w, "arrester", "N trip|reset")?,
                "arrester",
                "N trip|reset",
                "trip",
                "reset",
            )?,
        },
        "intrusion" => SiteCommand::Intrusion {
            contact: number(word(w, "intrusion", "N on|off")?)?,
            active: choice(
                word(w, "intrusion", "N on|off")?,
                "intrusion",
                "N on|off",
                "on",
                "off",
            )?,
        },
        "degrade" => SiteCommand::DegradeShielding {
            db: value(word(w, "degrade", "DB [ZONE]")?)?,
            zone: optional_number(w.next())?,
        },
        "outside" => SiteCommand::OutsideField {
            dbuv: value(word(w, "outside", "DBUV [ZONE]")?)?,
            zone: optional_number(w.next())?,
        },
        "fault" => {
            let target = target(word(w, "fault", "TARGET and a fault kind")?);
            SiteCommand::Fault {
                target,
                fault: parse_fault(w)?,
            }
        }
        "clear" => match word(w, "clear", "a sensor, a device or all")? {
            "all" => SiteCommand::Clear(None),
            name => SiteCommand::Clear(Some(target(name))),
        },
        "relays" => SiteCommand::Relays,
        "read" => SiteCommand::Read {
            sensor: word(w, "read", "a sensor")?.to_string(),
        },
        "advance" => SiteCommand::Advance {
            seconds: value(word(w, "advance", "seconds")?)?,
        },
        other => return Err(ControlError::Unknown(other.to_string())),
    };
    if let Some(extra) = words.next() {
        return Err(ControlError::Trailing(extra.to_string()));
    }
    Ok(command)
}

/// The control-socket handler for a running site.
pub fn handler(site: SiteHandle) -> Handler {
    Arc::new(move |line: &str| {
        let reply = match parse(line) {
            Ok(command) => site.apply(command).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        reply.unwrap_or_else(|e| format!("error: {e}"))
    })
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;
