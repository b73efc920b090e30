//! The daemon's life: start in order, say `READY=1` once the fleet is served, keep the status
//! current, stop cleanly.
//!
//! Start: state directory → inventory → audit log (`audit.log`, sealed on `[audit]`'s policy
//! through trustd when it is on the bus) → the Stratum proxy (admission from the inventory,
//! `directory`) → the hijack guard (re-applies the inventory's quarantines to the proxy) →
//! the first discovery scan → metrics → the telemetry, discovery and guard loops (`loops`)
//! and the curtailment driver (following sited's budget, or the static one) →
//! `org.bunkeros.Mining1` on the system bus → `READY=1`.
//!
//! Running: after every poll cycle the hijack guard checks the fleet (one check at a time) and
//! the curtailment driver re-plans; after every cycle, scan, guard check and action the main
//! loop reads the inventory, hands it to the proxy's directory, refreshes the metrics,
//! publishes a new [`MiningSnapshot`] for Mining1, and updates the status line (`fleet:
//! 812/820 miners up, 96.1 PH/s, 2.71 MW; proxy: 812 connected; pools: all primary`); the
//! watchdog is beaten while the loop turns.
//!
//! Stop: SIGTERM → `STOPPING=1` → the proxy stops taking work and the accounting is flushed
//! (every acknowledged share is committed already) → exit 0.

pub mod loops;
pub mod publish;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use appliance::audit_log::{open_service_log, seal_loop};
use appliance::dbus::Bus;
use appliance::dbus::contracts::MINING;
use appliance::metrics::{MetricsEndpoint, register_build_info};
use appliance::site_watch::{SiteReport, SiteWatch};
use appliance::state::StateDir;
use appliance::systemd::{Heartbeat, Notifier, ShutdownSignal, StatusLine, spawn_watchdog};
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, mpsc, watch};

use self::loops::Event;
use self::publish::{ProxyMetrics, Remembered, Sources, all_miners};
use crate::config::{MinerdConfig, MinerdSetup, SERVICE};
use crate::curtailment_driver::CurtailmentDriver;
use crate::directory::InventoryDirectory;
use crate::discovery::discover;
use crate::fleet_metrics::FleetMetrics;
use crate::hijack_guard::{GuardConfig, HijackGuard};
use crate::inventory::Inventory;
use crate::mining1::Mining1;
use crate::mining1::actions::ActionContext;
use crate::mining1::jobs::Jobs;
use crate::proxy::{Accounting, Proxy};
use crate::site_alarms::SiteAlarms;
use crate::snapshot::{BudgetSummary, DiscoverySummary, MiningSnapshot, PollSummary, Republish};
use crate::telemetry::Telemetry;

/// The proxy's share accounting in the state directory.
pub const ACCOUNTING_FILE: &str = "accounting.sqlite3";
/// The password miners' restored pools carry (minerd's proxy does not check one).
const PROXY_PASSWORD: &str = "x";
/// How often the main loop wakes without an event: status and watchdog.
const TICK: Duration = Duration::from_secs(1);

/// Runs minerd until SIGTERM or SIGINT, on the system bus.
pub async fn run(setup: MinerdSetup) -> Result<()> {
    run_on(setup, Bus::System).await
}

