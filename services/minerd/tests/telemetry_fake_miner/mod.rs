//! A small in-test miner for discovery and telemetry tests: it answers the cgminer API with
//! the captured fixture replies, or misbehaves on purpose (hangs, trickles, floods, garbles,
//! hangs up mid-reply), one connection at a time like real firmware (reply, NUL, close).

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const S21_JOINED: &[u8] =
    include_bytes!("../fixtures/bmminer_s21xp_version+summary+stats+pools.json");
pub const BOSMINER_JOINED: &[u8] = include_bytes!(
    "../fixtures/bosminer_version+summary+devs+devdetails+temps+fans+tunerstatus+pools.json"
);
pub const S9_VERSION: &[u8] = include_bytes!("../fixtures/bmminer_s9_version.json");
pub const S9_STATS: &[u8] = include_bytes!("../fixtures/bmminer_s9_stats.json");
pub const S9_SUMMARY: &[u8] = br#"{"STATUS":[{"STATUS":"S","When":1730228100,"Code":11,"Msg":"Summary","Description":"bmminer 1.0.0"}],"SUMMARY":[{"Elapsed":3600,"GHS 5s":"13502.00","GHS av":13490.5,"Hardware Errors":12}],"id":1}"#;
pub const S9_POOLS: &[u8] = br#"{"STATUS":[{"STATUS":"S","When":1730228100,"Code":7,"Msg":"1 Pool(s)","Description":"bmminer 1.0.0"}],"POOLS":[{"POOL":0,"URL":"stratum+tcp://pool.example.org:3333","User":"acct.w1","Status":"Alive","Priority":0,"Stratum Active":true,"Accepted":10,"Rejected":0}],"id":1}"#;
pub const INVALID_COMMAND: &[u8] = br#"{"STATUS":[{"STATUS":"E","When":0,"Code":14,"Msg":"Invalid command","Description":"bmminer 1.0.0"}],"id":1}"#;

/// How the fake miner answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Firmware that joins commands: every request gets this joined reply (it carries all
    /// the sections the tests ask for).
    Joined(&'static [u8]),
    /// Old stock S9 firmware: refuses joined requests, answers single commands.
    SinglesOnlyS9,
    /// Accepts the connection and never answers (pyasic#65).
    Hang,
    /// Answers like `inner`, after a delay.
    Slow(Duration, Box<Behaviour>),
    /// Answers bytes that are not JSON.
    Malformed,
    /// Answers a reply far larger than any real one.
    Oversized,
    /// Sends half a reply and closes.
    Truncated,
}

pub struct FakeMiner {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Drop for FakeMiner {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl FakeMiner {
    /// Listens on `ip:port` (port 0: any free port).
    pub async fn start(ip: Ipv4Addr, port: u16, behaviour: Behaviour) -> FakeMiner {
        let listener = TcpListener::bind((ip, port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let behaviour = Arc::new(behaviour);
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(answer(sock, Arc::clone(&behaviour)));
            }
        });
        FakeMiner {
            addr,
            task: Some(task),
        }
    }

    /// Stops listening, and returns once the address is free again.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

async fn answer(mut sock: TcpStream, behaviour: Arc<Behaviour>) {
    let mut buf = vec![0u8; 4096];
    // The client never half-closes (like pyasic): one read brings the whole small request.
    let n = sock.read(&mut buf).await.unwrap_or(0);
    let command = serde_json::from_slice::<serde_json::Value>(&buf[..n])
        .ok()
        .and_then(|v| v["command"].as_str().map(str::to_string))
        .unwrap_or_default();
    let mut behaviour: &Behaviour = &behaviour;
    if let Behaviour::Slow(delay, inner) = behaviour {
        tokio::time::sleep(*delay).await;
        behaviour = inner;
    }
    let reply: Vec<u8> = match behaviour {
        Behaviour::Joined(fixture) => fixture.to_vec(),
        Behaviour::SinglesOnlyS9 => match command.as_str() {
            "version" => S9_VERSION.to_vec(),
            "stats" => S9_STATS.to_vec(),
            "summary" => S9_SUMMARY.to_vec(),
            "pools" => S9_POOLS.to_vec(),
            _ => INVALID_COMMAND.to_vec(),
        },
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Behaviour::Malformed => b"<html>not a miner</html>".to_vec(),
        Behaviour::Oversized => {
            let mut big = br#"{"STATUS":[{"STATUS":"S"}],"SUMMARY":[{"pad":""#.to_vec();
            big.resize(2 * 1024 * 1024, b'x');
            big
        }
        Behaviour::Truncated => S21_JOINED[..S21_JOINED.len() / 2].to_vec(),
        Behaviour::Slow(..) => unreachable!("one level of Slow"),
    };
    let _ = sock.write_all(&reply).await;
    if !matches!(behaviour, Behaviour::Truncated) {
        let _ = sock.write_all(b"\0").await;
    }
    let _ = sock.shutdown().await;
}
