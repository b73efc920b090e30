//! The coordinating hub's edge: the rollout kept in updated's state directory, documents moved
//! through the exchange, and the operator's commands (`org.bunkeros.Update1`'s `Rollout*`).
//!
//! Every change is written to [`ROLLOUT_STATE`] (atomically, through [`StateDir`]) before its
//! instructions are published, so a restarted updated continues where it stopped; instructions
//! derive their nonces from the persisted seed, so publishing them again is the same document.

use std::sync::Mutex;

use appliance::state::{StateDir, StateError};
use serde_json::{Value as Json, json};

use super::coordinator::{ControlRefused, EvidenceJudge, Observation, Rollout};
use super::exchange::{DirectoryExchange, ExchangeError};
use super::plan::{PlanError, RolloutPlan};

/// The rollout's state file in updated's state directory.
pub const ROLLOUT_STATE: &str = "rollout.json";

/// Exchange problems kept for the status (the newest).
const MAX_PROBLEMS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("the plan is refused: {0}")]
    Plan(#[from] PlanError),
    #[error("rollout {0} is still {1}: abort it before starting another")]
    Busy(String, &'static str),
    #[error("no rollout was started on this hub")]
    NoRollout,
    #[error("{0}")]
    Control(#[from] ControlRefused),
    #[error("the rollout exchange: {0}")]
    Exchange(#[from] ExchangeError),
    #[error("the rollout state: {0}")]
    State(#[from] StateError),
    #[error("no randomness for the rollout's nonces")]
    Randomness,
}

/// The rollout this hub coordinates, if any.
pub struct RolloutDesk {
    state: StateDir,
    exchange: DirectoryExchange,
    judge: Box<dyn EvidenceJudge + Send + Sync>,
    rollout: Mutex<Option<Rollout>>,
    problems: Mutex<Vec<String>>,
}

impl RolloutDesk {
    /// Opens the desk, continuing the rollout persisted in `state` if there is one.
    pub fn open(
        state: StateDir,
        exchange: DirectoryExchange,
        judge: Box<dyn EvidenceJudge + Send + Sync>,
    ) -> Result<RolloutDesk, DeskError> {
        let rollout = state.read_json::<Rollout>(ROLLOUT_STATE)?;
        if let Some(rollout) = &rollout {
            tracing::info!(rollout = %rollout.plan.id, state = rollout.control.word(), "continuing the rollout");
        }
        Ok(RolloutDesk {
            state,
            exchange,
            judge,
            rollout: Mutex::new(rollout),
            problems: Mutex::new(Vec::new()),
        })
    }

    /// 32 random bytes for a new rollout's nonces.
    pub fn fresh_seed() -> Result<[u8; 32], DeskError> {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| DeskError::Randomness)?;
        Ok(seed)
    }

    /// Starts the rollout of `plan_text` (refused while another is not finished), publishes
    /// the plan and the first wave's instructions; returns the status.
    pub fn start(&self, plan_text: &str, seed: [u8; 32], now: u64) -> Result<Json, DeskError> {
        let plan = RolloutPlan::parse(plan_text)?;
        let mut slot = self.rollout.lock().expect("rollout");
        if let Some(current) = slot.as_ref().filter(|r| !r.control.is_finished()) {
            return Err(DeskError::Busy(
                current.plan.id.clone(),
                current.control.word(),
            ));
        }
        self.exchange.publish_plan(&plan.id, plan_text)?;
        let mut rollout = Rollout::start(plan, seed, now);
        rollout.advance(now);
        self.keep(&mut slot, rollout)?;
        Ok(self.status_of(slot.as_ref()))
    }

    /// Reads the watched hubs' reports, moves the rollout on as far as `now` allows, persists
    /// and publishes. Called periodically by the daemon.
    pub fn tick(&self, now: u64) -> Result<(), DeskError> {
        let mut slot = self.rollout.lock().expect("rollout");
        let Some(mut rollout) = slot.clone() else {
            return Ok(());
        };
        if rollout.control.is_finished() {
            return Ok(());
        }
        let hubs: Vec<String> = rollout
            .watched_hubs()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for hub in hubs {
            match self.exchange.read_report(&rollout.plan.id, &hub) {
                Ok(Some(report)) => {
                    if let Observation::Failed(reason) =
                        rollout.observe(&report, self.judge.as_ref(), now)
                    {
                        tracing::warn!(%hub, "rollout halted: {reason}");
                    }
                }
                Ok(None) => {}
                Err(error) => self.problem(format!("hub {hub}: {error}")),
            }
        }
        rollout.advance(now);
        if slot.as_ref() != Some(&rollout) {
            self.keep(&mut slot, rollout)?;
        }
        Ok(())
    }

    /// The status document: the rollout's status with `exchange_problems`; `state` is `none`
    /// before the first rollout.
    pub fn status(&self) -> Json {
        let slot = self.rollout.lock().expect("rollout");
        self.status_of(slot.as_ref())
    }

    pub fn pause(&self, reason: &str, now: u64) -> Result<Json, DeskError> {
        self.command(|rollout| rollout.pause(reason, now))
    }

    pub fn resume(&self, reason: &str, now: u64) -> Result<Json, DeskError> {
        self.command(|rollout| rollout.resume(reason, now))
    }

    /// Aborts, and withdraws every instruction not acted on yet.
    pub fn abort(&self, reason: &str, now: u64) -> Result<Json, DeskError> {
        let withdrawn = {
            let slot = self.rollout.lock().expect("rollout");
            slot.as_ref().map(|r| (r.plan.id.clone(), r.instructions()))
        };
        let status = self.command(|rollout| rollout.abort(reason, now))?;
        if let Some((plan, instructions)) = withdrawn {
            for instruction in instructions {
                self.exchange.remove_instruction(&plan, &instruction.hub)?;
            }
        }
        Ok(status)
    }

    fn command<T>(
        &self,
        apply: impl FnOnce(&mut Rollout) -> Result<T, ControlRefused>,
    ) -> Result<Json, DeskError> {
        let mut slot = self.rollout.lock().expect("rollout");
        let mut rollout = slot.clone().ok_or(DeskError::NoRollout)?;
        apply(&mut rollout)?;
        self.keep(&mut slot, rollout)?;
        Ok(self.status_of(slot.as_ref()))
    }

    /// Persists `rollout`, then publishes its instructions (see the module docs).
    fn keep(&self, slot: &mut Option<Rollout>, rollout: Rollout) -> Result<(), DeskError> {
        self.state.write_json(ROLLOUT_STATE, &rollout)?;
        let instructions = rollout.instructions();
        *slot = Some(rollout);
        for instruction in instructions {
            let current = self
                .exchange
                .read_instruction(&instruction.plan_id, &instruction.hub);
            if !matches!(current, Ok(Some(ref on_disk)) if *on_disk == instruction) {
                self.exchange.write_instruction(&instruction)?;
            }
        }
        Ok(())
    }

    fn status_of(&self, rollout: Option<&Rollout>) -> Json {
        let problems = self.problems.lock().expect("problems").clone();
        match rollout {
            None => json!({"state": "none", "exchange_problems": problems}),
            Some(rollout) => {
                let mut status = rollout.status_json();
                status["exchange_problems"] = json!(problems);
                status
            }
        }
    }

    fn problem(&self, what: String) {
        tracing::warn!("rollout exchange: {what}");
        let mut problems = self.problems.lock().expect("problems");
        if !problems.contains(&what) {
            problems.push(what);
            if problems.len() > MAX_PROBLEMS {
                problems.remove(0);
            }
        }
    }
}

#[cfg(test)]
#[path = "desk_tests.rs"]
mod tests;
