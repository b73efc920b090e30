//! The daemon's life: start in order, say `READY=1` once the hub has its identity and listens,
//! keep the status current, stop cleanly.
//!
//! Start: state directory → the site's state from sited ([`SiteTransit`], so the first
//! advertisement already says "no transit" in a lockdown) → the hub identity
//! ([`hub_identity`]: from trustd, retried with the reason in `STATUS=` while trustd cannot issue,
//! or from PEM files) → one [`LinkEndpoint`] per `hub.listen` address → flooding → the link
//! supervisor (accept, dial, redial) → metrics → `READY=1`.
//!
//! Running: links that come up go to flooding; sited's decisions set transit; every [`TICK`] the
//! main loop reads the control plane, refreshes the metrics and, when it changed, the status
//! line (`hub madrid-1 (ES): 2/3 links up, 5 hubs trusted, transit offered`), and beats the
//! watchdog.
//!
//! Renewal ([`renewal`]): two thirds into the life of a certificate from trustd, or at SIGHUP,
//! a new identity is taken and put into use without dropping a link or a session: the link
//! endpoints present it to new handshakes, flooding re-originates with it, the relay signs
//! receipts with it. While trustd cannot issue, the hub keeps its certificate and asks again
//! with a backoff; the status line says so.
//!
//! Stop: SIGTERM → `STOPPING=1` → links closed (peers see them go at once) → exit 0.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use appliance::dbus::Bus;
use appliance::dbus::contracts::HUB;
use appliance::metrics::MetricsEndpoint;
use appliance::state::StateDir;
use appliance::systemd::{Heartbeat, Notifier, ShutdownSignal, spawn_watchdog};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::circuit::{Relay, RelaySettings};
use crate::config::services;
use crate::config::{HubdSetup, SERVICE};
use crate::flooding::driver::FloodingHandle;
use crate::flooding::{ControlPlaneView, Flooding, FloodingSettings};
use crate::forwarding::Forwarding;
use crate::hub_id::HubId;
use crate::hub_identity::{self, HubIdentity};
use crate::hub1::Hub1;
use crate::ip_plane::{IpPlane, Tun};
use crate::link_supervisor::LinkSupervisor;
use crate::links::{Link, LinkEndpoint, LinkEvents, LinkTiming};
use crate::metrics::HubMetrics;
use crate::renewal::{Renewal, RenewalEvent};
use crate::session::SessionSettings;
use crate::site_transit::{SiteTransit, TransitDecision};
use crate::snapshot::HubSnapshot;

