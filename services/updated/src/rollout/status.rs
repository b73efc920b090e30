//! The rollout as the operator reads it (`Update1.RolloutStatus`, `bunkerctl update rollout
//! status`): the plan, whether it moves and why not, each wave and each hub, the history.

use serde_json::{Value as Json, json};

use super::coordinator::{Control, HubState, Rollout};

impl Rollout {
    /// The status document: plan, control and why, each wave and each hub, the history.
    pub fn status_json(&self) -> Json {
        let waves: Vec<Json> = self
            .plan
            .waves
            .iter()
            .enumerate()
            .map(|(i, wave)| self.wave_json(i, &wave.name, &wave.hubs))
            .collect();
        let (reason, since) = match &self.control {
            Control::Running => (None, None),
            Control::Paused { reason, since }
            | Control::Halted { reason, since }
            | Control::Aborted { reason, since } => (Some(reason.as_str()), Some(*since)),
            Control::Completed { since } => (None, Some(*since)),
        };
        json!({
            "plan": {
                "id": self.plan.id,
                "release_version": self.plan.release_version,
                "expected_pcr11": self.plan.expected_pcr11,
                "source": self.plan.source,
                "soak_secs": self.plan.soak_secs.secs(),
                "wave_timeout_secs": self.plan.wave_timeout_secs.secs(),
            },
            "state": self.control.word(),
            "reason": reason,
            "since": since,
            "started_at": self.started_at,
            "current_wave": self.plan.waves.get(self.wave).map(|w| w.name.as_str()),
            "wave_deadline": self.wave_clock.filter(|_| self.wave_healthy_at.is_none())
                .map(|at| at + self.plan.wave_timeout_secs.secs()),
            "next_wave_at": self.wave_healthy_at.map(|at| at + self.plan.soak_secs.secs()),
            "waves": waves,
            "events": self.events,
        })
    }

    fn wave_json(&self, index: usize, name: &str, hubs: &[String]) -> Json {
        let state = match index.cmp(&self.wave) {
            std::cmp::Ordering::Less => "done",
            std::cmp::Ordering::Equal if matches!(self.control, Control::Completed { .. }) => {
                "done"
            }
            std::cmp::Ordering::Equal => "current",
            std::cmp::Ordering::Greater => "waiting",
        };
        let hubs: Vec<Json> = hubs
            .iter()
            .map(|id| {
                let p = &self.hubs[id.as_str()];
                let reason = match &p.state {
                    HubState::Failed { reason } => Some(reason.as_str()),
                    _ => None,
                };
                json!({"id": id, "state": p.state.word(), "reason": reason,
                       "attempt": p.attempt, "since": p.since})
            })
            .collect();
        json!({"name": name, "state": state, "hubs": hubs})
    }
}
