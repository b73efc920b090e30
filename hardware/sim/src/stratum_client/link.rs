//! One Stratum V1 connection from a simulated miner to a pool: the socket bound to the miner's
//! own address, the handshake (configure, subscribe, extranonce.subscribe, authorize) and the
//! pool's messages turned into what the miner must act on.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use minerd::stratum::{
    ClientMessage, ClientRequest, ConfigureResult, Job, JobError, LineBuffer, MAX_LINE_LEN,
    MessageError, RequestId, ServerMessage, StratumError, Submit, SubscribeResult,
    VersionRollingRequest,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::SimPool;

/// The whole handshake, from connect to the first job, must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A pool that does not take a line within this is as good as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// What miners ask for (BIP 320's bits) and the fewest bits they can work with.
const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;
const VERSION_ROLLING_MIN_BITS: u32 = 2;
const USER_AGENT: &str = concat!("bunkeros-sim/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("pool url {0:?} is not stratum+tcp://HOST:PORT")]
    Url(String),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("the pool closed the connection")]
    Closed,
    #[error("the pool did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("the pool refused {request}: {error}")]
    Refused {
        request: &'static str,
        error: String,
    },
    #[error("the pool sent a bad message: {0}")]
    Protocol(String),
    #[error("the pool sent an over-long line")]
    LineTooLong,
}

/// What the miner must react to, from one line of the pool.
#[derive(Debug)]
pub enum PoolEvent {
    /// A new job, or new extranonce: the work in progress must be rebuilt.
    NewWork,
    /// The answer to a request (a submitted share, or a late answer to the handshake).
    Reply {
        id: u64,
        outcome: Result<Value, StratumError>,
    },
    /// `client.reconnect`: close and connect again after `wait`.
    Reconnect { wait: Duration },
    /// Anything else the pool said: it is alive.
    Other,
}

/// An open, authorized connection with at least one job.
pub struct PoolConnection {
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    lines: LineBuffer,
    buf: Vec<u8>,
    next_id: u64,
    pub user: String,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    /// The BIP 310 mask the pool granted, if any.
    pub version_mask: Option<u32>,
    /// The difficulty of the current job; a `set_difficulty` applies from the next job on.
    pub difficulty: f64,
    pending_difficulty: Option<f64>,
    pub job: Option<Arc<Job>>,
}

