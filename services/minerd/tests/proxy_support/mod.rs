//! Shared by the proxy's integration tests: an inventory over maps, test pools, simulated
//! miners bound to their own 127.1.x.y address, a hand-driven raw miner for the protocol
//! corners, and waiting with a bound that separates "works" from "hung".

#![allow(dead_code)] // each test file uses its own part of this

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minerd::proxy::{
    Accounting, Admission, FailoverSettings, MinerDirectory, Proxy, ProxySettings, SanctionedPool,
    VardiffSettings,
};
use minerd::stratum::share::sha256d;
use minerd::stratum::target::hash_to_be;
use minerd::stratum::{Job, Notify, ServerMessage, Target};
use serde_json::{Value, json};
use sim::pool::{PoolSpec, TestPool};
use sim::stratum_client::{SimPool, StratumClient, StratumClientSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Far beyond what any step takes when it works, far below a hang.
pub const BOUND: Duration = Duration::from_secs(30);

/// The pools' share difficulty: one share per ~1024 hashes.
pub const POOL_DIFFICULTY: f64 = 1.0 / 4_194_304.0;

/// The inventory: miners by address, owners' pools.
#[derive(Default)]
pub struct Inventory {
    pub miners: Mutex<HashMap<IpAddr, Admission>>,
    pub pools: Mutex<HashMap<String, Vec<SanctionedPool>>>,
}

impl Inventory {
    pub fn add_miner(&self, ip: Ipv4Addr, miner_id: &str, owner: &str, users: &[&str]) {
        self.miners.lock().unwrap().insert(
            IpAddr::V4(ip),
            Admission {
                miner_id: miner_id.into(),
                owner: owner.into(),
                sanctioned_users: users.iter().map(|u| u.to_string()).collect(),
                quarantined: false,
            },
        );
    }

    pub fn set_pools(&self, owner: &str, pools: &[&TestPool]) {
        self.pools.lock().unwrap().insert(
            owner.into(),
            pools
                .iter()
                .map(|p| SanctionedPool {
                    url: p.url(),
                    user: format!("{owner}.proxy"),
                    password: "x".into(),
                })
                .collect(),
        );
    }
}

impl MinerDirectory for Inventory {
    fn admit(&self, ip: IpAddr) -> Option<Admission> {
        self.miners.lock().unwrap().get(&ip).cloned()
    }
    fn owner_pools(&self, owner: &str) -> Vec<SanctionedPool> {
        self.pools
            .lock()
            .unwrap()
            .get(owner)
            .cloned()
            .unwrap_or_default()
    }
}

/// Fast clocks: vardiff every 2 s, dead after 2 s without an answer, back after 1.5 s.
pub fn settings() -> ProxySettings {
    let settings = fast_settings(2);
    // Valid as a site would write it; the tests then take any free port.
    let as_configured = ProxySettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 3333)),
        ..settings.clone()
    };
    as_configured.validate().unwrap();
    settings
}

/// `settings` with `miners_per_upstream` miners sharing one upstream connection, on any free
/// port.
pub fn fast_settings(miners_per_upstream: usize) -> ProxySettings {
    ProxySettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        miners_per_upstream,
        extranonce_prefix_size: 1,
        vardiff: VardiffSettings {
            shares_per_minute: 240.0,
            retarget_ms: 2_000,
            initial_difficulty: POOL_DIFFICULTY,
            min_difficulty: POOL_DIFFICULTY / 16.0,
            max_difficulty: 1.0,
        },
        failover: FailoverSettings {
            connect_timeout_ms: 2_000,
            submit_timeout_ms: 2_000,
            job_timeout_ms: 5_000,
            failback_hold_ms: 1_500,
            retry_ms: 300,
        },
        batch_window_ms: 3,
    }
}

pub fn pool_spec() -> PoolSpec {
    let mut spec = PoolSpec::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    spec.difficulty = POOL_DIFFICULTY;
    spec.job_interval = Duration::from_millis(700);
    spec.block_interval = Duration::from_secs(600);
    spec
}

