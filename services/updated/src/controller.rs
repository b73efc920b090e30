//! What updated does for its callers: the slots' view, checking a release, and installing one in
//! the background while progress is published.
//!
//! One check or install runs at a time (a second is refused as busy, never queued: an operator
//! who typed it twice did not mean two installs). An install verifies the release while the
//! caller waits, so every refusal is the call's answer; the writing then goes on in a task
//! that publishes `Progress`, records the result in the update state, emits `InstallFinished`
//! and, when asked, reboots into the new slot.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use appliance::state::StateDir;
use serde_json::{Value as Json, json};
use zbus::object_server::InterfaceRef;

use crate::boot_entries::{EntryState, Esp};
use crate::booted::Booted;
use crate::disk_layout::Slot;
use crate::health_gate::request_reboot;
use crate::install::{InstallTarget, Progress, install_update};
use crate::settings::UpdatedConfig;
use crate::source::{ReleaseSource, SourceError};
use crate::update_metrics::UpdateMetrics;
use crate::update_state::{Outcome, UpdateResult, UpdateStateStore, now};
use crate::update1::{Update1, UpdateError};
use crate::{ImageVersion, UpdateRefused, VerifiedUpdate, verify_update_from};

/// Progress is published at most this often (and at every phase change), so a fast disk does
/// not flood the bus.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What the properties and the status document show.
#[derive(Debug, Clone)]
pub struct View {
    pub activity: &'static str,
    pub progress: Option<(String, u64, u64)>,
    pub slots: Vec<SlotView>,
    pub next: Option<SlotView>,
}

/// One slot as the ESP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub slot: Slot,
    pub version: Option<ImageVersion>,
    pub entry: EntryState,
    pub has_entry: bool,
}

impl SlotView {
    fn entry_word(&self) -> &'static str {
        match (self.has_entry, self.entry) {
            (false, _) => "none",
            (true, EntryState::Blessed) => "blessed",
            (true, EntryState::Trying { .. }) => "trying",
            (true, EntryState::Bad { .. }) => "bad",
        }
    }

    fn to_json(&self) -> Json {
        let mut slot = json!({
            "slot": self.slot.name(),
            "version": self.version.map(|v| v.to_string()),
            "entry": self.entry_word(),
        });
        if let (true, EntryState::Trying { left, done }) = (self.has_entry, self.entry) {
            slot["tries_left"] = json!(left);
            slot["tries_done"] = json!(done);
        }
        slot
    }
}

/// updated's state shared by the D-Bus object and the install task.
pub struct Controller {
    config: UpdatedConfig,
    booted: Booted,
    esp: Esp,
    disk: PathBuf,
    trusted_root: Vec<u8>,
    state_dir: PathBuf,
    store: UpdateStateStore,
    metrics: UpdateMetrics,
    view: Mutex<View>,
    /// Held by the running check or install.
    busy: Arc<tokio::sync::Mutex<()>>,
    iface: OnceLock<InterfaceRef<Update1>>,
}

/// Why a check or install was not started, as Update1 answers.
impl From<UpdateRefused> for UpdateError {
    fn from(refused: UpdateRefused) -> UpdateError {
        match refused {
            UpdateRefused::Unreadable { .. }
            | UpdateRefused::State { .. }
            | UpdateRefused::Source(_) => UpdateError::Unavailable(refused.to_string()),
            other => UpdateError::Refused(other.to_string()),
        }
    }
}

