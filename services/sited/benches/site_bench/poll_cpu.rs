//! Part 2: CPU per 1,000 sensor readings, sited against a bare tokio-modbus poller reading the
//! same blocks at the same period.

use std::time::{Duration, Instant};

use appliance::testdaemon::ServiceProcess;
use sim::site::RegisterMap;
use sited::catalogue::DERIVED_BUS;
use sited::modbus::plan::{ReadBlock, plan_reads};
use tokio::task::JoinSet;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{Request, Slave};

use crate::ms;

/// What one poller cost over a window.
pub struct CpuFigures {
    pub cpu: Duration,
    pub wall: Duration,
    /// Sensors read (a sample each).
    pub readings: u64,
    /// Sensors that could not be read in the window (none expected).
    pub lost: u64,
}

impl CpuFigures {
    fn cpu_ms_per_1000(&self) -> f64 {
        ms(self.cpu) / (self.readings.max(1) as f64 / 1000.0)
    }

    fn readings_per_second(&self) -> f64 {
        self.readings as f64 / self.wall.as_secs_f64()
    }
}

/// CPU (user + system, every thread) of process `pid` so far.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    let after_name = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Duration::from_secs_f64(ticks as f64 / per_second)
}

/// CPU (user + system) of the calling thread so far.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass; zeroed is a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// sited's own count of the events its drivers sent: (samples, losses).
fn sited_readings(sited: &ServiceProcess) -> (u64, u64) {
    let page = sited.scrape().expect("sited's metrics answer");
    let mut counts = (0, 0);
    // Derived sensors (a zone's hottest probe, recomputed on each probe's sample) are not
    // readings from the wire.
    let derived = format!("bus=\"{DERIVED_BUS}\"");
    for line in page
        .lines()
        .filter(|l| l.starts_with("sited_sensor_events_total{") && !l.contains(&derived))
    {
        let value = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if line.contains("kind=\"sample\"") {
            counts.0 += value;
        } else if line.contains("kind=\"lost\"") {
            counts.1 += value;
        }
    }
    counts
}

/// sited's process CPU over `window`, in which it does nothing but poll.
pub async fn sited_window(sited: &ServiceProcess, window: Duration) -> CpuFigures {
    let pid = sited.pid().expect("sited runs");
    let (samples, lost) = sited_readings(sited);
    let cpu = process_cpu(pid);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let cpu = process_cpu(pid) - cpu;
    let wall = started.elapsed();
    let (samples_after, lost_after) = sited_readings(sited);
    CpuFigures {
        cpu,
        wall,
        readings: samples_after - samples,
        lost: lost_after - lost,
    }
}

/// One device's connection and the requests one poll makes (sited's plan for its map).
struct BareBus {
    context: Context,
    blocks: Vec<ReadBlock>,
}

/// Reads every block each `period` until `until`: (readings, losses).
async fn poll_bus(mut bus: BareBus, period: Duration, until: Instant) -> (u64, u64) {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut read, mut lost) = (0, 0);
    while Instant::now() < until {
        ticks.tick().await;
        for block in &bus.blocks {
            bus.context.set_slave(Slave(block.unit));
            let request = match block.table {
                appliance::profile::ModbusTable::Holding => {
                    Request::ReadHoldingRegisters(block.start, block.count)
                }
                appliance::profile::ModbusTable::Input => {
                    Request::ReadInputRegisters(block.start, block.count)
                }
                appliance::profile::ModbusTable::Coil => {
                    Request::ReadCoils(block.start, block.count)
                }
                appliance::profile::ModbusTable::Discrete => {
                    Request::ReadDiscreteInputs(block.start, block.count)
                }
            };
            let entries = block.entries.len() as u64;
            match bus.context.call(request).await {
                Ok(Ok(_)) => read += entries,
                _ => lost += entries,
            }
        }
    }
    (read, lost)
}

/// The bare poller on a thread of its own (a current-thread runtime, so all of its work,
/// I/O included, is that thread's CPU): connects to every device, then polls for `window`.
fn run_bare(map: &RegisterMap, period: Duration, window: Duration) -> CpuFigures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut buses = Vec::new();
        for bus in &map.buses {
            let stream = tokio::net::TcpStream::connect(bus.address.as_str())
                .await
                .unwrap();
            stream.set_nodelay(true).unwrap();
            buses.push(BareBus {
                context: tokio_modbus::client::tcp::attach(stream),
                blocks: plan_reads(&bus.to_profile().registers),
            });
        }
        let cpu = thread_cpu();
        let started = Instant::now();
        let until = started + window;
        let mut polls = JoinSet::new();
        for bus in buses {
            polls.spawn(poll_bus(bus, period, until));
        }
        let (mut readings, mut lost) = (0, 0);
        while let Some(done) = polls.join_next().await {
            let (read, failed) = done.unwrap();
            readings += read;
            lost += failed;
        }
        CpuFigures {
            cpu: thread_cpu() - cpu,
            wall: started.elapsed(),
            readings,
            lost,
        }
    })
}

/// The bare poller's CPU over `window` (sited stopped by then, so they do not share the CPUs).
pub async fn bare_window(map: &RegisterMap, period: Duration, window: Duration) -> CpuFigures {
    let map = map.clone();
    let thread = std::thread::Builder::new()
        .name("bare-poller".into())
        .spawn(move || run_bare(&map, period, window))
        .unwrap();
    tokio::task::spawn_blocking(move || thread.join().expect("the bare poller ran"))
        .await
        .unwrap()
}

pub fn print(sited: &CpuFigures, bare: &CpuFigures, period: Duration) {
    for (who, f) in [
        ("sited (process, every thread)", sited),
        ("bare tokio-modbus poller (its thread)", bare),
    ] {
        println!(
            "  CPU polling at {} ms, {who}: {:.0} ms CPU over {:.1} s for {} readings ({:.0}/s, {} lost) = {:.3} ms CPU per 1,000 readings",
            period.as_millis(),
            ms(f.cpu),
            f.wall.as_secs_f64(),
            f.readings,
            f.readings_per_second(),
            f.lost,
            f.cpu_ms_per_1000()
        );
    }
    println!(
        "  CPU per 1,000 sensors polled per second: sited {:.3} ms/s ({:.4} % of a core), bare poller {:.3} ms/s; ratio sited / bare {:.1}x",
        sited.cpu_ms_per_1000(),
        sited.cpu_ms_per_1000() / 10.0,
        bare.cpu_ms_per_1000(),
        sited.cpu_ms_per_1000() / bare.cpu_ms_per_1000()
    );
}
