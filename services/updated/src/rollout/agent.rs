//! The hub's side of a rollout: act once on each instruction, and answer it after the gate.
//!
//! [`HubAgent::poll`] reads this hub's instructions from the exchange and installs the newest one
//! not acted on yet through the caller's `install` (the integrator wires `Controller::install`
//! with a reboot). The instruction is recorded as pending in the agent's state file *before*
//! installing, so after the reboot [`HubAgent::report_after_gate`] answers it: healthy with the
//! caller's signed evidence (the quote over the instruction's nonce), or failed with the reason
//! (the gate failed, the hub fell back to the old image, the install was refused). Each nonce is
//! acted on once, even across restarts.

use appliance::state::{StateDir, StateError};
use serde::{Deserialize, Serialize};

use super::exchange::{DirectoryExchange, ExchangeError};
use super::messages::{Instruction, Report, ReportOutcome};
use super::remote_exchange::{CoordinatorExchange, RemoteError};

/// The agent's state file in updated's state directory.
pub const AGENT_STATE: &str = "rollout-agent.json";

/// Nonces remembered as acted on (far more than rollouts a hub sees between restarts).
const REMEMBERED_NONCES: usize = 64;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct AgentState {
    acted: Vec<String>,
    pending: Option<Instruction>,
    /// The answer decided but not yet accepted by the exchange (the coordinator out of reach):
    /// sent again, as it is, before anything else.
    #[serde(default)]
    unsent: Option<Report>,
}

/// What [`HubAgent::poll`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentStep {
    /// No instruction this hub has not acted on.
    Idle,
    /// An install is pending its reboot and gate; nothing new is started meanwhile.
    AwaitingGate(Instruction),
    /// The release was installed; the report follows after the reboot and gate.
    Installed(Instruction),
    /// The install did not happen; a failed report was written.
    InstallFailed(Instruction, String),
}

