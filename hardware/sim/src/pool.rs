//! A Stratum V1 test pool: a real TCP server speaking newline-delimited JSON-RPC that hands out
//! realistic jobs, validates every share with minerd's own `Session` (the header rebuilt and
//! double-SHA-256 hashed against the share target) and counts each outcome per worker name.
//! Tests make it misbehave the ways real pools do: an outage (every connection dropped, new ones
//! closed at once), silence (sockets open, nothing answered), a difficulty change, a
//! `client.reconnect`, a `mining.set_extranonce`.

mod block_template;
mod connection;
mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use minerd::stratum::Job;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use block_template::BlockTemplates;
pub use block_template::bip34_height_push;
pub use stats::{PoolStats, RejectCounts, RejectReason, ShareCounts};

/// How the test pool behaves. Build with `PoolSpec::new` and change what a test needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub bind: SocketAddr,
    /// The share difficulty sent to every connection. Tiny by default, so a simulated miner
    /// spending a few thousand real hashes a second finds shares every second or so.
    pub difficulty: f64,
    pub extranonce1_size: usize,
    pub extranonce2_size: usize,
    /// A new job on the same block (clean_jobs = false) this often.
    pub job_interval: Duration,
    /// A new block (clean_jobs = true: earlier jobs become stale) this often.
    pub block_interval: Duration,
    /// The BIP 310 version bits the pool lets miners roll; 0 refuses version rolling.
    pub version_mask: u32,
}

impl PoolSpec {
    pub fn new(bind: SocketAddr) -> PoolSpec {
        PoolSpec {
            bind,
            // 2^-20: one share per 2^12 hashes on average.
            difficulty: 1.0 / 1_048_576.0,
            extranonce1_size: 4,
            extranonce2_size: 4,
            job_interval: Duration::from_secs(30),
            block_interval: Duration::from_secs(600),
            // The mask bitcoin leaves to version rolling (BIP 320).
            version_mask: 0x1fff_e000,
        }
    }