/// How often the main loop wakes: refreshes metrics and status, beats the watchdog.
pub const TICK: Duration = Duration::from_secs(1);
/// How long a hub waits before asking trustd for its certificate again.
pub const IDENTITY_RETRY: Duration = Duration::from_secs(10);
/// How long the stop waits for the links to close.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs hubd until SIGTERM or SIGINT. The configuration was loaded and checked by `main`, which
/// also created the TUN of `[tun]` (`tun`) before giving up its capabilities.
pub async fn run(setup: HubdSetup, tun: Option<Tun>) -> Result<()> {
    let notifier = Notifier::new();
    let shutdown = ShutdownSignal::install(notifier).context("installing the stop handlers")?;
    let cancel = shutdown.token();
    // SIGHUP (`systemctl reload hubd`): a new identity now. Installed first, so that a SIGHUP
    // while starting does not end the process.
    let mut reload = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let config = &setup.config;
    let own = config.hub.id.clone().expect("validated: hub.id");
    let jurisdiction = config
        .hub
        .jurisdiction
        .expect("validated: hub.jurisdiction");
    let state = StateDir::from_env(SERVICE).context("opening hubd's state directory")?;

    let site = SiteTransit::follow(Bus::System, state)
        .await
        .context("following the site's state from sited (org.bunkeros.Site1)")?;
    let mut transit = site.decisions();

    let Some(identity) = obtain_identity(&setup, &own, &notifier, &cancel).await else {
        return Ok(());
    };
    tracing::info!(
        "hub {own} ({jurisdiction}) speaks with the certificate from {}",
        identity.source
    );

    let peers = setup.peers.clone();
    let mut endpoints = Vec::new();
    let mut all_events = Vec::new();
    for &address in &config.hub.listen {
        let (endpoint, events) = LinkEndpoint::bind(
            address,
            identity.identity.clone(),
            peers.clone(),
            LinkTiming::default(),
        )
        .with_context(|| format!("cannot listen for links on {address} (hub.listen)"))?;
        tracing::info!("accepting links on {}", endpoint.local_addr()?);
        endpoints.push(Arc::new(endpoint));
        all_events.push(events);
    }

    let mut flooding = Flooding::new(
        identity.identity.clone(),
        jurisdiction,
        &peers,
        FloodingSettings::default(),
        SystemTime::now(),
    )
    .context("starting the control plane")?;
    let first = transit.borrow_and_update().clone();
    if !first.transit() {
        flooding.set_transit(false, SystemTime::now());
    }
    let ip_plane = tun
        .map(|tun| IpPlane::with_tun(tun, &config.route))
        .transpose()
        .context("attaching the TUN interface ([tun])")?;
    if let Some((ip, _)) = &ip_plane {
        flooding.set_prefixes(ip.prefixes(), SystemTime::now());
    }
    let flooding = FloodingHandle::spawn(flooding, LinkEvents::merge(all_events));
    let (relay, inbound) = Relay::new(
        identity.identity.clone(),
        jurisdiction,
        Arc::new(peers.clone()),
        RelaySettings::default(),
    );
    relay.set_transit(first.transit());

    let (links_up, mut arriving) = mpsc::channel::<Link>(64);
    let supervisor = LinkSupervisor::start(&endpoints, &peers, links_up, cancel.clone());

    let mut registry = Registry::default();
    let metrics = HubMetrics::register(&mut registry);
    metrics.certificate(identity.not_after);
    let endpoint = MetricsEndpoint::bind(config.metrics.listen.get(), Arc::new(registry))
        .await
        .context("starting the metrics endpoint (metrics.listen)")?;
    tracing::info!("serving metrics on {}", endpoint.local_addr());
    let metrics_task = tokio::spawn(endpoint.serve(cancel.clone()));

    let configured: usize = peers.iter().map(|agreement| agreement.links().len()).sum();
    let status = Status {
        own: own.clone(),
        configured,
        transit: first,
    };
    let view = flooding.view().await.context("the control plane stopped")?;
    let mut snapshot_parts = SnapshotParts {
        own: own.clone(),
        peers: Arc::new(peers.clone()),
        policies: Arc::new(
            config
                .path_policies()
                .into_iter()
                .map(|(name, policy)| (name.to_owned(), policy))
                .collect(),
        ),
        certificate_source: identity.source.clone(),
        certificate_not_after: identity.not_after,
        certificate_renewal_error: None,
    };
    let mut line = status.line(&view, &snapshot_parts);
    relay_control_plane(&relay, &view);
    let (snapshots, _first_reader) =
        tokio::sync::watch::channel(Arc::new(snapshot_parts.take(view, &status.transit)));

    let (published, reached) = services::roles(&config.service);
    let listeners = Forwarding::bind(&reached).await?;
    let forwarding = Forwarding::new(
        relay.clone(),
        snapshots.subscribe(),
        SessionSettings::default(),
    );
    let forwarding_tasks = forwarding.spawn(listeners, &published, inbound, &cancel);
    let ip_tasks = ip_plane.map(|(ip, arriving)| {
        forwarding.carry_packets_to(ip.packet_circuits());
        let tasks = ip.spawn(arriving, relay.clone(), snapshots.subscribe(), &cancel);
        (ip, tasks)
    });
    let bus = appliance::dbus::serve(
        &Bus::System,
        HUB.bus_name,
        HUB.object_path,
        Hub1::new(snapshots.subscribe(), forwarding.sessions().clone()),
    )
    .await
    .context("serving org.bunkeros.Hub1 on the system bus")?;
    notifier
        .ready(&line)
        .context("telling systemd that hubd is ready")?;
    tracing::info!("READY=1; status: {line}");

    let mut renewal = Renewal::spawn(
        config.certificate.clone(),
        own.clone(),
        Bus::System,
        identity.renew_at,
        cancel.clone(),
    );
    if let Some(at) = identity.renew_at {
        tracing::info!(
            "the hub certificate is valid until {}; it is renewed from {}",
            rfc3339(identity.not_after),
            rfc3339(at)
        );
    }
    let identity_parts = IdentityParts {
        endpoints: &endpoints,
        flooding: &flooding,
        relay: &relay,
        metrics: &metrics,
    };

    let heartbeat = Heartbeat::new();
    let watchdog = spawn_watchdog(heartbeat.clone(), cancel.clone());
    let mut status = status;
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut following_site = true;
    let mut reloading = true;
    let mut view_changes = flooding.changes();
    let mut following_view = true;
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            Some(link) = arriving.recv() => {
                // The relay takes the link's circuit streams, flooding its control stream.
                relay.link_up(link.streams());
                if flooding.add_link(link).await.is_err() {
                    anyhow::bail!("the control plane stopped");
                }
            }
            changed = transit.changed(), if following_site => {
                if changed.is_err() {
                    tracing::error!("the watch of sited's site state ended; transit stays as it is");
                    following_site = false;
                    continue;
                }
                let decision = transit.borrow_and_update().clone();
                relay.set_transit(decision.transit());
                if flooding.set_transit(decision.transit()).await.is_err() {
                    anyhow::bail!("the control plane stopped");
                }
                status.transit = decision;
            }
            signal = reload.recv(), if reloading => {
                if signal.is_some() {
                    tracing::info!("SIGHUP: taking a new hub identity now");
                    renewal.renew_now();
                } else {
                    reloading = false;
                }
            }
            Some(event) = renewal.next() => {
                identity_parts.apply(event, &mut snapshot_parts).await?;
            }
            // A new view for path selection as soon as the control plane changes: a session
            // whose link broke finds its backup path without waiting for the tick.
            changed = view_changes.changed(), if following_view => {
                following_view = changed.is_ok();
            }
            _ = ticker.tick() => {}
        }
        let view = flooding.view().await.context("the control plane stopped")?;
        metrics.observe(&view, &supervisor.counters(), configured);
        metrics.observe_data_plane(&relay.counters(), &forwarding);
        if let Some((ip, _)) = &ip_tasks {
            metrics.observe_ip(&ip.counters());
        }
        relay_control_plane(&relay, &view);
        let fresh = status.line(&view, &snapshot_parts);
        snapshots.send_replace(Arc::new(snapshot_parts.take(view, &status.transit)));
        if fresh != line {
            tracing::info!("status: {fresh}");
            if let Err(error) = notifier.status(&fresh) {
                tracing::warn!(%error, "cannot tell systemd the status");
            }
            line = fresh;
        }
        heartbeat.beat();
    }

    // STOPPING=1 was sent by the signal handler.
    drop(forwarding_tasks);
    drop(ip_tasks);
    for endpoint in &endpoints {
        endpoint.close();
    }
    let closing = async {
        flooding.stop().await;
        supervisor.stopped().await;
        for endpoint in &endpoints {
            endpoint.wait_idle().await;
        }
        let _ = metrics_task.await;
    };
    if tokio::time::timeout(STOP_TIMEOUT, closing).await.is_err() {
        tracing::warn!("links did not close in time");
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    drop(site);
    drop(bus);
    tracing::info!("hubd stopped");
    Ok(())
}

