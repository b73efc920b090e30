//! Rollouts across hubs (issue 7, item 4): a plan of waves (a canary hub, then groups), each
//! advanced only when the hubs of the wave before report healthy with signed evidence, halted on
//! any failure, steered by the operator.
//!
//! Data walks one way: the operator's [`plan`] → the [`coordinator`]'s decisions (pure) → the
//! [`exchange`] (instructions out, reports in; served to other hubs over hubd by
//! [`remote_exchange`]) → each hub's [`agent`] (install, gate, report).
//! The [`desk`] is the coordinating hub's edge: it keeps the rollout in updated's state
//! directory, moves documents through the exchange and answers `org.bunkeros.Update1`'s
//! `Rollout*` methods.

pub mod agent;
pub mod coordinator;
pub mod desk;
pub mod evidence;
pub mod exchange;
pub mod hub_duties;
pub mod messages;
pub mod plan;
pub mod remote_exchange;
mod status;

#[cfg(test)]
mod test_evidence;

pub use agent::{AgentError, AgentExchange, AgentStep, GateOutcome, HubAgent};
pub use coordinator::{
    Control, ControlRefused, EvidenceJudge, ExpectedEvidence, HubState, Observation, Rollout,
};
pub use desk::{DeskError, RolloutDesk};
pub use exchange::{DirectoryExchange, ExchangeError};
pub use messages::{Instruction, Report, ReportOutcome};
pub use plan::{HubSpec, PlanError, RolloutPlan, WaveSpec};
