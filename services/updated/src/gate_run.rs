//! `updated health-gate`: the health gate of a newly booted slot, as
//! `updated-health-gate.service` runs it before `boot-complete.target`.
//!
//! On a boot whose UKI carries no boot counter (a blessed slot) there is nothing to judge and
//! it exits at once. Otherwise it runs [`HealthGate`], records the verdict (the update state's
//! last result: blessed, or fell back with every failed check's sentence; the whole verdict with
//! trustd's signature in `health-gate.json`, the evidence a rollout reports), then acts:
//! `systemd-bless-boot good`, or `bad` and an orderly reboot into the previous slot. Exit status
//! 0 only when healthy, so `boot-complete.target` (and systemd's own blessing) waits on it.

use std::path::Path;

use anyhow::{Context, Result};
use appliance::config::{root_from_env, rooted};
use appliance::state::StateDir;

use crate::boot_entries::{EntryState, Esp};
use crate::booted::Booted;
use crate::health_gate::{BlessError, Blessing, BootId, HealthGate, Verdict, bless};
use crate::settings::{SERVICE, UpdatedSetup};
use crate::update_state::UpdateStateStore;

/// The last verdict of the health gate, in updated's state directory.
pub const VERDICT_FILE: &str = "health-gate.json";

/// What `health-gate.json` holds: the verdict and the boot it was given in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateRecord {
    pub boot_id: String,
    pub verdict: Verdict,
}

impl GateRecord {
    /// The record in `state`, if the gate judged the current boot.
    pub fn of_this_boot(state: &StateDir) -> Result<Option<GateRecord>> {
        let Some(record) = state.read_json::<GateRecord>(VERDICT_FILE)? else {
            return Ok(None);
        };
        let boot = BootId::read()?;
        Ok((record.boot_id == boot.as_str()).then_some(record))
    }
}

/// Runs the gate; `Ok(true)` when the booted slot is healthy (or was not on trial).
pub async fn run(setup: UpdatedSetup) -> Result<bool> {
    let root = root_from_env();
    let root = root.as_deref();
    let config = setup.config;
    let booted = Booted::read(root.unwrap_or(Path::new("/")))
        .context("reading the running image and its slot")?;
    let esp = Esp::new(rooted(root, &config.install.esp));
    let entry = esp
        .entry(booted.slot)
        .context("reading the booted slot's boot entry")?;
    let on_trial = matches!(
        entry.as_ref().map(|e| e.state),
        Some(EntryState::Trying { .. })
    );
    if !on_trial {
        tracing::info!(slot = %booted.slot, "the booted slot is not on trial: nothing to judge");
        return Ok(true);
    }
    tracing::info!(
        slot = %booted.slot,
        version = %booted.image.version,
        timeout_s = config.health_gate.timeout.secs(),
        "the booted slot is on trial: judging its health"
    );
    let state = StateDir::from_env(SERVICE).context("opening updated's state directory")?;
    let connection = appliance::dbus::system_bus()
        .await
        .context("connecting to the system bus")?;
    let boot = BootId::read().context("reading this boot's id")?;
    let boot_id = boot.as_str().to_owned();
    let gate = HealthGate::new(connection, config.health_gate.clone(), boot);
    let verdict = gate.run().await;
    let healthy = verdict.is_healthy();
    let sentence = if healthy {
        format!(
            "slot {} ({}) passed its health gate, {}",
            booted.slot,
            booted.image.version,
            verdict.summary()
        )
    } else {
        format!(
            "slot {} ({}) failed its health gate and was marked bad; the appliance reboots into the previous slot. {}",
            booted.slot,
            booted.image.version,
            verdict.summary()
        )
    };
    let record = GateRecord {
        boot_id,
        verdict: verdict.clone(),
    };
    state
        .write_json(VERDICT_FILE, &record)
        .context("recording the health gate's verdict")?;
    // Recorded before acting: the reboot that follows a failed gate may end this process.
    let store = UpdateStateStore::new(state);
    let recorded = store
        .record_gate(&sentence, healthy)
        .context("recording the health gate's result")?
        .last;
    let acted = bless(&config.health_gate, &verdict).await;
    match &acted {
        Ok(blessing) => tracing::info!(?blessing, "{sentence}"),
        Err(error) => tracing::error!(%error, "{sentence}"),
    }
    if let Some(amendment) = what_acting_changed(&acted) {
        tracing::error!("{amendment}");
        if let Some(recorded) = &recorded {
            store
                .amend_last(recorded, &amendment)
                .context("recording what systemd-bless-boot or the reboot did")?;
        }
    }
    Ok(healthy)
}

/// What the recorded sentence must add when blessing, marking bad or rebooting failed; `None`
/// when everything happened as it says.
fn what_acting_changed(acted: &Result<Blessing, BlessError>) -> Option<String> {
    match acted {
        Ok(
            Blessing::Blessed
            | Blessing::RollingBack {
                mark_bad_failed: None,
            },
        ) => None,
        Ok(Blessing::RollingBack {
            mark_bad_failed: Some(failed),
        }) => Some(format!(
            "But marking it bad failed ({failed}): it falls back once its boot tries run out."
        )),
        Err(BlessError::Good(failed)) => Some(format!(
            "But blessing it failed ({failed}): it stays on trial, and each boot still counts down its tries."
        )),
        Err(BlessError::Reboot {
            mark_bad_failed,
            reboot,
        }) => Some(match mark_bad_failed {
            None => format!(
                "But the reboot could not be requested ({reboot}): it runs until rebooted, then the previous slot boots."
            ),
            Some(failed) => format!(
                "But neither marking it bad ({failed}) nor the reboot ({reboot}) succeeded: it runs until rebooted, and falls back once its boot tries run out."
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health_gate::CommandFailed;

    fn failed(command: &str) -> CommandFailed {
        CommandFailed {
            command: command.to_owned(),
            why: "exited with status 1: Couldn't find EFI system partition".to_owned(),
        }
    }

    #[test]
    fn the_record_says_when_blessing_marking_bad_or_rebooting_failed() {
        assert_eq!(what_acting_changed(&Ok(Blessing::Blessed)), None);
        let rolled_back = Ok(Blessing::RollingBack {
            mark_bad_failed: None,
        });
        assert_eq!(what_acting_changed(&rolled_back), None);

        let not_marked = what_acting_changed(&Ok(Blessing::RollingBack {
            mark_bad_failed: Some(failed("systemd-bless-boot bad").to_string()),
        }))
        .unwrap();
        assert!(not_marked.contains("marking it bad failed"), "{not_marked}");
        assert!(not_marked.contains("Couldn't find EFI system partition"));
        assert!(not_marked.contains("once its boot tries run out"));

        let not_blessed =
            what_acting_changed(&Err(BlessError::Good(failed("systemd-bless-boot good")))).unwrap();
        assert!(not_blessed.contains("stays on trial"), "{not_blessed}");

        let stuck = what_acting_changed(&Err(BlessError::Reboot {
            mark_bad_failed: Some(failed("systemd-bless-boot bad")),
            reboot: failed("systemctl reboot --no-block"),
        }))
        .unwrap();
        assert!(stuck.contains("neither marking it bad"), "{stuck}");
        assert!(stuck.contains("systemctl reboot --no-block"));
    }
}
