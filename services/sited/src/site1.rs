//! `org.bunkeros.Site1`: the site's state, budget and alarms for the other services and the
//! operators (the contract is [`appliance::dbus::contracts::Site1Proxy`]).
//!
//! Reads answer from what the daemon last published ([`SiteView`], the sensor table), never
//! waiting on a sensor. Actions (acknowledge, silence, other services' alarms) are checked
//! here (argument shapes, who is calling) and then handed to the daemon's loop as a
//! [`Command`], which applies them to the rule engine, records them in the event log and
//! answers; a refusal is a D-Bus error from `site_errors` whose message is a sentence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value as Json;
use tokio::sync::{mpsc, oneshot};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;

use crate::rules::{ExternalAlarm, Severity, SilenceMatch};
use crate::sensor_table::SensorTable;

/// The longest silence: 30 days.
pub const MAX_SILENCE: Duration = Duration::from_secs(30 * 86_400);
/// The longest note, comment, pattern or summary an operator or service may send, in
/// characters.
pub const MAX_TEXT: usize = 1024;
/// The largest `detail` another service may attach to its alarm, in bytes.
pub const MAX_DETAIL: usize = 8192;

/// A refusal, as the D-Bus error sited answers with (names in `site_errors`).
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.bunkeros.Site1.Error")]
pub enum SiteError {
    /// A failure of zbus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    InvalidArgument(String),
    NotFound(String),
    AccessDenied(String),
    Unavailable(String),
}

/// What the daemon last published: the properties and the documents.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteView {
    pub state: String,
    pub reason: String,
    pub power_budget_w: f64,
    pub thermal_headroom_c: f64,
    pub status: Json,
    pub alarms: Json,
    pub silences: Json,
}

/// What the daemon and the interface share.
pub struct Shared {
    pub view: Mutex<SiteView>,
    pub sensors: Mutex<SensorTable>,
}

/// An action for the daemon's loop, with where to answer.
pub enum Command {
    Acknowledge {
        alarm: String,
        note: String,
        by: String,
        reply: oneshot::Sender<Result<(), SiteError>>,
    },
    Silence {
        matcher: SilenceMatch,
        for_: Duration,
        comment: String,
        by: String,
        reply: oneshot::Sender<Result<u64, SiteError>>,
    },
    Unsilence {
        id: u64,
        by: String,
        reply: oneshot::Sender<Result<(), SiteError>>,
    },
    Raise {
        alarm: ExternalAlarm,
        reply: oneshot::Sender<Result<(), SiteError>>,
    },
    Clear {
        source: String,
        key: String,
        reply: oneshot::Sender<Result<(), SiteError>>,
    },
}

/// The object served at `/org/bunkeros/Site1`.
pub struct Site1 {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Command>,
}

impl Site1 {
    pub fn new(shared: Arc<Shared>, commands: mpsc::Sender<Command>) -> Site1 {
        Site1 { shared, commands }
    }

