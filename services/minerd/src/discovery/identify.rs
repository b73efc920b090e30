//! Identifying what listens on one address: one joined `version+devdetails` round trip, which
//! names the firmware (the program key of `version`, or the STATUS description) and the model
//! (`Type`, or BOSminer's `devdetails` `Model`). Firmware that refuses joined commands gets
//! them one per connection, as pyasic does; a `devdetails` refused by the API's access group
//! (pyasic#44) is not needed when `version` names the model.

use std::net::{SocketAddr, SocketAddrV4};

use serde_json::Value;

use crate::cgminer::{
    ClientConfig, ClientError, Command, FirmwareKind, MinerSnapshot, Reply, Request, query,
};
use crate::telemetry::PollFailure;

/// What an address turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Nothing listens there (refused, or no connection within the deadline).
    Nothing,
    /// Something accepted the connection but did not identify as a miner.
    Failed(PollFailure),
    Identified(Identity),
}

/// What a miner says it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub model: Option<String>,
    pub firmware: FirmwareKind,
    pub firmware_version: Option<String>,
    pub mac: Option<String>,
    pub serial: Option<String>,
}

/// Probes `addr` within `client`'s bounds (each round trip under its deadline).
pub async fn probe(addr: SocketAddrV4, client: &ClientConfig) -> Probe {
    let addr = SocketAddr::V4(addr);
    let joined = Request::joined(vec![Command::Version, Command::DevDetails])
        .expect("read-only commands without parameters join");
    let reply = match query(addr, &joined, client).await {
        Ok(reply) if reply.usable("version").is_some() => reply,
        // The firmware refused the join (or answered it without sections): one at a time.
        Ok(_) | Err(ClientError::Reply { .. }) => match one_by_one(addr, client).await {
            Ok(reply) => reply,
            Err(e) => return failed(&e),
        },
        Err(e) => return failed(&e),
    };
    identify(&reply)
}

async fn one_by_one(addr: SocketAddr, client: &ClientConfig) -> Result<Reply, ClientError> {
    let mut reply = query(addr, &Request::single(Command::Version), client).await?;
    if let Ok(details) = query(addr, &Request::single(Command::DevDetails), client).await {
        reply.merge(details);
    }
    Ok(reply)
}

fn failed(error: &ClientError) -> Probe {
    match error {
        ClientError::Refused { .. }
        | ClientError::ConnectTimeout { .. }
        | ClientError::Connect { .. } => Probe::Nothing,
        other => Probe::Failed(PollFailure::from_client_error(other)),
    }
}

/// Names the miner from a reply holding `version` (and perhaps `devdetails`).
pub fn identify(reply: &Reply) -> Probe {
    let snapshot = MinerSnapshot::from_reply(reply);
    let firmware = snapshot.firmware.unwrap_or(FirmwareKind::Unknown);
    if firmware == FirmwareKind::Unknown && snapshot.model.is_none() {
        return Probe::Failed(PollFailure::Unidentified);
    }
    Probe::Identified(Identity {
        model: snapshot.model,
        firmware,
        firmware_version: snapshot.firmware_version,
        mac: record_text(reply, &["mac", "macaddr", "mac address"]),
        serial: record_text(reply, &["serialno", "serial", "serial number"]),
    })
}

/// The first non-empty text under one of `keys` (any case) in `version` or `devdetails`.
fn record_text(reply: &Reply, keys: &[&str]) -> Option<String> {
    [("version", "VERSION"), ("devdetails", "DEVDETAILS")]
        .into_iter()
        .filter_map(|(command, key)| reply.usable(command).map(|s| s.records(key)))
        .flat_map(|records| records.iter().filter_map(Value::as_object))
        .flat_map(|record| record.iter())
        .find(|(k, v)| {
            keys.iter().any(|key| k.eq_ignore_ascii_case(key))
                && v.as_str().is_some_and(|s| !s.trim().is_empty())
        })
        .and_then(|(_, v)| v.as_str().map(|s| s.trim().to_string()))
}

#[cfg(test)]
#[path = "identify_tests.rs"]
mod tests;
