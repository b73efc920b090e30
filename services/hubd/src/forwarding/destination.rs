//! The destination end: each circuit that ends here asks for a service; granted, it connects
//! to the service (a new session) or resumes the session it belongs to. A circuit that asks for
//! packets instead goes to the IP plane ([`Forwarding::carry_packets_to`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::request::{self, Request, ServiceReply};
use super::sessions::{Resumption, SessionRecord, SessionRole};
use super::{Forwarding, ForwardingCounters, REQUEST_TIMEOUT};
use crate::circuit::{Hop, InboundCircuit, Route};
use crate::grant::ServiceName;
use crate::session;
use crate::snapshot::HubSnapshot;

/// Takes every circuit that ends here until cancelled, each on its own task.
pub(super) async fn serve_inbound(
    forwarding: Arc<Forwarding>,
    published: Arc<BTreeMap<ServiceName, SocketAddr>>,
    mut inbound: mpsc::Receiver<InboundCircuit>,
    cancel: CancellationToken,
) {
    loop {
        let circuit = tokio::select! {
            () = cancel.cancelled() => return,
            circuit = inbound.recv() => match circuit {
                Some(circuit) => circuit,
                None => return,
            },
        };
        tokio::spawn(take(
            Arc::clone(&forwarding),
            Arc::clone(&published),
            circuit,
        ));
    }
}

/// What a circuit that ended here gets.
async fn take(
    forwarding: Arc<Forwarding>,
    published: Arc<BTreeMap<ServiceName, SocketAddr>>,
    circuit: InboundCircuit,
) {
    let InboundCircuit {
        session: id,
        source,
        route,
        mut stream,
    } = circuit;
    let service = match tokio::time::timeout(REQUEST_TIMEOUT, request::read_request(&mut stream))
        .await
    {
        Ok(Ok(Request::Service(service))) => service,
        Ok(Ok(Request::Packets)) => {
            let circuit = InboundCircuit {
                session: id,
                source,
                route,
                stream,
            };
            forwarding.hand_packets(circuit).await;
            return;
        }
        Ok(Err(error)) => {
            tracing::warn!(session = %id, %source, reason = error.label(), "circuit dropped: {error}");
            return;
        }
        Err(_) => {
            tracing::warn!(session = %id, %source, "circuit dropped: no service request within {REQUEST_TIMEOUT:?}");
            return;
        }
    };
    let refusal = admission(&forwarding, &published, &route, &service);
    let target = match refusal {
        Ok(target) => target,
        Err(label) => {
            tracing::warn!(session = %id, %source, %service, "service refused: {label}");
            let _ = request::write_reply(&mut stream, &ServiceReply::Refused(label.into())).await;
            return;
        }
    };
    let hops = announced_hops(&forwarding.snapshots.borrow(), &route);
    match forwarding.sessions.resumption(&id, &source, &service) {
        Some(Ok(resume)) => {
            if request::write_reply(&mut stream, &ServiceReply::Accepted)
                .await
                .is_ok()
            {
                tracing::info!(session = %id, %source, "session resumed on a new circuit");
                forwarding.sessions.moved(&id, hops);
                let _ = resume.send(stream).await;
            }
            return;
        }
        Some(Err(label)) => {
            tracing::warn!(session = %id, %source, %service, "circuit refused: {label}");
            let _ = request::write_reply(&mut stream, &ServiceReply::Refused(label.into())).await;
            return;
        }
        None => {}
    }
    let connected = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(target)).await;
    let mut local = match connected {
        Ok(Ok(local)) => local,
        Ok(Err(error)) => {
            tracing::warn!(session = %id, %service, %target, %error, "cannot connect to the service");
            let _ = request::write_reply(&mut stream, &ServiceReply::Refused("unreachable".into()))
                .await;
            return;
        }
        Err(_) => {
            tracing::warn!(session = %id, %service, %target, "the service did not answer within {REQUEST_TIMEOUT:?}");
            let _ = request::write_reply(&mut stream, &ServiceReply::Refused("unreachable".into()))
                .await;
            return;
        }
    };
    let _ = local.set_nodelay(true);
    if request::write_reply(&mut stream, &ServiceReply::Accepted)
        .await
        .is_err()
    {
        return;
    }
    ForwardingCounters::count(&forwarding.counters.sessions_started);
    tracing::info!(session = %id, %source, %service, "session started");
    let (resume, handed) = mpsc::channel::<Resumption>(2);
    let _ = resume.send(stream).await;
    forwarding.sessions.start(
        SessionRecord {
            id,
            service,
            role: SessionRole::Destination,
            peer: source,
            hops,
            verified: false,
            circuits: 1,
            started: SystemTime::now(),
            ended: None,
        },
        Some(resume),
    );
    // The destination only waits for the source to bring the next circuit.
    let (events, _ignored) = mpsc::channel(16);
    let outcome = session::run(&mut local, handed, events, forwarding.settings.clone()).await;
    let how = match outcome {
        Ok(_) => "closed".to_owned(),
        Err(error) => {
            tracing::warn!(session = %id, reason = error.label(), "session failed: {error}");
            ForwardingCounters::count(&forwarding.counters.failed);
            let _ = local.set_zero_linger();
            format!("failed: {error}")
        }
    };
    forwarding.sessions.end(&id, how);
}

/// The service's address, if it is published here and granted to the peer the circuit came
/// from (grants are bilateral: that peer answers for what it forwards); else the refusal label.
fn admission(
    forwarding: &Forwarding,
    published: &BTreeMap<ServiceName, SocketAddr>,
    route: &Route,
    service: &ServiceName,
) -> Result<SocketAddr, &'static str> {
    let target = *published.get(service).ok_or("unknown_service")?;
    let hubs = route.hubs();
    let arriving = &hubs[hubs.len() - 2];
    let snapshot = forwarding.snapshots.borrow();
    let granted = snapshot
        .peers
        .get(arriving)
        .is_some_and(|agreement| agreement.grant().admits_service(service));
    if granted {
        Ok(target)
    } else {
        Err("not_granted")
    }
}

/// The route as announced by the source, with the jurisdictions the control plane holds (the
/// destination has no receipts: those go to the source). A hub whose advertisement is not held
/// here is left out rather than shown with a guessed jurisdiction.
fn announced_hops(snapshot: &HubSnapshot, route: &Route) -> Vec<Hop> {
    let hubs = route.hubs();
    let epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    hubs.iter()
        .enumerate()
        .filter_map(|(i, hub)| {
            let jurisdiction = if hub == &snapshot.own {
                snapshot.view.own.jurisdiction()
            } else {
                snapshot.view.advertisements.get(hub)?.jurisdiction()
            };
            Some(Hop {
                hub: hub.clone(),
                jurisdiction,
                previous: i.checked_sub(1).map(|p| hubs[p].clone()),
                next: hubs.get(i + 1).cloned(),
                epoch,
            })
        })
        .collect()
}
