//! The rollout as a state machine: which hubs are told to install, which answered, and whether
//! the next wave may start. No I/O and no clock: time comes in as Unix seconds, reports come in
//! as parsed documents, and the judgement of their evidence is a parameter ([`EvidenceJudge`]),
//! so every rule here is tested without a network, a TPM or a disk.
//!
//! Rules:
//! - a wave's hubs are instructed together, each with its own nonce;
//! - the next wave starts only when every hub of the current wave has a healthy report whose
//!   evidence the judge accepts, and the plan's soak time has passed since the last of them;
//! - any failed report, refused evidence or wave timeout halts the rollout, with the reason;
//! - pause stops new instructions; resume continues a pause, or a halt when the operator gives
//!   an override reason: the failed hubs are then instructed again with fresh nonces;
//! - abort ends the rollout for good.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::messages::{Instruction, Report, ReportOutcome};
use super::plan::{HubSpec, RolloutPlan};

/// Events kept for the status: enough for a rollout's story, bounded for the state file.
const MAX_EVENTS: usize = 200;

/// What a healthy report's evidence must show for one hub.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedEvidence<'a> {
    /// The hub, with the CA key the operator pinned for it.
    pub hub: &'a HubSpec,
    /// The release's PCR 11 (hex): the quote must show the hub booted exactly this image.
    pub pcr11_hex: &'a str,
    /// The nonce of the hub's current instruction (hex).
    pub nonce: &'a str,
}

/// Decides whether a healthy report's evidence is genuine (the integrator plugs in
/// `rollout::evidence::verify_evidence`); `Err` carries the sentence recorded as the halt reason.
pub trait EvidenceJudge {
    fn judge(&self, expected: &ExpectedEvidence<'_>, report: &Report) -> Result<(), String>;
}

/// Where one hub is in the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum HubState {
    Waiting,
    Instructed,
    ReportedHealthy,
    Failed { reason: String },
}

impl HubState {
    pub fn word(&self) -> &'static str {
        match self {
            HubState::Waiting => "waiting",
            HubState::Instructed => "instructed",
            HubState::ReportedHealthy => "reported-healthy",
            HubState::Failed { .. } => "failed",
        }
    }
}

/// One hub's progress: its state, and the instruction it was last given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubProgress {
    pub state: HubState,
    /// 0 until instructed; each new instruction counts up.
    pub attempt: u32,
    pub nonce: String,
    pub instructed_at: u64,
    /// When the state last changed.
    pub since: u64,
}

/// Whether the rollout moves, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "kebab-case")]
pub enum Control {
    Running,
    Paused { reason: String, since: u64 },
    Halted { reason: String, since: u64 },
    Aborted { reason: String, since: u64 },
    Completed { since: u64 },
}

impl Control {
    pub fn word(&self) -> &'static str {
        match self {
            Control::Running => "running",
            Control::Paused { .. } => "paused",
            Control::Halted { .. } => "halted",
            Control::Aborted { .. } => "aborted",
            Control::Completed { .. } => "completed",
        }
    }

    /// Aborted or completed: nothing will happen any more.
    pub fn is_finished(&self) -> bool {
        matches!(self, Control::Aborted { .. } | Control::Completed { .. })
    }
}

/// Something that happened, for the status's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub at: u64,
    pub what: String,
}

/// What became of one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Not for this rollout's current instruction of that hub (another plan, an old nonce, a
    /// hub not instructed or already failed), or nothing new: the state is unchanged.
    Ignored(String),
    Accepted,
    /// The hub failed (its report, a wrong version, or refused evidence): the rollout halted.
    Failed(String),
}

/// An operator command that does not apply to the rollout's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefused {
    #[error("the rollout is {0}: there is nothing to {1}")]
    NotApplicable(&'static str, &'static str),
    #[error(
        "the rollout was halted ({0}); resuming needs an override reason saying why it is safe"
    )]
    OverrideReasonRequired(String),
}

/// A rollout in progress: the plan and everything decided so far (persisted as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub plan: RolloutPlan,
    /// Secret per rollout (hex); nonces are derived from it, so they need no randomness here.
    seed: String,
    pub started_at: u64,
    /// Index of the current wave.
    pub wave: usize,
    /// When the current wave's timeout started (its instructions, or the last resume).
    pub wave_clock: Option<u64>,
    /// When the last hub of the current wave was accepted healthy (the soak starts).
    pub wave_healthy_at: Option<u64>,
    pub hubs: BTreeMap<String, HubProgress>,
    pub control: Control,
    pub events: Vec<Event>,
}

