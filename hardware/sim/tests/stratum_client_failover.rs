//! The client fails over between its pools like cgminer: away from a pool in an outage or
//! silent, back once the preferred pool works again, and it follows the firmware's controls.

mod pool_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use pool_support::{active, client, pool, sim_pool, wait_until};

const USER: &str = "site.miner";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_on_an_outage_and_returns_when_the_pool_is_back() {
    let (primary, backup) = (pool().await, pool().await);
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 10),
        vec![sim_pool(&primary, USER), sim_pool(&backup, USER)],
        false,
    );
    wait_until("shares on the primary", || {
        primary.stats().worker(USER).accepted >= 3
    })
    .await;
    assert_eq!(active(&miner.status()), Some(0));

    primary.set_outage(true);
    wait_until("shares on the backup", || {
        backup.stats().worker(USER).accepted >= 3
    })
    .await;
    let status = miner.status();
    assert_eq!(active(&status), Some(1));
    assert!(!status[0].alive, "{status:?}");

    primary.set_outage(false);
    let before = primary.stats().worker(USER).accepted;
    wait_until("shares on the primary again", || {
        primary.stats().worker(USER).accepted >= before + 3
    })
    .await;
    let status = miner.status();
    assert_eq!(active(&status), Some(0));
    assert!(status[0].alive);
    assert!(status[1].accepted >= 3);
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_pool_is_left_for_the_next_one() {
    let (primary, backup) = (pool().await, pool().await);
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 11),
        vec![sim_pool(&primary, USER), sim_pool(&backup, USER)],
        false,
    );
    wait_until("shares on the primary", || {
        primary.stats().worker(USER).accepted >= 3
    })
    .await;
    primary.set_silent(true);
    wait_until("shares on the backup", || {
        backup.stats().worker(USER).accepted >= 3
    })
    .await;
    assert_eq!(active(&miner.status()), Some(1));
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_first_pool_is_skipped_at_start() {
    let (primary, backup) = (pool().await, pool().await);
    primary.set_outage(true);
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 12),
        vec![sim_pool(&primary, USER), sim_pool(&backup, USER)],
        false,
    );
    wait_until("shares on the backup", || {
        backup.stats().worker(USER).accepted >= 3
    })
    .await;
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mining_off_stops_submissions_and_on_resumes_them() {
    let pool = pool().await;
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 13),
        vec![sim_pool(&pool, USER)],
        false,
    );
    wait_until("shares", || pool.stats().worker(USER).accepted >= 3).await;

    miner.set_mining(false);
    wait_until("disconnected", || pool.stats().connections == 0).await;
    let stopped_at = pool.stats().total;
    assert_eq!(active(&miner.status()), None);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = pool.stats().total;
    assert_eq!(
        later.accepted + later.rejected.total(),
        stopped_at.accepted + stopped_at.rejected.total()
    );
    assert_eq!(pool.stats().connections, 0);

    miner.set_mining(true);
    wait_until("shares again", || {
        pool.stats().worker(USER).accepted >= stopped_at.accepted + 3
    })
    .await;
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_to_and_disable_move_the_miner() {
    let (first, second) = (pool().await, pool().await);
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 14),
        vec![sim_pool(&first, USER), sim_pool(&second, USER)],
        false,
    );
    wait_until("mining on the first", || {
        first.stats().worker(USER).accepted >= 2
    })
    .await;
    miner.switch_to(1);
    wait_until("mining on the second", || {
        second.stats().worker(USER).accepted >= 2
    })
    .await;
    let status = miner.status();
    assert_eq!(active(&status), Some(1));
    assert_eq!((status[1].priority, status[0].priority), (0, 1));

    miner.set_enabled(1, false);
    let before = first.stats().worker(USER).accepted;
    wait_until("back on the first", || {
        first.stats().worker(USER).accepted >= before + 2
    })
    .await;
    assert_eq!(active(&miner.status()), Some(0));
    assert!(!miner.status()[1].enabled);
    miner.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pool_list_keeps_the_counters_of_pools_that_stay() {
    let (first, second) = (pool().await, pool().await);
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 15),
        vec![sim_pool(&first, USER)],
        false,
    );
    wait_until("shares counted by the miner", || {
        miner.status()[0].accepted >= 2
    })
    .await;
    // A hijack-like change: a foreign pool at the top, the old one kept behind it.
    miner.set_pools(vec![sim_pool(&second, "foreign"), sim_pool(&first, USER)]);
    wait_until("mining on the new first pool", || {
        second.stats().worker("foreign").accepted >= 2
    })
    .await;
    let status = miner.status();
    assert_eq!(active(&status), Some(0));
    assert_eq!(status[0].user, "foreign");
    assert!(status[1].accepted >= 2, "{status:?}");
    miner.stop();
}

/// A pool that subscribes miners but refuses every worker, and sends a garbage line first.
async fn refusing_pool() -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("stratum+tcp://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (reader, mut writer) = stream.into_split();
                let mut lines = BufReader::new(reader).lines();
                let _ = writer.write_all(b"}{ not json\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let request: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let result = match request["method"].as_str() {
                        Some("mining.subscribe") => serde_json::json!([[], "00000001", 4]),
                        Some("mining.authorize") => serde_json::json!(false),
                        _ => serde_json::json!(true),
                    };
                    let reply =
                        serde_json::json!({"id": request["id"], "result": result, "error": null});
                    let _ = writer.write_all(format!("{reply}\n").as_bytes()).await;
                }
            });
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_refuses_the_worker_is_marked_dead() {
    let (url, refusing) = refusing_pool().await;
    let backup = pool().await;
    let first = sim::stratum_client::SimPool {
        url,
        user: USER.into(),
        password: "x".into(),
    };
    let miner = client(
        Ipv4Addr::new(127, 1, 0, 16),
        vec![first, sim_pool(&backup, USER)],
        true,
    );
    wait_until("shares on the backup", || {
        backup.stats().worker(USER).accepted >= 3
    })
    .await;
    let status = miner.status();
    assert_eq!(active(&status), Some(1));
    assert!(!status[0].alive, "{status:?}");
    miner.stop();
    refusing.abort();
}
