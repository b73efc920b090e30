//! What updated has done and what became of it, kept in its state directory.
//!
//! One JSON file, `update-state.json`, written atomically through `appliance::state::StateDir`:
//! the pending install (a slot written and waiting for its first boot and the health gate), the
//! last result with a sentence saying why, and a bounded history of results. After every boot
//! [`UpdateStateStore::reconcile_after_boot`] compares the pending install with the slot that
//! booted and the boot-counting state of its entry, and records what happened. A malformed file
//! is an error that changes nothing: it is never silently replaced.

use std::time::{SystemTime, UNIX_EPOCH};

use appliance::state::{StateDir, StateError};
use serde::{Deserialize, Serialize};

use crate::ImageVersion;
use crate::boot_entries::{BootEntry, EntryState};
use crate::disk_layout::Slot;
use crate::install::Installed;

/// The state file in updated's state directory.
pub const STATE_FILE: &str = "update-state.json";
/// Results kept in the history, newest last.
pub const HISTORY_LIMIT: usize = 32;

/// A release written into a slot and made the next boot, not yet blessed or fallen back from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingInstall {
    #[serde(with = "version_text")]
    pub version: ImageVersion,
    pub slot: Slot,
    pub roothash: String,
    /// When the install finished, seconds since the Unix epoch.
    pub installed_at: u64,
}

/// What became of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Written and made the next boot.
    Installed,
    /// Not genuine, not newer, or otherwise not acceptable; nothing was written.
    Refused,
    /// Writing or checking failed; the inactive slot was left without a boot entry.
    Failed,
    /// The new slot booted and passed the health gate.
    Blessed,
    /// The new slot failed its gate or its boots, and the appliance runs the previous slot.
    FellBack,
}

/// One recorded result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateResult {
    pub outcome: Outcome,
    /// The release's image version, when known.
    #[serde(with = "optional_version_text")]
    pub version: Option<ImageVersion>,
    pub slot: Option<Slot>,
    /// A sentence saying what happened and why.
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// The whole recorded state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateState {
    pub pending: Option<PendingInstall>,
    pub last: Option<UpdateResult>,
    pub history: Vec<UpdateResult>,
}

/// The system as it booted (`/run/bunkeros/slot/{name,roothash}`, the running image's version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootedSystem {
    pub slot: Slot,
    pub roothash: String,
    pub version: ImageVersion,
}

/// What [`UpdateStateStore::reconcile_after_boot`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootVerdict {
    /// No install was pending.
    NothingPending,
    /// The new slot booted and is being tried: the health gate decides.
    AwaitingGate { slot: Slot, version: ImageVersion },
    /// The new slot booted, was marked bad, and this boot runs on until the reboot falls back.
    MarkedBad { reason: String },
    /// The new slot was blessed (recorded now).
    Blessed { slot: Slot, version: ImageVersion },
    /// The appliance runs the previous slot (recorded now).
    FellBack { reason: String },
}

/// Why the state could not be read or written. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateStateError {
    #[error("the update state could not be read or written: {0}")]
    Store(#[from] StateError),
    #[error("the update state file {path} is malformed and was left as it is: {detail}")]
    Malformed {
        path: std::path::PathBuf,
        detail: String,
    },
}

/// updated's recorded state, in its state directory.
#[derive(Debug, Clone)]
pub struct UpdateStateStore {
    dir: StateDir,
}

impl UpdateStateStore {
    pub fn new(dir: StateDir) -> UpdateStateStore {
        UpdateStateStore { dir }
    }

    /// The recorded state; empty if nothing was ever recorded.
    pub fn load(&self) -> Result<UpdateState, UpdateStateError> {
        match self.dir.read_json::<UpdateState>(STATE_FILE) {
            Ok(state) => {
                let state = state.unwrap_or_default();
                if let Some(pending) = &state.pending
                    && !crate::is_roothash(&pending.roothash)
                {
                    return Err(
                        self.malformed("the pending install's root hash is not 64 hex digits")
                    );
                }
                Ok(state)
            }
            Err(StateError::Decode { path, source }) => Err(UpdateStateError::Malformed {
                path,
                detail: source.to_string(),
            }),
            Err(other) => Err(other.into()),
        }
    }

