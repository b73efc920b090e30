//! The daemon's life: start in order, say `READY=1` only when everything serves, keep the
//! status current, stop cleanly.
//!
//! Start: state directory → TPM → the CA key (loaded, or enrolled on the first start) → the
//! authority (store, log, CRL; a sealed CA opens too) → on the first start, the site root or,
//! with `[site] ca = "intermediate"`, the request for the offline root →
//! D-Bus → HTTP → ACME → metrics → `READY=1` with a `STATUS=` line that says whether the CA issues
//! (`ready: issuing as … (policy pcr 7+11)`) or why not (`sealed: PCR 11 of this boot
//! differs …`). A sealed CA starts and serves its status, refusing every issuance: nothing
//! ever falls back to a software key. Anything else that fails stops the start with an error.
//!
//! Running: the main loop wakes every [`TICK`], beats the watchdog heartbeat, and every
//! [`STATUS_EVERY`] asks the authority for its status (one TPM policy session, no signature)
//! to update `STATUS=` and the metrics, and at once when sited's site state has moved the CA
//! in or out of lockdown ([`SiteLockdown`], followed from before `READY=1`); every
//! [`CHECKPOINT_EVERY`] it runs the authority's checkpoint (tree head over new entries, CRL
//! before it runs out). TPM and store work runs on the blocking pool and is awaited, so a
//! wedged TPM stalls the loop and the watchdog lets systemd restart trustd.
//!
//! Stop: SIGTERM → `STOPPING=1` → the listeners drain → the bus name is released → exit 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use appliance::dbus::Bus;
use appliance::dbus::contracts::TRUST;
use appliance::metrics::MetricsEndpoint;
use appliance::state::StateDir;
use appliance::systemd::{Heartbeat, Notifier, ShutdownSignal, spawn_watchdog};
use prometheus_client::registry::Registry;
use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::acme::{AcmeBackend, AcmeConfig, AcmeServer};
use crate::acme_backend::{AcmeIdentity, AuthorityBackend, ListenerName, listener_names};
use crate::authority::{Authority, AuthorityConfig, AuthorityError, CaSetup, SetUpOutcome};
use crate::ca::DnsName;
use crate::config::{SERVICE, TrustdConfig};
use crate::dbus::Trust1;
use crate::enrolment;
use crate::http::PublicHttp;
use crate::metrics::TrustMetrics;
use crate::site_lockdown::SiteLockdown;
use crate::status_report::status_line;
use crate::tpm::TpmConnection;