impl Rollout {
    /// A new rollout of a validated `plan`; `seed` is 32 random bytes from the caller.
    /// The first wave is instructed by the first [`Rollout::advance`].
    pub fn start(plan: RolloutPlan, seed: [u8; 32], now: u64) -> Rollout {
        let hubs = plan
            .hubs
            .iter()
            .map(|hub| {
                let progress = HubProgress {
                    state: HubState::Waiting,
                    attempt: 0,
                    nonce: String::new(),
                    instructed_at: 0,
                    since: now,
                };
                (hub.id.clone(), progress)
            })
            .collect();
        let mut rollout = Rollout {
            seed: hex::encode(seed),
            started_at: now,
            wave: 0,
            wave_clock: None,
            wave_healthy_at: None,
            hubs,
            control: Control::Running,
            events: Vec::new(),
            plan,
        };
        let what = format!(
            "rollout {} of BunkerOS {} started: {} waves, {} hubs",
            rollout.plan.id,
            rollout.plan.release_version,
            rollout.plan.waves.len(),
            rollout.plan.hubs.len()
        );
        rollout.note(now, what);
        rollout
    }

    /// Moves on as far as `now` allows: instructs the current wave, starts the next one after
    /// a healthy wave's soak, or halts a wave past its timeout. Returns the new instructions.
    pub fn advance(&mut self, now: u64) -> Vec<Instruction> {
        let mut issued = Vec::new();
        while self.control == Control::Running {
            if self.wave_clock.is_none() {
                issued.extend(self.instruct_wave(now));
                continue;
            }
            if let Some(healthy_at) = self.wave_healthy_at {
                if now < healthy_at.saturating_add(self.plan.soak_secs.secs()) {
                    break;
                }
                self.next_wave(now);
                continue;
            }
            self.check_timeout(now);
            break;
        }
        issued
    }

    /// Takes one hub's report into account (see [`Observation`]).
    pub fn observe(&mut self, report: &Report, judge: &dyn EvidenceJudge, now: u64) -> Observation {
        if let Some(why) = self.reason_to_ignore(report) {
            return Observation::Ignored(why);
        }
        let hub = report.hub.as_str();
        let state = &self.hubs[hub].state;
        let failure = match &report.outcome {
            ReportOutcome::Failed { reason } => Some(format!("the hub reported: {reason}")),
            ReportOutcome::Healthy if *state == HubState::ReportedHealthy => {
                return Observation::Ignored("already healthy".to_owned());
            }
            ReportOutcome::Healthy => self.refuse_healthy(report).err(),
        };
        let failure = failure.or_else(|| {
            let spec = self
                .plan
                .hub(hub)
                .expect("every tracked hub is in the plan");
            let expected = ExpectedEvidence {
                hub: spec,
                pcr11_hex: &self.plan.expected_pcr11,
                nonce: &self.hubs[hub].nonce,
            };
            judge
                .judge(&expected, report)
                .err()
                .map(|why| format!("its evidence was refused: {why}"))
        });
        match failure {
            Some(reason) => {
                self.fail_hub(hub, reason.clone(), now);
                Observation::Failed(reason)
            }
            None => {
                self.set_state(hub, HubState::ReportedHealthy, now);
                self.note(
                    now,
                    format!("hub {hub} reported healthy with accepted evidence"),
                );
                if self.current_wave_healthy() && self.wave_healthy_at.is_none() {
                    self.wave_healthy_at = Some(now);
                    let what = format!(
                        "wave {} is healthy; the next wave may start after {} s of soak",
                        self.plan.waves[self.wave].name,
                        self.plan.soak_secs.secs()
                    );
                    self.note(now, what);
                }
                Observation::Accepted
            }
        }
    }

    /// Stops new instructions until [`Rollout::resume`].
    pub fn pause(&mut self, reason: &str, now: u64) -> Result<(), ControlRefused> {
        if self.control != Control::Running {
            return Err(ControlRefused::NotApplicable(self.control.word(), "pause"));
        }
        self.control = Control::Paused {
            reason: reason.to_owned(),
            since: now,
        };
        self.note(now, format!("paused: {reason}"));
        Ok(())
    }

