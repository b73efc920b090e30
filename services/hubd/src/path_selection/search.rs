//! The graph searches behind path selection, over the hubs a policy lets a path cross.
//!
//! - [`Graph::fastest`]: Dijkstra, lowest latency then fewest hops;
//! - [`Graph::fastest_within`]: the lowest-latency path of at most `h` links (a Bellman-Ford
//!   over hop layers, exact where Dijkstra's answer has too many hops);
//! - [`Graph::fewest_hops`]: breadth-first, to say how many hops compliant routes need;
//! - [`Graph::disjoint_pair`]: Suurballe's algorithm, the two link-disjoint paths of least total
//!   latency, for when the fastest path has no disjoint partner but a pair exists.
//!
//! Every link has a latency of at least 1 µs, so the cheapest walk is always a simple path.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::link::Latency;
use crate::topology::{HubIndex, LinkIndex, Topology};

/// A path as positions in the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawPath {
    /// Source first, destination last.
    pub hubs: Vec<HubIndex>,
    /// `links[i]` joins `hubs[i]` and `hubs[i + 1]`.
    pub links: Vec<LinkIndex>,
    /// Sum of the links' latencies.
    pub latency: Latency,
}

impl RawPath {
    pub fn hops(&self) -> usize {
        self.links.len()
    }
}

/// The topology as one search sees it: which hubs may be entered, between which endpoints.
pub(super) struct Graph<'t> {
    topology: &'t Topology,
    /// `passable[i]`: hub `i` may be an intermediate hop.
    passable: Vec<bool>,
    from: HubIndex,
    to: HubIndex,
}

/// (latency in µs, hops): the order paths are compared in.
type Cost = (u64, usize);

impl<'t> Graph<'t> {
    pub fn new(topology: &'t Topology, passable: Vec<bool>, from: HubIndex, to: HubIndex) -> Self {
        Self {
            topology,
            passable,
            from,
            to,
        }
    }

    /// Whether a path may step onto `hub`: the destination, or a passable hub that is not the
    /// source (a path never returns to where it started).
    fn can_enter(&self, hub: HubIndex) -> bool {
        hub == self.to || (hub != self.from && self.passable[hub.get()])
    }

