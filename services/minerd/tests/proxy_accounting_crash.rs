//! No acknowledged share is lost: a child process records shares from several miners at once
//! and prints each acknowledgement as the proxy would send it to the miner; it is killed with
//! SIGKILL mid-stream, and the reopened accounting holds at least every acknowledged share.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use minerd::proxy::{Accounting, Outcome, ShareRecord};

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

#[test]
fn acknowledged_shares_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("accounting.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_records_shares_until_killed",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &db)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
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
