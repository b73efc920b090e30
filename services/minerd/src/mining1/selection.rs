//! The selection language of `org.bunkeros.Mining1` (see
//! [`appliance::dbus::contracts::Mining1Proxy`]): `all`, or comma-separated terms that must all
//! hold: `ip=10.1.0.0/22` (or one address), `owner=NAME`, `location=NAME`, `model=TEXT`
//! (substring, any case), `firmware=bmminer|bosminer|luxos|cgminer`,
//! `state=active|sleeping|quarantined|missing`.
//!
//! Untrusted input from the bus: anything else is a [`SelectionError`] whose message is a
//! sentence for the operator, and nothing is selected.

use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::cgminer::FirmwareKind;
use crate::inventory::{MinerRecord, MinerState};

/// Longest selection accepted; a real one is a few dozen characters.
const MAX_LEN: usize = 1024;

/// Which miners a selection picks; `None` fields match every miner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    pub ip: Option<Ipv4Net>,
    pub owner: Option<String>,
    pub location: Option<String>,
    /// Lower-cased.
    pub model: Option<String>,
    pub firmware: Option<FirmwareKind>,
    pub state: Option<MinerState>,
}

/// Why a selection means nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("the selection is empty; say `all` to pick every miner")]
    Empty,
    #[error("the selection is longer than {MAX_LEN} characters")]
    TooLong,
    #[error(
        "`{0}` is not a term; terms are KEY=VALUE (ip, owner, location, model, firmware, state) or `all`"
    )]
    NotATerm(String),
    #[error(
        "`{0}` is not a key of a selection; keys are ip, owner, location, model, firmware, state"
    )]
    UnknownKey(String),
    #[error("`{0}` is given twice; terms must all hold, so one of each")]
    Repeated(String),
    #[error("`{key}=` needs a value")]
    EmptyValue { key: String },
    #[error("`{0}` is not an IPv4 address or network such as 10.1.0.0/22")]
    BadAddress(String),
    #[error("`{0}` is not a firmware; say bmminer, bosminer, luxos or cgminer")]
    BadFirmware(String),
    #[error("`{0}` is not a miner state; say active, sleeping, quarantined or missing")]
    BadState(String),
}

impl FromStr for Selection {
    type Err = SelectionError;

    fn from_str(text: &str) -> Result<Selection, SelectionError> {
        if text.len() > MAX_LEN {
            return Err(SelectionError::TooLong);
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(SelectionError::Empty);
        }
        let mut selection = Selection::default();
        if text == "all" {
            return Ok(selection);
        }
        for term in text.split(',').map(str::trim) {
            let (key, value) = term
                .split_once('=')
                .ok_or_else(|| SelectionError::NotATerm(term.to_owned()))?;
            let (key, value) = (key.trim(), value.trim());
            if value.is_empty() {
                return Err(SelectionError::EmptyValue {
                    key: key.to_owned(),
                });
            }
            selection.set(key, value)?;
        }
        Ok(selection)
    }
}

impl Selection {
    fn set(&mut self, key: &str, value: &str) -> Result<(), SelectionError> {
        let repeated = || SelectionError::Repeated(key.to_owned());
        match key {
            "ip" => fill(&mut self.ip, parse_network(value)?, repeated),
            "owner" => fill(&mut self.owner, value.to_owned(), repeated),
            "location" => fill(&mut self.location, value.to_owned(), repeated),
            "model" => fill(&mut self.model, value.to_lowercase(), repeated),
            "firmware" => fill(&mut self.firmware, parse_firmware(value)?, repeated),
            "state" => {
                let state = MinerState::from_str(value)
                    .map_err(|_| SelectionError::BadState(value.to_owned()))?;
                fill(&mut self.state, state, repeated)
            }
            other => Err(SelectionError::UnknownKey(other.to_owned())),
        }
    }

    /// True when every term holds for `miner`.
    pub fn matches(&self, miner: &MinerRecord) -> bool {
        self.ip.is_none_or(|net| net.contains(miner.addr.ip()))
            && self.owner.as_ref().is_none_or(|o| *o == miner.owner)
            && self.location.as_ref().is_none_or(|l| *l == miner.location)
            && self.model.as_ref().is_none_or(|m| {
                miner
                    .model
                    .as_ref()
                    .is_some_and(|model| model.to_lowercase().contains(m.as_str()))
            })
            && self.firmware.is_none_or(|f| f == miner.firmware)
            && self.state.is_none_or(|s| s == miner.state)
    }
}

fn fill<T>(
    slot: &mut Option<T>,
    value: T,
    repeated: impl FnOnce() -> SelectionError,
) -> Result<(), SelectionError> {
    if slot.is_some() {
        return Err(repeated());
    }
    *slot = Some(value);
    Ok(())
}

fn parse_network(value: &str) -> Result<Ipv4Net, SelectionError> {
    let bad = || SelectionError::BadAddress(value.to_owned());
    if value.contains('/') {
        let net = Ipv4Net::from_str(value).map_err(|_| bad())?;
        Ok(net.trunc())
    } else {
        let ip = Ipv4Addr::from_str(value).map_err(|_| bad())?;
        Ok(Ipv4Net::from(ip))
    }
}

fn parse_firmware(value: &str) -> Result<FirmwareKind, SelectionError> {
    match value {
        "bmminer" => Ok(FirmwareKind::Bmminer),
        "bosminer" => Ok(FirmwareKind::Bosminer),
        "luxos" => Ok(FirmwareKind::Luxos),
        "cgminer" => Ok(FirmwareKind::Cgminer),
        other => Err(SelectionError::BadFirmware(other.to_owned())),
    }
}

#[cfg(test)]
#[path = "selection_tests.rs"]
mod tests;