    /// Refuses values no pool would run with.
    pub fn validate(&self) -> Result<(), SpecError> {
        if !(self.difficulty.is_finite() && self.difficulty > 0.0) {
            return Err(SpecError::Difficulty(self.difficulty));
        }
        // cgminer accepts extranonce2 up to 8 bytes; the coinbase script must stay short.
        for (name, size) in [
            ("extranonce1_size", self.extranonce1_size),
            ("extranonce2_size", self.extranonce2_size),
        ] {
            if !(1..=8).contains(&size) {
                return Err(SpecError::ExtranonceSize { name, size });
            }
        }
        if self.job_interval < Duration::from_millis(10)
            || self.block_interval < Duration::from_millis(10)
        {
            return Err(SpecError::Interval);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("difficulty {0} is not a positive number")]
    Difficulty(f64),
    #[error("{name} {size} is outside 1..=8 bytes")]
    ExtranonceSize { name: &'static str, size: usize },
    #[error("job and block intervals must be at least 10 ms")]
    Interval,
}

/// What the pool tells every connection; each connection applies it to its own session.
#[derive(Debug, Clone)]
enum PoolEvent {
    Job(Arc<Job>),
    Difficulty(f64),
    Reconnect,
    NewExtranonce,
    /// Close now (an outage, or the pool stopping).
    Drop,
}

/// State shared by the accept loop, the job clock and every connection.
struct Shared {
    spec: PoolSpec,
    stats: Mutex<PoolStats>,
    current_job: Mutex<Arc<Job>>,
    outage: AtomicBool,
    silent: AtomicBool,
    next_extranonce1: AtomicU64,
    events: broadcast::Sender<PoolEvent>,
}

impl Shared {
    fn stats(&self) -> MutexGuard<'_, PoolStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current_job(&self) -> Arc<Job> {
        self.current_job
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn difficulty(&self) -> f64 {
        self.stats().difficulty
    }

    fn is_silent(&self) -> bool {
        self.silent.load(Ordering::SeqCst)
    }

    /// A fresh extranonce1, unique among this pool's connections (a counter, big-endian).
    fn allocate_extranonce1(&self) -> Vec<u8> {
        let n = self.next_extranonce1.fetch_add(1, Ordering::SeqCst);
        let bytes = n.to_be_bytes();
        let size = self.spec.extranonce1_size;
        bytes[8 - size..].to_vec()
    }

    fn publish(&self, event: PoolEvent) {
        // No receivers just means no connection is open.
        let _ = self.events.send(event);
    }
}

/// A running test pool. Dropping it (or `stop`) closes the listener and every connection.
pub struct TestPool {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
}

impl TestPool {
    pub async fn start(spec: PoolSpec) -> std::io::Result<TestPool> {
        spec.validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(spec.bind).await?;
        let addr = listener.local_addr()?;
        let mut templates = BlockTemplates::new(spec.extranonce1_size + spec.extranonce2_size);
        let first_job = templates.new_block();
        let (events, _) = broadcast::channel(64);
        let stats = PoolStats {
            difficulty: spec.difficulty,
            height: templates.height(),
            ..PoolStats::default()
        };
        let shared = Arc::new(Shared {
            spec,
            stats: Mutex::new(stats),
            current_job: Mutex::new(first_job),
            outage: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            next_extranonce1: AtomicU64::new(1),
            events,
        });
        let tasks = vec![
            tokio::spawn(accept_loop(listener, shared.clone())),
            tokio::spawn(job_clock(templates, shared.clone())),
        ];
        tracing::info!(%addr, "test pool listening");
        Ok(TestPool {
            shared,
            addr,
            tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("stratum+tcp://{}", self.addr)
    }

    pub fn stats(&self) -> PoolStats {
        self.shared.stats().clone()
    }

    /// Down: every connection is dropped and new ones are closed as soon as they are accepted.
    pub fn set_outage(&self, down: bool) {
        self.shared.outage.store(down, Ordering::SeqCst);
        if down {
            self.shared.publish(PoolEvent::Drop);
        }
        tracing::info!(addr = %self.addr, down, "test pool outage");
    }

    /// Silent: connections stay open, but nothing is answered and no job is sent.
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
        tracing::info!(addr = %self.addr, silent, "test pool silence");
    }

    /// Sends the new share difficulty to every connection; it applies from the next job on,
    /// as a pool's `mining.set_difficulty` does.
    pub fn set_difficulty(&self, difficulty: f64) {
        if !(difficulty.is_finite() && difficulty > 0.0) {
            tracing::warn!(
                difficulty,
                "refusing a difficulty that is not a positive number"
            );
            return;
        }
        self.shared.stats().difficulty = difficulty;
        self.shared.publish(PoolEvent::Difficulty(difficulty));
    }

    /// Sends `client.reconnect` to every connection (as a pool does before maintenance).
    pub fn reconnect_all(&self) {
        self.shared.publish(PoolEvent::Reconnect);
    }

    /// Sends `mining.set_extranonce` with a new extranonce1 to every connection that sent
    /// `mining.extranonce.subscribe`, followed by a clean job.
    pub fn set_extranonce_all(&self) {
        self.shared.publish(PoolEvent::NewExtranonce);
    }

    pub async fn stop(mut self) {
        self.shut_down();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    fn shut_down(&self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.outage.store(true, Ordering::SeqCst);
        self.shared.publish(PoolEvent::Drop);
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        self.shut_down();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "test pool accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        shared.stats().connections_total += 1;
        // Subscribed before the outage flag is read: an outage declared from here on reaches
        // the connection as an event, one declared before is seen in the flag.
        let events = shared.events.subscribe();
        if shared.outage.load(Ordering::SeqCst) {
            tracing::debug!(%peer, "outage: closing the new connection");
            drop(stream);
            continue;
        }
        shared.stats().connections += 1;
        tokio::spawn(connection::serve(stream, peer, events, shared.clone()));
    }
}

/// Issues a job every `job_interval` and a new block every `block_interval`.
async fn job_clock(mut templates: BlockTemplates, shared: Arc<Shared>) {
    let start = tokio::time::Instant::now();
    let mut jobs =
        tokio::time::interval_at(start + shared.spec.job_interval, shared.spec.job_interval);
    let mut blocks = tokio::time::interval_at(
        start + shared.spec.block_interval,
        shared.spec.block_interval,
    );
    loop {
        let job = tokio::select! {
            _ = blocks.tick() => {
                jobs.reset();
                let job = templates.new_block();
                shared.stats().height = templates.height();
                job
            }
            _ = jobs.tick() => templates.new_job(),
        };
        *shared.current_job.lock().unwrap_or_else(|e| e.into_inner()) = job.clone();
        shared.publish(PoolEvent::Job(job));
    }
}
