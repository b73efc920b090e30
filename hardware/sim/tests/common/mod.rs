//! Helpers shared by the simulator's integration tests: a fleet on its own address block, and
//! raw cgminer API round trips (one request per connection, read to EOF).
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use minerd::cgminer::{ClientConfig, MinerSnapshot, Reply, Request, parse_reply, query};
use sim::fleet::{Fleet, FleetSpec, MinerHandle, ModelMix, Personality, Privileged, SimPool};
use sim::pool::{PoolSpec, TestPool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds that separate "answered" from "hung"; a healthy reply takes milliseconds.
pub const ANSWER_BOUND: Duration = Duration::from_secs(10);

/// A test pool with a tiny difficulty: one share per 1,024 hashes on average.
pub async fn test_pool() -> TestPool {
    let mut spec = PoolSpec::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    spec.difficulty = 1.0 / 4_194_304.0;
    TestPool::start(spec).await.expect("test pool starts")
}

/// The site's pools as a fleet is configured with them, user per miner address.
pub fn sanctioned(pools: &[TestPool]) -> Vec<SimPool> {
    pools
        .iter()
        .map(|p| SimPool {
            url: p.url(),
            user: "bunker.{ip-with-dashes}".into(),
            password: "x".into(),
        })
        .collect()
}

/// Miners and the two pools they are configured with (primary, backup).
pub struct Site {
    pub fleet: Fleet,
    pub pools: Vec<TestPool>,
}

impl Site {
    pub fn addr(&self) -> SocketAddr {
        self.fleet.api_addresses()[0]
    }

    pub fn miner(&self) -> MinerHandle {
        self.fleet.miners().remove(0)
    }

    pub async fn stop(self) {
        self.fleet.stop().await;
        for p in self.pools {
            p.stop().await;
        }
    }
}

/// One miner of `personality` at `ip`, mining on the first of two test pools.
pub async fn one_miner(ip: Ipv4Addr, personality: Personality, privileged: Privileged) -> Site {
    let pools = vec![test_pool().await, test_pool().await];
    let mut spec = FleetSpec::new(ip, 1);
    spec.models = ModelMix::only(personality);
    spec.pools = sanctioned(&pools);
    spec.privileged = privileged;
    spec.hash_budget = 5_000.0;
    spec.restart_time = Duration::from_secs(1);
    let fleet = Fleet::start(spec).await.expect("fleet starts");
    let miner = fleet.miners().remove(0);
    eventually("the miner mines on its first pool", ANSWER_BOUND, || {
        miner.view().pools.first().is_some_and(|p| p.active)
    })
    .await;
    Site { fleet, pools }
}

/// One request, the raw reply bytes to EOF (NUL included).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
    tokio::time::timeout(ANSWER_BOUND, async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await?;
        Ok(reply)
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply in bound"))?
}

pub async fn ask(addr: SocketAddr, request: &Request) -> Reply {
    query(addr, request, &ClientConfig::default())
        .await
        .unwrap_or_else(|e| panic!("{} to {addr}: {e}", request.command_field()))
}

pub async fn ask_json(addr: SocketAddr, command: &str, parameter: Option<&str>) -> Reply {
    let body = match parameter {
        Some(p) => serde_json::json!({"command": command, "parameter": p}),
        None => serde_json::json!({"command": command}),
    };
    let bytes = raw(addr, body.to_string().as_bytes()).await.expect("reply");
    parse_reply(command, &bytes).unwrap_or_else(|e| panic!("{command}: {e}"))
}

pub async fn snapshot(addr: SocketAddr, request: &Request) -> MinerSnapshot {
    MinerSnapshot::from_reply(&ask(addr, request).await)
}

/// Polls `check` until it holds or the bound passes.
pub async fn eventually(what: &str, bound: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + bound;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
