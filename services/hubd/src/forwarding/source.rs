//! The source end: a local listener per reached service, a session per client connection, and
//! a new circuit whenever the one carrying the session breaks.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::request::{self, Request, ServiceReply};
use super::sessions::{SessionRecord, SessionRole};
use super::{Forwarding, ForwardingCounters, REQUEST_TIMEOUT};
use crate::circuit::{CircuitStream, Hop, Relay, Route};
use crate::config::services::ReachedService;
use crate::hub_id::HubId;
use crate::path_policy::PathPolicy;
use crate::path_selection::{self, Path};
use crate::session::{self, SessionEvent};
use crate::session_id::SessionId;
use crate::snapshot::Snapshots;

/// The end-to-end session a source holds on one circuit.
pub(crate) type ClientStream = tokio_rustls::client::TlsStream<CircuitStream>;

/// Why no circuit to a destination could be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenFailure {
    /// The destination refused what was asked (it would along any path): `not_granted`,
    /// `unknown_service`, `session_ended`, ...
    #[error("{hub} refused {asked}: {label}")]
    Refused {
        hub: HubId,
        asked: String,
        label: String,
    },
    /// No compliant path, or none of them carried the request.
    #[error("{0}")]
    NoCircuit(String),
}

/// Pause between attempts at a new circuit while a session waits for one.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MOST: Duration = Duration::from_millis(500);

/// Accepts clients of `service` until cancelled; each connection is a session of its own.
pub(super) async fn serve_listener(
    forwarding: Arc<Forwarding>,
    service: ReachedService,
    listener: TcpListener,
    cancel: CancellationToken,
) {
    tracing::info!(service = %service.name, listen = %service.listen, hub = %service.hub, "serving clients of the service");
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((client, _)) => {
                let _ = client.set_nodelay(true);
                tokio::spawn(carry(Arc::clone(&forwarding), service.clone(), client));
            }
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(service = %service.name, %error, "cannot accept a client");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Carries one client connection to the hub that publishes the service.
async fn carry(forwarding: Arc<Forwarding>, service: ReachedService, mut client: TcpStream) {
    let id = SessionId::random();
    let (stream, hops, route) = match open_circuit(&forwarding, &service, id, None).await {
        Ok(opened) => opened,
        Err(reason) => {
            tracing::warn!(session = %id, service = %service.name, "client refused: {reason}");
            ForwardingCounters::count(&forwarding.counters.refused);
            reset(client);
            return;
        }
    };
    ForwardingCounters::count(&forwarding.counters.sessions_started);
    tracing::info!(session = %id, service = %service.name, path = %describe(&hops), "session started");
    forwarding.sessions.start(
        SessionRecord {
            id,
            service: service.name.clone(),
            role: SessionRole::Source,
            peer: service.hub.clone(),
            hops,
            verified: true,
            circuits: 1,
            started: SystemTime::now(),
            ended: None,
        },
        None,
    );
    let (transports, handed) = mpsc::channel(2);
    let _ = transports.send(stream).await;
    let (events, heard) = mpsc::channel(16);
    let failover = tokio::spawn(keep_carried(
        Arc::clone(&forwarding),
        service.clone(),
        id,
        route,
        heard,
        transports,
    ));
    let outcome = session::run(&mut client, handed, events, forwarding.settings.clone()).await;
    failover.abort();
    let how = match outcome {
        Ok(report) => {
            tracing::info!(session = %id, sent = report.sent, received = report.received, circuits = report.transports, "session ended");
            "closed".to_owned()
        }
        Err(error) => {
            tracing::warn!(session = %id, reason = error.label(), "session failed: {error}");
            ForwardingCounters::count(&forwarding.counters.failed);
            reset(client);
            format!("failed: {error}")
        }
    };
    forwarding.sessions.end(&id, how);
}

/// Hands the session a new circuit after each one it loses, until it ends or no circuit can
/// be had within its resume time (then dropping `transports` ends it).
async fn keep_carried(
    forwarding: Arc<Forwarding>,
    service: ReachedService,
    id: SessionId,
    mut route: Route,
    mut heard: mpsc::Receiver<SessionEvent>,
    transports: mpsc::Sender<ClientStream>,
) {
    while let Some(event) = heard.recv().await {
        let SessionEvent::TransportLost { reason, .. } = event else {
            continue;
        };
        tracing::info!(session = %id, "circuit lost ({reason}); moving to another path");
        let deadline = Instant::now() + forwarding.settings.resume_within;
        let mut pause = RETRY_FIRST;
        let mut topology = forwarding.snapshots.clone();
        topology.mark_unchanged();
        loop {
            match open_circuit(&forwarding, &service, id, Some(&route)).await {
                Ok((stream, hops, new_route)) => {
                    tracing::info!(session = %id, path = %describe(&hops), "session moved");
                    ForwardingCounters::count(&forwarding.counters.failovers);
                    forwarding.sessions.moved(&id, hops);
                    route = new_route;
                    if transports.send(stream).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(error @ OpenFailure::Refused { .. }) => {
                    // The destination's session ended (it had every byte, or gave up) or the
                    // service is no longer granted: no other circuit will be taken either.
                    tracing::info!(session = %id, "no new circuit: {error}");
                    return;
                }
                Err(error) if Instant::now() + pause < deadline => {
                    tracing::debug!(session = %id, "no circuit yet: {error}");
                    next_attempt(&mut topology, pause).await;
                    pause = (pause * 2).min(RETRY_MOST);
                }
                Err(error) => {
                    tracing::warn!(session = %id, "no circuit within the resume time: {error}");
                    return;
                }
            }
        }
    }
}

/// Waits for the next attempt at a circuit: until the control plane publishes a new view (the
/// link that broke is withdrawn, a backup appears: worth trying at once) or `pause` passes.
async fn next_attempt(topology: &mut Snapshots, pause: Duration) {
    tokio::select! {
        changed = topology.changed() => {
            if changed.is_err() {
                // The control plane stopped: nothing new will come, only the pause is left.
                tokio::time::sleep(pause).await;
            }
        }
        () = tokio::time::sleep(pause) => {}
    }
}

/// A circuit to the service's hub along a compliant path (the one that just failed last), with
/// the service taken by the destination: the end-to-end stream, its proven hops, its route.
async fn open_circuit(
    forwarding: &Forwarding,
    service: &ReachedService,
    id: SessionId,
    failed: Option<&Route>,
) -> Result<(ClientStream, Vec<Hop>, Route), OpenFailure> {
    let to = Destination {
        hub: &service.hub,
        policy: service.path_policy.as_deref(),
    };
    let asked = Request::Service(service.name.clone());
    open_asking(
        &forwarding.relay,
        &forwarding.snapshots,
        to,
        &asked,
        id,
        failed,
    )
    .await
}

/// Where a circuit goes: the hub, and the named path policy it follows (none: any path).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Destination<'a> {
    pub(crate) hub: &'a HubId,
    pub(crate) policy: Option<&'a str>,
}

/// A circuit to `to` along a compliant path (the one that just `failed` last) whose destination
/// took what was `asked` (a service, or packets): the end-to-end stream, its proven hops, its
/// route; or why none could be had.
pub(crate) async fn open_asking(
    relay: &Relay,
    snapshots: &Snapshots,
    to: Destination<'_>,
    asked: &Request,
    id: SessionId,
    failed: Option<&Route>,
) -> Result<(ClientStream, Vec<Hop>, Route), OpenFailure> {
    let candidates =
        compliant_paths(snapshots, to.hub, to.policy, failed).map_err(OpenFailure::NoCircuit)?;
    let mut last = String::from("no path");
    for path in &candidates {
        let mut circuit = match relay.open(path, id).await {
            Ok(circuit) => circuit,
            Err(error) => {
                last = error.to_string();
                continue;
            }
        };
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            request::write(&mut circuit.stream, asked).await?;
            request::read_reply(&mut circuit.stream)
                .await
                .map_err(std::io::Error::other)
        })
        .await;
        match answer {
            Ok(Ok(ServiceReply::Accepted)) => {
                let route = Route::of_path(path)
                    .map_err(|error| OpenFailure::NoCircuit(error.to_string()))?;
                return Ok((circuit.stream, circuit.hops, route));
            }
            // The same answer would come along any path.
            Ok(Ok(ServiceReply::Refused(label))) => {
                return Err(OpenFailure::Refused {
                    hub: to.hub.clone(),
                    asked: asked.to_string(),
                    label,
                });
            }
            Ok(Err(error)) => last = format!("the request failed: {error}"),
            Err(_) => last = format!("no answer to the request within {REQUEST_TIMEOUT:?}"),
        }
    }
    Err(OpenFailure::NoCircuit(last))
}