    /// Continues a paused rollout, or a halted one when `reason` says why (an override): the
    /// failed hubs are instructed again with fresh nonces. The wave's timeout starts again.
    /// Returns the instructions issued.
    pub fn resume(&mut self, reason: &str, now: u64) -> Result<Vec<Instruction>, ControlRefused> {
        let mut issued = Vec::new();
        match &self.control {
            Control::Paused { .. } => self.note(now, format!("resumed: {reason}")),
            Control::Halted { reason: halt, .. } if reason.trim().is_empty() => {
                return Err(ControlRefused::OverrideReasonRequired(halt.clone()));
            }
            Control::Halted { reason: halt, .. } => {
                let what = format!("resumed after the halt ({halt}) by override: {reason}");
                self.note(now, what);
                let failed: Vec<String> = self
                    .hubs
                    .iter()
                    .filter(|(_, p)| matches!(p.state, HubState::Failed { .. }))
                    .map(|(id, _)| id.clone())
                    .collect();
                for hub in failed {
                    issued.push(self.instruct(&hub, now));
                }
                self.wave_healthy_at = None;
            }
            other => return Err(ControlRefused::NotApplicable(other.word(), "resume")),
        }
        self.control = Control::Running;
        if self.wave_clock.is_some() {
            self.wave_clock = Some(now);
        }
        if self.current_wave_healthy() {
            self.wave_healthy_at.get_or_insert(now);
        }
        issued.extend(self.advance(now));
        Ok(issued)
    }

    /// Ends the rollout; hubs already installing finish on their own, no new ones start.
    pub fn abort(&mut self, reason: &str, now: u64) -> Result<(), ControlRefused> {
        if self.control.is_finished() {
            return Err(ControlRefused::NotApplicable(self.control.word(), "abort"));
        }
        self.control = Control::Aborted {
            reason: reason.to_owned(),
            since: now,
        };
        self.note(now, format!("aborted: {reason}"));
        Ok(())
    }

    /// Every instruction the hubs should currently see (those instructed so far, each with its
    /// latest nonce); empty once aborted. Publishing them again is harmless: agents act once
    /// per nonce.
    pub fn instructions(&self) -> Vec<Instruction> {
        if matches!(self.control, Control::Aborted { .. }) {
            return Vec::new();
        }
        self.plan
            .waves
            .iter()
            .flat_map(|wave| wave.hubs.iter().map(move |hub| (wave, hub)))
            .filter(|(_, hub)| self.hubs[hub.as_str()].attempt > 0)
            .map(|(wave, hub)| self.instruction(&wave.name, hub))
            .collect()
    }

