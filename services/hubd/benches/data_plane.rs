//! `make bench` for hubd's data plane: real `hubd` processes on loopback, each measurement against
//! a baseline taken in the same run (machines here are noisy: the ratios are what travel).
//!
//! - **Throughput**: 256 MiB written by one client to a sink service through `madrid-1 → paris-1`
//!   linked directly and through `madrid-1 → lisbon-1 → paris-1` (one transit hub; QUIC links,
//!   TLS 1.3 end to end inside, the session layer's sequencing), against the same bytes written to
//!   the sink directly over loopback TCP and over one QUIC stream alone in this process (the
//!   ceiling of one QUIC hop here), interleaved.
//! - **Latency per hop**: 64-byte request/response round trips (TCP_NODELAY) through the network
//!   with no transit hub and with one, against the same round trips directly; p50 and p99.
//! - **Failover**: a session streaming through a diamond (two transit hubs); the transit hub
//!   carrying it is killed with SIGKILL; the longest pause the client sees, over several runs.
//! - **Memory**: RSS of the source and destination hubd before and with 1,000 concurrent sessions.
//!
//! Environment: BENCH_MIB (default 256), BENCH_REPEATS (default 3), BENCH_ROUNDS (default 2000),
//! BENCH_FAILOVERS (default 20), BENCH_SESSIONS (default 1000); BENCH_ONLY picks sections
//! (comma-separated: throughput, latency, failover, memory).

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

/// One QUIC stream alone, in this process (self-signed TLS 1.3, aws-lc-rs, quinn's default
/// windows and MTU discovery as on the links): the ceiling one QUIC hop of a circuit can reach
/// on this machine, with both ends sharing its cores as the hubs do.
mod quinn_alone {
    use std::net::{SocketAddr, UdpSocket};
    use std::sync::Arc;
    use std::time::Instant;

    use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

    pub struct Pair {
        connection: quinn::Connection,
        _client: quinn::Endpoint,
        _server: quinn::Endpoint,
    }

    fn endpoint(server: Option<quinn::ServerConfig>) -> quinn::Endpoint {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let runtime = quinn::default_runtime().unwrap();
        quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime).unwrap()
    }

    /// quinn's defaults, as the links have them (their keep-alive and idle timings do not
    /// change a bulk transfer).
    fn transport() -> Arc<quinn::TransportConfig> {
        Arc::new(quinn::TransportConfig::default())
    }

    impl Pair {
        pub async fn new() -> Self {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
            let cert = certified.cert.der().clone();
            let key = rustls_pki_types::PrivateKeyDer::Pkcs8(
                certified.signing_key.serialize_der().into(),
            );
            let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.clone()], key)
                .unwrap();
            tls.alpn_protocols = vec![b"bench".to_vec()];
            let mut server = quinn::ServerConfig::with_crypto(Arc::new(
                QuicServerConfig::try_from(tls).unwrap(),
            ));
            server.transport_config(transport());
            let server = endpoint(Some(server));
            let address: SocketAddr = server.local_addr().unwrap();
            let accepting = server.clone();
            tokio::spawn(async move {
                while let Some(incoming) = accepting.accept().await {
                    tokio::spawn(async move {
                        let Ok(connection) = incoming.await else {
                            return;
                        };
                        while let Ok((mut send, mut recv)) = connection.accept_bi().await {
                            tokio::spawn(async move {
                                let mut total = 0u64;
                                while let Ok(Some(chunk)) = recv.read_chunk(usize::MAX, true).await
                                {
                                    total += chunk.bytes.len() as u64;
                                }
                                let _ = send.write_all(&total.to_be_bytes()).await;
                                let _ = send.finish();
                                let _ = send.stopped().await;
                            });
                        }
                    });
                }
            });
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert).unwrap();
            let mut tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            tls.alpn_protocols = vec![b"bench".to_vec()];
            let mut config =
                quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
            config.transport_config(transport());
            let client = endpoint(None);
            let connection = client
                .connect_with(config, address, "localhost")
                .unwrap()
                .await
                .unwrap();
            Self {
                connection,
                _client: client,
                _server: server,
            }
        }

        /// Writes `bytes` on a new stream, finishes it, waits for the count: Gbit/s.
        pub async fn push(&self, bytes: usize) -> f64 {
            let chunk = vec![0x5au8; 256 * 1024];
            let started = Instant::now();
            let (mut send, mut recv) = self.connection.open_bi().await.unwrap();
            let mut sent = 0;
            while sent < bytes {
                send.write_all(&chunk).await.unwrap();
                sent += chunk.len();
            }
            send.finish().unwrap();
            let mut count = [0u8; 8];
            recv.read_exact(&mut count).await.unwrap();
            assert_eq!(u64::from_be_bytes(count) as usize, sent);
            (sent as f64 * 8.0) / started.elapsed().as_secs_f64() / 1e9
        }
    }
}