impl Controller {
    /// `trusted_root` is the image's TUF root.json; `disk` holds the slots.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: UpdatedConfig,
        booted: Booted,
        esp: Esp,
        disk: PathBuf,
        trusted_root: Vec<u8>,
        state_dir: PathBuf,
        store: UpdateStateStore,
        metrics: UpdateMetrics,
    ) -> Controller {
        metrics.set_booted(booted.slot.name(), &booted.image.version.to_string());
        let controller = Controller {
            config,
            booted,
            esp,
            disk,
            trusted_root,
            state_dir,
            store,
            metrics,
            view: Mutex::new(View {
                activity: "idle",
                progress: None,
                slots: Vec::new(),
                next: None,
            }),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            iface: OnceLock::new(),
        };
        controller.refresh_slots();
        controller
    }

    /// Once served: where signals and property changes go.
    pub fn attach(&self, iface: InterfaceRef<Update1>) {
        let _ = self.iface.set(iface);
    }

    pub fn booted(&self) -> &Booted {
        &self.booted
    }

    pub fn view(&self) -> View {
        self.view.lock().expect("update view").clone()
    }

    /// Reads the slots' entries and facts from the ESP again.
    pub fn refresh_slots(&self) {
        let slots: Vec<SlotView> = [Slot::A, Slot::B]
            .into_iter()
            .map(|slot| self.slot_view(slot))
            .collect();
        let next = next_boot(&slots);
        let versions: Vec<String> = slots
            .iter()
            .map(|s| s.version.map_or_else(String::new, |v| v.to_string()))
            .collect();
        self.metrics.set_slots(
            slots
                .iter()
                .zip(&versions)
                .map(|(s, version)| (s.slot.name(), version.as_str(), s.entry_word())),
        );
        let mut view = self.view.lock().expect("update view");
        view.slots = slots;
        view.next = next;
    }

    fn slot_view(&self, slot: Slot) -> SlotView {
        let entry = self.esp.entry(slot).unwrap_or_else(|error| {
            tracing::warn!(%error, %slot, "cannot read the slot's boot entry");
            None
        });
        let version = self
            .esp
            .slot_facts(slot)
            .ok()
            .flatten()
            .map(|(_, version)| version);
        SlotView {
            slot,
            version,
            entry: entry
                .as_ref()
                .map_or(EntryState::Bad { done: 0 }, |e| e.state),
            has_entry: entry.is_some(),
        }
    }

    /// The status document (Update1.Status), with the slots read from the ESP now (the health
    /// gate and systemd-bless-boot rename entries behind updated's back) and `rollout`, this
    /// appliance's part in rollouts.
    pub fn status_document(&self, rollout: Json) -> String {
        self.refresh_slots();
        let view = self.view();
        let state = self.store.load().ok().unwrap_or_default();
        json!({
            "booted": {
                "slot": self.booted.slot.name(),
                "version": self.booted.image.version.to_string(),
                "profile": self.booted.image.profile,
                "roothash": self.booted.roothash,
            },
            "next": view.next.as_ref().map(SlotView::to_json),
            "slots": view.slots.iter().map(SlotView::to_json).collect::<Vec<_>>(),
            "activity": view.activity,
            "progress": view.progress.as_ref().map(|(phase, done, total)| json!({
                "phase": phase, "done": done, "total": total,
            })),
            "pending": state.pending.as_ref().map(|p| serde_json::to_value(p).unwrap_or(Json::Null)),
            "last_result": state.last.as_ref().map(result_json),
            "history": state.history.iter().map(result_json).collect::<Vec<_>>(),
            "rollout": rollout,
        })
        .to_string()
    }

    /// The last result as the `LastResult` property carries it.
    pub fn last_result(&self) -> String {
        self.store
            .load()
            .ok()
            .and_then(|state| state.last)
            .map_or_else(|| "{}".to_owned(), |last| result_json(&last).to_string())
    }

    /// Verifies the release at `source` (Update1.Check).
    pub async fn check(&self, source: &str) -> Result<String, UpdateError> {
        let source = self.source(source)?;
        let _busy = self.busy.clone().try_lock_owned().map_err(|_| busy())?;
        self.set_activity("checking").await;
        let verified = self.verify(&source).await;
        self.set_activity("idle").await;
        let answer = match verified {
            Ok(update) => {
                let mut answer = self.release_json(&update);
                answer["installable"] = json!(true);
                answer
            }
            Err(refused @ UpdateError::Refused(_)) => {
                json!({"installable": false, "reason": refused.sentence()})
            }
            Err(other) => return Err(other),
        };
        Ok(answer.to_string())
    }

    /// Verifies the release at `source` and starts writing it (Update1.Install).
    pub async fn install(
        self: &Arc<Self>,
        source: &str,
        reboot: bool,
    ) -> Result<String, UpdateError> {
        let source = self.source(source)?;
        let busy = self.busy.clone().try_lock_owned().map_err(|_| busy())?;
        self.set_activity("installing").await;
        self.metrics.clear_progress();
        let update = match self.verify(&source).await {
            Ok(update) => update,
            Err(error) => {
                if let UpdateError::Refused(reason) = &error {
                    self.record(None, Outcome::Refused, reason.clone()).await;
                }
                self.set_activity("idle").await;
                return Err(error);
            }
        };
        let answer = self.release_json(&update).to_string();
        let controller = Arc::clone(self);
        tokio::spawn(async move {
            controller.write(update, reboot).await;
            drop(busy);
        });
        Ok(answer)
    }

    async fn write(self: Arc<Self>, update: VerifiedUpdate, reboot: bool) {
        let target = InstallTarget {
            disk: &self.disk,
            esp: &self.esp,
            booted: self.booted.slot,
            booted_roothash: &self.booted.roothash,
            tries: u32::from(self.config.install.boot_tries),
        };
        let (progress_in, mut progress_out) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let publisher = {
            let controller = Arc::clone(&self);
            tokio::spawn(async move {
                while let Some(progress) = progress_out.recv().await {
                    controller.publish_progress(progress).await;
                }
            })
        };
        let mut last_sent: Option<(crate::install::Phase, Instant)> = None;
        // `move`: the closure owns the sender, so dropping it ends the publisher.
        let mut report = move |progress: Progress| {
            let due = match last_sent {
                Some((phase, at)) => {
                    phase != progress.phase
                        || at.elapsed() >= PROGRESS_EVERY
                        || progress.done >= progress.total
                }
                None => true,
            };
            if due {
                last_sent = Some((progress.phase, Instant::now()));
                let _ = progress_in.send(progress);
            }
        };
        let result = install_update(&update, &target, &mut report).await;
        drop(report);
        let _ = publisher.await;
        let version = Some(update.image_version());
        let (installed, result) = match result {
            Ok(installed) => {
                let recorded = self.store.record_installed(&installed);
                if let Ok(state) = StateDir::open(&self.state_dir) {
                    crate::daemon::mark_installed_this_boot(&state);
                }
                if let Err(error) = &recorded {
                    tracing::error!(%error, "cannot record the install");
                }
                let reason = format!(
                    "BunkerOS {} written to slot {}; it boots next with {} tries",
                    installed.facts.image_version, installed.slot, self.config.install.boot_tries
                );
                self.metrics
                    .record_result("installed", i64::try_from(now()).unwrap_or(i64::MAX));
                (true, self.store.load().ok().and_then(|s| s.last).map_or_else(
                    || json!({"kind": "installed", "version": version.map(|v| v.to_string()), "slot": installed.slot.name(), "reason": reason}),
                    |last| result_json(&last),
                ))
            }
            Err(error) => {
                tracing::warn!(%error, "install failed");
                let outcome = error.outcome();
                let result = self.record(version, outcome, error.to_string()).await;
                (false, result)
            }
        };
        self.refresh_slots();
        {
            let mut view = self.view.lock().expect("update view");
            view.progress = None;
        }
        self.set_activity("idle").await;
        if let Some(iface) = self.iface.get() {
            let emitter = iface.signal_emitter();
            if let Err(error) =
                Update1::install_finished(emitter, installed, &result.to_string()).await
            {
                tracing::warn!(%error, "cannot emit InstallFinished");
            }
            let update1 = iface.get().await;
            let _ = update1.last_result_changed(emitter).await;
            let _ = update1.next_slot_changed(emitter).await;
            let _ = update1.next_version_changed(emitter).await;
        }
        if installed && reboot {
            tracing::info!("rebooting into the new slot, as asked");
            if let Err(error) = request_reboot(&self.config.health_gate.systemctl).await {
                tracing::error!(%error, "cannot ask systemd to reboot");
            }
        }
    }

    async fn publish_progress(&self, progress: Progress) {
        let phase = progress.phase.name();
        self.metrics
            .set_progress(phase, progress.done, progress.total);
        {
            let mut view = self.view.lock().expect("update view");
            view.progress = Some((phase.to_owned(), progress.done, progress.total));
        }
        if let Some(iface) = self.iface.get()
            && let Err(error) =
                Update1::progress(iface.signal_emitter(), phase, progress.done, progress.total)
                    .await
        {
            tracing::warn!(%error, "cannot emit Progress");
        }
    }

    /// Records a result that was not an install and returns it as JSON.
    async fn record(
        &self,
        version: Option<ImageVersion>,
        outcome: Outcome,
        reason: String,
    ) -> Json {
        let slot = Some(self.booted.slot.other());
        if let Err(error) = self
            .store
            .record_not_installed(outcome, version, slot, &reason)
        {
            tracing::error!(%error, "cannot record the result");
        }
        let kind = outcome_word(outcome);
        self.metrics
            .record_result(kind, i64::try_from(now()).unwrap_or(i64::MAX));
        if let Some(iface) = self.iface.get() {
            let _ = iface
                .get()
                .await
                .last_result_changed(iface.signal_emitter())
                .await;
        }
        json!({
            "kind": kind,
            "version": version.map(|v| v.to_string()),
            "slot": slot.map(Slot::name),
            "reason": reason,
            "at": appliance::time_text::rfc3339(SystemTime::now()),
        })
    }

    fn source(&self, text: &str) -> Result<ReleaseSource, UpdateError> {
        let text = if text.trim().is_empty() {
            self.config.release.source.as_str()
        } else {
            text
        };
        let mirror = self.config.release.mirror_options();
        ReleaseSource::parse(text, &mirror).map_err(|e| match e {
            SourceError::Unrecognised(_)
            | SourceError::RelativePath(_)
            | SourceError::PlainHttp(_)
            | SourceError::BadMirrorUrl { .. } => UpdateError::InvalidArgument(e.to_string()),
            other => UpdateError::Unavailable(other.to_string()),
        })
    }

    async fn verify(&self, source: &ReleaseSource) -> Result<VerifiedUpdate, UpdateError> {
        verify_update_from(
            source,
            &self.trusted_root,
            &self.state_dir,
            &self.booted.image,
        )
        .await
        .map_err(UpdateError::from)
    }

    fn release_json(&self, update: &VerifiedUpdate) -> Json {
        let facts = update.facts();
        json!({
            "version": facts.image_version.to_string(),
            "profile": facts.profile,
            "roothash": facts.roothash,
            "slot": self.booted.slot.other().name(),
            "metadata_version": update.versions().targets,
            "expires": update.expires().to_string(),
        })
    }

    async fn set_activity(&self, activity: &'static str) {
        {
            let mut view = self.view.lock().expect("update view");
            if view.activity == activity {
                return;
            }
            view.activity = activity;
        }
        self.metrics.set_activity(activity);
        if let Some(iface) = self.iface.get() {
            let _ = iface
                .get()
                .await
                .activity_changed(iface.signal_emitter())
                .await;
        }
    }
}

fn busy() -> UpdateError {
    UpdateError::Busy(
        "an update check or install is already running; wait for it to end".to_owned(),
    )
}

/// What systemd-boot starts next: the newest version among the entries with tries left (or
/// blessed); entries marked bad come last (systemd-boot 252's order with `default bunkeros-*`).
fn next_boot(slots: &[SlotView]) -> Option<SlotView> {
    slots
        .iter()
        .filter(|s| s.has_entry && !matches!(s.entry, EntryState::Bad { .. }))
        .max_by_key(|s| s.version)
        .or_else(|| slots.iter().find(|s| s.has_entry))
        .cloned()
}

pub fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Installed => "installed",
        Outcome::Refused => "refused",
        Outcome::Failed => "failed",
        Outcome::Blessed => "blessed",
        Outcome::FellBack => "fell-back",
    }
}

pub fn result_json(result: &UpdateResult) -> Json {
    json!({
        "kind": outcome_word(result.outcome),
        "version": result.version.map(|v| v.to_string()),
        "slot": result.slot.map(Slot::name),
        "reason": result.reason,
        "at": appliance::time_text::rfc3339(UNIX_EPOCH + Duration::from_secs(result.at)),
    })
}