/// The paths to `hub` that follow the path policy named `policy` (none: any path) on the latest
/// snapshot: the best, then its link-disjoint backup, with the path that just `failed` last (the
/// control plane may not know yet that it broke); or why there is none.
pub(crate) fn compliant_paths(
    snapshots: &Snapshots,
    hub: &HubId,
    policy: Option<&str>,
    failed: Option<&Route>,
) -> Result<Vec<Path>, String> {
    let snapshot = snapshots.borrow().clone();
    let policy = match policy {
        Some(name) => snapshot
            .policies
            .get(name)
            .cloned()
            .ok_or_else(|| format!("there is no path policy {name}"))?,
        None => PathPolicy::default(),
    };
    let choice = path_selection::select(&snapshot.view.topology, &snapshot.own, hub, &policy)
        .map_err(|refusal| refusal.to_string())?;
    let mut candidates: Vec<Path> = std::iter::once(choice.primary)
        .chain(choice.backup)
        .collect();
    candidates.sort_by_key(|path| failed.is_some() && Route::of_path(path).ok().as_ref() == failed);
    Ok(candidates)
}

/// `madrid-1 (ES) → lisbon-1 (PT) → paris-1 (FR)`.
pub fn describe(hops: &[Hop]) -> String {
    hops.iter()
        .map(|hop| format!("{} ({})", hop.hub, hop.jurisdiction))
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Closes a client connection with a reset: it must not mistake a lost session for a clean end.
fn reset(client: TcpStream) {
    let _ = client.set_zero_linger();
    drop(client);
}
