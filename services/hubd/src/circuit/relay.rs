//! [`Relay`]: the circuits of this hub, owned by the daemon.
//!
//! The daemon tells it which links are up ([`Relay::link_up`], [`Relay::link_down`]), whether
//! this hub offers transit ([`Relay::set_transit`]) and what the control plane vouches for
//! ([`Relay::set_control_plane`]). It opens circuits along paths the source chose
//! ([`Relay::open`]: send the open frame, wait for the reply, verify every receipt, then the
//! end-to-end handshake) and accepts circuits on every link up (`circuit::inbound`), handing
//! those that end here to the daemon as [`InboundCircuit`]s.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use appliance::tls::Identity;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_rustls::TlsConnector;

use super::counters::{Counters, RelayCounters, Role};
use super::end_to_end::{self, EndToEndError};
use super::inbound;
use super::receipt::{Hop, ReceiptError, TransitReceipt, verify_receipts};
use super::refusal::CircuitRefusal;
use super::route::{Route, RouteError};
use super::stream::CircuitStream;
use super::vouched::VouchedHubs;
use super::wire::{CircuitOpen, CircuitReply, DecodeError};
use crate::advertisement::Timestamp;
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::links::frame::{self, FrameError};
use crate::links::{LinkKey, LinkStreams};
use crate::path_selection::Path;
use crate::peering::Peers;
use crate::session_id::SessionId;

/// The byte the destination sends first inside the end-to-end session: it accepted the source's
/// certificate and took the circuit. (In TLS 1.3 the client finishes its handshake before the
/// server has checked the client's certificate; without this, a refused source would only learn
/// it on its first read.)
pub(crate) const ESTABLISHED: u8 = 1;

/// How a relay behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Longest wait for each step of opening a circuit: the open frame, the reply, the
    /// end-to-end handshake, a stream on the next link.
    pub open_timeout: Duration,
    /// Circuits ended here and not yet taken by the daemon; more are refused `busy`.
    pub inbound_queue: usize,
    /// How long a receipt whose signature does not verify is checked again as the control plane
    /// changes, before the circuit is refused: a hub that just renewed its certificate signs
    /// with its new key before its new advertisement has reached every hub.
    pub receipt_recheck: Duration,
}

impl Default for RelaySettings {
    /// 5 s per step, 64 circuits waiting, receipts checked again for 2 s (flooding takes
    /// milliseconds per hop).
    fn default() -> Self {
        Self {
            open_timeout: Duration::from_secs(5),
            inbound_queue: 64,
            receipt_recheck: Duration::from_secs(2),
        }
    }
}

/// How often the control plane is looked at while a receipt is checked again.
const RECHECK_EVERY: Duration = Duration::from_millis(20);