/// How often the main loop wakes (and beats the heartbeat): well under half of `WatchdogSec=30`.
pub const TICK: Duration = Duration::from_secs(2);
/// How often the status line and the metrics are refreshed.
pub const STATUS_EVERY: Duration = Duration::from_secs(10);
/// How often the authority's checkpoint runs (tree heads, CRL refresh).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// How long the stop waits for the listeners to drain.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs trustd until SIGTERM or SIGINT. The configuration was loaded and checked by `main`.
pub async fn run(config: TrustdConfig) -> Result<()> {
    let notifier = Notifier::new();
    let shutdown = ShutdownSignal::install(notifier).context("installing the stop handlers")?;
    let cancel = shutdown.token();
    say(notifier.status("starting: opening the TPM and the CA key"));

    let (authority, setup) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open_authority(&config))
            .await
            .context("the start-up task panicked")??
    };

    let mut registry = Registry::default();
    let metrics = TrustMetrics::register(&mut registry);
    let mut tasks = JoinSet::new();

    let bus = appliance::dbus::serve(
        &Bus::System,
        TRUST.bus_name,
        TRUST.object_path,
        Trust1::new(Arc::clone(&authority), metrics.clone()),
    )
    .await
    .context("serving org.bunkeros.Trust1 on the system bus")?;
    let site = SiteLockdown::follow(Bus::System, Arc::clone(&authority))
        .await
        .context("following the site's state from sited (org.bunkeros.Site1)")?;
    // The CA's own certificate (the first start's root or request) is signed only now that
    // sited's lockdown, if any, applies to it.
    let pending_setup = {
        let authority = Arc::clone(&authority);
        let retry = setup.clone();
        tokio::task::spawn_blocking(move || set_up_ca_if_missing(&authority, &setup))
            .await
            .context("the CA set-up task panicked")??
            .then_some(retry)
    };

    if config.http.enabled {
        let http = PublicHttp::bind(config.http.listen, Arc::clone(&authority))
            .await
            .with_context(|| {
                format!(
                    "cannot listen for CRL and log requests on {} (http.listen)",
                    config.http.listen
                )
            })?;
        tracing::info!(
            "serving the CRL, the root and log proofs over HTTP on {}",
            http.local_addr()
        );
        tasks.spawn(http.serve(cancel.clone()));
    }

    if config.acme.enabled {
        let acme = AcmeListener::new(&authority, &config)?;
        let first = acme.start().await?;
        tasks.spawn(acme.run(first, cancel.clone()));
    }

    let endpoint = MetricsEndpoint::bind(config.metrics.listen.get(), Arc::new(registry))
        .await
        .context("starting the metrics endpoint (metrics.listen)")?;
    tracing::info!("serving metrics on {}", endpoint.local_addr());
    tasks.spawn(endpoint.serve(cancel.clone()));

    let line = refresh_status(&authority, &metrics).await;
    notifier
        .ready(&line)
        .context("telling systemd that trustd is ready")?;
    tracing::info!("READY=1; status: {line}");

    let heartbeat = Heartbeat::new();
    let watchdog = spawn_watchdog(heartbeat.clone(), cancel.clone());
    let mut upkeep = Upkeep {
        authority: &authority,
        metrics: &metrics,
        notifier: &notifier,
        line,
        pending_setup,
    };
    main_loop(&mut upkeep, &heartbeat, &cancel, &site).await;

    // STOPPING=1 was sent by the signal handler; let the listeners drain, release the name.
    if tokio::time::timeout(STOP_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("listeners did not drain in time; cutting them off");
        tasks.abort_all();
    }
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    drop(bus);
    tracing::info!("trustd stopped");
    Ok(())
}

/// Everything up to an authority that can answer: state, TPM, key, store; and what the site
/// configured the CA certificate to be (set up once the site's state is known).
fn open_authority(config: &TrustdConfig) -> Result<(Arc<Authority>, CaSetup)> {
    let state = state_dir()?;
    let connection =
        Arc::new(TpmConnection::open(config.tpm.tcti.as_deref()).context("opening the TPM")?);
    tracing::info!(source = ?connection.source(), "opened the TPM through {}", connection.tcti());
    let enrolled = enrolment::load_or_enrol(connection, &state, &config.policy)
        .context("loading the CA key")?;
    let policy = enrolment::describe(enrolled.key.policy());
    if enrolled.created {
        tracing::info!("enrolled a new CA key in the TPM under policy {policy}");
    } else {
        tracing::info!("loaded the CA key (policy {policy})");
    }
    if let Err(error) = enrolment::install_signed_policy(&enrolled.key, &config.policy) {
        tracing::error!(%error, "no usable signed PCR policy: the CA stays sealed");
    }
    let authority = Authority::open(
        Arc::new(enrolled.key),
        state,
        config.issuance_policy(),
        AuthorityConfig {
            crl_validity: config.crl.validity.as_duration(),
        },
    )
    .context("opening the certificate authority")?;
    let setup = config
        .site
        .ca_setup()
        .context("the site identity ([site])")?;
    Ok((Arc::new(authority), setup))
}

fn state_dir() -> Result<StateDir> {
    StateDir::from_env(SERVICE).context("opening trustd's state directory")
}