    fn malformed(&self, detail: &str) -> UpdateStateError {
        UpdateStateError::Malformed {
            path: self.dir.path().join(STATE_FILE),
            detail: detail.to_owned(),
        }
    }

    /// Loads, changes and writes back the state; a load error writes nothing.
    fn change(&self, edit: impl FnOnce(&mut UpdateState)) -> Result<UpdateState, UpdateStateError> {
        let mut state = self.load()?;
        edit(&mut state);
        self.dir.write_json(STATE_FILE, &state)?;
        Ok(state)
    }

    /// Records a finished install: it is now pending its first boot.
    pub fn record_installed(&self, installed: &Installed) -> Result<UpdateState, UpdateStateError> {
        let now = now();
        let version = installed.facts.image_version;
        let slot = installed.slot;
        self.change(|state| {
            state.pending = Some(PendingInstall {
                version,
                slot,
                roothash: installed.facts.roothash.clone(),
                installed_at: now,
            });
            push(
                state,
                UpdateResult {
                    outcome: Outcome::Installed,
                    version: Some(version),
                    slot: Some(slot),
                    reason: format!(
                        "{version} was written to slot {slot} and is the next boot ({})",
                        installed.entry.file_name
                    ),
                    at: now,
                },
            );
        })
    }

    /// Records a release that was refused (nothing written) or an install that failed (the
    /// inactive slot left without a boot entry). A failure clears a pending install: the slot it
    /// waited in is the inactive one, whose entry the failed install removed.
    pub fn record_not_installed(
        &self,
        outcome: Outcome,
        version: Option<ImageVersion>,
        slot: Option<Slot>,
        reason: &str,
    ) -> Result<UpdateState, UpdateStateError> {
        let at = now();
        self.change(|state| {
            if outcome == Outcome::Failed {
                state.pending = None;
            }
            push(
                state,
                UpdateResult {
                    outcome,
                    version,
                    slot,
                    reason: reason.to_owned(),
                    at,
                },
            );
        })
    }

    /// Records the health gate's verdict on the booted pending slot: healthy → blessed and no
    /// longer pending; unhealthy → fell back (the gate marks the entry bad and reboots; the
    /// reason is the gate's sentence).
    pub fn record_gate(
        &self,
        verdict: &str,
        healthy: bool,
    ) -> Result<UpdateState, UpdateStateError> {
        let at = now();
        self.change(|state| {
            let pending = state.pending.take();
            push(
                state,
                UpdateResult {
                    outcome: if healthy {
                        Outcome::Blessed
                    } else {
                        Outcome::FellBack
                    },
                    version: pending.as_ref().map(|p| p.version),
                    slot: pending.as_ref().map(|p| p.slot),
                    reason: verdict.to_owned(),
                    at,
                },
            );
        })
    }

    /// Adds `what_happened` to the reason of `recorded` (and its copy in the history), if it is
    /// still the last result: what acting on a recorded verdict then did differently
    /// (systemd-bless-boot or the reboot failed), so the record stays exact without counting the
    /// result twice, and never lands on a result recorded meanwhile by someone else.
    pub fn amend_last(
        &self,
        recorded: &UpdateResult,
        what_happened: &str,
    ) -> Result<UpdateState, UpdateStateError> {
        self.change(|state| {
            if state.last.as_ref() != Some(recorded) {
                tracing::warn!(
                    "another result was recorded meanwhile; not amending it: {what_happened}"
                );
                return;
            }
            let amended = format!("{} {what_happened}", recorded.reason);
            if let Some(entry) = state.history.last_mut().filter(|entry| *entry == recorded) {
                entry.reason.clone_from(&amended);
            }
            if let Some(last) = &mut state.last {
                last.reason = amended;
            }
        })
    }