/// [`run`] on `bus` (tests use a private bus).
pub async fn run_on(setup: MinerdSetup, bus: Bus) -> Result<()> {
    let notifier = Notifier::new();
    let shutdown = ShutdownSignal::install(notifier).context("installing the stop handlers")?;
    let cancel = shutdown.token();
    let config = Arc::new(setup.config);
    let state = StateDir::from_env(SERVICE).context("opening minerd's state directory")?;

    let inventory = Arc::new(
        Inventory::open_in(state.path()).context("opening the inventory (inventory.sqlite3)")?,
    );
    let audit = open_service_log(state.path(), SERVICE).await?;
    let last_sealed = Arc::new(AtomicU64::new(0));
    tokio::spawn(seal_loop(
        Arc::clone(&audit),
        config.audit,
        bus.clone(),
        SERVICE.to_owned(),
        Arc::clone(&last_sealed),
        cancel.clone(),
    ));

    let layout = Arc::new(config.layout.clone());
    let directory = Arc::new(InventoryDirectory::new(Arc::clone(&layout)));
    let miners = all_miners(&inventory)
        .await
        .context("reading the inventory")?;
    directory.refresh(&miners);
    let accounting = Arc::new(
        Accounting::open_path(
            &state.path().join(ACCOUNTING_FILE),
            Duration::from_millis(config.proxy.batch_window_ms),
        )
        .context("opening the share accounting (accounting.sqlite3)")?,
    );
    let proxy = Proxy::start(config.proxy.clone(), directory.clone(), accounting)
        .await
        .with_context(|| {
            format!(
                "the Stratum proxy cannot listen on {} (proxy.listen)",
                config.proxy.listen
            )
        })?;
    let guard = Arc::new(
        HijackGuard::open(
            state.path(),
            GuardConfig {
                miner_urls: config.sanctioned.proxy_urls.clone(),
                pool_password: PROXY_PASSWORD.to_owned(),
                settings: config.hijack.clone(),
                restore_limits: config.operations,
                client: config.telemetry.client_config(),
            },
            config.layout.clone(),
            Arc::clone(&inventory),
            Arc::clone(&proxy),
            Arc::clone(&audit),
            Arc::new(SiteAlarms::new(bus.clone())),
        )
        .context("opening the hijack guard's findings (in the state directory)")?,
    );

    notifier
        .status("discovering the fleet")
        .context("telling systemd the status")?;
    let first = discover(&layout, &config.discovery, Arc::clone(&inventory))
        .await
        .context("recording the first discovery scan in the inventory")?;

    let mut registry = Registry::default();
    register_build_info(&mut registry, SERVICE, env!("CARGO_PKG_VERSION"));
    let fleet_metrics = FleetMetrics::register(&mut registry);
    let proxy_metrics = ProxyMetrics::register(&mut registry);
    fleet_metrics.observe_discovery(&first);
    let endpoint = MetricsEndpoint::bind(config.metrics.listen.get(), Arc::new(registry))
        .await
        .context("starting the metrics endpoint (metrics.listen)")?;
    tracing::info!("serving metrics on {}", endpoint.local_addr());
    tokio::spawn(endpoint.serve(cancel.clone()));

    let telemetry = Arc::new(Telemetry::new(config.telemetry.clone()));
    let (events_in, mut events) = mpsc::channel(16);
    let (scans_in, scans) = mpsc::channel(4);
    tokio::spawn(loops::telemetry(
        Arc::clone(&telemetry),
        Arc::clone(&inventory),
        events_in.clone(),
        cancel.clone(),
    ));
    tokio::spawn(loops::discovery(
        Arc::clone(&layout),
        config.discovery.clone(),
        Arc::clone(&inventory),
        scans,
        events_in.clone(),
        cancel.clone(),
    ));

    let site = follow_site(&bus).await;
    let curtailment = Arc::new(CurtailmentDriver::new(
        config.curtailment.clone(),
        Arc::clone(&inventory),
        Arc::clone(&telemetry),
        Arc::clone(&audit),
        config.operations,
        config.telemetry.client_config(),
        Some(Arc::clone(&proxy)),
    ));
    tokio::spawn(run_until(
        cancel.clone(),
        Arc::clone(&curtailment).run(site.as_ref().map(SiteWatch::reports)),
    ));
    let guard_due = Arc::new(Notify::new());
    tokio::spawn(loops::guard(
        Arc::clone(&guard),
        Arc::clone(&telemetry),
        Arc::clone(&guard_due),
        events_in.clone(),
        cancel.clone(),
    ));
    let mut remembered = Remembered {
        poll: None,
        discovery: Some(DiscoverySummary {
            at: SystemTime::now(),
            report: first,
        }),
        budget: budget_of(&config, site.as_ref().and_then(SiteWatch::latest)),
    };
    let sources = Sources {
        inventory: Arc::clone(&inventory),
        telemetry: Arc::clone(&telemetry),
        proxy: Arc::clone(&proxy),
        audit: Arc::clone(&audit),
        last_sealed,
        guard: Arc::clone(&guard),
        curtailment: Arc::clone(&curtailment),
    };
    let snapshot = publish_round(
        &sources,
        &remembered,
        &directory,
        &fleet_metrics,
        &proxy_metrics,
    )
    .await?;
    let ready_line = snapshot.status_line();
    let (snapshots, _first_reader) = watch::channel(Arc::new(snapshot));

    let republish = Arc::new(Republish::default());
    let actions = Arc::new(ActionContext {
        config: Arc::clone(&config),
        inventory: Arc::clone(&inventory),
        audit: Arc::clone(&audit),
        jobs: Jobs::default(),
        client: config.telemetry.client_config(),
        scans: scans_in,
        guard,
        republish: Arc::clone(&republish),
    });
    let _bus = appliance::dbus::serve(
        &bus,
        MINING.bus_name,
        MINING.object_path,
        Mining1::new(snapshots.subscribe(), actions),
    )
    .await
    .context("serving org.bunkeros.Mining1 on the system bus")?;
    notifier
        .ready(&ready_line)
        .context("telling systemd that minerd is ready")?;
    tracing::info!("READY=1; status: {ready_line}");
    let mut line = StatusLine::new(&ready_line);

    let heartbeat = Heartbeat::new();
    let watchdog = spawn_watchdog(heartbeat.clone(), cancel.clone());
    let mut site_reports = site.as_ref().map(SiteWatch::reports);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = tokio::select! {
            () = cancel.cancelled() => break,
            Some(event) = events.recv() => {
                match &event {
                    Event::Polled(report) => {
                        fleet_metrics.observe_poll(report, &telemetry);
                        // After every cycle: the guard compares, curtailment re-plans.
                        guard_due.notify_one();
                        curtailment.after_cycle();
                    }
                    Event::Scanned(report) => fleet_metrics.observe_discovery(report),
                    Event::Guarded => {}
                }
                remember(&mut remembered, event);
                true
            }
            // The curtailment driver follows the budget itself; this keeps Status's view of it.
            report = next_site_report(&mut site_reports) => {
                remembered.budget = budget_of(&config, report);
                true
            }
            () = republish.requested() => true,
            _ = ticker.tick() => false,
        };
        heartbeat.beat();
        if !changed {
            continue;
        }
        // Read before the sources: every action requested up to here is in what they show.
        let generation = republish.generation_now();
        let mut snapshot = publish_round(
            &sources,
            &remembered,
            &directory,
            &fleet_metrics,
            &proxy_metrics,
        )
        .await?;
        snapshot.generation = generation;
        let fresh = snapshot.status_line();
        snapshots.send_replace(Arc::new(snapshot));
        line.update(notifier, fresh);
    }

    tracing::info!("stopping: the proxy takes no more work");
    proxy.stop();
    if !proxy.accounting().flush().await {
        tracing::error!("the last shares' accounting could not be committed");
    }
    if let Some(task) = watchdog {
        let _ = task.await;
    }
    Ok(())
}

