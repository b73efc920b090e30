//! Shared by the pool and Stratum client tests: a pool on loopback, clients bound to their own
//! 127.1.x.y address, and waiting for a condition with a bound that separates "works" from
//! "hung".

#![allow(dead_code)] // each test file uses its own part of this

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use sim::pool::{PoolSpec, TestPool};
use sim::stratum_client::{PoolLink, SimPool, StratumClient, StratumClientSpec};

/// Far beyond what any of these steps takes when it works, far below a hang.
pub const BOUND: Duration = Duration::from_secs(20);

/// A pool on 127.0.0.1 with a tiny difficulty: one share per 1024 hashes on average.
pub fn spec() -> PoolSpec {
    let mut spec = PoolSpec::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    spec.difficulty = 1.0 / 4_194_304.0;
    spec
}

pub async fn pool() -> TestPool {
    TestPool::start(spec()).await.unwrap()
}

pub fn sim_pool(pool: &TestPool, user: &str) -> SimPool {
    SimPool {
        url: pool.url(),
        user: user.to_string(),
        password: "x".to_string(),
    }
}

/// A client at `bind_ip` hashing 8k real hashes a second (about 8 shares a second here).
pub fn client(bind_ip: Ipv4Addr, pools: Vec<SimPool>, version_rolling: bool) -> StratumClient {
    StratumClient::spawn(StratumClientSpec {
        bind_ip,
        pools,
        version_rolling,
        hashes_per_second: 8_000.0,
    })
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `BOUND`.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {BOUND:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn active(status: &[PoolLink]) -> Option<usize> {
    status.iter().position(|link| link.active)
}

/// A hand-driven Stratum miner for testing the pool line by line.
pub struct RawMiner {
    reader: tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    next_id: u64,
    /// Notifications seen while waiting for answers, oldest first.
    pub notifications: Vec<serde_json::Value>,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
}

impl RawMiner {
    pub async fn connect(pool: &TestPool) -> RawMiner {
        let stream = tokio::net::TcpStream::connect(pool.addr()).await.unwrap();
        let (reader, writer) = stream.into_split();
        use tokio::io::AsyncBufReadExt;
        RawMiner {
            reader: tokio::io::BufReader::new(reader).lines(),
            writer,
            next_id: 1,
            notifications: Vec::new(),
            extranonce1: Vec::new(),
            extranonce2_size: 0,
        }
    }

    /// Subscribes and authorizes `worker`; returns the first job.
    pub async fn handshake(pool: &TestPool, worker: &str) -> (RawMiner, minerd::stratum::Job) {
        let mut miner = RawMiner::connect(pool).await;
        let result = miner
            .request("mining.subscribe", serde_json::json!(["test/1.0"]))
            .await;
        let subscribed = minerd::stratum::SubscribeResult::from_json(&result["result"]).unwrap();
        miner.extranonce1 = subscribed.extranonce1;
        miner.extranonce2_size = subscribed.extranonce2_size;
        let result = miner
            .request("mining.authorize", serde_json::json!([worker, "x"]))
            .await;
        assert_eq!(result["result"], true);
        let job = miner.next_job().await;
        (miner, job)
    }

    pub async fn send_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.writer.write_all(line).await
    }

    /// Sends a request; returns its whole answer, keeping notifications that came before it.
    pub async fn request(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        let line = serde_json::json!({"id": id, "method": method, "params": params});
        self.send_line(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.answer(Some(id)).await
    }

    /// Reads until the answer with this id (`None`: an answer with id null).
    pub async fn answer(&mut self, id: Option<u64>) -> serde_json::Value {
        loop {
            let message = self
                .read()
                .await
                .expect("connection closed before the answer");
            if message.get("method").is_some_and(|m| !m.is_null()) {
                self.notifications.push(message);
                continue;
            }
            if message["id"].as_u64() == id {
                return message;
            }
        }
    }

    /// The next line as JSON, `None` once the pool closed the connection.
    pub async fn read(&mut self) -> Option<serde_json::Value> {
        let line = tokio::time::timeout(BOUND, self.reader.next_line())
            .await
            .expect("the pool said nothing")
            .ok()??;
        Some(serde_json::from_str(&line).unwrap())
    }

    /// The next `mining.notify` (one already received first), as a job.
    pub async fn next_job(&mut self) -> minerd::stratum::Job {
        loop {
            if let Some(at) = self
                .notifications
                .iter()
                .position(|n| n["method"] == "mining.notify")
            {
                let notify = self.notifications.remove(at);
                let line = notify.to_string();
                let minerd::stratum::ServerMessage::Notify(notify) =
                    minerd::stratum::ServerMessage::parse(line.as_bytes()).unwrap()
                else {
                    unreachable!()
                };
                return minerd::stratum::Job::new(notify).unwrap();
            }
            let message = self.read().await.expect("closed while waiting for a job");
            self.notifications.push(message);
        }
    }

    /// Submits a share; returns the answer.
    pub async fn submit(&mut self, share: &minerd::stratum::Submit) -> serde_json::Value {
        let mut params = vec![
            serde_json::json!(share.worker),
            serde_json::json!(share.job_id),
            serde_json::json!(hex::encode(&share.extranonce2)),
            serde_json::json!(format!("{:08x}", share.ntime)),
            serde_json::json!(format!("{:08x}", share.nonce)),
        ];
        if let Some(bits) = share.version_bits {
            params.push(serde_json::json!(format!("{bits:08x}")));
        }
        self.request("mining.submit", serde_json::Value::Array(params))
            .await
    }

    /// A share for `job` whose hash meets (`meets = true`) or misses the pool's difficulty.
    pub fn find_share(
        &self,
        job: &minerd::stratum::Job,
        worker: &str,
        version_bits: Option<u32>,
        meets: bool,
    ) -> minerd::stratum::Submit {
        let target = minerd::stratum::Target::from_difficulty(spec().difficulty).unwrap();
        let extranonce2 = vec![0x5a; self.extranonce2_size];
        let coinbase = job.coinbase(&self.extranonce1, &extranonce2);
        let root = job.merkle_root(&coinbase);
        let version = match version_bits {
            Some(bits) => (job.notify.version & !0x1fff_e000) | bits,
            None => job.notify.version,
        };
        for nonce in 0..u32::MAX {
            let header = job.header(&root, version, job.notify.ntime, nonce);
            let hash = minerd::stratum::share::sha256d(&header);
            let hash_be = minerd::stratum::target::hash_to_be(&hash);
            if target.is_met_by(&hash_be) == meets {
                return minerd::stratum::Submit {
                    worker: worker.to_string(),
                    job_id: job.notify.job_id.clone(),
                    extranonce2,
                    ntime: job.notify.ntime,
                    nonce,
                    version_bits,
                };
            }
        }
        unreachable!("a tiny difficulty is met within a few thousand nonces")
    }
}

/// The error code of an answer, or `None` for a success.
pub fn error_code(answer: &serde_json::Value) -> Option<i64> {
    answer["error"].get(0).and_then(serde_json::Value::as_i64)
}