    /// Says what became of the pending install now that the appliance booted `booted`, whose
    /// ESP holds `entries`, and records a blessing or a fallback.
    pub fn reconcile_after_boot(
        &self,
        booted: &BootedSystem,
        entries: &[BootEntry],
    ) -> Result<BootVerdict, UpdateStateError> {
        let state = self.load()?;
        let Some(pending) = state.pending else {
            return Ok(BootVerdict::NothingPending);
        };
        let entry = entries.iter().find(|e| e.slot == pending.slot);
        let new = format!("slot {} ({})", pending.slot, pending.version);
        let running = format!(
            "the appliance runs slot {} ({})",
            booted.slot, booted.version
        );
        let runs_pending = booted.slot == pending.slot && booted.roothash == pending.roothash;
        if runs_pending {
            match entry.map(|e| e.state) {
                Some(EntryState::Blessed) => {
                    self.finish(
                        &pending,
                        Outcome::Blessed,
                        format!("{new} booted and was blessed"),
                    )?;
                    return Ok(BootVerdict::Blessed {
                        slot: pending.slot,
                        version: pending.version,
                    });
                }
                Some(EntryState::Trying { .. }) => {
                    return Ok(BootVerdict::AwaitingGate {
                        slot: pending.slot,
                        version: pending.version,
                    });
                }
                Some(EntryState::Bad { done }) => {
                    return Ok(BootVerdict::MarkedBad {
                        reason: format!(
                            "{new} was marked bad after {}; the next boot falls back",
                            attempts(done)
                        ),
                    });
                }
                None => {}
            }
        }
        let reason = match entry.map(|e| e.state) {
            _ if booted.slot == pending.slot => format!(
                "{new} does not run the installed image (root hash {}); {running}",
                booted.roothash
            ),
            Some(EntryState::Bad { done }) => {
                format!("{new} was marked bad after {}; {running}", attempts(done))
            }
            Some(EntryState::Trying { done, .. }) => format!(
                "{new} was not booted although it had tries left ({} so far); {running}",
                attempts(done)
            ),
            Some(EntryState::Blessed) => {
                format!("{new} was blessed but not booted; {running}")
            }
            None => format!("{new} lost its boot entry; {running}"),
        };
        self.finish(&pending, Outcome::FellBack, reason.clone())?;
        Ok(BootVerdict::FellBack { reason })
    }

    fn finish(
        &self,
        pending: &PendingInstall,
        outcome: Outcome,
        reason: String,
    ) -> Result<UpdateState, UpdateStateError> {
        let at = now();
        self.change(|state| {
            state.pending = None;
            push(
                state,
                UpdateResult {
                    outcome,
                    version: Some(pending.version),
                    slot: Some(pending.slot),
                    reason,
                    at,
                },
            );
        })
    }
}

fn attempts(done: u32) -> String {
    match done {
        1 => "1 boot attempt".to_owned(),
        n => format!("{n} boot attempts"),
    }
}

/// Makes `result` the last one and appends it to the bounded history.
fn push(state: &mut UpdateState, result: UpdateResult) {
    tracing::info!(outcome = ?result.outcome, reason = %result.reason, "update result recorded");
    state.history.push(result.clone());
    let excess = state.history.len().saturating_sub(HISTORY_LIMIT);
    state.history.drain(..excess);
    state.last = Some(result);
}

/// Seconds since the Unix epoch, as results record times.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An image version as its text (`0.1.1`) in the state file.
mod version_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ImageVersion;

    pub fn serialize<S: Serializer>(version: &ImageVersion, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(version)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ImageVersion, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an image version")))
    }
}

mod optional_version_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ImageVersion;

    pub fn serialize<S: Serializer>(
        version: &Option<ImageVersion>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match version {
            Some(version) => s.collect_str(version),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ImageVersion>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                text.parse().map_err(|_| {
                    serde::de::Error::custom(format!("{text:?} is not an image version"))
                })
            })
            .transpose()
    }
}
