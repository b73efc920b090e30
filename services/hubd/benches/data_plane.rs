//! `make bench` for hubd's data plane: real `hubd` processes on loopback, each measurement against
//! a baseline taken in the same run (machines here are noisy: the ratios are what travel).
//!
//! - **Throughput**: 256 MiB written by one client to a sink service through
//!   `madrid-1 → lisbon-1 → paris-1` (one transit hub; two QUIC links, TLS 1.3 end to end inside,
//!   the session layer's sequencing), against the same bytes written to the sink directly over
//!   loopback TCP.
//! - **Latency per hop**: 64-byte request/response round trips (TCP_NODELAY) through the network
//!   with no transit hub and with one, against the same round trips directly; p50 and p99.
//! - **Failover**: a session streaming through a diamond (two transit hubs); the transit hub
//!   carrying it is killed with SIGKILL; the longest pause the client sees, over several runs.
//! - **Memory**: RSS of the source and destination hubd before and with 1,000 concurrent sessions.
//!
//! Environment: BENCH_MIB (default 256), BENCH_ROUNDS (default 2000), BENCH_FAILOVERS (default 20),
//! BENCH_SESSIONS (default 1000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::network::network;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `bytes` to `stream`, half-closes, waits for the sink's count: Gbit/s.
async fn push(mut stream: TcpStream, bytes: usize) -> f64 {
    let chunk = vec![0x5au8; 256 * 1024];
    let started = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        stream.write_all(&chunk).await.unwrap();
        sent += chunk.len();
    }
    stream.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    stream.read_exact(&mut count).await.unwrap();
    assert_eq!(
        u64::from_be_bytes(count) as usize,
        sent,
        "every byte reached the sink"
    );
    (sent as f64 * 8.0) / started.elapsed().as_secs_f64() / 1e9
}

/// `rounds` 64-byte round trips on `stream` (an echo): sorted round-trip times.
async fn ping_pong(mut stream: TcpStream, rounds: usize) -> Vec<Duration> {
    stream.set_nodelay(true).unwrap();
    let message = [7u8; 64];
    let mut answer = [0u8; 64];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        stream.write_all(&message).await.unwrap();
        stream.read_exact(&mut answer).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn throughput(mib: usize) {
    println!(
        "== throughput: {mib} MiB, one client, one transit hub (madrid-1 → lisbon-1 → paris-1)"
    );
    let sink = common::network::sink_service().await;
    let mut net = network(&[("lisbon-1", "PT")], "").await;
    net.start();
    net.converged(2.0).await;
    let bytes = mib << 20;
    // Baseline and measurement interleaved, three times each.
    let mut direct = Vec::new();
    let mut hubs = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(sink).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        stream.read_exact(&mut [0u8; 4]).await.unwrap();
        direct.push(push(stream, bytes).await);
        hubs.push(push(net.connect_to("sink").await, bytes).await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (direct, hubs) = (median(&mut direct), median(&mut hubs));
    println!("   direct loopback TCP      {direct:>7.2} Gbit/s (median of 3)");
    println!("   through hubd, 1 transit  {hubs:>7.2} Gbit/s (median of 3)");
    println!("   ratio                    {:>7.3}", hubs / direct);
}

async fn latency(rounds: usize) {
    println!("== latency: {rounds} round trips of 64 B, TCP_NODELAY");
    let echo = common::network::echo_service().await;
    let mut chain = network(&[("lisbon-1", "PT")], "").await;
    chain.start();
    chain.converged(2.0).await;
    let mut direct_net = network(&[], "").await;
    direct_net.peer_directly();
    direct_net.start();
    direct_net.converged(1.0).await;
    let direct = ping_pong(TcpStream::connect(echo).await.unwrap(), rounds).await;
    let zero = ping_pong(direct_net.connect().await, rounds).await;
    let one = ping_pong(chain.connect().await, rounds).await;
    for (name, times) in [
        ("direct loopback TCP", &direct),
        ("hubd, no transit hub", &zero),
        ("hubd, one transit hub", &one),
    ] {
        println!(
            "   {name:<24} p50 {:>7.1} µs   p99 {:>7.1} µs",
            micros(percentile(times, 0.5)),
            micros(percentile(times, 0.99))
        );
    }
    println!(
        "   added by the transit hub: p50 {:.1} µs",
        micros(percentile(&one, 0.5)) - micros(percentile(&zero, 0.5))
    );
}

async fn failover(runs: usize) {
    println!("== failover: the transit hub carrying a session is killed (SIGKILL), {runs} runs");
    let mut net = network(&[("lisbon-1", "PT"), ("geneva-1", "CH")], "").await;
    net.start();
    net.converged(3.0).await;
    let mut pauses = Vec::new();
    for _ in 0..runs {
        let stream = net.connect().await;
        let carrier = net.carrier_of_latest_session();
        let (mut read, mut write) = stream.into_split();
        let writer = tokio::spawn(async move {
            let chunk = [1u8; 1024];
            loop {
                if write.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        let reader = tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            let mut last = Instant::now();
            let mut longest = Duration::ZERO;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(3) {
                match tokio::time::timeout(Duration::from_secs(15), read.read(&mut buffer)).await {
                    Ok(Ok(n)) if n > 0 => {
                        longest = longest.max(last.elapsed());
                        last = Instant::now();
                    }
                    other => panic!("the session broke: {other:?}"),
                }
            }
            longest
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        net.transits[carrier].kill();
        let longest = reader.await.unwrap();
        writer.abort();
        pauses.push(longest);
        net.transits[carrier].start();
        net.converged(3.0).await;
        net.transits[carrier]
            .wait_for("hubd_links_up", "the killed hub back", |n| n == 2.0)
            .await;
    }
    pauses.sort();
    println!(
        "   longest pause seen by the client: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (link loss is declared after 250 ms of silence)",
        percentile(&pauses, 0.5).as_secs_f64() * 1e3,
        percentile(&pauses, 0.99).as_secs_f64() * 1e3,
        pauses.last().unwrap().as_secs_f64() * 1e3
    );
}

async fn memory(sessions: usize) {
    println!("== memory: {sessions} concurrent sessions through one transit hub");
    let mut net = network(&[("lisbon-1", "PT")], "").await;
    net.start();
    net.converged(2.0).await;
    let pids = net.pids();
    let before: Vec<u64> = pids.iter().map(|&pid| rss_kib(pid)).collect();
    let mut open = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        open.push(net.connect().await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<u64> = pids.iter().map(|&pid| rss_kib(pid)).collect();
    for ((name, before), after) in [
        "madrid-1 (source)",
        "paris-1 (destination)",
        "lisbon-1 (transit)",
    ]
    .iter()
    .zip(&before)
    .zip(&after)
    {
        println!(
            "   {name:<22} {:>6.1} MiB → {:>6.1} MiB: {:>5.1} KiB per session",
            *before as f64 / 1024.0,
            *after as f64 / 1024.0,
            after.saturating_sub(*before) as f64 / sessions as f64
        );
    }
    drop(open);
}

#[tokio::main]
async fn main() {
    throughput(env_count("BENCH_MIB", 256)).await;
    latency(env_count("BENCH_ROUNDS", 2000)).await;
    failover(env_count("BENCH_FAILOVERS", 20)).await;
    memory(env_count("BENCH_SESSIONS", 1000)).await;
}
