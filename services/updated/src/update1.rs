//! `org.bunkeros.Update1` at `/org/bunkeros/Update1`: the object served on the system bus.
//!
//! The contract (what each member means, which errors exist) is
//! `appliance::dbus::contracts::Update1`; this is the server side, a thin layer over
//! [`Controller`]: properties read its view, methods check their arguments and delegate.

use std::sync::Arc;

use zbus::object_server::SignalEmitter;

use crate::controller::Controller;
use crate::rollout::{DeskError, RolloutDesk};

/// Longest `source` accepted: a path or URL, not a document.
const MAX_SOURCE_LEN: usize = 4096;
/// Longest reason accepted for a rollout command: a sentence, not a document.
const MAX_REASON_LEN: usize = 1024;

/// A refusal, as the D-Bus error updated answers with (names in `update_errors`).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.bunkeros.Update1.Error")]
pub enum UpdateError {
    /// A failure of zbus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    InvalidArgument(String),
    Busy(String),
    Refused(String),
    Unavailable(String),
}

impl UpdateError {
    /// The sentence for the operator.
    pub fn sentence(&self) -> String {
        match self {
            UpdateError::ZBus(error) => error.to_string(),
            UpdateError::InvalidArgument(s)
            | UpdateError::Busy(s)
            | UpdateError::Refused(s)
            | UpdateError::Unavailable(s) => s.clone(),
        }
    }
}

/// The object served at `/org/bunkeros/Update1`.
pub struct Update1 {
    controller: Arc<Controller>,
    /// The rollout this hub coordinates; `None` when no rollout exchange is configured.
    rollout: Option<Arc<RolloutDesk>>,
    /// The coordinating hub this hub follows instead (`[rollout.coordinator]`), if any.
    follows: Option<String>,
}

impl Update1 {
    pub fn new(controller: Arc<Controller>) -> Update1 {
        Update1 {
            controller,
            rollout: None,
            follows: None,
        }
    }

    /// Serves the `Rollout*` methods from `desk`.
    pub fn with_rollout(mut self, desk: Arc<RolloutDesk>) -> Update1 {
        self.rollout = Some(desk);
        self
    }

    /// Says, for the `Rollout*` methods, that this hub follows `coordinator`'s rollouts.
    pub fn following(mut self, coordinator: impl Into<String>) -> Update1 {
        self.follows = Some(coordinator.into());
        self
    }

    /// This appliance's part in rollouts, for the status: it coordinates them, follows a
    /// coordinator, or neither (`null`).
    fn rollout_role(&self) -> serde_json::Value {
        match (&self.rollout, &self.follows) {
            (Some(_), _) => serde_json::json!({"role": "coordinator"}),
            (None, Some(coordinator)) => {
                serde_json::json!({"role": "follower", "coordinator": coordinator})
            }
            (None, None) => serde_json::Value::Null,
        }
    }

    fn desk(&self) -> Result<&RolloutDesk, UpdateError> {
        self.rollout.as_deref().ok_or_else(|| {
            UpdateError::Unavailable(match &self.follows {
                Some(coordinator) => format!(
                    "this hub follows the rollouts of {coordinator}: start and steer them there"
                ),
                None => "this appliance coordinates no rollouts: no rollout exchange is configured"
                    .to_owned(),
            })
        })
    }
}

impl From<DeskError> for UpdateError {
    fn from(error: DeskError) -> UpdateError {
        match error {
            DeskError::Plan(_) => UpdateError::InvalidArgument(error.to_string()),
            DeskError::Busy(..) => UpdateError::Busy(error.to_string()),
            DeskError::NoRollout | DeskError::Control(_) => UpdateError::Refused(error.to_string()),
            DeskError::Exchange(_) | DeskError::State(_) | DeskError::Randomness => {
                UpdateError::Unavailable(error.to_string())
            }
        }
    }
}

fn checked_reason(reason: &str) -> Result<&str, UpdateError> {
    if reason.len() > MAX_REASON_LEN || reason.chars().any(char::is_control) {
        return Err(UpdateError::InvalidArgument(format!(
            "a reason is a sentence of at most {MAX_REASON_LEN} printable characters"
        )));
    }
    Ok(reason.trim())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn checked_source(source: &str) -> Result<&str, UpdateError> {
    if source.len() > MAX_SOURCE_LEN || source.chars().any(char::is_control) {
        return Err(UpdateError::InvalidArgument(format!(
            "a source is a path or URL of at most {MAX_SOURCE_LEN} printable characters"
        )));
    }
    Ok(source)
}

#[zbus::interface(name = "org.bunkeros.Update1")]
impl Update1 {
    #[zbus(property)]
    fn booted_slot(&self) -> String {
        self.controller.booted().slot.name().to_owned()
    }

    #[zbus(property)]
    fn booted_version(&self) -> String {
        self.controller.booted().image.version.to_string()
    }

    #[zbus(property)]
    fn next_slot(&self) -> String {
        self.controller
            .view()
            .next
            .map_or_else(String::new, |next| next.slot.name().to_owned())
    }

    #[zbus(property)]
    fn next_version(&self) -> String {
        self.controller
            .view()
            .next
            .and_then(|next| next.version)
            .map_or_else(String::new, |v| v.to_string())
    }

    #[zbus(property)]
    fn activity(&self) -> String {
        self.controller.view().activity.to_owned()
    }

    #[zbus(property)]
    fn last_result(&self) -> String {
        self.controller.last_result()
    }

    fn status(&self) -> String {
        self.controller.status_document(self.rollout_role())
    }

    async fn check(&self, source: String) -> Result<String, UpdateError> {
        self.controller.check(checked_source(&source)?).await
    }

    async fn install(&self, source: String, reboot: bool) -> Result<String, UpdateError> {
        self.controller
            .install(checked_source(&source)?, reboot)
            .await
    }

    fn rollout_start(&self, plan_toml: String) -> Result<String, UpdateError> {
        let desk = self.desk()?;
        let seed = RolloutDesk::fresh_seed()?;
        Ok(desk.start(&plan_toml, seed, unix_now())?.to_string())
    }

    fn rollout_status(&self) -> Result<String, UpdateError> {
        Ok(self.desk()?.status().to_string())
    }

    fn rollout_pause(&self, reason: String) -> Result<String, UpdateError> {
        let reason = match checked_reason(&reason)? {
            "" => "paused by the operator",
            reason => reason,
        };
        Ok(self.desk()?.pause(reason, unix_now())?.to_string())
    }

    fn rollout_resume(&self, reason: String) -> Result<String, UpdateError> {
        let reason = checked_reason(&reason)?;
        Ok(self.desk()?.resume(reason, unix_now())?.to_string())
    }

    fn rollout_abort(&self, reason: String) -> Result<String, UpdateError> {
        let reason = match checked_reason(&reason)? {
            "" => "aborted by the operator",
            reason => reason,
        };
        Ok(self.desk()?.abort(reason, unix_now())?.to_string())
    }

    #[zbus(signal)]
    pub async fn progress(
        emitter: &SignalEmitter<'_>,
        phase: &str,
        done: u64,
        total: u64,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub async fn install_finished(
        emitter: &SignalEmitter<'_>,
        installed: bool,
        result: &str,
    ) -> zbus::Result<()>;
}