async fn throughput(mib: usize, repeats: usize) {
    println!("== throughput: {mib} MiB, one client (madrid-1 → paris-1, direct and via lisbon-1)");
    let sink = common::network::sink_service().await;
    let mut chain = network(&[("lisbon-1", "PT")], "").await;
    chain.start();
    let mut direct_net = network(&[], "").await;
    direct_net.peer_directly();
    direct_net.start();
    chain.converged(2.0).await;
    direct_net.converged(1.0).await;
    let quinn = quinn_alone::Pair::new().await;
    let bytes = mib << 20;
    // Baselines and measurements interleaved, `repeats` times each.
    let mut direct = Vec::new();
    let mut alone = Vec::new();
    let mut zero = Vec::new();
    let mut one = Vec::new();
    for _ in 0..repeats {
        let mut stream = TcpStream::connect(sink).await.unwrap();
        stream.write_all(b"ping").await.unwrap();
        stream.read_exact(&mut [0u8; 4]).await.unwrap();
        direct.push(push(stream, bytes).await);
        alone.push(quinn.push(bytes).await);
        zero.push(push(direct_net.connect_to("sink").await, bytes).await);
        one.push(push(chain.connect_to("sink").await, bytes).await);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let direct = median(&mut direct);
    let alone = median(&mut alone);
    let zero = median(&mut zero);
    let one = median(&mut one);
    println!("   direct loopback TCP       {direct:>7.2} Gbit/s (median of {repeats})");
    println!("   one QUIC stream alone     {alone:>7.2} Gbit/s (in-process, no hubd)");
    println!(
        "   hubd, no transit hub      {zero:>7.2} Gbit/s   {:.3} of TCP, {:.3} of QUIC alone",
        zero / direct,
        zero / alone
    );
    println!(
        "   hubd, one transit hub     {one:>7.2} Gbit/s   {:.3} of TCP, {:.3} of QUIC alone",
        one / direct,
        one / alone
    );
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
    let mut pauses = Vec::new();
    let mut detections = Vec::new();
    for _ in 0..runs {
        // Cut only a converged network: both paths known to Madrid (a backup exists).
        net.converged(3.0).await;
        net.madrid
            .wait_for("hubd_topology_links", "madrid sees all four links", |n| {
                n == 4.0
            })
            .await;
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
        let killed = Instant::now();
        // Detection: Madrid's link to the killed hub declared down (metrics polled every 2 ms).
        while net.madrid.metric("hubd_links_up") == Some(2.0) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        detections.push(killed.elapsed());
        let longest = reader.await.unwrap();
        writer.abort();
        pauses.push(longest);
        net.transits[carrier].start();
        net.transits[carrier]
            .wait_for("hubd_links_up", "the killed hub back", |n| n == 2.0)
            .await;
    }
    pauses.sort();
    detections.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "   link loss detected by the source: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (declared after 250 ms of silence)",
        ms(percentile(&detections, 0.5)),
        ms(percentile(&detections, 0.99)),
        ms(*detections.last().unwrap())
    );
    println!(
        "   longest pause seen by the client (detection, new circuit, resumption): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms(percentile(&pauses, 0.5)),
        ms(percentile(&pauses, 0.99)),
        ms(*pauses.last().unwrap())
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
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |section: &str| only.is_empty() || only.split(',').any(|s| s == section);
    if wanted("throughput") {
        throughput(env_count("BENCH_MIB", 256), env_count("BENCH_REPEATS", 3)).await;
    }
    if wanted("latency") {
        latency(env_count("BENCH_ROUNDS", 2000)).await;
    }
    if wanted("failover") {
        failover(env_count("BENCH_FAILOVERS", 20)).await;
    }
    if wanted("memory") {
        memory(env_count("BENCH_SESSIONS", 1000)).await;
    }
}
