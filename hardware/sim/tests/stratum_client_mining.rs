//! A simulated miner's Stratum client mines real shares that the test pool validates and
//! accepts, from its own source address, with and without version rolling.

mod pool_support;

use std::net::Ipv4Addr;

use pool_support::{client, pool, sim_pool, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_shares_are_accepted_and_counted_alike() {
    let pool = pool().await;
    let user = "site.127-1-0-2";
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 2),
        vec![sim_pool(&pool, user)],
        false,
    );
    wait_until("20 shares accepted", || {
        pool.stats().worker(user).accepted >= 20
    })
    .await;

    // Stop hashing; once the last answers arrive both sides must agree.
    miner.set_hash_rate(0.0);
    wait_until("the client counted every answer", || {
        let link = &miner.status()[0];
        let worker = pool.stats().worker(user);
        link.accepted + link.rejected + link.stale == worker.accepted + worker.rejected.total()
    })
    .await;
    let stats = pool.stats();
    let worker = stats.worker(user);
    let link = &miner.status()[0];
    assert!(link.active && link.alive);
    assert_eq!(link.accepted, worker.accepted);
    assert_eq!(link.rejected + link.stale, 0, "{link:?}");
    assert_eq!(worker.rejected.total(), 0, "{worker:?}");
    assert!(link.last_share_unix > 0);
    assert_eq!(link.difficulty, pool_support::spec().difficulty);
    assert!(worker.accepted_difficulty > 0.0);
    assert_eq!(worker.accepted_version_rolled, 0);
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_rolled_shares_are_accepted() {
    let pool = pool().await;
    let user = "site.127-1-0-3";
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 3),
        vec![sim_pool(&pool, user)],
        true,
    );
    wait_until("10 version-rolled shares accepted", || {
        pool.stats().worker(user).accepted_version_rolled >= 10
    })
    .await;
    let worker = pool.stats().worker(user);
    assert_eq!(worker.rejected.total(), 0, "{worker:?}");
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_sees_the_miners_own_address() {
    // A plain listener stands in for a proxy that tells miners apart by source address.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("stratum+tcp://{}", listener.local_addr().unwrap());
    let pool = sim::stratum_client::SimPool {
        url,
        user: "u".into(),
        password: String::new(),
    };
    let miner = client(Ipv4Addr::new(127, 1, 2, 3), vec![pool], false);
    let (_stream, peer) = tokio::time::timeout(pool_support::BOUND, listener.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peer.ip(), Ipv4Addr::new(127, 1, 2, 3));
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_without_version_rolling_gets_plain_shares() {
    let mut spec = pool_support::spec();
    spec.version_mask = 0;
    let pool = sim::pool::TestPool::start(spec).await.unwrap();
    let user = "site.127-1-0-4";
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 4),
        vec![sim_pool(&pool, user)],
        true,
    );
    wait_until("5 shares accepted", || {
        pool.stats().worker(user).accepted >= 5
    })
    .await;
    let worker = pool.stats().worker(user);
    assert_eq!(worker.accepted_version_rolled, 0);
    assert_eq!(worker.rejected.total(), 0, "{worker:?}");
    miner.stop();
}
