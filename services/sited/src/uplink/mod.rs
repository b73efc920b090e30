//! Store-and-forward of alarm notifications to the control centre's Alertmanager, so alarms
//! raised while the bunker's uplink is cut arrive, in order, when it returns, and none is lost
//! to a crash or a power cut.
//!
//! - [`Notification`]: one alarm transition for the control centre
//!   ([`Notification::from_transition`]), and the Alertmanager alerts it becomes
//!   ([`notification`] explains the labels);
//! - [`Outbox`]: the persistent queue ([`journal`]: a notification is on disk and synced before
//!   [`Outbox::enqueue`] returns) and the sender ([`Outbox::run`]) that delivers it in order, in
//!   batches, retrying with backoff, over HTTPS with mutual TLS ([`alertmanager`]) under the
//!   identity [`client_identity`] obtains (from trustd, or PEM files);
//! - [`UplinkSettings`]: the `[uplink]` section.
//!
//! Alertmanager forgets an alert nobody sent again within its `resolve_timeout`, and forgets
//! everything when it restarts. So besides the queue (the history: raised, escalated, cleared,
//! each at its own time), the outbox keeps the set of firing alarms ([`Outbox::set_active`],
//! and every notification it is given) and sends it again every `resend_every`, and at once
//! when the Alertmanager is reachable again after a failure. After a long outage the control
//! centre therefore gets the whole history in order, and then exactly the alarms still active.
//!
//! Delivery is at least once: a crash between Alertmanager's answer and the journal's delivery
//! mark sends that batch again after the restart, which Alertmanager absorbs (the same labels
//! and times make the same alerts). A batch Alertmanager refuses as invalid (400) is counted
//! and set aside rather than retried forever, so one bad alert cannot hold up the queue.

pub mod alertmanager;
pub mod client_identity;
pub mod journal;
pub mod notification;
pub mod settings;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use appliance::dbus::Bus;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use alertmanager::{AlertmanagerClient, DeliveryError};
pub use client_identity::{ClientIdentity, IdentityError};
pub use journal::JournalError;
pub use notification::{Alert, Notification};
pub use settings::{ClientIdentitySource, Endpoint, UplinkSettings};

use journal::{Admission, Journal};

/// What can go wrong opening, queueing or delivering.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("the [uplink] settings cannot work: {0}")]
    Settings(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error("cannot build the uplink's TLS configuration: {0}")]
    Tls(#[from] appliance::tls::TlsError),
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
}

/// What the outbox has done and holds, for the status line, Site1 and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStatus {
    /// Notifications waiting for delivery.
    pub queued: usize,
    /// Alarms sent again periodically as firing.
    pub firing: usize,
    /// Notifications delivered since start.
    pub delivered_total: u64,
    /// Notifications the queue limit dropped since start.
    pub dropped_total: u64,
    /// Notifications Alertmanager refused as invalid (400) since start: never retried.
    pub rejected_total: u64,
    /// When Alertmanager last accepted a request.
    pub last_delivery_at: Option<SystemTime>,
    /// Why the last attempt failed; `None` once one succeeds.
    pub last_error: Option<String>,
    /// Whether the last attempt reached Alertmanager.
    pub reachable: bool,
    /// Where the client certificate came from, once there is one.
    pub identity: Option<String>,
}

impl OutboxStatus {
    /// Alertmanager just accepted a request.
    fn accepted(&mut self) {
        self.reachable = true;
        self.last_error = None;
        self.last_delivery_at = Some(SystemTime::now());
    }
}

/// An alarm the control centre should see firing, and since when (this label set).
#[derive(Debug, Clone)]
struct Firing {
    last: Notification,
    starts_at: SystemTime,
}

struct State {
    journal: Journal,
    firing: BTreeMap<String, Firing>,
    /// The firing set gained alarms no notification announced: send it without waiting for
    /// the next `resend_every`.
    resend_soon: bool,
    status: OutboxStatus,
}