/// The health gate's outcome for the slot the instruction installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    Healthy,
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the rollout exchange: {0}")]
    Exchange(#[from] ExchangeError),
    #[error("the rollout exchange over hubd: {0}")]
    Remote(#[from] RemoteError),
    #[error("the rollout agent's state: {0}")]
    State(#[from] StateError),
}

/// Where a hub's agent reads its instructions and the plans, and writes its reports.
#[derive(Debug, Clone)]
pub enum AgentExchange {
    /// A directory: the coordinating hub's own, or one shared by the hubs of a site.
    Directory(DirectoryExchange),
    /// The coordinator's exchange at another hub, reached over hubd's links.
    Coordinator(CoordinatorExchange),
}

impl From<DirectoryExchange> for AgentExchange {
    fn from(exchange: DirectoryExchange) -> AgentExchange {
        AgentExchange::Directory(exchange)
    }
}

impl From<CoordinatorExchange> for AgentExchange {
    fn from(exchange: CoordinatorExchange) -> AgentExchange {
        AgentExchange::Coordinator(exchange)
    }
}

impl AgentExchange {
    async fn instructions_for(
        &self,
        hub: &str,
    ) -> Result<Vec<Result<Instruction, ExchangeError>>, AgentError> {
        Ok(match self {
            AgentExchange::Directory(exchange) => exchange.instructions_for(hub)?,
            AgentExchange::Coordinator(coordinator) => coordinator.instructions().await?,
        })
    }

    async fn write_report(&self, report: &Report) -> Result<(), AgentError> {
        match self {
            AgentExchange::Directory(exchange) => exchange.write_report(report)?,
            AgentExchange::Coordinator(coordinator) => coordinator.write_report(report).await?,
        }
        Ok(())
    }

    /// The text of a plan this hub is part of, if published.
    pub async fn plan(&self, plan_id: &str) -> Result<Option<String>, AgentError> {
        Ok(match self {
            AgentExchange::Directory(exchange) => exchange.read_plan(plan_id)?,
            AgentExchange::Coordinator(coordinator) => coordinator.plan(plan_id).await?,
        })
    }
}

/// One hub's agent.
#[derive(Debug, Clone)]
pub struct HubAgent {
    hub: String,
    exchange: AgentExchange,
    state: StateDir,
}

impl HubAgent {
    pub fn new(
        hub: impl Into<String>,
        exchange: impl Into<AgentExchange>,
        state: StateDir,
    ) -> HubAgent {
        HubAgent {
            hub: hub.into(),
            exchange: exchange.into(),
            state,
        }
    }

    /// Where this agent's documents travel.
    pub fn exchange(&self) -> &AgentExchange {
        &self.exchange
    }

    /// Acts on the newest instruction not acted on yet (see the module docs).
    pub async fn poll(
        &self,
        now: u64,
        install: impl AsyncFnOnce(&Instruction) -> Result<(), String>,
    ) -> Result<AgentStep, AgentError> {
        let mut state = self.load()?;
        self.send_unsent(&mut state).await?;
        if let Some(pending) = state.pending {
            return Ok(AgentStep::AwaitingGate(pending));
        }
        let Some(instruction) = self.newest_unacted(&state).await? else {
            return Ok(AgentStep::Idle);
        };
        tracing::info!(
            plan = %instruction.plan_id, wave = %instruction.wave, version = %instruction.release_version,
            "the rollout instructs this hub to install"
        );
        state.acted.push(instruction.nonce.clone());
        if state.acted.len() > REMEMBERED_NONCES {
            state.acted.remove(0);
        }
        state.pending = Some(instruction.clone());
        self.state.write_json(AGENT_STATE, &state)?;
        match install(&instruction).await {
            Ok(()) => Ok(AgentStep::Installed(instruction)),
            Err(reason) => {
                let reason = format!("the install did not happen: {reason}");
                self.answer(
                    &mut state,
                    &instruction,
                    "",
                    ReportOutcome::Failed {
                        reason: reason.clone(),
                    },
                    None,
                    now,
                )
                .await?;
                Ok(AgentStep::InstallFailed(instruction, reason))
            }
        }
    }

    /// Answers the pending instruction once the gate of the booted slot has decided; `None`
    /// when nothing is pending. `evidence` makes the signed evidence for a healthy gate.
    pub async fn report_after_gate(
        &self,
        booted_version: &str,
        gate: GateOutcome,
        now: u64,
        evidence: impl AsyncFnOnce(&Instruction) -> Result<serde_json::Value, String>,
    ) -> Result<Option<Report>, AgentError> {
        let mut state = self.load()?;
        let Some(instruction) = state.pending.clone() else {
            return Ok(None);
        };
        let (outcome, evidence) = match gate {
            GateOutcome::Failed(reason) => (ReportOutcome::Failed { reason }, None),
            GateOutcome::Healthy if booted_version != instruction.release_version => {
                let reason = format!(
                    "the hub runs BunkerOS {booted_version}, not the release {}: the new slot fell back",
                    instruction.release_version
                );
                (ReportOutcome::Failed { reason }, None)
            }
            GateOutcome::Healthy => match evidence(&instruction).await {
                Ok(evidence) => (ReportOutcome::Healthy, Some(evidence)),
                Err(why) => {
                    let reason = format!("healthy, but no signed evidence could be made: {why}");
                    (ReportOutcome::Failed { reason }, None)
                }
            },
        };
        let report = self
            .answer(
                &mut state,
                &instruction,
                booted_version,
                outcome,
                evidence,
                now,
            )
            .await?;
        Ok(Some(report))
    }

    async fn answer(
        &self,
        state: &mut AgentState,
        instruction: &Instruction,
        booted_version: &str,
        outcome: ReportOutcome,
        evidence: Option<serde_json::Value>,
        now: u64,
    ) -> Result<Report, AgentError> {
        let report = Report {
            plan_id: instruction.plan_id.clone(),
            hub: self.hub.clone(),
            nonce: instruction.nonce.clone(),
            booted_version: booted_version.to_owned(),
            outcome,
            evidence,
            reported_at: now,
        };
        // Decided once and kept: if the exchange cannot take it now, this very answer goes
        // later, not one worked out again from what the hub then remembers.
        state.pending = None;
        state.unsent = Some(report.clone());
        self.state.write_json(AGENT_STATE, state)?;
        self.send_unsent(state).await?;
        Ok(report)
    }

    /// Sends the answer the exchange has not taken yet, if any.
    async fn send_unsent(&self, state: &mut AgentState) -> Result<(), AgentError> {
        let Some(report) = &state.unsent else {
            return Ok(());
        };
        self.exchange.write_report(report).await?;
        tracing::info!(plan = %report.plan_id, outcome = ?report.outcome, "rollout report written");
        state.unsent = None;
        self.state.write_json(AGENT_STATE, state)?;
        Ok(())
    }

    async fn newest_unacted(&self, state: &AgentState) -> Result<Option<Instruction>, AgentError> {
        let mut newest: Option<Instruction> = None;
        for instruction in self.exchange.instructions_for(&self.hub).await? {
            match instruction {
                Ok(i) if state.acted.contains(&i.nonce) => {}
                Ok(i) => {
                    if newest.as_ref().is_none_or(|n| i.issued_at >= n.issued_at) {
                        newest = Some(i);
                    }
                }
                Err(error) => tracing::warn!(%error, "a rollout instruction is refused"),
            }
        }
        Ok(newest)
    }

    fn load(&self) -> Result<AgentState, AgentError> {
        Ok(self
            .state
            .read_json::<AgentState>(AGENT_STATE)?
            .unwrap_or_default())
    }
}