/// Why a circuit could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CircuitError {
    /// The path does not start at this hub.
    #[error("the path starts at {0}, not at this hub")]
    NotSource(HubId),
    /// The path is not a valid route (e.g. a loop).
    #[error("the path is not a valid route: {0}")]
    Route(#[from] RouteError),
    /// The first link of the path is not up.
    #[error("link {0} is not up")]
    NoLink(LinkKey),
    /// A hub on the route refused the circuit.
    #[error("hub {hub} refused the circuit: {reason}")]
    Refused {
        /// The hub.
        hub: HubId,
        /// Why.
        reason: CircuitRefusal,
    },
    /// The reply is not a circuit reply.
    #[error("the reply is malformed: {0}")]
    MalformedReply(#[from] DecodeError),
    /// The receipts do not prove the route.
    #[error("the receipts do not prove the route: {0}")]
    Receipts(#[from] ReceiptError),
    /// The destination is not vouched for, so it cannot be authenticated.
    #[error(transparent)]
    EndToEnd(#[from] EndToEndError),
    /// The end-to-end handshake failed (e.g. the destination is not who the control plane
    /// vouches for, or refused this hub's certificate).
    #[error("the end-to-end handshake failed: {0}")]
    Handshake(io::Error),
    /// A step did not complete in time.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    /// The circuit's stream failed (a link lost on the way).
    #[error("the circuit's stream failed: {0}")]
    LinkLost(FrameError),
}

impl CircuitError {
    /// A short label for the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotSource(_) => "not_source",
            Self::Route(_) => "route",
            Self::NoLink(_) => "no_link",
            Self::Refused { .. } => "refused",
            Self::MalformedReply(_) => "malformed_reply",
            Self::Receipts(_) => "receipts",
            Self::EndToEnd(_) => "not_vouched",
            Self::Handshake(_) => "handshake",
            Self::TimedOut(_) => "timed_out",
            Self::LinkLost(_) => "link_lost",
        }
    }
}

/// A circuit this hub opened: the hops it was proven to cross, and the end-to-end session.
#[derive(Debug)]
pub struct OutboundCircuit {
    /// The session it carries.
    pub session: SessionId,
    /// Every hub on it, this hub first, each (after this one) proven by its receipt.
    pub hops: Vec<Hop>,
    /// The TLS session with the destination.
    pub stream: tokio_rustls::client::TlsStream<CircuitStream>,
}

/// A circuit that ended at this hub, authenticated end to end.
#[derive(Debug)]
pub struct InboundCircuit {
    /// The session it carries.
    pub session: SessionId,
    /// The hub that opened it (its certificate was checked in the handshake).
    pub source: HubId,
    /// The route it came along.
    pub route: Route,
    /// The TLS session with the source.
    pub stream: tokio_rustls::server::TlsStream<CircuitStream>,
}

/// The circuits of this hub (see the module docs). Cheap to clone; every clone is the same relay.
#[derive(Debug, Clone)]
pub struct Relay {
    shared: Arc<Shared>,
}

/// What the relay's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) own: HubId,
    /// This hub's identity; replaced when its certificate is renewed.
    identity: RwLock<Arc<Identity>>,
    pub(crate) jurisdiction: Jurisdiction,
    pub(crate) peers: Arc<Peers>,
    pub(crate) settings: RelaySettings,
    links: Mutex<BTreeMap<LinkKey, LinkEntry>>,
    transit: AtomicBool,
    vouched: RwLock<Arc<VouchedHubs>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) inbound: mpsc::Sender<InboundCircuit>,
}

#[derive(Debug)]
struct LinkEntry {
    streams: LinkStreams,
    accepting: AbortHandle,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for entry in self
            .links
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            entry.accepting.abort();
        }
    }
}

impl Shared {
    /// The streams of link `key`, if it is up.
    pub(crate) fn link(&self, key: &LinkKey) -> Option<LinkStreams> {
        let links = self.links.lock().unwrap_or_else(PoisonError::into_inner);
        links
            .get(key)
            .map(|entry| entry.streams.clone())
            .filter(|streams| !streams.is_closed())
    }

    pub(crate) fn transit(&self) -> bool {
        self.transit.load(Ordering::Relaxed)
    }

