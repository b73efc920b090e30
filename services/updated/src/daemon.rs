//! The daemon's life: learn what runs, settle what became of the last install, serve, stop.
//!
//! Start: state directory → the running image and booted slot ([`Booted`]) → the image's TUF
//! root → the ESP's boot entries, and what they say about a pending install (blessed, still
//! being tried, or fallen back: recorded with its reason) → metrics → `org.bunkeros.Update1`
//! on the system bus → `READY=1`. Installs run as tasks of the [`Controller`]; the main loop
//! only keeps the watchdog fed and the slots' view fresh (the health gate and
//! systemd-bless-boot rename entries behind updated's back).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use appliance::config::{root_from_env, rooted};
use appliance::dbus::Bus;
use appliance::dbus::contracts::UPDATE;
use appliance::metrics::{MetricsEndpoint, register_build_info};
use appliance::state::StateDir;
use appliance::systemd::{Heartbeat, Notifier, ShutdownSignal, spawn_watchdog};
use appliance::tls::PinnedRoot;
use appliance::tls::trustd_issue::RequestedName;
use prometheus_client::registry::Registry;
use rustls_pki_types::ServerName;
use tokio_util::sync::CancellationToken;

use crate::boot_entries::Esp;
use crate::booted::Booted;
use crate::controller::Controller;
use crate::disk_layout::find_disk;
use crate::health_gate::BootId;
use crate::rollout::hub_duties::{HubDuties, QuoteJudge};
use crate::rollout::remote_exchange::{
    CLIENT_PROFILE, CoordinatorExchange, ExchangeCertificate, ExchangeServer, SERVER_PROFILE,
    hub_uri, load_hub_roots,
};
use crate::rollout::{AgentExchange, DirectoryExchange, HubAgent, RolloutDesk};
use crate::settings::{CoordinatorSection, RolloutSection, SERVICE, ServeSection, UpdatedSetup};
use crate::update_metrics::UpdateMetrics;
use crate::update_state::{BootVerdict, BootedSystem, UpdateStateStore, now};
use crate::update1::Update1;

/// The boot id during which the pending install was written.
const INSTALL_BOOT_FILE: &str = "install-boot-id";

/// The slots' view is read again this often (the gate and systemd-bless-boot rename entries).
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Runs updated until SIGTERM or SIGINT, on the system bus.
pub async fn run(setup: UpdatedSetup) -> Result<()> {
    run_on(setup, Bus::System).await
}

/// [`run`] on `bus` (tests use a private bus); `$BUNKEROS_ROOT` stands in for `/`.
pub async fn run_on(setup: UpdatedSetup, bus: Bus) -> Result<()> {
    let notifier = Notifier::new();
    let shutdown = ShutdownSignal::install(notifier).context("installing the stop handlers")?;
    let cancel = shutdown.token();
    let state = StateDir::from_env(SERVICE).context("opening updated's state directory")?;
    let root = root_from_env();
    let root = root.as_deref();
    let config = setup.config;

    let booted = Booted::read(root.unwrap_or(Path::new("/")))
        .context("reading the running image and its slot")?;
    let trusted_root_path = rooted(root, &config.release.trusted_root);
    let trusted_root = std::fs::read(&trusted_root_path).with_context(|| {
        format!(
            "reading the image's TUF root {}",
            trusted_root_path.display()
        )
    })?;
    let esp = Esp::new(rooted(root, &config.install.esp));
    let disk = match &config.install.disk {
        Some(disk) => rooted(root, disk),
        None => find_disk(
            &rooted(root, Path::new("/dev")),
            &rooted(root, Path::new("/sys")),
        )
        .context("finding the disk that holds the slots")?,
    };
    tracing::info!(
        slot = %booted.slot,
        version = %booted.image.version,
        disk = %disk.display(),
        "running"
    );

    let store = UpdateStateStore::new(state.clone());
    let mut registry = Registry::default();
    register_build_info(&mut registry, SERVICE, env!("CARGO_PKG_VERSION"));
    let metrics = UpdateMetrics::register(&mut registry);
    settle_last_install(&store, &state, &esp, &booted, &metrics);

    let endpoint = MetricsEndpoint::bind(config.metrics.listen.get(), Arc::new(registry))
        .await
        .context("starting the metrics endpoint (metrics.listen)")?;
    tracing::info!("serving metrics on {}", endpoint.local_addr());
    tokio::spawn(endpoint.serve(cancel.clone()));

    let rollout = config.rollout.clone();
    let rollout_metrics = metrics.clone();
    let controller = Arc::new(Controller::new(
        config,
        booted,
        esp,
        disk,
        trusted_root,
        state.path().to_owned(),
        store,
        metrics,
    ));
    let duties = rollout_duties(root, &rollout, &state, &bus, &cancel, rollout_metrics).await?;
    let mut update1 = Update1::new(Arc::clone(&controller));
    if let Some(desk) = duties.as_ref().and_then(|duties| duties.desk.as_ref()) {
        update1 = update1.with_rollout(Arc::clone(desk));
    } else if let Some(coordinator) = &rollout.coordinator {
        update1 = update1.following(coordinator.hub.clone());
    }
    let connection = appliance::dbus::serve(&bus, UPDATE.bus_name, UPDATE.object_path, update1)
        .await
        .context("serving org.bunkeros.Update1 on the system bus")?;
    let iface = connection
        .object_server()
        .interface::<_, Update1>(UPDATE.object_path)
        .await
        .context("finding the served Update1 object")?;
    controller.attach(iface);

    let line = status_line(&controller);
    notifier
        .ready(&line)
        .context("telling systemd that updated is ready")?;
    tracing::info!("READY=1; status: {line}");

    // Rollout work runs beside the main loop: a coordinator far away over hubd, or a release
    // verified from a slow mirror, must neither delay the watchdog's heartbeat nor be cut off
    // half way (each exchange call and mirror fetch has its own time limits).
    if let Some(duties) = duties {
        tokio::spawn(run_duties(duties, Arc::clone(&controller), cancel.clone()));
    }
    let heartbeat = Heartbeat::new();
    let watchdog = spawn_watchdog(heartbeat.clone(), cancel.clone());
    let mut refresh = tokio::time::interval(REFRESH_EVERY);
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = refresh.tick() => {
                controller.refresh_slots();
                heartbeat.beat();
            }
        }
    }
    tracing::info!("stopping");
    drop(connection);
    if let Some(task) = watchdog {
        let _ = task.await;
    }
    Ok(())
}

