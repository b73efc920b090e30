//! The client follows what a pool asks: `client.reconnect` and `mining.set_extranonce`, and
//! keeps mining shares the pool accepts afterwards.

mod pool_support;

use std::net::Ipv4Addr;

use pool_support::{client, pool, sim_pool, wait_until};

const USER: &str = "site.miner";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_asked_and_keeps_mining() {
    let pool = pool().await;
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 20),
        vec![sim_pool(&pool, USER)],
        true,
    );
    wait_until("shares", || pool.stats().worker(USER).accepted >= 3).await;
    assert_eq!(pool.stats().connections_total, 1);
    pool.reconnect_all();
    wait_until("a second connection", || {
        pool.stats().connections_total >= 2
    })
    .await;
    let before = pool.stats().worker(USER).accepted;
    wait_until("shares after the reconnect", || {
        pool.stats().worker(USER).accepted >= before + 3
    })
    .await;
    assert_eq!(pool.stats().connections, 1, "the old connection was closed");
    assert!(miner.status()[0].alive);
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_a_new_extranonce1_and_keeps_mining() {
    let pool = pool().await;
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 21),
        vec![sim_pool(&pool, USER)],
        false,
    );
    wait_until("shares", || pool.stats().worker(USER).accepted >= 3).await;
    pool.set_extranonce_all();
    let before = pool.stats().worker(USER);
    wait_until("shares after the new extranonce", || {
        pool.stats().worker(USER).accepted >= before.accepted + 10
    })
    .await;
    // Shares in flight during the change may come back stale, never low difficulty: the
    // client hashes with the new extranonce1 from the first job after it.
    let rejected = pool.stats().worker(USER).rejected;
    assert_eq!(rejected.low_difficulty, 0, "{rejected:?}");
    assert_eq!(rejected.total(), rejected.stale, "{rejected:?}");
    assert_eq!(pool.stats().connections_total, 1, "no reconnect was needed");
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_new_difficulty_from_the_next_job() {
    let mut spec = pool_support::spec();
    spec.job_interval = std::time::Duration::from_millis(300);
    let pool = sim::pool::TestPool::start(spec.clone()).await.unwrap();
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 22),
        vec![sim_pool(&pool, USER)],
        false,
    );
    wait_until("shares", || pool.stats().worker(USER).accepted >= 3).await;
    let harder = spec.difficulty * 2.0;
    pool.set_difficulty(harder);
    wait_until("the new difficulty in force", || {
        miner.status()[0].difficulty == harder
    })
    .await;
    let before = pool.stats().worker(USER);
    wait_until("shares at the new difficulty", || {
        pool.stats().worker(USER).accepted >= before.accepted + 5
    })
    .await;
    // Each accepted share now counts the new difficulty.
    let after = pool.stats().worker(USER);
    let added = after.accepted_difficulty - before.accepted_difficulty;
    let shares = (after.accepted - before.accepted) as f64;
    assert!(
        (added - shares * harder).abs() < harder / 2.0,
        "{added} for {shares} shares"
    );
    miner.stop();
}
