//! `make bench` for minerd's Stratum proxy, against a baseline in the same run:
//!
//! 1. Memory per connected miner: 5,000 miner sessions (subscribed, authorized, holding a job)
//!    from 5,000 loopback addresses, measured as the VmRSS growth of this process divided by
//!    the sessions. The miners' own sockets are plain std sockets (no user-space buffers), so
//!    the growth is the proxy's. Goal (issue 5): ≤ 16 KB per miner.
//! 2. Share latency at 1,000 shares/s: 100 miners each submitting a real share every 100 ms,
//!    the time from sending `mining.submit` to reading `true`. Through the proxy that is
//!    validation, forwarding to the pool and the accounting group commit (the miner is only
//!    answered once its share is on disk). Baseline: the same miners straight to the test
//!    pool, which validates and counts but commits nothing.
//! 3. CPU per 1,000 shares: the proxy's threads (its runtime and its accounting writer) apart
//!    from the miners' and the pool's, from /proc/self/task/*/stat; the pool's threads are the
//!    baseline (one validating Stratum server doing the same work per share, without accounting).
//!
//! Environment: BENCH_MINERS (default 5000), BENCH_SECONDS (default 10), BENCH_RATE (default
//! 1000 shares/s).

#[path = "../tests/proxy_support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minerd::proxy::{
    Accounting, Admission, MinerDirectory, Proxy, ProxySettings, SanctionedPool, VardiffSettings,
};
use sim::pool::{PoolSpec, TestPool};
use support::RawMiner;

/// Shares this easy cost a few hashes to find, so the miners' hashing does not load the run.
const DIFFICULTY: f64 = 1.0 / 1_073_741_824.0;
const LOAD_MINERS: usize = 100;
const MEMORY_GOAL_BYTES: f64 = 16.0 * 1024.0;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every loopback address is a miner of owner "bench", mining on the one test pool.
struct BenchSite {
    pool_url: String,
}

impl MinerDirectory for BenchSite {
    fn admit(&self, ip: IpAddr) -> Option<Admission> {
        ip.is_loopback().then(|| Admission {
            miner_id: ip.to_string(),
            owner: "bench".into(),
            sanctioned_users: Vec::new(),
            quarantined: false,
        })
    }
    fn owner_pools(&self, _owner: &str) -> Vec<SanctionedPool> {
        vec![SanctionedPool {
            url: self.pool_url.clone(),
            user: "bench.proxy".into(),
            password: "x".into(),
        }]
    }
}

fn vm_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// CPU seconds (user + system) of this process's threads whose name starts with `prefix`.
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let ticks_per_second = 100.0; // USER_HZ on Linux
    let mut ticks = 0u64;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After the name: state is field 3, utime 14 and stime 15 (1-based, whole line).
        let utime: u64 = fields[11].parse().unwrap_or(0);
        let stime: u64 = fields[12].parse().unwrap_or(0);
        ticks += utime + stime;
    }
    ticks as f64 / ticks_per_second
}

fn runtime(name: &'static str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

fn settings() -> ProxySettings {
    ProxySettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        miners_per_upstream: 512,
        extranonce_prefix_size: 2,
        vardiff: VardiffSettings {
            // No retargets during the run: the miners hold the pool's difficulty.
            shares_per_minute: 600.0,
            retarget_ms: 600_000,
            initial_difficulty: DIFFICULTY,
            min_difficulty: DIFFICULTY,
            max_difficulty: 1.0,
        },
        ..ProxySettings::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// 5,000 raw miner connections: subscribe and authorize written, replies left unread.
fn connect_idle_miners(
    load: &tokio::runtime::Runtime,
    proxy: &Proxy,
    count: usize,
) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let address = proxy.local_addr();
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let ip = Ipv4Addr::new(
            127,
            10 + (i / 60_000) as u8,
            ((i / 250) % 240) as u8,
            (i % 250 + 1) as u8,
        );
        let stream = load.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(ip.into(), 0)).unwrap();
            socket.connect(address).await.unwrap().into_std().unwrap()
        });
        stream.set_nonblocking(false).unwrap();
        let mut s = &stream;
        s.write_all(
            b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n\
              {\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"bench.idle\",\"x\"]}\n",
        )
        .unwrap();
        sockets.push(stream);
    }
    sockets
}

struct Latencies {
    samples: Vec<Duration>,
    shares: u64,
    rejected: u64,
    elapsed: Duration,
}

