//! [`LinkEndpoint`]: one UDP socket on which this hub accepts its peers' links and dials its own.
//!
//! A link is a QUIC connection (TLS 1.3, mutual authentication, ALPN `bunkeros-hub/1`) and one
//! control stream the dialer opens with a hello naming the link number. The acceptor checks who
//! the client is ([`identify_client`]) and that the number is in their peering agreement, then
//! acknowledges; the dialer checks the server during the handshake ([`HubServerVerifier`]). A
//! refused peer gets a QUIC close whose reason is the refusal's label, and nothing else changes.
//!
//! The TLS configurations are `appliance::tls`'s (aws-lc-rs, TLS 1.3 only, pinned roots only);
//! the dialer only swaps the server verifier for one that checks a hub id instead of a DNS name.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use appliance::tls::{self, Fingerprint, Identity, PinnedRoot, TlsError};
use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use quinn::{Connection, ConnectionError, Incoming, RecvStream, SendStream, VarInt};
use rustls_pki_types::CertificateDer;

use super::frame::{self, FrameError};
use super::keepalive::{self, EventSink, LinkEvents, LinkTiming};
use super::peer_verifier::{HubServerVerifier, LinkRefusal, RefusalSlot, identify_client};
use super::{LINK_ALPN, LinkKey};
use crate::advertisement::Timestamp;
use crate::hub_id::HubId;
use crate::link::LinkId;
use crate::peering::Peers;

/// The hello the dialer sends first on the control stream: magic, version, link number.
const HELLO_MAGIC: &[u8; 4] = b"HUBL";
const HELLO_VERSION: u8 = 1;
const HELLO_LEN: usize = 7;
/// The acceptor's answer to a good hello.
const HELLO_ACCEPTED: u8 = 1;

/// QUIC application close codes on links.
const CLOSE_NORMAL: VarInt = VarInt::from_u32(0);
const CLOSE_REFUSED: VarInt = VarInt::from_u32(1);
const CLOSE_FRAME_TOO_LARGE: VarInt = VarInt::from_u32(2);

