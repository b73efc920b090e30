//! `make bench` for hubd: path computation on a synthetic 1,000-hub graph, against a plain
//! Dijkstra (no policy, no backup) on the same graph in the same run (machines here are noisy:
//! the ratio is what travels).
//!
//! The graph: hubs scattered over a 10,000 km × 6,000 km plane, 40 jurisdictions as regions of
//! it, each hub linked to its 3 nearest hubs and to its nearest earlier hub (so the graph is
//! connected), one link in ten doubled by a second cable, latency 5 µs per km plus 200 µs, and
//! one hub in twenty advertising no transit. Built from real `Advertisement` values through
//! `Topology::from_advertisements` (both ends advertise every link).
//!
//! Environment: BENCH_HUBS (default 1000), BENCH_PAIRS (default 200 source/destination pairs).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::hint::black_box;
use std::time::{Duration, Instant};

use hubd::advertisement::{AdvertisedLink, Advertisement, AdvertisementParts, Flags, Timestamp};
use hubd::hub_id::HubId;
use hubd::jurisdiction::Jurisdiction;
use hubd::link::{Latency, LinkId};
use hubd::path_policy::PathPolicy;
use hubd::path_selection::select;
use hubd::topology::{HubIndex, Topology};

/// SplitMix64: a fixed, dependency-free generator, so every run builds the same graph.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The synthetic network's advertisements.
fn advertisements(hubs: usize, random: &mut Random) -> Vec<Advertisement> {
    let countries: Vec<Jurisdiction> = Jurisdiction::all().step_by(6).take(40).collect();
    let points: Vec<(f64, f64)> = (0..hubs)
        .map(|_| (random.below(10_000) as f64, random.below(6_000) as f64))
        .collect();
    let distance = |a: usize, b: usize| {
        let (dx, dy) = (points[a].0 - points[b].0, points[a].1 - points[b].1);
        (dx * dx + dy * dy).sqrt()
    };
    let mut pairs = BTreeSet::new();
    for a in 0..hubs {
        let mut nearest: Vec<usize> = (0..hubs).filter(|b| *b != a).collect();
        nearest.sort_by(|x, y| distance(a, *x).total_cmp(&distance(a, *y)));
        for b in nearest.iter().take(3) {
            pairs.insert((a.min(*b), a.max(*b)));
        }
        if let Some(earlier) = (0..a).min_by(|x, y| distance(a, *x).total_cmp(&distance(a, *y))) {
            pairs.insert((earlier, a));
        }
    }
    let id = |i: usize| HubId::parse(&format!("hub-{i:04}")).expect("a valid hub id");
    let mut links: Vec<Vec<AdvertisedLink>> = vec![Vec::new(); hubs];
    for (a, b) in pairs {
        let micros = 200 + (distance(a, b) * 5.0) as u64;
        let cables = if random.below(10) == 0 { 2 } else { 1 };
        for cable in 1..=cables {
            let latency = Latency::from_micros(micros + (cable - 1) * micros / 10);
            let link = LinkId::new(cable as u16).expect("1 or 2");
            links[a].push(AdvertisedLink {
                neighbour: id(b),
                link,
                latency,
            });
            links[b].push(AdvertisedLink {
                neighbour: id(a),
                link,
                latency,
            });
        }
    }
    links
        .into_iter()
        .enumerate()
        .map(|(i, links)| {
            let (x, y) = points[i];
            let region = (x / 1250.0) as usize + 8 * (y / 1200.0) as usize;
            Advertisement::new(AdvertisementParts {
                origin: id(i),
                jurisdiction: countries[region.min(39)],
                flags: Flags {
                    no_transit: random.below(20) == 0,
                },
                sequence: 1,
                expires_at: Timestamp::from_unix_secs(u64::MAX),
                links,
                vouchers: Vec::new(),
                prefixes: Vec::new(),
            })
            .expect("a valid advertisement")
        })
        .collect()
}

/// The baseline: textbook Dijkstra with a binary heap over the same adjacency, no policy.
fn plain_dijkstra(topology: &Topology, from: HubIndex, to: HubIndex) -> Option<u64> {
    let mut distance = vec![u64::MAX; topology.hub_count()];
    let mut heap = BinaryHeap::new();
    distance[from.get()] = 0;
    heap.push(Reverse((0u64, from)));
    while let Some(Reverse((d, hub))) = heap.pop() {
        if hub == to {
            return Some(d);
        }
        if d > distance[hub.get()] {
            continue;
        }
        for &(next, link) in topology.neighbours(hub) {
            let candidate = d + topology.link(link).latency.as_micros();
            if candidate < distance[next.get()] {
                distance[next.get()] = candidate;
                heap.push(Reverse((candidate, next)));
            }
        }
    }
    None
}

