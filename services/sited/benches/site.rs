//! `make bench` for sited, each figure against a baseline measured in the same run:
//!
//! 1. Alarm latency with 1,000+ sensors: sitesim's bench site (1,036 sensors on five Modbus TCP
//!    devices, served by this process) and the real `sited` binary (its own process, on a
//!    private dbus-daemon) polling it every `SITE_BENCH_POLL_MS`. A contact (intrusion or
//!    arrester) is switched on at a random phase of the poll, and the latency is the time from
//!    that change to the siren's coil being set (sitesim records when a write changed a coil).
//!    Goal (issue 6): p99 ≤ 100 ms. Baselines: the poll period itself, and a plain tokio-modbus
//!    client's round trips reading the same discrete inputs and writing the siren's coil (once
//!    sited is stopped): no polling monitor beats "half a period + read + write" on average.
//! 2. CPU per 1,000 sensors polled per second: sited's process CPU (utime + stime from
//!    /proc/PID/stat) over a window in which it only polls, divided by the readings it counted
//!    (its `sited_sensor_events_total`). Baseline: a bare tokio-modbus poller reading the same
//!    request blocks (sited's own `plan_reads`) at the same period on its own thread, its CPU
//!    from getrusage(RUSAGE_THREAD); it decodes nothing and decides nothing, so it is the floor.
//! 3. UPS on battery → new power budget on D-Bus: Debian's upsd with dummy-ups on loopback, a
//!    second sited whose profile has that UPS as a `nut` bus and whose `[power] on_battery`
//!    names it. The UPS is flipped OL → OB → OL; the time from rewriting dummy-ups' file to
//!    `BudgetChanged` on the bus is measured, against the time until upsd itself reports the
//!    change to a plain `GET VAR <ups> ups.status` loop asking every 5 ms (what sited cannot
//!    beat: dummy-ups reads its file once a second), with sited's NUT poll period beside.
//!
//! The `sited` binary is the one cargo builds for this bench (`CARGO_BIN_EXE_sited`, release
//! profile). Environment: `SITE_BENCH_TOGGLES` (default 200), `SITE_BENCH_POLL_MS` (default 50,
//! the least `[modbus]` allows), `SITE_BENCH_CPU_SECONDS` (default 10),
//! `SITE_BENCH_UPS_FLIPS` (default 10 each way). Needs dbus-daemon and nut-server (`make deps`).

#[path = "../tests/daemon_support/mod.rs"]
mod daemon_support;
#[path = "../tests/nut_support/mod.rs"]
mod nut_support;

#[path = "site_bench/alarm_latency.rs"]
mod alarm_latency;
#[path = "site_bench/poll_cpu.rs"]
mod poll_cpu;
#[path = "site_bench/ups_budget.rs"]
mod ups_budget;

use std::time::Duration;

use daemon_support::{SiteUnderTest, eventually};
use sim::site::SiteSpec;

/// sitesim's devices: ports counted up from any free one, away from the tests' 127.71/16.
const SITE_LISTEN: &str = "127.73.1.1:0";
/// The alarm-latency goal of issue 6.
const LATENCY_GOAL: Duration = Duration::from_millis(100);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value at fraction `p` of `values` (sorted here).
fn percentile(values: &[Duration], p: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Deterministic pseudo-random waits (xorshift), so each input change falls at another phase
/// of the poll rather than locking onto it.
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        Jitter(0x9E37_79B9_7F4A_7C15)
    }

    /// A wait from 0 up to `limit`.
    fn below(&mut self, limit: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        limit.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness has nothing to filter.
    let toggles = env_number("SITE_BENCH_TOGGLES", 200).max(1) as usize;
    let period = Duration::from_millis(env_number("SITE_BENCH_POLL_MS", 50));
    let cpu_window = Duration::from_secs(env_number("SITE_BENCH_CPU_SECONDS", 10).max(1));
    let flips = env_number("SITE_BENCH_UPS_FLIPS", 10).max(1) as usize;
    // sitesim and the bench's clients; sited runs in its own process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-site")
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        site_benches(toggles, period, cpu_window).await;
        ups_benches(flips).await;
    });
}

/// Parts 1 and 2: one bench site, one sited polling it.
async fn site_benches(toggles: usize, period: Duration, cpu_window: Duration) {
    let spec = SiteSpec::bench();
    let planned = sim::site::RegisterMap::new(
        &spec,
        &sim::site::planned_addresses(SITE_LISTEN.parse().unwrap()),
    );
    let layer = alarm_latency::bench_layer(&planned, period);
    let mut site = SiteUnderTest::start_with_layer(SITE_LISTEN, spec, &layer).await;
    // Hundreds of state changes follow, each a status line for systemd.
    site.sited.discard_notifications();
    let sensors = site.site.register_map().sensor_count();
    let site1 = site.site1().await;
    eventually("sited reads every sensor of the bench site", || {
        let site1 = site1.clone();
        async move {
            let Ok(status) = site1.status().await else {
                return false;
            };
            let status: serde_json::Value = serde_json::from_str(&status).unwrap();
            status["sensors"]["lost"] == 0 && status["sensors"]["ok"] == status["sensors"]["total"]
        }
    })
    .await;
    println!(
        "site: sitesim's bench site, {sensors} sensors on {} Modbus TCP devices (this process); sited (own process) polling every {} ms",
        site.site.addresses().len(),
        period.as_millis()
    );

    let latency = alarm_latency::measure(&site, toggles, period).await;
    let sited_cpu = poll_cpu::sited_window(&site.sited, cpu_window).await;
    site.sited.stop();
    let wire = alarm_latency::round_trips(site.site.register_map(), 1000).await;
    let bare_cpu = poll_cpu::bare_window(site.site.register_map(), period, cpu_window).await;

    alarm_latency::print(&latency, &wire, period);
    poll_cpu::print(&sited_cpu, &bare_cpu, period);
}

/// Part 3: a real upsd and a sited following its UPS.
async fn ups_benches(flips: usize) {
    let bus = appliance::dbus::testbus::TestBus::start().unwrap();
    let figures = ups_budget::measure(&bus, flips).await;
    ups_budget::print(&figures);
}
