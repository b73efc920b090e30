//! One connection to a pool, carrying many miners. It subscribes once, negotiates version
//! rolling once, authorizes with the owner's pool identity, and then relays the pool's jobs to
//! its miners (through a `watch` feed, so a slow miner only ever sees the latest job) and the
//! miners' forwarded shares to the pool. Each miner gets a prefix from the connection's
//! extranonce partition.
//!
//! The connection declares itself dead when the pool closes it, stops reading, leaves a
//! forwarded share unanswered for `submit_timeout`, or sends no job for `job_timeout`; the
//! owner's supervisor then fails over. A malformed line from the pool is counted and skipped
//! (a pool that only sends garbage soon trips the clocks). A retired connection (its owner
//! moved to another pool, or the pool asked for a reconnect or changed the extranonce) closes
//! once its last miner left and its last share was answered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

use super::accounting::{Accounting, Outcome, ShareRecord};
use super::directory::SanctionedPool;
use super::extranonce::{ExtranoncePartition, PartitionError};
use super::pool_handshake::handshake;
use super::settings::FailoverSettings;
use crate::stratum::{
    ClientMessage, ClientRequest, Job, LineBuffer, MessageError, RequestId, ServerMessage,
    StratumErrorCode, Submit, Target,
};

/// The version bits the proxy asks pools for (BIP 320's general-purpose bits).
pub const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;

/// How often timeouts are checked.
const TICK: Duration = Duration::from_millis(200);

