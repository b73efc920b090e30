//! Forwarding: TCP services carried between hubs, like encrypted cross-site port forwards
//! (`[[service]]` entries, [`crate::config::services`]).
//!
//! At the hub where clients are ([`source`]), a local listener takes each connection as a new
//! session: the path is chosen by the service's path policy ([`crate::path_selection`]: the best
//! compliant path and a link-disjoint backup, or a refusal, never a non-compliant path), a
//! circuit is opened along it ([`crate::circuit`]: receipts from every hub verified, TLS 1.3 end
//! to end), the service is asked for ([`request`]), and the [`crate::session`] layer carries the
//! bytes. When the circuit breaks (a link or a hub on the path is lost), the session asks for
//! another one: the backup first, then whatever the control plane offers by then, within the
//! session's resume time; the client's TCP connection does not notice.
//!
//! At the hub that publishes the service ([`destination`]), each circuit that ends here names a
//! service: granted to the peer the circuit arrived from (its peering file's `[grant] services`:
//! bilateral, like every grant), it connects to the service, or resumes the session the circuit
//! belongs to. [`sessions`] keeps what the operator sees of each session, including the path it
//! is on, as proven by the receipts. A circuit that carries IP packets rather than a service
//! is handed to the IP plane ([`crate::ip_plane`]) when the daemon runs one.

pub mod destination;
pub mod request;
pub mod sessions;
pub mod source;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::request::ServiceReply;

use crate::circuit::{InboundCircuit, Relay};
use crate::config::services::{PublishedService, ReachedService};
use crate::grant::ServiceName;
use crate::session::SessionSettings;
use crate::snapshot::Snapshots;

pub use sessions::{SessionRecord, SessionRole, SessionTable};

/// How long the service request and its reply may take, and a published service's connect.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What forwarding has done, for the metrics.
#[derive(Debug, Default)]
pub struct ForwardingCounters {
    /// Sessions started (either end).
    pub sessions_started: AtomicU64,
    /// Sessions that moved to a new circuit after theirs broke (at the source).
    pub failovers: AtomicU64,
    /// Client connections reset because no compliant path or circuit could be had.
    pub refused: AtomicU64,
    /// Sessions that ended with an error.
    pub failed: AtomicU64,
}

impl ForwardingCounters {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the source and destination tasks share.
#[derive(Debug)]
pub struct Forwarding {
    relay: Relay,
    snapshots: Snapshots,
    sessions: SessionTable,
    settings: SessionSettings,
    counters: ForwardingCounters,
    /// Where circuits asking for packets go (the IP plane), once the daemon says.
    packets: OnceLock<mpsc::Sender<InboundCircuit>>,
}

impl Forwarding {
    /// Forwarding over `relay`, choosing paths from the latest of `snapshots`.
    pub fn new(relay: Relay, snapshots: Snapshots, settings: SessionSettings) -> Arc<Self> {
        Arc::new(Self {
            relay,
            snapshots,
            sessions: SessionTable::default(),
            settings,
            counters: ForwardingCounters::default(),
            packets: OnceLock::new(),
        })
    }

    /// Hands every circuit that asks for packets (the request read, the reply not yet sent) to
    /// `ip_plane`; without it, such circuits are refused `no_ip_routing`. Set once.
    pub fn carry_packets_to(&self, ip_plane: mpsc::Sender<InboundCircuit>) {
        let _ = self.packets.set(ip_plane);
    }

    /// Gives a packet circuit to the IP plane, or refuses it.
    async fn hand_packets(&self, mut circuit: InboundCircuit) {
        let Some(ip_plane) = self.packets.get() else {
            tracing::warn!(session = %circuit.session, source = %circuit.source, "packet circuit refused: no [tun] here");
            let refusal = ServiceReply::Refused("no_ip_routing".into());
            let _ = request::write_reply(&mut circuit.stream, &refusal).await;
            return;
        };
        if let Err(error) = ip_plane.try_send(circuit) {
            let mut circuit = error.into_inner();
            tracing::warn!(session = %circuit.session, source = %circuit.source, "packet circuit refused: the IP plane is busy");
            let refusal = ServiceReply::Refused("busy".into());
            let _ = request::write_reply(&mut circuit.stream, &refusal).await;
        }
    }

    /// The sessions of this hub.
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// The counters.
    pub fn counters(&self) -> &ForwardingCounters {
        &self.counters
    }

    /// Binds the local listener of every reached service (before `READY=1`: a listener that
    /// cannot be bound stops the start with the address named).
    pub async fn bind(
        services: &[ReachedService],
    ) -> io::Result<Vec<(ReachedService, TcpListener)>> {
        let mut bound = Vec::new();
        for service in services {
            let listener = TcpListener::bind(service.listen).await.map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!(
                        "cannot listen for service {} on {}: {error}",
                        service.name, service.listen
                    ),
                )
            })?;
            bound.push((service.clone(), listener));
        }
        Ok(bound)
    }

    /// Serves the listeners and the circuits that end here until `cancel` fires.
    pub fn spawn(
        self: &Arc<Self>,
        listeners: Vec<(ReachedService, TcpListener)>,
        published: &[PublishedService],
        inbound: mpsc::Receiver<InboundCircuit>,
        cancel: &CancellationToken,
    ) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        for (service, listener) in listeners {
            tasks.spawn(source::serve_listener(
                Arc::clone(self),
                service,
                listener,
                cancel.clone(),
            ));
        }
        let published: BTreeMap<ServiceName, SocketAddr> = published
            .iter()
            .map(|service| (service.name.clone(), service.target))
            .collect();
        tasks.spawn(destination::serve_inbound(
            Arc::clone(self),
            Arc::new(published),
            inbound,
            cancel.clone(),
        ));
        tasks
    }
}