/// The rollout duties, one turn every [`REFRESH_EVERY`] until `cancel` fires.
async fn run_duties(duties: HubDuties, controller: Arc<Controller>, cancel: CancellationToken) {
    let mut turns = tokio::time::interval(REFRESH_EVERY);
    turns.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = turns.tick() => duties.tick(&controller, now()).await,
        }
    }
}

/// The rollout duties `[rollout]` asks for: coordinate through the exchange directory (and
/// serve it to other hubs over hubd), or follow a coordinator at another hub; none without
/// either. The exchange certificates come from trustd in the background.
async fn rollout_duties(
    root: Option<&Path>,
    rollout: &RolloutSection,
    state: &StateDir,
    bus: &Bus,
    cancel: &CancellationToken,
    metrics: UpdateMetrics,
) -> Result<Option<HubDuties>> {
    let Some(hub) = rollout.hub.clone() else {
        return Ok(None);
    };
    let (desk, exchange) = match (&rollout.exchange, &rollout.coordinator) {
        (Some(directory), _) => {
            let exchange = DirectoryExchange::new(rooted(root, directory));
            if let Some(serve) = &rollout.serve {
                serve_exchange(root, serve, exchange.clone(), bus, cancel).await?;
            }
            let desk = RolloutDesk::open(state.clone(), exchange.clone(), Box::new(QuoteJudge))
                .context("opening the rollout desk (rollout.json)")?;
            (Some(Arc::new(desk)), AgentExchange::Directory(exchange))
        }
        (None, Some(coordinator)) => {
            let exchange = follow_coordinator(root, &hub, coordinator, bus, cancel)?;
            (None, AgentExchange::Coordinator(exchange))
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(HubDuties {
        desk,
        agent: HubAgent::new(hub.clone(), exchange, state.clone()),
        hub,
        state: state.clone(),
        store: UpdateStateStore::new(state.clone()),
        metrics,
    }))
}

/// Binds `[rollout.serve]`'s listener and keeps its certificate from trustd fresh.
async fn serve_exchange(
    root: Option<&Path>,
    serve: &ServeSection,
    exchange: DirectoryExchange,
    bus: &Bus,
    cancel: &CancellationToken,
) -> Result<()> {
    let hub_roots = load_hub_roots(&rooted(root, &serve.hub_roots))
        .map_err(anyhow::Error::msg)
        .context("reading the hubs' pinned roots (rollout.serve.hub_roots)")?;
    let certificate = certificate_from_trustd(
        RequestedName::Dns(serve.name.clone()),
        SERVER_PROFILE,
        bus,
        cancel,
    );
    let hubs = hub_roots
        .iter()
        .map(|(hub, _)| hub.to_owned())
        .collect::<Vec<_>>();
    let server = ExchangeServer::bind(serve.listen, certificate, hub_roots, exchange)
        .await
        .with_context(|| {
            format!(
                "listening for the rollout exchange on {} (rollout.serve.listen)",
                serve.listen
            )
        })?;
    tracing::info!(
        "serving the rollout exchange on {} as {} to hubs {}",
        server.local_addr(),
        serve.name,
        hubs.join(", ")
    );
    tokio::spawn(server.serve(cancel.clone()));
    Ok(())
}

/// The coordinator's exchange as `[rollout.coordinator]` names it, with this hub's certificate
/// from trustd kept fresh.
fn follow_coordinator(
    root: Option<&Path>,
    hub: &str,
    coordinator: &CoordinatorSection,
    bus: &Bus,
    cancel: &CancellationToken,
) -> Result<CoordinatorExchange> {
    let root_path = rooted(root, &coordinator.root);
    let pinned = std::fs::read(&root_path)
        .map_err(anyhow::Error::from)
        .and_then(|pem| PinnedRoot::from_pem(&pem).map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "reading the coordinator's root {} (rollout.coordinator.root)",
                root_path.display()
            )
        })?;
    let server_name = ServerName::try_from(coordinator.name.clone())
        .context("rollout.coordinator.name is not a DNS name")?;
    let certificate = certificate_from_trustd(
        RequestedName::Uri(hub_uri(hub)),
        CLIENT_PROFILE,
        bus,
        cancel,
    );
    tracing::info!(
        "following the rollouts of {} through {} ({})",
        coordinator.hub,
        coordinator.address,
        coordinator.name
    );
    Ok(CoordinatorExchange::new(
        hub,
        coordinator.address,
        server_name,
        pinned,
        certificate,
    ))
}

