//! `make bench`: a full telemetry poll of 1,000 simulated miners, minerd against pyasic on the
//! same fleet in the same run, and a discovery scan of a /22.
//!
//! The fleet is `minersim` (hardware/sim) in its own process, so the CPU measured here
//! (getrusage of this process) is minerd's alone; pyasic's is measured by its own process
//! (getrusage inside the script, around its `get_data` phase). Printed: absolute wall and CPU
//! figures, CPU per miner, and the ratios against the goals of issue 5 (CPU per miner polled
//! at least 10x lower than pyasic's; 1,000 miners polled in at most 1 s of wall time).
//!
//! Environment: `MINERSIM` (path to the binary; default: built with cargo into the workspace's
//! `target/release`), `PYASIC_PYTHON` (default `build/venv/bin/python`, made by
//! `make pyasic-venv`; without it the pyasic figures and ratios are skipped, and say so),
//! `FLEET_POLL_MINERS` (default 1000), `FLEET_POLL_ROUNDS` (default 5), `FLEET_POLL_MODELS`
//! (minersim's `--models`, default `s9-bmminer`), `FLEET_POLL_CONCURRENCY` (minerd's poll
//! concurrency, default that of `TelemetrySettings`).

#[path = "../tests/scan_support/mod.rs"]
mod scan_support;

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minerd::inventory::MinerFilter;
use minerd::site_layout::SiteLayout;
use minerd::telemetry::{Telemetry, TelemetrySettings};
use scan_support::{inventory_in, one_range_layout, scan};

/// The fleet's first address; the /22 around it is scanned. Away from 127.1/16, where the
/// simulator's and minerd's tests run.
const FIRST: Ipv4Addr = Ipv4Addr::new(127, 91, 0, 2);
const RANGE: &str = "127.91.0.0/22";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) this process has used so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass; zeroed is a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn minersim_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MINERSIM").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let root = workspace_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "-p",
            "bunkeros-sim",
            "--bin",
            "minersim",
        ])
        .status()
        .expect("running cargo to build minersim");
    assert!(status.success(), "building minersim failed");
    root.join("target/release/minersim")
}

/// minersim with `count` miners, once it reports them running.
struct Minersim {
    child: Child,
}

impl Minersim {
    fn start(binary: &Path, count: usize, models: &str) -> Minersim {
        let mut child = Command::new(binary)
            .args(["--first", &FIRST.to_string(), "--count", &count.to_string()])
            .args(["--models", models])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("minersim running") => break,
                Some(Ok(_)) => {}
                _ => panic!("minersim exited before its fleet ran"),
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Minersim { child }
    }
}

impl Drop for Minersim {
    fn drop(&mut self) {
        // minersim stops its fleet on SIGINT; only the process this bench started.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let _ = self.child.wait();
    }
}

fn layout() -> SiteLayout {
    one_range_layout(RANGE, "bench", "bench hall")
}

struct MinerdFigures {
    discovery_wall: Duration,
    found: usize,
    poll_walls: Vec<Duration>,
    poll_cpu: Vec<Duration>,
    ok: usize,
}

fn measure_minerd(miners: usize, rounds: usize) -> MinerdFigures {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let inventory = inventory_in(dir.path());
        let started = Instant::now();
        let report = scan(&layout(), &inventory).await;
        let discovery_wall = started.elapsed();
        assert_eq!(report.miners_found, miners, "discovery found the fleet");
        let records = inventory.list(&MinerFilter::default()).unwrap();
        let telemetry = Telemetry::new(TelemetrySettings {
            concurrency: env_number(
                "FLEET_POLL_CONCURRENCY",
                TelemetrySettings::default().concurrency,
            ),
            ..TelemetrySettings::default()
        });
        // One warm-up poll (first connections, lazily built requests).
        telemetry.poll(&records).await;
        let mut figures = MinerdFigures {
            discovery_wall,
            found: report.miners_found,
            poll_walls: Vec::new(),
            poll_cpu: Vec::new(),
            ok: 0,
        };
        for _ in 0..rounds {
            let cpu = process_cpu();
            let started = Instant::now();
            let report = telemetry.poll(&records).await;
            figures.poll_walls.push(started.elapsed());
            figures.poll_cpu.push(process_cpu() - cpu);
            figures.ok = report.ok;
        }
        figures
    })
}

/// pyasic as its users run it: identify every miner (`get_miner`, bounded to 200 at a time, or
/// its 3 s factory timeout expires under the load of 1,000 at once), then `get_data` for all of
/// them at once, `allow_warning` so that the BOSminer data it fetches over gRPC/web (which the
/// simulator does not serve) does not abort the miner's poll.
const PYASIC_SCRIPT: &str = r#"
import asyncio, ipaddress, json, resource, sys, time
import pyasic

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

async def main(first, count, rounds):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ips = [str(ipaddress.IPv4Address(first) + i) for i in range(count)]
    gate = asyncio.Semaphore(200)
    async def identify(ip):
        async with gate:
            return await pyasic.get_miner(ip)
    c0, t0 = cpu(), time.perf_counter()
    miners = await asyncio.gather(*(identify(ip) for ip in ips), return_exceptions=True)
    identify_figures = {"wall": time.perf_counter() - t0, "cpu": cpu() - c0}
    miners = [m for m in miners if m is not None and not isinstance(m, BaseException)]
    polls = []
    for _ in range(rounds):
        c0, t0 = cpu(), time.perf_counter()
        data = await asyncio.gather(*(m.get_data(allow_warning=True) for m in miners),
                                    return_exceptions=True)
        polls.append({"wall": time.perf_counter() - t0, "cpu": cpu() - c0,
                      "failed": sum(1 for d in data if isinstance(d, BaseException))})
    print(json.dumps({"identified": len(miners), "identify": identify_figures, "polls": polls}))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
