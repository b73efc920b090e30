//! No acknowledged share is lost. Twice: a child process records shares from several miners
//! at once straight into the accounting store and prints each acknowledgement; and a child
//! process runs a whole proxy (with its test pool) while miners in this process submit real
//! shares through it and count the `true`s they read. Each child is killed with SIGKILL
//! mid-stream, and the reopened accounting holds at least every acknowledged share.

mod proxy_support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use minerd::proxy::{Accounting, Outcome, Proxy, ShareRecord};
use proxy_support::{Inventory, POOL_DIFFICULTY, RawMiner, pool, settings};

const CHILD_DB: &str = "MINERD_PROXY_CRASH_CHILD_DB";
const MINERS: usize = 8;
const ACKS_BEFORE_KILL: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child of acknowledged_shares_survive_kill_9; it runs only when spawned by it"]
async fn crash_child_records_shares_until_killed() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return;
    };
    let store = Arc::new(Accounting::open_path(path.as_ref(), Duration::from_millis(3)).unwrap());
    let (acks, mut acked) = tokio::sync::mpsc::unbounded_channel::<usize>();
    for miner in 0..MINERS {
        let (store, acks) = (store.clone(), acks.clone());
        tokio::spawn(async move {
            loop {
                let record = ShareRecord {
                    miner_id: format!("m{miner}"),
                    owner: "alice".into(),
                    outcome: Outcome::Accepted,
                    difficulty: 1.0,
                };
                if store.record(record).await {
                    acks.send(miner).unwrap();
                }
            }
        });
    }
    let mut out = std::io::stdout().lock();
    while let Some(miner) = acked.recv().await {
        writeln!(out, "ack m{miner}").unwrap();
        out.flush().unwrap();
    }
}

/// This test binary again, running only the ignored child test `name` with `db` in the
/// environment variable `db_var`, its stdout piped to read acknowledgements from.
fn spawn_child(name: &str, db_var: &str, db: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--ignored", "--nocapture"])
        .env(db_var, db)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn acknowledged_shares_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("accounting.sqlite");
    let mut child = spawn_child("crash_child_records_shares_until_killed", CHILD_DB, &db);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged: HashMap<String, u64> = HashMap::new();
    let mut total = 0;
    while total < ACKS_BEFORE_KILL {
        let line = lines
            .next()
            .expect("the child ended before the kill")
            .unwrap();
        if let Some(miner) = line.strip_prefix("ack ") {
            *acknowledged.entry(miner.to_string()).or_default() += 1;
            total += 1;
        }
    }
    child.kill().unwrap(); // SIGKILL
    // Acknowledgements already written before the kill count too.
    for line in lines {
        if let Some(miner) = line.unwrap().strip_prefix("ack ") {
            *acknowledged.entry(miner.to_string()).or_default() += 1;
        }
    }
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");

    let store = Accounting::open_path(&db, Duration::from_millis(1)).unwrap();
    assert!(acknowledged.len() > 1, "several miners were acknowledged");
    for (miner, acks) in &acknowledged {
        let counted = store.miner(miner).accepted;
        assert!(
            counted >= *acks,
            "{miner}: {acks} acknowledged, {counted} in the accounting"
        );
    }
}

const CHILD_SITE_DB: &str = "MINERD_PROXY_CRASH_CHILD_SITE_DB";
const SITE_MINERS: u8 = 4;

fn site_miner(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 6, 1 + i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child of acknowledged_shares_survive_kill_9_of_the_proxy; it runs only when spawned by it"]
async fn crash_child_runs_a_proxy_until_killed() {
    let Ok(path) = std::env::var(CHILD_SITE_DB) else {
        return;
    };
    let pool = pool().await;
    let inventory = Inventory::default();
    for i in 0..SITE_MINERS {
        inventory.add_miner(site_miner(i), &format!("c{i}"), "alice", &[]);
    }
    inventory.set_pools("alice", &[&pool]);
    let mut settings = settings();
    // The miners here hash in a debug build: keep their shares cheap.
    settings.vardiff.max_difficulty = POOL_DIFFICULTY;
    // A long batch window: an acknowledgement sent before its batch is committed would be
    // caught by a kill right after it.
    settings.batch_window_ms = 50;
    let accounting = Accounting::open_path(
        path.as_ref(),
        Duration::from_millis(settings.batch_window_ms),
    )
    .unwrap();
    let proxy = Proxy::start(settings, Arc::new(inventory), Arc::new(accounting))
        .await
        .unwrap();
    println!("proxy {}", proxy.local_addr());
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_shares_survive_kill_9_of_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("accounting.sqlite");
    let mut child = spawn_child("crash_child_runs_a_proxy_until_killed", CHILD_SITE_DB, &db);
    let stdout = child.stdout.take().unwrap();
    let address = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("proxy ").map(str::to_string))
            .expect("the child proxy did not start")
    })
    .await
    .unwrap();
    let address = address.parse().unwrap();

    let acks: Arc<Vec<AtomicU64>> = Arc::new((0..SITE_MINERS).map(|_| AtomicU64::new(0)).collect());
    let enough = Arc::new(tokio::sync::Notify::new());
    let miners: Vec<_> = (0..SITE_MINERS)
        .map(|i| {
            let (acks, enough) = (acks.clone(), enough.clone());
            tokio::spawn(async move {
                let mut miner = RawMiner::connect(site_miner(i), address).await;
                miner.start("alice.crash").await;
                for extranonce2 in 1.. {
                    let share = miner.share("alice.crash", true, extranonce2);
                    match miner.try_request("mining.submit", share).await {
                        Some((serde_json::Value::Bool(true), _)) => {
                            acks[i as usize].fetch_add(1, Ordering::SeqCst);
                            let total: u64 = acks.iter().map(|a| a.load(Ordering::SeqCst)).sum();
                            if total >= 150 {
                                enough.notify_one();
                            }
                        }
                        Some((_, error)) => panic!("share refused: {error}"),
                        None => return, // the proxy is gone
                    }
                }
            })
        })
        .collect();
    // Killed right after an acknowledgement, while later shares are in flight.
    tokio::time::timeout(proxy_support::BOUND, enough.notified())
        .await
        .expect("no shares acknowledged through the proxy");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for miner in miners {
        miner.await.unwrap();
    }

    let store = Accounting::open_path(&db, Duration::from_millis(1)).unwrap();
    for i in 0..SITE_MINERS {
        let acknowledged = acks[i as usize].load(Ordering::SeqCst);
        let counted = store.miner(&format!("c{i}")).accepted;
        assert!(acknowledged > 0);
        assert!(
            counted >= acknowledged,
            "miner c{i}: {acknowledged} acknowledged, {counted} in the accounting"
        );
    }
}
