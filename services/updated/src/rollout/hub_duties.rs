//! What the daemon does for rollouts, on its refresh tick: the coordinating desk moves waves,
//! and this hub's agent acts on its instructions and answers them with signed evidence.
//!
//! The agent's answer depends on where the hub stands since the instruction was installed:
//! - the release runs and its health gate decided in this boot (`health-gate.json` signed for
//!   this boot id): healthy → the evidence (the verdict, trustd's gate signature, a quote of PCR 11
//!   over the instruction's nonce); unhealthy → failed with the gate's summary (the gate then
//!   reboots into the previous slot);
//! - the old image runs and the install was not made in this boot: the new slot fell back (or the
//!   write failed) → failed, with the recorded result's reason;
//! - otherwise (the install was just made, the gate still runs): wait.
//!
//! [`QuoteJudge`] is the coordinator's check of a report: [`verify_evidence`] against the CA key
//! the operator pinned for the hub and the release's PCR 11, for the nonce it issued.

use std::sync::Arc;

use appliance::state::StateDir;

use super::coordinator::{EvidenceJudge, ExpectedEvidence};
use super::evidence::{
    EvidenceRequest, HealthEvidence, HubCaKey, gather_evidence, verify_evidence,
};
use super::messages::{Instruction, Report};
use super::{AgentStep, GateOutcome, HubAgent, RolloutDesk, RolloutPlan};
use crate::booted::Booted;
use crate::controller::Controller;
use crate::gate_run::GateRecord;
use crate::health_gate::Verdict;
use crate::update_metrics::UpdateMetrics;
use crate::update_state::UpdateStateStore;

/// The coordinator's judge: the evidence verifies against the hub's pinned key and the release.
pub struct QuoteJudge;

impl EvidenceJudge for QuoteJudge {
    fn judge(&self, expected: &ExpectedEvidence<'_>, report: &Report) -> Result<(), String> {
        let evidence = report
            .evidence
            .as_ref()
            .ok_or("the report carries no evidence")?;
        let bytes = serde_json::to_vec(evidence).map_err(|e| e.to_string())?;
        let evidence = HealthEvidence::from_json(&bytes).map_err(|e| e.to_string())?;
        if evidence.hub != expected.hub.id || evidence.plan != report.plan_id {
            return Err(format!(
                "the evidence is signed for hub {:?} in plan {:?}, not {} in {}",
                evidence.hub, evidence.plan, expected.hub.id, report.plan_id
            ));
        }
        let key = HubCaKey::from_sec1_hex(&expected.hub.ca_key)
            .map_err(|e| format!("the CA key pinned for {}: {e}", expected.hub.id))?;
        let nonce = hex::decode(expected.nonce).map_err(|e| e.to_string())?;
        verify_evidence(&evidence, &key, expected.pcr11_hex, &nonce).map_err(|e| e.to_string())
    }
}

/// The rollout duties of one appliance: the desk when it coordinates (its exchange is a
/// directory here), the agent always.
pub struct HubDuties {
    pub desk: Option<Arc<RolloutDesk>>,
    pub agent: HubAgent,
    pub hub: String,
    pub state: StateDir,
    pub store: UpdateStateStore,
    pub metrics: UpdateMetrics,
}

impl HubDuties {
    /// One tick: the desk moves the rollout it coordinates, the agent acts or answers.
    pub async fn tick(&self, controller: &Arc<Controller>, now: u64) {
        let mut ok = true;
        if let Some(desk) = &self.desk
            && let Err(error) = desk.tick(now)
        {
            tracing::warn!(%error, "the rollout desk could not move");
            ok = false;
        }
        if let Err(error) = self.agent_turn(controller, now).await {
            tracing::warn!(%error, "the rollout agent could not act");
            ok = false;
        }
        self.metrics.rollout_turn(ok, now);
    }

    async fn agent_turn(&self, controller: &Arc<Controller>, now: u64) -> anyhow::Result<()> {
        let step = self
            .agent
            .poll(now, async |instruction: &Instruction| {
                controller
                    .install(&instruction.source, true)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.sentence())
            })
            .await?;
        let AgentStep::AwaitingGate(instruction) = step else {
            return Ok(());
        };
        let booted = controller.booted();
        let version = booted.image.version.to_string();
        // The release is still being fetched and written: nothing is known yet.
        if controller.view().activity == "installing" {
            return Ok(());
        }
        let Some(gate) = self.gate_outcome(&instruction, booted)? else {
            return Ok(());
        };
        let verdict = self.verdict_of_this_boot()?;
        let wave = self.wave_number(&instruction).await?;
        let connection = appliance::dbus::system_bus().await?;
        self.agent
            .report_after_gate(&version, gate, now, async |instruction: &Instruction| {
                let Some((verdict, signature)) = verdict.and_then(|verdict| match &verdict {
                    Verdict::Healthy { signature, .. } => {
                        Some((verdict.clone(), signature.clone()))
                    }
                    Verdict::Unhealthy { .. } => None,
                }) else {
                    return Err("the health gate left no signed verdict for this boot".to_owned());
                };
                let nonce = hex::decode(&instruction.nonce).map_err(|e| e.to_string())?;
                let request = EvidenceRequest {
                    hub: &self.hub,
                    plan: &instruction.plan_id,
                    wave,
                    nonce: &nonce,
                };
                let evidence = gather_evidence(&connection, request, verdict, signature, booted)
                    .await
                    .map_err(|e| e.to_string())?;
                serde_json::to_value(&evidence).map_err(|e| e.to_string())
            })
            .await?;
        Ok(())
    }

    /// The instruction's wave as its position in the published plan (1 for the canary), which
    /// the evidence signs; 0 when the plan is gone or does not name the wave. A plan that cannot
    /// be fetched (the coordinator out of reach) is an error: the answer waits for the next turn
    /// rather than signing a wrong wave.
    async fn wave_number(&self, instruction: &Instruction) -> anyhow::Result<u32> {
        let text = self.agent.exchange().plan(&instruction.plan_id).await?;
        Ok(text
            .and_then(|text| RolloutPlan::parse(&text).ok())
            .and_then(|plan| plan.waves.iter().position(|w| w.name == instruction.wave))
            .map_or(0, |index| u32::try_from(index + 1).unwrap_or(u32::MAX)))
    }

    /// The gate's outcome for the pending instruction, or `None` while it is not known yet.
    fn gate_outcome(
        &self,
        instruction: &Instruction,
        booted: &Booted,
    ) -> anyhow::Result<Option<GateOutcome>> {
        let runs_release = booted.image.version.to_string() == instruction.release_version;
        if runs_release {
            return Ok(self.verdict_of_this_boot()?.map(|verdict| {
                if verdict.is_healthy() {
                    GateOutcome::Healthy
                } else {
                    GateOutcome::Failed(verdict.summary())
                }
            }));
        }
        if crate::daemon::installed_this_boot(&self.state) {
            return Ok(None);
        }
        let reason = self
            .store
            .load()?
            .last
            .map_or_else(|| "the new slot did not run".to_owned(), |last| last.reason);
        Ok(Some(GateOutcome::Failed(reason)))
    }

    /// The health gate's verdict if it was given in this boot.
    fn verdict_of_this_boot(&self) -> anyhow::Result<Option<Verdict>> {
        Ok(GateRecord::of_this_boot(&self.state)?.map(|record| record.verdict))
    }
}
