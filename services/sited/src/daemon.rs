//! The daemon's life: start in order, say `READY=1` once the site is served, follow the
//! sensors, stop cleanly.
//!
//! Start: state directory → event log (`audit.log`, [`appliance::audit_log::open_service_log`],
//! sealed on `[audit]`'s policy through trustd when it is on the bus) → the alarm book (`alarms.json`) restored into the rule
//! engine → the sensor drivers (one per bus of the hardware profile) and the relay drivers →
//! metrics → `org.bunkeros.Site1` on the system bus → `READY=1`.
//!
//! Running ([`site_loop::SiteLoop`]): every sensor event goes to the site model (derived
//! sensors), the budget, the sensor table and the rule engine, in that order, as it arrives;
//! a contact's alarm is raised in the same turn and its relays are switched before anything is
//! written (a siren does not wait for a disk). Transitions are then appended to the event log,
//! the book is saved, notifications are journaled for the uplink (`[uplink]`: the control
//! centre's Alertmanager, store-and-forward) and the Site1 signals are emitted.
//! The engine's deadlines (holds, silent sensors, escalation, silence expiry) and the
//! operators' and services' actions come in through the same loop, so everything the site
//! does happens in one order.
//!
//! Stop: SIGTERM → `STOPPING=1` → the book is already saved and every transition is in the
//! log → exit 0.

pub mod site_loop;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::{Context, Result};
use appliance::audit_log::{open_service_log, seal_loop};
use appliance::dbus::Bus;
use appliance::dbus::contracts::SITE;
use appliance::metrics::{MetricsEndpoint, register_build_info};
use appliance::state::StateDir;
use appliance::systemd::{Heartbeat, Notifier, ShutdownSignal, spawn_watchdog};
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, watch};

use self::site_loop::SiteLoop;
use crate::drivers::{spawn_relay_drivers, spawn_sensor_drivers};
use crate::relay_driver::RelayStates;
use crate::rules::{AlarmBook, RuleEngine};
use crate::sensor_table::SensorTable;
use crate::settings::{SERVICE, SitedSetup};
use crate::site_metrics::SiteMetrics;
use crate::site1::{Shared, Site1};
use crate::uplink::Outbox;

/// The longest the first readings may take before Site1 is served anyway: two of the slowest
/// bus's polls (a NUT UPS every 2 s), within systemd's start timeout.
fn warm_up_time(setup: &SitedSetup) -> std::time::Duration {
    let modbus = setup.config.modbus.poll_period() * 2 + setup.config.modbus.worst_case_request();
    modbus.max(std::time::Duration::from_secs(5))
}

/// Room for bursts of sensor events (a poll of 1,000 sensors) while the loop writes.
const EVENT_QUEUE: usize = 16_384;

/// Runs sited until SIGTERM or SIGINT, on the system bus.
pub async fn run(setup: SitedSetup) -> Result<()> {
    run_on(setup, Bus::System).await
}

/// [`run`] on `bus` (tests use a private bus).
pub async fn run_on(setup: SitedSetup, bus: Bus) -> Result<()> {
    let notifier = Notifier::new();
    let shutdown = ShutdownSignal::install(notifier).context("installing the stop handlers")?;
    let cancel = shutdown.token();
    let state = StateDir::from_env(SERVICE).context("opening sited's state directory")?;
    let audit = open_service_log(state.path(), SERVICE)
        .await
        .context("opening the event log")?;
    let last_sealed = Arc::new(AtomicU64::new(0));
    tokio::spawn(seal_loop(
        Arc::clone(&audit),
        setup.config.audit,
        bus.clone(),
        SERVICE.to_owned(),
        Arc::clone(&last_sealed),
        cancel.clone(),
    ));

    let outbox = match setup.config.uplink.clone() {
        Some(settings) => Some(Arc::new(
            Outbox::open_on_bus(state.path(), settings, bus.clone())
                .context("opening the uplink's notification journal")?,
        )),
        None => None,
    };
    if let Some(outbox) = &outbox {
        tokio::spawn(Arc::clone(outbox).run(cancel.clone()));
    }

    let now = SystemTime::now();
    let book = AlarmBook::load(&state)
        .context("reading the alarm book (alarms.json)")?
        .unwrap_or_default();
    let (engine, restored) = RuleEngine::restore(setup.rules.clone(), book, now);

    let (events_in, events) = mpsc::channel(EVENT_QUEUE);
    spawn_sensor_drivers(&setup, &events_in).context("starting the sensor drivers")?;
    drop(events_in);
    let (wanted_in, wanted) = watch::channel(BTreeMap::new());
    let relays: RelayStates = Arc::new(Mutex::new(BTreeMap::new()));
    spawn_relay_drivers(&setup, &wanted, &relays, &cancel).context("starting the relays")?;

    let mut registry = Registry::default();
    register_build_info(&mut registry, SERVICE, env!("CARGO_PKG_VERSION"));
    let metrics = SiteMetrics::register(&mut registry);
    let endpoint = MetricsEndpoint::bind(setup.config.metrics.listen.get(), Arc::new(registry))
        .await
        .context("starting the metrics endpoint (metrics.listen)")?;
    tracing::info!("serving metrics on {}", endpoint.local_addr());
    tokio::spawn(endpoint.serve(cancel.clone()));

    let shared = Arc::new(Shared {
        view: Mutex::new(site_loop::initial_view()),
        sensors: Mutex::new(SensorTable::of(&setup.catalogue)),
    });
    let (commands_in, commands) = mpsc::channel(64);
    let mut site = SiteLoop::new(
        &setup,
        engine,
        state,
        audit,
        last_sealed,
        Arc::clone(&shared),
        wanted_in,
        relays,
        metrics,
        outbox,
    );
    site.start_forwarding(now);
    site.apply(restored, now).await;
    let mut events = events;
    site.warm_up(&mut events, warm_up_time(&setup)).await;
    site.publish(SystemTime::now()).await;

    let connection = appliance::dbus::serve(
        &bus,
        SITE.bus_name,
        SITE.object_path,
        Site1::new(Arc::clone(&shared), commands_in),
    )
    .await
    .context("serving org.bunkeros.Site1 on the system bus")?;
    site.attach(&connection).await?;
    let line = site.status_line();
    notifier
        .ready(&line)
        .context("telling systemd that sited is ready")?;
    tracing::info!("READY=1; status: {line}");

    let heartbeat = Heartbeat::new();
    let watchdog = spawn_watchdog(heartbeat.clone(), cancel.clone());
    site.run(events, commands, &notifier, &heartbeat, &cancel)
        .await;
    tracing::info!("stopping: the alarm book and the event log are up to date");
    if let Some(task) = watchdog {
        let _ = task.await;
    }
    Ok(())
}