    fn view(&self) -> SiteView {
        self.shared.view.lock().expect("site view").clone()
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, SiteError>>) -> Command,
    ) -> Result<T, SiteError> {
        let (reply, answer) = oneshot::channel();
        let gone = || SiteError::Unavailable("sited is stopping".into());
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

#[zbus::interface(name = "org.bunkeros.Site1")]
impl Site1 {
    #[zbus(property)]
    fn state(&self) -> String {
        self.view().state
    }

    #[zbus(property)]
    fn state_reason(&self) -> String {
        self.view().reason
    }

    #[zbus(property)]
    fn power_budget_watts(&self) -> f64 {
        self.view().power_budget_w
    }

    #[zbus(property)]
    fn thermal_headroom_celsius(&self) -> f64 {
        self.view().thermal_headroom_c
    }

    fn status(&self) -> String {
        self.view().status.to_string()
    }

    fn sensors(&self) -> String {
        self.shared
            .sensors
            .lock()
            .expect("sensor table")
            .to_json()
            .to_string()
    }

    fn alarms(&self) -> String {
        self.view().alarms.to_string()
    }

    fn silences(&self) -> String {
        self.view().silences.to_string()
    }

    async fn acknowledge(
        &self,
        alarm: String,
        note: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), SiteError> {
        check_text("alarm", &alarm, false)?;
        check_text("note", &note, true)?;
        let by = operator(connection, &header).await?;
        self.ask(|reply| Command::Acknowledge {
            alarm,
            note,
            by,
            reply,
        })
        .await
    }

    async fn silence(
        &self,
        what: String,
        pattern: String,
        seconds: u64,
        comment: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<u64, SiteError> {
        check_text("pattern", &pattern, false)?;
        check_text("comment", &comment, true)?;
        let matcher = match what.as_str() {
            "alarm" => SilenceMatch::Alarm(pattern),
            "sensor" => SilenceMatch::Sensor(pattern),
            _ => {
                return Err(SiteError::InvalidArgument(format!(
                    "`{}` is not what a silence matches: `alarm` or `sensor`",
                    bounded(&what)
                )));
            }
        };
        let for_ = Duration::from_secs(seconds);
        if for_.is_zero() || for_ > MAX_SILENCE {
            return Err(SiteError::InvalidArgument(format!(
                "a silence lasts 1 s to 30 days, not {seconds} s"
            )));
        }
        let by = operator(connection, &header).await?;
        self.ask(|reply| Command::Silence {
            matcher,
            for_,
            comment,
            by,
            reply,
        })
        .await
    }

    async fn unsilence(
        &self,
        id: u64,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), SiteError> {
        let by = operator(connection, &header).await?;
        self.ask(|reply| Command::Unsilence { id, by, reply }).await
    }

    // The contract's five arguments, plus what zbus passes in.
    #[allow(clippy::too_many_arguments)]
    async fn raise_alarm(
        &self,
        source: String,
        key: String,
        severity: String,
        summary: String,
        detail: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), SiteError> {
        check_source(connection, &header, &source).await?;
        check_text("summary", &summary, false)?;
        let severity = match severity.as_str() {
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            _ => {
                return Err(SiteError::InvalidArgument(format!(
                    "`{}` is not a severity: info, warning or critical",
                    bounded(&severity)
                )));
            }
        };
        check_detail(&detail)?;
        let alarm = ExternalAlarm {
            source,
            key,
            severity,
            summary,
            detail,
        };
        self.ask(|reply| Command::Raise { alarm, reply }).await
    }

    async fn clear_alarm(
        &self,
        source: String,
        key: String,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &zbus::Connection,
    ) -> Result<(), SiteError> {
        check_source(connection, &header, &source).await?;
        self.ask(|reply| Command::Clear { source, key, reply })
            .await
    }

    /// `StateChanged(state s, reason s)`. Not called `state_changed`: zbus gives that name to
    /// the method that emits `PropertiesChanged` for `State`.
    #[zbus(signal, name = "StateChanged")]
    pub async fn announce_state(
        emitter: &SignalEmitter<'_>,
        state: &str,
        reason: &str,
    ) -> zbus::Result<()>;

    /// `BudgetChanged(power_budget_watts d, thermal_headroom_celsius d)`.
    #[zbus(signal, name = "BudgetChanged")]
    pub async fn announce_budget(
        emitter: &SignalEmitter<'_>,
        power_budget_watts: f64,
        thermal_headroom_celsius: f64,
    ) -> zbus::Result<()>;

    /// `AlarmChanged(alarm s, change s, severity s, summary s)`.
    #[zbus(signal, name = "AlarmChanged")]
    pub async fn announce_alarm(
        emitter: &SignalEmitter<'_>,
        alarm: &str,
        change: &str,
        severity: &str,
        summary: &str,
    ) -> zbus::Result<()>;
}

/// `operator:NAME` of the caller.
async fn operator(connection: &zbus::Connection, header: &Header<'_>) -> Result<String, SiteError> {
    appliance::dbus::caller::caller(connection, header)
        .await
        .map(|caller| caller.operator())
        .map_err(SiteError::Unavailable)
}

/// A service raises or clears alarms only under its own name (its Unix user); root may act for
/// any source.
async fn check_source(
    connection: &zbus::Connection,
    header: &Header<'_>,
    source: &str,
) -> Result<(), SiteError> {
    let caller = appliance::dbus::caller::caller(connection, header)
        .await
        .map_err(SiteError::Unavailable)?;
    if caller.uid == 0 || caller.name.as_deref() == Some(source) {
        Ok(())
    } else {
        Err(SiteError::AccessDenied(format!(
            "user {} may not raise or clear alarms for `{}`: a service raises its own",
            caller.user(),
            bounded(source)
        )))
    }
}

fn check_text(field: &str, text: &str, may_be_empty: bool) -> Result<(), SiteError> {
    let problem = if text.is_empty() && !may_be_empty {
        Some("is empty")
    } else if text.chars().count() > MAX_TEXT {
        Some("is longer than 1024 characters")
    } else if text.chars().any(char::is_control) {
        Some("holds control characters")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(SiteError::InvalidArgument(format!("the {field} {problem}"))),
        None => Ok(()),
    }
}

fn check_detail(detail: &str) -> Result<(), SiteError> {
    if detail.is_empty() {
        return Ok(());
    }
    if detail.len() > MAX_DETAIL {
        return Err(SiteError::InvalidArgument(
            "the detail is larger than 8 KiB".into(),
        ));
    }
    match serde_json::from_str::<Json>(detail) {
        Ok(Json::Object(_)) => Ok(()),
        _ => Err(SiteError::InvalidArgument(
            "the detail must be a JSON object (or empty)".into(),
        )),
    }
}

/// At most 64 characters of what a caller sent, for an error message.
fn bounded(text: &str) -> String {
    text.chars().take(64).collect()
}