/// The persistent outbox: see the module docs.
pub struct Outbox {
    settings: UplinkSettings,
    endpoint: Endpoint,
    bus: Bus,
    state: Mutex<State>,
    wake: Notify,
}

/// The sender's connection state between rounds.
struct Sender {
    client: AlertmanagerClient,
    renew_at: Option<SystemTime>,
}

impl Outbox {
    /// Opens the outbox in `dir` (the state directory), replaying what was queued before a
    /// crash or stop; a trustd identity comes from the system bus.
    pub fn open(dir: &Path, settings: UplinkSettings) -> Result<Outbox, UplinkError> {
        Self::open_on_bus(dir, settings, Bus::System)
    }

    /// [`Outbox::open`] with trustd on `bus` (a test's private bus).
    pub fn open_on_bus(
        dir: &Path,
        settings: UplinkSettings,
        bus: Bus,
    ) -> Result<Outbox, UplinkError> {
        settings.validate().map_err(|problems| {
            UplinkError::Settings(
                problems
                    .iter()
                    .map(|p| format!("`{}` {}", p.key, p.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let endpoint = settings.endpoint().map_err(UplinkError::Settings)?;
        let (journal, recovery) = Journal::open(dir)?;
        if recovery.discarded_bytes > 0 {
            tracing::warn!(
                bytes = recovery.discarded_bytes,
                "uplink outbox: cut a torn record off the journal's end (written during a crash, \
                 never acknowledged)"
            );
        }
        let status = OutboxStatus {
            queued: journal.len(),
            ..OutboxStatus::default()
        };
        Ok(Outbox {
            settings,
            endpoint,
            bus,
            state: Mutex::new(State {
                journal,
                firing: BTreeMap::new(),
                resend_soon: false,
                status,
            }),
            wake: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data: every change is applied
        // after its journal write succeeded.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `n` for delivery: on disk and synced when this returns `Ok` (on an error
    /// nothing changed). Never waits for the network.
    ///
    /// Fields a transition does not carry are taken from the alarm's last notification: the
    /// severity and summary when empty, the escalation targets for `updated` and `released`.
    pub fn enqueue(&self, n: Notification) -> Result<(), UplinkError> {
        let limit = usize::try_from(self.settings.queue_limit.get()).unwrap_or(usize::MAX);
        let mut state = self.state();
        let prev = state.firing.get(&n.alarm).cloned();
        let n = completed(n, prev.as_ref());
        let (alerts, firing) = plan(&n, prev.as_ref());
        let admission = state.journal.append(&n.severity, alerts, limit)?;
        match firing {
            Some(firing) => state.firing.insert(n.alarm.clone(), firing),
            None => state.firing.remove(&n.alarm),
        };
        match &admission {
            Admission::Queued => {}
            Admission::QueuedDropping { severity } => {
                state.status.dropped_total += 1;
                tracing::warn!(
                    limit,
                    "uplink outbox full: dropped the oldest {severity} notification"
                );
            }
            Admission::Dropped => {
                state.status.dropped_total += 1;
                tracing::warn!(
                    limit,
                    alarm = %n.alarm,
                    "uplink outbox full of more severe notifications: dropped this {} one",
                    n.severity
                );
            }
            Admission::QueuedOverLimit => tracing::warn!(
                limit,
                alarm = %n.alarm,
                "uplink outbox full of critical notifications: queued this critical one beyond \
                 the limit"
            ),
        }
        state.status.queued = state.journal.len();
        state.status.firing = state.firing.len();
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// The alarms the control centre should see firing now (active, neither silenced nor
    /// inhibited), each as [`Notification::active_alarm`] makes it. Call it after opening
    /// (from the alarm book) and whenever that set changes other than by a notification
    /// (a silence, an inhibition).
    ///
    /// An alarm the outbox already fires from its notifications keeps what they said (its
    /// labels and start), so the alert identity escalations gave it stays the same; alarms
    /// it does not know are added as given; alarms left out are no longer sent again, and
    /// Alertmanager resolves them after its `resolve_timeout`.
    pub fn set_active(&self, alerts: Vec<Notification>) {
        let mut state = self.state();
        let mut known = std::mem::take(&mut state.firing);
        let mut added = false;
        state.firing = alerts
            .into_iter()
            .filter(|n| n.active)
            .map(|n| {
                let firing = known.remove(&n.alarm).unwrap_or_else(|| {
                    added = true;
                    Firing {
                        starts_at: n.at,
                        last: n,
                    }
                });
                (firing.last.alarm.clone(), firing)
            })
            .collect();
        state.status.firing = state.firing.len();
        if added {
            state.resend_soon = true;
            drop(state);
            self.wake.notify_one();
        }
    }

    pub fn status(&self) -> OutboxStatus {
        self.state().status.clone()
    }

    /// Delivers until `cancel` fires: the queue in order and in batches, then the firing set
    /// when due; after a failure waits `retry_first`, doubling up to `retry_max`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let first = self.settings.retry_first.as_duration();
        let max = self.settings.retry_max.as_duration();
        let mut backoff = first;
        let mut sender: Option<Sender> = None;
        // The firing set goes out as soon as the Alertmanager is first reached.
        let mut resend_at = Instant::now();
        loop {
            if cancel.is_cancelled() {
                return;
            }
            match self.round(&mut sender, &mut resend_at).await {
                Ok(()) => backoff = first,
                Err(error) => {
                    tracing::warn!(error = %error, retry_in = ?backoff, "uplink: delivery failed");
                    {
                        let mut state = self.state();
                        state.status.reachable = false;
                        state.status.last_error = Some(error.to_string());
                    }
                    // Alertmanager may have restarted and forgotten everything meanwhile.
                    resend_at = Instant::now();
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(max);
                    continue;
                }
            }
            let wake_at = match sender.as_ref().and_then(|s| s.renew_at) {
                Some(renew) => resend_at.min(instant_of(renew)),
                None => resend_at,
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    /// One round: the queue, then the firing set if due.
    async fn round(
        &self,
        sender: &mut Option<Sender>,
        resend_at: &mut Instant,
    ) -> Result<(), UplinkError> {
        let client = self.client(sender).await?;
        self.drain(&client).await?;
        let alerts = {
            let mut state = self.state();
            if !state.journal.is_empty() {
                // Queued meanwhile: the next round sends those first.
                return Ok(());
            }
            let due = Instant::now() >= *resend_at || state.resend_soon;
            state.resend_soon = false;
            due.then(|| firing_alerts(&state.firing))
        };
        if let Some(alerts) = alerts {
            if !alerts.is_empty() {
                match client.post_alerts(&alerts).await {
                    Ok(()) => self.state().status.accepted(),
                    Err(DeliveryError::Refused(why)) => {
                        tracing::error!(why, "uplink: Alertmanager refused the firing alerts");
                        let mut state = self.state();
                        state.status.reachable = true;
                        state.status.last_error =
                            Some(format!("Alertmanager refused the firing alerts: {why}"));
                    }
                    Err(other) => return Err(other.into()),
                }
            }
            *resend_at = Instant::now() + self.settings.resend_every.as_duration();
        }
        Ok(())
    }

    /// Sends the queue, oldest first, a batch per request, until it is empty.
    async fn drain(&self, client: &AlertmanagerClient) -> Result<(), UplinkError> {
        let batch = usize::try_from(self.settings.batch.get()).unwrap_or(usize::MAX);
        loop {
            let queued = self.state().journal.front(batch);
            let Some(last) = queued.last().map(|q| q.seq) else {
                return Ok(());
            };
            let alerts: Vec<Alert> = queued.iter().flat_map(|q| q.alerts.clone()).collect();
            let refused = match client.post_alerts(&alerts).await {
                Ok(()) => None,
                Err(DeliveryError::Refused(why)) => Some(why),
                Err(other) => return Err(other.into()),
            };
            let mut state = self.state();
            state.journal.delivered(last)?;
            state.status.queued = state.journal.len();
            let count = queued.len() as u64;
            match refused {
                None => {
                    state.status.delivered_total += count;
                    state.status.accepted();
                }
                Some(why) => {
                    // Retrying the same alerts cannot help, and would hold up the queue.
                    state.status.rejected_total += count;
                    state.status.reachable = true;
                    state.status.last_error = Some(format!(
                        "Alertmanager refused {count} notifications as invalid: {why}"
                    ));
                    tracing::error!(
                        why,
                        count,
                        "uplink: Alertmanager refused notifications as invalid; not retried"
                    );
                }
            }
        }
    }

    /// The client, with a (new) identity when there is none yet or it is due for renewal.
    async fn client(&self, sender: &mut Option<Sender>) -> Result<AlertmanagerClient, UplinkError> {
        let due = match sender {
            None => true,
            Some(s) => s.renew_at.is_some_and(|at| SystemTime::now() >= at),
        };
        if due {
            match self.connect().await {
                Ok(fresh) => *sender = Some(fresh),
                Err(error) => match sender {
                    // Keep the current certificate while it lasts; try again later.
                    Some(current) => {
                        tracing::warn!(error = %error, "uplink: cannot renew the client certificate");
                        current.renew_at =
                            Some(SystemTime::now() + self.settings.retry_max.as_duration());
                    }
                    None => return Err(error),
                },
            }
        }
        Ok(sender.as_ref().expect("set above").client.clone())
    }

    async fn connect(&self) -> Result<Sender, UplinkError> {
        let identity = client_identity::obtain(&self.settings, &self.bus).await?;
        let root = self.settings.server_root().map_err(UplinkError::Settings)?;
        let tls = appliance::tls::client_config(&identity.identity, &root)?;
        tracing::info!(source = %identity.source, "uplink: client certificate ready");
        self.state().status.identity = Some(identity.source.clone());
        Ok(Sender {
            client: AlertmanagerClient::new(
                self.endpoint.clone(),
                Arc::new(tls),
                self.settings.timeout.as_duration(),
            ),
            renew_at: identity.renew_at,
        })
    }
}

/// `n` with the fields its transition did not carry taken from the alarm's last notification.
fn completed(mut n: Notification, prev: Option<&Firing>) -> Notification {
    let Some(prev) = prev else { return n };
    if n.severity.is_empty() {
        n.severity.clone_from(&prev.last.severity);
    }
    if n.summary.is_empty() {
        n.summary.clone_from(&prev.last.summary);
    }
    if n.notify.is_empty() && matches!(n.change.as_str(), "updated" | "released") {
        n.notify.clone_from(&prev.last.notify);
    }
    n
}

/// The alerts `n` becomes, given the alarm's firing entry before it, and its entry after
/// (`None`: no longer firing).
fn plan(n: &Notification, prev: Option<&Firing>) -> (Vec<Alert>, Option<Firing>) {
    let labels = n.labels();
    let annotations = n.annotations();
    if !n.active {
        let alert = match prev {
            Some(p) => Alert::resolved(p.last.labels(), annotations, p.starts_at, n.at),
            None => Alert::resolved(labels, annotations, n.at, n.at),
        };
        return (vec![alert], None);
    }
    let mut alerts = Vec::new();
    let starts_at = match prev {
        Some(p) if p.last.labels() == labels => p.starts_at,
        Some(p) => {
            // New severity or targets make a new alert: the old one ends now.
            alerts.push(Alert::resolved(
                p.last.labels(),
                annotations.clone(),
                p.starts_at,
                n.at,
            ));
            n.at
        }
        None => n.at,
    };
    alerts.push(Alert::firing(labels, annotations, starts_at));
    let firing = Firing {
        last: n.clone(),
        starts_at,
    };
    (alerts, Some(firing))
}

fn firing_alerts(firing: &BTreeMap<String, Firing>) -> Vec<Alert> {
    firing
        .values()
        .map(|f| Alert::firing(f.last.labels(), f.last.annotations(), f.starts_at))
        .collect()
}

/// The monotonic instant of a wall-clock time (now, if it is past).
fn instant_of(at: SystemTime) -> Instant {
    let ahead = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + ahead
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