/// Sets the CA's certificate up on the first start: the site root, or the request for the
/// offline root (see [`crate::authority::setup`]). A sealed CA or a site in lockdown cannot sign
/// either: that is reported in the status, not a reason to stop, and the main loop tries again
/// once it can (returns true while the set-up is still to do).
fn set_up_ca_if_missing(authority: &Authority, setup: &CaSetup) -> Result<bool> {
    match authority.set_up(setup) {
        Ok(SetUpOutcome::AlreadySetUp) => Ok(false),
        Ok(outcome) => {
            tracing::info!(?outcome, "set up the CA certificate");
            Ok(false)
        }
        Err(error @ (AuthorityError::Sealed { .. } | AuthorityError::Lockdown(_))) => {
            tracing::error!(%error, "cannot set up the CA certificate now; trying again later");
            Ok(true)
        }
        Err(error) => Err(error).context("setting up the CA certificate"),
    }
}

/// What the main loop keeps up to date: the status line (and metrics), and a CA set-up the
/// first start could not do.
struct Upkeep<'a> {
    authority: &'a Arc<Authority>,
    metrics: &'a TrustMetrics,
    notifier: &'a Notifier,
    line: String,
    pending_setup: Option<CaSetup>,
}

impl Upkeep<'_> {
    /// Tells systemd (and the journal) when the status line changed.
    async fn refresh(&mut self) {
        let fresh = refresh_status(self.authority, self.metrics).await;
        if fresh != self.line {
            tracing::info!("trustd's status changed: {fresh}");
            say(self.notifier.status(&fresh));
            self.line = fresh;
        }
    }

    /// Retries the CA set-up the first start could not do; true once it is done.
    async fn retry_setup(&mut self) -> bool {
        let Some(setup) = self.pending_setup.clone() else {
            return false;
        };
        let authority = Arc::clone(self.authority);
        let result =
            tokio::task::spawn_blocking(move || set_up_ca_if_missing(&authority, &setup)).await;
        match result {
            Ok(Ok(false)) => {
                self.pending_setup = None;
                true
            }
            Ok(Ok(true)) => false,
            Ok(Err(error)) => {
                tracing::error!("{error:#}");
                false
            }
            Err(error) => {
                tracing::error!(%error, "the CA set-up task failed");
                false
            }
        }
    }
}

async fn main_loop(
    upkeep: &mut Upkeep<'_>,
    heartbeat: &Heartbeat,
    cancel: &CancellationToken,
    site: &SiteLockdown,
) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now();
    let mut last_checkpoint = Instant::now();
    loop {
        let lockdown_changed = tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => false,
            () = site.applied() => true,
        };
        let mut set_up = false;
        if lockdown_changed || last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            set_up = upkeep.retry_setup().await;
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            last_checkpoint = Instant::now();
            checkpoint(upkeep.authority).await;
        }
        if set_up || lockdown_changed || last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            upkeep.refresh().await;
        }
        heartbeat.beat();
    }
}

/// The status line now, with the metrics updated on the way.
async fn refresh_status(authority: &Arc<Authority>, metrics: &TrustMetrics) -> String {
    let authority = Arc::clone(authority);
    let status = tokio::task::spawn_blocking(move || authority.status()).await;
    match status {
        Ok(Ok(status)) => {
            metrics.observe(&status);
            status_line(&status)
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot read the CA's status");
            format!("degraded: cannot read the CA's status: {error}")
        }
        Err(error) => format!("degraded: the status task failed: {error}"),
    }
}

async fn checkpoint(authority: &Arc<Authority>) {
    let authority = Arc::clone(authority);
    let result =
        tokio::task::spawn_blocking(move || authority.checkpoint(OffsetDateTime::now_utc())).await;
    match result {
        Ok((done, refused)) => {
            if done.signed_tree_head.is_some() || done.crl_number.is_some() {
                tracing::info!(?done, "checkpoint");
            }
            for error in refused {
                tracing::debug!(%error, "checkpoint step postponed");
            }
        }
        Err(error) => tracing::error!(%error, "the checkpoint task failed"),
    }
}

