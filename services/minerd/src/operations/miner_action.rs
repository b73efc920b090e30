//! The actions an operator (or curtailment) takes on one miner, as cgminer API commands.
//!
//! Which firmware can do what over the cgminer API (checked against pyasic 0.79's RPC
//! modules, `pyasic/rpc/*.py`):
//! - pools (`addpool`, `switchpool`, `removepool`, `pools`) and `restart`: cgminer, bmminer,
//!   BOSminer.
//! - sleep and wake: BOSminer's `pause` / `resume`; LuxOS's `curtail` with `sleep` /
//!   `wakeup` inside a `logon` session (`logon` returns the open session's id, which is the
//!   first parameter; the session is left open, as LuxOS keeps one per miner); stock cgminer
//!   and bmminer have no sleep at all.
//! - power target: LuxOS's power profiles (`profiles`, then `profileset` inside the `logon`
//!   session; see `power_profiles`); BOSminer sets targets only through its GraphQL/gRPC API and
//!   stock firmware not at all, so for them the action says so instead of pretending.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::power_profiles::PowerProfiles;
use super::runner::BulkTarget;
use super::set_pools::set_pools;
use crate::cgminer::{
    ClientConfig, ClientError, Command, FirmwareKind, Reply, ReplyError, Request, query,
};
use crate::curtailment::CurtailAction;
use crate::hijack::SanctionedPool;

/// A miner an action runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinerTarget {
    /// How the inventory names it (usually its address).
    pub id: String,
    /// Its cgminer API.
    pub api: SocketAddr,
    pub firmware: FirmwareKind,
}

impl BulkTarget for MinerTarget {
    fn label(&self) -> String {
        self.id.clone()
    }
}

/// Why an action did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the miner refused: {0}")]
    Refused(#[from] ReplyError),
    #[error("{firmware:?} firmware cannot {what} through the cgminer API")]
    Unsupported {
        firmware: FirmwareKind,
        what: &'static str,
    },
    #[error("the change did not take: {reason}")]
    NotVerified { reason: String },
    #[error("no sanctioned pool to set")]
    NothingSanctioned,
}

/// Sends one command and checks the firmware accepted it.
pub async fn send(
    addr: SocketAddr,
    client: &ClientConfig,
    command: Command,
) -> Result<Reply, ActionError> {
    let name = command.name();
    let reply = query(addr, &Request::single(command), client).await?;
    reply.section(name)?;
    Ok(reply)
}

/// One state-changing action.
#[derive(Debug, Clone, PartialEq)]
pub enum MinerAction {
    SetPools {
        pools: Vec<SanctionedPool>,
        /// The Stratum password (`x` for most pools); kept out of the audit log.
        password: String,
    },
    Reboot,
    Sleep,
    Wake,
    SetPowerTarget {
        watts: u32,
    },
}

impl MinerAction {
    /// The action's name in the audit log.
    pub fn audit_name(&self) -> &'static str {
        match self {
            MinerAction::SetPools { .. } => "miner.set-pools",
            MinerAction::Reboot => "miner.reboot",
            MinerAction::Sleep => "miner.sleep",
            MinerAction::Wake => "miner.wake",
            MinerAction::SetPowerTarget { .. } => "miner.set-power-target",
        }
    }

    /// The parameters for the audit log (no password).
    pub fn parameters(&self) -> Value {
        match self {
            MinerAction::SetPools { pools, .. } => json!({
                "pools": pools
                    .iter()
                    .map(|p| json!({"url": p.url, "user": p.user}))
                    .collect::<Vec<_>>(),
            }),
            MinerAction::SetPowerTarget { watts } => json!({ "watts": watts }),
            _ => json!({}),
        }
    }

    /// Carries the action out on `target`; the sentence says what happened.
    pub async fn perform(
        &self,
        target: &MinerTarget,
        client: &ClientConfig,
    ) -> Result<String, ActionError> {
        let api = target.api;
        match self {
            MinerAction::SetPools { pools, password } => {
                let done = set_pools(api, client, pools, password).await?;
                let switched = done
                    .switched_to
                    .map(|url| format!(", switched to {url}"))
                    .unwrap_or_default();
                Ok(format!(
                    "pools set: {} added, {} removed{switched}; only the sanctioned pools remain",
                    done.added, done.removed
                ))
            }
            MinerAction::Reboot => {
                send(api, client, Command::Restart).await?;
                Ok("restarting".to_owned())
            }
            MinerAction::Sleep => {
                set_sleeping(target, client, true).await?;
                Ok("hashing paused".to_owned())
            }
            MinerAction::Wake => {
                set_sleeping(target, client, false).await?;
                Ok("hashing resumed".to_owned())
            }
            MinerAction::SetPowerTarget { watts } => set_power_target(target, client, *watts).await,
        }
    }
}

