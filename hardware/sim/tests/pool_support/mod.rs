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

/// A client at `bind_ip` hashing 20k real hashes a second (about 20 shares a second here).
pub fn client(bind_ip: Ipv4Addr, pools: Vec<SimPool>, version_rolling: bool) -> StratumClient {
    StratumClient::spawn(StratumClientSpec {
        bind_ip,
        pools,
        version_rolling,
        hashes_per_second: 20_000.0,
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