/// The ACME listener: bound with a certificate the CA issues to itself, and bound again with a
/// new one two thirds into that certificate's life. While the CA cannot issue (sealed, lockdown,
/// no root yet) it is not listening, and tries again every [`ACME_RETRY`].
struct AcmeListener {
    authority: Arc<Authority>,
    config: AcmeConfig,
    domain: DnsName,
    names: Vec<ListenerName>,
    lifetime: Duration,
    backend: Arc<dyn AcmeBackend>,
    state: StateDir,
}

/// How often a listener without a certificate tries again.
const ACME_RETRY: Duration = Duration::from_secs(60);

impl AcmeListener {
    fn new(authority: &Arc<Authority>, config: &TrustdConfig) -> Result<Self> {
        let domain = config.site.domain.clone();
        let acme = config.acme.to_acme_config(&domain);
        let policy = config.issuance_policy();
        Ok(Self {
            authority: Arc::clone(authority),
            names: listener_names(&domain, acme.base_url.as_deref()),
            lifetime: policy.service.max_lifetime.as_duration(),
            backend: Arc::new(AuthorityBackend::new(Arc::clone(authority), policy)),
            state: StateDir::open(state_dir()?.path().join("acme"))
                .context("opening the ACME state directory")?,
            config: acme,
            domain,
        })
    }

    /// The first binding, before `READY=1`: a port that cannot be bound stops the start; a CA
    /// that cannot issue the listener's certificate only postpones it (`None`).
    async fn start(&self) -> Result<Option<(AcmeServer, Duration)>> {
        match self.identity().await {
            Ok(identity) => Ok(Some(self.bind(identity).await.with_context(|| {
                format!(
                    "cannot listen for ACME on {} (acme.listen)",
                    self.config.listen
                )
            })?)),
            Err(reason) => {
                tracing::warn!(%reason, "the ACME listener waits until the CA can issue its certificate");
                Ok(None)
            }
        }
    }

    async fn identity(&self) -> std::result::Result<AcmeIdentity, String> {
        let authority = Arc::clone(&self.authority);
        let names = self.names.clone();
        let lifetime = self.lifetime;
        tokio::task::spawn_blocking(move || AcmeIdentity::issue(&authority, &names, lifetime))
            .await
            .map_err(|e| format!("the task issuing the ACME certificate failed: {e}"))?
    }

    async fn bind(&self, identity: AcmeIdentity) -> Result<(AcmeServer, Duration)> {
        let server = AcmeServer::bind(
            self.config.clone(),
            &self.domain,
            &identity.identity,
            Arc::clone(&self.backend),
            self.state.clone(),
        )
        .await?;
        tracing::info!(
            "serving ACME at {} on {} (listener certificate until {})",
            server.directory_url(),
            server.local_addr(),
            crate::status_report::rfc3339(identity.not_after)
        );
        Ok((server, identity.renew_after()))
    }

    async fn run(self, mut current: Option<(AcmeServer, Duration)>, cancel: CancellationToken) {
        loop {
            let wait = match current.take() {
                Some((server, renew_after)) => {
                    let stop = cancel.child_token();
                    let serving = tokio::spawn(server.serve(stop.clone()));
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(renew_after) => {
                            tracing::info!("renewing the ACME listener's certificate");
                        }
                    }
                    stop.cancel();
                    let _ = serving.await;
                    Duration::ZERO
                }
                None => ACME_RETRY,
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.identity().await {
                Ok(identity) => match self.bind(identity).await {
                    Ok(bound) => current = Some(bound),
                    Err(error) => tracing::error!("cannot listen for ACME: {error:#}"),
                },
                Err(reason) => tracing::debug!(%reason, "the ACME listener still waits"),
            }
        }
    }
}

/// Logs a notification that could not be delivered; it is not a reason to stop serving.
fn say(result: Result<(), appliance::systemd::SystemdError>) {
    if let Err(error) = result {
        tracing::warn!(%error, "cannot notify systemd");
    }
}