pub async fn pool() -> TestPool {
    TestPool::start(pool_spec()).await.unwrap()
}

pub struct Site {
    pub inventory: Arc<Inventory>,
    pub proxy: Arc<Proxy>,
    pub _dir: tempfile::TempDir,
}

pub async fn site(inventory: Inventory, settings: ProxySettings) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let inventory = Arc::new(inventory);
    let proxy = start_proxy(dir.path(), settings, inventory.clone()).await;
    Site {
        inventory,
        proxy,
        _dir: dir,
    }
}

/// minerd's proxy admitting through `directory`, its share accounting in `dir`.
pub async fn start_proxy(
    dir: &Path,
    settings: ProxySettings,
    directory: Arc<dyn MinerDirectory>,
) -> Arc<Proxy> {
    let accounting = Accounting::open_path(
        &dir.join("accounting.sqlite"),
        Duration::from_millis(settings.batch_window_ms),
    )
    .unwrap();
    Proxy::start(settings, directory, Arc::new(accounting))
        .await
        .unwrap()
}

/// The URL miners are told to mine on.
pub fn proxy_url(proxy: &Proxy) -> String {
    format!("stratum+tcp://{}", proxy.local_addr())
}

/// A simulated miner at `ip` mining through the proxy as `user`.
pub fn miner(site: &Site, ip: Ipv4Addr, user: &str, version_rolling: bool) -> StratumClient {
    StratumClient::spawn(StratumClientSpec {
        bind_ip: ip,
        pools: vec![SimPool {
            url: proxy_url(&site.proxy),
            user: user.into(),
            password: "x".into(),
        }],
        version_rolling,
        hashes_per_second: 6_000.0,
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

/// A hand-driven miner, bound to its own address, for the protocol's corners.
pub struct RawMiner {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    next_id: u64,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    pub difficulty: f64,
    pub jobs: Vec<Job>,
    /// `mining.set_extranonce` messages received.
    pub extranonce_changes: u32,
}

impl RawMiner {
    pub async fn connect(ip: Ipv4Addr, proxy: SocketAddr) -> RawMiner {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(ip.into(), 0)).unwrap();
        let stream = socket.connect(proxy).await.unwrap();
        let (reader, writer) = stream.into_split();
        RawMiner {
            lines: BufReader::new(reader).lines(),
            writer,
            next_id: 1,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            difficulty: 1.0,
            jobs: Vec::new(),
            extranonce_changes: 0,
        }
    }

    pub async fn send_raw(&mut self, line: &[u8]) {
        self.writer.write_all(line).await.unwrap();
    }

    /// Sends a request and returns its reply (`result`, `error`), keeping notifications.
    pub async fn request(&mut self, method: &str, params: Value) -> (Value, Value) {
        self.try_request(method, params)
            .await
            .expect("connection closed")
    }

    /// `request`, or `None` when the connection is gone.
    pub async fn try_request(&mut self, method: &str, params: Value) -> Option<(Value, Value)> {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "method": method, "params": params}).to_string() + "\n";
        self.writer.write_all(line.as_bytes()).await.ok()?;
        loop {
            let message = self.next_message().await?;
            if message.get("method").is_some_and(|m| !m.is_null()) {
                continue;
            }
            if message["id"] == json!(id) {
                return Some((message["result"].clone(), message["error"].clone()));
            }
        }
    }

    /// The next line as JSON, applying notifications; `None` when the proxy closed.
    pub async fn next_message(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(BOUND, self.lines.next_line())
            .await
            .expect("proxy silent")
            .ok()??;
        if let Ok(message) = ServerMessage::parse(line.as_bytes()) {
            match message {
                ServerMessage::Notify(n) => self.jobs.push(Job::new(n).unwrap()),
                ServerMessage::SetDifficulty(d) => self.difficulty = d,
                ServerMessage::SetExtranonce {
                    extranonce1,
                    extranonce2_size,
                } => {
                    self.extranonce1 = extranonce1;
                    self.extranonce2_size = extranonce2_size;
                    self.extranonce_changes += 1;
                }
                _ => {}
            }
        }
        Some(serde_json::from_str(&line).unwrap())
    }

    /// Reads until a job arrives with `clean_jobs` set and a job id other than `after`.
    pub async fn wait_for_clean_job(&mut self, after: &str) -> Notify {
        loop {
            self.next_message().await.expect("connection closed");
            if let Some(job) = self.jobs.last()
                && job.notify.clean_jobs
                && job.notify.job_id != after
            {
                return job.notify.clone();
            }
        }
    }

    /// Subscribes and authorizes; waits for the first job.
    pub async fn start(&mut self, user: &str) -> (Value, Value) {
        let (result, error) = self.request("mining.subscribe", json!(["raw/1"])).await;
        assert!(error.is_null(), "{error}");
        self.extranonce1 = hex::decode(result[1].as_str().unwrap()).unwrap();
        self.extranonce2_size = result[2].as_u64().unwrap() as usize;
        let reply = self.request("mining.authorize", json!([user, "x"])).await;
        while self.jobs.is_empty() {
            self.next_message().await.expect("connection closed");
        }
        reply
    }

    /// Params of a share on the latest job that meets (`valid`) or misses the miner's target.
    pub fn share(&self, user: &str, valid: bool, extranonce2: u64) -> Value {
        self.rolled_share(user, valid, extranonce2, None)
    }

    /// Like `share`, with BIP 310 version bits rolled into the header and sent as the sixth
    /// parameter.
    pub fn rolled_share(
        &self,
        user: &str,
        valid: bool,
        extranonce2: u64,
        version_bits: Option<u32>,
    ) -> Value {
        let target = Target::from_difficulty(self.difficulty).unwrap();
        self.share_where(user, extranonce2, version_bits, |hash| {
            target.is_met_by(hash) == valid
        })
    }

    /// Params of a share on the latest job whose hash meets difficulty `meets` but not
    /// `misses` (a share good enough for the miner's target and not for the pool's).
    pub fn share_between(&self, user: &str, extranonce2: u64, meets: f64, misses: f64) -> Value {
        let (easy, hard) = (
            Target::from_difficulty(meets).unwrap(),
            Target::from_difficulty(misses).unwrap(),
        );
        self.share_where(user, extranonce2, None, |hash| {
            easy.is_met_by(hash) && !hard.is_met_by(hash)
        })
    }

    /// Params of a share on the latest job, with `version_bits` rolled in, whose big-endian
    /// hash `wanted` accepts: the first nonce from 0 that gives one.
    fn share_where(
        &self,
        user: &str,
        extranonce2: u64,
        version_bits: Option<u32>,
        wanted: impl Fn(&[u8; 32]) -> bool,
    ) -> Value {
        let job = self.jobs.last().unwrap();
        let en2 = extranonce2.to_be_bytes()[8 - self.extranonce2_size..].to_vec();
        let coinbase = job.coinbase(&self.extranonce1, &en2);
        let root = job.merkle_root(&coinbase);
        let ntime = job.notify.ntime;
        let version = match version_bits {
            Some(bits) => (job.notify.version & !bits) | bits,
            None => job.notify.version,
        };
        let nonce = (0u32..)
            .find(|&nonce| {
                let header = job.header(&root, version, ntime, nonce);
                wanted(&hash_to_be(&sha256d(&header)))
            })
            .unwrap();
        let mut params = json!([
            user,
            job.notify.job_id,
            hex::encode(&en2),
            format!("{ntime:08x}"),
            format!("{nonce:08x}")
        ]);
        if let Some(bits) = version_bits {
            params
                .as_array_mut()
                .unwrap()
                .push(json!(format!("{bits:08x}")));
        }
        params
    }

    /// Whether the proxy closed the connection (within the bound).
    pub async fn closed(&mut self) -> bool {
        loop {
            match tokio::time::timeout(BOUND, self.lines.next_line()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(_) => return true,
            }
        }
    }
}

/// The Stratum error code of a reply's `error`.
pub fn error_code(error: &Value) -> Option<i64> {
    error.get(0)?.as_i64()
}