"#;

struct PyasicFigures {
    identified: usize,
    identify_wall: f64,
    identify_cpu: f64,
    poll_walls: Vec<f64>,
    poll_cpu: Vec<f64>,
    poll_failed: Vec<u64>,
}

fn measure_pyasic(python: &Path, miners: usize, rounds: usize) -> Result<PyasicFigures, String> {
    let mut script = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    script
        .write_all(PYASIC_SCRIPT.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = Command::new(python)
        .arg(script.path())
        .args([FIRST.to_string(), miners.to_string(), rounds.to_string()])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!("pyasic script failed: {}", output.status));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().ok_or("pyasic script printed nothing")?;
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let polls = v["polls"].as_array().cloned().unwrap_or_default();
    Ok(PyasicFigures {
        identified: v["identified"].as_u64().unwrap_or(0) as usize,
        identify_wall: f(&v["identify"]["wall"]),
        identify_cpu: f(&v["identify"]["cpu"]),
        poll_walls: polls.iter().map(|p| f(&p["wall"])).collect(),
        poll_cpu: polls.iter().map(|p| f(&p["cpu"])).collect(),
        poll_failed: polls
            .iter()
            .map(|p| p["failed"].as_u64().unwrap_or(0))
            .collect(),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    // `cargo bench` passes `--bench`; this harness has nothing to filter.
    let miners = env_number("FLEET_POLL_MINERS", 1000);
    let rounds = env_number("FLEET_POLL_ROUNDS", 5).max(1);
    // Stock S9s by default: the personality pyasic reads entirely over the cgminer API (its
    // S19 class also calls the web UI, its BOSminer class gRPC, and it does not identify plain
    // cgminer rigs), so both clients do the same work. `FLEET_POLL_MODELS` takes minersim's
    // `--models` list, e.g. `s9-bmminer,s19pro-bmminer,s19jpro-bosminer,cgminer`.
    let models = std::env::var("FLEET_POLL_MODELS").unwrap_or_else(|_| "s9-bmminer".into());
    let binary = minersim_binary();
    let _sim = Minersim::start(&binary, miners, &models);
    println!("fleet_poll: {miners} simulated miners (minersim --models {models}) on {RANGE}");

    let m = measure_minerd(miners, rounds);
    let wall = median(m.poll_walls.iter().map(Duration::as_secs_f64).collect());
    let cpu = median(m.poll_cpu.iter().map(Duration::as_secs_f64).collect());
    let minerd_us_per_miner = cpu / miners as f64 * 1e6;
    println!(
        "  discovery of the /22 (1,022 addresses, {} found): {:.3} s wall",
        m.found,
        m.discovery_wall.as_secs_f64()
    );
    println!(
        "  minerd full poll (median of {rounds}): {wall:.3} s wall, {:.1} ms CPU = {minerd_us_per_miner:.1} µs CPU per miner; {} of {miners} ok",
        cpu * 1e3,
        m.ok
    );
    println!(
        "  goal: 1,000 miners in <= 1 s wall -> {wall:.3} s for {miners} ({})",
        if wall <= 1.0 { "met" } else { "NOT met" }
    );

    let python = std::env::var("PYASIC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("build/venv/bin/python"));
    if !python.exists() {
        println!(
            "  pyasic: {} not found (make pyasic-venv); pyasic figures and ratios skipped",
            python.display()
        );
        return;
    }
    match measure_pyasic(&python, miners, rounds) {
        Err(e) => println!("  pyasic: {e}; pyasic figures and ratios skipped"),
        Ok(p) if p.identified == 0 => println!(
            "  pyasic identified no miner ({:.3} s wall); pyasic figures and ratios skipped",
            p.identify_wall
        ),
        Ok(p) => {
            let p_wall = median(p.poll_walls.clone());
            let p_cpu = median(p.poll_cpu.clone());
            let pyasic_us_per_miner = p_cpu / p.identified.max(1) as f64 * 1e6;
            println!(
                "  pyasic identification (get_miner x{miners}): {:.3} s wall, {:.3} s CPU; {} identified",
                p.identify_wall, p.identify_cpu, p.identified
            );
            println!(
                "  pyasic full poll (get_data of the {} identified, median of {rounds}): {p_wall:.3} s wall, {:.1} ms CPU = {pyasic_us_per_miner:.1} µs CPU per miner; failed per round: {:?}",
                p.identified,
                p_cpu * 1e3,
                p.poll_failed
            );
            let ratio = pyasic_us_per_miner / minerd_us_per_miner;
            println!(
                "  ratio CPU per miner, pyasic / minerd: {ratio:.1}x (goal >= 10x: {})",
                if ratio >= 10.0 { "met" } else { "NOT met" }
            );
            println!(
                "  ratio wall per poll, pyasic / minerd: {:.1}x",
                p_wall / wall
            );
        }
    }
}
