//! Many random small networks: every answer checked against brute force over all loop-free
//! paths (compliant, fastest, disjoint), and every refusal checked to be true.

use std::collections::BTreeSet;

use super::super::*;
use super::network;
use crate::path_policy::Role;
use crate::testing::{country, hub};
use crate::topology::LinkIndex;

/// Every loop-free path from `from` to `to` in `topology`, as (hubs, links).
fn all_paths(
    topology: &Topology,
    from: HubIndex,
    to: HubIndex,
) -> Vec<(Vec<HubIndex>, Vec<LinkIndex>)> {
    fn extend(
        topology: &Topology,
        to: HubIndex,
        hubs: &mut Vec<HubIndex>,
        links: &mut Vec<LinkIndex>,
        out: &mut Vec<(Vec<HubIndex>, Vec<LinkIndex>)>,
    ) {
        let here = *hubs.last().unwrap();
        if here == to {
            out.push((hubs.clone(), links.clone()));
            return;
        }
        for &(next, link) in topology.neighbours(here) {
            if !hubs.contains(&next) {
                hubs.push(next);
                links.push(link);
                extend(topology, to, hubs, links, out);
                hubs.pop();
                links.pop();
            }
        }
    }
    let mut out = Vec::new();
    extend(topology, to, &mut vec![from], &mut Vec::new(), &mut out);
    out
}

/// A deterministic generator for the random networks.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn on_random_networks_every_answer_is_compliant_optimal_and_every_refusal_true() {
    const CODES: [&str; 4] = ["ES", "FR", "PT", "BR"];
    let mut random = Random(0x2545_F491_4F6C_DD1D);
    let mut answered = 0;
    let mut refused = 0;
    for _ in 0..400 {
        let n = 3 + random.below(5) as usize;
        let names: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
        let hubs: Vec<(&str, &str)> = names
            .iter()
            .map(|name| (name.as_str(), CODES[random.below(4) as usize]))
            .collect();
        let mut links = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                for cable in 1..=2u16 {
                    if random.below(if cable == 1 { 3 } else { 8 }) == 0 {
                        links.push((hubs[a].0, hubs[b].0, cable, 1 + random.below(20)));
                    }
                }
            }
        }
        let no_transit: Vec<&str> = hubs
            .iter()
            .filter(|_| random.below(5) == 0)
            .map(|(name, _)| *name)
            .collect();
        let topology = network(&hubs, &links, &no_transit);
        let policy = PathPolicy {
            excluded_jurisdictions: if random.below(2) == 0 {
                [country("FR")].into()
            } else {
                BTreeSet::new()
            },
            excluded_hubs: if random.below(3) == 0 {
                [hub("h1")].into()
            } else {
                BTreeSet::new()
            },
            max_hops: (random.below(3) == 0).then(|| 1 + random.below(3) as usize),
            max_latency: (random.below(4) == 0)
                .then(|| Latency::from_millis(10 + random.below(30))),
            disjoint_backup: random.below(2) == 0,
            ..PathPolicy::default()
        };
        let (from, to) = (HubIndex::at(0), HubIndex::at(n - 1));
        let compliant = |hubs: &[HubIndex], links: &[LinkIndex]| {
            let latency: u64 = links
                .iter()
                .map(|l| topology.link(*l).latency.as_micros())
                .sum();
            hubs.iter().enumerate().all(|(i, h)| {
                let role = if i == 0 || i == hubs.len() - 1 {
                    Role::Endpoint
                } else {
                    Role::Intermediate
                };
                policy.exclusion(topology.hub(*h), role).is_none()
            }) && policy.max_hops.is_none_or(|m| links.len() <= m)
                && policy.max_latency.is_none_or(|m| latency <= m.as_micros())
        };
        let paths = all_paths(&topology, from, to);
        let good: Vec<_> = paths.iter().filter(|(h, l)| compliant(h, l)).collect();
        let best = good
            .iter()
            .map(|(_, l)| {
                l.iter()
                    .map(|l| topology.link(*l).latency.as_micros())
                    .sum::<u64>()
            })
            .min();
        let disjoint_pair_exists = good.iter().any(|(_, a)| {
            good.iter()
                .any(|(_, b)| a.iter().all(|link| !b.contains(link)))
        });
        let result = select(
            &topology,
            &topology.hub(from).id,
            &topology.hub(to).id,
            &policy,
        );
        match result {
            Ok(choice) => {
                answered += 1;
                let check = |path: &Path| {
                    let indices: Vec<HubIndex> = path
                        .hubs
                        .iter()
                        .map(|h| topology.index_of(&h.id).unwrap())
                        .collect();
                    let unique: BTreeSet<_> = indices.iter().collect();
                    assert_eq!(unique.len(), indices.len(), "loop in {path}");
                    assert_eq!(path.links.len() + 1, path.hubs.len());
                    let link_indices: Vec<_> = paths
                        .iter()
                        .find(|(h, l)| {
                            *h == indices
                                && l.iter()
                                    .map(|l| topology.link_name(*l))
                                    .eq(path.links.iter().cloned())
                        })
                        .map(|(_, l)| l.clone())
                        .expect("a path of the graph");
                    assert!(compliant(&indices, &link_indices), "{path} breaks {policy}");
                };
                check(&choice.primary);
                if let Some(backup) = &choice.backup {
                    check(backup);
                    assert!(!choice.primary.shares_link_with(backup));
                }
                if !policy.disjoint_backup {
                    assert_eq!(
                        Some(choice.primary.latency.as_micros()),
                        best,
                        "not the fastest"
                    );
                } else {
                    assert!(choice.backup.is_some(), "a required backup is missing");
                }
            }
            Err(refusal) => {
                refused += 1;
                if !policy.disjoint_backup {
                    assert!(
                        good.is_empty(),
                        "refused ({refusal}) though {} compliant paths exist",
                        good.len()
                    );
                } else if policy.max_hops.is_none() && policy.max_latency.is_none() {
                    assert!(
                        !disjoint_pair_exists,
                        "refused ({refusal}) though a disjoint pair exists"
                    );
                }
                if let Refusal::Blocked { blockers, .. } = &refusal {
                    // Without the named hubs, no route at all is left.
                    let blocked: BTreeSet<HubIndex> = blockers
                        .iter()
                        .map(|b| topology.index_of(&b.hub).unwrap())
                        .collect();
                    assert!(
                        paths
                            .iter()
                            .all(|(h, _)| h.iter().any(|x| blocked.contains(x))),
                        "a route avoids every blocker named in: {refusal}"
                    );
                }
                if let Refusal::NoRoute { .. } = refusal {
                    assert!(paths.is_empty());
                }
            }
        }
    }
    assert!(
        answered > 100 && refused > 50,
        "{answered} answered, {refused} refused"
    );
}