static NEXT_UPSTREAM_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("pool URL {0:?} is not stratum+tcp://host:port")]
    BadUrl(String),
    #[error("connecting: {0}")]
    Connect(#[from] std::io::Error),
    #[error("no subscription, authorization and first job within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("the pool closed the connection")]
    Closed,
    #[error("the pool sent a bad message: {0}")]
    Message(#[from] MessageError),
    #[error("the pool refused {what}: {reason}")]
    Refused { what: &'static str, reason: String },
    #[error("the pool's extranonce cannot be shared: {0}")]
    Partition(#[from] PartitionError),
}

/// What miners on this connection see.
#[derive(Debug, Clone)]
pub struct UpstreamFeed {
    /// The latest job, with the proxy's job id (unique per connection).
    pub job: Option<Arc<Job>>,
    /// False once the connection is dead or retired: miners must move.
    pub usable: bool,
}

/// A forwarded share and whose it is (for the accounting of the pool's answer).
#[derive(Debug, Clone)]
pub struct Forward {
    pub submit: Submit,
    pub miner_id: String,
    pub owner: String,
    pub difficulty: f64,
}

/// Why a connection ended, reported to the owner's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEnd {
    /// Closed, refused, silent or broken: the pool is down.
    Dead,
    /// Retired and drained: closed on purpose.
    Retired,
}

#[derive(Debug)]
struct Shared {
    partition: ExtranoncePartition,
    target: Target,
    difficulty: f64,
    version_mask: u32,
    retiring: bool,
    pending: usize,
    malformed_lines: u64,
}

/// A live pool connection. Miners hold it through an `Arc`.
pub struct Upstream {
    pub id: u64,
    pub pool_index: usize,
    pub pool: SanctionedPool,
    pub extranonce1: Vec<u8>,
    shared: Mutex<Shared>,
    feed: watch::Sender<UpstreamFeed>,
    forwards: mpsc::UnboundedSender<Forward>,
}

impl Upstream {
    /// Connects to `pool`, completes the handshake (configure, subscribe, authorize, first
    /// job) within the connect timeout, and starts relaying. `ended` hears when it ends.
    pub async fn connect(
        pool_index: usize,
        pool: SanctionedPool,
        prefix_size: usize,
        miners_per_upstream: usize,
        timings: FailoverSettings,
        accounting: Arc<Accounting>,
        ended: mpsc::UnboundedSender<(u64, UpstreamEnd)>,
    ) -> Result<Arc<Upstream>, UpstreamError> {
        let address = pool
            .host_port()
            .ok_or_else(|| UpstreamError::BadUrl(pool.url.clone()))?
            .to_string();
        let limit = timings.connect_timeout();
        let (stream, handshake) = tokio::time::timeout(limit, async {
            let mut stream = TcpStream::connect(&address).await?;
            stream.set_nodelay(true).ok();
            let handshake = handshake(&mut stream, &pool).await?;
            Ok::<_, UpstreamError>((stream, handshake))
        })
        .await
        .map_err(|_| UpstreamError::HandshakeTimeout(limit))??;
        let partition =
            ExtranoncePartition::new(handshake.extranonce2_size, prefix_size, miners_per_upstream)?;
        let id = NEXT_UPSTREAM_ID.fetch_add(1, Ordering::Relaxed);
        let job = Arc::new(proxy_job(id, handshake.first_job));
        let (feed, _) = watch::channel(UpstreamFeed {
            job: Some(job),
            usable: true,
        });
        let (forwards, forward_rx) = mpsc::unbounded_channel();
        let upstream = Arc::new(Upstream {
            id,
            pool_index,
            pool,
            extranonce1: handshake.extranonce1,
            shared: Mutex::new(Shared {
                partition,
                target: target_for(handshake.difficulty),
                difficulty: handshake.difficulty,
                version_mask: handshake.version_mask,
                retiring: false,
                pending: 0,
                malformed_lines: 0,
            }),
            feed,
            forwards,
        });
        let (reader, writer) = stream.into_split();
        let relay = Relay {
            upstream: upstream.clone(),
            lines: handshake.pending_lines,
            timings,
            accounting,
            pending: HashMap::new(),
            next_id: 100,
            last_job: Instant::now(),
        };
        tokio::spawn(async move {
            let end = relay.run(reader, writer, forward_rx).await;
            ended.send((id, end)).ok();
        });
        tracing::info!(pool = %upstream.pool.url, upstream = id, "upstream connected");
        Ok(upstream)
    }

    /// A prefix for a new miner, or `None` when full, retiring or dead.
    pub fn attach(&self) -> Option<Vec<u8>> {
        if !self.feed.borrow().usable {
            return None;
        }
        let mut shared = self.lock();
        if shared.retiring {
            return None;
        }
        shared.partition.allocate()
    }

    /// A miner left (or moved): its prefix is free again.
    pub fn detach(&self, prefix: &[u8]) {
        self.lock().partition.release(prefix);
    }

    pub fn miners(&self) -> usize {
        self.lock().partition.in_use()
    }

    pub fn miner_extranonce2_size(&self) -> usize {
        self.lock().partition.miner_extranonce2_size()
    }

    /// The extranonce1 a miner with this prefix is given.
    pub fn miner_extranonce1(&self, prefix: &[u8]) -> Vec<u8> {
        let mut extranonce1 = self.extranonce1.clone();
        extranonce1.extend_from_slice(prefix);
        extranonce1
    }

    pub fn version_mask(&self) -> u32 {
        self.lock().version_mask
    }

    /// The pool's share target: only shares meeting it are forwarded.
    pub fn target(&self) -> Target {
        self.lock().target
    }

    pub fn difficulty(&self) -> f64 {
        self.lock().difficulty
    }

    pub fn feed(&self) -> watch::Receiver<UpstreamFeed> {
        self.feed.subscribe()
    }

    /// Takes more miners: usable, not retiring, prefixes left.
    pub fn has_room(&self) -> bool {
        if !self.feed.borrow().usable {
            return false;
        }
        let shared = self.lock();
        !shared.retiring && !shared.partition.is_full()
    }

    /// Lines from the pool that were skipped as malformed.
    pub fn malformed_lines(&self) -> u64 {
        self.lock().malformed_lines
    }

    pub fn is_usable(&self) -> bool {
        self.feed.borrow().usable && !self.lock().retiring
    }

    /// Stops taking miners and tells the current ones to move; the connection closes when
    /// drained.
    pub fn retire(&self) {
        self.lock().retiring = true;
        self.feed.send_modify(|f| f.usable = false);
    }

    /// Queues a share for the pool; `false` if the connection is gone.
    pub fn forward(&self, share: Forward) -> bool {
        self.forwards.send(share).is_ok()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().expect("upstream state lock")
    }
}

/// The pool's job re-identified for miners: job ids are only unique per pool connection, and
/// miners may move between connections, so the proxy prefixes the connection's id.
fn proxy_job(upstream_id: u64, mut job: Job) -> Job {
    job.notify.job_id = format!("{upstream_id:x}.{}", job.notify.job_id);
    job
}

/// The pool's own job id inside a proxy job id.
pub fn pool_job_id(proxy_job_id: &str) -> Option<&str> {
    proxy_job_id.split_once('.').map(|(_, pool)| pool)
}

fn target_for(difficulty: f64) -> Target {
    Target::from_difficulty(difficulty).unwrap_or(crate::stratum::target::DIFF1)
}

pub(super) async fn write_line(
    stream: &mut (impl AsyncWriteExt + Unpin),
    line: &str,
) -> std::io::Result<()> {
    stream.write_all(line.as_bytes()).await
}

struct PendingShare {
    forward: Forward,
    sent: Instant,
}

/// The running half of a connection: reads the pool, writes forwarded shares, watches the
/// clocks.
struct Relay {
    upstream: Arc<Upstream>,
    lines: LineBuffer,
    timings: FailoverSettings,
    accounting: Arc<Accounting>,
    pending: HashMap<u64, PendingShare>,
    next_id: u64,
    last_job: Instant,
}

impl Relay {
    async fn run(
        mut self,
        mut reader: OwnedReadHalf,
        mut writer: OwnedWriteHalf,
        mut forwards: mpsc::UnboundedReceiver<Forward>,
    ) -> UpstreamEnd {
        let mut tick = tokio::time::interval(TICK);
        let mut buf = vec![0u8; 8192];
        let end = loop {
            self.drain_lines();
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => {
                        tracing::warn!(pool = %self.upstream.pool.url, "upstream closed by the pool");
                        break UpstreamEnd::Dead;
                    }
                    Ok(n) => self.lines.extend(&buf[..n]),
                },
                Some(forward) = forwards.recv() => {
                    if self.send_share(&mut writer, forward).await.is_err() {
                        break UpstreamEnd::Dead;
                    }
                }
                _ = tick.tick() => {
                    if let Some(end) = self.check_clocks() {
                        break end;
                    }
                }
            }
        };
        self.upstream.feed.send_modify(|f| f.usable = false);
        for (_, pending) in self.pending.drain() {
            self.accounting.record_detached(upstream_record(
                &pending.forward,
                Outcome::UpstreamUnanswered,
            ));
        }
        writer.shutdown().await.ok();
        end
    }

    /// Applies every complete line from the pool. A line that is not a message we accept is
    /// counted and skipped, like any bad input: a pool that only sends garbage stops
    /// answering shares and sending jobs, and the clocks declare it dead.
    fn drain_lines(&mut self) {
        while let Some(line) = self.lines.next_line() {
            match line.and_then(|line| ServerMessage::parse(&line)) {
                Ok(message) => self.apply(message),
                Err(MessageError::UnknownMethod(method)) if method == "client.reconnect" => {
                    // The pool wants this connection gone: miners move to a fresh one.
                    tracing::info!(pool = %self.upstream.pool.url, "pool asked for a reconnect");
                    self.upstream.retire();
                }
                Err(MessageError::UnknownMethod(method)) => {
                    // mining.ping, client.show_message and the like: nothing to do.
                    tracing::debug!(pool = %self.upstream.pool.url, %method, "pool notification ignored");
                }
                Err(e) => {
                    tracing::warn!(pool = %self.upstream.pool.url, error = %e, "bad line from the pool skipped");
                    self.upstream.lock().malformed_lines += 1;
                }
            }
        }
    }

    fn apply(&mut self, message: ServerMessage) {
        match message {
            ServerMessage::Notify(notify) => match Job::new(notify) {
                Ok(job) => {
                    self.last_job = Instant::now();
                    let job = Arc::new(proxy_job(self.upstream.id, job));
                    self.upstream.feed.send_modify(|f| f.job = Some(job));
                }
                Err(e) => {
                    tracing::warn!(pool = %self.upstream.pool.url, error = %e, "job refused");
                    self.upstream.lock().malformed_lines += 1;
                }
            },
            ServerMessage::SetDifficulty(d) => {
                let mut shared = self.upstream.lock();
                shared.difficulty = d;
                shared.target = target_for(d);
            }
            ServerMessage::SetVersionMask(mask) => {
                self.upstream.lock().version_mask = mask & VERSION_ROLLING_MASK;
            }
            ServerMessage::SetExtranonce { .. } => {
                // Every miner's extranonce1 derives from the old value: they move to a
                // fresh connection, and this one drains.
                self.upstream.retire();
            }
            ServerMessage::Response { id, outcome } => self.answered(id, outcome),
        }
    }

    fn answered(
        &mut self,
        id: Option<RequestId>,
        outcome: Result<Value, crate::stratum::StratumError>,
    ) {
        let Some(RequestId::Number(id)) = id else {
            return;
        };
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        self.upstream.lock().pending -= 1;
        let result = match outcome {
            Ok(Value::Bool(true)) => Outcome::UpstreamAccepted,
            Ok(_) => Outcome::UpstreamRejected("other"),
            Err(e) => Outcome::UpstreamRejected(upstream_reason(e.code)),
        };
        if result != Outcome::UpstreamAccepted {
            tracing::info!(pool = %self.upstream.pool.url, miner = %pending.forward.miner_id, ?result, "pool rejected a forwarded share");
        }
        self.accounting
            .record_detached(upstream_record(&pending.forward, result));
    }

    async fn send_share(
        &mut self,
        writer: &mut OwnedWriteHalf,
        forward: Forward,
    ) -> std::io::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let line = ClientMessage {
            id: RequestId::Number(id),
            request: ClientRequest::Submit(forward.submit.clone()),
        }
        .encode();
        self.pending.insert(
            id,
            PendingShare {
                forward,
                sent: Instant::now(),
            },
        );
        self.upstream.lock().pending += 1;
        // A pool that stops reading is as dead as one that stops answering.
        tokio::time::timeout(self.timings.submit_timeout(), write_line(writer, &line))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    fn check_clocks(&self) -> Option<UpstreamEnd> {
        let now = Instant::now();
        let unanswered = self
            .pending
            .values()
            .any(|p| now.duration_since(p.sent) > self.timings.submit_timeout());
        if unanswered {
            tracing::warn!(pool = %self.upstream.pool.url, "upstream dead: a share went unanswered");
            return Some(UpstreamEnd::Dead);
        }
        if now.duration_since(self.last_job) > self.timings.job_timeout() {
            tracing::warn!(pool = %self.upstream.pool.url, "upstream dead: no job for too long");
            return Some(UpstreamEnd::Dead);
        }
        let shared = self.upstream.lock();
        if shared.retiring && shared.partition.in_use() == 0 && shared.pending == 0 {
            return Some(UpstreamEnd::Retired);
        }
        None
    }
}

fn upstream_record(forward: &Forward, outcome: Outcome) -> ShareRecord {
    ShareRecord {
        miner_id: forward.miner_id.clone(),
        owner: forward.owner.clone(),
        outcome,
        difficulty: forward.difficulty,
    }
}

fn upstream_reason(code: StratumErrorCode) -> &'static str {
    match code {
        StratumErrorCode::JobNotFound => "stale",
        StratumErrorCode::DuplicateShare => "duplicate",
        StratumErrorCode::LowDifficulty => "low_difficulty",
        StratumErrorCode::UnauthorizedWorker | StratumErrorCode::NotSubscribed => "unauthorized",
        StratumErrorCode::Other | StratumErrorCode::Unknown(_) => "other",
    }
}