/// Why an endpoint could not be set up, or a link not brought up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The hub's identity or the pinned roots do not make a TLS configuration.
    #[error("cannot build the TLS configuration for links")]
    Tls(#[from] TlsError),
    /// The TLS configuration has no cipher suite QUIC can use for its initial packets.
    #[error("the TLS configuration cannot carry QUIC")]
    Quic(#[from] NoInitialCipherSuite),
    /// The UDP socket could not be bound.
    #[error("cannot listen for links on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// Dialing a hub that has no peering agreement.
    #[error("hub {0} is not a peer of this hub")]
    NotAPeer(HubId),
    /// Dialing a link number the peering agreement does not list.
    #[error("link {link} is not in the peering agreement with {peer}")]
    NotALink {
        /// The peer.
        peer: HubId,
        /// The number.
        link: LinkId,
    },
    /// quinn refused to start the connection (e.g. the endpoint is closed).
    #[error("cannot dial the link")]
    Connect(#[from] quinn::ConnectError),
    /// The peer was refused, or refused this hub.
    #[error("link refused: {0}")]
    Refused(LinkRefusal),
    /// The connection was lost before the link came up, for a reason that is not a refusal.
    #[error("the connection was lost before the link came up")]
    Lost(#[source] ConnectionError),
    /// The handshake or hello did not complete within the timing's handshake timeout.
    #[error("the link did not come up within {0:?}")]
    TimedOut(Duration),
}

impl LinkError {
    /// The refusal, when the link was refused.
    pub fn refusal(&self) -> Option<&LinkRefusal> {
        match self {
            Self::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

/// Accepts and dials this hub's links on one UDP socket.
#[derive(Debug)]
pub struct LinkEndpoint {
    endpoint: quinn::Endpoint,
    /// What this hub presents; replaced by [`set_identity`](Self::set_identity).
    identity: RwLock<Identity>,
    peers: Arc<Peers>,
    timing: LinkTiming,
    events: EventSink,
}

impl LinkEndpoint {
    /// Listens on `address` (port 0: any free port) for links from `peers`, presenting
    /// `identity`; dialed links present it too. Must be called inside a tokio runtime.
    ///
    /// Returns the endpoint and the stream of every link's events.
    pub fn bind(
        address: SocketAddr,
        identity: Identity,
        peers: Peers,
        timing: LinkTiming,
    ) -> Result<(Self, LinkEvents), LinkError> {
        let socket =
            UdpSocket::bind(address).map_err(|source| LinkError::Bind { address, source })?;
        Self::on_socket(socket, identity, peers, timing)
    }

    /// As [`bind`](Self::bind), on a socket already bound (e.g. handed over by systemd, or bound
    /// before the peering agreements that name it were written).
    pub fn on_socket(
        socket: UdpSocket,
        identity: Identity,
        peers: Peers,
        timing: LinkTiming,
    ) -> Result<(Self, LinkEvents), LinkError> {
        let address = socket.local_addr().map_err(|source| LinkError::Bind {
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let server = server_config(&identity, &peers, timing)?;
        let runtime = quinn::default_runtime().ok_or_else(|| LinkError::Bind {
            address,
            source: io::Error::other("no tokio runtime to drive the links"),
        })?;
        let endpoint =
            quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)
                .map_err(|source| LinkError::Bind { address, source })?;
        let (events, receiver) = keepalive::channel();
        let endpoint = Self {
            endpoint,
            identity: RwLock::new(identity),
            peers: Arc::new(peers),
            timing,
            events,
        };
        Ok((endpoint, receiver))
    }

    /// Presents `identity` (a renewed certificate) from now on: to peers whose handshake starts
    /// after this, accepted or dialed. Links already up keep theirs. On an error nothing
    /// changes.
    pub fn set_identity(&self, identity: Identity) -> Result<(), LinkError> {
        let server = server_config(&identity, &self.peers, self.timing)?;
        if let Some(server) = server {
            self.endpoint.set_server_config(Some(server));
        }
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = identity;
        Ok(())
    }

    /// The address links are accepted on (with the port chosen, if 0 was asked for).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Brings up link `link` to `peer`, at the address its peering agreement gives.
    pub async fn dial(&self, peer: &HubId, link: LinkId) -> Result<Link, LinkError> {
        let agreement = self
            .peers
            .get(peer)
            .ok_or_else(|| LinkError::NotAPeer(peer.clone()))?;
        let address = agreement
            .links()
            .iter()
            .find(|candidate| candidate.id == link)
            .ok_or_else(|| LinkError::NotALink {
                peer: peer.clone(),
                link,
            })?
            .address;
        let verifier = HubServerVerifier::new(agreement.root().der().clone(), peer.clone());
        let refusal = verifier.refusal_slot();
        let identity = self
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut tls = tls::client_config(&identity, agreement.root())?;
        tls.dangerous().set_certificate_verifier(Arc::new(verifier));
        tls.alpn_protocols = vec![LINK_ALPN.to_vec()];
        let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
        config.transport_config(self.timing.transport());
        let connecting = self.endpoint.connect_with(config, address, peer.as_str())?;
        let key = LinkKey {
            peer: peer.clone(),
            link,
        };
        let link = within(self.timing.handshake_timeout, async {
            let connection = connecting
                .await
                .map_err(|error| refused(Some(&refusal), &error))?;
            let (mut send, mut recv) = connection
                .open_bi()
                .await
                .map_err(|error| refused(Some(&refusal), &error))?;
            let mut hello = Vec::with_capacity(HELLO_LEN);
            hello.extend_from_slice(HELLO_MAGIC);
            hello.push(HELLO_VERSION);
            hello.extend_from_slice(&key.link.get().to_be_bytes());
            let mut answer = [0u8; 1];
            let exchanged = async {
                send.write_all(&hello).await.ok()?;
                recv.read_exact(&mut answer).await.ok()
            };
            if exchanged.await.is_none() {
                let error = connection.closed().await;
                return Err(refused(Some(&refusal), &error));
            }
            if answer != [HELLO_ACCEPTED] {
                let refusal = LinkRefusal::Protocol("the peer answered the hello with garbage");
                connection.close(CLOSE_REFUSED, refusal.label().as_bytes());
                return Err(LinkError::Refused(refusal));
            }
            Ok(Link::new(connection, key, send, recv))
        })
        .await?;
        keepalive::monitor(
            link.connection.clone(),
            link.key.clone(),
            self.timing,
            self.events.clone(),
        );
        Ok(link)
    }

    /// The next peer knocking, or `None` once the endpoint is closed. Admit each
    /// [`IncomingLink`] on its own task, so that a slow or hostile peer delays only itself.
    pub async fn accept(&self) -> Option<IncomingLink> {
        let incoming = self.endpoint.accept().await?;
        Some(IncomingLink {
            incoming,
            peers: Arc::clone(&self.peers),
            timing: self.timing,
            events: self.events.clone(),
        })
    }

    /// Closes every link and stops accepting; peers see the links close at once.
    pub fn close(&self) {
        self.endpoint.close(CLOSE_NORMAL, b"hub stopping");
    }

    /// Waits until every connection of the endpoint is gone (after [`close`](Self::close)).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// A peer knocking on the endpoint: its handshake and hello are still to be checked.
#[derive(Debug)]
pub struct IncomingLink {
    incoming: Incoming,
    peers: Arc<Peers>,
    timing: LinkTiming,
    events: EventSink,
}

impl IncomingLink {
    /// Where the peer knocks from.
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Completes the handshake and the hello: the link, or why the peer was refused. Gives up
    /// after the timing's handshake timeout.
    pub async fn admit(self) -> Result<Link, LinkError> {
        let (timing, events) = (self.timing, self.events.clone());
        let link = within(timing.handshake_timeout, self.handshake()).await?;
        keepalive::monitor(link.connection.clone(), link.key.clone(), timing, events);
        Ok(link)
    }

    async fn handshake(self) -> Result<Link, LinkError> {
        let Self {
            incoming, peers, ..
        } = self;
        let connection = incoming
            .await
            .map_err(|error| LinkError::Refused(LinkRefusal::from_handshake(&error)))?;
        let chain = connection
            .peer_identity()
            .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|chain| *chain)
            .unwrap_or_default();
        let now = Timestamp::from(SystemTime::now());
        let peer =
            identify_client(&chain, &peers, now).map_err(|refusal| refuse(&connection, refusal))?;
        let (mut send, mut recv) = connection
            .accept_bi()
            .await
            .map_err(|error| refused(None, &error))?;
        let mut hello = [0u8; HELLO_LEN];
        recv.read_exact(&mut hello)
            .await
            .map_err(|_| refuse(&connection, LinkRefusal::Protocol("no link hello")))?;
        let (magic, rest) = hello.split_at(HELLO_MAGIC.len());
        if magic != HELLO_MAGIC || rest[0] != HELLO_VERSION {
            return Err(refuse(
                &connection,
                LinkRefusal::Protocol("not a link hello of version 1"),
            ));
        }
        let number = u16::from_be_bytes([rest[1], rest[2]]);
        let agreed = peers.get(&peer).and_then(|agreement| {
            agreement
                .links()
                .iter()
                .find(|candidate| candidate.id.get() == number)
                .map(|candidate| candidate.id)
        });
        let Some(link) = agreed else {
            return Err(refuse(
                &connection,
                LinkRefusal::UnknownLink { peer, link: number },
            ));
        };
        send.write_all(&[HELLO_ACCEPTED])
            .await
            .map_err(|_| lost(&connection))?;
        Ok(Link::new(connection, LinkKey { peer, link }, send, recv))
    }
}

/// One authenticated link to a peer: its QUIC connection and its control stream.
#[derive(Debug)]
pub struct Link {
    key: LinkKey,
    connection: Connection,
    send: SendStream,
    recv: RecvStream,
}

impl Link {
    fn new(connection: Connection, key: LinkKey, send: SendStream, recv: RecvStream) -> Self {
        tracing::info!(link = %key, remote = %connection.remote_address(), "link up");
        Self {
            key,
            connection,
            send,
            recv,
        }
    }

    /// Which link this is.
    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    /// The peer's address on it.
    pub fn remote_address(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    /// QUIC's current smoothed RTT estimate.
    pub fn rtt(&self) -> Duration {
        self.connection.rtt()
    }

    /// Sends one frame; a payload over [`frame::MAX_FRAME_LEN`] is refused and nothing is sent.
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        frame::write_frame(&mut self.send, payload).await
    }

    /// Receives one frame. A peer announcing a frame over the limit gets the link closed
    /// (reason `frame_too_large`), and this returns [`FrameError::TooLarge`].
    pub async fn recv_frame(&mut self) -> Result<Vec<u8>, FrameError> {
        receive_frame(&self.key, &self.connection, &mut self.recv).await
    }

    /// Opens and accepts this link's circuit streams (the data plane), beside its control
    /// stream; valid as long as the link is up, whoever holds the link.
    pub fn streams(&self) -> LinkStreams {
        LinkStreams {
            key: self.key.clone(),
            connection: self.connection.clone(),
        }
    }

    /// The link as two halves, so that one task can send frames while another waits for them
    /// (receiving is not cancel-safe: a frame half read would be lost).
    pub fn split(self) -> (LinkSender, LinkReceiver) {
        let sender = LinkSender {
            key: self.key.clone(),
            connection: self.connection.clone(),
            send: self.send,
        };
        let receiver = LinkReceiver {
            key: self.key,
            connection: self.connection,
            recv: self.recv,
        };
        (sender, receiver)
    }

    /// Closes the link; the peer sees it go down at once.
    pub fn close(&self) {
        self.connection.close(CLOSE_NORMAL, b"link closed");
    }

    /// Writes raw bytes on the control stream, bypassing the frame bound: only for tests of
    /// how the other end treats hostile frames.
    #[cfg(test)]
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.send.write_all(bytes).await.unwrap();
    }
}

/// The circuit streams of a [`Link`]: each circuit of the data plane is one bidirectional QUIC
/// stream, opened by the hub that extends the circuit over this link. When the link goes down,
/// every stream on it fails at once (that is how a circuit learns its link is gone).
#[derive(Debug, Clone)]
pub struct LinkStreams {
    key: LinkKey,
    connection: Connection,
}

impl LinkStreams {
    /// Which link this is.
    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    /// Opens a circuit stream to the peer.
    pub async fn open(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        self.connection.open_bi().await
    }

    /// The next circuit stream the peer opened; an error once the link is down.
    pub async fn accept(&self) -> Result<(SendStream, RecvStream), ConnectionError> {
        self.connection.accept_bi().await
    }

    /// Whether the link is down (closed, timed out, refused).
    pub fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some()
    }

    /// Waits until the link is down.
    pub async fn closed(&self) {
        self.connection.closed().await;
    }
}

/// The sending half of a [`Link`].
#[derive(Debug)]
pub struct LinkSender {
    key: LinkKey,
    connection: Connection,
    send: SendStream,
}

impl LinkSender {
    /// Which link this is.
    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    /// QUIC's current smoothed RTT estimate.
    pub fn rtt(&self) -> Duration {
        self.connection.rtt()
    }

    /// As [`Link::send_frame`].
    pub async fn send_frame(&mut self, payload: &[u8]) -> Result<(), FrameError> {
        frame::write_frame(&mut self.send, payload).await
    }

    /// Closes the link (both halves); the peer sees it go down at once.
    pub fn close(&self) {
        self.connection.close(CLOSE_NORMAL, b"link closed");
    }

    /// A handle that can close the link while this half is busy sending.
    pub fn closer(&self) -> LinkCloser {
        LinkCloser {
            connection: self.connection.clone(),
        }
    }
}

/// Closes a link from wherever it is held (see [`LinkSender::closer`]).
#[derive(Debug, Clone)]
pub struct LinkCloser {
    connection: Connection,
}

impl LinkCloser {
    /// Closes the link; the peer sees it go down at once.
    pub fn close(&self) {
        self.connection.close(CLOSE_NORMAL, b"link closed");
    }
}

/// The receiving half of a [`Link`].
#[derive(Debug)]
pub struct LinkReceiver {
    key: LinkKey,
    connection: Connection,
    recv: RecvStream,
}

impl LinkReceiver {
    /// Which link this is.
    pub fn key(&self) -> &LinkKey {
        &self.key
    }

    /// As [`Link::recv_frame`].
    pub async fn recv_frame(&mut self) -> Result<Vec<u8>, FrameError> {
        receive_frame(&self.key, &self.connection, &mut self.recv).await
    }
}

/// One frame from `recv`; a frame over the bound closes the connection (`frame_too_large`).
async fn receive_frame(
    key: &LinkKey,
    connection: &Connection,
    recv: &mut RecvStream,
) -> Result<Vec<u8>, FrameError> {
    let received = frame::read_frame(recv).await;
    if let Err(error @ FrameError::TooLarge { .. }) = &received {
        tracing::warn!(link = %key, "closing the link: {error}");
        connection.close(CLOSE_FRAME_TOO_LARGE, b"frame_too_large");
    }
    received
}

/// The configuration peers' handshakes are accepted with, presenting `identity`; `None` for a
/// hub without peering agreements yet (just provisioned): it has nobody to accept, and its
/// endpoint refuses every knock instead of failing to start.
fn server_config(
    identity: &Identity,
    peers: &Peers,
    timing: LinkTiming,
) -> Result<Option<quinn::ServerConfig>, LinkError> {
    let roots = distinct_roots(peers);
    if roots.is_empty() {
        return Ok(None);
    }
    let mut tls = tls::server_config(identity, &roots)?;
    tls.alpn_protocols = vec![LINK_ALPN.to_vec()];
    let mut server =
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(Arc::new(tls))?));
    server.transport_config(timing.transport());
    Ok(Some(server))
}

/// The roots of every peer, each once (several peers of one site pin the same root).
fn distinct_roots(peers: &Peers) -> Vec<PinnedRoot> {
    let mut seen: Vec<Fingerprint> = Vec::new();
    let mut roots = Vec::new();
    for agreement in peers.iter() {
        let root = agreement.root();
        if !seen.contains(&root.fingerprint()) {
            seen.push(root.fingerprint());
            roots.push(root.clone());
        }
    }
    roots
}

/// Closes a connection with the refusal's label as the reason, and returns the refusal.
fn refuse(connection: &Connection, refusal: LinkRefusal) -> LinkError {
    tracing::warn!(remote = %connection.remote_address(), reason = refusal.label(), "link refused: {refusal}");
    connection.close(CLOSE_REFUSED, refusal.label().as_bytes());
    LinkError::Refused(refusal)
}

/// Why a link did not come up: this side's own verifier's refusal if it made one, else what the
/// connection's end says (a refusal, or a loss that is none).
fn refused(slot: Option<&RefusalSlot>, error: &ConnectionError) -> LinkError {
    let own = slot.and_then(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take());
    match (own, error) {
        (Some(refusal), _) => LinkError::Refused(refusal),
        (
            None,
            ConnectionError::TimedOut | ConnectionError::Reset | ConnectionError::LocallyClosed,
        ) => LinkError::Lost(error.clone()),
        (None, _) => LinkError::Refused(LinkRefusal::from_handshake(error)),
    }
}

/// The connection is gone while the link was coming up: why.
fn lost(connection: &Connection) -> LinkError {
    LinkError::Lost(
        connection
            .close_reason()
            .unwrap_or(ConnectionError::LocallyClosed),
    )
}

async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, LinkError>>,
) -> Result<T, LinkError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(LinkError::TimedOut(limit)))
}