fn rfc3339(at: SystemTime) -> String {
    crate::hub1::documents::rfc3339(crate::advertisement::Timestamp::from(at))
}

/// What a new identity is put into.
struct IdentityParts<'a> {
    endpoints: &'a [Arc<LinkEndpoint>],
    flooding: &'a FloodingHandle,
    relay: &'a Relay,
    metrics: &'a HubMetrics,
}

impl IdentityParts<'_> {
    /// Puts a renewed identity into use, or notes why renewing failed (for the status line and
    /// Hub1's `Status`).
    async fn apply(&self, event: RenewalEvent, snapshot: &mut SnapshotParts) -> Result<()> {
        let identity = match event {
            RenewalEvent::Renewed(identity) => identity,
            RenewalEvent::Failed { error, retry_in } => {
                self.metrics.renewal(false);
                let expired = SystemTime::now() >= snapshot.certificate_not_after;
                let state = if expired {
                    format!(
                        "the hub certificate EXPIRED at {} (peers refuse new links)",
                        rfc3339(snapshot.certificate_not_after)
                    )
                } else {
                    format!(
                        "keeping the hub certificate valid until {}",
                        rfc3339(snapshot.certificate_not_after)
                    )
                };
                let next = retry_in.map_or_else(
                    || "not retried until the next SIGHUP".to_owned(),
                    |pause| format!("asking again in {} s", pause.as_secs()),
                );
                if expired {
                    tracing::error!("cannot renew the hub identity: {error}; {state}; {next}");
                } else {
                    tracing::warn!("cannot renew the hub identity: {error}; {state}; {next}");
                }
                snapshot.certificate_renewal_error = Some(error);
                return Ok(());
            }
        };
        // Cannot fail for an identity that passed the checks of `hub_identity` (the same
        // configuration was built at start); if it did, the daemon stops with the error and
        // systemd starts it again, rather than keep a certificate the schedule no longer renews.
        for endpoint in self.endpoints {
            endpoint
                .set_identity(identity.identity.clone())
                .context("building the link TLS configuration for the renewed identity")?;
        }
        if self
            .flooding
            .set_identity(identity.identity.clone())
            .await
            .is_err()
        {
            anyhow::bail!("the control plane stopped");
        }
        self.relay.set_identity(identity.identity.clone());
        self.metrics.renewal(true);
        self.metrics.certificate(identity.not_after);
        let next = identity.renew_at.map_or_else(String::new, |at| {
            format!("; next renewal from {}", rfc3339(at))
        });
        tracing::info!(
            "renewed the hub identity: now the certificate from {}, valid until {}{next} (links and sessions stay up)",
            identity.source,
            rfc3339(identity.not_after)
        );
        snapshot.certificate_source = identity.source;
        snapshot.certificate_not_after = identity.not_after;
        snapshot.certificate_renewal_error = None;
        Ok(())
    }
}

