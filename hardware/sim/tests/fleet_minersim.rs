//! The minersim binary as a person or a test harness runs it: miners on their addresses,
//! mining on the given pool, controlled through its socket, stopped cleanly by SIGTERM.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{ANSWER_BOUND, ask};
use minerd::cgminer::{ClientConfig, ClientError, Command, Request, query};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

async fn control(socket: &Path, line: &str) -> String {
    let mut stream = UnixStream::connect(socket).await.expect("control socket");
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).await.unwrap();
    reply.trim_end().to_string()
}

fn scratch_socket() -> PathBuf {
    std::env::temp_dir().join(format!("minersim-test-{}.sock", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minersim_serves_mines_obeys_its_control_socket_and_stops_on_sigterm() {
    let pool = common::test_pool().await;
    let socket = scratch_socket();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_minersim"))
        .args([
            "--first",
            "127.1.120.2",
            "--count",
            "3",
            "--holes",
            "127.1.120.3",
        ])
        .args([
            "--models",
            "s9-bmminer,s19jpro-bosminer",
            "--hash-budget",
            "3000",
        ])
        .args(["--pool", &pool.url(), "--restart-seconds", "1"])
        .arg("--control")
        .arg(&socket)
        .kill_on_drop(true)
        .spawn()
        .expect("minersim starts");

    let deadline = tokio::time::Instant::now() + ANSWER_BOUND;
    while UnixStream::connect(&socket).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "no control socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list: serde_json::Value = serde_json::from_str(&control(&socket, "list").await).unwrap();
    let ips: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ip"].as_str().unwrap())
        .collect();
    assert_eq!(ips, vec!["127.1.120.2", "127.1.120.4", "127.1.120.5"]);

    let miner = SocketAddr::from((Ipv4Addr::new(127, 1, 120, 2), 4028));
    let version = ask(miner, &Request::single(Command::Version)).await;
    assert!(version.section("version").is_ok());
    let deadline = tokio::time::Instant::now() + ANSWER_BOUND;
    loop {
        let view: serde_json::Value =
            serde_json::from_str(&control(&socket, "view 127.1.120.2").await).unwrap();
        if view["pools"][0]["active"] == true
            && view["shares"][pool.url().as_str()]["accepted"].as_u64() > Some(0)
        {
            assert_eq!(view["pools"][0]["user"], "bunker.127-1-120-2");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not mining: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(control(&socket, "fault 127.1.120.2 hang").await, "ok");
    let short = ClientConfig {
        deadline: Duration::from_millis(800),
        ..ClientConfig::default()
    };
    let hung = query(miner, &Request::single(Command::Summary), &short).await;
    assert!(
        matches!(hung, Err(ClientError::ReadTimeout { .. })),
        "{hung:?}"
    );
    assert_eq!(control(&socket, "clear 127.1.120.2").await, "ok");
    assert!(
        query(miner, &Request::single(Command::Summary), &short)
            .await
            .is_ok()
    );
    assert!(
        control(&socket, "fault 127.1.120.3 hang")
            .await
            .starts_with("error:")
    );
    assert!(control(&socket, "explode").await.starts_with("error:"));

    let pid = child.id().expect("running");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("a pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM sent");
    let status = tokio::time::timeout(ANSWER_BOUND, child.wait())
        .await
        .expect("minersim stops on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(!socket.exists(), "control socket removed");
    let gone = query(miner, &Request::single(Command::Version), &short).await;
    assert!(matches!(gone, Err(ClientError::Refused { .. })), "{gone:?}");
    pool.stop().await;
}