impl PoolConnection {
    /// Connects from `bind_ip` and completes the handshake; bounded by `HANDSHAKE_TIMEOUT`.
    pub async fn open(
        bind_ip: Ipv4Addr,
        pool: &SimPool,
        version_rolling: bool,
    ) -> Result<PoolConnection, LinkError> {
        tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            Self::handshake(bind_ip, pool, version_rolling),
        )
        .await
        .map_err(|_| LinkError::Timeout("handshake"))?
    }

    async fn handshake(
        bind_ip: Ipv4Addr,
        pool: &SimPool,
        version_rolling: bool,
    ) -> Result<PoolConnection, LinkError> {
        let addr = resolve(&pool.url).await?;
        let mut link = Self::connect(bind_ip, addr, &pool.user).await?;
        if version_rolling {
            let request = ClientRequest::Configure {
                extensions: vec!["version-rolling".into()],
                version_rolling: Some(VersionRollingRequest {
                    mask: VERSION_ROLLING_MASK,
                    min_bit_count: VERSION_ROLLING_MIN_BITS,
                }),
            };
            // A pool without BIP 310 answers with an error: mine without version rolling.
            if let Ok(result) = link.request("configure", request).await {
                let granted = ConfigureResult::from_json(&result)
                    .map_err(|e| LinkError::Protocol(e.to_string()))?;
                link.version_mask = granted.version_rolling_mask.filter(|&mask| mask != 0);
            }
        }
        let subscribe = ClientRequest::Subscribe {
            user_agent: Some(USER_AGENT.into()),
            session_id: None,
        };
        let result = link.request("subscribe", subscribe).await?;
        let subscribed =
            SubscribeResult::from_json(&result).map_err(|e| LinkError::Protocol(e.to_string()))?;
        link.extranonce1 = subscribed.extranonce1;
        link.extranonce2_size = subscribed.extranonce2_size;
        // The answer is not awaited: pools without the extension answer with an error, which
        // changes nothing (it arrives later as a reply to an id nobody waits for).
        link.send(ClientRequest::ExtranonceSubscribe).await?;
        let authorize = ClientRequest::Authorize {
            worker: pool.user.clone(),
            password: pool.password.clone(),
        };
        match link.request("authorize", authorize).await? {
            Value::Bool(true) => {}
            other => {
                return Err(LinkError::Refused {
                    request: "authorize",
                    error: format!("result {other}"),
                });
            }
        }
        while link.job.is_none() {
            link.next_event().await?;
        }
        Ok(link)
    }

    async fn connect(bind_ip: Ipv4Addr, addr: SocketAddr, user: &str) -> Result<Self, LinkError> {
        let socket = TcpSocket::new_v4().map_err(LinkError::Connect)?;
        // The miner's own address: a proxy tells miners apart by it.
        socket
            .bind(SocketAddr::new(bind_ip.into(), 0))
            .map_err(LinkError::Connect)?;
        let stream = socket.connect(addr).await.map_err(LinkError::Connect)?;
        let (reader, writer) = stream.into_split();
        Ok(PoolConnection {
            reader,
            writer,
            lines: LineBuffer::new(MAX_LINE_LEN),
            buf: vec![0; 4096],
            next_id: 1,
            user: user.to_string(),
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            version_mask: None,
            difficulty: 1.0,
            pending_difficulty: None,
            job: None,
        })
    }

    /// Sends a request and reads until its answer, applying whatever else the pool sends.
    async fn request(
        &mut self,
        name: &'static str,
        request: ClientRequest,
    ) -> Result<Value, LinkError> {
        let id = self.send(request).await?;
        loop {
            if let PoolEvent::Reply { id: got, outcome } = self.next_event().await?
                && got == id
            {
                return outcome.map_err(|e| LinkError::Refused {
                    request: name,
                    error: format!("{} {}", e.code.code(), e.message),
                });
            }
        }
    }

    /// Sends one request; returns its id.
    pub async fn send(&mut self, request: ClientRequest) -> Result<u64, LinkError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = ClientMessage {
            id: RequestId::Number(id),
            request,
        }
        .encode();
        match tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(line.as_bytes())).await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => Err(LinkError::Timeout("write")),
        }
    }

    /// Submits a share; returns the request id its answer will carry.
    pub async fn submit(&mut self, share: Submit) -> Result<u64, LinkError> {
        self.send(ClientRequest::Submit(share)).await
    }

    /// The next message from the pool, applied to the connection's state. Cancel-safe: bytes
    /// are only taken from the socket inside `read`, and lines are kept in the buffer.
    pub async fn next_event(&mut self) -> Result<PoolEvent, LinkError> {
        loop {
            match self.lines.next_line() {
                Some(Ok(line)) => return self.apply(&line),
                Some(Err(_)) => return Err(LinkError::LineTooLong),
                None => {}
            }
            let n = self
                .reader
                .read(&mut self.buf)
                .await
                .map_err(|_| LinkError::Closed)?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.lines.extend(&self.buf[..n]);
        }
    }

    fn apply(&mut self, line: &[u8]) -> Result<PoolEvent, LinkError> {
        let message = match ServerMessage::parse(line) {
            Ok(message) => message,
            Err(MessageError::UnknownMethod(method)) if method == "client.reconnect" => {
                return Ok(PoolEvent::Reconnect {
                    wait: reconnect_wait(line),
                });
            }
            Err(MessageError::UnknownMethod(method)) => {
                // mining.ping, client.show_message and the like: nothing a miner must do.
                tracing::debug!(%method, "ignoring a pool notification");
                return Ok(PoolEvent::Other);
            }
            Err(e) => {
                // cgminer logs a line it cannot read and carries on; so does the simulated miner.
                tracing::warn!(error = %e, "ignoring a line from the pool");
                return Ok(PoolEvent::Other);
            }
        };
        Ok(match message {
            ServerMessage::Notify(notify) => {
                if let Some(difficulty) = self.pending_difficulty.take() {
                    self.difficulty = difficulty;
                }
                let job =
                    Job::new(notify).map_err(|e: JobError| LinkError::Protocol(e.to_string()))?;
                self.job = Some(Arc::new(job));
                PoolEvent::NewWork
            }
            ServerMessage::SetDifficulty(difficulty) => {
                self.pending_difficulty = Some(difficulty);
                PoolEvent::Other
            }
            ServerMessage::SetVersionMask(mask) => {
                self.version_mask = self.version_mask.map(|_| mask).filter(|&m| m != 0);
                PoolEvent::NewWork
            }
            ServerMessage::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => {
                self.extranonce1 = extranonce1;
                self.extranonce2_size = extranonce2_size;
                PoolEvent::NewWork
            }
            ServerMessage::Response {
                id: Some(RequestId::Number(id)),
                outcome,
            } => PoolEvent::Reply { id, outcome },
            ServerMessage::Response { .. } => PoolEvent::Other,
        })
    }
}

/// `client.reconnect` params are `[host, port, wait_seconds]`, all optional. The simulated
/// miner always reconnects to its configured pool (as cgminer does for a foreign host); only the
/// wait is used, capped so a hostile pool cannot park the miner.
fn reconnect_wait(line: &[u8]) -> Duration {
    let seconds = serde_json::from_slice::<Value>(line)
        .ok()
        .and_then(|v| v.get("params")?.get(2).cloned())
        .and_then(|w| w.as_u64().or_else(|| w.as_str()?.parse().ok()))
        .unwrap_or(0);
    Duration::from_secs(seconds.min(10))
}

/// `stratum+tcp://host:port` (also without the scheme) to an address.
async fn resolve(url: &str) -> Result<SocketAddr, LinkError> {
    let bad = || LinkError::Url(url.chars().take(200).collect());
    let rest = url
        .strip_prefix("stratum+tcp://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    let host_port = rest
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(bad)?;
    let mut addrs = tokio::net::lookup_host(host_port)
        .await
        .map_err(|_| bad())?;
    addrs.find(SocketAddr::is_ipv4).ok_or_else(bad)
}