/// Runs `compute` over every pair until at least half a second has passed; time per call.
fn time_per_call(
    pairs: &[(HubIndex, HubIndex)],
    mut compute: impl FnMut(HubIndex, HubIndex),
) -> Duration {
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < Duration::from_millis(500) {
        for &(from, to) in pairs {
            compute(from, to);
        }
        calls += u32::try_from(pairs.len()).expect("a few hundred pairs");
    }
    started.elapsed() / calls
}

fn main() {
    let hub_count = env_count("BENCH_HUBS", 1000);
    let pair_count = env_count("BENCH_PAIRS", 200);
    let mut random = Random(0x4855_4244);
    let advertisements = advertisements(hub_count, &mut random);
    let started = Instant::now();
    let topology = Topology::from_advertisements(&advertisements);
    let built = started.elapsed();
    let no_transit = topology.hubs().iter().filter(|hub| !hub.transit).count();
    println!(
        "hubd path computation benchmark: {} hubs, {} links, {} jurisdictions, {no_transit} no-transit hubs, {pair_count} pairs",
        topology.hub_count(),
        topology.link_count(),
        topology
            .hubs()
            .iter()
            .map(|hub| hub.jurisdiction)
            .collect::<BTreeSet<_>>()
            .len(),
    );
    println!(
        "  topology  built from {} advertisements in {:.1} ms",
        advertisements.len(),
        built.as_secs_f64() * 1000.0
    );
    let pairs: Vec<(HubIndex, HubIndex)> = (0..pair_count)
        .map(|_| {
            loop {
                let from = random.below(hub_count as u64) as usize;
                let to = random.below(hub_count as u64) as usize;
                if from != to {
                    break (
                        topology
                            .index_of(&topology.hubs()[from].id)
                            .expect("in the graph"),
                        topology
                            .index_of(&topology.hubs()[to].id)
                            .expect("in the graph"),
                    );
                }
            }
        })
        .collect();

    let baseline = time_per_call(&pairs, |from, to| {
        black_box(plain_dijkstra(&topology, from, to));
    });
    println!(
        "  baseline  plain Dijkstra, no policy, no backup                  {:9.1} µs per path",
        baseline.as_secs_f64() * 1e6
    );

    let mut hops: Vec<usize> = pairs
        .iter()
        .filter_map(|&(from, to)| {
            select(
                &topology,
                &topology.hub(from).id,
                &topology.hub(to).id,
                &PathPolicy::default(),
            )
            .ok()
            .map(|choice| choice.primary.hops())
        })
        .collect();
    hops.sort_unstable();
    let median_hops = hops[hops.len() / 2];
    println!(
        "  paths     the fastest paths have {} to {} hops, median {median_hops}",
        hops[0],
        hops[hops.len() - 1]
    );
    let jurisdictions: Vec<Jurisdiction> =
        topology.hubs().iter().map(|hub| hub.jurisdiction).collect();
    let excluded: BTreeSet<Jurisdiction> =
        [jurisdictions[0], jurisdictions[1], jurisdictions[2]].into();
    let scenarios = [
        (
            "no policy: primary + disjoint backup",
            PathPolicy::default(),
        ),
        (
            "3 jurisdictions excluded, + backup",
            PathPolicy {
                excluded_jurisdictions: excluded.clone(),
                ..PathPolicy::default()
            },
        ),
        (
            "3 excluded, backup required",
            PathPolicy {
                excluded_jurisdictions: excluded.clone(),
                disjoint_backup: true,
                ..PathPolicy::default()
            },
        ),
        (
            "3 excluded, at most the median hops",
            PathPolicy {
                excluded_jurisdictions: excluded,
                max_hops: Some(median_hops),
                ..PathPolicy::default()
            },
        ),
    ];
    for (name, policy) in &scenarios {
        let mut refused = 0usize;
        let mut with_backup = 0usize;
        for &(from, to) in &pairs {
            match select(
                &topology,
                &topology.hub(from).id,
                &topology.hub(to).id,
                policy,
            ) {
                Ok(choice) => with_backup += usize::from(choice.backup.is_some()),
                Err(_) => refused += 1,
            }
        }
        let measured = time_per_call(&pairs, |from, to| {
            let _ = black_box(select(
                &topology,
                &topology.hub(from).id,
                &topology.hub(to).id,
                policy,
            ));
        });
        println!(
            "  measured  select(), {name:<46} {:9.1} µs per flow   ratio {:5.2} of the baseline   ({} refused, {with_backup} with a backup)",
            measured.as_secs_f64() * 1e6,
            measured.as_secs_f64() / baseline.as_secs_f64(),
            refused,
        );
    }
}