/// The hub identity, asking again every [`IDENTITY_RETRY`] while trustd cannot issue it (the
/// reason is the status line meanwhile); `None` when stopped while waiting. PEM files that do
/// not make an identity are not retried: `--check-config` refuses them already.
async fn obtain_identity(
    setup: &HubdSetup,
    own: &HubId,
    notifier: &Notifier,
    cancel: &CancellationToken,
) -> Option<HubIdentity> {
    let source = &setup.config.certificate;
    loop {
        match hub_identity::obtain(source, own, &Bus::System).await {
            Ok(identity) => return Some(identity),
            Err(error) => {
                let line = format!("waiting for the hub certificate: {error}");
                tracing::warn!("{line}; asking again in {IDENTITY_RETRY:?}");
                if let Err(error) = notifier.status(&line) {
                    tracing::warn!(%error, "cannot tell systemd the status");
                }
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(IDENTITY_RETRY) => {}
        }
    }
}

/// Tells the relay which hubs the control plane vouches for now: their chains (for the
/// end-to-end handshakes and the receipts) and jurisdictions.
fn relay_control_plane(relay: &Relay, view: &ControlPlaneView) {
    let jurisdictions = view
        .advertisements
        .iter()
        .map(|(hub, advertisement)| (hub.clone(), advertisement.jurisdiction()))
        .collect();
    relay.set_control_plane(view.chains.clone(), jurisdictions);
}

/// What a snapshot holds that changes only with the hub identity.
struct SnapshotParts {
    own: HubId,
    peers: Arc<crate::peering::Peers>,
    policies: Arc<std::collections::BTreeMap<String, crate::path_policy::PathPolicy>>,
    certificate_source: String,
    certificate_not_after: SystemTime,
    certificate_renewal_error: Option<String>,
}

impl SnapshotParts {
    fn take(&self, view: ControlPlaneView, transit: &TransitDecision) -> HubSnapshot {
        HubSnapshot {
            own: self.own.clone(),
            view,
            peers: Arc::clone(&self.peers),
            policies: Arc::clone(&self.policies),
            transit: transit.clone(),
            certificate_source: self.certificate_source.clone(),
            certificate_not_after: self.certificate_not_after,
            certificate_renewal_error: self.certificate_renewal_error.clone(),
            taken_at: SystemTime::now(),
        }
    }
}

/// What the status line says.
struct Status {
    own: HubId,
    configured: usize,
    transit: TransitDecision,
}

impl Status {
    /// `hub madrid-1 (ES): 2/3 links up, 5 hubs trusted, transit offered`.
    /// While renewing the certificate fails: `…, transit offered; certificate renewal failing:
    /// <why>` (`certificate EXPIRED, renewal failing: …` once it has expired).
    fn line(&self, view: &ControlPlaneView, certificate: &SnapshotParts) -> String {
        let transit = if view.transit {
            "transit offered".to_owned()
        } else {
            format!("no transit ({})", self.transit.reason)
        };
        let renewal = match &certificate.certificate_renewal_error {
            None => String::new(),
            Some(error) if SystemTime::now() >= certificate.certificate_not_after => {
                format!("; certificate EXPIRED, renewal failing: {error}")
            }
            Some(error) => format!("; certificate renewal failing: {error}"),
        };
        format!(
            "hub {} ({}): {}/{} links up, {} hubs trusted, {transit}{renewal}",
            self.own,
            view.own.jurisdiction(),
            view.links.len(),
            self.configured,
            view.trusted.len(),
        )
    }
}