/// The exchange's certificate for `name`, asked of trustd now and kept fresh in the background.
fn certificate_from_trustd(
    name: RequestedName,
    profile: &'static str,
    bus: &Bus,
    cancel: &CancellationToken,
) -> Arc<ExchangeCertificate> {
    let certificate = Arc::new(ExchangeCertificate::from_trustd(name, profile));
    tokio::spawn({
        let (certificate, bus, cancel) = (Arc::clone(&certificate), bus.clone(), cancel.clone());
        async move { certificate.keep_fresh(bus, cancel).await }
    });
    certificate
}

/// Records what became of a pending install now that the appliance booted (blessed, or fell
/// back with the reason), so the status says it from the first moment.
fn settle_last_install(
    store: &UpdateStateStore,
    state: &StateDir,
    esp: &Esp,
    booted: &Booted,
    metrics: &UpdateMetrics,
) {
    // A restart of updated is not a reboot: the slot installed during this boot has not had its
    // chance to boot yet, so there is nothing to settle.
    if installed_this_boot(state) {
        tracing::info!("the pending install was made during this boot: it starts at the next boot");
        return;
    }
    let entries = match esp.entries() {
        Ok(entries) => entries,
        Err(error) => {
            tracing::error!(%error, "cannot read the boot entries on the ESP");
            return;
        }
    };
    let system = BootedSystem {
        slot: booted.slot,
        roothash: booted.roothash.clone(),
        version: booted.image.version,
    };
    let at = i64::try_from(now()).unwrap_or(i64::MAX);
    match store.reconcile_after_boot(&system, &entries) {
        Ok(BootVerdict::NothingPending) => {}
        Ok(BootVerdict::AwaitingGate { slot, version }) => {
            tracing::info!(%slot, %version, "the new slot is on trial: the health gate decides");
        }
        Ok(BootVerdict::MarkedBad { reason }) => tracing::warn!("{reason}"),
        Ok(BootVerdict::Blessed { slot, version }) => {
            tracing::info!(%slot, %version, "the new slot was blessed");
            metrics.record_result("blessed", at);
        }
        Ok(BootVerdict::FellBack { reason }) => {
            tracing::warn!("fell back: {reason}");
            metrics.record_result("fell-back", at);
        }
        Err(error) => tracing::error!(%error, "cannot settle the last install"),
    }
}

/// Whether the pending install (if any) was written during the current boot.
pub fn installed_this_boot(state: &StateDir) -> bool {
    let Ok(boot) = BootId::read() else {
        return false;
    };
    matches!(
        state.read(INSTALL_BOOT_FILE),
        Ok(Some(bytes)) if bytes == boot.as_str().as_bytes()
    )
}

/// Records that an install was written during the current boot (see [`installed_this_boot`]).
pub fn mark_installed_this_boot(state: &StateDir) {
    let written = BootId::read().map_err(|e| e.to_string()).and_then(|boot| {
        state
            .write_atomic(INSTALL_BOOT_FILE, boot.as_str().as_bytes())
            .map_err(|e| e.to_string())
    });
    if let Err(error) = written {
        tracing::warn!(%error, "cannot record the boot an install was made in");
    }
}

fn status_line(controller: &Controller) -> String {
    let booted = controller.booted();
    let view = controller.view();
    let next = view.next.map_or_else(
        || "no next boot entry".to_owned(),
        |next| format!("next boot slot {}", next.slot),
    );
    format!(
        "running BunkerOS {} from slot {}; {next}",
        booted.image.version, booted.slot
    )
}
