//! The daemon's one loop: sensor events, the engine's deadlines and the Site1 actions, in
//! one order (see the [daemon](super) docs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use appliance::audit_log::AuditLog;
use appliance::dbus::contracts::{SITE, SiteState};
use appliance::state::StateDir;
use appliance::systemd::{Heartbeat, Notifier, StatusLine};
use serde_json::json;
use tokio::sync::Mutex as AsyncMutex;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use zbus::object_server::InterfaceRef;

use crate::budget::{Budget, BudgetModel, PowerSource};
use crate::catalogue::SensorCatalogue;
use crate::documents::{self, StatusParts};
use crate::outputs::{self, OutputSpec};
use crate::relay_driver::RelayStates;
use crate::rules::{ActionError, AlarmKey, Change, RuleEngine, Transition};
use crate::sensor::SensorEvent;
use crate::settings::SitedSetup;
use crate::site_metrics::SiteMetrics;
use crate::site_model::SiteModel;
use crate::site1::{Command, Shared, Site1, SiteError, SiteView};
use crate::uplink::{Notification, Outbox};

/// How often the status document, the watchdog and the status line are refreshed.
const TICK: Duration = Duration::from_secs(1);
/// Most sensor events taken in one turn before the loop looks at actions and deadlines again.
const EVENT_BATCH: usize = 256;

/// The view before the first publication (never served: Site1 is registered after it).
pub fn initial_view() -> SiteView {
    SiteView {
        state: SiteState::Normal.as_str().into(),
        reason: String::new(),
        power_budget_w: 0.0,
        thermal_headroom_c: 0.0,
        status: json!({}),
        alarms: json!([]),
        silences: json!([]),
    }
}

/// What was last announced on the bus, to emit signals only on change.
#[derive(Debug, Clone, PartialEq)]
struct Announced {
    state: SiteState,
    reason: String,
    power_w: f64,
    headroom_c: f64,
}

/// Everything the loop owns.
pub struct SiteLoop {
    outputs: Vec<OutputSpec>,
    catalogue: SensorCatalogue,
    engine: RuleEngine,
    state: StateDir,
    audit: Arc<AsyncMutex<AuditLog>>,
    /// The last record trustd sealed (the seal loop keeps it).
    last_sealed: Arc<AtomicU64>,
    shared: Arc<Shared>,
    wanted: watch::Sender<BTreeMap<String, bool>>,
    relays: RelayStates,
    metrics: SiteMetrics,
    model: SiteModel,
    budget: BudgetModel,
    iface: Option<InterfaceRef<Site1>>,
    announced: Option<Announced>,
    /// The control centre's notifications, when `[uplink]` is configured.
    outbox: Option<Arc<Outbox>>,
    site_name: String,
}