/// sited's budget, or nothing to follow (the static budget) when there is no bus or no sited.
async fn follow_site(bus: &Bus) -> Option<SiteWatch> {
    match SiteWatch::start(bus.clone()).await {
        Ok(watch) => Some(watch),
        Err(error) => {
            tracing::warn!(%error, "not following sited; the static budget of [curtailment] applies");
            None
        }
    }
}

async fn next_site_report(
    reports: &mut Option<watch::Receiver<Option<SiteReport>>>,
) -> Option<SiteReport> {
    let Some(receiver) = reports else {
        return std::future::pending().await;
    };
    if receiver.changed().await.is_err() {
        tracing::warn!("the watch of sited ended; the budget stays as it was");
        *reports = None;
        return std::future::pending().await;
    }
    receiver.borrow_and_update().clone()
}

/// The budget to follow: sited's when it publishes one, else `[curtailment] static_budget_w`.
fn budget_of(config: &MinerdConfig, report: Option<SiteReport>) -> BudgetSummary {
    match report.and_then(|r| r.budget) {
        Some(budget) => BudgetSummary {
            from_sited: true,
            power_w: budget.power_watts,
            headroom_c: Some(budget.thermal_headroom_c),
        },
        None => BudgetSummary {
            from_sited: false,
            power_w: config.curtailment.static_budget_w,
            headroom_c: None,
        },
    }
}

fn remember(remembered: &mut Remembered, event: Event) {
    match event {
        Event::Polled(report) => {
            remembered.poll = Some(PollSummary {
                at: report.started_at,
                duration: report.duration,
                polled: report.polled,
                ok: report.ok,
                failures: report.failures,
            });
        }
        Event::Scanned(report) => {
            remembered.discovery = Some(DiscoverySummary {
                at: SystemTime::now(),
                report,
            });
        }
        Event::Guarded => {}
    }
}

/// One round after an event: the inventory to the proxy's directory and the metrics, then a
/// snapshot.
async fn publish_round(
    sources: &Sources,
    remembered: &Remembered,
    directory: &InventoryDirectory,
    fleet_metrics: &FleetMetrics,
    proxy_metrics: &ProxyMetrics,
) -> Result<MiningSnapshot> {
    let miners = all_miners(&sources.inventory)
        .await
        .context("reading the inventory")?;
    directory.refresh(&miners);
    fleet_metrics.observe_inventory(&miners);
    let snapshot = sources.take(miners, remembered).await;
    proxy_metrics.observe(&snapshot);
    Ok(snapshot)
}

/// Runs `task` until the stop.
async fn run_until(cancel: tokio_util::sync::CancellationToken, task: impl Future<Output = ()>) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = task => {}
    }
}