    /// This hub's identity now: what receipts are signed with and end-to-end handshakes present.
    pub(crate) fn identity(&self) -> Arc<Identity> {
        Arc::clone(&self.identity.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn vouched(&self) -> Arc<VouchedHubs> {
        Arc::clone(&self.vouched.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Relay {
    /// The relay of this hub (`identity`, in `jurisdiction`, with `peers`), offering transit
    /// until told otherwise, vouching for nobody until [`set_control_plane`](Self::set_control_plane).
    /// Returns the relay and the circuits that end here.
    pub fn new(
        identity: Identity,
        jurisdiction: Jurisdiction,
        peers: Arc<Peers>,
        settings: RelaySettings,
    ) -> (Self, mpsc::Receiver<InboundCircuit>) {
        let (inbound, receiver) = mpsc::channel(settings.inbound_queue.max(1));
        let shared = Shared {
            own: peers.own_hub().clone(),
            identity: RwLock::new(Arc::new(identity)),
            jurisdiction,
            peers,
            settings,
            links: Mutex::default(),
            transit: AtomicBool::new(true),
            vouched: RwLock::default(),
            counters: Arc::default(),
            inbound,
        };
        let relay = Self {
            shared: Arc::new(shared),
        };
        (relay, receiver)
    }

    /// Uses `identity` (a renewed certificate) for the receipts and end-to-end handshakes of
    /// circuits from now on; circuits already up keep their TLS sessions.
    pub fn set_identity(&self, identity: Identity) {
        *self
            .shared
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(identity);
    }

    /// Link `streams.key()` is up: accept its circuits (each on its own task) and open circuits
    /// over it. Replaces what was held for the same link. Must be called inside a tokio runtime.
    pub fn link_up(&self, streams: LinkStreams) {
        let key = streams.key().clone();
        let accepting = tokio::spawn(inbound::accept_loop(
            Arc::downgrade(&self.shared),
            streams.clone(),
        ))
        .abort_handle();
        let entry = LinkEntry { streams, accepting };
        let mut links = self
            .shared
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = links.insert(key, entry) {
            old.accepting.abort();
        }
    }

    /// Link `key` is down: no circuit is opened or extended over it any more. (Circuits on it
    /// fail by themselves: their streams die with the link.)
    pub fn link_down(&self, key: &LinkKey) {
        let removed = self
            .shared
            .links
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        if let Some(old) = removed {
            old.accepting.abort();
        }
    }

    /// Whether this hub carries transit circuits (false in site lockdown: new transit circuits
    /// are refused `no_transit`; circuits from or to this hub still work).
    pub fn set_transit(&self, transit: bool) {
        self.shared.transit.store(transit, Ordering::Relaxed);
    }

    /// What the control plane vouches for now: each trusted remote hub's chain (leaf first,
    /// site root last) and jurisdiction.
    pub fn set_control_plane(
        &self,
        chains: BTreeMap<HubId, Vec<CertificateDer<'static>>>,
        jurisdictions: BTreeMap<HubId, Jurisdiction>,
    ) {
        let vouched = Arc::new(VouchedHubs::new(chains, jurisdictions));
        *self
            .shared
            .vouched
            .write()
            .unwrap_or_else(PoisonError::into_inner) = vouched;
    }

    /// The counters now.
    pub fn counters(&self) -> RelayCounters {
        self.shared.counters.snapshot()
    }

    /// Opens a circuit for `session` along `path` (which starts at this hub): every hop's
    /// receipt verified, then the end-to-end session with the destination established.
    pub async fn open(
        &self,
        path: &Path,
        session: SessionId,
    ) -> Result<OutboundCircuit, CircuitError> {
        let opened = self.try_open(path, session).await;
        match &opened {
            Ok(circuit) => {
                tracing::info!(%session, hops = circuit.hops.len(), "circuit opened");
            }
            Err(error) => {
                tracing::warn!(%session, reason = error.label(), "circuit not opened: {error}");
                self.shared.counters.failed_open(error.label());
            }
        }
        opened
    }

    async fn try_open(
        &self,
        path: &Path,
        session: SessionId,
    ) -> Result<OutboundCircuit, CircuitError> {
        let shared = &self.shared;
        let route = Route::of_path(path)?;
        if route.source() != &shared.own {
            return Err(CircuitError::NotSource(route.source().clone()));
        }
        let first = route.link_after(0).expect("a route has a second hub");
        let streams = shared.link(&first).ok_or(CircuitError::NoLink(first))?;
        let vouched = shared.vouched();
        let config = end_to_end::client_config(&shared.identity(), route.destination(), &vouched)?;
        let limit = shared.settings.open_timeout;
        let (send, recv) = within(limit, streams.open())
            .await?
            .map_err(|error| CircuitError::LinkLost(FrameError::Io(error.into())))?;
        let mut stream = CircuitStream::new(send, recv);
        let open = CircuitOpen {
            session,
            route,
            receipts: Vec::new(),
        };
        let hops = match self.exchange(&mut stream, &open, &vouched).await {
            Ok(hops) => hops,
            Err(error) => {
                stream.abort();
                return Err(error);
            }
        };
        let mut tls = self
            .establish(config, open.route.destination(), stream)
            .await?;
        tls.get_mut()
            .0
            .count_as(shared.counters.established(Role::Opened));
        Ok(OutboundCircuit {
            session,
            hops,
            stream: tls,
        })
    }

    /// The end-to-end handshake with `destination`, then its confirmation that it took the
    /// circuit; the stream is aborted when either fails.
    async fn establish(
        &self,
        config: Arc<rustls::ClientConfig>,
        destination: &HubId,
        stream: CircuitStream,
    ) -> Result<tokio_rustls::client::TlsStream<CircuitStream>, CircuitError> {
        let limit = self.shared.settings.open_timeout;
        let name =
            ServerName::try_from(destination.as_str().to_owned()).expect("a hub id is a DNS label");
        let connecting = TlsConnector::from(config)
            .connect(name, stream)
            .into_fallible();
        let mut tls = match within(limit, connecting).await? {
            Ok(tls) => tls,
            Err((error, mut stream)) => {
                stream.abort();
                return Err(CircuitError::Handshake(error));
            }
        };
        let mut established = [0u8; 1];
        let confirmed = match within(limit, tls.read_exact(&mut established)).await {
            Ok(Ok(_)) if established == [ESTABLISHED] => return Ok(tls),
            Ok(Ok(_)) => CircuitError::Handshake(io::Error::other(
                "the destination did not confirm the circuit",
            )),
            Ok(Err(error)) => CircuitError::Handshake(error),
            Err(timed_out) => timed_out,
        };
        tls.get_mut().0.abort();
        Err(confirmed)
    }

    /// Sends the open frame, reads the reply and verifies its receipts.
    async fn exchange(
        &self,
        stream: &mut CircuitStream,
        open: &CircuitOpen,
        vouched: &VouchedHubs,
    ) -> Result<Vec<Hop>, CircuitError> {
        let limit = self.shared.settings.open_timeout;
        let reply = within(limit, async {
            frame::write_frame(stream, &open.encode()).await?;
            frame::read_frame(stream).await
        })
        .await?
        .map_err(|error| match error {
            FrameError::TooLarge { len, .. } => DecodeError::TooLarge { len }.into(),
            lost => CircuitError::LinkLost(lost),
        })?;
        match CircuitReply::decode(&reply)? {
            CircuitReply::Refused { hub, reason } => Err(CircuitError::Refused { hub, reason }),
            CircuitReply::Accepted { receipts } => {
                Ok(self.verified_hops(open, &receipts, vouched).await?)
            }
        }
    }

    /// The hops the `receipts` prove. A signature that does not verify is checked again each
    /// time the control plane vouches anew, for up to [`RelaySettings::receipt_recheck`]: the
    /// hub may have renewed its certificate a moment ago; a forged receipt stays refused.
    async fn verified_hops(
        &self,
        open: &CircuitOpen,
        receipts: &[TransitReceipt],
        vouched: &VouchedHubs,
    ) -> Result<Vec<Hop>, ReceiptError> {
        let verify = |vouched: &VouchedHubs| {
            verify_receipts(
                &open.route,
                open.session,
                receipts,
                vouched,
                self.shared.jurisdiction,
                Timestamp::from(SystemTime::now()),
            )
        };
        let mut verified = verify(vouched);
        let deadline = Instant::now() + self.shared.settings.receipt_recheck;
        let mut seen = self.shared.vouched();
        while matches!(verified, Err(ReceiptError::BadSignature { .. }))
            && Instant::now() < deadline
        {
            tokio::time::sleep(RECHECK_EVERY).await;
            let fresh = self.shared.vouched();
            if !Arc::ptr_eq(&fresh, &seen) {
                seen = fresh;
                verified = verify(&seen);
            }
        }
        verified
    }

    /// From now on, keeps a copy of every byte this hub forwards in transit (to show that it
    /// is ciphertext).
    #[cfg(test)]
    pub(crate) fn tap_transit(&self) -> super::transit::Tap {
        self.shared.counters.meter.tap()
    }
}

/// `work`, or [`CircuitError::TimedOut`] after `limit`.
async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Result<T, CircuitError> {
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| CircuitError::TimedOut(limit))
}