    /// The steps out of `hub` a search may take, skipping `banned` links. None out of the
    /// destination: a path ends there.
    fn steps<'a>(
        &'a self,
        hub: HubIndex,
        banned: &'a [bool],
    ) -> impl Iterator<Item = (HubIndex, LinkIndex, u64)> + 'a {
        let neighbours = if hub == self.to {
            &[][..]
        } else {
            self.topology.neighbours(hub)
        };
        neighbours
            .iter()
            .filter(move |(next, link)| !banned[link.get()] && self.can_enter(*next))
            .map(|&(next, link)| (next, link, self.topology.link(link).latency.as_micros()))
    }

    /// Lowest latency (then fewest hops) path avoiding `banned` links.
    pub fn fastest(&self, banned: &[bool]) -> Option<RawPath> {
        let (cost, previous) = self.dijkstra(banned, true);
        (cost[self.to.get()].0 != u64::MAX).then(|| self.trace(&previous))
    }

    /// Dijkstra from the source; stops at the destination when `stop_at_destination`.
    fn dijkstra(
        &self,
        banned: &[bool],
        stop_at_destination: bool,
    ) -> (Vec<Cost>, Vec<Option<(HubIndex, LinkIndex)>>) {
        let n = self.topology.hub_count();
        let mut cost: Vec<Cost> = vec![(u64::MAX, usize::MAX); n];
        let mut previous = vec![None; n];
        let mut queue = BinaryHeap::new();
        cost[self.from.get()] = (0, 0);
        queue.push(Reverse((0u64, 0usize, self.from)));
        while let Some(Reverse((latency, hops, hub))) = queue.pop() {
            if (latency, hops) > cost[hub.get()] {
                continue;
            }
            if stop_at_destination && hub == self.to {
                break;
            }
            for (next, link, step) in self.steps(hub, banned) {
                let candidate = (latency.saturating_add(step), hops + 1);
                if candidate < cost[next.get()] {
                    cost[next.get()] = candidate;
                    previous[next.get()] = Some((hub, link));
                    queue.push(Reverse((candidate.0, candidate.1, next)));
                }
            }
        }
        (cost, previous)
    }

    /// The path to the destination along `previous`.
    fn trace(&self, previous: &[Option<(HubIndex, LinkIndex)>]) -> RawPath {
        let mut hubs = vec![self.to];
        let mut links = Vec::new();
        let mut hub = self.to;
        while let Some((before, link)) = previous[hub.get()] {
            hubs.push(before);
            links.push(link);
            hub = before;
        }
        hubs.reverse();
        links.reverse();
        self.path(hubs, links)
    }

    fn path(&self, hubs: Vec<HubIndex>, links: Vec<LinkIndex>) -> RawPath {
        let latency = links.iter().fold(Latency::default(), |sum, link| {
            sum.saturating_add(self.topology.link(*link).latency)
        });
        RawPath {
            hubs,
            links,
            latency,
        }
    }

    /// Lowest-latency path of at most `max_hops` links avoiding `banned` links.
    ///
    /// Layer `k` holds, for every hub, the least latency of a walk of exactly `k` links from the
    /// source. The best over all layers at the destination is a simple path: a walk with a loop
    /// costs more than the same walk without it, which has fewer links and so is in an earlier
    /// layer. Ties go to the fewest hops.
    pub fn fastest_within(&self, banned: &[bool], max_hops: usize) -> Option<RawPath> {
        let n = self.topology.hub_count();
        let mut layer = vec![u64::MAX; n];
        layer[self.from.get()] = 0;
        // steps[k - 1][hub]: the link and hub that reached `hub` in layer k.
        let mut steps: Vec<Vec<Option<(HubIndex, LinkIndex)>>> = Vec::new();
        let mut best: Option<(u64, usize)> = None;
        for hops in 1..=max_hops {
            let mut next = vec![u64::MAX; n];
            let mut reached = vec![None; n];
            for (hub, &latency) in layer.iter().enumerate() {
                if latency == u64::MAX {
                    continue;
                }
                let hub = HubIndex::at(hub);
                for (to, link, step) in self.steps(hub, banned) {
                    let candidate = latency.saturating_add(step);
                    if candidate < next[to.get()] {
                        next[to.get()] = candidate;
                        reached[to.get()] = Some((hub, link));
                    }
                }
            }
            steps.push(reached);
            let arrival = next[self.to.get()];
            if arrival != u64::MAX && best.is_none_or(|(latency, _)| arrival < latency) {
                best = Some((arrival, hops));
            }
            if next.iter().all(|latency| *latency == u64::MAX) {
                break;
            }
            layer = next;
        }
        let (_, hops) = best?;
        let mut hubs = vec![self.to];
        let mut links = Vec::new();
        let mut hub = self.to;
        for k in (0..hops).rev() {
            let (before, link) = steps[k][hub.get()].expect("every layer on the way was reached");
            hubs.push(before);
            links.push(link);
            hub = before;
        }
        hubs.reverse();
        links.reverse();
        Some(self.path(hubs, links))
    }

    /// The fewest links of any path, regardless of latency.
    pub fn fewest_hops(&self) -> Option<usize> {
        let none = vec![false; self.topology.link_count()];
        let mut hops = vec![usize::MAX; self.topology.hub_count()];
        let mut queue = std::collections::VecDeque::from([self.from]);
        hops[self.from.get()] = 0;
        while let Some(hub) = queue.pop_front() {
            if hub == self.to {
                return Some(hops[hub.get()]);
            }
            for (next, _, _) in self.steps(hub, &none) {
                if hops[next.get()] == usize::MAX {
                    hops[next.get()] = hops[hub.get()] + 1;
                    queue.push_back(next);
                }
            }
        }
        None
    }

    /// The pair of link-disjoint paths with the least total latency (Suurballe), faster first.
    ///
    /// Links are undirected: the second search may run back along a link of the first path at
    /// no reduced cost, which cancels that link from both; what remains is two paths that share
    /// no link (they may share hubs).
    pub fn disjoint_pair(&self) -> Option<(RawPath, RawPath)> {
        let none = vec![false; self.topology.link_count()];
        let (cost, previous) = self.dijkstra(&none, false);
        let distance: Vec<u64> = cost.iter().map(|(latency, _)| *latency).collect();
        if distance[self.to.get()] == u64::MAX {
            return None;
        }
        let first = self.trace(&previous);
        // The first path's links, each with the direction it was travelled in.
        let forward: HashMap<LinkIndex, (HubIndex, HubIndex)> = first
            .links
            .iter()
            .zip(first.hubs.windows(2))
            .map(|(link, ends)| (*link, (ends[0], ends[1])))
            .collect();
        let second = self.residual_search(&distance, &forward)?;
        let mut arcs: HashMap<HubIndex, Vec<(HubIndex, LinkIndex)>> = HashMap::new();
        let cancelled: Vec<LinkIndex> = second
            .iter()
            .filter(|(_, _, link)| forward.contains_key(link))
            .map(|(_, _, link)| *link)
            .collect();
        for (link, (a, b)) in &forward {
            if !cancelled.contains(link) {
                arcs.entry(*a).or_default().push((*b, *link));
            }
        }
        for (a, b, link) in &second {
            if !forward.contains_key(link) {
                arcs.entry(*a).or_default().push((*b, *link));
            }
        }
        let one = self.walk(&mut arcs)?;
        let two = self.walk(&mut arcs)?;
        Some(if (one.latency, one.hops()) <= (two.latency, two.hops()) {
            (one, two)
        } else {
            (two, one)
        })
    }

    /// Dijkstra on the residual graph of `forward` with costs reduced by `distance`; the arcs
    /// (from, to, link) of the path found.
    fn residual_search(
        &self,
        distance: &[u64],
        forward: &HashMap<LinkIndex, (HubIndex, HubIndex)>,
    ) -> Option<Vec<(HubIndex, HubIndex, LinkIndex)>> {
        let none = vec![false; self.topology.link_count()];
        let n = self.topology.hub_count();
        let mut cost = vec![u64::MAX; n];
        let mut previous: Vec<Option<(HubIndex, LinkIndex)>> = vec![None; n];
        let mut queue = BinaryHeap::new();
        cost[self.from.get()] = 0;
        queue.push(Reverse((0u64, self.from)));
        while let Some(Reverse((reduced, hub))) = queue.pop() {
            if reduced > cost[hub.get()] {
                continue;
            }
            if hub == self.to {
                break;
            }
            for (next, link, latency) in self.steps(hub, &none) {
                let step = match forward.get(&link) {
                    // Only backwards along the first path, at no reduced cost.
                    Some((a, b)) if (*a, *b) == (next, hub) => 0,
                    Some(_) => continue,
                    None => {
                        let (here, there) = (distance[hub.get()], distance[next.get()]);
                        if here == u64::MAX || there == u64::MAX {
                            continue;
                        }
                        // Non-negative: `there` is a shortest distance, at most here + latency.
                        (here + latency).saturating_sub(there)
                    }
                };
                let candidate = reduced.saturating_add(step);
                if candidate < cost[next.get()] {
                    cost[next.get()] = candidate;
                    previous[next.get()] = Some((hub, link));
                    queue.push(Reverse((candidate, next)));
                }
            }
        }
        if cost[self.to.get()] == u64::MAX {
            return None;
        }
        let mut arcs = Vec::new();
        let mut hub = self.to;
        while let Some((before, link)) = previous[hub.get()] {
            arcs.push((before, hub, link));
            hub = before;
        }
        arcs.reverse();
        Some(arcs)
    }

    /// Follows unused arcs from the source to the destination, consuming them; loops cut out.
    fn walk(&self, arcs: &mut HashMap<HubIndex, Vec<(HubIndex, LinkIndex)>>) -> Option<RawPath> {
        let mut hubs = vec![self.from];
        let mut links = Vec::new();
        let mut hub = self.from;
        while hub != self.to {
            let (next, link) = arcs.get_mut(&hub)?.pop()?;
            if let Some(seen) = hubs.iter().position(|h| *h == next) {
                hubs.truncate(seen + 1);
                links.truncate(seen);
            } else {
                hubs.push(next);
                links.push(link);
            }
            hub = next;
        }
        Some(self.path(hubs, links))
    }
}
