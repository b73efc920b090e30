//! The `poolsim` program: a real pool process that simulated miners mine on, controlled over
//! its Unix socket and reporting JSON stats lines.

mod pool_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use pool_support::{BOUND, client, wait_until};
use sim::stratum_client::SimPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::Command;

async fn control(path: &Path, command: &str) -> String {
    let mut stream = UnixStream::connect(path).await.unwrap();
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await.unwrap();
    reply.trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poolsim_serves_miners_and_answers_its_control_socket() {
    let dir = std::env::temp_dir().join(format!("poolsim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("control.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolsim"))
        .args(["--listen", "127.0.0.1:0", "--stats-interval", "1"])
        .args(["--difficulty", "2.384185791015625e-7", "--control"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The log line that says it is ready carries the URL it listens on.
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(BOUND, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("poolsim ready") {
                let at = line.find("stratum+tcp://").expect("url in the ready line");
                return line[at..].split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("poolsim exited before it was ready");
    })
    .await
    .expect("poolsim ready");

    let user = "site.127-1-0-40";
    let pools = vec![SimPool {
        url,
        user: user.into(),
        password: "x".into(),
    }];
    let miner = client(Ipv4Addr::new(127, 1, 0, 40), pools, true);
    let accepted = || async {
        let stats: serde_json::Value =
            serde_json::from_str(&control(&socket, "stats").await).unwrap();
        stats["workers"][user]["accepted"].as_u64().unwrap_or(0)
    };
    let deadline = tokio::time::Instant::now() + BOUND;
    while accepted().await < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no shares accepted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Stats lines on stdout are JSON.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(BOUND, stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(stats["total"]["accepted"].is_u64(), "{line}");

    assert_eq!(control(&socket, "difficulty 0.5").await, "ok");
    assert!(
        control(&socket, "difficulty -1")
            .await
            .starts_with("error:")
    );
    assert!(control(&socket, "reboot now").await.starts_with("error:"));
    assert_eq!(control(&socket, "outage on").await, "ok");
    wait_until("the miner notices the outage", || !miner.status()[0].active).await;
    assert_eq!(control(&socket, "outage off").await, "ok");
    wait_until("the miner is back", || miner.status()[0].active).await;
    miner.stop();

    child.kill().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
