//! Part 1: contact → siren coil, through sited, against the poll period and the wire.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sim::site::{Quantity, RegisterMap, SiteHandle};
use sited::modbus::plan::{ReadBlock, plan_reads};
use tokio_modbus::client::Client;
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::{Request, Slave};

use crate::daemon_support::SiteUnderTest;
use crate::{Jitter, LATENCY_GOAL, ms, percentile};

/// Separates "sited switched it" from "it never will" (far above any latency measured).
const SWITCH_LIMIT: Duration = Duration::from_secs(10);
const SIREN: &str = "siren";

/// A contact the bench switches: its sensor and how sitesim sets it.
#[derive(Debug, Clone)]
enum Contact {
    Intrusion(u16),
    Arrester(u16),
}

impl Contact {
    fn set(&self, site: &SiteHandle, on: bool) {
        match *self {
            Contact::Intrusion(n) => site.set_intrusion(n, on),
            Contact::Arrester(n) => site.set_arrester(n, on),
        }
        .expect("the bench site has this contact");
    }
}

/// Every intrusion and arrester contact of the map, with its sensor name, interleaved so
/// consecutive toggles use the two kinds.
fn contacts(map: &RegisterMap) -> Vec<(Contact, String)> {
    let mut intrusion = Vec::new();
    let mut arrester = Vec::new();
    for register in map.buses.iter().flat_map(|b| &b.registers) {
        match register.quantity {
            Quantity::Intrusion { contact } => {
                intrusion.push((Contact::Intrusion(contact + 1), register.sensor.clone()))
            }
            Quantity::ArresterTripped { arrester: n } => {
                arrester.push((Contact::Arrester(n + 1), register.sensor.clone()))
            }
            _ => {}
        }
    }
    let mut both = Vec::new();
    let (mut intrusion, mut arrester) = (intrusion.into_iter(), arrester.into_iter());
    loop {
        let (a, b) = (intrusion.next(), arrester.next());
        if a.is_none() && b.is_none() {
            return both;
        }
        both.extend(a.into_iter().chain(b));
    }
}

/// The bench's `sited.toml`: Modbus polled at `period` (a request's deadline half of it, no
/// retry, which the configuration check requires at 50 ms), the power supplies, a zone per
/// hall over its probes, a contact rule on every intrusion and arrester contact and the siren
/// on them until acknowledged.
pub fn bench_layer(map: &RegisterMap, period: Duration) -> String {
    let mut toml = String::new();
    let poll = period.as_millis();
    writeln!(
        toml,
        "[site]\nname = \"bench-site\"\n\n[modbus]\npoll_period_ms = {poll}\ndeadline_ms = {}\nretries = 0\n",
        poll / 2
    )
    .unwrap();
    let mut feeds = Vec::new();
    let mut generators = Vec::new();
    let mut halls: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for register in map.buses.iter().flat_map(|b| &b.registers) {
        let name = format!("\"{}\"", register.sensor);
        match register.quantity {
            Quantity::GridPresent { .. } => feeds.push(name),
            Quantity::GeneratorRunning { .. } => generators.push(name),
            Quantity::HallTemperature { hall, .. } => halls.entry(hall + 1).or_default().push(name),
            _ => {}
        }
    }
    writeln!(
        toml,
        "[power]\ngrid_w = {}.0\ngenerator_w = {}.0\nreserve_w = 200000.0\nfeeds = [{}]\ngenerators = [{}]\n",
        300_000 * feeds.len(),
        200_000 * generators.len(),
        feeds.join(", "),
        generators.join(", ")
    )
    .unwrap();
    for (hall, probes) in &halls {
        writeln!(
            toml,
            "[[zone]]\nname = \"hall-{hall}\"\ntemperature = [{}]\nlimit_c = 35.0\n",
            probes.join(", ")
        )
        .unwrap();
    }
    toml.push_str(
        "[[output]]\nrelay = \"siren\"\nalarms = [\"intrusion-*\", \"arrester-*\"]\non_while = \"unacknowledged\"\n\n",
    );
    for (_, sensor) in contacts(map) {
        let alarm = sensor.replace('.', "-");
        writeln!(
            toml,
            "[[rule]]\nname = \"{alarm}\"\nkind = \"contact\"\nseverity = \"critical\"\nsensor = \"{sensor}\"\nsummary = \"{sensor} is active\"\n"
        )
        .unwrap();
    }
    toml
}

/// Latencies of `toggles` contact changes: input on → siren coil set, and input off → coil
/// cleared (the alarm clears, nobody acknowledged it).
pub struct Latency {
    pub set: Vec<Duration>,
    pub cleared: Vec<Duration>,
}