/// `LOAD_MINERS` miners at `target`, together submitting `rate` shares a second for `seconds`.
fn submit_load(
    load: &tokio::runtime::Runtime,
    target: SocketAddr,
    first_octet: u8,
    rate: u64,
    seconds: u64,
) -> Latencies {
    let interval = Duration::from_secs_f64(LOAD_MINERS as f64 / rate as f64);
    load.block_on(async move {
        let mut tasks = Vec::new();
        let start = Instant::now() + Duration::from_millis(500);
        for i in 0..LOAD_MINERS {
            let ip = Ipv4Addr::new(127, first_octet, 0, i as u8 + 1);
            tasks.push(tokio::spawn(async move {
                let mut miner = RawMiner::connect(ip, target).await;
                miner.start("bench.load").await;
                let mut samples = Vec::new();
                let mut rejected = 0;
                let offset = interval.mul_f64(i as f64 / LOAD_MINERS as f64);
                let mut tick = tokio::time::interval_at((start + offset).into(), interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let end = start + Duration::from_secs(seconds);
                let mut extranonce2 = 1;
                while Instant::now() < end {
                    tick.tick().await;
                    let share = miner.share("bench.load", true, extranonce2);
                    extranonce2 += 1;
                    let sent = Instant::now();
                    let (result, _) = miner.request("mining.submit", share).await;
                    samples.push(sent.elapsed());
                    rejected += u64::from(result != serde_json::json!(true));
                }
                (samples, rejected)
            }));
        }
        let mut all = Latencies {
            samples: Vec::new(),
            shares: 0,
            rejected: 0,
            elapsed: Duration::ZERO,
        };
        for task in tasks {
            let (samples, rejected) = task.await.unwrap();
            all.shares += samples.len() as u64;
            all.samples.extend(samples);
            all.rejected += rejected;
        }
        all.elapsed = start.elapsed();
        all.samples.sort();
        all
    })
}

fn report_latency(name: &str, l: &Latencies) {
    println!(
        "  {name:<22} {} shares in {:.1} s ({:.0}/s), rejected {}, p50 {:.2} ms, p99 {:.2} ms",
        l.shares,
        l.elapsed.as_secs_f64(),
        l.shares as f64 / l.elapsed.as_secs_f64(),
        l.rejected,
        percentile(&l.samples, 0.50).as_secs_f64() * 1e3,
        percentile(&l.samples, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let miners = env_number("BENCH_MINERS", 5000) as usize;
    let seconds = env_number("BENCH_SECONDS", 10);
    let rate = env_number("BENCH_RATE", 1000);
    let pool_rt = runtime("bench-pool", 1);
    let proxy_rt = runtime("proxy-rt", 2);
    let load_rt = runtime("bench-load", 2);

    let mut spec = PoolSpec::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    spec.difficulty = DIFFICULTY;
    spec.job_interval = Duration::from_secs(30);
    spec.block_interval = Duration::from_secs(3600);
    let pool = pool_rt.block_on(TestPool::start(spec)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("accounting.sqlite");
    let settings = settings();
    let accounting = Arc::new(
        Accounting::open_path(&db, Duration::from_millis(settings.batch_window_ms)).unwrap(),
    );
    let site = Arc::new(BenchSite {
        pool_url: pool.url(),
    });
    let proxy = proxy_rt
        .block_on(Proxy::start(settings, site, accounting))
        .unwrap();
    println!("minerd proxy bench (accounting in {})", db.display());

    // Warm up: one upstream connection and the runtimes' first allocations.
    let warm = submit_load(&load_rt, proxy.local_addr(), 9, 100, 1);
    assert_eq!(warm.rejected, 0);

    let before = vm_rss_bytes();
    let idle = connect_idle_miners(&load_rt, &proxy, miners);
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy
        .miners()
        .iter()
        .filter(|m| m.authorized_user.as_deref() == Some("bench.idle"))
        .count()
        < miners
    {
        assert!(
            Instant::now() < deadline,
            "sessions not authorized within 120 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let per_miner = (vm_rss_bytes().saturating_sub(before)) as f64 / miners as f64;
    let upstreams = proxy.upstreams().len();
    println!("memory: {miners} connected miners on {upstreams} pool connections");
    println!(
        "  {:.1} KB per miner (goal ≤ 16 KB): {}",
        per_miner / 1024.0,
        if per_miner <= MEMORY_GOAL_BYTES {
            "ok"
        } else {
            "MISSED"
        }
    );

    println!("latency at {rate} shares/s from {LOAD_MINERS} miners, {seconds} s each:");
    let pool_cpu = thread_cpu_seconds("bench-pool");
    let direct = submit_load(&load_rt, pool.addr(), 11, rate, seconds);
    let pool_cpu = thread_cpu_seconds("bench-pool") - pool_cpu;
    report_latency("straight to the pool", &direct);
    let (proxy_cpu, writer_cpu) = (
        thread_cpu_seconds("proxy-"),
        thread_cpu_seconds("proxy-account"),
    );
    let proxied = submit_load(&load_rt, proxy.local_addr(), 12, rate, seconds);
    let proxy_cpu = thread_cpu_seconds("proxy-") - proxy_cpu;
    let writer_cpu = thread_cpu_seconds("proxy-account") - writer_cpu;
    report_latency("through the proxy", &proxied);
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-9);
    println!(
        "  proxy / pool: p50 {:.1}×, p99 {:.1}× (the proxy answers after its fsync'd group commit)",
        ratio(
            percentile(&proxied.samples, 0.5),
            percentile(&direct.samples, 0.5)
        ),
        ratio(
            percentile(&proxied.samples, 0.99),
            percentile(&direct.samples, 0.99)
        ),
    );
    let per_thousand = |cpu: f64, shares: u64| cpu * 1000.0 / shares.max(1) as f64;
    println!("cpu per 1,000 shares:");
    println!(
        "  proxy (validate, forward, account): {:.1} ms; test pool alone (validate, count): {:.1} ms; ratio {:.1}×",
        per_thousand(proxy_cpu, proxied.shares) * 1e3,
        per_thousand(pool_cpu, direct.shares) * 1e3,
        per_thousand(proxy_cpu, proxied.shares) / per_thousand(pool_cpu, direct.shares).max(1e-9),
    );
    println!(
        "  of which the accounting writer (SQLite, fsync per batch): {:.1} ms",
        per_thousand(writer_cpu, proxied.shares) * 1e3
    );
    // The pool's CPU during the proxied run is part of the proxied path too; it is not counted
    // above, where only the proxy's own threads are.
    drop(idle);
    proxy.stop();
}