    /// The hubs whose reports the coordinator waits for or watches (instructed, any state).
    pub fn watched_hubs(&self) -> Vec<&str> {
        self.hubs
            .iter()
            .filter(|(_, p)| p.attempt > 0)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    fn reason_to_ignore(&self, report: &Report) -> Option<String> {
        if self.control.is_finished() {
            return Some(format!("the rollout is {}", self.control.word()));
        }
        if report.plan_id != self.plan.id {
            return Some(format!("the report is for plan {:?}", report.plan_id));
        }
        let Some(progress) = self.hubs.get(&report.hub) else {
            return Some(format!("hub {:?} is not in the plan", report.hub));
        };
        match progress.state {
            HubState::Waiting => Some("the hub was not instructed yet".to_owned()),
            HubState::Failed { .. } => Some("the hub already failed".to_owned()),
            _ if report.nonce != progress.nonce => {
                Some("the report answers an older instruction (its nonce)".to_owned())
            }
            _ => None,
        }
    }

    /// A healthy report must come from the release it was told to boot.
    fn refuse_healthy(&self, report: &Report) -> Result<(), String> {
        if report.booted_version != self.plan.release_version {
            return Err(format!(
                "it reports healthy but runs BunkerOS {}, not the release {} (it fell back?)",
                report.booted_version, self.plan.release_version
            ));
        }
        if report.evidence.is_none() {
            return Err("it reports healthy without evidence".to_owned());
        }
        Ok(())
    }

    fn instruct_wave(&mut self, now: u64) -> Vec<Instruction> {
        let hubs = self.plan.waves[self.wave].hubs.clone();
        let issued = hubs.iter().map(|hub| self.instruct(hub, now)).collect();
        self.wave_clock = Some(now);
        let what = format!(
            "wave {} instructed: {}",
            self.plan.waves[self.wave].name,
            hubs.join(", ")
        );
        self.note(now, what);
        issued
    }

    fn instruct(&mut self, hub: &str, now: u64) -> Instruction {
        let attempt = self.hubs[hub].attempt + 1;
        let nonce = self.nonce(hub, attempt);
        let progress = self
            .hubs
            .get_mut(hub)
            .expect("instructed hubs are in the plan");
        progress.attempt = attempt;
        progress.nonce = nonce;
        progress.instructed_at = now;
        progress.state = HubState::Instructed;
        progress.since = now;
        let wave = self.wave_of(hub).to_owned();
        self.instruction(&wave, hub)
    }

    fn instruction(&self, wave: &str, hub: &str) -> Instruction {
        let progress = &self.hubs[hub];
        Instruction {
            plan_id: self.plan.id.clone(),
            hub: hub.to_owned(),
            wave: wave.to_owned(),
            release_version: self.plan.release_version.clone(),
            source: self.plan.source.clone(),
            nonce: progress.nonce.clone(),
            attempt: progress.attempt,
            issued_at: progress.instructed_at,
        }
    }

    fn wave_of(&self, hub: &str) -> &str {
        self.plan
            .waves
            .iter()
            .find(|w| w.hubs.iter().any(|h| h == hub))
            .map_or("", |w| w.name.as_str())
    }

    /// SHA-256 over the secret seed, the plan, the hub and the attempt: unpredictable to the
    /// hubs, different for every instruction, and the same after a restart.
    fn nonce(&self, hub: &str, attempt: u32) -> String {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        context.update(b"bunkeros rollout nonce\0");
        context.update(self.seed.as_bytes());
        for part in [self.plan.id.as_bytes(), hub.as_bytes()] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.update(&attempt.to_be_bytes());
        hex::encode(context.finish())
    }

    fn next_wave(&mut self, now: u64) {
        let done = self.plan.waves[self.wave].name.clone();
        if self.wave + 1 == self.plan.waves.len() {
            self.control = Control::Completed { since: now };
            self.note(now, format!("wave {done} soaked: the rollout is complete"));
            return;
        }
        self.wave += 1;
        self.wave_clock = None;
        self.wave_healthy_at = None;
        self.note(now, format!("wave {done} soaked"));
    }

    fn check_timeout(&mut self, now: u64) {
        let Some(clock) = self.wave_clock else { return };
        let timeout = self.plan.wave_timeout_secs.secs();
        if now < clock.saturating_add(timeout) {
            return;
        }
        let late: Vec<String> = self
            .hubs_so_far()
            .filter(|hub| self.hubs[*hub].state == HubState::Instructed)
            .map(str::to_owned)
            .collect();
        let wave = self.plan.waves[self.wave].name.clone();
        for hub in &late {
            let reason = format!("no healthy report within the wave timeout of {timeout} s");
            self.set_state(hub, HubState::Failed { reason }, now);
        }
        self.halt(
            format!(
                "wave {wave} timed out after {timeout} s: no healthy report from {}",
                late.join(", ")
            ),
            now,
        );
    }

    fn fail_hub(&mut self, hub: &str, reason: String, now: u64) {
        let wave = self.wave_of(hub).to_owned();
        self.set_state(
            hub,
            HubState::Failed {
                reason: reason.clone(),
            },
            now,
        );
        self.wave_healthy_at = None;
        self.halt(format!("hub {hub} in wave {wave} failed: {reason}"), now);
    }

    fn halt(&mut self, reason: String, now: u64) {
        self.note(now, format!("halted: {reason}"));
        self.control = Control::Halted { reason, since: now };
    }

    /// Every hub of the current wave and the waves before it (a hub of an earlier wave that
    /// was instructed again after a halt counts too) is healthy.
    fn current_wave_healthy(&self) -> bool {
        self.hubs_so_far()
            .all(|hub| self.hubs[hub].state == HubState::ReportedHealthy)
    }

    fn hubs_so_far(&self) -> impl Iterator<Item = &str> {
        self.plan.waves[..=self.wave]
            .iter()
            .flat_map(|wave| wave.hubs.iter().map(String::as_str))
    }

    fn set_state(&mut self, hub: &str, state: HubState, now: u64) {
        if let Some(progress) = self.hubs.get_mut(hub) {
            progress.state = state;
            progress.since = now;
        }
    }

    fn note(&mut self, at: u64, what: String) {
        tracing::info!(rollout = %self.plan.id, "{what}");
        self.events.push(Event { at, what });
        if self.events.len() > MAX_EVENTS {
            self.events.remove(0);
        }
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