pub async fn measure(site: &SiteUnderTest, toggles: usize, period: Duration) -> Latency {
    let handle = site.site.handle();
    let contacts = contacts(site.site.register_map());
    let mut jitter = Jitter::new();
    let mut latency = Latency {
        set: Vec::with_capacity(toggles),
        cleared: Vec::with_capacity(toggles),
    };
    for i in 0..toggles {
        let (contact, _) = &contacts[i % contacts.len()];
        for on in [true, false] {
            tokio::time::sleep(jitter.below(period)).await;
            let changed = Instant::now();
            contact.set(&handle, on);
            let waited = tokio::time::timeout(SWITCH_LIMIT, handle.wait_relay(SIREN, on)).await;
            let Ok(Some(relay)) = waited else {
                panic!(
                    "the siren was not switched {on} within {SWITCH_LIMIT:?} of {contact:?}; sited's log:\n{}",
                    site.sited.log()
                );
            };
            let at = relay.changed_at.expect("a switched coil has its time");
            let took = at.saturating_duration_since(changed);
            if on {
                latency.set.push(took);
            } else {
                latency.cleared.push(took);
            }
        }
    }
    latency
}

/// A plain client's round trips on the safety device: reads of the blocks holding the
/// contacts (the requests sited makes for them) and writes of the siren's coil (off, as it is).
pub struct Wire {
    pub read: Vec<Duration>,
    pub write: Vec<Duration>,
}

pub async fn round_trips(map: &RegisterMap, count: usize) -> Wire {
    let contact_sensors: Vec<String> = contacts(map).into_iter().map(|(_, s)| s).collect();
    let (bus, _) = map.sensor(&contact_sensors[0]).unwrap();
    let profile_bus = bus.to_profile();
    let blocks: Vec<ReadBlock> = plan_reads(&profile_bus.registers)
        .into_iter()
        .filter(|b| {
            b.entries
                .iter()
                .any(|&i| contact_sensors.contains(&profile_bus.registers[i].sensor))
        })
        .collect();
    let (_, siren) = map.relay(SIREN).expect("the bench site has a siren");
    let stream = tokio::net::TcpStream::connect(bus.address.as_str())
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut context = tokio_modbus::client::tcp::attach_slave(stream, Slave(siren.unit));
    let mut wire = Wire {
        read: Vec::with_capacity(count),
        write: Vec::with_capacity(count),
    };
    for i in 0..count {
        let block = &blocks[i % blocks.len()];
        context.set_slave(Slave(block.unit));
        let started = Instant::now();
        context
            .call(Request::ReadDiscreteInputs(block.start, block.count))
            .await
            .unwrap()
            .unwrap();
        wire.read.push(started.elapsed());
        context.set_slave(Slave(siren.unit));
        let started = Instant::now();
        context
            .call(Request::WriteSingleCoil(siren.address, false))
            .await
            .unwrap()
            .unwrap();
        wire.write.push(started.elapsed());
    }
    wire
}

pub fn print(latency: &Latency, wire: &Wire, period: Duration) {
    let (p50, p99) = (
        percentile(&latency.set, 0.5),
        percentile(&latency.set, 0.99),
    );
    let (read50, read99) = (percentile(&wire.read, 0.5), percentile(&wire.read, 0.99));
    let (write50, write99) = (percentile(&wire.write, 0.5), percentile(&wire.write, 0.99));
    // An input changing at a uniformly random moment waits on average half a period for the
    // next poll (at p99, 0.99 of one), then one read and one write on the wire.
    let floor50 = period / 2 + read50 + write50;
    let floor99 = period.mul_f64(0.99) + read99 + write99;
    println!(
        "  alarm latency, contact -> siren coil set ({} toggles): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latency.set.len(),
        ms(p50),
        ms(p99),
        ms(percentile(&latency.set, 1.0))
    );
    println!(
        "  contact cleared -> siren coil cleared: p50 {:.1} ms, p99 {:.1} ms",
        ms(percentile(&latency.cleared, 0.5)),
        ms(percentile(&latency.cleared, 0.99))
    );
    println!(
        "  goal: p99 <= {} ms -> {:.1} ms ({})",
        LATENCY_GOAL.as_millis(),
        ms(p99),
        if p99 <= LATENCY_GOAL {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "  baseline: poll period {} ms; plain tokio-modbus round trips (x{}): read of the contacts' discrete inputs p50 {:.3} ms, p99 {:.3} ms; siren coil write p50 {:.3} ms, p99 {:.3} ms",
        period.as_millis(),
        wire.read.len(),
        ms(read50),
        ms(read99),
        ms(write50),
        ms(write99)
    );
    println!(
        "  polling floor (phase + read + write): p50 {:.1} ms, p99 {:.1} ms; sited above it: p50 {:+.1} ms, p99 {:+.1} ms (ratio p99 sited / floor {:.2}x)",
        ms(floor50),
        ms(floor99),
        ms(p50) - ms(floor50),
        ms(p99) - ms(floor99),
        ms(p99) / ms(floor99)
    );
}