/// A power target where the firmware's API takes one: LuxOS runs at named power profiles, so
/// the target becomes the highest profile at or below it (the lowest when none is), set inside
/// the API session. BOSminer takes targets only over its gRPC/REST API, stock firmware not at all.
async fn set_power_target(
    target: &MinerTarget,
    client: &ClientConfig,
    watts: u32,
) -> Result<String, ActionError> {
    if target.firmware != FirmwareKind::Luxos {
        return Err(ActionError::Unsupported {
            firmware: target.firmware,
            what: "set a power target",
        });
    }
    let api = target.api;
    let profiles = PowerProfiles::read(api, client).await?;
    let profile = profiles
        .for_target(f64::from(watts))
        .expect("read() returns at least one profile");
    let session = luxos_session(api, client).await?;
    send(
        api,
        client,
        Command::ProfileSet {
            session,
            profile: profile.name.clone(),
        },
    )
    .await?;
    Ok(format!(
        "power profile {} ({:.0} W) for a target of {watts} W",
        profile.name, profile.watts
    ))
}

async fn set_sleeping(
    target: &MinerTarget,
    client: &ClientConfig,
    sleep: bool,
) -> Result<(), ActionError> {
    let api = target.api;
    match target.firmware {
        FirmwareKind::Bosminer => {
            let command = if sleep {
                Command::Pause
            } else {
                Command::Resume
            };
            send(api, client, command).await.map(|_| ())
        }
        FirmwareKind::Luxos => {
            let session = luxos_session(api, client).await?;
            send(api, client, Command::Curtail { session, sleep })
                .await
                .map(|_| ())
        }
        firmware => Err(ActionError::Unsupported {
            firmware,
            what: if sleep { "sleep" } else { "wake" },
        }),
    }
}

/// The id of LuxOS's API session (opened if none is).
async fn luxos_session(api: SocketAddr, client: &ClientConfig) -> Result<String, ActionError> {
    let reply = send(api, client, Command::Logon).await?;
    let section = reply.section(Command::Logon.name())?;
    section
        .records("SESSION")
        .iter()
        .find_map(|r| r.get("SessionID").and_then(|v| v.as_str()))
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| ActionError::NotVerified {
            reason: "logon returned no session id".to_owned(),
        })
}

impl From<&CurtailAction> for MinerAction {
    /// What curtailment's plan asks of one miner; targets go to the firmware in whole watts.
    fn from(action: &CurtailAction) -> MinerAction {
        match action {
            CurtailAction::Sleep { .. } => MinerAction::Sleep,
            CurtailAction::Wake { .. } => MinerAction::Wake,
            CurtailAction::SetPowerTarget { watts, .. } => MinerAction::SetPowerTarget {
                watts: watts.round().clamp(0.0, f64::from(u32::MAX)) as u32,
            },
        }
    }
}

/// Whether `firmware` can do `action` through the cgminer API (for curtailment's inputs and
/// for refusing early in the operator's tools).
pub fn supports(firmware: FirmwareKind, action: &MinerAction) -> bool {
    match action {
        MinerAction::SetPools { .. } | MinerAction::Reboot => true,
        MinerAction::Sleep | MinerAction::Wake => {
            matches!(firmware, FirmwareKind::Bosminer | FirmwareKind::Luxos)
        }
        MinerAction::SetPowerTarget { .. } => firmware == FirmwareKind::Luxos,
    }
}