impl SiteLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        setup: &SitedSetup,
        engine: RuleEngine,
        state: StateDir,
        audit: Arc<AsyncMutex<AuditLog>>,
        last_sealed: Arc<AtomicU64>,
        shared: Arc<Shared>,
        wanted: watch::Sender<BTreeMap<String, bool>>,
        relays: RelayStates,
        metrics: SiteMetrics,
        outbox: Option<Arc<Outbox>>,
    ) -> SiteLoop {
        let config = &setup.config;
        let model_config = config.site_model();
        SiteLoop {
            outputs: config.output.clone(),
            catalogue: setup.catalogue.clone(),
            engine,
            state,
            audit,
            last_sealed,
            shared,
            wanted,
            relays,
            metrics,
            model: SiteModel::new(&model_config),
            budget: BudgetModel::new(config.power(), &config.thermal, &model_config.zone),
            iface: None,
            announced: None,
            outbox,
            site_name: config.site.name.clone(),
        }
    }

    /// From now on, changes are announced on `connection`'s Site1 object.
    pub async fn attach(&mut self, connection: &zbus::Connection) -> Result<()> {
        let iface = connection
            .object_server()
            .interface::<_, Site1>(SITE.object_path)
            .await
            .context("finding the served Site1 object")?;
        self.iface = Some(iface);
        Ok(())
    }

    /// Runs until `cancel`.
    pub async fn run(
        &mut self,
        mut events: mpsc::Receiver<SensorEvent>,
        mut commands: mpsc::Receiver<Command>,
        notifier: &Notifier,
        heartbeat: &Heartbeat,
        cancel: &CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut line = StatusLine::new(&self.status_line());
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                Some(command) = commands.recv() => self.on_command(command).await,
                Some(event) = events.recv() => {
                    let mut batch = vec![event];
                    while batch.len() < EVENT_BATCH {
                        match events.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                    self.on_events(batch, SystemTime::now()).await;
                }
                () = sleep_until(deadline) => {
                    let now = SystemTime::now();
                    let transitions = self.engine.on_tick(now);
                    self.apply(transitions, now).await;
                    let derived = self.model.on_tick(now);
                    self.on_events(derived, now).await;
                }
                _ = ticker.tick() => {
                    heartbeat.beat();
                    self.publish(SystemTime::now()).await;
                    line.update(*notifier, self.status_line());
                }
            }
        }
    }

    /// Takes the first readings before the site is served, until the budget knows its power
    /// source or `within` passes: a restarted sited must not announce a budget of 0 W (and
    /// have minerd put the fleet to sleep) only because nothing was read yet.
    pub async fn warm_up(&mut self, events: &mut mpsc::Receiver<SensorEvent>, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.budget.current().source == PowerSource::Unknown {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => self.on_events(vec![event], SystemTime::now()).await,
                Ok(None) | Err(_) => break,
            }
        }
        let now = SystemTime::now();
        let first = self.model.on_tick(now);
        self.on_events(first, now).await;
    }

    /// The engine's or the site model's next deadline, whichever is first.
    fn next_deadline(&self) -> Option<SystemTime> {
        let now = SystemTime::now();
        [self.engine.next_deadline(), self.model.next_deadline(now)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sensor events (and the derived ones they cause) through the budget, the table and the
    /// rules; then what the rules decided.
    async fn on_events(&mut self, events: Vec<SensorEvent>, now: SystemTime) {
        let mut transitions = Vec::new();
        let mut budget_changed = false;
        for event in events {
            let derived = self.model.on_event(&event);
            for event in std::iter::once(event).chain(derived) {
                self.record(&event);
                budget_changed |= self.budget.on_event(&event).is_some();
                transitions.extend(self.engine.on_event(&event, now));
            }
        }
        if !transitions.is_empty() {
            self.apply(transitions, now).await;
        } else if budget_changed {
            self.publish(now).await;
        }
    }

    fn record(&self, event: &SensorEvent) {
        let mut sensors = self.shared.sensors.lock().expect("sensor table");
        sensors.record(event, &self.catalogue);
        if let Some(row) = sensors.get(event.sensor()) {
            self.metrics.observe_event(event, row);
        }
    }

    /// What transitions call for: relays first, then the log, the book, the bus.
    pub async fn apply(&mut self, transitions: Vec<Transition>, now: SystemTime) -> bool {
        if transitions.is_empty() {
            return true;
        }
        self.switch_relays();
        let mut recorded = true;
        let mut log = self.audit.lock().await;
        for transition in &transitions {
            if let Err(error) = log.append(transition.audit_entry()).await {
                tracing::error!(%error, action = transition.action(), "cannot record a transition in the event log");
                recorded = false;
            }
            log_transition(transition);
        }
        drop(log);
        if let Err(error) = self.engine.book().save(&self.state) {
            tracing::error!(%error, "cannot save the alarm book");
            recorded = false;
        }
        self.metrics.observe_transitions(&transitions);
        recorded &= self.forward(&transitions, now);
        self.announce_alarms(&transitions).await;
        self.publish(now).await;
        recorded
    }

    /// Journals the notifications for the uplink and tells it which alarms fire now (active,
    /// neither silenced nor inhibited); false when the journal cannot take one.
    fn forward(&self, transitions: &[Transition], now: SystemTime) -> bool {
        let Some(outbox) = &self.outbox else {
            return true;
        };
        let mut journaled = true;
        for transition in transitions {
            let Some(notification) = Notification::from_transition(transition, &self.site_name)
            else {
                continue;
            };
            if let Err(error) = outbox.enqueue(notification) {
                tracing::error!(%error, "cannot journal a notification for the uplink");
                journaled = false;
            }
        }
        outbox.set_active(self.firing(now));
        journaled
    }

    /// The alarms the control centre should see firing now.
    pub fn firing(&self, now: SystemTime) -> Vec<Notification> {
        let engine = &self.engine;
        engine
            .alarms()
            .iter()
            .filter(|alarm| alarm.active && engine.inhibited_by(&alarm.key).is_none())
            .filter(|alarm| {
                !engine
                    .silences()
                    .iter()
                    .any(|s| s.until > now && s.matcher.matches(alarm))
            })
            .map(|alarm| {
                let notify = alarm
                    .key
                    .rule_name()
                    .and_then(|name| engine.rules().get(name))
                    .and_then(|rule| rule.escalation.get(alarm.escalation_step.checked_sub(1)?))
                    .map(|step| step.notify.clone())
                    .unwrap_or_default();
                Notification::active_alarm(alarm, &self.site_name, notify)
            })
            .collect()
    }

    /// Tells the uplink which alarms fire (at start, before any transition).
    pub fn start_forwarding(&self, now: SystemTime) {
        if let Some(outbox) = &self.outbox {
            outbox.set_active(self.firing(now));
        }
    }

    /// Tells the relay drivers what the outputs want now.
    fn switch_relays(&self) {
        let engine = &self.engine;
        let muted = |alarm: &crate::rules::Alarm| engine.inhibited_by(&alarm.key).is_some();
        let wanted = outputs::wanted(
            &self.outputs,
            engine.alarms(),
            &muted,
            engine.site_status().state,
        );
        self.wanted.send_if_modified(|current| {
            if *current == wanted {
                false
            } else {
                *current = wanted;
                true
            }
        });
    }

    async fn announce_alarms(&self, transitions: &[Transition]) {
        let Some(iface) = &self.iface else {
            return;
        };
        for transition in transitions {
            let Some((alarm, severity, summary)) = alarm_words(&self.engine, &transition.change)
            else {
                continue;
            };
            let change = transition.action().trim_start_matches("alarm.");
            let emitted = Site1::announce_alarm(
                iface.signal_emitter(),
                &alarm.to_string(),
                change,
                &severity,
                &summary,
            )
            .await;
            if let Err(error) = emitted {
                tracing::warn!(%error, "cannot emit AlarmChanged");
            }
        }
    }

    /// Publishes the view for Site1's reads and announces what changed.
    pub async fn publish(&mut self, now: SystemTime) {
        let budget = self.budget.current().clone();
        let site = self.engine.site_status().clone();
        let log_records = self.audit.lock().await.head().map_or(0, |head| head.seq);
        let status = {
            let relays = self.relays.lock().expect("relay states").clone();
            for (name, relay) in &relays {
                self.metrics.observe_relay(name, relay);
            }
            let sensors = self.shared.sensors.lock().expect("sensor table").counts();
            documents::status(
                &self.engine,
                &StatusParts {
                    power_budget_w: budget.power_w,
                    thermal_headroom_c: budget.headroom_c,
                    power_source: budget.source.as_str(),
                    power_why: &budget.why,
                    sensors,
                    relays: &relays,
                    uplink: self.uplink_document(),
                    log_records,
                    last_sealed_seq: self.last_sealed.load(Ordering::Relaxed),
                },
                now,
            )
        };
        let view = SiteView {
            state: site.state.as_str().into(),
            reason: site.reason.clone(),
            power_budget_w: budget.power_w,
            thermal_headroom_c: budget.headroom_c,
            status,
            alarms: documents::alarms(&self.engine, now),
            silences: documents::silences(&self.engine, now),
        };
        *self.shared.view.lock().expect("site view") = view;
        self.metrics.observe_site(
            site.state,
            self.engine.alarms(),
            budget.power_w,
            budget.headroom_c,
        );
        self.announce(&site.state, &site.reason, &budget).await;
    }

    fn uplink_document(&self) -> serde_json::Value {
        let Some(outbox) = &self.outbox else {
            return json!({ "configured": false });
        };
        let status = outbox.status();
        self.metrics.observe_uplink(&status);
        json!({
            "configured": true,
            "queued": status.queued,
            "firing": status.firing,
            "delivered": status.delivered_total,
            "dropped": status.dropped_total,
            "rejected": status.rejected_total,
            "reachable": status.reachable,
            "last_delivery_at": status.last_delivery_at.map(appliance::time_text::rfc3339),
            "last_error": status.last_error,
            "identity": status.identity,
        })
    }

    /// StateChanged and BudgetChanged (with PropertiesChanged) when they changed.
    async fn announce(&mut self, state: &SiteState, reason: &str, budget: &Budget) {
        let now = Announced {
            state: *state,
            reason: reason.to_owned(),
            power_w: budget.power_w,
            headroom_c: budget.headroom_c,
        };
        let Some(iface) = &self.iface else {
            self.announced = Some(now);
            return;
        };
        let before = self.announced.replace(now.clone());
        let emitter = iface.signal_emitter();
        let site1 = iface.get().await;
        let state_changed = before
            .as_ref()
            .is_none_or(|b| b.state != now.state || b.reason != now.reason);
        if state_changed {
            let sent = async {
                Site1::announce_state(emitter, now.state.as_str(), &now.reason).await?;
                site1.state_changed(emitter).await?;
                site1.state_reason_changed(emitter).await
            };
            if let Err(error) = sent.await {
                tracing::warn!(%error, "cannot emit StateChanged");
            }
        }
        let budget_changed = before
            .as_ref()
            .is_none_or(|b| b.power_w != now.power_w || b.headroom_c != now.headroom_c);
        if budget_changed {
            let sent = async {
                Site1::announce_budget(emitter, now.power_w, now.headroom_c).await?;
                site1.power_budget_watts_changed(emitter).await?;
                site1.thermal_headroom_celsius_changed(emitter).await
            };
            if let Err(error) = sent.await {
                tracing::warn!(%error, "cannot emit BudgetChanged");
            }
        }
    }

    /// An operator's or service's action: applied, recorded, answered.
    async fn on_command(&mut self, command: Command) {
        let now = SystemTime::now();
        match command {
            Command::Acknowledge {
                alarm,
                note,
                by,
                reply,
            } => {
                let outcome = match self.alarm_key(&alarm) {
                    Some(key) => self.engine.acknowledge(&key, &by, &note, now),
                    None => Err(ActionError::NoSuchAlarm(alarm)),
                };
                let answer = self.finish(outcome.map(|t| ((), t)), now).await;
                let _ = reply.send(answer);
            }
            Command::Silence {
                matcher,
                for_,
                comment,
                by,
                reply,
            } => {
                let outcome = self.engine.silence(matcher, &by, &comment, now + for_, now);
                let _ = reply.send(self.finish(outcome, now).await);
            }
            Command::Unsilence { id, by, reply } => {
                let outcome = self.engine.remove_silence(id, &by, now).map(|t| ((), t));
                let _ = reply.send(self.finish(outcome, now).await);
            }
            Command::Raise { alarm, reply } => {
                let outcome = self.engine.raise_external(alarm, now).map(|t| ((), t));
                let _ = reply.send(self.finish(outcome, now).await);
            }
            Command::Clear { source, key, reply } => {
                let outcome = self
                    .engine
                    .clear_external(&source, &key, now)
                    .map(|t| ((), t));
                let _ = reply.send(self.finish(outcome, now).await);
            }
        }
    }

    /// Applies an action's transitions and turns the outcome into Site1's answer.
    async fn finish<T>(
        &mut self,
        outcome: Result<(T, Vec<Transition>), ActionError>,
        now: SystemTime,
    ) -> Result<T, SiteError> {
        let (value, transitions) = outcome.map_err(refusal)?;
        if self.apply(transitions, now).await {
            Ok(value)
        } else {
            Err(SiteError::Unavailable(
                "done, but the event log or the alarm book could not record it: see sited's journal"
                    .into(),
            ))
        }
    }

    fn alarm_key(&self, name: &str) -> Option<AlarmKey> {
        self.engine
            .alarms()
            .iter()
            .find(|a| a.key.to_string() == name)
            .map(|a| a.key.clone())
    }

    /// `normal; 32/32 sensors read; 0 alarms; budget 370000 W (grid), headroom 12.5 °C`.
    pub fn status_line(&self) -> String {
        let site = self.engine.site_status();
        let counts = self.shared.sensors.lock().expect("sensor table").counts();
        let active = self.engine.alarms().iter().filter(|a| a.active).count();
        let budget = self.budget.current();
        let state = if site.reason.is_empty() {
            site.state.as_str().to_owned()
        } else {
            format!("{} ({})", site.state.as_str(), site.reason)
        };
        let uplink = match &self.outbox {
            None => String::new(),
            Some(outbox) => {
                let status = outbox.status();
                let reach = if status.reachable {
                    ""
                } else {
                    ", unreachable"
                };
                format!("; uplink {} queued{reach}", status.queued)
            }
        };
        format!(
            "{state}; {}/{} sensors read, {} lost; {active} alarm(s) active; budget {:.0} W ({}), headroom {:.1} °C{uplink}",
            counts.ok,
            counts.total,
            counts.lost,
            budget.power_w,
            budget.source.as_str(),
            budget.headroom_c
        )
    }
}

/// The alarm, severity and summary an alarm transition is about; `None` for the others.
fn alarm_words(engine: &RuleEngine, change: &Change) -> Option<(AlarmKey, String, String)> {
    let (key, severity, summary) = match change {
        Change::AlarmRaised {
            alarm,
            severity,
            summary,
            ..
        }
        | Change::AlarmUpdated {
            alarm,
            severity,
            summary,
            ..
        }
        | Change::AlarmReleased {
            alarm,
            severity,
            summary,
            ..
        } => (alarm, severity.as_str().to_owned(), summary.clone()),
        Change::AlarmEscalated {
            alarm, severity, ..
        } => {
            let summary = engine.alarm(alarm).map(|a| a.summary.clone());
            (
                alarm,
                severity.as_str().to_owned(),
                summary.unwrap_or_default(),
            )
        }
        Change::AlarmCleared { alarm, .. } | Change::AlarmAcknowledged { alarm, .. } => {
            let found = engine.alarm(alarm);
            let severity = found.map_or("info", |a| a.severity.as_str()).to_owned();
            let summary = found.map(|a| a.summary.clone()).unwrap_or_default();
            (alarm, severity, summary)
        }
        _ => return None,
    };
    Some((key.clone(), severity, summary))
}

fn refusal(error: ActionError) -> SiteError {
    match error {
        ActionError::NoSuchAlarm(_) | ActionError::NoSuchSilence(_) | ActionError::NotRaised(_) => {
            SiteError::NotFound(error.to_string())
        }
        _ => SiteError::InvalidArgument(error.to_string()),
    }
}

fn log_transition(transition: &Transition) {
    tracing::info!(
        action = transition.action(),
        target = %transition.target(),
        by = %transition.by,
        "{}",
        transition.why
    );
}

async fn sleep_until(deadline: Option<SystemTime>) {
    match deadline {
        Some(at) => {
            let wait = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}
